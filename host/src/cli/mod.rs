//! `berth` as a CLI for people (issue #18): log in once, then list and show images, import
//! and build with live progress, read Harbor's statistics and manage source registries.
//!
//! Plain `http://` only (ureq without TLS): put a TLS-terminating proxy in front, or run it
//! on the same network. Exit codes, documented in docs/cli.md: 0 ok, 1 the API refused or
//! the operation failed, 2 usage, 3 authentication or connection.

mod client;
mod commands;
mod config;
mod output;

use std::process::ExitCode;

use clap::{Args, Subcommand};
pub use client::Client;

/// The subcommands that talk to a running berth (flattened into `berth`'s own).
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Save a berth URL and bearer token in the user's config directory (mode 0600).
    Login {
        /// berth's base URL, e.g. http://127.0.0.1:3000.
        url: String,
        /// The bearer token (e.g. from `berth token`).
        #[arg(long)]
        token: String,
    },
    /// List and show catalog images.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Import an image from a source registry through Harbor.
    Import {
        /// Image reference, e.g. docker.io/library/nginx:1.25.
        source: String,
        /// The source registry (must name the reference's registry).
        #[arg(long)]
        registry: Option<String>,
        /// Follow the import to its end, with progress.
        #[arg(long)]
        watch: bool,
        #[arg(long)]
        json: bool,
    },
    /// Your builds.
    #[command(subcommand)]
    Builds(BuildsCommand),
    /// Harbor's statistics.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Source registries imports pull from (adding and removing: admins).
    #[command(subcommand)]
    Registries(RegistriesCommand),
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// List images (one page).
    Ls(ListArgs),
    /// Show one image.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    pub framework: Option<String>,
    /// CUDA version (matched on the page fetched: the API has no CUDA filter).
    #[arg(long)]
    pub cuda: Option<String>,
    #[arg(long)]
    pub chip_type: Option<String>,
    /// Fuzzy name match.
    #[arg(long)]
    pub name: Option<String>,
    /// Official images only.
    #[arg(long, conflicts_with = "custom")]
    pub official: bool,
    /// Custom (non-official) images only.
    #[arg(long)]
    pub custom: bool,
    #[arg(long, default_value_t = 1)]
    pub page: u32,
    #[arg(long, default_value_t = 20)]
    pub page_size: u32,
    #[arg(long)]
    pub json: bool,
}

/// `berth build`: without `--name`, runs the manifest's component builds (like `spin build`);
/// with `--name`, builds a custom image on berth from a Dockerfile.
#[derive(Args)]
pub struct BuildArgs {
    /// The manifest (default spin.toml) or, with --name, the Dockerfile.
    #[arg(short = 'f', long = "file", visible_alias = "from")]
    pub file: Option<std::path::PathBuf>,
    /// Build an image on berth: its target `name:tag`.
    #[arg(long)]
    pub name: Option<String>,
    /// Base image (default: the Dockerfile's first FROM).
    #[arg(long, requires = "name")]
    pub base: Option<String>,
    #[arg(long, requires = "name")]
    pub description: Option<String>,
    /// Follow the build: status changes and log lines as they arrive.
    #[arg(long, requires = "name")]
    pub watch: bool,
    #[arg(long, requires = "name")]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum BuildsCommand {
    Ls {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum RegistriesCommand {
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Add a source registry (admins).
    Add {
        /// Host, e.g. nvcr.io.
        host: String,
        #[arg(long)]
        name: Option<String>,
        /// Harbor adapter type, e.g. docker-hub, docker-registry.
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        username: Option<String>,
        /// The password; or set BERTH_REGISTRY_PASSWORD to keep it off the command line.
        #[arg(long, env = "BERTH_REGISTRY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Remove a source registry (admins).
    Rm { id: i64 },
}

/// Why a command failed, and the exit code that says so.
#[derive(Debug)]
pub enum Failure {
    /// The API refused, or the import/build failed: 1.
    Api(String),
    /// Bad arguments or local input: 2.
    Usage(String),
    /// Not logged in, token refused, or berth unreachable: 3.
    Auth(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Api(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Auth(_) => 3,
        }
    }
    fn message(&self) -> &str {
        match self {
            Failure::Api(m) | Failure::Usage(m) | Failure::Auth(m) => m,
        }
    }
}

pub type Outcome = Result<(), Failure>;

/// Runs a client subcommand; `app` is berth's whole command (for completions).
pub fn main(command: ClientCommand, app: clap::Command) -> ExitCode {
    exit(commands::run(command, app))
}

/// `berth build --name N -f Dockerfile`: an image build on berth.
pub fn build_image(args: &BuildArgs) -> ExitCode {
    exit(commands::build_image(args))
}

fn exit(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message());
            ExitCode::from(f.code())
        }
    }
}

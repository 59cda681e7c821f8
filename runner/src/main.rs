//! `berth-runner`: berth's build runner. It serves the signed job protocol (docs/api.md,
//! docs/runner.md), runs each job with buildah in storage of its own (or, with
//! `--executor kubernetes`, as a Kubernetes Job running `build-one`), pushes the image to
//! the registry the job names and reports to berth's status callback.

mod base_images;
mod buildah;
mod jobs;
mod kubernetes;
mod log_tail;
mod server;
mod supervise;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgAction, Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-runner",
    version,
    about = "berth's build runner (buildah)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve `POST /runner/jobs` and run the builds.
    Serve(Config),
    /// Run one job (JSON in `BERTH_RUNNER_JOB`) with buildah, report to berth, and exit:
    /// the command of a build's pod under `--executor kubernetes`. Exits 0 once pushed,
    /// writing the digest to `--termination-log`.
    BuildOne {
        #[arg(
            long,
            env = "BERTH_RUNNER_TERMINATION_LOG",
            default_value = "/dev/termination-log"
        )]
        termination_log: PathBuf,
        #[command(flatten)]
        config: Config,
    },
    /// Build a small base image from a static busybox and push it (offline demos and tests).
    BusyboxImage {
        /// The image reference to push, e.g. `127.0.0.1:5000/library/busybox:1.36`.
        #[arg(long)]
        push: String,
        /// The static busybox binary to copy in.
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        #[command(flatten)]
        buildah: BuildahConfig,
    },
    /// Build a base image with this machine's Python and pip on top of a busybox base
    /// (offline `packages` builds) and push it.
    PythonImage {
        /// The image reference to push, e.g. `127.0.0.1:5000/library/python:3.11`.
        #[arg(long)]
        push: String,
        /// The busybox base it starts from (for its shell).
        #[arg(long)]
        from: String,
        /// The Python interpreter to copy in, with its standard library and pip.
        #[arg(long, default_value = "/usr/bin/python3")]
        python: PathBuf,
        #[command(flatten)]
        buildah: BuildahConfig,
    },
    /// Run a command (e.g. `docker-registry serve config.yml`) that ends when the process
    /// that started the runner ends (`berth up` runs the demo registry so).
    Supervise {
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<String>,
    },
}

/// How buildah is run; shared by both commands.
#[derive(Args, Clone, Debug)]
pub struct BuildahConfig {
    /// The buildah executable.
    #[arg(long, default_value = "buildah")]
    pub buildah: PathBuf,
    /// Where each build gets its own directory (context, storage, credentials), removed
    /// after the build.
    #[arg(long, default_value = "/var/lib/berth-runner")]
    pub work_dir: PathBuf,
    /// `buildah bud --isolation`: `chroot` where user namespaces are not available,
    /// `oci` or `rootless` where they are.
    #[arg(long, default_value = "chroot")]
    pub isolation: String,
    /// Verify the registries' TLS certificates (`false` for a plain-http registry on loopback).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub tls_verify: bool,
    /// Robot account the runner pushes with (a job may carry its own).
    #[arg(long, env = "BERTH_RUNNER_REGISTRY_USERNAME")]
    pub registry_username: Option<String>,
    #[arg(long, env = "BERTH_RUNNER_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
}

#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8100")]
    pub listen: SocketAddr,
    /// The HMAC key berth signs jobs with (berth's `runner_secret`; `serve` needs it).
    #[arg(
        long,
        env = "BERTH_RUNNER_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub secret: String,
    /// Where builds run: `buildah` in this process's own storage, or `kubernetes`: one
    /// Kubernetes Job per build (the `--kube-*` options).
    #[arg(long, env = "BERTH_RUNNER_EXECUTOR", value_enum, default_value_t = Executor::Buildah)]
    pub executor: Executor,
    /// Builds running at once; more wait in the queue.
    #[arg(long, env = "BERTH_RUNNER_MAX_CONCURRENT", default_value_t = 2)]
    pub max_concurrent: usize,
    /// Builds waiting at most; a job beyond that is refused with 429.
    #[arg(long, env = "BERTH_RUNNER_MAX_QUEUED", default_value_t = 16)]
    pub max_queued: usize,
    /// A build still running after this is stopped and failed.
    #[arg(long, env = "BERTH_RUNNER_TIMEOUT_SECONDS", default_value_t = 3600)]
    pub timeout_seconds: u64,
    /// Bytes all builds' storage may take; a build pushing usage past it is stopped.
    #[arg(long, env = "BERTH_RUNNER_STORAGE_QUOTA_BYTES", default_value_t = 50 * 1024 * 1024 * 1024)]
    pub storage_quota_bytes: u64,
    /// Bytes of build log kept and sent to berth (the end of the log).
    #[arg(long, env = "BERTH_RUNNER_LOG_TAIL_BYTES", default_value_t = 4096)]
    pub log_tail_bytes: usize,
    /// Index packages builds install pip packages from (`PIP_INDEX_URL`).
    #[arg(long, env = "BERTH_RUNNER_PIP_INDEX_URL")]
    pub pip_index_url: Option<String>,
    /// Debian/Ubuntu mirror packages builds install apt packages from, e.g.
    /// `http://mirror.internal/debian`.
    #[arg(long, env = "BERTH_RUNNER_APT_MIRROR")]
    pub apt_mirror: Option<String>,
    /// buildah storage root holding the node's environment containers (saved by
    /// `environment` builds); buildah's default storage when not given.
    #[arg(long)]
    pub environment_root: Option<PathBuf>,
    #[arg(long)]
    pub environment_runroot: Option<PathBuf>,
    /// Exit when the process that started the runner exits (`berth up` starts it so).
    #[arg(long)]
    pub exit_with_parent: bool,
    #[command(flatten)]
    pub buildah: BuildahConfig,
    #[command(flatten)]
    pub kube: kubernetes::KubeConfig,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    Buildah,
    Kubernetes,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_RUNNER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match Cli::parse().command {
            Command::Serve(config) => {
                if config.exit_with_parent {
                    supervise::exit_with_parent(None);
                }
                let runner = Arc::new(jobs::Runner::new(config)?);
                server::serve(runner).await
            }
            Command::BuildOne {
                termination_log,
                mut config,
            } => {
                config.executor = Executor::Buildah;
                jobs::build_one(config, &termination_log).await
            }
            Command::BusyboxImage {
                push,
                busybox,
                buildah,
            } => base_images::busybox_image(&buildah, &busybox, &push).await,
            Command::PythonImage {
                push,
                from,
                python,
                buildah,
            } => base_images::python_image(&buildah, &python, &from, &push).await,
            Command::Supervise { command } => supervise::run(&command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

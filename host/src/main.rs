//! `berth`: runs berth's Spin HTTP components locally, in tests and at the edge, like `spin up`.

mod allowed_hosts;
mod bindings;
mod build;
mod cli;
mod demo;
mod demo_buildah;
mod interfaces;
mod limits;
mod manifest;
mod routes;
mod runtime;
mod server;
mod sweep;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A Spin-compatible host for berth's components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the application's HTTP triggers (like `spin up`).
    Up {
        /// Run `berth build` first.
        #[arg(long)]
        build: bool,
        /// Address to listen on; port 0 picks a free port (the real address is printed).
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Directory for the SQLite database, key-value store and compilation cache
        /// (default: `.spin` next to the manifest, as Spin).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The application manifest.
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        from: PathBuf,
        #[command(flatten)]
        limits: limits::Limits,
        #[command(flatten)]
        outbound: limits::OutboundLimits,
        #[command(flatten)]
        concurrency: limits::ConcurrencyLimits,
        /// Demo mode's build runner: `sim` (simulated) or `buildah` (berth-runner and a
        /// docker-registry on loopback: real builds; docs/runner.md).
        #[arg(long, value_enum, default_value_t = demo::RunnerChoice::Sim)]
        runner: demo::RunnerChoice,
    },
    /// Benchmark: seed catalogs of N images, serve them and measure under HTTP load.
    Bench(berth_bench::BenchArgs),
    /// Run each component's `[component.<id>.build] command` (like `spin build`), or with
    /// `--name`, build a custom image on berth from a Dockerfile.
    Build(cli::BuildArgs),
    /// Print a signed HS256 bearer token for this app's `jwt_secret`.
    Token {
        /// Subject (user name).
        #[arg(long)]
        sub: String,
        /// `user` or `admin`.
        #[arg(long)]
        role: String,
        /// Lifetime: `30s`, `15m`, `1h`, `7d`.
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        from: PathBuf,
        /// The state directory of the `berth up` whose demo secrets to use (default: `.spin`
        /// next to the manifest, as for `berth up`).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// The client commands: talk to a running berth (host/src/cli, docs/cli.md).
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BERTH_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("warn,berth=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log files and CI captures stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Client(c) => return cli::main(c, <Cli as clap::CommandFactory>::command()),
        Command::Build(b) if b.name.is_some() => return cli::build_image(&b),
        other => other,
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `-f` may name the manifest or the directory holding `spin.toml`, as in Spin.
fn manifest_path(from: PathBuf) -> PathBuf {
    if from.is_dir() {
        from.join("spin.toml")
    } else {
        from
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Up {
            build,
            listen,
            state_dir,
            from,
            limits,
            outbound,
            concurrency,
            runner,
        } => {
            let from = manifest_path(from);
            if build {
                build::run(&from)?;
            }
            let app = manifest::parse_file(&from)?;
            manifest::check_sources(&app)?;
            let state_dir = state_dir.unwrap_or_else(|| app.dir.join(".spin"));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(async move {
                let demo = demo::start_if_unconfigured(&app, listen, runner, &state_dir).await?;
                let app_vars = interfaces::variables::AppVariables::from_environment_with(
                    &app,
                    &demo.fallbacks,
                )?;
                if let Some(real) = &demo.real_builds {
                    let token = token::issue(&app, "berth-up", "admin", "10m", &state_dir)?;
                    let base_url = format!("http://{listen}");
                    let bases = real.bases.clone();
                    tokio::task::spawn_blocking(move || {
                        for base in bases {
                            let (name, reference) = (&base.name, &base.reference);
                            match demo_buildah::register_base(&base_url, &token, &base) {
                                Ok(()) => {
                                    println!("Base image {name} ({reference}) is in the catalog")
                                }
                                Err(e) => {
                                    eprintln!("warning: cannot list the base image {name}: {e:#}")
                                }
                            }
                        }
                    });
                }
                let sweep = sweep::schedule(&app_vars);
                // Compilation is CPU-bound and blocking: keep it off the async workers.
                let server = tokio::task::spawn_blocking(move || {
                    server::Server::with_variables(
                        &app,
                        &state_dir,
                        app_vars,
                        outbound,
                        concurrency,
                    )
                })
                .await??;
                if let Some((period, token)) = sweep {
                    tokio::spawn(sweep::run(server.clone(), period, token));
                }

                tokio::select! {
                    r = server.serve(listen, limits) => r,
                    _ = tokio::signal::ctrl_c() => Ok(()),
                }
            })
        }
        Command::Client(_) => unreachable!("the client commands are run by main"),
        Command::Bench(args) => {
            let manifest = manifest_path(args.from.clone());
            let manifest = std::fs::canonicalize(&manifest)
                .with_context(|| format!("cannot find {}", manifest.display()))?;
            let app = manifest::parse_file(&manifest)?;
            manifest::check_sources(&app).context("build the components first: berth build")?;
            berth_bench::run(args, &manifest)
        }
        Command::Build(b) => build::run(&manifest_path(
            b.file.unwrap_or_else(|| PathBuf::from("spin.toml")),
        )),
        Command::Token {
            sub,
            role,
            ttl,
            from,
            state_dir,
        } => {
            let app = manifest::parse_file(&manifest_path(from))?;
            let state_dir = state_dir.unwrap_or_else(|| app.dir.join(".spin"));
            println!("{}", token::issue(&app, &sub, &role, &ttl, &state_dir)?);
            Ok(())
        }
    }
}

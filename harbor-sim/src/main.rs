//! `harbor-sim --listen 127.0.0.1:8099 --username admin --password Harbor12345`

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use harbor_sim::{ProjectSeed, SimOptions, Simulator};

/// A Harbor v2.15 API simulator for berth's tests and demos.
#[derive(Parser, Debug)]
#[command(name = "harbor-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "HARBOR_SIM_LISTEN", default_value = "127.0.0.1:8099")]
    listen: SocketAddr,
    /// The (admin) user's name.
    #[arg(long, env = "HARBOR_SIM_USERNAME", default_value = "admin")]
    username: String,
    /// The user's password.
    #[arg(long, env = "HARBOR_SIM_PASSWORD", default_value = "Harbor12345")]
    password: String,
    /// External host[:port] of the simulated Harbor (resource_url, harbor_hostname).
    #[arg(long, env = "HARBOR_SIM_EXTERNAL_HOST", default_value = "harbor.local")]
    external_host: String,
    /// Duration of each execution phase, in milliseconds.
    #[arg(long, default_value_t = 300)]
    execution_step_ms: u64,
    /// Delay before an execution's status turns final, in milliseconds.
    #[arg(long, default_value_t = 0)]
    status_refresh_delay_ms: u64,
    /// Behave as a system-level robot account (statistics fill only public_*).
    #[arg(long)]
    robot: bool,
    /// Projects to create at start-up, `name` or `name:public` (repeatable).
    /// Default: `library:public`.
    #[arg(long = "project")]
    projects: Vec<String>,
    /// Shared secret of the simulated build runner (`X-Berth-Signature` HMAC key).
    #[arg(
        long,
        env = "HARBOR_SIM_RUNNER_SECRET",
        default_value = "runner-secret"
    )]
    runner_secret: String,
    /// Hold berth's official images (`library/ubuntu20-pytorch:2.0`, …) from the start, and
    /// fail builds whose base on this Harbor it does not hold.
    #[arg(long)]
    official_images: bool,
    /// A real registry whose push notifications (`/service/notifications`) the simulator
    /// turns into artifacts and PUSH_ARTIFACT webhooks, e.g. `http://127.0.0.1:5000`.
    #[arg(long)]
    registry_url: Option<String>,
    /// Serve plain image configs and no registry API (no image facts, no layers).
    #[arg(long)]
    no_image_contents: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut opts = SimOptions {
        username: args.username,
        password: args.password,
        external_host: args.external_host,
        execution_step: Duration::from_millis(args.execution_step_ms),
        status_refresh_delay: Duration::from_millis(args.status_refresh_delay_ms),
        robot: args.robot,
        runner_secret: args.runner_secret,
        seed_images: if args.official_images {
            harbor_sim::official_images()
        } else {
            Vec::new()
        },
        runner_pulls_bases: args.official_images,
        registry_url: args.registry_url,
        image_contents: !args.no_image_contents,
        ..SimOptions::default()
    };
    if !args.projects.is_empty() {
        opts.default_projects = args
            .projects
            .iter()
            .map(|p| match p.split_once(':') {
                Some((name, vis)) => ProjectSeed {
                    name: name.to_string(),
                    public: vis == "public",
                },
                None => ProjectSeed {
                    name: p.clone(),
                    public: false,
                },
            })
            .collect();
    }
    let sim = Simulator::start(args.listen, opts).await?;
    println!("harbor-sim listening on {}", sim.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}

//! The demo Harbor: when no Harbor is configured, `berth up` serves the Harbor simulator
//! (with its build runner) in-process, so imports and builds work out of the box.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Result;
use harbor_sim::{SimOptions, Simulator};

use crate::demo_buildah::{self, RealBuilds};
use crate::manifest::App;
use crate::variables::AppVariables;

/// Who builds custom images in demo mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerChoice {
    /// The simulator's runner: builds nothing, pushes a simulated image.
    #[default]
    Sim,
    /// berth-runner with buildah, pushing to a docker-registry on loopback.
    Buildah,
}

/// What demo mode started: the variables that point the app at it, and the real build
/// stack when asked for (dropping it stops those processes).
#[derive(Default)]
pub struct Demo {
    pub fallbacks: BTreeMap<String, String>,
    pub real_builds: Option<RealBuilds>,
}

/// Starts the simulator when the app has a `harbor_url` variable that nobody set and whose
/// default is a loopback address; returns the variables that point the app at it.
pub async fn start_if_unconfigured(
    app: &App,
    listen: SocketAddr,
    runner: RunnerChoice,
    state_dir: &std::path::Path,
) -> Result<Demo> {
    let mut fallbacks = BTreeMap::new();
    let default_url = app
        .variables
        .get("harbor_url")
        .and_then(|v| v.default.clone())
        .unwrap_or_default();
    let loopback = default_url.starts_with("http://127.0.0.1:")
        || default_url.starts_with("http://localhost:");
    if !loopback || AppVariables::is_configured(app, "harbor_url") {
        if runner == RunnerChoice::Buildah {
            anyhow::bail!(
                "--runner buildah is for demo mode (no harbor_url set); next to a real Harbor, run berth-runner yourself (docs/runner.md)"
            );
        }
        return Ok(Demo::default());
    }
    let vars = AppVariables::from_environment(app)?;
    let get = |name: &str| vars.get(name).map(str::to_owned).unwrap_or_default();
    let plan = match runner {
        RunnerChoice::Buildah => Some(demo_buildah::Plan::new()?),
        RunnerChoice::Sim => None,
    };
    let mut opts = SimOptions {
        username: get("harbor_username"),
        password: get("harbor_password"),
        runner_secret: get("runner_secret"),
        ..SimOptions::default()
    };
    if let Some(plan) = &plan {
        // Artifacts live in the real registry: Harbor's registry host is its address.
        opts.registry_url = Some(plan.registry_url());
        opts.registry_notification_token = Some(plan.notification_token.clone());
        opts.external_host = format!("127.0.0.1:{}", plan.registry_port);
        opts.external_scheme = "http".into();
    }
    let preferred: SocketAddr = default_url
        .trim_start_matches("http://")
        .replace("localhost", "127.0.0.1")
        .parse()
        .unwrap_or_else(|_| "127.0.0.1:0".parse().expect("a socket address"));
    let sim = match Simulator::start(preferred, opts.clone()).await {
        Ok(sim) => sim,
        // The default port is taken: any port will do, the variables follow it.
        Err(_) => Simulator::start("127.0.0.1:0".parse()?, opts).await?,
    };
    let url = sim.url();
    fallbacks.insert("harbor_url".into(), url.clone());
    let real_builds = match &plan {
        Some(plan) => {
            let real = demo_buildah::start(plan, &url, state_dir, &get("runner_secret")).await?;
            println!("Demo Harbor simulator: {url} (set harbor_url to use a real Harbor)");
            fallbacks.insert("runner_url".into(), real.runner_url.clone());
            fallbacks.insert("harbor_registry_host".into(), real.registry_host.clone());
            Some(real)
        }
        None => {
            println!(
                "Demo Harbor simulator (with a build runner): {url} (set harbor_url to use a real Harbor)"
            );
            fallbacks.insert("runner_url".into(), url);
            None
        }
    };
    if listen.port() != 0 {
        let public = format!("http://{listen}");
        if !AppVariables::is_configured(app, "public_url") {
            fallbacks.insert("public_url".into(), public.clone());
        }
        if !AppVariables::is_configured(app, "webhook_url") {
            fallbacks.insert(
                "webhook_url".into(),
                format!("{public}/api/v1/hooks/harbor"),
            );
        }
    }
    // Dropping the handle leaves the simulator serving: its tasks live on the runtime.
    drop(sim);
    Ok(Demo {
        fallbacks,
        real_builds,
    })
}

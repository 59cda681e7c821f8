//! Demo mode: when no Harbor is configured, `berth up` serves the Harbor simulator (with its
//! build runner) in-process, so imports and builds work out of the box, and generates the
//! app's secrets once per state directory, so no deployment ever runs on a published default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use harbor_sim::{SimOptions, Simulator};

use crate::demo_buildah::{self, RealBuilds};
use crate::interfaces::variables::AppVariables;
use crate::manifest::App;

/// Where demo mode keeps the secrets it generated (TOML, mode 0600).
pub fn secrets_file(state_dir: &Path) -> PathBuf {
    state_dir.join("demo-secrets.toml")
}

/// Whether `berth up` would run in demo mode: the app has a `harbor_url` variable that
/// nobody set and whose default is a loopback address.
pub fn is_demo(app: &App) -> bool {
    let default_url = harbor_default(app);
    let loopback = default_url.starts_with("http://127.0.0.1:")
        || default_url.starts_with("http://localhost:");
    loopback && !AppVariables::is_configured(app, "harbor_url")
}

fn harbor_default(app: &App) -> String {
    app.variables
        .get("harbor_url")
        .and_then(|v| v.default.clone())
        .unwrap_or_default()
}

/// The secrets demo mode generated earlier in `state_dir` (none when it never ran there).
pub fn saved_secrets(state_dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = secrets_file(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).with_context(|| format!("cannot read {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Values for the app's required secrets that nobody set: read from `state_dir`, or
/// generated (32 random bytes, hex) and saved there on the first start.
fn demo_secrets(app: &App, state_dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut saved = saved_secrets(state_dir)?;
    let mut generated = Vec::new();
    for (name, var) in &app.variables {
        let needs_value = var.secret && var.required && var.default.is_none();
        if needs_value && !AppVariables::is_configured(app, name) && !saved.contains_key(name) {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| anyhow::anyhow!("cannot generate a random secret: {e}"))?;
            saved.insert(
                name.clone(),
                bytes.iter().map(|b| format!("{b:02x}")).collect(),
            );
            generated.push(name.as_str());
        }
    }
    let path = secrets_file(state_dir);
    if !generated.is_empty() {
        write_private(&path, &toml::to_string(&saved)?)?;
        println!(
            "Demo mode: generated {} in {} (kept for this state directory; `berth token` reads it)",
            generated.join(", "),
            path.display()
        );
    } else if !saved.is_empty() {
        println!("Demo mode: secrets from {}", path.display());
    }
    Ok(saved)
}

/// Writes `text` to a file only its owner may read.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("toml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Who builds custom images in demo mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerChoice {
    /// The simulator's runner: builds nothing, pushes a simulated image.
    #[default]
    Sim,
    /// berth-runner with buildah, pushing to a docker-registry on loopback.
    Buildah,
}

/// What demo mode started: the variables that point the app at it (the demo secrets
/// among them), and the real build stack when asked for (dropping it stops those processes).
#[derive(Default)]
pub struct Demo {
    pub fallbacks: BTreeMap<String, String>,
    pub real_builds: Option<RealBuilds>,
}

/// In demo mode, starts the simulator (and with `--runner buildah` the real build stack)
/// and returns the variables that point the app at it, with the demo secrets; otherwise
/// returns nothing (a missing secret is then a start-up error, as on Spin).
pub async fn start_if_unconfigured(
    app: &App,
    listen: SocketAddr,
    runner: RunnerChoice,
    state_dir: &Path,
) -> Result<Demo> {
    if !is_demo(app) {
        if runner == RunnerChoice::Buildah {
            anyhow::bail!(
                "--runner buildah is for demo mode (no harbor_url set); next to a real Harbor, run berth-runner yourself (docs/runner.md)"
            );
        }
        return Ok(Demo::default());
    }
    let mut fallbacks = demo_secrets(app, state_dir)?;
    let vars = AppVariables::from_environment_with(app, &fallbacks)?;
    let get = |name: &str| vars.get(name).map(str::to_owned).unwrap_or_default();
    let plan = match runner {
        RunnerChoice::Buildah => Some(demo_buildah::Plan::new()?),
        RunnerChoice::Sim => None,
    };
    let mut opts = SimOptions {
        username: get("harbor_username"),
        password: get("harbor_password"),
        runner_secret: get("runner_secret"),
        // The catalog's official images name this Harbor: it holds them.
        seed_images: harbor_sim::official_images(),
        runner_pulls_bases: true,
        ..SimOptions::default()
    };
    if let Some(plan) = &plan {
        // Artifacts live in the real registry: Harbor's registry host is its address.
        opts.registry_url = Some(plan.registry_url());
        opts.registry_notification_token = Some(plan.notification_token.clone());
        opts.external_host = format!("127.0.0.1:{}", plan.registry_port);
        opts.external_scheme = "http".into();
    }
    let preferred: SocketAddr = harbor_default(app)
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
    // The portal signs in by itself: the demo has nothing to protect.
    if !AppVariables::is_configured(app, "portal_demo_user")
        && app.variables.contains_key("portal_demo_user")
    {
        fallbacks.insert("portal_demo_user".into(), "demo".into());
    }
    // Dropping the handle leaves the simulator serving: its tasks live on the runtime.
    drop(sim);
    Ok(Demo {
        fallbacks,
        real_builds,
    })
}

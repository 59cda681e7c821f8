//! The demo Harbor: when no Harbor is configured, `berth up` serves the Harbor simulator
//! (with its build runner) in-process, so imports and builds work out of the box.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Result;
use harbor_sim::{SimOptions, Simulator};

use crate::manifest::App;
use crate::variables::AppVariables;

/// Starts the simulator when the app has a `harbor_url` variable that nobody set and whose
/// default is a loopback address; returns the variables that point the app at it.
pub async fn start_if_unconfigured(
    app: &App,
    listen: SocketAddr,
) -> Result<BTreeMap<String, String>> {
    let mut fallbacks = BTreeMap::new();
    let default_url = app
        .variables
        .get("harbor_url")
        .and_then(|v| v.default.clone())
        .unwrap_or_default();
    let loopback = default_url.starts_with("http://127.0.0.1:")
        || default_url.starts_with("http://localhost:");
    if !loopback || AppVariables::is_configured(app, "harbor_url") {
        return Ok(fallbacks);
    }
    let vars = AppVariables::from_environment(app)?;
    let get = |name: &str| vars.get(name).map(str::to_owned).unwrap_or_default();
    let opts = SimOptions {
        username: get("harbor_username"),
        password: get("harbor_password"),
        runner_secret: get("runner_secret"),
        // The catalog's official images name this Harbor: it holds them.
        seed_images: harbor_sim::official_images(),
        runner_pulls_bases: true,
        ..SimOptions::default()
    };
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
    println!(
        "Demo Harbor simulator (with a build runner): {url} (set harbor_url to use a real Harbor)"
    );
    fallbacks.insert("harbor_url".into(), url.clone());
    fallbacks.insert("runner_url".into(), url);
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
    Ok(fallbacks)
}

//! `berth up`'s scheduler: calls the app's sweep route (`POST /api/v1/internal/sweep` with
//! the worker token) every `sweep_interval_seconds`, through the app itself, as a cron job
//! or a Kubernetes CronJob does for the same .wasm on Spin.

use std::sync::Arc;
use std::time::Duration;

use crate::interfaces::variables::AppVariables;
use crate::server::Server;

pub const ROUTE: &str = "/api/v1/internal/sweep";

/// The sweep's period and token, when the app defines both variables (else no timer).
pub fn schedule(vars: &AppVariables) -> Option<(Duration, String)> {
    let seconds: u64 = vars
        .get("sweep_interval_seconds")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let token = vars.get("worker_token").ok()?.to_owned();
    (seconds > 0).then(|| (Duration::from_secs(seconds), token))
}

/// Runs until the process ends; a failed call is logged and the next tick tries again.
pub async fn run(server: Arc<Server>, period: Duration, token: String) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // A slow sweep delays the next one rather than piling calls up.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(addr) = server.local_addr() else {
            continue;
        };
        let url = format!("http://{addr}{ROUTE}");
        let token = token.clone();
        let call = tokio::task::spawn_blocking(move || {
            ureq::post(&url)
                .set("authorization", &format!("Bearer {token}"))
                .timeout(Duration::from_secs(300))
                .call()
        });
        match call.await {
            Ok(Ok(_)) => {}
            Ok(Err(ureq::Error::Status(status, response))) => {
                let body = response.into_string().unwrap_or_default();
                tracing::warn!("sweep answered {status}: {}", body.trim());
            }
            Ok(Err(e)) => tracing::warn!("sweep call failed: {e}"),
            Err(e) => tracing::warn!("sweep task failed: {e}"),
        }
    }
}

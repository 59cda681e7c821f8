//! berth's side of the build runner: where it is, the signed jobs berth sends it, and
//! asking it to stop one.

use serde_json::json;

use crate::auth::signature;
use crate::config::Context;
use crate::outbound::{HttpSender, OutboundRequest};

/// Asks the runner to stop a build: `POST <runner_url>/runner/jobs/{id}/cancel`, signed
/// like a job. Best effort: the build is already final in berth, and a runner that does
/// not answer is asked again by nobody (its own timeout ends the build).
pub(super) async fn stop_in_runner<S: HttpSender>(
    ctx: &Context<'_>,
    sender: &S,
    id: &str,
    reason: &str,
) {
    let Ok(runner) = ctx.settings.runner() else {
        return;
    };
    let bytes = serde_json::to_vec(&json!({"build_id": id, "reason": reason}))
        .expect("JSON values serialize");
    let mut request =
        OutboundRequest::new("POST", format!("{}/runner/jobs/{id}/cancel", runner.url))
            .header("content-type", "application/json")
            .header(
                "x-berth-signature",
                signature(runner.secret.expose(), &bytes),
            );
    request.body = bytes;
    let _ = sender.send(request).await;
}

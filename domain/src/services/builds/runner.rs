//! berth's side of the build runner: where it is, the signed jobs berth sends it, and
//! asking it to stop one.

use serde_json::json;

use crate::auth::signature;
use crate::config::Context;
use crate::envelope::ApiError;
use crate::outbound::{HttpSender, OutboundRequest};

/// Where builds go and how berth and the runner trust each other.
pub(super) struct RunnerSettings {
    pub(super) url: String,
    pub(super) secret: String,
    pub(super) token: String,
    pub(super) public_url: String,
    pub(super) deadline_seconds: i64,
}

impl RunnerSettings {
    pub(super) fn from_context(ctx: &Context<'_>) -> Result<RunnerSettings, ApiError> {
        let url = ctx
            .var("runner_url")
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if url.is_empty() {
            return Err(ApiError::new(
                503,
                "no build runner is configured (set the runner_url variable)",
            ));
        }
        Ok(RunnerSettings {
            url,
            secret: ctx.var("runner_secret"),
            token: ctx.var("runner_token"),
            public_url: ctx
                .var("public_url")
                .trim()
                .trim_end_matches('/')
                .to_owned(),
            deadline_seconds: ctx
                .var("build_deadline_seconds")
                .trim()
                .parse()
                .unwrap_or(3600_i64)
                .max(1),
        })
    }
}

/// Asks the runner to stop a build: `POST <runner_url>/runner/jobs/{id}/cancel`, signed
/// like a job. Best effort: the build is already final in berth, and a runner that does
/// not answer is asked again by nobody (its own timeout ends the build).
pub(super) async fn stop_in_runner<S: HttpSender>(
    ctx: &Context<'_>,
    sender: &S,
    id: &str,
    reason: &str,
) {
    let Ok(runner) = RunnerSettings::from_context(ctx) else {
        return;
    };
    let bytes = serde_json::to_vec(&json!({"build_id": id, "reason": reason}))
        .expect("JSON values serialize");
    let mut request =
        OutboundRequest::new("POST", format!("{}/runner/jobs/{id}/cancel", runner.url))
            .header("content-type", "application/json")
            .header("x-berth-signature", signature(&runner.secret, &bytes));
    request.body = bytes;
    let _ = sender.send(request).await;
}

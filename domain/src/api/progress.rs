//! The progress component's routes: Harbor's webhooks, sync workers' progress, build
//! runners' status callbacks and the sweep. No user calls these: each route checks the
//! secret of the service that does (webhook secret, worker token, runner token).

use crate::config::Context;
use crate::envelope::{Api, respond};
use crate::http::{Request, Response};
use crate::outbound::HttpSender;
use crate::request::unmatched;
use crate::services::{builds, imports};

pub async fn handle<S: HttpSender>(req: &Request, ctx: &Context<'_>, sender: S) -> Response {
    let result = async {
        super::admit(req, ctx, super::anyone)?;
        let segments = req.segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("POST", ["api", "v1", "hooks", "harbor"]) => imports::webhook(req, ctx),
            ("PUT", ["api", "v1", "images:import", name, "progress"]) => {
                imports::worker_progress(name, req, ctx)
            }
            ("PUT", ["api", "v1", "builds", id, "status"]) => builds::runner_status(id, req, ctx),
            ("POST", ["api", "v1", "internal", "sweep"]) => imports::sweep(req, ctx, sender).await,
            (_, path) => Err(unmatched(req, allowed_methods(path))),
        }
    };
    respond(Api::V1, result.await)
}

/// The methods each of the progress component's paths answers.
fn allowed_methods(path: &[&str]) -> Option<&'static str> {
    match path {
        ["api", "v1", "hooks", "harbor"] | ["api", "v1", "internal", "sweep"] => Some("POST"),
        ["api", "v1", "images:import", _, "progress"] => Some("PUT"),
        _ => None,
    }
}

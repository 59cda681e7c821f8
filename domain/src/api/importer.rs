//! The importer component's routes: starting imports and their retries (forwarded by the
//! catalog component), custom builds, and the source registries.

use crate::config::Context;
use crate::envelope::{Api, respond};
use crate::http::{Request, Response};
use crate::outbound::HttpSender;
use crate::request::{caller, parse_id, unmatched};
use crate::services::builds::{self, BuildApi};
use crate::services::{imports, registries};

pub async fn handle<S: HttpSender>(req: &Request, ctx: &Context<'_>, sender: S) -> Response {
    // `/api/images/build` is a console path: its errors use the console's envelope.
    let api = Api::for_path(&req.path);
    let result = async {
        let caller = &super::admit(req, ctx, caller)?;
        let segments = req.segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("POST", ["api", "v1", "images:import"]) => {
                imports::start(req, ctx, caller, sender).await
            }
            ("PUT", ["api", "v1", "images", id, "importing:retry"]) => {
                imports::retry(parse_id(id)?, ctx, caller, sender).await
            }
            ("POST", ["api", "v1", "images:build"]) => {
                builds::start(req, ctx, caller, sender, BuildApi::V1).await
            }
            ("POST", ["api", "images", "build"]) => {
                builds::start(req, ctx, caller, sender, BuildApi::Console).await
            }
            ("GET", ["api", "v1", "registries"]) => registries::list(ctx, caller),
            ("POST", ["api", "v1", "registries"]) => {
                registries::create(req, ctx, caller, sender).await
            }
            ("GET", ["api", "v1", "registries", id]) => registries::get(ctx, caller, id),
            ("PUT" | "PATCH", ["api", "v1", "registries", id]) => {
                registries::update(req, ctx, caller, id, sender).await
            }
            ("DELETE", ["api", "v1", "registries", id]) => registries::delete(ctx, caller, id),
            (_, path) => Err(unmatched(req, allowed_methods(path))),
        }
    };
    respond(api, result.await)
}

/// The methods each of the importer's paths answers.
fn allowed_methods(path: &[&str]) -> Option<&'static str> {
    match path {
        ["api", "v1", "images:import"] => Some("POST"),
        ["api", "v1", "images", _, "importing:retry"] => Some("PUT"),
        ["api", "v1", "registries"] => Some("GET, POST"),
        ["api", "v1", "registries", _] => Some("GET, PUT, PATCH, DELETE"),
        _ => None,
    }
}

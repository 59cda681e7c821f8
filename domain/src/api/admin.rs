//! The admin component's routes: every write to the catalog, for both APIs. Private: the
//! catalog component forwards the writes on its paths here (Spin's local service chaining).

use crate::config::Context;
use crate::envelope::{Api, respond};
use crate::http::{Request, Response};
use crate::outbound::HttpSender;
use crate::request::{caller, parse_id, unmatched};
use crate::services::admin;

pub async fn handle<S: HttpSender>(req: &Request, ctx: &Context<'_>, sender: S) -> Response {
    let api = Api::for_path(&req.path);
    let result = async {
        let caller = &super::admit(req, ctx, caller)?;
        let segments = req.segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("POST", ["api", "v1", "images"]) => admin::create(req, ctx, caller, Api::V1),
            ("PUT" | "PATCH", ["api", "v1", "images", id]) => {
                admin::update(req, ctx, caller, Api::V1, parse_id(id)?)
            }
            ("DELETE", ["api", "v1", "images", id]) => {
                admin::delete(req, ctx, caller, Api::V1, parse_id(id)?, sender).await
            }
            ("POST", ["api", "images"]) => admin::create(req, ctx, caller, Api::Console),
            ("PUT", ["api", "images", id]) => {
                admin::update(req, ctx, caller, Api::Console, parse_id(id)?)
            }
            ("DELETE", ["api", "images", id]) => {
                admin::delete(req, ctx, caller, Api::Console, parse_id(id)?, sender).await
            }
            ("PUT", ["api", "images", id, "status"]) => {
                admin::set_status(req, ctx, caller, parse_id(id)?)
            }
            ("POST", ["api", "images", id, "versions"]) => {
                admin::add_version(req, ctx, caller, parse_id(id)?)
            }
            (_, path) => Err(unmatched(req, allowed_methods(path))),
        }
    };
    respond(api, result.await)
}

/// The methods each image path answers, across the catalog and admin components.
fn allowed_methods(path: &[&str]) -> Option<&'static str> {
    match path {
        ["api", "v1", "images"] | ["api", "images"] => Some("GET, POST"),
        ["api", "v1", "images", _] => Some("GET, PUT, PATCH, DELETE"),
        ["api", "images", "build"] => Some("POST"),
        ["api", "images", _] => Some("GET, PUT, DELETE"),
        ["api", "images", _, "status"] => Some("PUT"),
        ["api", "images", _, "versions"] => Some("GET, POST"),
        ["api", "v1", "images", _, "importing-details"] => Some("GET"),
        ["api", "v1", "images", _, "use"] | ["api", "images", _, "use"] => Some("GET"),
        _ => None,
    }
}

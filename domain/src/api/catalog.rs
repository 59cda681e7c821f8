//! The catalog component's routes: every read of both APIs. Writes on the same paths are
//! forwarded to other components (see [`forward_target`]).

use crate::conditional;
use crate::config::Context;
use crate::envelope::{Api, respond};
use crate::http::{Request, Response};
use crate::outbound::HttpSender;
use crate::query::ListQuery;
use crate::request::{caller, parse_id, unmatched};
use crate::services::{builds, catalog, imports};

/// The component a request on catalog's paths belongs to, when it is not catalog's: import
/// retries go to the importer, other writes (POST, PUT, PATCH, DELETE) on the shared image
/// paths to admin.
pub fn forward_target(req: &Request) -> Option<&'static str> {
    if !matches!(req.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        return None;
    }
    if is_under(&req.path, "/api/v1/images") && req.path.ends_with("/importing:retry") {
        return Some("importer");
    }
    if req.path == "/api/images/build" {
        return Some("importer");
    }
    if is_under(&req.path, "/api/v1/builds") && req.path.ends_with("/status") {
        return Some("progress");
    }

    (is_under(&req.path, "/api/v1/images") || is_under(&req.path, "/api/images")).then_some("admin")
}

fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub async fn handle<S: HttpSender>(req: &Request, ctx: &Context<'_>, sender: S) -> Response {
    let api = Api::for_path(&req.path);
    let result = async {
        let caller = &super::admit(req, ctx, caller)?;
        let segments = req.segments();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("GET", ["api", "v1", "images"]) => conditional::list(
                req,
                caller,
                ListQuery::from_v1,
                || catalog::revision(ctx),
                |q| catalog::list_v1(q, ctx, caller),
            ),
            ("GET", ["api", "v1", "images", id]) => catalog::detail_v1(parse_id(id)?, ctx, caller)
                .map(|res| conditional::detail(req, res)),
            ("GET", ["api", "v1", "images", id, "use"]) => {
                catalog::use_image(Api::V1, parse_id(id)?, ctx, caller)
            }
            ("GET", ["api", "v1", "images", id, "importing-details"]) => {
                imports::importing_details(parse_id(id)?, ctx, caller, sender).await
            }
            ("GET", ["api", "images"]) => conditional::list(
                req,
                caller,
                ListQuery::from_console,
                || catalog::revision(ctx),
                |q| catalog::list_console(q, ctx, caller),
            ),
            ("GET", ["api", "images", id]) => catalog::detail_console(parse_id(id)?, ctx, caller)
                .map(|res| conditional::detail(req, res)),
            ("GET", ["api", "images", id, "versions"]) => {
                catalog::versions_console(parse_id(id)?, ctx, caller)
            }
            ("GET", ["api", "images", id, "use"]) => {
                catalog::use_image(Api::Console, parse_id(id)?, ctx, caller)
            }
            ("GET", ["api", "v1", "builds"]) => builds::list(ctx, caller, sender).await,
            ("GET", ["api", "v1", "builds", id]) => builds::get(id, ctx, caller, sender).await,
            ("POST", ["api", "v1", "builds", id, "cancel"]) => {
                builds::cancel(id, ctx, caller, sender).await
            }
            ("GET", ["api", "v1", "harbor", "stats"]) => imports::harbor_stats(ctx, sender).await,
            ("GET", ["api", "v1", "openapi.json"]) => Ok(Response::json_bytes(
                200,
                super::openapi::SERVED.as_bytes().to_vec(),
            )),
            (_, path) => Err(unmatched(req, allowed_methods(path))),
        }
    };
    respond(api, result.await)
}

/// The methods catalog's own paths answer (their writes are forwarded before they get here).
fn allowed_methods(path: &[&str]) -> Option<&'static str> {
    match path {
        ["api", "v1", "builds", _, "cancel"] => Some("POST"),
        ["api", "v1", "images"]
        | ["api", "v1", "images", _]
        | ["api", "v1", "images", _, "use" | "importing-details"]
        | ["api", "images"]
        | ["api", "images", _]
        | ["api", "images", _, "versions" | "use"]
        | ["api", "v1", "builds"]
        | ["api", "v1", "builds", _]
        | ["api", "v1", "harbor", "stats"]
        | ["api", "v1", "openapi.json"] => Some("GET"),
        _ => None,
    }
}

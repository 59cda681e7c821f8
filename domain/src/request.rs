//! What every route reads from a request: its caller, its JSON body (and the body's size
//! limit), its `{id}` segments, and the 405 or 404 for a request no route takes.
//!
//! These sit above [`crate::http`] (the bare request and response) and
//! [`crate::envelope`] (whose errors they return), so both stay free of each other.

use serde::Deserialize;

use crate::auth::{self, Caller};
use crate::config::Context;
use crate::envelope::ApiError;
use crate::http::Request;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Authenticates the caller from the `Authorization` header.
pub fn caller(req: &Request, ctx: &Context<'_>) -> Result<Caller, ApiError> {
    let settings = ctx.settings.auth();
    auth::authenticate_with(
        req.header("authorization"),
        settings.jwt_secret.expose(),
        ctx.now,
        &settings.token_policy,
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))
}

/// Parses an `{id}` path segment.
pub fn parse_id(segment: &str) -> Result<i64, ApiError> {
    match segment.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::bad_param(
            "id",
            format!("'{segment}' is not a positive integer image id"),
        )),
    }
}

/// The error for a request no route took: 405 with the methods its path allows (the
/// `Allow` header), or 404 when no route has that path.
pub fn unmatched(req: &Request, allow: Option<&'static str>) -> ApiError {
    match allow {
        Some(allow) => ApiError::method_not_allowed(&req.method, allow),
        None => ApiError::no_route(&req.method, &req.path),
    }
}

/// Reads a JSON body: 415 unless it is JSON, 413 when too large, 400 when malformed.
pub fn json_body<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, ApiError> {
    let content_type = req.header("content-type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            415,
            format!(
                "send the body as application/json (got '{}')",
                if content_type.is_empty() {
                    "nothing"
                } else {
                    content_type
                }
            ),
        ));
    }
    if req.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

//! The HTTP API: one route table per component and the one pipeline every component's entry
//! point goes through. A request is authenticated (on the components whose every route
//! needs a user), the schema is brought up to date, the component's table routes it to a
//! service, and the result (or the error) is rendered in its API's envelope.
//!
//! Nothing below `api` knows about paths or methods; nothing imports `api`.

pub mod admin;
pub mod catalog;
pub mod importer;
pub mod openapi;
// Behind a feature: its gzip dependency alone adds ~14 KB to every other component.
#[cfg(feature = "portal")]
pub mod portal;
pub mod progress;

use crate::config::Context;
use crate::envelope::ApiError;
use crate::http::Request;
use crate::migrations;

/// The pipeline's first steps, before a component's route table runs: who is calling
/// (`authenticate`: a user's token on catalog, admin and importer; on progress nobody yet,
/// as its routes each check their own caller's secret), then a current schema. Every entry
/// point is the same four lines: `admit`, the route table, and
/// [`respond`](crate::envelope::respond) in the path's envelope.
fn admit<A>(
    req: &Request,
    ctx: &Context<'_>,
    authenticate: impl FnOnce(&Request, &Context<'_>) -> Result<A, ApiError>,
) -> Result<A, ApiError> {
    let caller = authenticate(req, ctx)?;
    migrations::ensure_for(ctx)?;
    Ok(caller)
}

/// The authentication of the components whose routes check their callers' secrets themselves.
fn anyone(_: &Request, _: &Context<'_>) -> Result<(), ApiError> {
    Ok(())
}

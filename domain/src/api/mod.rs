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
pub mod portal;
pub mod progress;

use crate::config::Context;
use crate::envelope::{Api, ApiError, respond};
use crate::http::{Request, Response};
use crate::migrations;

/// The pipeline. `authenticate` says who is calling (a user's token on catalog, admin and
/// importer; nobody yet on progress, whose routes each check their own secret), then the
/// schema is made current, `route` (the component's route table) answers, and its result
/// or error is rendered in `api`'s envelope.
async fn serve<A>(
    req: &Request,
    ctx: &Context<'_>,
    api: Api,
    authenticate: impl FnOnce(&Request, &Context<'_>) -> Result<A, ApiError>,
    route: impl AsyncFnOnce(A) -> Result<Response, ApiError>,
) -> Response {
    let result = async {
        let caller = authenticate(req, ctx)?;
        migrations::ensure_for(ctx)?;
        route(caller).await
    };
    respond(api, result.await)
}

/// The authentication of the components whose routes check their callers' secrets themselves.
fn anyone(_: &Request, _: &Context<'_>) -> Result<(), ApiError> {
    Ok(())
}

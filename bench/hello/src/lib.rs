//! The benchmark's baseline: answers `hello` with no database, variables or JSON, so its
//! latency is the host's own per-request cost (routing, instantiation, HTTP).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_req: Request) -> impl IntoResponse {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("hello")
        .build()
}

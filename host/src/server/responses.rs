//! The answers the host gives itself, without a guest: empty and fixed bodies, 404/500,
//! 503 at a component's concurrency limit, 400 for a request no component can take.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use wasmtime_wasi_http::WasiBody;

use crate::limits::ConcurrencyLimits;

pub(super) fn empty() -> WasiBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(super) fn full(bytes: impl Into<Bytes>) -> WasiBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A component at its concurrency limit: the client may retry shortly.
pub(super) fn busy() -> Response<WasiBody> {
    let mut r = Response::new(full(
        "server busy: too many requests in progress for this route; retry shortly\n",
    ));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = r.headers_mut();
    headers.insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(ConcurrencyLimits::RETRY_AFTER_SECONDS),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(super) fn status(code: StatusCode) -> Response<WasiBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
}

/// A 400 for a request the host cannot hand to a component, saying why. (Spin closes the
/// connection without an answer.)
pub(super) fn bad_request(reason: &str) -> Response<WasiBody> {
    let mut r = Response::new(full(format!("bad request: {reason}\n")));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    let headers = r.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

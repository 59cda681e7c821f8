//! Outbound `wasi:http` gated by `allowed_outbound_hosts` (Spin's rules), with in-process service chaining.
//!
//! Whether a destination is allowed is `allowed_hosts`' decision; this module applies it to
//! each request and sends the allowed ones: to another host under the host's timeouts, or
//! in-process to this app (relative URLs, `<component>.spin.internal`).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::allowed_hosts::{AllowedHosts, OutboundUrl, service_chaining_target};
use crate::limits::OutboundLimits;
use crate::server::Server;

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

/// Per-instance `wasi:http` hooks: permission checks and service chaining.
pub struct OutboundHttp {
    pub component_id: String,
    pub allowed: Arc<AllowedHosts>,
    pub server: Arc<Server>,
}

enum Target {
    /// A relative URL or `self.alt`: the app itself.
    SelfRequest,
    /// `http://<component>.spin.internal`: dispatched in-process.
    Chained(String),
    External,
}

impl OutboundHttp {
    fn deny(&self, pattern: &str) -> HttpError {
        tracing::error!(
            "component {id}: Outbound network destination not allowed: {pattern}. To allow this \
             request, add 'allowed_outbound_hosts = [\"{pattern}\"]' to [component.{id}] in spin.toml",
            id = self.component_id
        );
        HttpError::HttpRequestDenied
    }

    /// Spin's `RequestSender::prepare_request` permission logic.
    fn authorize(&self, request: &http::Request<WasiBody>) -> Result<Target, HttpError> {
        let uri = request.uri();
        let host = uri.authority().map(|a| a.host()).unwrap_or("");
        let is_self = host.is_empty() || host == "self.alt";
        let checked = if is_self {
            self.allowed.check_relative(&["http", "https"])
        } else {
            self.allowed.check_url(&uri.to_string(), "https")
        };
        let pattern = if is_self {
            format!("{}://self", uri.scheme_str().unwrap_or("http"))
        } else {
            OutboundUrl::parse(&uri.to_string(), "https")
                .map(|u| u.pattern())
                .unwrap_or_else(|_| uri.to_string())
        };
        match checked {
            Ok(true) => {}
            Ok(false) => return Err(self.deny(&pattern)),
            Err(e) => {
                tracing::error!(
                    "component {}: outbound request to {pattern} refused: {e}",
                    self.component_id
                );
                return Err(HttpError::HttpRequestDenied);
            }
        }
        Ok(if is_self {
            Target::SelfRequest
        } else if let Some(id) = service_chaining_target(host) {
            Target::Chained(id.to_string())
        } else {
            Target::External
        })
    }
}

fn boxed_done() -> Box<dyn Future<Output = Result<(), HttpError>> + Send> {
    Box::new(async { Ok(()) })
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        // Nothing here can act on the guest's report of response-consumption errors.
        drop(fut);
        let target = self.authorize(&request);
        let server = self.server.clone();
        let caller = self.component_id.clone();
        Box::new(async move {
            match target? {
                Target::Chained(id) => {
                    // Spin drops Host before dispatch, so the callee sees
                    // `spin-full-url: http://localhost/...`.
                    request.headers_mut().remove(http::header::HOST);
                    let resp = server.handle_chained(&caller, &id, request).await?;
                    Ok((resp, boxed_done()))
                }
                Target::SelfRequest => {
                    let resp = server.handle_self_request(request).await?;
                    Ok((resp, boxed_done()))
                }
                Target::External => {
                    send_external(request, options, &server.outbound_limits()).await
                }
            }
        })
    }
}

/// An outbound request to another host under the host's timeouts: wasmtime's own default
/// is 600 s for each, so a peer that never answers would hold the guest (and its client)
/// for ten minutes.
async fn send_external(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    limits: &OutboundLimits,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
> {
    let deadline = tokio::time::Instant::now() + limits.total_timeout;
    let send = wasmtime_wasi_http::default_send_request(request, Some(limits.cap(options)));
    let (resp, io) = tokio::time::timeout_at(deadline, send)
        .await
        .map_err(|_| HttpError::HttpResponseTimeout)??;
    let resp = resp.map(|b| -> UnsyncBoxBody<Bytes, HttpError> {
        DeadlineBody {
            inner: b.boxed_unsync(),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
        .boxed_unsync()
    });
    // The connection task ends with the deadline too (it would outlive a dropped body).
    let io = async move {
        tokio::time::timeout_at(deadline, io)
            .await
            .unwrap_or(Err(HttpError::HttpResponseTimeout))
    };
    Ok((
        resp,
        Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ))
}

/// A response body that fails with `HttpResponseTimeout` once the request's total time is up.
struct DeadlineBody {
    inner: UnsyncBoxBody<Bytes, HttpError>,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, HttpError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)));
        }
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that accepts connections, reads nothing back and, with `head`, sends a
    /// response head promising a body it never sends.
    async fn silent_peer(head: bool) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                if head {
                    use tokio::io::AsyncWriteExt;
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nx")
                        .await;
                }
                held.push(conn);
            }
        });
        addr
    }

    fn get(addr: std::net::SocketAddr) -> http::Request<WasiBody> {
        http::Request::get(format!("http://{addr}/"))
            .body(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    fn limits(first_byte_ms: u64, total_ms: u64) -> OutboundLimits {
        OutboundLimits {
            connect_timeout: std::time::Duration::from_secs(5),
            first_byte_timeout: std::time::Duration::from_millis(first_byte_ms),
            total_timeout: std::time::Duration::from_millis(total_ms),
        }
    }

    #[tokio::test]
    async fn a_peer_that_never_answers_times_out() {
        let addr = silent_peer(false).await;
        let started = std::time::Instant::now();
        let r = send_external(get(addr), None, &limits(300, 10_000)).await;
        let took = started.elapsed();
        assert!(r.is_err(), "a silent peer answered");
        assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
        // The total deadline applies even when the guest asks for longer.
        let started = std::time::Instant::now();
        let asked = RequestOptions {
            first_byte_timeout: Some(std::time::Duration::from_secs(3600)),
            ..Default::default()
        };
        let r = send_external(get(addr), Some(asked), &limits(10_000, 300)).await;
        assert!(
            matches!(r, Err(HttpError::HttpResponseTimeout)),
            "{:?}",
            r.err()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_cut_off_at_the_total_deadline() {
        let addr = silent_peer(true).await;
        let started = std::time::Instant::now();
        let (resp, io) = send_external(get(addr), None, &limits(10_000, 500))
            .await
            .expect("the head arrives");
        tokio::spawn(Box::into_pin(io));
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await;
        assert!(
            matches!(body, Err(HttpError::HttpResponseTimeout)),
            "{:?}",
            body.err()
        );
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
    }
}

//! Accepting connections and reading requests: hyper's HTTP/1 and HTTP/2 under the host's
//! limits on clients (header and body timeouts, sizes), so that a slow or oversized request
//! is refused before any guest runs.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow};
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use wasmtime_wasi_http::WasiBody;

use super::Server;
use super::dispatch::log_request;
use super::responses::full;
use crate::limits::{Limits, read_body};

impl Server {
    /// Binds, prints Spin's start-up banner on stdout, then serves until the process ends.
    pub async fn serve(self: Arc<Self>, listen: SocketAddr, limits: Limits) -> Result<()> {
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow!("{listen} is already in use")
            } else {
                anyhow!("Unable to listen on {listen}: {e}")
            }
        })?;
        let addr = listener.local_addr()?;
        let _ = self.local_addr.set(addr);
        self.print_banner(addr)?;

        let limits = Arc::new(limits);
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // hyper's header timer starts whenever the connection waits for a request head, so
        // it also closes idle keep-alive connections; `max_buf_size` bounds the head (431).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes as usize);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes);
        let builder = Arc::new(builder);

        loop {
            let (stream, client_addr) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Transient (e.g. EMFILE): keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Responses leave in several writes (head, then body chunks as the guest streams
            // them): with Nagle's algorithm each later write waits for the client's delayed
            // ACK, ~40 ms per response on Linux.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY for {client_addr}: {e}");
            }
            let server = self.clone();
            let limits = limits.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                // hyper-util reads the first bytes (HTTP/2 preface or not) before hyper's
                // header timer starts, with no deadline of its own: a silent client would
                // hold the connection forever.
                if !first_bytes_arrive(&stream, limits.header_read_timeout).await {
                    tracing::debug!("closing {client_addr}: nothing received in time");
                    return;
                }
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let server = server.clone();
                    let limits = limits.clone();
                    async move {
                        Ok::<_, Infallible>(server.handle_incoming(req, client_addr, &limits).await)
                    }
                });
                if let Err(e) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!("error serving connection from {client_addr}: {e}");
                }
            });
        }
    }

    /// A request from the network: its body is read (within the limits) before any guest
    /// runs, so an oversized or stalled body costs at most `max_body_bytes` and no instance.
    async fn handle_incoming(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client_addr: SocketAddr,
        limits: &Limits,
    ) -> Response<WasiBody> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        match read_body(body, limits.max_body_bytes, limits.body_read_timeout).await {
            Ok(bytes) => {
                self.handle(Request::from_parts(parts, full(bytes)), client_addr)
                    .await
            }
            Err(refused) => {
                let mut resp = Response::new(full(refused.reason(limits.max_body_bytes)));
                *resp.status_mut() = refused.status();
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                // The rest of the body is never read: the connection cannot be reused.
                resp.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                log_request(
                    &parts.method,
                    parts.uri.path(),
                    resp.status(),
                    None,
                    started,
                    None,
                );
                resp
            }
        }
    }

    fn print_banner(&self, addr: SocketAddr) -> Result<()> {
        let base = format!("http://{addr}");
        let mut out = std::io::stdout().lock();
        writeln!(out, "\nServing {base}")?;
        writeln!(out, "Available Routes:")?;
        for (component, path, wildcard) in self.router.routes() {
            let suffix = if wildcard { " (wildcard)" } else { "" };
            writeln!(out, "  {component}: {base}{path}{suffix}")?;
            if let Some(c) = self.components.get(component)
                && !c.description.is_empty()
            {
                writeln!(out, "    {}", c.description)?;
            }
        }
        // Scripts and tests wait for this line: make sure it leaves the process now.
        out.flush()?;
        Ok(())
    }
}

/// HTTP/2's connection preface, which hyper-util looks for in a connection's first bytes.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits (at most `timeout`) until the connection's first bytes tell HTTP/1 from HTTP/2, as
/// hyper-util's version sniffing will: false if the client sent nothing (or closed) by then.
async fn first_bytes_arrive(stream: &tokio::net::TcpStream, timeout: std::time::Duration) -> bool {
    let sniff = async {
        let mut buf = [0u8; 24];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n == buf.len() || buf[..n] != H2_PREFACE[..n] => return true,
                // Part of the preface: peek would return the same bytes at once, so wait.
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    };
    tokio::time::timeout(timeout, sniff).await.unwrap_or(false)
}

//! Where a request goes: Spin's well-known routes, a component's route (with Spin's
//! `spin-*` request headers and the per-component concurrency limit), service chaining
//! (`<id>.spin.internal`) and a component's requests to its own app, all in-process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri, uri::Authority};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::Server;
use super::responses::{bad_request, busy, full, status};
use crate::allowed_hosts::service_chaining_target;
use crate::routes::RouteMatch;

/// Client address Spin reports for service-chaining requests.
const CHAINED_CLIENT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

impl Server {
    /// Handles one inbound request end to end; never fails (errors become 500s).
    pub async fn handle(
        self: &Arc<Self>,
        mut req: Request<WasiBody>,
        client_addr: SocketAddr,
    ) -> Response<WasiBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let internal_host = strip_forbidden_headers(&mut req);

        let (resp, component) = if let Some(wk) = path.strip_prefix(WELL_KNOWN_PREFIX) {
            (self.well_known(wk), None)
        } else {
            match self.router.route(&path) {
                // Only the app's own components reach it under those names (service chaining).
                Some(_) if internal_host => (
                    bad_request(
                        "the Host header names an internal service (*.spin.internal), which \
                         only the app's own components can call",
                    ),
                    None,
                ),
                Some(m) => {
                    let resp = self.handle_route(req, &m, client_addr).await;
                    (resp, Some(m.component))
                }
                // Spin: unmatched paths get an empty 404.
                None => (status(StatusCode::NOT_FOUND), None),
            }
        };
        log_request(
            &method,
            &path,
            resp.status(),
            component.as_deref(),
            started,
            None,
        );
        resp
    }

    /// In-process service chaining: `http://<id>.spin.internal/...` from `caller`.
    pub async fn handle_chained(
        self: &Arc<Self>,
        caller: &str,
        target: &str,
        req: Request<WasiBody>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        if !self.components.contains_key(target) {
            tracing::error!(
                "component {caller} called http://{target}.spin.internal, but no routed component {target:?} exists"
            );
            return Err(HttpError::DestinationNotFound);
        }
        // Spin routes chained requests as if they matched the target's `/...` route.
        let m = RouteMatch::synthetic(target, &path);
        let resp = self.handle_route(req, &m, CHAINED_CLIENT_ADDR).await;
        log_request(
            &method,
            &path,
            resp.status(),
            Some(target),
            started,
            Some(caller),
        );
        Ok(resp)
    }

    /// A relative URL (or `self.alt`) from a component: served by this app, in-process.
    pub async fn handle_self_request(
        self: &Arc<Self>,
        mut req: Request<WasiBody>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let addr = self
            .local_addr
            .get()
            .copied()
            .ok_or(HttpError::HttpRequestUriInvalid)?;
        let host = HeaderValue::from_str(&addr.to_string())
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        *req.uri_mut() = Uri::builder()
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        req.headers_mut().insert(http::header::HOST, host);
        Ok(Box::pin(self.handle(req, addr)).await)
    }

    fn well_known(&self, path: &str) -> Response<WasiBody> {
        match path {
            "health" => Response::new(full("OK")),
            "info" => {
                let mut info = serde_json::json!({ "name": self.app_name });
                if !self.app_version.is_empty() {
                    info["version"] = self.app_version.clone().into();
                }
                let body = serde_json::to_vec_pretty(&info).unwrap_or_default();
                let mut r = Response::new(full(body));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            _ => status(StatusCode::NOT_FOUND),
        }
    }

    async fn handle_route(
        self: &Arc<Self>,
        mut req: Request<WasiBody>,
        m: &RouteMatch,
        client_addr: SocketAddr,
    ) -> Response<WasiBody> {
        let Some(component) = self.components.get(&m.component).cloned() else {
            tracing::error!("no runnable component {:?}", m.component);
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        if let Err(e) =
            set_req_uri(&mut req).and_then(|()| prepare_headers(&mut req, m, client_addr))
        {
            // No usable Host (e.g. an HTTP/1.0 request without one): the client's mistake.
            tracing::info!("component {}: bad request: {e:#}", component.id);
            return bad_request(&format!("{e:#}"));
        }
        let Ok(permit) = component.permits.clone().try_acquire_owned() else {
            tracing::warn!(
                "component {}: at its concurrency limit; answering 503",
                component.id
            );
            return busy();
        };
        match self.execute(&component, req, permit).await {
            Ok(resp) => resp,
            Err(e) => {
                // A trap or a guest that never answered: Spin's empty 500. The server goes on.
                // `{:#}` keeps the wasm backtrace but not a host (Rust) backtrace.
                tracing::error!(
                    "component {}: error processing request: {e:#}",
                    component.id
                );
                status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// Spin's `strip_forbidden_headers`: a client's `Host` naming a component's internal host
/// (`<id>.spin.internal`) is removed. Returns whether it was.
fn strip_forbidden_headers(req: &mut Request<WasiBody>) -> bool {
    let headers = req.headers_mut();
    // Transport information for this hop only; guests forwarding it would break things.
    headers.remove(http::header::CONNECTION);
    let internal = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| service_chaining_target(host).is_some());
    if internal {
        headers.remove(http::header::HOST);
    }
    internal
}

/// Spin's `set_req_uri`: absolute URI from the `Host` header (or the URI's own authority).
fn set_req_uri(req: &mut Request<WasiBody>) -> Result<()> {
    let header_authority = req
        .headers()
        .get(http::header::HOST)
        .map(|h| -> Result<Authority> {
            let s = h.to_str().context("'Host' header is not valid UTF-8")?;
            s.parse()
                .context("'Host' header contains an invalid authority")
        })
        .transpose()?;
    let mut parts = req.uri().clone().into_parts();
    let authority = match (header_authority, parts.authority.take()) {
        (None, None) => bail!("no 'Host' header present in request"),
        (Some(a), None) | (None, Some(a)) => a,
        (Some(a1), Some(a2)) => {
            if a1 != a2 {
                bail!("authority in 'Host' header does not match authority in URI");
            }
            a1
        }
    };
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts)?;
    Ok(())
}

/// The `spin-*` request headers, computed exactly as Spin's `compute_default_headers`.
pub fn spin_headers(
    uri: &Uri,
    host: &str,
    m: &RouteMatch,
    client_addr: SocketAddr,
) -> Vec<(String, String)> {
    let abs_path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let scheme = uri.scheme_str().unwrap_or("http");
    let mut h = vec![
        ("spin-path-info".to_string(), m.path_info.clone()),
        (
            "spin-full-url".to_string(),
            format!("{scheme}://{host}{abs_path}"),
        ),
        ("spin-matched-route".to_string(), m.based_route.clone()),
        ("spin-base-path".to_string(), "/".to_string()),
        ("spin-raw-component-route".to_string(), m.raw_route.clone()),
        (
            "spin-component-route".to_string(),
            m.raw_route_or_prefix().to_string(),
        ),
        ("spin-client-addr".to_string(), client_addr.to_string()),
    ];
    for (name, value) in &m.params {
        // SPIN_PATH_MATCH_<NAME> becomes a header name with `_` -> `-`, lower-cased.
        let key = format!(
            "spin-path-match-{}",
            name.replace('_', "-").to_ascii_lowercase()
        );
        h.push((key, value.clone()));
    }
    h
}

fn prepare_headers(
    req: &mut Request<WasiBody>,
    m: &RouteMatch,
    client_addr: SocketAddr,
) -> Result<()> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .map(|h| h.to_str().map(str::to_string))
        .transpose()
        .context("'Host' header is not valid UTF-8")?
        .unwrap_or_else(|| "localhost".to_string());
    // Spin appends its headers to the client's (it does not replace same-named ones).
    for (name, value) in spin_headers(req.uri(), &host, m, client_addr) {
        let (Ok(name), Ok(value)) = (name.parse::<HeaderName>(), HeaderValue::from_str(&value))
        else {
            continue;
        };
        req.headers_mut().append(name, value);
    }
    Ok(())
}

pub(super) fn log_request(
    method: &http::Method,
    path: &str,
    status: StatusCode,
    component: Option<&str>,
    started: Instant,
    chained_from: Option<&str>,
) {
    let component = component.unwrap_or("-");
    let elapsed = started.elapsed();
    match chained_from {
        Some(caller) => tracing::info!(
            target: "berth::request",
            "{method} {path} {} {component} (chained from {caller}) {:.1}ms",
            status.as_u16(),
            elapsed.as_secs_f64() * 1000.0
        ),
        None => tracing::info!(
            target: "berth::request",
            "{method} {path} {} {component} {:.1}ms",
            status.as_u16(),
            elapsed.as_secs_f64() * 1000.0
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::routes::Router;

    fn headers_for(route: &str, path: &str) -> HashMap<String, String> {
        let triggers = vec![crate::manifest::HttpTrigger {
            component: "c".into(),
            route: crate::manifest::Route::Path(route.into()),
        }];
        let router = Router::build(&triggers).unwrap();
        let m = router.route(path.split('?').next().unwrap()).unwrap();
        let uri: Uri = format!("http://example.com{path}").parse().unwrap();
        spin_headers(&uri, "example.com", &m, "127.0.0.1:8777".parse().unwrap())
            .into_iter()
            .collect()
    }

    #[test]
    fn spin_headers_for_wildcard_with_params() {
        let h = headers_for(
            "/base/:path_segment/:path_end/...",
            "/base/path/end/rest?key=value",
        );
        assert_eq!(
            h["spin-full-url"],
            "http://example.com/base/path/end/rest?key=value"
        );
        assert_eq!(h["spin-path-info"], "/rest");
        assert_eq!(h["spin-matched-route"], "/base/:path_segment/:path_end/...");
        assert_eq!(
            h["spin-raw-component-route"],
            "/base/:path_segment/:path_end/..."
        );
        assert_eq!(h["spin-component-route"], "/base/:path_segment/:path_end");
        assert_eq!(h["spin-base-path"], "/");
        assert_eq!(h["spin-client-addr"], "127.0.0.1:8777");
        assert_eq!(h["spin-path-match-path-segment"], "path");
        assert_eq!(h["spin-path-match-path-end"], "end");
        assert_eq!(h.len(), 9);
    }

    #[test]
    fn spin_headers_match_spin_facts_table() {
        let h = headers_for("/api/v1/images/...", "/api/v1/images");
        assert_eq!(h["spin-matched-route"], "/api/v1/images/...");
        assert_eq!(h["spin-path-info"], "");
        assert_eq!(h["spin-component-route"], "/api/v1/images");
        let h = headers_for("/api/v1/images:import", "/api/v1/images:import");
        assert_eq!(h["spin-matched-route"], "/api/v1/images:import");
        assert_eq!(h["spin-path-info"], "");
        assert_eq!(h["spin-component-route"], "/api/v1/images:import");
        let h = headers_for(
            "/api/v1/images:import/...",
            "/api/v1/images:import/bmdpbng/progress",
        );
        assert_eq!(h["spin-path-info"], "/bmdpbng/progress");
        assert_eq!(h["spin-component-route"], "/api/v1/images:import");

        // Service chaining to a private component.
        let m = RouteMatch::synthetic("admin", "/api/v1/images/7");
        let uri: Uri = "http://admin.spin.internal/api/v1/images/7"
            .parse()
            .unwrap();
        let h: HashMap<_, _> = spin_headers(&uri, "localhost", &m, CHAINED_CLIENT_ADDR)
            .into_iter()
            .collect();
        assert_eq!(h["spin-matched-route"], "/...");
        assert_eq!(h["spin-path-info"], "/api/v1/images/7");
        assert_eq!(h["spin-component-route"], "");
        assert_eq!(h["spin-full-url"], "http://localhost/api/v1/images/7");
    }
}

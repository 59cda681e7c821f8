//! The HTTP server: request IDs, authentication, faults, the request log and the
//! common response decoration.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, HeaderValue, Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::{ApiError, Resp};
use crate::model::{MAX_LOG, RequestRecord, State};
use crate::util::{Query, fmt_time, uuid_v4};
use crate::{DownMode, SimOptions, lock};

pub struct Inner {
    pub opts: SimOptions,
    pub addr: SocketAddr,
    pub state: Mutex<State>,
    pub client: Client<HttpConnector, Full<Bytes>>,
    pub shutdown: watch::Sender<bool>,
}

impl Inner {
    /// `ext_endpoint`, e.g. `https://harbor.local`.
    pub fn ext_endpoint(&self) -> String {
        format!(
            "{}://{}",
            self.opts.external_scheme, self.opts.external_host
        )
    }
    /// `harbor_hostname`: the endpoint without scheme, cut at the first `:`.
    pub fn harbor_hostname(&self) -> String {
        self.opts
            .external_host
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

pub async fn start(addr: SocketAddr, opts: SimOptions) -> anyhow::Result<Arc<Inner>> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (tx, mut rx) = watch::channel(false);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let mut state = State::new(&opts.default_projects);
    for image in &opts.seed_images {
        let repo_full = format!("{}/{}", image.project, image.repository);
        let manifest = crate::content::built_image(
            &format!("seed/{repo_full}:{}", image.tag),
            &image.repository,
            image.size,
        );
        state.push_image(&image.project, &repo_full, &manifest, &image.tag, false);
    }
    let inner = Arc::new(Inner {
        state: Mutex::new(state),
        opts,
        addr: local,
        client,
        shutdown: tx,
    });
    let server = inner.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let inner = server.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let inner = inner.clone();
                            async move { handle(inner, req).await }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                _ = rx.changed() => break,
            }
        }
    });
    Ok(inner)
}

/// A parsed API request.
pub struct Req {
    pub method: Method,
    pub raw_path: String,
    /// Path segments after `/api/v2.0`, decoded once (as the bundled nginx does).
    pub segs: Vec<String>,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The authenticated username; `None` runs the request as anonymous.
    pub user: Option<String>,
    pub request_id: String,
}

impl Req {
    pub fn require_auth(&self) -> Result<&str, ApiError> {
        self.user.as_deref().ok_or_else(ApiError::unauthorized)
    }

    pub fn header_true(&self, name: &str) -> bool {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
            .unwrap_or(false)
    }

    /// Parses the JSON body parameter `name` (go-swagger style errors).
    pub fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, ApiError> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(ApiError::unprocessable(format!(
                "{name} in body is required"
            )));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(format!("parsing {name} body from \"\" failed, because {e}"))
        })
    }
}

type HandlerResult = Result<Response<Full<Bytes>>, ConnectionDropped>;

#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for ConnectionDropped {}

async fn handle(inner: Arc<Inner>, req: hyper::Request<Incoming>) -> HandlerResult {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);

    if raw_path == "/_sim" || raw_path.starts_with("/_sim/") {
        let resp = crate::control::handle(&inner, &parts.method, &raw_path, &body);
        return Ok(finish(resp, None));
    }

    let request_id = parts
        .headers
        .get("X-Request-Id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(uuid_v4);
    let user = authenticate(&inner.opts, &parts.headers);
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        path: raw_path.clone(),
        query: raw_query.clone(),
        status: None,
        user: user.clone(),
        request_id: request_id.clone(),
        body: if body.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
            }))
        },
        at: fmt_time(Some(Utc::now())),
    };

    // faults
    let (latency, down, down_mode, injected) = {
        let mut st = lock(&inner.state);
        let f = &mut st.faults;
        let mut injected = None;
        if raw_path.starts_with("/api/")
            && let Some(ae) = f.api_errors.as_mut()
        {
            let prefix = ae.path_prefix.clone().unwrap_or_else(|| "/api/v2.0".into());
            if ae.count > 0 && raw_path.starts_with(&prefix) {
                ae.count -= 1;
                injected = Some(ApiError::for_status(ae.status, ae.message.clone()));
                if ae.count == 0 {
                    f.api_errors = None;
                }
            }
        }
        (f.latency_ms, f.down, f.down_mode, injected)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if down && raw_path.starts_with("/api/") {
        match down_mode {
            DownMode::Close => {
                log_request(&inner, record);
                return Err(ConnectionDropped);
            }
            DownMode::ServiceUnavailable => {
                let resp = Resp::error(&ApiError::for_status(503, None));
                record.status = Some(resp.status);
                log_request(&inner, record);
                return Ok(finish(resp, Some(&request_id)));
            }
        }
    }

    let resp = match injected {
        Some(e) => Resp::error(&e),
        None => {
            let result = route(
                &inner,
                &parts.method,
                &raw_path,
                raw_query,
                parts.headers,
                body,
                user,
                &request_id,
            );
            match result {
                Ok(r) => r,
                Err(e) => Resp::error(&e),
            }
        }
    };
    record.status = Some(resp.status);
    tracing::debug!(method = %record.method, path = %record.path, status = resp.status, "request");
    log_request(&inner, record);
    let head = parts.method == Method::HEAD;
    let mut resp = resp;
    if head {
        resp.body = None;
    }
    Ok(finish(resp, Some(&request_id)))
}

fn log_request(inner: &Inner, record: RequestRecord) {
    let mut st = lock(&inner.state);
    if st.requests.len() >= MAX_LOG {
        st.requests.remove(0);
    }
    st.requests.push(record);
}

#[allow(clippy::too_many_arguments)]
fn route(
    inner: &Arc<Inner>,
    method: &Method,
    raw_path: &str,
    raw_query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    user: Option<String>,
    request_id: &str,
) -> Result<Resp, ApiError> {
    // the simulated build runner (not Harbor) shares the listener
    if raw_path.trim_end_matches('/') == crate::runner::RUNNER_JOBS_PATH {
        return Ok(crate::runner::handle(inner, method, &headers, &body));
    }
    if raw_path == crate::registry::NOTIFICATIONS_PATH && method == Method::POST {
        return Ok(crate::registry::handle(inner, &headers, &body));
    }
    let not_found = || ApiError::not_found(format!("path {raw_path} was not found"));
    // the bundled nginx decodes the URI once before core routes it (§0.6)
    let decoded = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8_lossy()
        .into_owned();
    if let Some(r) =
        crate::contents::registry_api(inner, method.as_str(), &decoded, user.as_deref())
    {
        return Ok(r);
    }
    let Some(rest) = decoded.strip_prefix("/api/v2.0/") else {
        return Err(not_found());
    };
    let segs: Vec<String> = rest.split('/').map(str::to_string).collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let req = Req {
        method: method.clone(),
        raw_path: raw_path.to_string(),
        segs,
        query: Query::parse(raw_query.as_deref()),
        headers,
        body,
        user,
        request_id: request_id.to_string(),
    };
    crate::api::dispatch(inner, &req).unwrap_or_else(|| Err(not_found()))
}

/// Basic auth against the configured user; anything else is anonymous.
fn authenticate(opts: &SimOptions, headers: &HeaderMap) -> Option<String> {
    let v = headers.get("Authorization")?.to_str().ok()?;
    let (scheme, cred) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(cred.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (u, p) = decoded.split_once(':')?;
    if u == opts.username && p == opts.password {
        Some(u.to_string())
    } else {
        None
    }
}

fn finish(resp: Resp, request_id: Option<&str>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(resp.status);
    let headers = builder.headers_mut().expect("builder");
    if let Some(id) = request_id
        && let Ok(v) = HeaderValue::from_str(id)
    {
        headers.insert("X-Request-ID", v);
    }
    for (k, v) in &resp.headers {
        if let (Ok(name), Ok(val)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(name, val);
        }
    }
    let body = match resp.body {
        Some((bytes, ct)) => {
            headers.insert("Content-Type", HeaderValue::from_static(ct));
            bytes
        }
        None => Bytes::new(),
    };
    builder.body(Full::new(body)).expect("response")
}

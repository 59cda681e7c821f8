//! A closed-loop HTTP/1.1 load generator (wrk's model): `concurrency` keep-alive connections,
//! each sending its next request as soon as the previous answer is read, for a bounded time
//! and number of requests. Latencies are recorded per request, after a warm-up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request to send.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub authorization: Option<Arc<str>>,
    pub body: Option<Bytes>,
}

impl Req {
    pub fn get(path: String, authorization: &Arc<str>) -> Req {
        Req {
            method: Method::GET,
            path,
            authorization: Some(authorization.clone()),
            body: None,
        }
    }
}

/// What a scenario sends; `n` numbers the requests of one run from 0.
pub trait Scenario: Send + Sync {
    fn request(&self, n: u64) -> Req;
    /// Called for every answered request (warm-up included) with its status.
    fn answered(&self, _n: u64, _status: u16) {}
}

#[derive(Clone, Copy)]
pub struct Plan {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub max_requests: u64,
}

/// Measured requests (after warm-up).
pub struct Outcome {
    /// Sorted latencies in microseconds.
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn empty() -> Outcome {
        Outcome {
            latencies_us: Vec::new(),
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Pools another run's requests into this one (rounds of the same scenario).
    pub fn merge(&mut self, other: Outcome) {
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.elapsed += other.elapsed;
    }

    pub fn requests(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// The `p`th percentile (nearest rank), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies_us.len()) - 1;
        self.latencies_us[i] as f64 / 1000.0
    }

    pub fn per_second(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer: (status, body).
pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    host: &HeaderValue,
    req: &Req,
) -> Result<(u16, Bytes)> {
    let mut builder = Request::builder()
        .method(req.method.clone())
        .uri(req.path.as_str())
        .header(header::HOST, host.clone());
    if let Some(auth) = &req.authorization {
        builder = builder.header(header::AUTHORIZATION, auth.as_ref());
    }
    if req.body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    let request = builder.body(Full::new(req.body.clone().unwrap_or_default()))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// One GET on a fresh connection (start-up probes, spot checks).
pub async fn get_once(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> Result<(u16, Bytes)> {
    let mut sender = connect(addr).await?;
    let req = Req {
        method: Method::GET,
        path: path.to_string(),
        authorization: authorization.map(Arc::from),
        body: None,
    };
    send(&mut sender, &host_header(addr), &req).await
}

fn host_header(addr: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&addr.to_string()).expect("a socket address is a valid header")
}

struct WorkerResult {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Drives `scenario` against `addr` as `plan` says; `next` numbers the requests (shared by
/// the rounds of one scenario, so they continue where the last round stopped).
pub async fn run(
    addr: SocketAddr,
    scenario: Arc<dyn Scenario>,
    plan: Plan,
    next: Arc<AtomicU64>,
) -> Result<Outcome> {
    let measured = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let mut workers = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let scenario = scenario.clone();
        let next = next.clone();
        let measured = measured.clone();
        workers.push(tokio::spawn(async move {
            worker(
                addr,
                scenario,
                next,
                measured,
                measure_from,
                end,
                plan.max_requests,
            )
            .await
        }));
    }
    let mut out = Outcome {
        latencies_us: Vec::new(),
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for w in workers {
        let r = w
            .await
            .map_err(|e| anyhow!("load worker panicked: {e}"))??;
        out.latencies_us.extend(r.latencies_us);
        out.errors += r.errors;
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
    }
    out.elapsed = Instant::now().saturating_duration_since(measure_from);
    out.latencies_us.sort_unstable();
    Ok(out)
}

async fn worker(
    addr: SocketAddr,
    scenario: Arc<dyn Scenario>,
    next: Arc<AtomicU64>,
    measured: Arc<AtomicU64>,
    measure_from: Instant,
    end: Instant,
    max_requests: u64,
) -> Result<WorkerResult> {
    let host = host_header(addr);
    let mut result = WorkerResult {
        latencies_us: Vec::with_capacity(16_384),
        errors: 0,
        first_error: None,
    };
    let mut sender = connect(addr).await?;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let in_measure = now >= measure_from;
        if in_measure && measured.fetch_add(1, Ordering::Relaxed) >= max_requests {
            break;
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        let req = scenario.request(n);
        let sent = Instant::now();
        let answer = send(&mut sender, &host, &req).await;
        let took = sent.elapsed();
        let error = match &answer {
            Ok((status, body)) => {
                scenario.answered(n, *status);
                (!(200..300).contains(status)).then(|| {
                    format!(
                        "{} {} -> {status}: {}",
                        req.method,
                        req.path,
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )
                })
            }
            Err(e) => Some(format!("{} {}: {e:#}", req.method, req.path)),
        };
        if in_measure {
            result
                .latencies_us
                .push(took.as_micros().min(u32::MAX as u128) as u32);
            if let Some(e) = error.as_ref() {
                result.errors += 1;
                if result.first_error.is_none() {
                    result.first_error = Some(e.clone());
                }
            }
        }
        if answer.is_err() {
            // The connection may be gone: start a new one.
            sender = connect(addr).await?;
        }
    }
    Ok(result)
}

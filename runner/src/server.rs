//! The job protocol over HTTP/1.1:
//!
//! - `POST /runner/jobs`: a job, signed (`X-Berth-Signature` over the body). 202 accepted
//!   (queued or running), 400 malformed, 401 bad signature, 409 already finished, 429 when
//!   the queue is full.
//! - `POST /runner/jobs/{id}/cancel`: `{"build_id": id, "reason": …}`, signed over the body.
//!   Stops the build; 200 with the state it was in, 404 if unknown.
//! - `GET /runner/jobs/{id}`: the job's state and log tail, signed over the path.
//! - `GET /runner/health`: running and queued counts (no job data).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::jobs::{JobSpec, Refusal, Runner};
use berth_domain::auth::signature_matches;

/// Largest request body read (a job with a 64 KiB Dockerfile fits easily).
const MAX_BODY_BYTES: usize = 256 * 1024;

pub async fn serve(runner: Arc<Runner>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(runner.config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", runner.config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, max_concurrent = runner.config.max_concurrent, max_queued = runner.config.max_queued, "berth-runner serving");
    println!("berth-runner listening on http://{addr}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let runner = runner.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let runner = runner.clone();
                async move { Ok::<_, Infallible>(handle(&runner, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

fn error(status: u16, message: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, json!({"error": message.into()}))
}

async fn handle(runner: &Arc<Runner>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let sig = req
        .headers()
        .get("x-berth-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                413,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            );
        }
    };
    let secret = runner.config.secret.as_str();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["runner", "health"]) => {
            let (running, queued) = runner.load();
            reply(
                200,
                json!({"running": running, "queued": queued,
                "max_concurrent": runner.config.max_concurrent, "max_queued": runner.config.max_queued}),
            )
        }
        (&Method::POST, ["runner", "jobs"]) => {
            if !signature_matches(secret, sig.as_deref(), &body) {
                tracing::warn!("refused a job with a bad signature");
                return error(
                    401,
                    "bad signature: send X-Berth-Signature: sha256=<hex HMAC-SHA256(runner_secret, body)>",
                );
            }
            let spec: JobSpec = match serde_json::from_slice(&body) {
                Ok(s) => s,
                Err(e) => return error(400, format!("invalid job: {e}")),
            };
            match runner.submit(spec) {
                Ok(job) => reply(
                    202,
                    json!({"accepted": true, "job_id": job.spec.build_id, "state": job.state()}),
                ),
                Err(Refusal::Invalid(m)) => error(400, m),
                Err(Refusal::Finished) => error(409, "this build already ran on this runner"),
                Err(Refusal::QueueFull { waiting }) => {
                    let mut r = error(
                        429,
                        format!("the build queue is full ({waiting} builds waiting); retry later"),
                    );
                    r.headers_mut()
                        .insert("retry-after", http::HeaderValue::from_static("30"));
                    r
                }
            }
        }
        (&Method::POST, ["runner", "jobs", id, "cancel"]) => {
            if !signature_matches(secret, sig.as_deref(), &body) {
                return error(401, "bad signature");
            }
            #[derive(Deserialize)]
            struct Cancel {
                build_id: String,
                #[serde(default)]
                reason: Option<String>,
            }
            let cancel: Cancel = match serde_json::from_slice(&body) {
                Ok(c) => c,
                Err(e) => return error(400, format!("invalid cancel request: {e}")),
            };
            // The id is in the signed body, so a signature is good for that build only.
            if cancel.build_id != *id {
                return error(400, "build_id in the body is not the build in the path");
            }
            let reason: String = cancel
                .reason
                .unwrap_or_else(|| "cancelled by berth".into())
                .chars()
                .take(500)
                .collect();
            match runner.cancel(id, &reason) {
                Some(before) => reply(
                    200,
                    json!({"build_id": id, "was": before, "cancelled": !before.is_final()}),
                ),
                None => error(404, format!("no build {id} on this runner")),
            }
        }
        (&Method::GET, ["runner", "jobs", id]) => {
            if !signature_matches(secret, sig.as_deref(), path.as_bytes()) {
                return error(401, "bad signature: sign the request path");
            }
            match runner.job(id) {
                Some(job) => reply(
                    200,
                    json!({"build_id": id, "mode": job.spec.mode, "target": job.spec.target(),
                    "status": job.state(), "log_tail": job.log_text()}),
                ),
                None => error(404, format!("no build {id} on this runner")),
            }
        }
        (_, ["runner", ..]) => error(405, "method not allowed"),
        _ => error(404, "not found"),
    }
}

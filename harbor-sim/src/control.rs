//! The `/_sim/*` control API (not part of Harbor; no auth).

use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};

use crate::http::Resp;
use crate::lock;
use crate::server::Inner;
use crate::{Faults, FaultsPatch, RunnerControl, RunnerControlPatch, UpstreamImage};

fn bad(msg: String) -> Resp {
    Resp::json(400, &json!({ "error": msg }))
}

pub fn handle(inner: &Arc<Inner>, method: &Method, path: &str, body: &[u8]) -> Resp {
    let path = path.trim_end_matches('/');
    match (method.as_str(), path) {
        ("GET", "/_sim/state") => {
            let snap = lock(&inner.state).snapshot();
            Resp::json(200, &serde_json::to_value(snap).unwrap_or_default())
        }
        ("GET", "/_sim/faults") => faults_response(&lock(&inner.state).faults),
        ("POST", "/_sim/faults") | ("PUT", "/_sim/faults") | ("PATCH", "/_sim/faults") => {
            let patch: FaultsPatch = match serde_json::from_slice(body) {
                Ok(p) => p,
                Err(e) => return bad(format!("invalid faults: {e}")),
            };
            let mut st = lock(&inner.state);
            st.faults.apply(patch);
            faults_response(&st.faults)
        }
        ("DELETE", "/_sim/faults") => {
            let mut st = lock(&inner.state);
            st.faults = Faults::default();
            faults_response(&st.faults)
        }
        ("GET", "/_sim/upstream") => {
            let st = lock(&inner.state);
            Resp::json(200, &serde_json::to_value(&st.upstream).unwrap_or_default())
        }
        ("POST", "/_sim/upstream") => {
            // one image or an array of images
            let value: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return bad(format!("invalid upstream image: {e}")),
            };
            let images: Result<Vec<UpstreamImage>, _> = match value {
                Value::Array(_) => serde_json::from_value(value),
                v => serde_json::from_value(v).map(|i| vec![i]),
            };
            let images = match images {
                Ok(i) => i,
                Err(e) => return bad(format!("invalid upstream image: {e}")),
            };
            if images
                .iter()
                .any(|i| i.repository.is_empty() || i.tag.is_empty())
            {
                return bad("repository and tag are required".into());
            }
            let mut st = lock(&inner.state);
            for i in images {
                st.define_upstream(i);
            }
            Resp::json(200, &serde_json::to_value(&st.upstream).unwrap_or_default())
        }
        ("DELETE", "/_sim/upstream") => {
            lock(&inner.state).upstream.clear();
            Resp::json(200, &json!([]))
        }
        ("GET", "/_sim/runner") => runner_response(&lock(&inner.state).runner),
        ("POST", "/_sim/runner") | ("PUT", "/_sim/runner") | ("PATCH", "/_sim/runner") => {
            let patch: RunnerControlPatch = match serde_json::from_slice(body) {
                Ok(p) => p,
                Err(e) => return bad(format!("invalid runner control: {e}")),
            };
            let mut st = lock(&inner.state);
            st.runner.apply(patch);
            runner_response(&st.runner)
        }
        ("DELETE", "/_sim/runner") => {
            let mut st = lock(&inner.state);
            st.runner = RunnerControl::default();
            runner_response(&st.runner)
        }
        ("GET", "/_sim/runner/jobs") => {
            let st = lock(&inner.state);
            Resp::json(
                200,
                &serde_json::to_value(&st.runner_jobs).unwrap_or_default(),
            )
        }
        ("DELETE", "/_sim/runner/jobs") => {
            lock(&inner.state).runner_jobs.clear();
            Resp::json(200, &json!([]))
        }
        ("DELETE", "/_sim/requests") => {
            lock(&inner.state).requests.clear();
            Resp::json(200, &json!({"requests": 0}))
        }
        (m, "/_sim/scans") => crate::contents::control(inner, m, body),
        _ => Resp::json(
            404,
            &json!({"error": format!("no control endpoint {method} {path}")}),
        ),
    }
}

fn runner_response(r: &RunnerControl) -> Resp {
    Resp::json(200, &serde_json::to_value(r).unwrap_or_default())
}

fn faults_response(f: &Faults) -> Resp {
    Resp::json(200, &serde_json::to_value(f).unwrap_or_default())
}

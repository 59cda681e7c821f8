//! What each scenario sends: the catalog reads a user makes (lists, filters, search, detail),
//! Harbor's webhooks and the workers' progress callbacks, each request a function of its
//! number so that every run, and every host, sends the same ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{Context, Result};
use berth_domain::db::Db;
use bytes::Bytes;
use http::Method;

use crate::load::{Req, Scenario};
use crate::{WEBHOOK_SECRET, WORKER_TOKEN, now_unix, process, seed};

/// Layers per progress target: callbacks to one import touch different layers concurrently.
const LAYERS: u64 = 8;

/// A scenario whose requests are a function of their number.
struct Requests<F>(F);

impl<F: Fn(u64) -> Req + Send + Sync> Scenario for Requests<F> {
    fn request(&self, n: u64) -> Req {
        (self.0)(n)
    }
}

fn requests(f: impl Fn(u64) -> Req + Send + Sync + 'static) -> Arc<dyn Scenario> {
    Arc::new(Requests(f))
}

/// Spreads request numbers over a sample without repeating a short cycle.
fn spread(n: u64, len: usize) -> usize {
    (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) as usize % len.max(1)
}

const SEARCH_TERMS: &[&str] = &[
    "torch-train",
    "cuda12.4-py3.11",
    "vllm-serving",
    "jax",
    "notebook-42",
    "tensorflow-infer-1",
    "py3.12",
    "finetune",
];
const FILTER_FRAMEWORKS: &[&str] = &["pytorch", "tensorflow", "vllm", "jax"];

pub fn scenario(name: &str, seeded: &seed::Seeded, token: &Arc<str>) -> Arc<dyn Scenario> {
    let token = token.clone();
    match name {
        "hello" => requests(|_| Req {
            method: Method::GET,
            path: process::HELLO_ROUTE.into(),
            authorization: None,
            body: None,
        }),
        "list" => requests(move |n| {
            Req::get(
                format!(
                    "/api/v1/images?page_size=20&orderBy=created_at&order=desc&page={}",
                    1 + n % 5
                ),
                &token,
            )
        }),
        "list-3-filters" => requests(move |n| {
            let f = FILTER_FRAMEWORKS[n as usize % FILTER_FRAMEWORKS.len()];
            Req::get(
                format!(
                    "/api/v1/images?framework={f}&chip_type=GPU&applicable_scope=%E8%AE%AD%E7%BB%83&page_size=20"
                ),
                &token,
            )
        }),
        "search" => requests(move |n| {
            let term = SEARCH_TERMS[n as usize % SEARCH_TERMS.len()];
            Req::get(format!("/api/v1/images?name={term}&page_size=20"), &token)
        }),
        "grouped" => requests(move |n| {
            Req::get(
                format!("/api/v1/images?flat=false&page_size=20&page={}", 1 + n % 3),
                &token,
            )
        }),
        "detail" => {
            let ids = seeded.visible_ids.clone();
            requests(move |n| {
                Req::get(
                    format!("/api/v1/images/{}", ids[spread(n, ids.len())]),
                    &token,
                )
            })
        }
        "importing" => {
            let ids = seeded.finished_import_ids.clone();
            requests(move |n| {
                Req::get(
                    format!(
                        "/api/v1/images/{}/importing-details",
                        ids[spread(n, ids.len())]
                    ),
                    &token,
                )
            })
        }
        "webhooks" => {
            let executions = seeded.finished_executions.clone();
            let auth: Arc<str> = Arc::from(WEBHOOK_SECRET);
            requests(move |n| {
                // Nine in ten about finished imports (looked up, already final), one in ten
                // about executions berth never started (ignored).
                let execution = if n % 10 == 9 {
                    9_000_000_000 + n as i64
                } else {
                    executions[spread(n, executions.len())]
                };
                let body = serde_json::json!({
                    "type": "REPLICATION",
                    "occur_at": now_unix(),
                    "operator": "MANUAL",
                    "event_data": {"replication": {
                        "harbor_hostname": "harbor.local",
                        "job_status": "Success",
                        "execution_id": execution,
                        "trigger_type": "MANUAL",
                        "policy_creator": "admin",
                    }},
                });
                Req {
                    method: Method::POST,
                    path: "/api/v1/hooks/harbor".into(),
                    authorization: Some(auth.clone()),
                    body: Some(Bytes::from(body.to_string())),
                }
            })
        }
        other => unreachable!("scenario {other}"),
    }
}

/// Worker progress callbacks on a few running imports, each to one of [`LAYERS`] layers
/// with a rising percentage; remembers the highest percentage each layer was acknowledged
/// with, to check afterwards that no acknowledged update was lost.
pub struct Progress {
    targets: Vec<String>,
    paths: Vec<String>,
    auth: Arc<str>,
    acknowledged: Vec<AtomicU8>,
}

impl Progress {
    pub fn new(targets: &[String]) -> Progress {
        Progress {
            targets: targets.to_vec(),
            paths: targets
                .iter()
                .map(|t| {
                    format!(
                        "/api/v1/images:import/{}/progress",
                        berth_domain::services::imports::progress_name(t)
                    )
                })
                .collect(),
            auth: Arc::from(format!("Bearer {WORKER_TOKEN}")),
            acknowledged: (0..targets.len() as u64 * LAYERS)
                .map(|_| AtomicU8::new(0))
                .collect(),
        }
    }

    /// (target, layer, percentage) of request `n`.
    fn step(&self, n: u64) -> (usize, u64, u8) {
        let t = self.targets.len().max(1) as u64;
        let round = n / (t * LAYERS);
        ((n % t) as usize, (n / t) % LAYERS, 1 + (round % 98) as u8)
    }

    /// Compares every layer's stored progress with the highest acknowledged one.
    pub fn verify(&self, db: &dyn Db) -> Result<(usize, usize)> {
        let mut lost = 0;
        let mut checked = 0;
        for (i, target) in self.targets.iter().enumerate() {
            let r = berth_domain::image_ref::ImageRef::parse(target)
                .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
            let rows = db
                .query(
                    "SELECT layers_detail FROM imports WHERE image_id = \
                     (SELECT id FROM images WHERE registry = ? AND repository = ? AND tag = ?) \
                     ORDER BY id DESC LIMIT 1",
                    &[
                        r.registry.as_str().into(),
                        r.repository.as_str().into(),
                        r.tag.as_str().into(),
                    ],
                )
                .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
            let layers = rows
                .iter()
                .next()
                .and_then(|row| row.opt_str("layers_detail").map(str::to_owned))
                .with_context(|| format!("{target}: no import"))?;
            let layers: serde_json::Value = serde_json::from_str(&layers)?;
            for l in 0..LAYERS {
                let want =
                    self.acknowledged[i * LAYERS as usize + l as usize].load(Ordering::Relaxed);
                if want == 0 {
                    continue;
                }
                checked += 1;
                let got = layers[format!("sha256:layer{l}")]["progress"]
                    .as_u64()
                    .unwrap_or(0);
                if got < want as u64 {
                    lost += 1;
                }
            }
        }
        Ok((checked, lost))
    }
}

impl Scenario for Progress {
    fn request(&self, n: u64) -> Req {
        let (t, layer, pct) = self.step(n);
        let body = format!(
            "{{\"sha256:layer{layer}\": {{\"status\": \"downloading\", \"progress\": {pct}}}}}"
        );
        Req {
            method: Method::PUT,
            path: self.paths[t].clone(),
            authorization: Some(self.auth.clone()),
            body: Some(Bytes::from(body)),
        }
    }

    fn answered(&self, n: u64, status: u16) {
        if status == 200 {
            let (t, layer, pct) = self.step(n);
            self.acknowledged[t * LAYERS as usize + layer as usize]
                .fetch_max(pct, Ordering::Relaxed);
        }
    }
}

//! `berth bench --faults`: imports under load and faults. Many concurrent imports of fewer
//! distinct sources while Harbor's webhooks are duplicated, reordered and partly lost, a
//! storm of replayed webhooks on top, then the host killed (`kill -9`) mid-import and
//! restarted on the same state. It prints what was lost, what Harbor ran twice and how every
//! import ended (docs/security.md).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_domain::auth::{Claims, Role, issue_token};
use harbor_sim::{FaultsPatch, SimOptions, Simulator, WebhookFaultsPatch};
use serde_json::{Value, json};

use super::process::{Host, HostConfig};
use super::{JWT_SECRET, WEBHOOK_SECRET, WORKER_TOKEN};

#[derive(clap::Args, Clone)]
pub struct FaultArgs {
    /// Concurrent import requests in the first phase.
    #[arg(long, default_value_t = 1000)]
    pub imports: usize,
    /// Distinct sources among them (the rest ask for the same images again).
    #[arg(long, default_value_t = 100)]
    pub sources: usize,
    /// Webhooks replayed to berth on top of Harbor's own (duplicates, shuffled, some lost).
    #[arg(long, default_value_t = 10_000)]
    pub webhooks: usize,
    /// Share of webhooks lost, in percent (Harbor's deliveries and the replay alike).
    #[arg(long, default_value_t = 10)]
    pub loss_percent: u8,
    /// Imports started just before the host is killed in the second phase.
    #[arg(long, default_value_t = 100)]
    pub crash_imports: usize,
    /// How long every import gets to end, per phase.
    #[arg(long, default_value = "300", value_parser = super::parse_seconds)]
    pub deadline: Duration,
}

/// What one phase found.
#[derive(Default)]
struct Tally {
    requests: usize,
    accepted: usize,
    retried_503: usize,
    server_errors: usize,
    images: usize,
    ready: usize,
    failed_with_reason: usize,
    failed_without_reason: usize,
    unfinished: usize,
    changed_by_replay: usize,
    executions: usize,
    duplicated_executions: usize,
    took: Duration,
}

pub fn run(args: &FaultArgs, manifest: &Path, hello: &Path, dir: &Path) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args, manifest, hello, dir))
}

async fn run_async(args: &FaultArgs, manifest: &Path, hello: &Path, dir: &Path) -> Result<()> {
    let sim = Simulator::start("127.0.0.1:0".parse()?, SimOptions::default()).await?;
    sim.set_faults(FaultsPatch {
        webhooks: Some(WebhookFaultsPatch {
            duplicate: Some(true),
            reorder: Some(true),
            loss_percent: Some(args.loss_percent),
            ..Default::default()
        }),
        ..Default::default()
    });
    let state = dir.join("faults");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state)?;
    let bench_manifest = dir.join("faults-spin.toml");
    super::process::write_manifest(manifest, hello, &bench_manifest)?;
    // A fixed port: the restarted host must be where Harbor's webhooks go.
    let listen: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let public = format!("http://{listen}");
    let opts = sim.options().clone();
    let variables: Vec<(String, String)> = vec![
        ("jwt_secret".into(), JWT_SECRET.into()),
        ("harbor_url".into(), sim.url()),
        ("runner_url".into(), sim.url()),
        ("harbor_username".into(), opts.username.clone()),
        ("harbor_password".into(), opts.password.clone()),
        ("harbor_webhook_secret".into(), WEBHOOK_SECRET.into()),
        ("worker_token".into(), WORKER_TOKEN.into()),
        ("runner_secret".into(), opts.runner_secret.clone()),
        ("runner_token".into(), "bench-runner-token".into()),
        (
            "registry_secret_key".into(),
            "bench-registry-secret-key".into(),
        ),
        ("public_url".into(), public.clone()),
        (
            "webhook_url".into(),
            format!("{public}/api/v1/hooks/harbor"),
        ),
    ];
    let cache = dir.join("compile-cache");
    let cfg = HostConfig {
        manifest: &bench_manifest,
        state_dir: &state,
        compile_cache: &cache,
        variables: &variables,
        listen,
        kind: super::HostKind::Berth,
        spin: Path::new("spin"),
    };
    let mut host = Host::start(&cfg).await?;
    let client = Client::new(listen);

    // Phase 1: imports under webhook faults, then a replayed-webhook storm.
    let started = Instant::now();
    let sources: Vec<String> = (0..args.sources)
        .map(|i| format!("docker.io/loadtest/image{i}:1.{i}"))
        .collect();
    let wanted: Vec<String> = (0..args.imports)
        .map(|i| sources[i % sources.len()].clone())
        .collect();
    let mut tally = Tally::default();
    let executions_before = sim.state().executions.len();
    let ids = client.clone().import_all(wanted, &mut tally).await?;
    let before = client
        .wait_until_final(&ids, args.deadline, &mut tally)
        .await?;
    // Then every event again, late, duplicated and shuffled: nothing final may change.
    let replayed = replay_webhooks(&sim, &client, args.webhooks, args.loss_percent).await?;
    let after = client
        .wait_until_final(&ids, args.deadline, &mut Tally::default())
        .await?;
    tally.changed_by_replay = ids
        .iter()
        .filter(|id| before.get(id) != after.get(id))
        .count();
    count_executions(&sim, executions_before, &mut tally);
    tally.took = started.elapsed();
    print_tally(
        &format!(
            "{} concurrent imports of {} sources, Harbor's webhooks duplicated, reordered, {} % lost, \
             plus {} replayed webhooks ({} sent)",
            args.imports, args.sources, args.loss_percent, args.webhooks, replayed
        ),
        &tally,
    );
    let phase1_ok = tally.unfinished == 0
        && tally.changed_by_replay == 0
        && tally.failed_without_reason == 0
        && tally.duplicated_executions == 0
        && tally.server_errors == 0;

    // Phase 2: kill -9 while imports are being started and replicated; restart; all finish.
    let started = Instant::now();
    let crash_sources: Vec<String> = (0..args.crash_imports)
        .map(|i| format!("docker.io/crashtest/image{i}:2.{i}"))
        .collect();
    let mut tally = Tally::default();
    let executions_before = sim.state().executions.len();
    let before_kill = {
        let client = client.clone();
        let wanted = crash_sources.clone();
        tokio::spawn(async move {
            let mut t = Tally::default();
            let ids = client.import_all(wanted, &mut t).await.unwrap_or_default();
            (ids, t)
        })
    };
    // Let part of them be claimed and sent to Harbor, then pull the plug.
    let kill_after = executions_before + (args.crash_imports / 4).max(1);
    let waiting = Instant::now();
    while sim.state().executions.len() < kill_after && waiting.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    host.kill();
    let (accepted_before, partial) = before_kill.await?;
    let restarted = Instant::now();
    let host = Host::start(&cfg).await?;
    let restart_took = restarted.elapsed();
    // A client whose request died with the host asks again; the rest just read.
    let mut ids: HashSet<i64> = accepted_before.iter().copied().collect();
    let retried = client.clone().import_all(crash_sources, &mut tally).await?;
    ids.extend(retried);
    let ids: Vec<i64> = ids.into_iter().collect();
    client
        .wait_until_final(&ids, args.deadline, &mut tally)
        .await?;
    count_executions(&sim, executions_before, &mut tally);
    tally.took = started.elapsed();
    print_tally(
        &format!(
            "{} imports, host killed (kill -9) after {} were accepted, serving again {} ms later",
            args.crash_imports,
            partial.accepted,
            restart_took.as_millis()
        ),
        &tally,
    );
    let phase2_ok = tally.unfinished == 0 && tally.ready == tally.images;
    drop(host);
    if !(phase1_ok && phase2_ok) {
        bail!("imports were lost, left unfinished or run twice (see above)");
    }
    Ok(())
}

fn print_tally(title: &str, t: &Tally) {
    println!("\n## {title}\n");
    println!("| figure | value |\n|---|---:|");
    for (name, v) in [
        ("import requests (with retries after 503)", t.requests),
        ("accepted", t.accepted),
        ("told to retry (503 + Retry-After)", t.retried_503),
        ("other 5xx", t.server_errors),
        ("distinct images", t.images),
        ("ready", t.ready),
        ("failed, with a reason", t.failed_with_reason),
        ("failed, no reason", t.failed_without_reason),
        ("unfinished (lost)", t.unfinished),
        (
            "final states changed by the replayed webhooks",
            t.changed_by_replay,
        ),
        ("Harbor executions", t.executions),
        ("duplicated Harbor executions", t.duplicated_executions),
    ] {
        println!("| {name} | {v} |");
    }
    println!("| wall time | {:.1} s |", t.took.as_secs_f64());
}

/// Harbor executions started since `before`: one image is one copy, so any execution beyond
/// one per image means Harbor copied an image twice.
fn count_executions(sim: &Simulator, before: usize, t: &mut Tally) {
    t.executions = sim.state().executions.len() - before;
    t.duplicated_executions = t.executions.saturating_sub(t.images);
}

/// Sends `total` webhooks built from what Harbor delivered (or lost): every payload several
/// times, shuffled, `loss_percent` of them never sent. Returns how many were sent.
async fn replay_webhooks(
    sim: &Simulator,
    client: &Client,
    total: usize,
    loss_percent: u8,
) -> Result<usize> {
    let payloads: Vec<Value> = {
        let state = sim.state();
        let mut seen = BTreeMap::new();
        for d in &state.webhook_deliveries {
            seen.entry(d.id).or_insert_with(|| d.payload.clone());
        }
        seen.into_values().collect()
    };
    if payloads.is_empty() {
        return Ok(0);
    }
    // A fixed shuffle (an LCG), so runs compare.
    let mut order: Vec<usize> = (0..total).map(|i| i % payloads.len()).collect();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..order.len()).rev() {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        order.swap(i, (x >> 33) as usize % (i + 1));
    }
    let bodies: Vec<Arc<Vec<u8>>> = payloads
        .iter()
        .map(|p| Arc::new(serde_json::to_vec(p).unwrap_or_default()))
        .collect();
    let auth = format!("Bearer {WEBHOOK_SECRET}");
    let sent = Arc::new(Mutex::new(0usize));
    let queue = Arc::new(Mutex::new(
        order
            .into_iter()
            .enumerate()
            .filter(|(n, _)| (n * 37) % 100 >= usize::from(loss_percent))
            .map(|(_, i)| i)
            .collect::<Vec<_>>(),
    ));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (queue, sent, client, bodies, auth) = (
            queue.clone(),
            sent.clone(),
            client.clone(),
            bodies.clone(),
            auth.clone(),
        );
        workers.push(tokio::task::spawn_blocking(move || {
            while let Some(i) = queue.lock().unwrap().pop() {
                let (status, _) =
                    client.send("POST", "/api/v1/hooks/harbor", &auth, Some(&bodies[i]));
                if status != 0 {
                    *sent.lock().unwrap() += 1;
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let n = *sent.lock().unwrap();
    Ok(n)
}

/// A blocking HTTP client for the run (ureq), shared by threads.
#[derive(Clone)]
struct Client {
    base: Arc<str>,
    token: Arc<str>,
    agent: ureq::Agent,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let claims = Claims {
            sub: "loadtest".into(),
            role: Role::Admin,
            exp: now + 86_400,
        };
        Client {
            base: format!("http://{addr}").into(),
            token: format!("Bearer {}", issue_token(JWT_SECRET, &claims)).into(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    /// Status (0 when the host could not be reached) and JSON body.
    fn send(&self, method: &str, path: &str, auth: &str, body: Option<&[u8]>) -> (u16, Value) {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("authorization", auth)
            .set("content-type", "application/json");
        let result = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                (status, r.into_json().unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Starts every import at once, one thread each, retrying after a 503 as told; returns
    /// the image ids that were accepted. A request that finds no host is given up.
    async fn import_all(self, sources: Vec<String>, t: &mut Tally) -> Result<Vec<i64>> {
        let tallies = Arc::new(Mutex::new(Tally::default()));
        let ids = Arc::new(Mutex::new(HashSet::new()));
        let mut threads = Vec::new();
        for source in sources {
            let (client, tallies, ids) = (self.clone(), tallies.clone(), ids.clone());
            threads.push(tokio::task::spawn_blocking(move || {
                let body = serde_json::to_vec(&json!({ "source": source })).unwrap_or_default();
                for _ in 0..600 {
                    let (status, reply) =
                        client.send("POST", "/api/v1/images:import", &client.token, Some(&body));
                    let mut t = tallies.lock().unwrap();
                    t.requests += 1;
                    match status {
                        503 => {
                            t.retried_503 += 1;
                            drop(t);
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        0 => return,
                        200 => {
                            t.accepted += 1;
                            let data = &reply["data"];
                            let id = data["image_id"]
                                .as_i64()
                                .or_else(|| data["alreadyImageId"].as_i64());
                            if let Some(id) = id {
                                ids.lock().unwrap().insert(id);
                            }
                            return;
                        }
                        s if s >= 500 => {
                            t.server_errors += 1;
                            return;
                        }
                        _ => return,
                    }
                }
            }));
        }
        for th in threads {
            th.await?;
        }
        let phase = std::mem::take(&mut *tallies.lock().unwrap());
        t.requests += phase.requests;
        t.accepted += phase.accepted;
        t.retried_503 += phase.retried_503;
        t.server_errors += phase.server_errors;
        let ids: Vec<i64> = ids.lock().unwrap().iter().copied().collect();
        Ok(ids)
    }

    /// Reads every import until it is `ready` or `failed` (a read reconciles with Harbor, as a
    /// portal polling would), or the deadline passes.
    async fn wait_until_final(
        &self,
        ids: &[i64],
        deadline: Duration,
        t: &mut Tally,
    ) -> Result<HashMap<i64, String>> {
        let started = Instant::now();
        let mut final_states = HashMap::new();
        let mut open: Vec<i64> = ids.to_vec();
        t.images = ids.len();
        while !open.is_empty() && started.elapsed() < deadline {
            let client = self.clone();
            let batch = open.clone();
            let still = tokio::task::spawn_blocking(move || {
                let mut still = Vec::new();
                let mut done = Vec::new();
                for id in batch {
                    let path = format!("/api/v1/images/{id}/importing-details");
                    let (status, reply) = client.send("GET", &path, &client.token, None);
                    let d = &reply["data"];
                    match (status, d["status"].as_str()) {
                        (200, Some("ready")) => done.push((id, true, true, d.to_string())),
                        (200, Some("failed")) => {
                            let reason = d["message"].as_str().is_some_and(|m| !m.is_empty());
                            done.push((id, false, reason, d.to_string()));
                        }
                        _ => still.push(id),
                    }
                }
                (still, done)
            })
            .await
            .context("polling imports")?;
            for (id, ready, reason, state) in still.1 {
                final_states.insert(id, state);
                match (ready, reason) {
                    (true, _) => t.ready += 1,
                    (false, true) => t.failed_with_reason += 1,
                    (false, false) => t.failed_without_reason += 1,
                }
            }
            open = still.0;
            if !open.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        t.unfinished = open.len();
        Ok(final_states)
    }
}

//! Scale-out: several `berth up` replicas on one PostgreSQL database, requests spread over
//! them round-robin (and Harbor's webhooks through a round-robin load balancer, as a
//! Kubernetes Service would). Always runs on PostgreSQL, whatever `BERTH_TEST_STORE` says;
//! `scripts/test.sh` runs it once. Prints its figures (recorded in docs/scale-out.md).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_domain::db::Db;
use berth_tests::harbor::TestHarbor;
use berth_tests::postgres::{TestDatabase, fresh_database};
use berth_tests::proxy::RoundRobin;
use berth_tests::{AppOptions, Reply, TestApp, WEBHOOK_SECRET, skip_on_spin};
use serde_json::{Value, json};

const REPLICAS: usize = 3;

/// Prints a figure past the test harness's output capture, so every run shows it.
fn report(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

struct Replicas {
    apps: Vec<TestApp>,
    next: AtomicUsize,
    db: TestDatabase,
    lb: RoundRobin,
}

impl Replicas {
    /// `REPLICAS` hosts on one fresh database, behind a load balancer that Harbor's
    /// webhooks go through.
    fn start(harbor: Option<&TestHarbor>, variables: &[(&str, &str)]) -> Replicas {
        let db = fresh_database();
        let lb = RoundRobin::start();
        let apps: Vec<TestApp> = (0..REPLICAS)
            .map(|_| {
                let mut vars = db.variables();
                vars.push(("public_url".into(), lb.url()));
                vars.push((
                    "webhook_url".into(),
                    format!("{}/api/v1/hooks/harbor", lb.url()),
                ));
                vars.extend(
                    variables
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                );
                TestApp::spawn_with(AppOptions {
                    harbor: harbor.map(TestHarbor::variables),
                    variables: vars,
                    ..Default::default()
                })
            })
            .collect();
        lb.set_backends(
            apps.iter()
                .map(|a| {
                    a.base_url
                        .trim_start_matches("http://")
                        .parse::<SocketAddr>()
                        .unwrap()
                })
                .collect(),
        );
        Replicas {
            apps,
            next: AtomicUsize::new(0),
            db,
            lb,
        }
    }

    /// The next replica, round-robin.
    fn next(&self) -> &TestApp {
        &self.apps[self.next.fetch_add(1, Ordering::Relaxed) % self.apps.len()]
    }
}

fn import(app: &TestApp, source: &str) -> Reply {
    app.as_user("alice").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({ "source": source })),
    )
}

fn wait_until_ready(r: &Replicas, id: i64) -> Value {
    let start = Instant::now();
    loop {
        let d = r
            .next()
            .as_admin()
            .get(&format!("/api/v1/images/{id}/importing-details"));
        assert_eq!(d.status, 200, "{}", d.text);
        if d.body["data"]["status"] != "importing" {
            return d.body["data"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "image {id} still importing: {}",
            d.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn replicas_start_one_harbor_execution_per_source() {
    if skip_on_spin(
        "replicas share PostgreSQL, where Spin 4.0.2's spin:postgres query stops answering (docs/host.md); the Spin pass runs on SQLite",
    ) {
        return;
    }
    const SOURCES: usize = 6;
    const PER_SOURCE: usize = 10;
    let harbor = TestHarbor::start();
    let r = Replicas::start(Some(&harbor), &[("import_reconcile_after_seconds", "1")]);

    // Every request at once: each source asked for PER_SOURCE times, on every replica.
    let replies: Vec<(usize, Reply)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SOURCES * PER_SOURCE)
            .map(|k| {
                let (src, app) = (k % SOURCES, r.next());
                s.spawn(move || (src, import(app, &format!("docker.io/scale/app-{src}:1"))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut by_source: BTreeMap<usize, Vec<&Reply>> = BTreeMap::new();
    for (src, reply) in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        by_source.entry(*src).or_default().push(reply);
    }
    let (mut started, mut joined, mut existing) = (0, 0, 0);
    let mut ids = Vec::new();
    for (src, replies) in &by_source {
        let id = replies[0].body["data"]["image_id"].as_i64().unwrap();
        let mut starts = 0;
        for reply in replies {
            assert_eq!(
                reply.body["data"]["image_id"], id,
                "source {src}: {}",
                reply.text
            );
            match reply.body["data"]["message"].as_str() {
                Some("Image import started") => starts += 1,
                Some("Image import already in progress") => joined += 1,
                Some("Image already exists") => existing += 1,
                other => panic!("source {src}: unexpected answer {other:?}: {}", reply.text),
            }
        }
        assert_eq!(starts, 1, "source {src}: one request starts the import");
        started += starts;
        ids.push(id);
    }
    let executions = harbor.state().executions.len();
    assert_eq!(executions, SOURCES, "one Harbor execution per source");
    for id in &ids {
        assert_eq!(wait_until_ready(&r, *id)["status"], "ready");
    }
    let rows =
        r.db.connect()
            .query("SELECT COUNT(*) FROM imports", &[])
            .unwrap()
            .scalar_i64();
    assert_eq!(rows, Some(SOURCES as i64), "one import row per source");
    let hooks = r.lb.counts();
    assert!(
        hooks.iter().filter(|n| **n > 0).count() > 1,
        "Harbor's webhooks reached several replicas: {hooks:?}"
    );
    report(format!(
        "replicas/imports: {REPLICAS} replicas, {} concurrent import requests for {SOURCES} \
         sources -> {started} started, {joined} joined a running import, {existing} found it \
         imported; Harbor executions: {executions}; import rows: {SOURCES}; Harbor webhook \
         connections per replica: {hooks:?}",
        replies.len()
    ));
}

#[test]
fn replicas_converge_on_concurrent_webhooks() {
    if skip_on_spin(
        "replicas share PostgreSQL, where Spin 4.0.2's spin:postgres query stops answering (docs/host.md); the Spin pass runs on SQLite",
    ) {
        return;
    }
    const IMAGES: usize = 4;
    let harbor = TestHarbor::start();
    // Harbor records its webhooks but sends none: the test delivers them all at once below.
    harbor.drop_webhooks();
    // Reads ask Harbor only about imports a webhook marked due (and no sweep runs): the
    // webhooks decide which imports move.
    let r = Replicas::start(
        Some(&harbor),
        &[
            ("import_reconcile_after_seconds", "3600"),
            ("sweep_interval_seconds", "3600"),
        ],
    );
    let ids: Vec<i64> = (0..IMAGES)
        .map(|i| {
            let reply = import(r.next(), &format!("docker.io/scale/hook-{i}:1"));
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.body["data"]["image_id"].as_i64().unwrap()
        })
        .collect();
    // Wait until Harbor has finished every execution (and recorded every event).
    let start = Instant::now();
    while harbor
        .state()
        .executions
        .iter()
        .any(|e| e.status != "Succeed")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            harbor.state().executions
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let events: Vec<Value> = harbor
        .state()
        .webhook_deliveries
        .iter()
        .map(|d| d.payload.clone())
        .collect();
    assert!(events.len() >= IMAGES * 2, "{events:?}");

    // Every event to every replica at the same moment, newest first: out of order and
    // each one several times concurrently.
    let storm = |round: &str| -> usize {
        let replies: Vec<Reply> = std::thread::scope(|s| {
            let handles: Vec<_> = events
                .iter()
                .rev()
                .flat_map(|e| r.apps.iter().map(move |app| (e, app)))
                .map(|(e, app)| {
                    s.spawn(move || {
                        app.raw(
                            "POST",
                            "/api/v1/hooks/harbor",
                            None,
                            &[
                                ("authorization", &format!("Bearer {WEBHOOK_SECRET}")),
                                ("content-type", "application/json"),
                            ],
                            e.to_string().as_bytes(),
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for reply in &replies {
            assert_eq!(reply.status, 200, "{round}: {}", reply.text);
        }
        replies.len()
    };
    let first = storm("first storm");
    // A webhook never calls Harbor: it marks its import due, and the next read asks Harbor.
    for id in &ids {
        let details = wait_until_ready(&r, *id);
        assert_eq!(details["progress"], 100, "{details}");
    }
    let etags: Vec<String> = ids
        .iter()
        .map(|id| {
            let d = r.next().as_admin().get(&format!("/api/v1/images/{id}"));
            assert_eq!(d.body["data"]["availability"], "ready", "{}", d.text);
            d.header("etag").unwrap().to_owned()
        })
        .collect();
    let second = storm("second storm");
    for (id, etag) in ids.iter().zip(&etags) {
        let d = r.next().as_admin().get(&format!("/api/v1/images/{id}"));
        assert_eq!(
            d.header("etag"),
            Some(etag.as_str()),
            "image {id} changed by replays"
        );
    }
    let db = r.db.connect();
    let imports = db
        .query(
            "SELECT COUNT(*) FROM imports WHERE state = 'succeeded' AND progress = 100",
            &[],
        )
        .unwrap()
        .scalar_i64();
    assert_eq!(imports, Some(IMAGES as i64));
    report(format!(
        "replicas/webhooks: {REPLICAS} replicas, {IMAGES} imports, {} Harbor events each sent \
         to every replica at once, twice: {} deliveries, all 200; every import succeeded at \
         100%, the second storm changed no revision",
        events.len(),
        first + second
    ));
}

#[test]
fn replicas_never_lose_an_admin_update() {
    if skip_on_spin(
        "replicas share PostgreSQL, where Spin 4.0.2's spin:postgres query stops answering (docs/host.md); the Spin pass runs on SQLite",
    ) {
        return;
    }
    let r = Replicas::start(None, &[]);

    // Six editors holding the same revision, on different replicas: one wins.
    let etag = r
        .next()
        .as_admin()
        .get("/api/v1/images/2")
        .header("etag")
        .unwrap()
        .to_owned();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (app, etag) = (r.next(), &etag);
                s.spawn(move || {
                    app.as_admin()
                        .send_with(
                            "PATCH",
                            "/api/v1/images/2",
                            &[("if-match", etag)],
                            &json!({ "description": format!("editor {i}") }),
                        )
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        5,
        "{statuses:?}"
    );

    // Read-modify-write counters: each writer adds one per round, retrying on 412.
    const WRITERS: usize = 6;
    const ROUNDS: usize = 5;
    let conflicts = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..WRITERS {
            let (r, conflicts) = (&r, &conflicts);
            s.spawn(move || {
                for _ in 0..ROUNDS {
                    loop {
                        let cur = r.next().as_admin().get("/api/v1/images/3");
                        let n: usize = cur.body["data"]["description"]
                            .as_str()
                            .and_then(|d| d.strip_prefix("count="))
                            .map_or(0, |n| n.parse().unwrap());
                        let etag = cur.header("etag").unwrap().to_owned();
                        let w = r.next().as_admin().send_with(
                            "PATCH",
                            "/api/v1/images/3",
                            &[("if-match", &etag)],
                            &json!({ "description": format!("count={}", n + 1) }),
                        );
                        match w.status {
                            200 => break,
                            412 => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            other => panic!("{other}: {}", w.text),
                        }
                    }
                }
            });
        }
    });
    let d = r.next().as_admin().get("/api/v1/images/3");
    let total = WRITERS * ROUNDS;
    assert_eq!(d.body["data"]["description"], format!("count={total}"));
    assert_eq!(
        d.header("etag"),
        Some(format!("\"{}\"", 1 + total).as_str()),
        "one revision per increment"
    );

    // Unconditional writers of different fields, spread over the replicas: all land.
    std::thread::scope(|s| {
        for field in ["description", "category", "python_version", "cuda_version"] {
            let r = &r;
            s.spawn(move || {
                for i in 0..5 {
                    let w = r.next().as_admin().send(
                        "PATCH",
                        "/api/v1/images/4",
                        Some(&json!({ field: format!("{field}-{i}") })),
                    );
                    assert_eq!(w.status, 200, "{}", w.text);
                }
            });
        }
    });
    let d = r.next().as_admin().get("/api/v1/images/4");
    assert_eq!(
        d.header("etag"),
        Some("\"21\""),
        "1 + 20 updates, none lost"
    );
    for field in ["description", "category", "python_version", "cuda_version"] {
        assert_eq!(d.body["data"][field], format!("{field}-4"));
    }
    report(format!(
        "replicas/admin: {REPLICAS} replicas; 6 editors with one revision -> 1 applied, 5 told \
         412; {WRITERS} writers x {ROUNDS} If-Match increments -> count={total}, {} conflicts \
         retried, nothing lost; 20 unconditional field updates -> revision 21, all landed",
        conflicts.load(Ordering::Relaxed)
    ));
}

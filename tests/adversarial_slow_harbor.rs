//! A slow Harbor must not take the catalog down (issue #12, item 4): Harbor's statistics are
//! fetched single-flight, and a component at its concurrency limit answers 503 with
//! `Retry-After` while the other components keep serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use berth_domain::auth::Role;
use berth_tests::harbor::TestHarbor;
use berth_tests::{AppOptions, Reply, TestApp, skip_on_spin};
use harbor_sim::FaultsPatch;
use serde_json::json;

fn app_on(harbor: &TestHarbor, env: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

/// Plain catalog lists, one after another until `stop`: every status seen.
fn lists_until(app: Arc<TestApp>, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<u16>> {
    thread::spawn(move || {
        let token = app.token("bob", Role::User);
        let mut seen = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            seen.push(app.get("/api/v1/images", Some(&token)).status);
            thread::sleep(Duration::from_millis(50));
        }
        seen
    })
}

fn retry_after(r: &Reply) -> Option<u32> {
    r.header("retry-after").and_then(|v| v.parse().ok())
}

#[test]
fn a_storm_of_stats_calls_on_a_slow_harbor_leaves_lists_answering() {
    let harbor = TestHarbor::start();
    // The default instance pool (256) and per-component share (128): without single-flight
    // the stats calls, each held for Harbor's 20 s, would fill the catalog's share and the
    // lists would be refused.
    let app = Arc::new(app_on(&harbor, &[]));
    harbor.faults(FaultsPatch {
        latency_ms: Some(20_000),
        ..Default::default()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let lists = lists_until(app.clone(), stop.clone());
    let storm: Vec<_> = (0..300)
        .map(|i| {
            let app = app.clone();
            // Arriving over 1.5 s, all while Harbor's first answer is pending.
            thread::sleep(Duration::from_millis(5));
            thread::spawn(move || {
                let token = app.token(&format!("user{}", i % 7), Role::User);
                app.get("/api/v1/harbor/stats", Some(&token))
            })
        })
        .collect();
    let answers: Vec<Reply> = storm.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);
    let lists = lists.join().unwrap();

    let ok = answers.iter().filter(|r| r.status == 200).count();
    let busy: Vec<&Reply> = answers.iter().filter(|r| r.status == 503).collect();
    let other: Vec<u16> = answers
        .iter()
        .map(|r| r.status)
        .filter(|s| *s != 200 && *s != 503)
        .collect();
    let lists_ok = lists.iter().filter(|s| **s == 200).count();
    println!(
        "slow-Harbor storm: 300 stats calls -> {ok} answered, {} told to retry, {} other; \
         {lists_ok} of {} lists answered meanwhile",
        busy.len(),
        other.len(),
        lists.len()
    );
    assert!(other.is_empty(), "stats answered {other:?}");
    assert!(ok >= 1, "the one fetch must succeed after Harbor's 20 s");
    assert!(
        busy.iter().all(|r| retry_after(r).is_some()),
        "every 503 carries Retry-After"
    );
    assert!(lists.len() >= 10, "lists kept being sent: {lists:?}");
    assert_eq!(lists_ok, lists.len(), "lists during the storm: {lists:?}");
    // Harbor was asked once, not once per caller.
    let fetches = harbor
        .state()
        .requests
        .iter()
        .filter(|r| r.path.ends_with("/statistics"))
        .count();
    assert_eq!(fetches, 1, "Harbor's statistics fetched {fetches} times");

    // Once fetched, every caller is answered from the copy at once.
    harbor.faults(FaultsPatch {
        latency_ms: Some(0),
        ..Default::default()
    });
    let r = app
        .as_user("carol")
        .send("GET", "/api/v1/harbor/stats", None);
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn a_component_at_its_limit_answers_503_and_others_keep_serving() {
    if skip_on_spin(
        "berth's per-component concurrency limit (BERTH_MAX_CONCURRENT_PER_COMPONENT); Spin has none",
    ) {
        return;
    }
    let harbor = TestHarbor::start();
    let app = Arc::new(app_on(
        &harbor,
        &[("BERTH_MAX_CONCURRENT_PER_COMPONENT", "4")],
    ));
    harbor.faults(FaultsPatch {
        latency_ms: Some(1_000),
        ..Default::default()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let lists = lists_until(app.clone(), stop.clone());
    let imports: Vec<_> = (0..16)
        .map(|i| {
            let app = app.clone();
            thread::spawn(move || {
                let body = json!({"source": format!("docker.io/library/redis:7.{i}")});
                app.as_user("dave")
                    .send("POST", "/api/v1/images:import", Some(&body))
            })
        })
        .collect();
    let answers: Vec<Reply> = imports.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);
    let lists = lists.join().unwrap();

    let busy: Vec<&Reply> = answers.iter().filter(|r| r.status == 503).collect();
    let server_errors: Vec<u16> = answers
        .iter()
        .map(|r| r.status)
        .filter(|s| *s >= 500 && *s != 503)
        .collect();
    println!(
        "importer at its limit of 4: 16 imports -> {} refused with 503, lists {} of {} answered",
        busy.len(),
        lists.iter().filter(|s| **s == 200).count(),
        lists.len()
    );
    assert!(
        server_errors.is_empty(),
        "imports answered {server_errors:?}"
    );
    assert!(
        busy.len() >= 8,
        "at most 4 at once may run: {} refused",
        busy.len()
    );
    assert!(
        busy.iter().all(|r| retry_after(r) == Some(1)),
        "503s carry Retry-After"
    );
    assert!(busy[0].text.contains("retry"), "{}", busy[0].text);
    assert!(
        lists.iter().all(|s| *s == 200),
        "lists meanwhile: {lists:?}"
    );
}

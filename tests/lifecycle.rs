//! Imports that finish on any Harbor: the sweep (`POST /api/v1/internal/sweep`, which
//! `berth up` calls on its timer), Harbors older than v2.13 (REPLICATION events without
//! `execution_id`), tasks Harbor's job service retries, webhooks answered within Harbor's
//! 3-second timeout on a slow Harbor, and statistics for a robot account.

use std::time::{Duration, Instant};

use berth_tests::harbor::{FaultsPatch, TestHarbor, UpstreamFailure, UpstreamImage};
use berth_tests::{AppOptions, TestApp, WEBHOOK_SECRET, WORKER_TOKEN};
use serde_json::{Value, json};

/// The app pointed at `harbor`, sweeping every `sweep_seconds`. Reads never ask Harbor by
/// themselves (`import_reconcile_after_seconds` is an hour): only the sweep, or a read of
/// an import a webhook marked due, does.
fn app_with(harbor: &TestHarbor, sweep_seconds: u64, confirm_seconds: u64) -> TestApp {
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables: vec![
            ("sweep_interval_seconds".into(), sweep_seconds.to_string()),
            (
                "import_failure_confirm_seconds".into(),
                confirm_seconds.to_string(),
            ),
            ("import_reconcile_after_seconds".into(), "3600".into()),
        ],
        ..Default::default()
    })
}

fn start_import(app: &TestApp, source: &str) -> i64 {
    let r = app.as_user("alice").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({ "source": source })),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["state"], 1, "{}", r.text);
    r.body["data"]["image_id"].as_i64().unwrap()
}

/// The image's availability in the catalog (`importing`, `ready`, `failed`), by a read
/// that never reconciles anything.
fn status(app: &TestApp, id: i64) -> String {
    let r = app.as_admin().get(&format!("/api/v1/images/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]["availability"].as_str().unwrap().to_owned()
}

/// Polls the catalog status until it is no longer `importing`; every status seen, in order.
fn statuses_until_end(app: &TestApp, id: i64, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let s = status(app, id);
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s != "importing" {
            return seen;
        }
        assert!(
            start.elapsed() < limit,
            "image {id} still importing after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn details(app: &TestApp, id: i64) -> Value {
    let r = app
        .as_admin()
        .get(&format!("/api/v1/images/{id}/importing-details"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].clone()
}

fn hook(app: &TestApp, event: &Value) -> Value {
    let r = app.raw(
        "POST",
        "/api/v1/hooks/harbor",
        None,
        &[
            ("authorization", &format!("Bearer {WEBHOOK_SECRET}")),
            ("content-type", "application/json"),
        ],
        event.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].clone()
}

fn sweep(app: &TestApp, auth: Option<&str>) -> berth_tests::Reply {
    let mut headers = vec![];
    let bearer = auth.map(|t| format!("Bearer {t}"));
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    app.raw("POST", "/api/v1/internal/sweep", None, &headers, b"")
}

/// Waits until Harbor has ended every execution (no reader involved).
fn wait_for_harbor(harbor: &TestHarbor, executions: usize, limit: Duration) {
    let start = Instant::now();
    loop {
        let state = harbor.state();
        if state.executions.len() == executions
            && state.executions.iter().all(|e| e.status != "InProgress")
        {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "Harbor's executions: {:?}",
            state.executions
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn with_every_webhook_dropped_every_import_ends_within_two_sweep_periods() {
    let harbor = TestHarbor::start();
    harbor.drop_webhooks();
    harbor.upstream(UpstreamImage {
        registry: Some("quay.io".into()),
        repository: "team/private".into(),
        tag: "1".into(),
        failure: Some(UpstreamFailure::Unauthorized),
        ..Default::default()
    });
    let period = 2;
    let app = app_with(&harbor, period, 1);
    // The first task Harbor creates fails (for good, no retry).
    harbor.faults(FaultsPatch {
        fail_next_tasks: Some(1),
        ..Default::default()
    });
    let task_failed = start_import(&app, "docker.io/team/broken:2");
    let start = Instant::now();
    while harbor.state().tasks.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready = start_import(&app, "docker.io/team/swept:1");
    let refused = start_import(&app, "quay.io/team/private:1");
    let missing = start_import(&app, "ghcr.io/team/gone:missing");
    wait_for_harbor(&harbor, 4, Duration::from_secs(30));

    // Nobody reads the imports: the host's timer calls the sweep. Two periods, plus a
    // second for the sweep's own work.
    let limit = Duration::from_secs(2 * period + 1);
    let start = Instant::now();
    let ids = [ready, refused, missing, task_failed];
    while ids.iter().any(|id| status(&app, *id) == "importing") && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended: Vec<String> = ids.iter().map(|id| status(&app, *id)).collect();
    assert_eq!(
        ended,
        ["ready", "failed", "failed", "failed"],
        "after {limit:?}"
    );
    let reasons: Vec<String> = ids[1..]
        .iter()
        .map(|id| {
            details(&app, *id)["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(reasons[0].contains("unauthorized"), "{}", reasons[0]);
    assert!(
        reasons[1].contains("not found at the source"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[2].contains("Harbor's replication of"),
        "{}",
        reasons[2]
    );

    let state = harbor.state();
    assert!(state.webhook_deliveries.iter().all(|d| d.dropped));
    let facts = app.as_admin().get(&format!("/api/v1/images/{ready}"));
    let digest = state
        .artifacts
        .iter()
        .find(|a| a.repository == "catalog/docker.io/team/swept")
        .map(|a| a.digest.clone());
    assert_eq!(facts.body["data"]["digest"].as_str(), digest.as_deref());
}

#[test]
fn the_sweep_route_takes_the_worker_token_only() {
    let harbor = TestHarbor::start();
    harbor.faults(FaultsPatch {
        hang_executions: Some(true),
        ..Default::default()
    });
    let app = app_with(&harbor, 3600, 1);
    let id = start_import(&app, "docker.io/team/hung:1");
    for bad in [None, Some("wrong"), Some(WEBHOOK_SECRET)] {
        let r = sweep(&app, bad);
        assert_eq!(r.status, 401, "{bad:?}: {}", r.text);
    }
    let r = app.raw("GET", "/api/v1/internal/sweep", None, &[], b"");
    assert_eq!(r.status, 405, "{}", r.text);

    let r = sweep(&app, Some(WORKER_TOKEN));
    assert_eq!(r.status, 200, "{}", r.text);
    let d = &r.body["data"];
    assert_eq!(d["imports"]["reconciled"], 1, "{d}");
    assert_eq!(d["imports"]["finished"], 0, "{d}");
    assert_eq!(d["builds"]["reconciled"], 0, "{d}");
    assert_eq!(d["harbor"]["harborVersion"], "v2.15.0-sim", "{d}");
    assert_eq!(d["harbor"]["eventsCarryExecutionId"], true, "{d}");
    assert_eq!(status(&app, id), "importing");
    // Harbor's version is read once, then cached.
    sweep(&app, Some(WORKER_TOKEN));
    let reads = harbor
        .state()
        .requests
        .iter()
        .filter(|r| r.path.ends_with("/systeminfo"))
        .count();
    assert_eq!(reads, 1);

    // The sweep fails an import past its deadline and stops its execution in Harbor.
    drop(app);
    let app = TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables: vec![
            ("sweep_interval_seconds".into(), "3600".into()),
            ("import_deadline_seconds".into(), "1".into()),
            ("import_reconcile_after_seconds".into(), "3600".into()),
        ],
        ..Default::default()
    });
    let late = start_import(&app, "docker.io/team/late:1");
    std::thread::sleep(Duration::from_millis(2100));
    let r = sweep(&app, Some(WORKER_TOKEN));
    assert_eq!(r.body["data"]["imports"]["finished"], 1, "{}", r.text);
    assert_eq!(status(&app, late), "failed");
    let message = details(&app, late)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("did not finish within 1 seconds"),
        "{message}"
    );
}

#[test]
fn harbor_before_2_13_is_matched_by_names() {
    let harbor = TestHarbor::start();
    harbor.faults(FaultsPatch {
        harbor_version: Some("v2.12.2-73072d0d".into()),
        ..Default::default()
    });
    // No sweep: an event must be matched to its import for a read to ask Harbor.
    let app = app_with(&harbor, 3600, 0);
    let ok = start_import(&app, "docker.io/team/old:1");
    statuses_until_end_reading(&app, ok);
    assert_eq!(status(&app, ok), "ready");

    harbor.faults(FaultsPatch {
        fail_next_tasks: Some(1),
        ..Default::default()
    });
    let broken = start_import(&app, "docker.io/team/oldbroken:1");
    statuses_until_end_reading(&app, broken);
    assert_eq!(status(&app, broken), "failed");

    let state = harbor.state();
    let replications: Vec<&Value> = state
        .webhook_deliveries
        .iter()
        .filter(|d| d.event_type == "REPLICATION" && d.status == Some(200))
        .map(|d| &d.payload)
        .collect();
    assert!(!replications.is_empty());
    for p in &replications {
        assert!(
            p["event_data"]["replication"].get("execution_id").is_none(),
            "{p}"
        );
    }
    let r = sweep(&app, Some(WORKER_TOKEN));
    assert_eq!(
        r.body["data"]["harbor"]["harborVersion"],
        "v2.12.2-73072d0d"
    );
    assert_eq!(r.body["data"]["harbor"]["eventsCarryExecutionId"], false);

    // A Running event names neither execution nor artifact: the policy's description
    // carries the policy name.
    harbor.faults(FaultsPatch {
        hang_executions: Some(true),
        ..Default::default()
    });
    let hung = start_import(&app, "docker.io/team/oldhung:1");
    let policy = harbor.state().policies.last().unwrap().name.clone();
    let running = |description: &str| {
        json!({"type": "REPLICATION", "occur_at": 1, "operator": "admin", "event_data": {"replication": {
            "harbor_hostname": "harbor.test", "job_status": "Running", "description": description,
            "dest_resource": {"registry_type": "harbor", "endpoint": "https://harbor.test", "namespace": "catalog"}}}})
    };
    let matched = hook(
        &app,
        &running(&format!("Image import managed by berth ({policy})")),
    );
    assert!(
        matched["outcome"].as_str().unwrap().starts_with("noted"),
        "{matched}"
    );
    let other = hook(
        &app,
        &running("Image import managed by berth (berth-import-0000000000000000)"),
    );
    assert!(
        other["outcome"].as_str().unwrap().starts_with("ignored"),
        "{other}"
    );
    assert_eq!(status(&app, hung), "importing");
}

/// Reads importing-details until the import ends (a read asks Harbor only when a webhook
/// marked the import due).
fn statuses_until_end_reading(app: &TestApp, id: i64) {
    let start = Instant::now();
    while details(app, id)["status"] == "importing" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            details(app, id)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_retried_task_that_succeeds_revives_a_failure_berth_believed() {
    let harbor = TestHarbor::start();
    // The job fails once; the job service retries it after Harbor's back-off, scaled to a
    // tenth (1.6–7.4 s), longer than berth's confirm window here (1 s).
    harbor.faults(FaultsPatch {
        task_retries: Some(1),
        retry_time_scale: Some(0.1),
        ..Default::default()
    });
    let app = app_with(&harbor, 1, 1);
    let id = start_import(&app, "docker.io/team/retried:1");
    let seen = statuses_until_end(&app, id, Duration::from_secs(30));
    // Failed, retried, then the success: the import ends ready.
    let seen = if seen.last().map(String::as_str) == Some("failed") {
        let mut more = seen;
        let start = Instant::now();
        while status(&app, id) != "ready" && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        more.push(status(&app, id));
        more
    } else {
        seen
    };
    assert_eq!(seen.last().map(String::as_str), Some("ready"), "{seen:?}");
    let statuses: Vec<String> = harbor
        .state()
        .webhook_deliveries
        .iter()
        .filter(|d| d.event_type == "REPLICATION" && d.attempt == 1)
        .map(|d| {
            d.payload["event_data"]["replication"]["job_status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(statuses, ["Running", "Error", "Running", "Success"]);
    let d = details(&app, id);
    assert_eq!(
        (d["progress"].as_i64(), d["message"].as_str()),
        (Some(100), None),
        "{d}"
    );
}

#[test]
fn a_failure_is_final_only_after_harbor_stops_retrying() {
    let harbor = TestHarbor::start();
    // Every run fails: Harbor runs the job three times, with back-offs scaled to 1/20
    // (0.8–3.7 s, then 1.55–5.9 s), all shorter than the confirm window (7 s).
    harbor.faults(FaultsPatch {
        task_retries: Some(3),
        retry_time_scale: Some(0.05),
        ..Default::default()
    });
    let app = app_with(&harbor, 1, 7);
    let id = start_import(&app, "docker.io/team/hopeless:1");
    let seen = statuses_until_end(&app, id, Duration::from_secs(60));
    assert_eq!(seen, ["importing", "failed"]);
    let errors = harbor
        .state()
        .webhook_deliveries
        .iter()
        .filter(|d| {
            d.event_type == "REPLICATION"
                && d.attempt == 1
                && d.payload["event_data"]["replication"]["job_status"] == "Error"
        })
        .count();
    assert_eq!(errors, 3, "three runs, each failed");
    let message = details(&app, id)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("Harbor's replication of docker.io/team/hopeless:1"),
        "{message}"
    );
}

#[test]
fn webhooks_answer_within_harbors_timeout_on_a_slow_harbor() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 1, 1);
    // Each Harbor call takes 1.2 s: the reads an import's completion needs (execution,
    // artifact, its platforms) add up past Harbor's 3-second webhook timeout.
    harbor.faults(FaultsPatch {
        latency_ms: Some(1200),
        ..Default::default()
    });
    let id = start_import(&app, "docker.io/library/slowpoke:1");
    let seen = statuses_until_end(&app, id, Duration::from_secs(60));
    assert_eq!(seen.last().map(String::as_str), Some("ready"), "{seen:?}");
    let deliveries = harbor.state().webhook_deliveries;
    assert!(deliveries.iter().any(|d| d.event_type == "PUSH_ARTIFACT"));
    for d in &deliveries {
        assert_eq!(
            (d.attempt, d.status, d.error.as_deref()),
            (1, Some(200), None),
            "{d:?}"
        );
    }
}

#[test]
fn statistics_for_a_robot_give_berths_own_project_from_its_own_counts() {
    let harbor = TestHarbor::start_robot();
    let app = app_with(&harbor, 1, 1);
    let first = start_import(&app, "docker.io/team/counted:1");
    let second = start_import(&app, "quay.io/team/counted:2");
    for id in [first, second] {
        let seen = statuses_until_end(&app, id, Duration::from_secs(30));
        assert_eq!(seen.last().map(String::as_str), Some("ready"));
    }
    let r = app.as_user("alice").get("/api/v1/harbor/stats");
    assert_eq!(r.status, 200, "{}", r.text);
    let d = &r.body["data"];
    // A robot is never a system admin: Harbor counts public projects only, no storage.
    assert_eq!(d["scope"], "public", "{d}");
    assert_eq!(d["totalSize"], 0, "{d}");
    let sizes: i64 = [first, second]
        .iter()
        .map(|id| {
            app.as_admin().get(&format!("/api/v1/images/{id}")).body["data"]["size"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert!(sizes > 0);
    assert_eq!(
        d["project"],
        json!({"name": "catalog", "repositories": 2, "images": 2, "size": sizes}),
        "{d}"
    );
}

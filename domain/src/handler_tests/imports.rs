//! Imports: the Harbor calls that start one, and what moves it to ready or failed.

use serde_json::json;

use super::*;
use crate::harbor::fake::response;

pub const SOURCE: &str = "docker.io/library/nginx:1.25";
/// Where [`SOURCE`] lands in Harbor: the project, then the source registry.
pub const REPOSITORY: &str = "catalog/docker.io/library/nginx";
pub const EXECUTION_ID: i64 = 21;

/// Harbor's answers to starting an import: the project exists, and no registry endpoint
/// and no policy exist yet.
fn start_script() -> FakeHarbor {
    FakeHarbor::default()
        .then(response(200))
        .then(page(json!([]), 0, None))
        .then(created("/api/v2.0/registries/7"))
        .then(page(json!([]), 0, None))
        .then(created("/api/v2.0/replication/policies/11"))
        .then(created(&format!(
            "/api/v2.0/replication/executions/{EXECUTION_ID}"
        )))
}

/// Starts the import of [`SOURCE`] as alice; returns the image id.
pub fn start_import(app: &TestApp) -> i64 {
    let harbor = start_script();
    let r = app.call_importer(
        request(
            "POST",
            "/api/v1/images:import",
            &user("alice"),
            Some(json!({"source": SOURCE})),
        ),
        &harbor,
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"]["message"], "Image import started");
    harbor.assert_drained();
    r.body["data"]["image_id"].as_i64().expect("an image id")
}

fn execution(status: &str, ended_seconds_ago: i64) -> Value {
    let ended =
        crate::time::to_rfc3339(chrono::Utc::now() - chrono::Duration::seconds(ended_seconds_ago));
    let failed = i64::from(status == "Failed");
    json!({
        "id": EXECUTION_ID, "policy_id": 11, "status": status, "status_text": "",
        "trigger": "manual", "start_time": ended, "end_time": ended,
        "total": 1, "succeed": 1 - failed, "failed": failed, "in_progress": 0, "stopped": 0
    })
}

fn status_of(app: &TestApp, image_id: i64) -> String {
    app.text("SELECT status FROM images WHERE id = ?", &[image_id.into()])
        .expect("the image exists")
}

fn importing_details(app: &TestApp, image_id: i64, harbor: &FakeHarbor) -> Reply {
    app.call_catalog(
        request(
            "GET",
            &format!("/api/v1/images/{image_id}/importing-details"),
            &user("alice"),
            None,
        ),
        harbor,
    )
}

/// Imports [`SOURCE`] until it is ready (Harbor holds it with `digest`); returns its id.
pub fn import_ready(app: &TestApp, digest: &str) -> i64 {
    let id = start_import(app);
    let event = json!({"type": "REPLICATION", "event_data": {"replication": {
        "execution_id": EXECUTION_ID, "job_status": "Success"}}});
    let noted = app.call_progress(webhook(event), &FakeHarbor::default());
    assert_eq!(noted.status, 200, "{:?}", noted.body);
    let harbor = artifact_read(
        FakeHarbor::default().then(json(200, execution("Succeed", 1))),
        REPOSITORY,
        "1.25",
        digest,
    );
    let r = importing_details(app, id, &harbor);
    assert_eq!(r.status, 200, "{:?}", r.body);
    harbor.assert_drained();
    assert_eq!(status_of(app, id), "ready");
    id
}

#[test]
fn starting_an_import_creates_the_registry_policy_and_execution_in_harbor() {
    let app = TestApp::new();
    let id = start_import(&app);

    let row = app
        .db
        .query(
            "SELECT state, policy_id, execution_id, harbor_registry_id, source FROM imports WHERE image_id = ?",
            &[id.into()],
        )
        .unwrap();
    let row = row.first().expect("an import row");
    assert_eq!(row.str("state"), "running");
    assert_eq!(row.i64("policy_id"), 11);
    assert_eq!(row.i64("execution_id"), EXECUTION_ID);
    assert_eq!(row.i64("harbor_registry_id"), 7);
    assert_eq!(row.str("source"), SOURCE);
    assert_eq!(status_of(&app, id), "importing");
    assert_eq!(
        app.text(
            "SELECT registry || '/' || repository || ':' || tag FROM images WHERE id = ?",
            &[id.into()]
        )
        .unwrap(),
        format!("{REGISTRY_HOST}/{REPOSITORY}:1.25")
    );

    // The same Harbor calls again, now looking at what was sent.
    let app = TestApp::new();
    let harbor = start_script();
    app.call_importer(
        request(
            "POST",
            "/api/v1/images:import",
            &user("alice"),
            Some(json!({"source": SOURCE})),
        ),
        &harbor,
    );
    let lines = harbor.lines();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(lines[0], "HEAD /projects?project_name=catalog");
    assert!(lines[1].starts_with("GET /registries?"), "{lines:#?}");
    assert_eq!(lines[2], "POST /registries");
    assert!(
        lines[3].starts_with("GET /replication/policies?q=name%3Dberth-import-")
            || lines[3].starts_with("GET /replication/policies?q=name=berth-import-"),
        "{lines:#?}"
    );
    assert_eq!(lines[4], "POST /replication/policies");
    assert_eq!(lines[5], "POST /replication/executions");
    let requests = harbor.requests();
    let policy = body_json(&requests[4]);
    assert_eq!(policy["dest_namespace"], "catalog/docker.io");
    assert_eq!(policy["src_registry"]["id"], 7);
    assert_eq!(body_json(&requests[5]), json!({"policy_id": 11}));
    // berth signs in to Harbor as the configured user.
    let basic = requests[0]
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(basic.starts_with("Basic "), "{basic}");
}

#[test]
fn a_source_outside_source_registries_is_refused_before_harbor_is_called() {
    let app = TestApp::new();
    app.set("source_registries", "quay.io, ghcr.io");
    let harbor = FakeHarbor::default();
    let r = app.call_importer(
        request(
            "POST",
            "/api/v1/images:import",
            &user("alice"),
            Some(json!({"source": SOURCE})),
        ),
        &harbor,
    );
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(r.message().contains("quay.io, ghcr.io"), "{}", r.message());
    assert!(harbor.requests().is_empty());
    assert_eq!(
        app.text("SELECT COUNT(*) FROM imports", &[]).as_deref(),
        Some("0")
    );
}

#[test]
fn a_webhook_makes_the_next_read_ask_harbor_and_the_import_becomes_ready() {
    let app = TestApp::new();
    let id = start_import(&app);

    // Heard from recently: a read does not ask Harbor.
    let quiet = FakeHarbor::default();
    let r = importing_details(&app, id, &quiet);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(quiet.requests().is_empty(), "{:?}", quiet.lines());

    let wrong = request(
        "POST",
        "/api/v1/hooks/harbor",
        "not-the-secret",
        Some(json!({"type": "REPLICATION"})),
    );
    assert_eq!(app.call_progress(wrong, &FakeHarbor::default()).status, 401);

    let event = json!({"type": "REPLICATION", "event_data": {"replication": {
        "execution_id": EXECUTION_ID, "job_status": "Success"}}});
    let noted = app.call_progress(webhook(event), &FakeHarbor::default());
    assert_eq!(noted.status, 200, "{:?}", noted.body);
    assert!(
        noted.body["data"]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("noted"),
        "{:?}",
        noted.body
    );
    assert_eq!(
        status_of(&app, id),
        "importing",
        "the webhook never calls Harbor"
    );

    let harbor = artifact_read(
        FakeHarbor::default().then(json(200, execution("Succeed", 1))),
        REPOSITORY,
        "1.25",
        &digest('d'),
    );
    let r = importing_details(&app, id, &harbor);
    assert_eq!(r.status, 200, "{:?}", r.body);
    harbor.assert_drained();
    let lines = harbor.lines();
    assert_eq!(
        lines[0],
        format!("GET /replication/executions/{EXECUTION_ID}")
    );
    assert_eq!(status_of(&app, id), "ready");
    assert_eq!(
        app.text("SELECT digest FROM images WHERE id = ?", &[id.into()]),
        Some(digest('d'))
    );
    assert_eq!(
        app.text("SELECT state FROM imports WHERE image_id = ?", &[id.into()])
            .as_deref(),
        Some("succeeded")
    );
}

fn sweep(app: &TestApp, harbor: &FakeHarbor) -> Reply {
    app.call_progress(
        request("POST", "/api/v1/internal/sweep", WORKER_TOKEN, None),
        harbor,
    )
}

#[test]
fn a_failed_execution_is_believed_only_after_import_failure_confirm_seconds() {
    let app = TestApp::new();
    let id = start_import(&app);
    assert_eq!(
        app.call_progress(
            request("POST", "/api/v1/internal/sweep", "not-the-token", None),
            &FakeHarbor::default()
        )
        .status,
        401
    );

    // Failed 60 s ago: within the default window of 150 s, Harbor may still retry.
    let harbor = FakeHarbor::default()
        .then(json(200, execution("Failed", 60)))
        .then(json(200, json!({"harbor_version": "v2.12.2-73072d0d"})));
    let r = sweep(&app, &harbor);
    assert_eq!(r.status, 200, "{:?}", r.body);
    harbor.assert_drained();
    assert_eq!(status_of(&app, id), "importing");
    assert!(
        app.text(
            "SELECT failure_seen_at FROM imports WHERE image_id = ?",
            &[id.into()]
        )
        .is_some()
    );

    // A window shorter than the time since Harbor ended it: the failure is final.
    app.set("import_failure_confirm_seconds", "30");
    let harbor = FakeHarbor::default().then(json(200, execution("Failed", 60)));
    let r = sweep(&app, &harbor);
    assert_eq!(r.status, 200, "{:?}", r.body);
    harbor.assert_drained();
    assert_eq!(status_of(&app, id), "failed");
}

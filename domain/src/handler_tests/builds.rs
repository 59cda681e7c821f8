//! Builds: the signed job berth sends the runner, and the push that completes a build.

use serde_json::json;

use super::*;
use crate::auth::signature_matches;
use crate::harbor::fake::response;

/// Where alice's build `my-tool:1` is pushed.
const TARGET_REPOSITORY: &str = "catalog/users/alice/my-tool";

/// Starts alice's build of `my-tool:1` from an official image; returns the build id and
/// the sender, which holds what was sent.
fn start_build(app: &TestApp) -> (String, FakeHarbor) {
    // Harbor's project exists; the runner accepts the job.
    let harbor = FakeHarbor::default()
        .then(response(200))
        .then(response(202));
    let r = app.call_importer(
        request(
            "POST",
            "/api/v1/images:build",
            &user("alice"),
            Some(
                json!({"name": "my-tool:1", "dockerfile": "FROM ubuntu22-cuda:12.0\nRUN echo hi"}),
            ),
        ),
        &harbor,
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["data"]["status"], "building");
    harbor.assert_drained();
    let id = r.body["data"]["build_id"].as_str().unwrap().to_owned();
    (id, harbor)
}

#[test]
fn a_build_sends_the_runner_a_job_signed_with_runner_secret() {
    let app = TestApp::new();
    let (id, harbor) = start_build(&app);
    let lines = harbor.lines();
    assert_eq!(lines[0], "HEAD /projects?project_name=catalog");
    assert_eq!(lines[1], format!("POST {RUNNER_URL}/runner/jobs"));

    let job = &harbor.requests()[1];
    let signature = job
        .headers
        .iter()
        .find(|(n, _)| n == "x-berth-signature")
        .map(|(_, v)| v.as_str());
    assert!(signature_matches(RUNNER_SECRET, signature, &job.body));
    assert!(!signature_matches("another-secret", signature, &job.body));

    let body = body_json(job);
    assert_eq!(body["build_id"], id);
    assert_eq!(
        body["push"],
        json!({"registry": REGISTRY_HOST, "repository": TARGET_REPOSITORY, "tag": "1"})
    );
    assert_eq!(
        body["callback"],
        json!({"url": format!("http://berth.test/api/v1/builds/{id}/status"), "token": RUNNER_TOKEN})
    );
    assert!(
        body["dockerfile"]
            .as_str()
            .unwrap()
            .starts_with(&format!("FROM {REGISTRY_HOST}/")),
        "the catalog name is sent as the reference the runner pulls: {body}"
    );
    assert_eq!(
        app.text(
            "SELECT status FROM builds WHERE id = ?",
            &[id.as_str().into()]
        )
        .as_deref(),
        Some("building")
    );
}

#[test]
fn without_a_runner_url_a_build_is_a_503_and_nothing_is_sent() {
    let app = TestApp::new();
    app.set("runner_url", "");
    let harbor = FakeHarbor::default();
    let r = app.call_importer(
        request(
            "POST",
            "/api/v1/images:build",
            &user("alice"),
            Some(
                json!({"name": "my-tool:1", "dockerfile": "FROM ubuntu22-cuda:12.0\nRUN echo hi"}),
            ),
        ),
        &harbor,
    );
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert!(r.message().contains("runner_url"), "{}", r.message());
    assert!(harbor.requests().is_empty());
}

#[test]
fn harbors_push_completes_the_build_with_a_private_ready_image() {
    let app = TestApp::new();
    let (id, _) = start_build(&app);

    // The runner's callbacks need runner_token.
    let forged = app.call_progress(
        request(
            "PUT",
            &format!("/api/v1/builds/{id}/status"),
            "not-the-token",
            Some(json!({"status": "failed", "message": "forged"})),
        ),
        &FakeHarbor::default(),
    );
    assert_eq!(forged.status, 401, "{:?}", forged.body);

    let push = json!({"type": "PUSH_ARTIFACT", "event_data": {
        "repository": {"repo_full_name": TARGET_REPOSITORY},
        "resources": [{"tag": "1", "digest": digest('b')}]}});
    let noted = app.call_progress(webhook(push), &FakeHarbor::default());
    assert_eq!(noted.status, 200, "{:?}", noted.body);
    assert!(
        noted.body["data"]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("noted"),
        "{:?}",
        noted.body
    );

    // The owner's next read asks Harbor for the artifact and completes the build.
    let harbor = artifact_read(
        FakeHarbor::default(),
        "users/alice/my-tool",
        "1",
        &digest('b'),
    );
    let r = app.call_catalog(
        request("GET", &format!("/api/v1/builds/{id}"), &user("alice"), None),
        &harbor,
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    harbor.assert_drained();
    assert_eq!(r.body["data"]["status"], "succeeded", "{:?}", r.body);
    let image_id = r.body["data"]["image_id"].as_i64().unwrap();
    let row = app
        .db
        .query(
            "SELECT status, visibility, owner, digest, repository FROM images WHERE id = ?",
            &[image_id.into()],
        )
        .unwrap();
    let row = row.first().unwrap();
    assert_eq!(
        (
            row.str("status"),
            row.str("visibility"),
            row.str("owner"),
            row.str("digest"),
            row.str("repository")
        ),
        (
            "ready",
            "private",
            "alice",
            digest('b').as_str(),
            TARGET_REPOSITORY
        )
    );

    // Builds are their owner's.
    let bob = app.call_catalog(
        request("GET", &format!("/api/v1/builds/{id}"), &user("bob"), None),
        &FakeHarbor::default(),
    );
    assert_eq!(bob.status, 404);
}

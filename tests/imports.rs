//! Imports end to end: the importer drives a simulated Harbor, Harbor's webhooks reach the
//! progress component, and the catalog shows the result; with Harbor's faults injected.

use std::time::{Duration, Instant};

use berth_tests::harbor::{
    FaultsPatch, TestHarbor, UpstreamFailure, UpstreamImage, WebhookFaultsPatch,
};
use berth_tests::{AppOptions, Reply, TestApp, WEBHOOK_SECRET, WORKER_TOKEN};
use serde_json::{Value, json};

/// The app pointed at `harbor`. `reconcile_after` is how quiet an import must be before a
/// read asks Harbor itself (large: only webhooks move imports).
fn app_with(harbor: &TestHarbor, reconcile_after: u32) -> TestApp {
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables: vec![
            ("import_failure_confirm_seconds".into(), "1".into()),
            (
                "import_reconcile_after_seconds".into(),
                reconcile_after.to_string(),
            ),
        ],
        ..Default::default()
    })
}

fn import(app: &TestApp, who: &str, body: Value) -> Reply {
    app.as_user(who)
        .send("POST", "/api/v1/images:import", Some(&body))
}

fn started_id(r: &Reply) -> i64 {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["state"], 1, "{}", r.text);
    r.body["data"]["image_id"].as_i64().unwrap()
}

/// Polls importing-details until the import ends; returns every progress value seen and the
/// final details.
fn wait_for_end(app: &TestApp, id: i64, limit: Duration) -> (Vec<i64>, Value) {
    let user = app.as_admin();
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let r = user.get(&format!("/api/v1/images/{id}/importing-details"));
        assert_eq!(r.status, 200, "{}", r.text);
        let d = r.body["data"].clone();
        seen.push(d["progress"].as_i64().unwrap());
        if d["status"] != "importing" {
            return (seen, d);
        }
        assert!(
            start.elapsed() < limit,
            "image {id} still importing after {limit:?}: {d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_monotonic(progress: &[i64]) {
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {progress:?}"
    );
}

fn artifact_digest(harbor: &TestHarbor, repository: &str, tag: &str) -> String {
    let state = harbor.state();
    let a = state
        .artifacts
        .iter()
        .find(|a| a.repository == repository && a.tags.iter().any(|t| t == tag))
        .unwrap_or_else(|| panic!("no artifact {repository}:{tag} in {:?}", state.artifacts));
    a.digest.clone()
}

#[test]
fn imports_an_image_and_tracks_it_to_ready() {
    let harbor = TestHarbor::start();
    harbor.upstream(UpstreamImage {
        registry: Some("docker.io".into()),
        repository: "pytorch/pytorch".into(),
        tag: "2.0.0-cuda11.7-cudnn8-runtime".into(),
        platforms: vec!["linux/amd64".into()],
        size: Some(5_368_709_120),
        ..Default::default()
    });
    let app = app_with(&harbor, 3600);
    let body = json!({"source": "docker.io/pytorch/pytorch:2.0.0-cuda11.7-cudnn8-runtime", "sourceRegistry": "docker.io"});
    let r = import(&app, "alice", body.clone());
    let id = started_id(&r);
    assert_eq!(r.body["data"]["message"], "Image import started");
    assert_eq!(r.body["data"]["alreadyImageId"], 0);
    assert_eq!(r.body["code"], 0);

    // While it runs, a second request for the same source starts nothing new.
    let again = import(&app, "bob", body.clone());
    assert_eq!(again.body["data"]["image_id"], id, "{}", again.text);

    let (progress, details) = wait_for_end(&app, id, Duration::from_secs(30));
    assert_monotonic(&progress);
    assert_eq!(details["status"], "ready", "{details}");
    assert_eq!(details["progress"], 100);

    let image = app.as_user("bob").get(&format!("/api/v1/images/{id}"));
    assert_eq!(image.status, 200, "{}", image.text);
    let d = &image.body["data"];
    let digest = artifact_digest(
        &harbor,
        "catalog/docker.io/pytorch/pytorch",
        "2.0.0-cuda11.7-cudnn8-runtime",
    );
    assert_eq!(d["digest"], digest);
    assert!(d["size"].as_i64().unwrap() >= 5_368_709_120, "{d}");
    assert_eq!(
        (d["arch"].as_str(), d["os"].as_str()),
        (Some("amd64"), Some("linux"))
    );
    let address = harbor.sim.addr().to_string();
    assert_eq!(
        d["registry_url"],
        format!("{address}/catalog/docker.io/pytorch/pytorch:2.0.0-cuda11.7-cudnn8-runtime")
    );
    let listed = app
        .as_user("carol")
        .get("/api/v1/images?ready=true&name=pytorch/pytorch");
    assert_eq!(
        listed.body["data"]["pagination"]["total"], 1,
        "{}",
        listed.text
    );
    let flat = app
        .as_user("carol")
        .get("/api/v1/images?flat=false&name=pytorch/pytorch");
    assert_eq!(
        flat.body["data"]["images"][0]["artifacts"][0]["digest"],
        digest
    );

    let done = import(&app, "carol", body);
    assert_eq!(done.body["data"]["state"], 2, "{}", done.text);
    assert_eq!(done.body["data"]["alreadyImageId"], id);
    assert_eq!(done.body["data"]["message"], "Image already exists");

    let state = harbor.state();
    assert_eq!(state.executions.len(), 1, "one execution for one source");
    assert!(
        state
            .webhook_deliveries
            .iter()
            .any(|d| d.status == Some(200)),
        "Harbor's webhooks reached berth: {:?}",
        state.webhook_deliveries
    );
}

#[test]
fn multi_arch_import_records_every_platform() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 0);
    let id = started_id(&import(&app, "alice", json!({"source": "nginx:1.25"})));
    let (_, details) = wait_for_end(&app, id, Duration::from_secs(30));
    assert_eq!(details["status"], "ready", "{details}");
    let d = app
        .as_user("alice")
        .get(&format!("/api/v1/images/{id}"))
        .body["data"]
        .clone();
    assert_eq!(d["name"], "docker.io/library/nginx:1.25");
    assert_eq!(
        d["digest"],
        artifact_digest(&harbor, "catalog/docker.io/library/nginx", "1.25")
    );
    let platforms: Vec<(String, String)> = d["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["os"].as_str().unwrap().to_owned(),
                p["architecture"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [
            ("linux".to_owned(), "amd64".to_owned()),
            ("linux".to_owned(), "arm64".to_owned())
        ],
        "each platform, attestations left out"
    );
    assert!(
        d["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["digest"].as_str().unwrap().starts_with("sha256:"))
    );
}

#[test]
fn harbor_down_at_trigger_time_fails_clearly_and_can_be_retried() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 0);
    harbor.faults(FaultsPatch {
        down: Some(true),
        ..Default::default()
    });
    let r = import(
        &app,
        "alice",
        json!({"source": "nvcr.io/nvidia/pytorch:24.01-py3"}),
    );
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.body["data"]["state"], 0);
    let message = r.body["data"]["message"].as_str().unwrap();
    assert!(message.contains("unreachable"), "{message}");
    let id = r.body["data"]["image_id"].as_i64().unwrap();
    let image = app.as_user("alice").get(&format!("/api/v1/images/{id}"));
    assert_eq!(image.body["data"]["status"], "failed");

    // Only the owner or an admin may retry, and only a failed import.
    assert_eq!(
        app.as_user("bob")
            .send("PUT", &format!("/api/v1/images/{id}/importing:retry"), None)
            .status,
        403
    );
    harbor.faults(FaultsPatch {
        down: Some(false),
        ..Default::default()
    });
    let retried =
        app.as_user("alice")
            .send("PUT", &format!("/api/v1/images/{id}/importing:retry"), None);
    assert_eq!(started_id(&retried), id);
    let (_, details) = wait_for_end(&app, id, Duration::from_secs(30));
    assert_eq!(details["status"], "ready", "{details}");
    let not_failed =
        app.as_user("alice")
            .send("PUT", &format!("/api/v1/images/{id}/importing:retry"), None);
    assert_eq!(not_failed.status, 409, "{}", not_failed.text);
}

#[test]
fn failed_executions_end_failed_with_the_reason_in_plain_words() {
    let harbor = TestHarbor::start();
    harbor.upstream(UpstreamImage {
        registry: Some("docker.io".into()),
        repository: "library/ubuntu".into(),
        tag: "22.04".into(),
        failure: Some(UpstreamFailure::RateLimited),
        ..Default::default()
    });
    harbor.upstream(UpstreamImage {
        registry: Some("nvcr.io".into()),
        repository: "nvidia/private".into(),
        tag: "1".into(),
        failure: Some(UpstreamFailure::Unauthorized),
        ..Default::default()
    });
    let app = app_with(&harbor, 0);
    for (source, needle) in [
        ("ubuntu:22.04", "rate-limited"),
        ("nvcr.io/nvidia/private:1", "unauthorized"),
        ("docker.io/team/app:missing", "not found"),
    ] {
        let id = started_id(&import(&app, "alice", json!({ "source": source })));
        let (progress, details) = wait_for_end(&app, id, Duration::from_secs(30));
        assert_monotonic(&progress);
        assert_eq!(details["status"], "failed", "{source}: {details}");
        let message = details["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{source}: {message}");
    }
}

#[test]
fn an_execution_that_reads_failed_briefly_is_not_taken_for_a_failure() {
    let harbor = TestHarbor::start_with(Duration::from_millis(400));
    harbor.faults(FaultsPatch {
        flap_failed_before_succeed: Some(true),
        ..Default::default()
    });
    // Harbor reads Failed for about one step (400 ms); berth waits 5 s before believing it.
    let app = TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables: vec![
            ("import_failure_confirm_seconds".into(), "5".into()),
            ("import_reconcile_after_seconds".into(), "0".into()),
        ],
        ..Default::default()
    });

    let id = started_id(&import(
        &app,
        "alice",
        json!({"source": "quay.io/team/flappy:1"}),
    ));
    let (_, details) = wait_for_end(&app, id, Duration::from_secs(30));
    assert_eq!(details["status"], "ready", "{details}");
}

#[test]
fn lost_webhooks_are_recovered_by_reconciliation_on_read() {
    let harbor = TestHarbor::start();
    harbor.drop_webhooks();
    let app = app_with(&harbor, 1);
    let id = started_id(&import(
        &app,
        "alice",
        json!({"source": "ghcr.io/team/lost:2"}),
    ));
    let (_, details) = wait_for_end(&app, id, Duration::from_secs(30));
    assert_eq!(details["status"], "ready", "{details}");
    let state = harbor.state();
    assert!(
        state.webhook_deliveries.iter().all(|d| d.dropped),
        "no webhook was delivered"
    );
    let d = app
        .as_user("alice")
        .get(&format!("/api/v1/images/{id}"))
        .body["data"]
        .clone();
    assert_eq!(
        d["digest"],
        artifact_digest(&harbor, "catalog/ghcr.io/team/lost", "2")
    );
}

#[test]
fn duplicate_and_reordered_webhooks_change_nothing_twice() {
    let harbor = TestHarbor::start();
    harbor.faults(FaultsPatch {
        webhooks: Some(WebhookFaultsPatch {
            duplicate: Some(true),
            reorder: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    });
    // Reads never ask Harbor here: the webhooks alone must finish the import.
    let app = app_with(&harbor, 3600);
    let id = started_id(&import(
        &app,
        "alice",
        json!({"source": "docker.io/team/dup:1"}),
    ));
    let (progress, details) = wait_for_end(&app, id, Duration::from_secs(30));
    assert_monotonic(&progress);
    assert_eq!(details["status"], "ready", "{details}");
    std::thread::sleep(Duration::from_millis(1500)); // let late duplicates arrive
    let before = app.as_admin().get(&format!("/api/v1/images/{id}"));

    // Replaying every delivered event once more changes nothing.
    for delivery in harbor.state().webhook_deliveries {
        let r = app.raw(
            "POST",
            "/api/v1/hooks/harbor",
            None,
            &[
                ("authorization", &format!("Bearer {WEBHOOK_SECRET}")),
                ("content-type", "application/json"),
            ],
            delivery.payload.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let after = app.as_admin().get(&format!("/api/v1/images/{id}"));
    assert_eq!(
        before.header("etag"),
        after.header("etag"),
        "no change after replays"
    );
    assert_eq!(after.body["data"]["availability"], "ready");
}

#[test]
fn forged_webhooks_are_rejected_and_change_nothing() {
    let harbor = TestHarbor::start();
    harbor.faults(FaultsPatch {
        hang_executions: Some(true),
        ..Default::default()
    });
    let app = app_with(&harbor, 3600);
    let id = started_id(&import(
        &app,
        "alice",
        json!({"source": "docker.io/team/hang:1"}),
    ));
    let execution = harbor.state().executions[0].id;
    let event = json!({"type": "REPLICATION", "occur_at": 1, "operator": "x", "event_data": {"replication": {
        "job_status": "Success", "execution_id": execution, "task_id": 1}}});
    let push = json!({"type": "PUSH_ARTIFACT", "occur_at": 1, "operator": "x", "event_data": {
        "resources": [{"digest": "sha256:aaaa", "tag": "1", "resource_url": "x"}],
        "repository": {"name": "team/hang", "namespace": "catalog", "repo_full_name": "catalog/docker.io/team/hang", "repo_type": "private"}}});
    for auth in [None, Some("Bearer wrong"), Some("wrong"), Some("")] {
        for body in [&event, &push] {
            let mut headers = vec![("content-type", "application/json")];
            if let Some(a) = auth {
                headers.push(("authorization", a));
            }
            let r = app.raw(
                "POST",
                "/api/v1/hooks/harbor",
                None,
                &headers,
                body.to_string().as_bytes(),
            );
            assert_eq!(r.status, 401, "{auth:?}: {}", r.text);
        }
    }
    let image = app.as_admin().get(&format!("/api/v1/images/{id}"));
    assert_eq!(image.body["data"]["status"], "importing");
}

#[test]
fn fifty_concurrent_imports_all_reach_ready() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 1);
    let ids: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|t| {
                let app = &app;
                s.spawn(move || {
                    (0..5)
                        .map(|i| {
                            started_id(&import(
                                app,
                                "alice",
                                json!({"source": format!("docker.io/fleet/app-{t}-{i}:1.0")}),
                            ))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 50);
    for id in &ids {
        let (_, details) = wait_for_end(&app, *id, Duration::from_secs(60));
        assert_eq!(details["status"], "ready", "image {id}: {details}");
    }
    let state = harbor.state();
    assert_eq!(
        state.executions.len(),
        50,
        "one execution each, none duplicated"
    );
    let listed = app
        .as_admin()
        .get("/api/v1/images?name=fleet/app&page_size=100");
    assert_eq!(listed.body["data"]["pagination"]["total"], 50);

    // The same source requested ten times at once starts one execution.
    let results: Vec<Reply> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..10)
            .map(|_| s.spawn(|| import(&app, "bob", json!({"source": "docker.io/fleet/same:1"}))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let same: Vec<i64> = results.iter().map(started_id).collect();
    assert!(same.iter().all(|id| *id == same[0]), "{same:?}");
    assert_eq!(harbor.state().executions.len(), 51);
}

#[test]
fn worker_progress_callbacks_feed_importing_details() {
    let harbor = TestHarbor::start();
    harbor.faults(FaultsPatch {
        hang_executions: Some(true),
        ..Default::default()
    });
    let app = app_with(&harbor, 3600);
    let id = started_id(&import(
        &app,
        "alice",
        json!({"source": "docker.io/team/worker:3"}),
    ));
    let reference = format!("{}/catalog/docker.io/team/worker:3", harbor.sim.addr());
    let name = berth_domain::services::imports::progress_name(&reference);
    let path = format!("/api/v1/images:import/{name}/progress");
    let put = |token: &str, body: Value| {
        app.raw(
            "PUT",
            &path,
            None,
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    };
    let r = put(
        WORKER_TOKEN,
        json!({"sha256:aaa": {"status": "downloading", "progress": 45}, "sha256:bbb": {"status": "completed", "progress": 100}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let details = app
        .as_user("alice")
        .get(&format!("/api/v1/images/{id}/importing-details"))
        .body["data"]
        .clone();
    assert_eq!(
        details["layersDetail"],
        json!({"sha256:aaa": {"status": "downloading", "progress": 45}, "sha256:bbb": {"status": "completed", "progress": 100}})
    );
    assert_eq!(details["progress"], 72);

    // Late or forged reports change nothing; bad ones are refused.
    let late = put(
        WORKER_TOKEN,
        json!({"sha256:aaa": {"status": "downloading", "progress": 10}}),
    );
    assert_eq!(late.body["data"]["changed"], false, "{}", late.text);
    assert_eq!(
        put("forged", json!({"sha256:aaa": {"progress": 99}})).status,
        401
    );
    assert_eq!(
        put(WORKER_TOKEN, json!({"sha256:aaa": {"progress": 250}})).status,
        400
    );
    let unknown = app.raw(
        "PUT",
        &format!(
            "/api/v1/images:import/{}/progress",
            berth_domain::services::imports::progress_name("nowhere.io/x/y:1")
        ),
        None,
        &[
            ("authorization", &format!("Bearer {WORKER_TOKEN}")),
            ("content-type", "application/json"),
        ],
        b"{}",
    );
    assert_eq!(unknown.status, 404);
    let details = app
        .as_user("alice")
        .get(&format!("/api/v1/images/{id}/importing-details"))
        .body["data"]
        .clone();
    assert_eq!(details["layersDetail"]["sha256:aaa"]["progress"], 45);

    let digest = format!("sha256:{}", "c".repeat(64));
    let done = put(
        WORKER_TOKEN,
        json!({"sha256:aaa": {"status": "completed", "progress": 100}, "status": "completed", "digest": digest, "size": 1234, "arch": "arm64", "os": "linux"}),
    );
    assert_eq!(done.status, 200, "{}", done.text);
    let image = app
        .as_user("alice")
        .get(&format!("/api/v1/images/{id}"))
        .body["data"]
        .clone();
    assert_eq!(
        (
            image["availability"].as_str(),
            image["digest"].as_str(),
            image["size"].as_i64()
        ),
        (Some("ready"), Some(digest.as_str()), Some(1234))
    );
    assert_eq!(
        put(WORKER_TOKEN, json!({"status": "failed"})).body["data"]["changed"],
        false,
        "ready is final"
    );
}

#[test]
fn harbor_statistics_say_what_they_count() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 0);
    let id = started_id(&import(
        &app,
        "alice",
        json!({"source": "docker.io/team/stats:1"}),
    ));
    wait_for_end(&app, id, Duration::from_secs(30));
    let r = app.as_user("alice").get("/api/v1/harbor/stats");
    assert_eq!(r.status, 200, "{}", r.text);
    let d = &r.body["data"];
    assert_eq!(d["scope"], "all");
    assert!(
        d["totalProjects"].as_i64().unwrap() >= 2,
        "library and catalog: {d}"
    );
    assert!(d["totalImages"].as_i64().unwrap() >= 1, "{d}");
    assert!(d["totalSize"].as_i64().is_some(), "{d}");
    assert_eq!(
        app.as_user("alice")
            .send("POST", "/api/v1/harbor/stats", None)
            .status,
        405
    );
}

#[test]
fn deleting_an_imported_image_deletes_it_in_harbor() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 0);
    let id = started_id(&import(
        &app,
        "alice",
        json!({"source": "docker.io/team/gone:1"}),
    ));
    wait_for_end(&app, id, Duration::from_secs(30));
    assert_eq!(
        harbor
            .state()
            .artifacts
            .iter()
            .filter(|a| a.repository == "catalog/docker.io/team/gone")
            .count(),
        1
    );
    // The imported copy is shared: its importer may not delete it (issue #12), an admin may.
    let r = app
        .as_user("alice")
        .send("DELETE", &format!("/api/v1/images/{id}"), None);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app
        .as_admin()
        .send("DELETE", &format!("/api/v1/images/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        harbor
            .state()
            .artifacts
            .iter()
            .filter(|a| a.repository == "catalog/docker.io/team/gone")
            .count(),
        0
    );

    // When Harbor refuses, the image stays and the user is told.
    let id = started_id(&import(
        &app,
        "alice",
        json!({"source": "docker.io/team/kept:1"}),
    ));
    wait_for_end(&app, id, Duration::from_secs(30));
    harbor.faults(FaultsPatch {
        api_errors: Some(berth_tests::harbor::ApiErrorFault {
            status: 500,
            count: 5,
            path_prefix: Some("/api/v2.0/projects".into()),
            message: None,
        }),
        ..Default::default()
    });
    let r = app
        .as_admin()
        .send("DELETE", &format!("/api/v1/images/{id}"), None);
    assert_eq!(r.status, 502, "{}", r.text);
    assert!(
        r.body["message"].as_str().unwrap().contains("kept"),
        "{}",
        r.text
    );
    assert_eq!(
        app.as_user("alice")
            .get(&format!("/api/v1/images/{id}"))
            .status,
        200
    );
}

#[test]
fn bad_import_requests_get_clear_errors() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 0);
    for (body, status, needle) in [
        (json!({"source": "Not A Reference"}), 400, "'source'"),
        (
            json!({"source": "nginx:1.25", "sourceRegistry": "quay.io"}),
            400,
            "'sourceRegistry'",
        ),
        (
            json!({"source": "evil.example.com/x/y:1"}),
            403,
            "not an allowed import source",
        ),
        (json!({"source": "nginx", "extra": 1}), 400, "unknown field"),
        (json!({}), 400, "source"),
    ] {
        let r = import(&app, "alice", body.clone());
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(
            r.body["message"].as_str().unwrap().contains(needle),
            "{body}: {}",
            r.text
        );
    }
    assert_eq!(
        app.anonymous()
            .send(
                "POST",
                "/api/v1/images:import",
                Some(&json!({"source": "nginx"}))
            )
            .status,
        401
    );
    assert_eq!(
        app.as_user("alice").get("/api/v1/images:import").status,
        405
    );
    assert!(
        harbor.state().executions.is_empty(),
        "nothing reached Harbor"
    );
}

#[test]
fn admins_manage_source_registries_and_imports_use_their_credentials() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 0);
    let secret = "dckr_pat_very-secret-value";
    let body = json!({"name": "Docker Hub (team account)", "host": "docker.io", "username": "team", "password": secret});
    assert_eq!(
        app.as_user("alice")
            .send("POST", "/api/v1/registries", Some(&body))
            .status,
        403
    );
    let r = app
        .as_admin()
        .send("POST", "/api/v1/registries", Some(&body));
    assert_eq!(r.status, 201, "{}", r.text);
    let d = &r.body["data"];
    assert_eq!(
        (d["type"].as_str(), d["url"].as_str()),
        (Some("docker-hub"), Some("https://hub.docker.com"))
    );
    assert_eq!(d["has_password"], true);
    assert!(!r.text.contains(secret), "the password is never returned");
    let harbor_id = d["harbor_registry_id"].as_i64().unwrap();
    let listed = app.as_user("alice").get("/api/v1/registries");
    assert_eq!(listed.body["data"]["total"], 1);
    assert!(!listed.text.contains(secret));
    let duplicate = app
        .as_admin()
        .send("POST", "/api/v1/registries", Some(&body));
    assert_eq!(duplicate.status, 409, "{}", duplicate.text);
    for (bad, field) in [
        (json!({"host": "not a host"}), "'host'"),
        (json!({"host": "quay.io", "type": "ftp"}), "'type'"),
        (json!({"host": "quay.io", "password": "x"}), "'username'"),
        (json!({"host": "quay.io", "url": "ftp://quay.io"}), "'url'"),
    ] {
        let r = app
            .as_admin()
            .send("POST", "/api/v1/registries", Some(&bad));
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(
            r.body["message"].as_str().unwrap().contains(field),
            "{bad}: {}",
            r.text
        );
    }

    // Imports from docker.io now replicate through the credentialed endpoint.
    let id = started_id(&import(
        &app,
        "alice",
        json!({"source": "docker.io/team/private-model:1"}),
    ));
    let (_, details) = wait_for_end(&app, id, Duration::from_secs(30));
    assert_eq!(details["status"], "ready", "{details}");
    let state = harbor.state();
    let registry = state
        .registries
        .iter()
        .find(|r| r.id == harbor_id)
        .expect("the endpoint exists in Harbor");
    assert!(
        registry.name.starts_with("berth-docker.io-"),
        "a credentialed endpoint of its own: {}",
        registry.name
    );
    let created = state
        .requests
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/registries"))
        .expect("registry created");
    assert!(
        created
            .body
            .as_ref()
            .is_some_and(|b| b["credential"]["access_key"] == "team"),
        "{:?}",
        created.body
    );

    assert!(
        state
            .policies
            .iter()
            .all(|p| p.src_registry_id == harbor_id),
        "{:?}",
        state.policies
    );

    // Rotating the password makes a new endpoint; deleting the registry forgets it.
    let rotated = app.as_admin().send(
        "PUT",
        &format!("/api/v1/registries/{}", d["id"]),
        Some(&json!({"password": "new-secret"})),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_ne!(
        rotated.body["data"]["harbor_registry_id"].as_i64().unwrap(),
        harbor_id
    );
    assert_eq!(
        app.as_admin()
            .send("DELETE", &format!("/api/v1/registries/{}", d["id"]), None)
            .status,
        200
    );
    assert_eq!(
        app.as_user("alice").get("/api/v1/registries").body["data"]["total"],
        0
    );

    // No secret reached the logs.
    let logs = app.output();
    for s in [
        secret,
        "new-secret",
        berth_tests::harbor::PASSWORD,
        WEBHOOK_SECRET,
        WORKER_TOKEN,
        berth_tests::JWT_SECRET,
    ] {
        assert!(!logs.contains(s), "a secret is in the host's output");
    }
}

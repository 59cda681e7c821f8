//! Custom builds end to end: berth validates and dispatches a signed job to the simulated
//! runner, the runner reports back and pushes into the simulated Harbor, and Harbor's
//! PUSH_ARTIFACT webhook completes the build with a private, ready image.

use std::time::{Duration, Instant};

use berth_tests::harbor::TestHarbor;
use berth_tests::{AppOptions, RUNNER_TOKEN, Reply, TestApp};
use serde_json::{Value, json};

fn app_with(harbor: &TestHarbor, deadline_seconds: u32) -> TestApp {
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables: vec![(
            "build_deadline_seconds".into(),
            deadline_seconds.to_string(),
        )],
        ..Default::default()
    })
}

fn seed_002_body() -> Value {
    json!({
        "name": "my-custom-image:1.0",
        "base_image": "ubuntu20-pytorch:2.0",
        "dockerfile": "FROM ubuntu20-pytorch:2.0\nRUN pip install transformers",
        "description": "自定义 NLP 镜像"
    })
}

fn build_id(r: &Reply) -> String {
    assert_eq!(r.status, 202, "{}", r.text);
    let data = if r.body.get("data").is_some() {
        &r.body["data"]
    } else {
        &r.body
    };
    assert_eq!(data["status"], "building", "{}", r.text);
    data["build_id"].as_str().unwrap().to_owned()
}

/// Polls a build until it ends.
fn wait_build(app: &TestApp, who: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = app.as_user(who).get(&format!("/api/v1/builds/{id}"));
        assert_eq!(r.status, 200, "{}", r.text);
        let b = r.body["data"].clone();
        if matches!(b["status"].as_str(), Some("succeeded" | "failed")) {
            return b;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "build {id} still {}",
            b["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The job the runner received for a build.
fn job(harbor: &TestHarbor, id: &str) -> Value {
    let state = serde_json::to_value(harbor.state()).unwrap();
    state["runner_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["build_id"] == id)
        .unwrap_or_else(|| panic!("no runner job {id}: {}", state["runner_jobs"]))
        .clone()
}

#[test]
fn tc_01_list_official_images() {
    let app = TestApp::spawn();
    let console = app.as_user("alice").get("/api/images?is_official=true");
    assert_eq!(console.status, 200, "{}", console.text);
    // Seed 002's portal reads `images` (seed 001's `data.list` shows display names).
    let names: Vec<&str> = console.body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ubuntu20-pytorch:2.0",
            "ubuntu20-tensorflow:2.12",
            "ubuntu22-cuda:12.0",
            "ubuntu20-jupyter:latest"
        ]
    );
    let v1 = app.as_user("alice").get("/api/v1/images?is_official=true");
    assert_eq!(v1.body["data"]["pagination"]["total"], 4);
}

#[test]
fn tc_02_build_a_custom_image() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 60);
    let r = app
        .as_user("alice")
        .send("POST", "/api/images/build", Some(&seed_002_body()));
    let id = build_id(&r);
    assert_eq!(
        r.body.as_object().unwrap().len(),
        2,
        "exactly seed 002's answer: {}",
        r.text
    );
    assert!(id.starts_with("build-"));

    let b = wait_build(&app, "alice", &id);
    assert_eq!(b["status"], "succeeded", "{b}");
    // The name its owner gave; alice's namespace is in the Harbor path only.
    assert_eq!(b["name"], "my-custom-image:1.0");
    let image_id = b["image_id"].as_i64().unwrap();

    let image = app
        .as_user("alice")
        .get(&format!("/api/v1/images/{image_id}"));
    assert_eq!(image.status, 200, "{}", image.text);
    let d = &image.body["data"];
    assert_eq!(
        (
            d["availability"].as_str(),
            d["visibility"].as_str(),
            d["owner"].as_str()
        ),
        (Some("ready"), Some("private"), Some("alice"))
    );
    assert_eq!(d["description"], "自定义 NLP 镜像");
    assert_eq!(d["framework"], "pytorch", "inherited from its base");
    let state = harbor.state();
    let artifact = state
        .artifacts
        .iter()
        .find(|a| a.repository == "catalog/users/alice/my-custom-image")
        .expect("pushed to Harbor");
    assert_eq!(d["digest"], artifact.digest);
    assert_eq!(
        d["registry_url"],
        format!(
            "{}/catalog/users/alice/my-custom-image:1.0",
            harbor.sim.addr()
        )
    );

    let mine = app.as_user("alice").get("/api/v1/images?is_official=false");
    assert!(mine.text.contains("alice/my-custom-image:1.0"));
    assert_eq!(
        app.as_user("bob")
            .get(&format!("/api/v1/images/{image_id}"))
            .status,
        404
    );
    assert!(
        !app.as_user("bob")
            .get("/api/v1/images?page_size=100")
            .text
            .contains("my-custom-image")
    );
    assert_eq!(
        app.as_user("bob")
            .get(&format!("/api/v1/builds/{id}"))
            .status,
        404,
        "builds are their owner's"
    );

    let sent = job(&harbor, &id);
    assert_eq!(
        sent["signature_ok"], true,
        "signed with runner_secret: {sent}"
    );
    // The catalog name in FROM is sent as the reference the runner pulls.
    let dockerfile = sent["body"]["dockerfile"].as_str().unwrap_or_default();
    let from = format!(
        "FROM {}/library/ubuntu20-pytorch:2.0@sha256:",
        harbor.sim.addr()
    );
    assert!(
        dockerfile.starts_with(&from) && dockerfile.ends_with("\nRUN pip install transformers"),
        "{dockerfile}"
    );
    assert_eq!(
        sent["body"]["push"]["repository"],
        "catalog/users/alice/my-custom-image"
    );

    let list = app.as_user("alice").get("/api/v1/builds");
    assert_eq!(list.body["data"]["builds"][0]["build_id"], id);
    let again = app
        .as_user("alice")
        .send("POST", "/api/images/build", Some(&seed_002_body()));
    assert_eq!(again.status, 409, "{}", again.text);
}

#[test]
fn packages_mode_generates_the_dockerfile() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 60);
    let body = json!({"mode": "packages", "name": "nlp-tools:1", "base_image": "ubuntu20-pytorch:2.0",
                      "packages": {"pip": ["transformers==4.40.0", "peft"], "apt": ["git"]}});
    let r = app
        .as_user("alice")
        .send("POST", "/api/v1/images:build", Some(&body));
    let id = build_id(&r);
    assert_eq!(r.body["code"], 0);
    let b = wait_build(&app, "alice", &id);
    assert_eq!(b["status"], "succeeded", "{b}");
    let dockerfile = job(&harbor, &id)["body"]["dockerfile"]
        .as_str()
        .unwrap()
        .to_owned();
    // The official image lives in the configured Harbor, pinned to the digest berth knows.
    let from = format!(
        "FROM {}/library/ubuntu20-pytorch:2.0@sha256:",
        harbor.sim.addr()
    );
    assert!(dockerfile.starts_with(&from), "{dockerfile}");
    assert!(
        dockerfile.contains("apt-get install -y --no-install-recommends git"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("pip install --no-cache-dir 'transformers==4.40.0' 'peft'"),
        "{dockerfile}"
    );
    let image = app
        .as_user("alice")
        .get(&format!("/api/v1/images/{}", b["image_id"]));
    assert_eq!(image.body["data"]["cuda_version"], "11.8");

    for (packages, field) in [
        (json!({"pip": ["ok", "bad; rm -rf /"]}), "packages.pip"),
        (json!({"apt": ["Git"]}), "packages.apt"),
        (json!({}), "packages"),
    ] {
        let r = app.as_user("alice").send(
            "POST",
            "/api/v1/images:build",
            Some(&json!({"mode": "packages", "name": "x:1", "base_image": "ubuntu20-pytorch:2.0", "packages": packages})),
        );
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(
            r.body["message"]
                .as_str()
                .unwrap()
                .contains(&format!("'{field}'")),
            "{}",
            r.text
        );
    }
}

#[test]
fn environment_mode_saves_an_environment() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 60);
    let body = json!({"mode": "environment", "name": "saved-env:1", "environment_id": "env-42"});
    let id = build_id(
        &app.as_user("alice")
            .send("POST", "/api/v1/images:build", Some(&body)),
    );
    let b = wait_build(&app, "alice", &id);
    assert_eq!(b["status"], "succeeded", "{b}");
    assert_eq!(job(&harbor, &id)["body"]["environment_id"], "env-42");
    let bad = app.as_user("alice").send(
        "POST",
        "/api/v1/images:build",
        Some(&json!({"mode": "environment", "name": "e:1", "environment_id": "../x"})),
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn a_failing_build_ends_failed_with_the_runners_message() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 60);
    let body = json!({"name": "broken:1", "dockerfile": "FROM ubuntu22-cuda:12.0\nRUN pip install nonexistent-pkg\n# sim: fail"});
    let id = build_id(
        &app.as_user("alice")
            .send("POST", "/api/images/build", Some(&body)),
    );
    let b = wait_build(&app, "alice", &id);
    assert_eq!(b["status"], "failed", "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("non-zero code"),
        "{b}"
    );
    assert!(b["log_tail"].as_str().is_some(), "{b}");
    assert_eq!(b["image_id"], Value::Null);
    assert!(
        !app.as_user("alice")
            .get("/api/v1/images?page_size=100")
            .text
            .contains("broken")
    );
}

#[test]
fn a_silent_runner_fails_the_build_after_its_deadline() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 2);
    let body = json!({"name": "quiet:1", "dockerfile": "FROM ubuntu22-cuda:12.0\n# sim: silent"});
    let id = build_id(
        &app.as_user("alice")
            .send("POST", "/api/images/build", Some(&body)),
    );
    assert_eq!(
        app.as_user("alice")
            .get(&format!("/api/v1/builds/{id}"))
            .body["data"]["status"],
        "building"
    );
    let b = wait_build(&app, "alice", &id);
    assert_eq!(b["status"], "failed", "{b}");
    assert!(b["message"].as_str().unwrap().contains("deadline"), "{b}");
}

#[test]
fn forged_runner_callbacks_are_rejected() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, 60);
    let body = json!({"name": "guarded:1", "dockerfile": "FROM ubuntu22-cuda:12.0\n# sim: silent"});
    let id = build_id(
        &app.as_user("alice")
            .send("POST", "/api/images/build", Some(&body)),
    );
    let path = format!("/api/v1/builds/{id}/status");
    let failed = json!({"status": "failed", "message": "forged"});
    for token in ["wrong", ""] {
        let r = app.raw(
            "PUT",
            &path,
            None,
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/json"),
            ],
            failed.to_string().as_bytes(),
        );
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let user = app.as_user("alice").send("PUT", &path, Some(&failed));
    assert_eq!(
        user.status, 401,
        "a user's token is not the runner's: {}",
        user.text
    );
    assert_eq!(
        app.as_user("alice")
            .get(&format!("/api/v1/builds/{id}"))
            .body["data"]["status"],
        "building"
    );

    let real = app.raw(
        "PUT",
        &path,
        None,
        &[
            ("authorization", &format!("Bearer {RUNNER_TOKEN}")),
            ("content-type", "application/json"),
        ],
        json!({"status": "running", "log_tail": "Step 2/3"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(real.status, 200, "{}", real.text);
    assert_eq!(
        app.as_user("alice")
            .get(&format!("/api/v1/builds/{id}"))
            .body["data"]["log_tail"],
        "Step 2/3"
    );
}

#[test]
fn bad_build_requests_get_a_400_and_nothing_is_dispatched() {
    let harbor = TestHarbor::start();
    let app = TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables: vec![("allow_user_images".into(), "true".into())],
        ..Default::default()
    });
    let private = app.as_user("bob").send("POST", "/api/v1/images", Some(&json!({"name": "bob-private:1", "registry_url": "harbor.remotegpu.com/users/bob/private:1"})));
    assert_eq!(private.status, 201, "{}", private.text);
    let huge = format!(
        "FROM ubuntu22-cuda:12.0\n{}",
        "RUN echo 0123456789abcdef\n".repeat(2000)
    );
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "a:1", "dockerfile": "RUN echo no base"}),
            "must be FROM",
        ),
        (json!({"name": "a:1", "dockerfile": "# nothing"}), "empty"),
        (
            // Another user's private image is no base, and the answer does not say it exists.
            json!({"name": "a:1", "dockerfile": "FROM harbor.remotegpu.com/users/bob/private:1"}),
            "is not a catalog image and harbor.remotegpu.com is not an allowed registry",
        ),
        (
            json!({"name": "a:1", "dockerfile": "FROM evil.example.com/x/y:1"}),
            "not an allowed registry",
        ),
        (
            json!({"name": "a:1", "dockerfile": "FROM ubuntu22-cuda:12.0\nFROM evil.example.com/x/y:1 AS two"}),
            "line 2",
        ),
        (json!({"name": "a:1", "dockerfile": huge}), "larger than"),
        (
            json!({"name": "a:1", "dockerfile": "FROM ubuntu22-cuda:12.0\nRUN \u{0}\u{1}\u{2}junk"}),
            "binary",
        ),
        (
            json!({"name": "a:1", "dockerfile": "FROM ubuntu22-cuda:12.0\nRUNN x"}),
            "unknown instruction",
        ),
        (json!({"name": "a:1", "dockerfile": "FROM ${BASE}"}), "ARG"),
        (json!({"name": "a:1"}), "'dockerfile'"),
        (
            json!({"name": "Bad Name", "dockerfile": "FROM ubuntu22-cuda:12.0"}),
            "'name'",
        ),
        (
            json!({"name": "a:1", "dockerfile": "FROM ubuntu22-cuda:12.0", "base_image": "ubuntu20-pytorch:2.0"}),
            "'base_image'",
        ),
        (
            json!({"name": "a:1", "dockerfile": "FROM ubuntu22-cuda:12.0", "mode": "magic"}),
            "'mode'",
        ),
        (
            json!({"name": "a:1", "dockerfile": "FROM ubuntu22-cuda:12.0", "shell": "rm"}),
            "unknown field",
        ),
    ];
    for (body, needle) in cases {
        let r = app
            .as_user("alice")
            .send("POST", "/api/v1/images:build", Some(&body));
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message}");
    }
    assert_eq!(
        app.anonymous()
            .send("POST", "/api/images/build", Some(&seed_002_body()))
            .status,
        401
    );
    let state = serde_json::to_value(harbor.state()).unwrap();
    assert_eq!(state["runner_jobs"], json!([]), "nothing was dispatched");
}

//! Hostile users against names, references and imports, end to end: squatted names and
//! references, colliding source registries and build namespaces, digest pins, artifact
//! reads that fail, and an import stranded between its claim and its Harbor execution
//! (re-driven, adopting the execution its first run started).
//! Every test tallies the attacks it tried and asserts that none of them drew a 5xx.

use std::time::{Duration, Instant};

use berth_tests::harbor::{TestHarbor, UpstreamImage};
use berth_tests::tally::Tally;
use berth_tests::{AppOptions, Reply, TestApp};
use harbor_sim::{ApiErrorFault, FaultsPatch};
use serde_json::{Value, json};

const SOURCE: &str = "docker.io/library/ubuntu:22.04";

fn upstream(harbor: &TestHarbor, registry: &str, repository: &str, tag: &str, revision: u32) {
    harbor.upstream(UpstreamImage {
        registry: Some(registry.into()),
        repository: repository.into(),
        tag: tag.into(),
        platforms: vec!["linux/amd64".into()],
        revision,
        ..Default::default()
    });
}

fn harbor_with_ubuntu() -> TestHarbor {
    let harbor = TestHarbor::start();
    upstream(&harbor, "docker.io", "library/ubuntu", "22.04", 0);
    harbor
}

/// An app on `harbor` where users may register private images.
fn app_with(harbor: &TestHarbor, extra: &[(&str, &str)]) -> TestApp {
    let mut variables = vec![("allow_user_images".to_owned(), "true".to_owned())];
    variables.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables,
        ..Default::default()
    })
}

/// Starts an import of `source` as `who`; returns its image id.
fn start_import(app: &TestApp, who: &str, source: &str) -> i64 {
    let r = app.as_user(who).send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": source})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]["image_id"].as_i64().unwrap()
}

/// Polls an import until it ends; returns its importing-details.
fn wait_import(app: &TestApp, id: i64) -> Value {
    let start = Instant::now();
    loop {
        let d = app
            .as_admin()
            .get(&format!("/api/v1/images/{id}/importing-details"));
        assert_eq!(d.status, 200, "{}", d.text);
        if d.body["data"]["status"] != "importing" {
            return d.body["data"].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", d.text);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn image(app: &TestApp, id: i64) -> Value {
    let r = app.as_admin().get(&format!("/api/v1/images/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].clone()
}

fn wait_build(app: &TestApp, who: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = app.as_user(who).get(&format!("/api/v1/builds/{id}"));
        assert_eq!(r.status, 200, "{}", r.text);
        let b = r.body["data"].clone();
        if matches!(b["status"].as_str(), Some("succeeded" | "failed")) {
            return b;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", r.text);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn build(app: &TestApp, who: &str, name: &str) -> Reply {
    app.as_user(who).send(
        "POST",
        "/api/v1/images:build",
        Some(&json!({"name": name, "dockerfile": "FROM docker.io/library/ubuntu:22.04\nRUN true"})),
    )
}

#[test]
fn squatted_names_and_references_block_no_one() {
    let mut t = Tally::new("squatted names");
    let harbor = harbor_with_ubuntu();
    let app = app_with(&harbor, &[]);
    let harbor_host = harbor.sim.addr().to_string();
    let mallory = app.as_user("mallory");

    // Mallory's private image named like the import, and like alice's coming build.
    for (name, url) in [
        (SOURCE, "registry.example.com/squat/ubuntu:22.04"),
        ("model:1", "registry.example.com/squat/model:1"),
    ] {
        let r = mallory.send(
            "POST",
            "/api/v1/images",
            Some(&json!({"name": name, "registry_url": url})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // The import of that name still works (it answered 500 before), and so does alice's
    // build of `model:1` (409 before).
    let id = start_import(&app, "alice", SOURCE);
    assert_eq!(wait_import(&app, id)["status"], "ready");
    let b = build(&app, "alice", "model:1");
    assert_eq!(b.status, 202, "{}", b.text);
    let done = wait_build(&app, "alice", b.body["data"]["build_id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");

    // Another user may hold the same name and reference privately; the same owner may not.
    let body = json!({"name": "model:1", "registry_url": "registry.example.com/squat/model:1"});
    let r = app
        .as_user("trent")
        .send("POST", "/api/v1/images", Some(&body));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = mallory.send("POST", "/api/v1/images", Some(&body));
    t.expect("same owner, same name", r, 409, "model:1");
    let r = mallory.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "model:2", "registry_url": "registry.example.com/squat/model:1"})),
    );
    t.expect("same owner, same reference", r, 409, "already");

    // Berth's Harbor project is for imports and builds only: nobody registers a row there
    // (a later import of it answered "already exists" with the squatter's id before).
    let reserved = format!("{harbor_host}/catalog/docker.io/library/nginx:1.25");
    for caller in [app.as_user("mallory"), app.as_admin()] {
        let r = caller.send(
            "POST",
            "/api/v1/images",
            Some(&json!({"name": "nginx-squat:1", "registry_url": reserved})),
        );
        t.expect(
            "row in berth's project (v1)",
            r,
            403,
            "only imports and builds",
        );
        let r = caller.send(
            "POST",
            "/api/images",
            Some(&json!({"name": "nginx-squat:2", "imageAddress": reserved})),
        );
        t.expect(
            "row in berth's project (console)",
            r,
            403,
            "only imports and builds",
        );
    }
    let r = mallory.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "h:1", "registry_url": format!("{harbor_host}/other/x:1")})),
    );
    t.expect("user row on berth's Harbor", r, 403, "only admins");
    let own = mallory.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "mine:1", "registry_url": "registry.example.com/m/mine:1"})),
    );
    assert_eq!(own.status, 201, "{}", own.text);
    let own = own.body["data"]["image_id"].as_i64().unwrap();
    let r = mallory.send(
        "PATCH",
        &format!("/api/v1/images/{own}"),
        Some(&json!({"registry_url": reserved})),
    );
    t.expect(
        "repointed into berth's project",
        r,
        403,
        "only imports and builds",
    );
    t.finish();
}

#[test]
fn built_images_keep_their_name_and_namespaces_do_not_collide() {
    let mut t = Tally::new("build namespaces");
    let harbor = harbor_with_ubuntu();
    let app = app_with(&harbor, &[]);
    let mut targets = Vec::new();
    for who in ["alice", "Alice"] {
        let r = build(&app, who, "my-custom-image:1.0");
        assert_eq!(r.status, 202, "{who}: {}", r.text);
        let id = r.body["data"]["build_id"].as_str().unwrap().to_owned();
        let b = wait_build(&app, who, &id);
        assert_eq!(b["status"], "succeeded", "{who}: {b}");
        // The name its owner gave, not `alice/my-custom-image:1.0`.
        assert_eq!(b["name"], "my-custom-image:1.0", "{b}");
        let img = image(&app, b["image_id"].as_i64().unwrap());
        assert_eq!(img["name"], "my-custom-image:1.0", "{img}");
        assert_eq!(img["owner"], who, "{img}");
        targets.push(b["target"].as_str().unwrap().to_owned());
    }
    assert_ne!(
        targets[0], targets[1],
        "Alice and alice share a Harbor path"
    );
    assert!(targets[0].contains("/users/alice/"), "{}", targets[0]);

    // A second build of the same name by the same owner is refused before dispatch.
    let jobs = || {
        serde_json::to_value(harbor.state()).unwrap()["runner_jobs"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let before = jobs();
    let r = build(&app, "alice", "my-custom-image:1.0");
    t.expect("rebuild of an existing name", r, 409, "my-custom-image:1.0");
    assert_eq!(jobs(), before, "dispatched anyway");

    // Another user's private image is no base, and the refusal does not say it exists.
    let r = app.as_user("mallory").send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "registry.example.com/secret/base:1", "registry_url": "registry.example.com/secret/base:1"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.as_user("bob").send(
        "POST",
        "/api/v1/images:build",
        Some(&json!({"name": "b:1", "dockerfile": "FROM registry.example.com/secret/base:1"})),
    );
    let r = t.expect("another user's private base", r, 400, "not a catalog image");
    assert!(!r.text.contains("private"), "{}", r.text);
    t.finish();
}

#[test]
fn source_registries_land_on_their_own_paths() {
    let harbor = TestHarbor::start();
    upstream(&harbor, "docker.io", "library/memcached", "1.6", 0);
    upstream(&harbor, "quay.io", "library/memcached", "1.6", 7);
    let app = app_with(&harbor, &[]);
    let hub = start_import(&app, "alice", "docker.io/library/memcached:1.6");
    assert_eq!(wait_import(&app, hub)["status"], "ready");
    let quay = start_import(&app, "bob", "quay.io/library/memcached:1.6");
    assert_ne!(quay, hub, "the second import got the first one's copy");
    assert_eq!(wait_import(&app, quay)["status"], "ready");
    let (hub, quay) = (image(&app, hub), image(&app, quay));
    assert_ne!(hub["registry_url"], quay["registry_url"]);
    assert!(
        hub["registry_url"]
            .as_str()
            .unwrap()
            .ends_with("/catalog/docker.io/library/memcached:1.6"),
        "{hub}"
    );
    assert_ne!(hub["digest"], quay["digest"], "{hub} {quay}");
    let repos: Vec<String> = harbor
        .state()
        .artifacts
        .iter()
        .map(|a| a.repository.clone())
        .collect();
    assert!(
        repos.contains(&"catalog/quay.io/library/memcached".to_owned()),
        "{repos:?}"
    );
}

#[test]
fn digest_pins_are_replicated_and_verified_or_refused() {
    let mut t = Tally::new("digest pins");
    let harbor = harbor_with_ubuntu();
    let app = app_with(&harbor, &[]);
    let wrong = format!("sha256:{}", "ab".repeat(32));
    // A bare digest: Harbor replicates tags, so it is refused rather than importing latest.
    let r = app.as_user("alice").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": format!("docker.io/library/httpd@{wrong}")})),
    );
    t.expect("digest without a tag", r, 400, "'source'");

    // A tag with the wrong pin: replicated, checked, and not accepted.
    let id = start_import(&app, "alice", &format!("{SOURCE}@{wrong}"));
    let d = wait_import(&app, id);
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["message"].as_str().unwrap().contains("pinned"), "{d}");

    // Unpinned it imports; then the right pin is that copy, a wrong one a 409.
    let again = start_import(&app, "alice", SOURCE);
    assert_eq!(again, id);
    assert_eq!(wait_import(&app, id)["status"], "ready");
    let digest = image(&app, id)["digest"].as_str().unwrap().to_owned();
    let r = app.as_user("bob").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": format!("{SOURCE}@{digest}")})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["alreadyImageId"], id, "{}", r.text);
    let r = app.as_user("bob").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": format!("{SOURCE}@{wrong}")})),
    );
    t.expect("pin of another digest", r, 409, "not the pinned");
    t.finish();
}

#[test]
fn an_import_is_ready_only_with_the_artifacts_facts() {
    let harbor = harbor_with_ubuntu();
    let app = app_with(&harbor, &[("import_reconcile_after_seconds", "0")]);
    // Every artifact read fails for a while: PUSH_ARTIFACT arrives, the facts do not.
    harbor.faults(FaultsPatch {
        api_errors: Some(ApiErrorFault {
            status: 500,
            count: 1_000,
            path_prefix: Some("/api/v2.0/projects/catalog/repositories".into()),
            message: None,
        }),
        ..Default::default()
    });
    let id = start_import(&app, "alice", SOURCE);
    let start = Instant::now();
    while !harbor
        .state()
        .artifacts
        .iter()
        .any(|a| a.repository.ends_with("library/ubuntu"))
    {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let d = app
        .as_admin()
        .get(&format!("/api/v1/images/{id}/importing-details"));
    assert_eq!(d.body["data"]["status"], "importing", "{}", d.text);
    let img = image(&app, id);
    assert_eq!(img["status"], "importing", "ready without facts: {img}");

    // Once Harbor answers, the next read completes it, with the digest and size.
    harbor.faults(FaultsPatch {
        api_errors: Some(ApiErrorFault {
            status: 500,
            count: 1,
            path_prefix: Some("/nothing".into()),
            message: None,
        }),
        ..Default::default()
    });
    assert_eq!(wait_import(&app, id)["status"], "ready");
    let img = image(&app, id);
    assert!(
        img["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{img}"
    );
    assert!(img["size"].as_i64().unwrap_or(0) > 0, "{img}");
}

#[test]
fn an_import_stranded_before_its_execution_is_driven_again() {
    let harbor = harbor_with_ubuntu();
    let host = harbor.sim.addr().to_string();
    // As a host killed between the claim and Harbor's execution id leaves it: an importing
    // image and a pending attempt without an execution, claimed a minute ago.
    let prepare = move |db: &dyn berth_domain::db::Db| {
        berth_domain::migrations::ensure(db).unwrap();
        let then = "2026-01-01T00:00:00.000Z";
        let deadline = "2999-01-01T00:00:00.000Z";
        let rows = db
            .query(
                "INSERT INTO images (name, registry, repository, tag, visibility, status, publication, origin, \
                 created_by, created_at, updated_at) VALUES (?, ?, 'catalog/docker.io/library/ubuntu', '22.04', \
                 'public', 'importing', 'online', 'import', 'alice', ?, ?) RETURNING id",
                &[SOURCE.into(), host.clone().into(), then.into(), then.into()],
            )
            .unwrap();
        let id = rows.scalar_i64().unwrap();
        db.execute(
            "INSERT INTO imports (image_id, source, source_registry, state, progress, layers_detail, attempt, \
             started_at, updated_at, deadline_at) VALUES (?, ?, 'docker.io', 'pending', 0, '{}', 1, ?, ?, ?)",
            &[id.into(), SOURCE.into(), then.into(), then.into(), deadline.into()],
        )
        .unwrap();
    };
    let app = TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables: vec![("import_redrive_after_seconds".into(), "5".into())],
        prepare_db: Some(Box::new(prepare)),
        ..Default::default()
    });
    // A re-POST re-drives it (before: "in progress" until the deadline).
    let r = app.as_user("bob").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": SOURCE})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"]["message"], "Image import started",
        "{}",
        r.text
    );
    let id = r.body["data"]["image_id"].as_i64().unwrap();
    assert_eq!(wait_import(&app, id)["status"], "ready");
    assert_eq!(harbor.state().executions.len(), 1, "one Harbor execution");
}

#[test]
fn a_redriven_import_adopts_the_execution_its_first_run_started_even_when_finished() {
    let harbor = harbor_with_ubuntu();
    let app = app_with(
        &harbor,
        &[
            ("import_redrive_after_seconds", "5"),
            ("import_reconcile_after_seconds", "0"),
        ],
    );
    let id = start_import(&app, "alice", SOURCE);
    assert_eq!(wait_import(&app, id)["status"], "ready");
    assert_eq!(harbor.state().executions.len(), 1);
    // As a host killed after Harbor started (and finished) the execution, but before berth
    // recorded its id, leaves it: the claim (its started_at) stands, nothing else was kept.
    let db = app.db();
    db.execute(
        "UPDATE images SET status = 'importing' WHERE id = ?",
        &[id.into()],
    )
    .unwrap();
    db.execute(
        "UPDATE imports SET state = 'pending', progress = 0, message = NULL, harbor_registry_id = NULL, \
         policy_id = NULL, execution_id = NULL, last_event_at = NULL, updated_at = '2026-01-01T00:00:00.000Z' \
         WHERE image_id = ?",
        &[id.into()],
    )
    .unwrap();
    drop(db);
    // The re-drive adopts the succeeded execution (before: it started a second copy).
    let r = app.as_user("bob").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": SOURCE})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"]["message"], "Image import started",
        "{}",
        r.text
    );
    assert_eq!(wait_import(&app, id)["status"], "ready");
    assert_eq!(
        harbor.state().executions.len(),
        1,
        "the source was copied twice: {:?}",
        harbor.state().executions
    );
}

#[test]
fn tokens_without_a_subject_or_with_an_excessive_lifetime_are_refused() {
    use berth_domain::auth::Role;
    let mut t = Tally::new("tokens");
    let app = TestApp::spawn();
    for (what, token, says) in [
        (
            "empty sub",
            berth_tests::token("", Role::Admin, 3600),
            "subject",
        ),
        (
            "blank sub",
            berth_tests::token("  ", Role::User, 3600),
            "subject",
        ),
        (
            "a year-long token",
            berth_tests::token("alice", Role::User, 365 * 86400),
            "longer than",
        ),
    ] {
        let r = app.call("GET", "/api/v1/images", Some(&token), None);
        t.expect(what, r, 401, says);
    }
    let r = app.call(
        "GET",
        "/api/v1/images",
        Some(&berth_tests::token("alice", Role::User, 3600)),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    t.finish();
}

#[test]
fn oversized_webhook_bodies_are_refused() {
    let mut t = Tally::new("webhook bodies");
    let harbor = harbor_with_ubuntu();
    let app = app_with(&harbor, &[]);
    let huge = json!({"type": "PUSH_ARTIFACT", "padding": "x".repeat(100 * 1024)});
    let r = app.call(
        "POST",
        "/api/v1/hooks/harbor",
        Some(berth_tests::WEBHOOK_SECRET),
        Some(&huge),
    );
    t.expect("100 KiB webhook", r, 413, "larger than");
    t.finish();
}

#[test]
fn copied_and_mounted_images_and_arg_bases_pass_the_base_checks() {
    let harbor = harbor_with_ubuntu();
    let app = app_with(&harbor, &[]);
    let mut t = Tally::new("build-sources");
    let send = |who: &str, name: &str, dockerfile: &str| {
        app.as_user(who).send(
            "POST",
            "/api/v1/images:build",
            Some(&json!({"name": name, "dockerfile": dockerfile})),
        )
    };

    // Files copied or mounted from an image on a registry imports may not use.
    let r = send(
        "bob",
        "c:1",
        "FROM ubuntu20-pytorch:2.0\nCOPY --from=evil.example.com/x/tools:1 /bin/t /bin/t\n",
    );
    t.expect("COPY --from a disallowed registry", r, 400, "line 2");
    let r = send(
        "bob",
        "m:1",
        "FROM ubuntu20-pytorch:2.0\nRUN --mount=type=bind,from=evil.example.com/x/tools:1,target=/t true\n",
    );
    t.expect(
        "RUN --mount from a disallowed registry",
        r,
        400,
        "not an allowed registry",
    );
    // Another user's private image is no source either, and is not revealed.
    let r = app.as_user("mallory").send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "registry.example.com/secret/tools:1", "registry_url": "registry.example.com/secret/tools:1"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = send(
        "bob",
        "p:1",
        "FROM ubuntu20-pytorch:2.0\nCOPY --from=registry.example.com/secret/tools:1 /t /t\n",
    );
    let r = t.expect(
        "COPY --from another user's private image",
        r,
        400,
        "not a catalog image",
    );
    assert!(!r.text.contains("private"), "{}", r.text);

    // A base through an ARG and a catalog image copied from are dispatched pinned.
    let r = send(
        "bob",
        "ok:1",
        "ARG BASE=ubuntu20-pytorch:2.0\nFROM ${BASE} AS b\nFROM ubuntu20-pytorch:2.0\n\
         COPY --from=ubuntu20-tensorflow:2.12 /opt /opt\nCOPY --from=b /x /x\n",
    );
    assert!((200..300).contains(&r.status), "{}", r.text);
    let id = r.body["data"]["build_id"].as_str().unwrap().to_owned();
    let jobs = serde_json::to_value(harbor.state()).unwrap()["runner_jobs"].clone();
    let job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["build_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no runner job for {id}: {jobs}"))
        .clone();
    let dispatched = job["body"]["dockerfile"].as_str().unwrap();
    let registry = harbor.sim.addr().to_string();
    assert!(
        dispatched.contains(&format!(
            "FROM {registry}/library/ubuntu20-pytorch:2.0@sha256:"
        )) && !dispatched.contains("${BASE}"),
        "the ARG base is pinned: {dispatched}"
    );
    assert!(
        dispatched.contains(&format!(
            "COPY --from={registry}/library/ubuntu20-tensorflow:2.12@sha256:"
        )),
        "the copied catalog image is pinned: {dispatched}"
    );
    assert!(
        dispatched.contains("COPY --from=b /x /x"),
        "a stage stays a stage: {dispatched}"
    );
    t.finish();
}

//! Source-registry credentials and hidden imports, end to end: passwords are sealed at rest
//! (the raw stored value never holds them, on either store) and still reach Harbor intact;
//! rows stored in plain text before sealing keep working and get sealed; usernames are
//! shown to admins only; an "already imported" answer names nothing of a copy the caller
//! may not see. Every test tallies the attacks it tried and asserts none drew a 5xx.

use std::time::{Duration, Instant};

use berth_tests::harbor::{TestHarbor, UpstreamImage};
use berth_tests::tally::Tally;
use berth_tests::{AppOptions, TestApp};
use serde_json::{Value, json};

const SOURCE: &str = "docker.io/library/ubuntu:22.04";
const USERNAME: &str = "svc-berth-puller";
const PASSWORD: &str = "dckr_pat_sealed-at-rest-7f3a";

fn harbor_with_ubuntu() -> TestHarbor {
    let harbor = TestHarbor::start();
    harbor.upstream(UpstreamImage {
        registry: Some("docker.io".into()),
        repository: "library/ubuntu".into(),
        tag: "22.04".into(),
        platforms: vec!["linux/amd64".into()],
        ..Default::default()
    });
    harbor
}

fn app_on(
    harbor: &TestHarbor,
    prepare: Option<Box<dyn FnOnce(&dyn berth_domain::db::Db)>>,
) -> TestApp {
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        prepare_db: prepare,
        ..Default::default()
    })
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

fn import(app: &TestApp, who: &str, source: &str) -> berth_tests::Reply {
    app.as_user(who).send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": source})),
    )
}

/// The password column of every registry, as stored.
fn stored_passwords(app: &TestApp) -> Vec<String> {
    app.db()
        .query("SELECT password FROM registries ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.str("password").to_owned())
        .collect()
}

/// The credential berth sent Harbor when it created the endpoint named `name`.
fn credential_sent(harbor: &TestHarbor, name: &str) -> Value {
    harbor
        .state()
        .requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/registries"))
        .filter_map(|r| r.body.clone())
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no registry {name} was created in Harbor"))["credential"]
        .clone()
}

fn harbor_registry_name(harbor: &TestHarbor, id: i64) -> String {
    harbor
        .state()
        .registries
        .iter()
        .find(|r| r.id == id)
        .expect("the endpoint exists in Harbor")
        .name
        .clone()
}

#[test]
fn registry_passwords_are_sealed_at_rest_and_still_reach_harbor() {
    let harbor = harbor_with_ubuntu();
    let app = app_on(&harbor, None);
    let r = app.as_admin().send(
        "POST",
        "/api/v1/registries",
        Some(&json!({"host": "docker.io", "username": USERNAME, "password": PASSWORD})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let registry = r.body["data"]["id"].as_i64().unwrap();
    let harbor_id = r.body["data"]["harbor_registry_id"].as_i64().unwrap();

    // The raw stored value: sealed, versioned, not the password.
    let stored = stored_passwords(&app);
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].starts_with("berth-sealed:v1:") && !stored[0].contains(PASSWORD),
        "the password is stored in the clear: {}",
        stored[0]
    );
    if app.database.is_none() {
        // Nowhere in the SQLite files either (the database and its write-ahead log).
        for suffix in ["", "-wal"] {
            let path = format!("{}{suffix}", app.sqlite_path().display());
            if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !bytes
                        .windows(PASSWORD.len())
                        .any(|w| w == PASSWORD.as_bytes()),
                    "{path} holds the password"
                );
            }
        }
    }

    // Harbor got the real credential, and an import through the registry uses it.
    let name = harbor_registry_name(&harbor, harbor_id);
    let credential = credential_sent(&harbor, &name);
    assert_eq!(credential["access_key"], USERNAME, "{credential}");
    assert_eq!(credential["access_secret"], PASSWORD, "{credential}");
    let r = import(&app, "alice", SOURCE);
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["data"]["image_id"].as_i64().unwrap();
    assert_eq!(wait_import(&app, id)["status"], "ready");
    let state = harbor.state();
    assert!(
        !state.policies.is_empty()
            && state
                .policies
                .iter()
                .all(|p| p.src_registry_id == harbor_id),
        "the import replicates through the credentialed endpoint: {:?}",
        state.policies
    );

    // A rotated password is sealed too, with a fresh nonce, and reaches Harbor.
    let rotated = "dckr_pat_rotated-9c1e";
    let r = app.as_admin().send(
        "PATCH",
        &format!("/api/v1/registries/{registry}"),
        Some(&json!({"password": rotated})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let after = stored_passwords(&app);
    assert!(after[0].starts_with("berth-sealed:v1:") && !after[0].contains(rotated));
    assert_ne!(after[0], stored[0]);
    let name = harbor_registry_name(
        &harbor,
        r.body["data"]["harbor_registry_id"].as_i64().unwrap(),
    );
    assert_eq!(credential_sent(&harbor, &name)["access_secret"], rotated);
    assert!(!app.output().contains(PASSWORD) && !app.output().contains(rotated));
}

#[test]
fn passwords_stored_before_sealing_keep_working_and_get_sealed() {
    let harbor = harbor_with_ubuntu();
    let legacy = "legacy-plain-password-41d0";
    // A row as an earlier berth stored it: the password in plain text.
    let prepare = move |db: &dyn berth_domain::db::Db| {
        berth_domain::migrations::ensure(db).unwrap();
        let now = "2026-01-01T00:00:00.000Z";
        db.execute(
            "INSERT INTO registries (name, host, kind, url, username, password, created_by, created_at, updated_at) \
             VALUES ('quay', 'quay.io', 'quay', 'https://quay.io', ?, ?, 'admin', ?, ?)",
            &[USERNAME.into(), legacy.into(), now.into(), now.into()],
        )
        .unwrap();
    };
    let app = app_on(&harbor, Some(Box::new(prepare)));
    assert_eq!(stored_passwords(&app), vec![legacy.to_owned()]);

    // The next use of the registries API seals it.
    let r = app.as_admin().get("/api/v1/registries");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"]["items"][0]["has_password"], true,
        "{}",
        r.text
    );
    let stored = stored_passwords(&app);
    assert!(
        stored[0].starts_with("berth-sealed:v1:") && !stored[0].contains(legacy),
        "{}",
        stored[0]
    );

    // And it still opens to the same password for Harbor.
    let id = r.body["data"]["items"][0]["id"].as_i64().unwrap();
    let r = app.as_admin().send(
        "PATCH",
        &format!("/api/v1/registries/{id}"),
        Some(&json!({"name": "Quay (team)"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let name = harbor_registry_name(
        &harbor,
        r.body["data"]["harbor_registry_id"].as_i64().unwrap(),
    );
    let credential = credential_sent(&harbor, &name);
    assert_eq!(credential["access_key"], USERNAME, "{credential}");
    assert_eq!(credential["access_secret"], legacy, "{credential}");
}

#[test]
fn registry_usernames_are_shown_to_admins_only() {
    let harbor = harbor_with_ubuntu();
    let app = app_on(&harbor, None);
    let r = app.as_admin().send(
        "POST",
        "/api/v1/registries",
        Some(&json!({"name": "Docker Hub", "host": "docker.io", "username": USERNAME, "password": PASSWORD})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["id"].as_i64().unwrap();
    let one = format!("/api/v1/registries/{id}");

    for path in ["/api/v1/registries", one.as_str()] {
        let r = app.as_user("mallory").get(path);
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            !r.text.contains(USERNAME) && !r.text.contains(PASSWORD),
            "{path} shows a user the credential: {}",
            r.text
        );
        let item = if path == one {
            &r.body["data"]
        } else {
            &r.body["data"]["items"][0]
        };
        assert_eq!(item["host"], "docker.io", "{}", r.text);
        assert!(
            item.get("username").is_none() && item.get("has_password").is_none(),
            "{}",
            r.text
        );

        let r = app.as_admin().get(path);
        let item = if path == one {
            &r.body["data"]
        } else {
            &r.body["data"]["items"][0]
        };
        assert_eq!(item["username"], USERNAME, "{}", r.text);
        assert_eq!(item["has_password"], true, "{}", r.text);
        assert!(!r.text.contains(PASSWORD), "{}", r.text);
    }
}

#[test]
fn an_already_imported_answer_names_nothing_the_caller_cannot_see() {
    let mut t = Tally::new("hidden imports");
    let harbor = harbor_with_ubuntu();
    let app = app_on(&harbor, None);
    let r = import(&app, "alice", SOURCE);
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["data"]["image_id"].as_i64().unwrap();
    assert_eq!(wait_import(&app, id)["status"], "ready");
    let executions = harbor.state().executions.len();
    let digest = app.as_admin().get(&format!("/api/v1/images/{id}")).body["data"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    // Visible, the answer is the copy.
    let r = import(&app, "bob", SOURCE);
    assert_eq!(r.body["data"]["alreadyImageId"], id, "{}", r.text);

    // An admin withdraws the copy: made private, then taken offline.
    for (change, value) in [("visibility", "private"), ("publication", "offline")] {
        let r = app.as_admin().send(
            "PATCH",
            &format!("/api/v1/images/{id}"),
            Some(&json!({change: value})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        if change == "publication" {
            let r = app.as_admin().send(
                "PATCH",
                &format!("/api/v1/images/{id}"),
                Some(&json!({"visibility": "public"})),
            );
            assert_eq!(r.status, 200, "{}", r.text);
        }
        for who in ["bob", "alice"] {
            assert_eq!(
                app.as_user(who).get(&format!("/api/v1/images/{id}")).status,
                404
            );
            let r = t.expect(
                &format!("{who} re-imports a copy made {value}"),
                import(&app, who, SOURCE),
                409,
                "ask an admin",
            );
            assert!(
                r.body.get("data").is_none_or(Value::is_null),
                "the answer carries data about the copy: {}",
                r.text
            );
            let message = r.body["message"].as_str().unwrap();
            assert!(
                !message.contains(&id.to_string()) && !message.contains(value),
                "{message}"
            );
            // The same for the digest pin, which would otherwise compare against the copy.
            let pinned = format!("{SOURCE}@sha256:{}", "ab".repeat(32));
            let r = t.expect(
                "a pinned re-import",
                import(&app, who, &pinned),
                409,
                "ask an admin",
            );
            assert!(!r.text.contains(&digest), "{}", r.text);
        }
        // Admins still get the copy.
        let r = app.as_admin().send(
            "POST",
            "/api/v1/images:import",
            Some(&json!({"source": SOURCE})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["data"]["alreadyImageId"], id, "{}", r.text);
    }
    assert_eq!(
        harbor.state().executions.len(),
        executions,
        "nothing re-imported"
    );
    t.finish();
}

//! Source registries: credentials sealed at rest, given to Harbor, hidden from users.

use serde_json::json;

use super::*;

const PASSWORD: &str = "quay-password-123";

fn create_quay(app: &TestApp) -> (Reply, FakeHarbor) {
    // No endpoint of that name yet: berth creates one.
    let harbor = FakeHarbor::default()
        .then(page(json!([]), 0, None))
        .then(created("/api/v2.0/registries/5"));
    let r = app.call_importer(
        request(
            "POST",
            "/api/v1/registries",
            &admin(),
            Some(json!({"host": "quay.io", "username": "robot+ci", "password": PASSWORD})),
        ),
        &harbor,
    );
    (r, harbor)
}

#[test]
fn a_registry_password_is_sealed_at_rest_and_sent_to_harbor_in_the_clear() {
    let app = TestApp::new();
    let (r, harbor) = create_quay(&app);
    assert_eq!(r.status, 201, "{:?}", r.body);
    harbor.assert_drained();

    let stored = app
        .text(
            "SELECT password FROM registries WHERE host = 'quay.io'",
            &[],
        )
        .expect("a stored password");
    assert!(!stored.contains(PASSWORD), "{stored}");
    assert!(crate::sealed::is_sealed(&stored), "{stored}");
    assert_eq!(
        app.text(
            "SELECT harbor_registry_id FROM registries WHERE host = 'quay.io'",
            &[]
        )
        .as_deref(),
        Some("5")
    );

    let lines = harbor.lines();
    assert!(lines[0].starts_with("GET /registries?"), "{lines:#?}");
    assert_eq!(lines[1], "POST /registries");
    let sent = body_json(&harbor.requests()[1]);
    assert_eq!(sent["credential"]["access_key"], "robot+ci");
    assert_eq!(sent["credential"]["access_secret"], PASSWORD);
    // The answer never carries the password.
    assert!(!format!("{}", r.body).contains(PASSWORD));
}

#[test]
fn a_different_registry_secret_key_cannot_open_the_stored_password() {
    let app = TestApp::new();
    let (r, _) = create_quay(&app);
    assert_eq!(r.status, 201, "{:?}", r.body);
    let stored = app
        .text(
            "SELECT password FROM registries WHERE host = 'quay.io'",
            &[],
        )
        .unwrap();
    let key = |secret: &str| {
        crate::sealed::SealingKey::derive(secret, "source-registry passwords").unwrap()
    };
    assert_eq!(
        key("test-registry-secret-key")
            .open(&stored, "quay.io")
            .unwrap(),
        PASSWORD
    );
    assert!(key("another-key").open(&stored, "quay.io").is_err());
}

#[test]
fn users_see_registries_without_their_usernames_and_may_not_create_them() {
    let app = TestApp::new();
    let (r, _) = create_quay(&app);
    assert_eq!(r.status, 201, "{:?}", r.body);

    let list = |bearer: &str| {
        app.call_importer(
            request("GET", "/api/v1/registries", bearer, None),
            &FakeHarbor::default(),
        )
    };
    let as_admin = list(&admin());
    assert_eq!(as_admin.status, 200, "{:?}", as_admin.body);
    let item = &as_admin.body["data"]["items"][0];
    assert_eq!(item["host"], "quay.io");
    assert_eq!(item["username"], "robot+ci");
    assert_eq!(item["has_password"], true);

    let as_user = list(&user("alice"));
    assert_eq!(as_user.status, 200, "{:?}", as_user.body);
    let item = &as_user.body["data"]["items"][0];
    assert_eq!(item["host"], "quay.io");
    assert!(item.get("username").is_none(), "{item}");
    assert!(item.get("has_password").is_none(), "{item}");

    let harbor = FakeHarbor::default();
    let refused = app.call_importer(
        request(
            "POST",
            "/api/v1/registries",
            &user("alice"),
            Some(json!({"host": "ghcr.io"})),
        ),
        &harbor,
    );
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(harbor.requests().is_empty());
}

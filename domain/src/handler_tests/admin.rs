//! Admin writes: what is stored, what is refused, and the Harbor copy a delete removes.

use serde_json::json;

use super::imports::{REPOSITORY, import_ready};
use super::*;
use crate::harbor::fake::response;

fn image_body() -> Value {
    json!({
        "name": "custom-pytorch:1.0",
        "display_name": "Custom PyTorch",
        "description": "PyTorch 2.0 with extras",
        "category": "custom",
        "framework": "pytorch",
        "chip_type": "NPU",
        "registry_url": "registry.example.com/custom/pytorch:1.0"
    })
}

fn create(app: &TestApp, bearer: &str, body: Value) -> Reply {
    app.call_admin(
        request("POST", "/api/v1/images", bearer, Some(body)),
        &FakeHarbor::default(),
    )
}

#[test]
fn an_admin_creates_an_image_with_the_fields_given() {
    let app = TestApp::new();
    let r = create(&app, &admin(), image_body());
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["data"]["image_id"].as_i64().unwrap();
    assert_eq!(
        r.response.header("location"),
        Some(format!("/api/v1/images/{id}").as_str())
    );

    let row = app
        .db
        .query(
            "SELECT name, display_name, registry, repository, tag, chip_type, visibility, owner, created_by, origin \
             FROM images WHERE id = ?",
            &[id.into()],
        )
        .unwrap();
    let row = row.first().unwrap();
    assert_eq!(row.str("name"), "custom-pytorch:1.0");
    assert_eq!(row.str("display_name"), "Custom PyTorch");
    assert_eq!(
        (row.str("registry"), row.str("repository"), row.str("tag")),
        ("registry.example.com", "custom/pytorch", "1.0")
    );
    assert_eq!(row.str("chip_type"), "NPU");
    assert_eq!(row.str("visibility"), "public");
    assert_eq!(row.opt_str("owner"), Some("root"));
    assert_eq!(row.str("created_by"), "root");

    // The catalog reads it back.
    let read = app.call_catalog(
        request("GET", &format!("/api/v1/images/{id}"), &user("dave"), None),
        &FakeHarbor::default(),
    );
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(
        read.body["data"]["registry_url"],
        "registry.example.com/custom/pytorch:1.0"
    );
    assert_eq!(read.body["data"]["display_name"], "Custom PyTorch");
}

#[test]
fn bad_input_is_a_400_naming_the_field() {
    let app = TestApp::new();
    for (body, field) in [
        (json!({"registry_url": "h.io/a/b:1"}), "'name'"),
        (json!({"name": "a"}), "'registry_url'"),
        (
            json!({"name": "a", "registry_url": "UPPER/case:1"}),
            "'registry_url'",
        ),
        (
            json!({"name": "a", "registry_url": "h.io/a/b:1", "chip_type": "TPU"}),
            "chip_type",
        ),
        (
            json!({"name": "a", "registry_url": "h.io/a/b:1", "visibility": "secret"}),
            "visibility",
        ),
    ] {
        let r = create(&app, &admin(), body.clone());
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert!(r.message().contains(field), "{body}: {}", r.message());
    }
    assert_eq!(
        app.text("SELECT COUNT(*) FROM images WHERE name = 'a'", &[])
            .as_deref(),
        Some("0")
    );
}

#[test]
fn users_create_images_only_when_allow_user_images_is_true() {
    let app = TestApp::new();
    let mine = json!({"name": "alice-env:1", "registry_url": "registry.example.com/alice/env:1"});
    let refused = create(&app, &user("alice"), mine.clone());
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(refused.message().contains("allow_user_images"));

    let unauthenticated = app.call_admin(
        Request::new("POST", "/api/v1/images"),
        &FakeHarbor::default(),
    );
    assert_eq!(unauthenticated.status, 401);

    app.set("allow_user_images", "true");
    let r = create(&app, &user("alice"), mine);
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["data"]["image_id"].as_i64().unwrap();
    let row = app
        .db
        .query(
            "SELECT visibility, owner FROM images WHERE id = ?",
            &[id.into()],
        )
        .unwrap();
    let row = row.first().unwrap();
    assert_eq!(
        (row.str("visibility"), row.str("owner")),
        ("private", "alice")
    );

    // A user's image is theirs: another user may not change it.
    let other = app.call_admin(
        request(
            "PUT",
            &format!("/api/v1/images/{id}"),
            &user("bob"),
            Some(json!({"description": "mine now"})),
        ),
        &FakeHarbor::default(),
    );
    assert!(
        other.status == 403 || other.status == 404,
        "{:?}",
        other.body
    );
}

#[test]
fn deleting_an_imported_image_deletes_its_copy_in_harbor() {
    let app = TestApp::new();
    let id = import_ready(&app, &digest('e'));

    let harbor = FakeHarbor::default().then(response(200));
    let r = app.call_admin(
        request("DELETE", &format!("/api/v1/images/{id}"), &admin(), None),
        &harbor,
    );
    assert!((200..300).contains(&r.status), "{:?}", r.body);
    let lines = harbor.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    // The repository inside the project, encoded twice as Harbor's router wants it.
    assert_eq!(REPOSITORY, "catalog/docker.io/library/nginx");
    assert_eq!(
        lines[0],
        "DELETE /projects/catalog/repositories/docker.io%252Flibrary%252Fnginx/artifacts/1.25"
    );
    assert_eq!(
        app.text("SELECT COUNT(*) FROM images WHERE id = ?", &[id.into()])
            .as_deref(),
        Some("0")
    );
}

#[test]
fn a_delete_harbor_refuses_keeps_the_image() {
    let app = TestApp::new();
    let id = import_ready(&app, &digest('f'));
    let harbor = FakeHarbor::default().then(error(500, "INTERNAL_SERVER_ERROR", "disk full"));
    let r = app.call_admin(
        request("DELETE", &format!("/api/v1/images/{id}"), &admin(), None),
        &harbor,
    );
    assert_eq!(r.status, 502, "{:?}", r.body);
    assert!(
        r.message().contains("the image was kept"),
        "{}",
        r.message()
    );
    assert_eq!(
        app.text("SELECT status FROM images WHERE id = ?", &[id.into()])
            .as_deref(),
        Some("ready")
    );
}

//! Catalog writes end to end: requests to the public image paths reach the private admin
//! component through the catalog component's service chaining, and the reads of both APIs
//! reflect them.

use berth_tests::{AppOptions, TestApp, fixtures};
use serde_json::{Value, json};

fn seed_000_body() -> Value {
    json!({
        "name": "custom-pytorch:1.0",
        "display_name": "自定义 PyTorch 环境",
        "description": "基于 PyTorch 2.0 的自定义环境",
        "category": "custom",
        "framework": "pytorch",
        "registry_url": "harbor.remotegpu.com/custom/pytorch:1.0"
    })
}

fn seed_001_body() -> Value {
    json!({
        "name": "镜像名称",
        "imageId": "镜像名称",
        "frameworks": ["PyTorch"],
        "applicableScopes": ["开发机"],
        "chipType": "GPU",
        "presetCuda": true,
        "description": "镜像描述",
        "imageAddress": "registry/image:tag"
    })
}

fn created_id(r: &berth_tests::Reply) -> i64 {
    assert_eq!(r.status, 201, "{}", r.text);
    let data = &r.body["data"];
    data["image_id"]
        .as_i64()
        .or_else(|| data["id"].as_str().and_then(|s| s.parse().ok()))
        .unwrap()
}

#[test]
fn admin_creates_updates_publishes_and_deletes_through_both_apis() {
    let app = TestApp::spawn();
    let admin = app.as_admin();
    let user = app.as_user("dave");

    let r = admin.send("POST", "/api/v1/images", Some(&seed_000_body()));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["code"], 0);
    assert_eq!(r.body["message"], "镜像创建成功");
    let id = created_id(&r);
    assert_eq!(
        r.body["data"],
        json!({"image_id": id, "name": "custom-pytorch:1.0"})
    );
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/images/{id}").as_str())
    );

    // The write is visible to both read APIs under each one's names.
    let v1 = user.get(&format!("/api/v1/images/{id}"));
    assert_eq!(v1.status, 200, "{}", v1.text);
    let d = &v1.body["data"];
    assert_eq!(d["display_name"], "自定义 PyTorch 环境");
    assert_eq!(d["registry_url"], "harbor.remotegpu.com/custom/pytorch:1.0");
    assert_eq!(d["framework"], "pytorch");
    assert_eq!(d["is_official"], false);
    assert_eq!(d["visibility"], "public");
    assert_eq!(d["created_by"], "admin");
    let console = user.get(&format!("/api/images/{id}"));
    let c = &console.body["data"];
    assert_eq!(c["id"], id.to_string());
    // Seed 001's `name` is the display name; `imageId` the unique name.
    assert_eq!(c["name"], "自定义 PyTorch 环境");
    assert_eq!(c["imageId"], "custom-pytorch:1.0");
    assert_eq!(c["imageAddress"], d["registry_url"]);
    assert_eq!(c["frameworks"], json!(["pytorch"]));
    assert_eq!(c["description"], d["description"]);
    let (listed, _) = names(&user.get("/api/v1/images?category=custom"));
    assert_eq!(listed, ["custom-pytorch:1.0"]);

    // Console update, then a v1 PATCH clearing a field.
    let r = admin.send(
        "PUT",
        &format!("/api/images/{id}"),
        Some(&json!({"description": "更新后的描述"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"success": true, "data": {"id": id.to_string(), "name": "自定义 PyTorch 环境"}, "message": "更新镜像成功"})
    );
    let r = admin.send(
        "PATCH",
        &format!("/api/v1/images/{id}"),
        Some(&json!({"display_name": null, "chip_type": "NPU"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["display_name"], Value::Null);
    assert_eq!(r.body["data"]["description"], "更新后的描述");
    assert_eq!(r.body["data"]["updated_by"], "admin");
    assert_eq!(r.header("etag"), Some("\"3\""));
    assert_eq!(
        user.get(&format!("/api/images/{id}")).body["data"]["chipType"],
        "NPU"
    );

    // Taking it offline hides it from users, not from admins.
    let r = admin.send(
        "PUT",
        &format!("/api/images/{id}/status"),
        Some(&json!({"status": "offline"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["data"],
        json!({"id": id.to_string(), "status": "offline"})
    );
    assert_eq!(r.body["message"], "状态更新成功");
    assert_eq!(user.get(&format!("/api/v1/images/{id}")).status, 404);
    assert_eq!(
        admin.get("/api/images?status=offline").body["data"]["total"],
        1
    );
    let r = admin.send(
        "PUT",
        &format!("/api/images/{id}/status"),
        Some(&json!({"status": "gone"})),
    );
    assert_eq!(r.status, 400);
    assert!(r.body["message"].as_str().unwrap().contains("'status'"));

    let r = admin.send("DELETE", &format!("/api/images/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["message"], "删除镜像成功");
    assert_eq!(admin.get(&format!("/api/v1/images/{id}")).status, 404);
    assert_eq!(admin.get(&format!("/api/images/{id}")).status, 404);
    assert_eq!(
        admin
            .send("DELETE", &format!("/api/v1/images/{id}"), None)
            .status,
        404
    );
}

fn names(r: &berth_tests::Reply) -> (Vec<String>, i64) {
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body["data"]["items"].as_array().unwrap();
    let names = items
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    (
        names,
        r.body["data"]["pagination"]["total"].as_i64().unwrap(),
    )
}

#[test]
fn console_create_and_versions_follow_seed_001() {
    let app = TestApp::spawn();
    let admin = app.as_admin();
    let r = admin.send("POST", "/api/images", Some(&seed_001_body()));
    let id = created_id(&r);
    assert_eq!(
        r.body,
        json!({"success": true, "data": {"id": id.to_string(), "name": "镜像名称"}, "message": "创建镜像成功"})
    );

    let c = admin.get(&format!("/api/images/{id}")).body["data"].clone();
    assert_eq!(c["frameworks"], json!(["PyTorch"]));
    assert_eq!(c["applicableScopes"], json!(["开发机"]));
    assert_eq!(c["presetCuda"], true);
    assert_eq!(c["imageAddress"], "registry/image:tag", "as written");
    let v1 = admin.get(&format!(
        "/api/v1/images?applicable_scope=开发机&framework=pytorch&is_official=false"
    ));
    assert_eq!(names(&v1).0, ["镜像名称"]);

    let version = json!({
        "version": "v1.1.0",
        "imageAddress": "registry/image:v1.1.0",
        "size": "2.6GB",
        "pythonVersion": "3.9.0",
        "cudaVersion": "11.8",
        "description": "新版本描述",
        "createTime": "2025-01-15T10:30:00Z"
    });
    let r = admin.send(
        "POST",
        &format!("/api/images/{id}/versions"),
        Some(&version),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"success": true, "data": {"version": "v1.1.0", "imageAddress": "registry/image:v1.1.0"}, "message": "创建版本成功"})
    );
    let versions = admin.get(&format!("/api/images/{id}/versions"));
    assert_eq!(versions.body["data"]["total"], 2);
    let newest = &versions.body["data"]["list"][0];
    assert_eq!(newest["version"], "v1.1.0");
    assert_eq!(newest["size"], "2.6GB");
    assert_eq!(newest["pythonVersion"], "3.9.0");
    assert_eq!(newest["description"], "新版本描述");
    assert_eq!(versions.body["data"]["list"][1]["version"], "tag");

    // The same version twice, or a version of another repository, is refused.
    let again = admin.send(
        "POST",
        &format!("/api/images/{id}/versions"),
        Some(&version),
    );
    assert_eq!(again.status, 409, "{}", again.text);
    let elsewhere = admin.send(
        "POST",
        &format!("/api/images/{id}/versions"),
        Some(&json!({"version": "v2", "imageAddress": "other/repo:v2"})),
    );
    assert_eq!(elsewhere.status, 400);
    assert!(
        elsewhere.body["message"]
            .as_str()
            .unwrap()
            .contains("'imageAddress'"),
        "{}",
        elsewhere.text
    );
    let bad_size = admin.send(
        "POST",
        &format!("/api/images/{id}/versions"),
        Some(&json!({"version": "v3", "size": "lots"})),
    );
    assert_eq!(bad_size.status, 400);
    assert!(
        bad_size.body["message"]
            .as_str()
            .unwrap()
            .contains("'size'")
    );

    // Deleting one tag leaves the repository's other versions in place.
    let newest_id: i64 = newest["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        admin
            .send("DELETE", &format!("/api/v1/images/{id}"), None)
            .status,
        200
    );
    let left = admin.get(&format!("/api/images/{newest_id}/versions"));
    assert_eq!(left.body["data"]["total"], 1);
}

#[test]
fn who_may_write_what() {
    let app = TestApp::spawn_with(AppOptions {
        variables: vec![("allow_user_images".into(), "true".into())],
        ..Default::default()
    });
    let anonymous = app.anonymous();
    let alice = app.as_user("alice");
    let bob = app.as_user("bob");
    let admin = app.as_admin();

    let anon = anonymous.send("POST", "/api/v1/images", Some(&seed_000_body()));
    assert_eq!(anon.status, 401, "{}", anon.text);

    // A user's image is private to them unless an admin publishes it.
    let mine = json!({"name": "alice-env:1", "registry_url": "registry.example.com/alice/env:1"});
    let r = alice.send("POST", "/api/v1/images", Some(&mine));
    let id = created_id(&r);
    let d = alice.get(&format!("/api/v1/images/{id}")).body["data"].clone();
    assert_eq!(
        (d["visibility"].as_str(), d["owner"].as_str()),
        (Some("private"), Some("alice"))
    );
    assert_eq!(bob.get(&format!("/api/v1/images/{id}")).status, 404);
    assert_eq!(
        bob.send(
            "PATCH",
            &format!("/api/v1/images/{id}"),
            Some(&json!({"description": "x"}))
        )
        .status,
        404
    );
    assert_eq!(
        bob.send("DELETE", &format!("/api/v1/images/{id}"), None)
            .status,
        404
    );
    let r = alice.send(
        "PATCH",
        &format!("/api/v1/images/{id}"),
        Some(&json!({"description": "mine"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    for (body, needle) in [
        (json!({"visibility": "public"}), "public"),
        (json!({"is_official": true}), "official"),
        (json!({"owner": "bob"}), "owner"),
    ] {
        let r = alice.send("PATCH", &format!("/api/v1/images/{id}"), Some(&body));
        assert_eq!(r.status, 403, "{body}: {}", r.text);
        assert!(
            r.body["message"].as_str().unwrap().contains(needle),
            "{}",
            r.text
        );
    }
    let public = alice.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "x:1", "registry_url": "h.io/x/y:1", "visibility": "public"})),
    );
    assert_eq!(public.status, 403);
    let r = admin.send(
        "PATCH",
        &format!("/api/v1/images/{id}"),
        Some(&json!({"visibility": "public"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(bob.get(&format!("/api/v1/images/{id}")).status, 200);
    // Published, it is still alice's to edit and not bob's.
    assert_eq!(
        bob.send(
            "PATCH",
            &format!("/api/v1/images/{id}"),
            Some(&json!({"description": "x"}))
        )
        .status,
        403
    );

    // Official images: admins only.
    assert_eq!(
        alice
            .send("PUT", "/api/images/1", Some(&json!({"description": "x"})))
            .status,
        403
    );
    assert_eq!(
        alice
            .send(
                "PUT",
                "/api/images/1/status",
                Some(&json!({"status": "offline"}))
            )
            .status,
        403
    );
    assert_eq!(alice.send("DELETE", "/api/v1/images/1", None).status, 403);
    assert_eq!(
        alice
            .send(
                "POST",
                "/api/images/1/versions",
                Some(&json!({"version": "2.1"}))
            )
            .status,
        403
    );
    let official = admin.send("POST", "/api/v1/images", Some(&json!({"name": "ubuntu22-vllm:0.5", "registry_url": "harbor.remotegpu.com/library/ubuntu22-vllm:0.5", "is_official": true})));
    let oid = created_id(&official);
    assert_eq!(
        alice.get(&format!("/api/v1/images/{oid}")).body["data"]["is_official"],
        true
    );
    assert_eq!(admin.send("DELETE", "/api/v1/images/1", None).status, 200);
}

#[test]
fn invalid_writes_get_clear_errors() {
    let app = TestApp::spawn();
    let admin = app.as_admin();
    let cases: &[(&str, &str, Value, u16, &str)] = &[
        (
            "POST",
            "/api/v1/images",
            json!({"registry_url": "h.io/a/b:1"}),
            400,
            "'name'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a"}),
            400,
            "'registry_url'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "UPPER/case:1"}),
            400,
            "'registry_url'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "h.io/a:b:c"}),
            400,
            "'registry_url'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "h.io/a@sha256:12"}),
            400,
            "digest",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "h.io/a/b:1", "chip_type": "TPU"}),
            400,
            "'chip_type'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "h.io/a/b:1", "visibility": "secret"}),
            400,
            "'visibility'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "h.io/a/b:1", "is_official": "yes"}),
            400,
            "boolean",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "h.io/a/b:1", "password": "x"}),
            400,
            "unknown field `password`",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "h.io/a/b:1", "image_id": 7}),
            400,
            "unknown field `image_id`",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "", "registry_url": "h.io/a/b:1"}),
            400,
            "'name'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a".repeat(300), "registry_url": "h.io/a/b:1"}),
            400,
            "'name'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "h.io/a/b:1", "size": -5}),
            400,
            "'size'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "a", "registry_url": "h.io/a/b:1", "applicable_scopes": [""]}),
            400,
            "'applicable_scopes'",
        ),
        (
            "POST",
            "/api/images",
            json!({"name": "a", "displayName": "b", "imageId": "c", "imageAddress": "h.io/a/b:1"}),
            400,
            "'displayName'",
        ),
        (
            "POST",
            "/api/images",
            json!({"name": "a", "imageAddress": "h.io/a/b:1", "chipType": "QPU"}),
            400,
            "'chipType'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!(["not", "an", "object"]),
            400,
            "invalid JSON",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "ubuntu20-pytorch:2.0", "registry_url": "h.io/new/one:1"}),
            409,
            "named 'ubuntu20-pytorch:2.0'",
        ),
        (
            "POST",
            "/api/v1/images",
            json!({"name": "new", "registry_url": "harbor.remotegpu.com/library/ubuntu20-pytorch:2.0"}),
            409,
            "already in the catalog",
        ),
        (
            "PATCH",
            "/api/v1/images/2",
            json!({"name": "ubuntu20-pytorch:2.0"}),
            409,
            "already exists",
        ),
        (
            "PATCH",
            "/api/v1/images/999",
            json!({"description": "x"}),
            404,
            "999",
        ),
        (
            "PATCH",
            "/api/v1/images/abc",
            json!({"description": "x"}),
            400,
            "'id'",
        ),
        (
            "PUT",
            "/api/images/1/status",
            json!({"status": "online", "extra": 1}),
            400,
            "unknown field",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let r = admin.send(method, path, Some(body));
        assert_eq!(r.status, *status, "{method} {path} {body}: {}", r.text);
        let msg = r.body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{method} {path} {body}: {msg}");
    }

    let big = format!(
        r#"{{"name":"a","registry_url":"h.io/a/b:1","description":"{}"}}"#,
        "x".repeat(70_000)
    );
    let r = admin.raw(
        "POST",
        "/api/v1/images",
        &[("content-type", "application/json")],
        big.as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text);
    let r = admin.raw(
        "POST",
        "/api/v1/images",
        &[("content-type", "text/plain")],
        b"name=a",
    );
    assert_eq!(r.status, 415, "{}", r.text);
    assert_eq!(r.body["code"], 415);
    let r = admin.raw(
        "POST",
        "/api/images",
        &[("content-type", "application/json")],
        b"",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.body["success"], false);
    let r = admin.raw(
        "POST",
        "/api/v1/images",
        &[("content-type", "application/json; charset=utf-8")],
        b"{\"name\":",
    );
    assert_eq!(r.status, 400);

    let r = admin.send("PATCH", "/api/images/1", Some(&json!({})));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, PUT, DELETE"));
    let r = admin.send("DELETE", "/api/v1/images", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    assert_eq!(
        admin.send("POST", "/api/v1/images/1/nonsense", None).status,
        404
    );

    // Nothing above changed the catalog.
    assert_eq!(names(&admin.get("/api/v1/images")).1, 4);
}

#[test]
fn concurrent_writers_never_lose_an_update_silently() {
    let app = TestApp::spawn();
    let admin = app.as_admin();
    let etag = admin
        .get("/api/v1/images/2")
        .header("etag")
        .unwrap()
        .to_owned();

    // Two writers holding the same revision: one wins, the other is told.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            app.as_admin().send_with(
                "PATCH",
                "/api/v1/images/2",
                &[("if-match", &etag)],
                &json!({"description": "A"}),
            )
        });
        let b = s.spawn(|| {
            app.as_admin().send_with(
                "PATCH",
                "/api/v1/images/2",
                &[("if-match", &etag)],
                &json!({"description": "B"}),
            )
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 412], "{} / {}", a.text, b.text);
    let loser = if a.status == 412 { &a } else { &b };
    assert!(
        loser.body["message"].as_str().unwrap().contains("revision"),
        "{}",
        loser.text
    );
    let stale = admin.send_with(
        "PUT",
        "/api/images/2/status",
        &[("if-match", &etag)],
        &json!({"status": "offline"}),
    );
    assert_eq!(stale.status, 412);

    // Unconditional writers of different fields: every update lands, none overwrites another.
    std::thread::scope(|s| {
        for field in ["description", "category", "python_version", "cuda_version"] {
            let app = &app;
            s.spawn(move || {
                for i in 0..5 {
                    let r = app.as_admin().send(
                        "PATCH",
                        "/api/v1/images/3",
                        Some(&json!({ field: format!("{field}-{i}") })),
                    );
                    assert_eq!(r.status, 200, "{}", r.text);
                }
            });
        }
    });
    let d = admin.get("/api/v1/images/3");
    assert_eq!(
        d.header("etag"),
        Some("\"21\""),
        "1 + 20 updates, none lost"
    );
    for field in ["description", "category", "python_version", "cuda_version"] {
        assert_eq!(d.body["data"][field], format!("{field}-4"));
    }
}

#[test]
fn deleting_the_base_of_a_running_build_is_refused() {
    let app = TestApp::spawn_with(AppOptions {
        prepare_db: Some(Box::new(|conn| {
            fixtures::insert(conn, &[]);
            conn.execute(
                "INSERT INTO builds (id, owner, name, mode, base_image, base_image_id, status, created_at, updated_at, deadline_at) \
                 VALUES ('build-1', 'alice', 'mine:1', 'dockerfile', 'ubuntu20-pytorch:2.0', 1, 'running', 'now', 'now', 'later')",
                &[],
            )
            .unwrap();
        })),
        ..Default::default()
    });
    let r = app.as_admin().send("DELETE", "/api/v1/images/1", None);
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains("build-1"));
    assert_eq!(app.as_admin().get("/api/v1/images/1").status, 200);
}

/// A raw HTTP/1.1 request with this `Host`; everything the server sent before closing (empty
/// when it closed the connection unanswered).
fn send_with_host(app: &TestApp, method: &str, path: &str, host: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(app.addr()).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    )
    .unwrap();
    let mut answer = Vec::new();
    // A reset after the request counts as "closed unanswered".
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn admin_is_not_reachable_from_outside() {
    let app = TestApp::spawn();
    let token = app.token("root", berth_domain::auth::Role::Admin);
    // The admin component has no public route. The paths the API does not serve belong to the
    // portal, which refuses what it does not serve.
    for (method, path, status) in [
        ("POST", "/api/v1/admin", 404),
        ("POST", "/", 405),
        ("PUT", "/admin", 405),
    ] {
        let r = app.raw(
            method,
            path,
            Some(&token),
            &[("content-type", "application/json")],
            b"{}",
        );
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        assert_eq!(
            r.body["data"],
            serde_json::Value::Null,
            "{method} {path}: {}",
            r.text
        );
    }
    // Naming its internal host from outside reaches no component at all, not even on the
    // public write path: berth answers 400 saying why, Spin closes the connection unanswered.
    let total = || app.as_admin().get("/api/v1/images").body["data"]["pagination"]["total"].clone();
    let before = total();
    assert_eq!(before, 4);
    for (method, path) in [
        ("POST", "/api/v1/admin"),
        ("POST", "/"),
        ("POST", "/api/v1/images"),
    ] {
        let answer = send_with_host(&app, method, path, "admin.spin.internal", &token);
        match berth_tests::test_host() {
            berth_tests::Host::Berth => assert!(
                answer.starts_with("HTTP/1.1 400") && answer.contains("internal service"),
                "{method} {path}: {answer}"
            ),
            berth_tests::Host::Spin => assert_eq!(answer, "", "{method} {path}"),
        }
    }
    assert_eq!(
        total(),
        before,
        "a request naming admin's host changed the catalog"
    );
    // Writes reach it only through the catalog's public paths.
    let r = app
        .as_admin()
        .send("POST", "/api/v1/images", Some(&seed_000_body()));
    assert_eq!(r.status, 201);
}

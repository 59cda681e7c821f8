//! Hostile users end to end (issue #12): importers must not own the shared copies everyone
//! uses, control and bidi characters are refused with a 400 that names the parameter, and
//! uniqueness conflicts are 409s, never 500s. Every test tallies the attacks it tried and
//! asserts that none of them drew a 5xx.

use std::time::{Duration, Instant};

use berth_domain::auth::Role;
use berth_tests::harbor::{TestHarbor, UpstreamImage};
use berth_tests::tally::Tally;
use berth_tests::{AppOptions, Caller, Reply, TestApp};
use serde_json::{Value, json};

const SOURCE: &str = "docker.io/library/ubuntu:22.04";

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

fn app_with(harbor: &TestHarbor) -> TestApp {
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        ..Default::default()
    })
}

/// `who` imports `SOURCE`; returns the image id once the import is ready.
fn imported(app: &TestApp, who: &str) -> i64 {
    let r = app.as_user(who).send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": SOURCE})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["data"]["image_id"].as_i64().unwrap();
    let start = Instant::now();
    loop {
        let d = app
            .as_admin()
            .get(&format!("/api/v1/images/{id}/importing-details"));
        assert_eq!(d.status, 200, "{}", d.text);
        match d.body["data"]["status"].as_str() {
            Some("ready") => return id,
            Some("importing") => {}
            other => panic!("import of {SOURCE} ended {other:?}: {}", d.text),
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", d.text);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn harbor_has(harbor: &TestHarbor, tag: &str) -> bool {
    harbor
        .state()
        .artifacts
        .iter()
        .any(|a| a.repository.ends_with("library/ubuntu") && a.tags.iter().any(|t| t == tag))
}

/// Every write a non-admin could try on image `id`, through both APIs.
fn writes(id: i64) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        (
            "PUT",
            format!("/api/v1/images/{id}"),
            Some(json!({"name": "mine-now"})),
        ),
        (
            "PATCH",
            format!("/api/v1/images/{id}"),
            Some(json!({"registry_url": "evil.example.com/x/y:1"})),
        ),
        (
            "PATCH",
            format!("/api/v1/images/{id}"),
            Some(json!({"visibility": "private"})),
        ),
        (
            "PATCH",
            format!("/api/v1/images/{id}"),
            Some(json!({"description": "defaced"})),
        ),
        (
            "PUT",
            format!("/api/images/{id}"),
            Some(json!({"name": "mine-too"})),
        ),
        (
            "PUT",
            format!("/api/images/{id}/status"),
            Some(json!({"status": "offline"})),
        ),
        (
            "POST",
            format!("/api/images/{id}/versions"),
            Some(json!({"version": "evil"})),
        ),
        ("DELETE", format!("/api/v1/images/{id}"), None),
        ("DELETE", format!("/api/images/{id}"), None),
    ]
}

fn try_writes(t: &mut Tally, caller: &Caller<'_>, id: i64, status: u16, says: &str) {
    for (method, path, body) in writes(id) {
        let r = caller.send(method, &path, body.as_ref());
        t.expect(&format!("{method} {path}"), r, status, says);
    }
}

#[test]
fn importers_do_not_own_the_shared_copy() {
    let mut t = Tally::new("shared copies");
    let harbor = harbor_with_ubuntu();
    let app = app_with(&harbor);
    let id = imported(&app, "alice");
    let alice = app.as_user("alice");

    // The importer is recorded, not made owner.
    let before = alice.get(&format!("/api/v1/images/{id}"));
    assert_eq!(before.status, 200, "{}", before.text);
    assert_eq!(
        before.body["data"]["created_by"], "alice",
        "{}",
        before.text
    );
    assert_eq!(before.body["data"]["owner"], Value::Null, "{}", before.text);
    assert_eq!(before.body["data"]["visibility"], "public");

    // Neither the importer nor anyone else may rename, repoint, hide, deface, version or
    // delete it, through either API.
    try_writes(&mut t, &alice, id, 403, "only admins");
    try_writes(&mut t, &app.as_user("bob"), id, 403, "only admins");

    let after = app.as_user("carol").get(&format!("/api/v1/images/{id}"));
    assert_eq!(after.status, 200, "{}", after.text);
    for field in [
        "name",
        "registry_url",
        "visibility",
        "description",
        "publication",
    ] {
        assert_eq!(
            after.body["data"][field], before.body["data"][field],
            "{field} changed"
        );
    }
    assert!(
        harbor_has(&harbor, "22.04"),
        "the Harbor artifact was deleted"
    );
    let versions = app.as_admin().get("/api/v1/images?name=evil");
    assert_eq!(
        versions.body["data"]["pagination"]["total"], 0,
        "{}",
        versions.text
    );

    // Admins still may; once hidden, the importer no longer even sees it (404, not 403).
    let hidden = app.as_admin().send(
        "PATCH",
        &format!("/api/v1/images/{id}"),
        Some(&json!({"visibility": "private"})),
    );
    assert_eq!(hidden.status, 200, "{}", hidden.text);
    try_writes(&mut t, &alice, id, 404, "not found");
    let gone = alice.get(&format!("/api/v1/images/{id}"));
    assert_eq!(gone.status, 404, "{}", gone.text);
    t.finish();
}

#[test]
fn public_images_are_changed_by_admins_only_and_own_private_ones_still_by_their_owner() {
    let mut t = Tally::new("public rows");
    let app = TestApp::spawn_with(AppOptions {
        variables: vec![("allow_user_images".into(), "true".into())],
        ..Default::default()
    });
    let admin = app.as_admin();
    let dave = app.as_user("dave");

    // Dave's own private image: still his to change.
    let r = dave.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "dave-env:1", "registry_url": "registry.example.com/dave/env:1"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let own = r.body["data"]["image_id"].as_i64().unwrap();
    let r = dave.send(
        "PATCH",
        &format!("/api/v1/images/{own}"),
        Some(&json!({"description": "mine"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Made public by an admin, it is everyone's: dave may no longer change or delete it.
    let r = admin.send(
        "PATCH",
        &format!("/api/v1/images/{own}"),
        Some(&json!({"visibility": "public"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    try_writes(&mut t, &dave, own, 403, "public");

    // An admin's public custom image, likewise.
    let r = admin.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "shared-env:1", "registry_url": "registry.example.com/team/env:1"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let shared = r.body["data"]["image_id"].as_i64().unwrap();
    try_writes(&mut t, &dave, shared, 403, "only admins");

    // Forged, expired and absent tokens are still refused.
    for token in [
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiIsInJvbGUiOiJhZG1pbiJ9.",
        "not-a-token",
        &berth_tests::token("admin", Role::Admin, -60),
    ] {
        let r = app.call(
            "DELETE",
            &format!("/api/v1/images/{shared}"),
            Some(token),
            None,
        );
        t.expect("forged token", r, 401, "");
    }
    let r = app
        .anonymous()
        .send("DELETE", &format!("/api/v1/images/{shared}"), None);
    t.expect("no token", r, 401, "");
    assert_eq!(admin.get(&format!("/api/v1/images/{shared}")).status, 200);
    t.finish();
}

#[test]
fn control_and_bidi_characters_are_refused_naming_the_parameter() {
    let mut t = Tally::new("control characters");
    let app = TestApp::spawn();
    let admin = app.as_admin();
    let user = app.as_user("eve");

    // Query values: NUL (a 500 before), other C0 controls, DEL, and bidi controls.
    for (path, param) in [
        ("/api/v1/images?name=%00", "name"),
        ("/api/v1/images?name=py%00torch", "name"),
        ("/api/v1/images?name=a%1Fb", "name"),
        ("/api/v1/images?name=%7F", "name"),
        ("/api/v1/images?keyword=%E2%80%AEtxt.exe", "keyword"),
        ("/api/v1/images?name=%E2%81%A6x%E2%81%A9", "name"),
        ("/api/v1/images?name=%E2%80%8F", "name"),
        ("/api/v1/images?category=%0A", "category"),
        ("/api/v1/images?sort=name%00", "sort"),
        ("/api/images?name=%00", "name"),
        ("/api/images?name=%E2%80%AA", "name"),
    ] {
        let r = user.get(path);
        t.expect(path, r, 400, &format!("'{param}'"));
    }

    // Name fields of bodies, through both APIs.
    let ok_v1 = |name: &str| json!({"name": name, "registry_url": "registry.example.com/a/b:1"});
    for (body, field) in [
        (ok_v1("a\u{0}b"), "name"),
        (ok_v1("tab\tname"), "name"),
        (ok_v1("gpu\u{202e}1"), "name"),
        (ok_v1("x\u{2067}y"), "name"),
        (ok_v1("lrm\u{200e}"), "name"),
        (
            json!({"name": "fine:1", "display_name": "see\u{202d}me", "registry_url": "registry.example.com/a/c:1"}),
            "display_name",
        ),
        (
            json!({"name": "fine:2", "frameworks": ["py\u{0}torch"], "registry_url": "registry.example.com/a/d:1"}),
            "frameworks",
        ),
    ] {
        let r = admin.send("POST", "/api/v1/images", Some(&body));
        t.expect(&format!("v1 body {body}"), r, 400, &format!("'{field}'"));
    }
    for (body, field) in [
        (
            json!({"name": "c\u{0}1", "imageAddress": "registry.example.com/c/d:1"}),
            "name",
        ),
        (
            json!({"imageId": "c\u{2069}1", "imageAddress": "registry.example.com/c/d:1"}),
            "imageId",
        ),
        (
            json!({"name": "c:1", "displayName": "\u{7f}", "imageAddress": "registry.example.com/c/d:1"}),
            "displayName",
        ),
    ] {
        let r = admin.send("POST", "/api/images", Some(&body));
        t.expect(
            &format!("console body {body}"),
            r,
            400,
            &format!("'{field}'"),
        );
    }

    // Import sources and registry names are refused too.
    for source in [
        "docker.io/library/a\u{0}b:1",
        "docker.io/library/ubuntu:22\u{202e}04",
    ] {
        let r = user.send(
            "POST",
            "/api/v1/images:import",
            Some(&json!({"source": source})),
        );
        t.expect(&format!("import {source:?}"), r, 400, "'source'");
    }
    let r = admin.send(
        "POST",
        "/api/v1/registries",
        Some(&json!({"name": "mirror\u{202e}", "host": "mirror.example.com"})),
    );
    t.expect("registry name", r, 400, "'name'");

    // Updates and versions too; the image itself is untouched.
    let r = admin.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "clean:1", "registry_url": "registry.example.com/clean/img:1"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["data"]["image_id"].as_i64().unwrap();
    let r = admin.send(
        "PATCH",
        &format!("/api/v1/images/{id}"),
        Some(&json!({"name": "clean\u{202e}1"})),
    );
    t.expect("PATCH name", r, 400, "'name'");
    let r = admin.send(
        "POST",
        &format!("/api/images/{id}/versions"),
        Some(&json!({"version": "2\u{0}"})),
    );
    t.expect("version", r, 400, "'version'");
    let r = admin.get(&format!("/api/v1/images/{id}"));
    assert_eq!(r.body["data"]["name"], "clean:1", "{}", r.text);

    // Ordinary text, including CJK and RTL letters themselves, is still fine.
    let r = user.get("/api/v1/images?name=%E9%95%9C%E5%83%8F%20%D7%A2%D7%91");
    assert_eq!(r.status, 200, "{}", r.text);
    t.finish();
}

#[test]
fn uniqueness_conflicts_are_409_never_500() {
    let mut t = Tally::new("conflicts");
    let harbor = harbor_with_ubuntu();
    let app = app_with(&harbor);
    let admin = app.as_admin();

    let body = json!({"name": "dup:1", "registry_url": "registry.example.com/dup/img:1"});
    let r = admin.send("POST", "/api/v1/images", Some(&body));
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.body["data"]["image_id"].as_i64().unwrap();

    // The same name twice, through both APIs; the same reference under another name.
    let r = admin.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "dup:1", "registry_url": "registry.example.com/dup/other:1"})),
    );
    t.expect("same name (v1)", r, 409, "dup:1");
    let r = admin.send(
        "POST",
        "/api/images",
        Some(&json!({"name": "dup:1", "imageAddress": "registry.example.com/dup/third:1"})),
    );
    t.expect("same name (console)", r, 409, "dup:1");
    let r = admin.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "dup:2", "registry_url": "registry.example.com/dup/img:1"})),
    );
    t.expect("same reference", r, 409, "already");

    // Renaming onto another image's name, and a version that already exists.
    let r = admin.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "dup:3", "registry_url": "registry.example.com/dup/img:3"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let third = r.body["data"]["image_id"].as_i64().unwrap();
    let r = admin.send(
        "PATCH",
        &format!("/api/v1/images/{third}"),
        Some(&json!({"name": "dup:1"})),
    );
    t.expect("rename onto a name", r, 409, "dup:1");
    let r = admin.send(
        "POST",
        &format!("/api/images/{first}/versions"),
        Some(&json!({"version": "3"})),
    );
    t.expect("existing version", r, 409, "already");

    // An import whose name (its source) an image of some owner already holds: it used to
    // surface the raw UNIQUE failure as a 500, then a 409; names are unique per owner, so
    // the shared import is simply another row.
    let r = admin.send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": SOURCE, "registry_url": "registry.example.com/squat/ubuntu:22.04"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let squat = r.body["data"]["image_id"].as_i64().unwrap();
    let r = app.as_user("mallory").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": SOURCE})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(
        r.body["data"]["image_id"].as_i64(),
        Some(squat),
        "{}",
        r.text
    );
    t.finish();
}

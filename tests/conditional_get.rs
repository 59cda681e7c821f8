//! Conditional GETs end to end: lists carry a weak entity tag from the catalog's revision,
//! the caller and the query, and `If-None-Match` with it is answered 304 until something a
//! list can show changes; an image's detail answers `If-None-Match` with its revision's tag.
//!
//! Fixture ids: official 1–4 (public); alice's private 5, 6; bob's private 7; public 8, 9,
//! 12; offline 10; carol's importing 11.

use std::time::{Duration, Instant};

use berth_tests::harbor::{ScanSpec, TestHarbor};
use berth_tests::{AppOptions, Reply, TestApp, fixtures};
use serde_json::json;

const LIST: &str = "/api/v1/images?page_size=50";

fn app() -> TestApp {
    TestApp::spawn_with(AppOptions {
        prepare_db: Some(Box::new(|db| fixtures::insert(db, &fixtures::catalog()))),
        ..Default::default()
    })
}

fn get(app: &TestApp, who: &str, path: &str, if_none_match: Option<&str>) -> Reply {
    let caller = if who == "admin" {
        app.as_admin()
    } else {
        app.as_user(who)
    };
    let headers: Vec<(&str, &str)> = if_none_match
        .map(|t| ("if-none-match", t))
        .into_iter()
        .collect();
    let r = caller.raw("GET", path, &headers, &[]);
    // Every catalog read is per caller: never stored by a shared cache.
    if r.status == 200 || r.status == 304 {
        let cache = r.header("cache-control").unwrap_or_default();
        assert_eq!(cache, "private, no-cache", "{path}: {:?}", r.headers);
        assert_eq!(r.header("vary"), Some("Authorization"), "{path}");
    }
    r
}

/// A 200 and its tag.
fn tag_of(app: &TestApp, who: &str, path: &str) -> String {
    let r = get(app, who, path, None);
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.header("etag").expect("a list carries an ETag").to_owned()
}

/// `If-None-Match: tag` is answered 304 with the same tag and no body.
fn assert_not_modified(app: &TestApp, who: &str, path: &str, tag: &str) {
    assert_matches(app, who, path, tag, tag);
}

/// `If-None-Match: sent` is answered 304 with the `current` tag and no body.
fn assert_matches(app: &TestApp, who: &str, path: &str, sent: &str, current: &str) {
    let r = get(app, who, path, Some(sent));
    assert_eq!(r.status, 304, "{who} {path} {sent}: {}", r.text);
    assert_eq!(r.header("etag"), Some(current));
    assert!(r.text.is_empty(), "a 304 has no body: {}", r.text);
}

/// `If-None-Match: tag` is answered 200 with another tag, which is returned.
fn assert_changed(app: &TestApp, who: &str, path: &str, tag: &str) -> String {
    let r = get(app, who, path, Some(tag));
    assert_eq!(r.status, 200, "{who} {path} {tag}: {}", r.text);
    let new = r.header("etag").unwrap().to_owned();
    assert_ne!(new, tag, "{path}");
    new
}

fn listed_ids(r: &Reply) -> Vec<i64> {
    r.body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image_id"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_repeated_list_is_304_and_only_for_the_same_caller_and_query() {
    let app = app();
    let tag = tag_of(&app, "alice", LIST);
    assert!(tag.starts_with("W/\""), "lists have weak tags: {tag}");
    assert_not_modified(&app, "alice", LIST, &tag);
    // Weak comparison: the same tag without W/, or among others, matches too; `*` matches.
    assert_matches(&app, "alice", LIST, tag.trim_start_matches("W/"), &tag);
    assert_matches(&app, "alice", LIST, &format!("\"other\", {tag}"), &tag);
    assert_matches(&app, "alice", LIST, "*", &tag);
    // The same query in another order is the same list.
    let two = "/api/v1/images?page_size=2&page=2";
    let two_tag = tag_of(&app, "alice", two);
    assert_not_modified(&app, "alice", "/api/v1/images?page=2&page_size=2", &two_tag);

    // Another caller, role, query or API never gets alice's 304.
    for (who, path) in [
        ("bob", LIST),
        ("admin", LIST),
        ("alice", "/api/v1/images?page_size=49"),
        ("alice", "/api/v1/images?page_size=50&name=alice"),
        ("alice", "/api/images?pageSize=50"),
    ] {
        let r = get(&app, who, path, Some(tag.as_str()));
        assert_eq!(r.status, 200, "{who} {path}: {}", r.text);
        assert_ne!(r.header("etag"), Some(tag.as_str()), "{who} {path}");
    }
    // bob's view holds none of alice's private images, whatever tag he sends.
    let bob = get(&app, "bob", LIST, Some(tag.as_str()));
    assert!(!listed_ids(&bob).contains(&5), "{}", bob.text);

    // The console's list has its own tags and 304s.
    let console = "/api/images?pageSize=50";
    let console_tag = tag_of(&app, "alice", console);
    assert_not_modified(&app, "alice", console, &console_tag);

    // An invalid query is still a 400, whatever the tag.
    let r = get(&app, "alice", "/api/v1/images?page=0", Some("*"));
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn lists_change_tag_after_an_edit_a_visibility_change_scopes_and_a_scan() {
    let app = app();
    let admin = app.as_admin();
    let mut alice = tag_of(&app, "alice", LIST);
    let mut bob = tag_of(&app, "bob", LIST);
    let scoped = "/api/v1/images?page_size=50&applicable_scope=%E6%8E%A8%E7%90%86";
    let mut scoped_tag = tag_of(&app, "bob", scoped);
    let severe = "/api/v1/images?page_size=50&max_severity=high";
    let mut severe_tag = tag_of(&app, "bob", severe);

    // An edit of a field lists show.
    let r = admin.send(
        "PATCH",
        "/api/v1/images/8",
        Some(&json!({"description": "new"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    alice = assert_changed(&app, "alice", LIST, &alice);
    assert_not_modified(&app, "alice", LIST, &alice);

    // Alice's image made public: bob's cached list is no longer current, and now shows it.
    let r = admin.send(
        "PATCH",
        "/api/v1/images/5",
        Some(&json!({"visibility": "public"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get(&app, "bob", LIST, Some(bob.as_str()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(listed_ids(&r).contains(&5), "{}", r.text);
    bob = r.header("etag").unwrap().to_owned();
    // And private again: gone from bob's list, under a new tag.
    let r = admin.send(
        "PATCH",
        "/api/v1/images/5",
        Some(&json!({"visibility": "private"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get(&app, "bob", LIST, Some(bob.as_str()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!listed_ids(&r).contains(&5), "{}", r.text);
    assert_changed(&app, "alice", LIST, &alice);

    // Scopes: the scope filter's list changes.
    let r = admin.send(
        "PATCH",
        "/api/v1/images/9",
        Some(&json!({"applicable_scopes": ["推理"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    scoped_tag = assert_changed(&app, "bob", scoped, &scoped_tag);
    assert_not_modified(&app, "bob", scoped, &scoped_tag);

    // A scan's severity (written as the scan webhook writes it) changes the scan filter's list.
    let db = app.db();
    db.execute(
        "INSERT INTO image_facts (image_id, scan, scan_severity, scanned_at) VALUES (8, '{}', 1, 'x')",
        &[],
    )
    .unwrap();
    let r = get(&app, "bob", severe, Some(severe_tag.as_str()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(listed_ids(&r).contains(&8), "{}", r.text);
    severe_tag = r.header("etag").unwrap().to_owned();
    db.execute(
        "UPDATE image_facts SET scan_severity = 5 WHERE image_id = 8",
        &[],
    )
    .unwrap();
    let r = get(&app, "bob", severe, Some(severe_tag.as_str()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!listed_ids(&r).contains(&8), "{}", r.text);
}

#[test]
fn an_images_detail_answers_if_none_match_with_its_revision() {
    let app = app();
    for path in ["/api/v1/images/5", "/api/images/5"] {
        let tag = tag_of(&app, "alice", path);
        assert!(
            !tag.starts_with("W/"),
            "the detail's tag stays strong: {tag}"
        );
        assert_not_modified(&app, "alice", path, &tag);
        assert_matches(&app, "alice", path, &format!("W/{tag}"), &tag);
        // bob cannot see alice's private image: a 404, never a 304.
        let r = get(&app, "bob", path, Some(tag.as_str()));
        assert_eq!(r.status, 404, "{}", r.text);
    }
    let tag = tag_of(&app, "alice", "/api/v1/images/5");
    let r = app.as_admin().send_with(
        "PATCH",
        "/api/v1/images/5",
        &[("if-match", &tag)],
        &json!({"description": "changed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let new = assert_changed(&app, "alice", "/api/v1/images/5", &tag);
    assert_not_modified(&app, "alice", "/api/v1/images/5", &new);
    // The tag still works for If-Match.
    let r = app.as_admin().send_with(
        "PATCH",
        "/api/v1/images/5",
        &[("if-match", &new)],
        &json!({"description": "again"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

const PYTORCH: &str = "docker.io/pytorch/pytorch:2.0.0-cuda11.7-cudnn8-runtime";

#[test]
fn an_import_and_a_scan_change_the_tags() {
    let harbor = TestHarbor::start();
    let app = TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        ..Default::default()
    });
    let list = tag_of(&app, "alice", LIST);
    let r = app.as_user("alice").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": PYTORCH})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["data"]["image_id"].as_i64().unwrap();
    let r = get(&app, "alice", LIST, Some(list.as_str()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(listed_ids(&r).contains(&id), "{}", r.text);

    let path = format!("/api/v1/images/{id}");
    let start = Instant::now();
    while get(&app, "alice", &path, None).body["data"]["availability"] != "ready" {
        assert!(start.elapsed() < Duration::from_secs(30), "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let list = tag_of(&app, "alice", LIST);
    let detail = tag_of(&app, "alice", &path);
    assert_not_modified(&app, "alice", &path, &detail);

    // Harbor's scan (SCANNING_COMPLETED) changes what the detail shows, and so its tag.
    let status = harbor.scan(ScanSpec {
        counts: Some([("High".into(), 2)].into_iter().collect()),
        repository: Some("catalog/docker.io/pytorch/pytorch".into()),
        reference: Some("2.0.0-cuda11.7-cudnn8-runtime".into()),
        ..Default::default()
    });
    assert_eq!(status, 200);
    let start = Instant::now();
    loop {
        let r = get(&app, "alice", &path, Some(detail.as_str()));
        if r.status == 200 {
            assert_eq!(r.body["data"]["vulnerabilities"]["high"], 2, "{}", r.text);
            break;
        }
        assert_eq!(r.status, 304, "{}", r.text);
        assert!(start.elapsed() < Duration::from_secs(10), "scan not seen");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_changed(&app, "alice", LIST, &list);
}

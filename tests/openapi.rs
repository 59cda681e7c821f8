//! The OpenAPI document is served, covers every route spin.toml serves, and every operation
//! it documents answers the running app with one of its documented statuses.

use berth_tests::{TestApp, repo_root};
use serde_json::Value;

/// Public routes of spin.toml: (route, component).
fn manifest_routes() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    let manifest: toml::Value = toml::from_str(&text).unwrap();
    manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| {
            Some((
                t["route"].as_str()?.to_owned(),
                t["component"].as_str().unwrap().to_owned(),
            ))
        })
        .collect()
}

/// Spin's matching: `/x/...` matches `/x` and everything under it; otherwise exact.
fn route_matches(route: &str, path: &str) -> bool {
    match route.strip_suffix("/...") {
        Some(prefix) => path == prefix || path.starts_with(&format!("{prefix}/")),
        None => route == path,
    }
}

fn document(app: &TestApp) -> Value {
    let r = app.as_user("alice").get("/api/v1/openapi.json");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["openapi"], "3.1.0");
    r.body
}

#[test]
fn every_manifest_route_is_documented_and_every_documented_path_is_routed() {
    let app = TestApp::spawn();
    let doc = document(&app);
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    let routes = manifest_routes();
    assert!(routes.len() >= 6, "{routes:?}");
    for (route, component) in &routes {
        assert!(
            paths.iter().any(|p| route_matches(route, p)),
            "spin.toml route {route} ({component}) has no path in the OpenAPI document"
        );
    }
    for path in &paths {
        assert!(
            routes.iter().any(|(route, _)| route_matches(route, path)),
            "documented path {path} is not served by any spin.toml route"
        );
    }
}

#[test]
fn every_documented_operation_answers_with_a_documented_status() {
    let app = TestApp::spawn();
    let doc = document(&app);
    let admin = app.as_admin();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let concrete = path
                .replace("{id}", "999999")
                .replace("{name}", "bmdpbng")
                .replace("{build_id}", "build-none");
            let method = method.to_uppercase();
            let r = if op.get("requestBody").is_some() {
                admin.raw(
                    &method,
                    &concrete,
                    &[("content-type", "application/json")],
                    b"{}",
                )
            } else {
                admin.send(&method, &concrete, None)
            };
            let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                documented.contains(&&r.status.to_string()),
                "{method} {path} answered {} (documented: {documented:?}): {}",
                r.status,
                r.text
            );
            let message = r.body["message"].as_str().unwrap_or_default();
            assert!(
                !(r.status == 404 && (r.text.is_empty() || message.starts_with("no route"))),
                "{method} {path} is not routed"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations documented");
}

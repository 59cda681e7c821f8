//! The web portal: served by the portal component (HTTP checks), and used in a real
//! browser, the system's Chromium, driven by Playwright (portal/e2e/portal.mjs) against an
//! app with the Harbor simulator; and `chromium --dump-dom` of a fresh app's `/`.
//!
//! Needs node, chromium and portal/node_modules (scripts/test.sh installs them). Missing
//! ones skip these tests with a message, except in CI (`CI` set), where they fail.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use berth_domain::auth::Role;
use berth_tests::harbor::{TestHarbor, UpstreamImage};
use berth_tests::{AppOptions, TestApp, WORKER_TOKEN, repo_root, token};

const OFFICIAL: [&str; 4] = [
    "ubuntu20-pytorch:2.0",
    "ubuntu20-tensorflow:2.12",
    "ubuntu22-cuda:12.0",
    "ubuntu20-jupyter:latest",
];

fn chromium() -> PathBuf {
    PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()))
}

/// Whether the browser tests can run; a missing tool fails in CI and skips locally.
fn browser_tools(need_node: bool) -> bool {
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push("chromium (apt-get install chromium)".to_owned());
    }
    if need_node {
        if Command::new("node").arg("--version").output().is_err() {
            missing.push("node".to_owned());
        }
        if !repo_root()
            .join("portal/node_modules/playwright-core")
            .exists()
        {
            missing.push("portal/node_modules (cd portal && npm ci)".to_owned());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!("browser test needs {}", missing.join(", "));
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("skipped: {message}");
    false
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("portal-screenshots")
}

#[test]
fn portal_is_served_at_the_root_with_caching_and_gzip() {
    let app = TestApp::spawn();
    let index = app.raw("GET", "/", None, &[], &[]);
    assert_eq!(index.status, 200, "{}", index.text);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let script = index
        .text
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .unwrap_or_else(|| panic!("no script in the page: {}", index.text))
        .to_owned();

    // A client page path gets the app too; the API's paths stay the API's.
    assert_eq!(app.raw("GET", "/images/5", None, &[], &[]).text, index.text);
    let unknown_api = app.as_user("alice").get("/api/v2/whatever");
    assert_eq!(unknown_api.status, 404);
    assert_eq!(unknown_api.body["code"], 404);
    let images = app.as_user("alice").get("/api/v1/images");
    assert_eq!(images.status, 200, "{}", images.text);
    assert_eq!(
        app.raw("GET", "/assets/missing-0.js", None, &[], &[])
            .status,
        404
    );

    let plain = app.raw(
        "GET",
        &script,
        None,
        &[("accept-encoding", "identity")],
        &[],
    );
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        plain.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(plain.header("content-encoding"), None);
    let gzip = ureq::get(&format!("{}{script}", app.base_url))
        .set("accept-encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    let mut packed = Vec::new();
    std::io::Read::read_to_end(&mut gzip.into_reader(), &mut packed).unwrap();
    assert_eq!(&packed[..2], b"\x1f\x8b", "not gzip data");
    let mut inflated = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&packed[..]),
        &mut inflated,
    )
    .unwrap();
    assert_eq!(
        inflated, plain.text,
        "a client without gzip gets the same file"
    );
    assert!(
        packed.len() < plain.text.len() / 2,
        "gzip {} vs {} bytes",
        packed.len(),
        plain.text.len()
    );

    // No demo session unless demo mode asked for one.
    let session = app.raw("GET", "/portal/session", None, &[], &[]);
    assert_eq!(session.status, 200);
    assert!(session.body["data"].is_null(), "{}", session.text);
}

#[test]
fn demo_session_signs_in_as_the_demo_user() {
    let app = TestApp::spawn_with(AppOptions {
        variables: vec![("portal_demo_user".into(), "demo".into())],
        ..Default::default()
    });
    let session = app.raw("GET", "/portal/session", None, &[], &[]);
    assert_eq!(session.status, 200, "{}", session.text);
    assert_eq!(session.header("cache-control"), Some("no-store"));
    let token = session.body["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(session.body["data"]["user"], "demo");
    let images = app.get("/api/v1/images", Some(&token));
    assert_eq!(images.status, 200, "{}", images.text);
    assert_eq!(images.body["data"]["pagination"]["total"], 4);
}

#[test]
fn dump_dom_of_a_fresh_app_shows_the_official_images() {
    if !browser_tools(false) {
        return;
    }
    let app = TestApp::spawn_with(AppOptions {
        variables: vec![("portal_demo_user".into(), "demo".into())],
        ..Default::default()
    });
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{}/", app.base_url))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    for name in OFFICIAL {
        assert!(
            dom.contains(name),
            "{name} missing from the DOM:\n{dom}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dom.contains("data-test=\"catalog-official\""), "{dom}");
}

#[test]
fn portal_in_a_real_browser() {
    if !browser_tools(true) {
        return;
    }
    let harbor = TestHarbor::start_with(Duration::from_millis(700));
    harbor.upstream(UpstreamImage {
        registry: Some("docker.io".into()),
        repository: "pytorch/pytorch".into(),
        tag: "2.0.0-cuda11.7-cudnn8-runtime".into(),
        platforms: vec!["linux/amd64".into()],
        size: Some(5_368_709_120),
        ..Default::default()
    });
    let app = TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        ..Default::default()
    });
    let source = "docker.io/pytorch/pytorch:2.0.0-cuda11.7-cudnn8-runtime";
    let destination = format!(
        "{}/catalog/docker.io/pytorch/pytorch:2.0.0-cuda11.7-cudnn8-runtime",
        harbor.sim.addr()
    );
    let shots = screenshots_dir();
    let status = Command::new("node")
        .arg("e2e/portal.mjs")
        .current_dir(repo_root().join("portal"))
        .env("BERTH_URL", &app.base_url)
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", chromium())
        .env("USER_TOKEN", token("alice", Role::User, 3600))
        .env("ADMIN_TOKEN", token("root", Role::Admin, 3600))
        .env("EXPIRED_TOKEN", token("alice", Role::User, -60))
        .env("WORKER_TOKEN", WORKER_TOKEN)
        .env("IMPORT_SOURCE", source)
        .env("IMPORT_NAME", source)
        .env(
            "IMPORT_PROGRESS_PATH",
            format!(
                "/api/v1/images:import/{}/progress",
                berth_domain::services::imports::progress_name(&destination)
            ),
        )
        .status()
        .expect("run node");
    println!("portal screenshots: {}", shots.display());
    assert!(
        status.success(),
        "portal/e2e/portal.mjs failed ({status}); screenshots in {}; host output:\n{}",
        shots.display(),
        app.output()
    );
}

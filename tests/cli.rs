//! `berth` as a CLI for people (host/src/cli, docs/cli.md): the built binary run against a
//! TestApp with BERTH_URL/BERTH_TOKEN, without a terminal (so progress is plain lines), and
//! with HOME/XDG_CONFIG_HOME in a temp dir so no real login is read or written.

use std::path::Path;
use std::process::{Command, Output};

use berth_domain::auth::Role;
use berth_tests::harbor::{FaultsPatch, TestHarbor};
use berth_tests::{AppOptions, TestApp, WORKER_TOKEN, host_binary};

struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// `berth ARGS` with a private config dir and these extra environment variables.
fn berth(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(host_binary());
    cmd.args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env_remove("BERTH_URL")
        .env_remove("BERTH_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run berth");
    Run {
        status: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `berth ARGS` as `user` against `app`, through the environment.
fn berth_as(app: &TestApp, user: &str, args: &[&str]) -> Run {
    let home = tempfile::tempdir().unwrap();
    let token = app.token(user, Role::User);
    berth(
        home.path(),
        &[("BERTH_URL", &app.base_url), ("BERTH_TOKEN", &token)],
        args,
    )
}

fn app_with(harbor: &TestHarbor) -> TestApp {
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables: vec![
            ("import_failure_confirm_seconds".into(), "1".into()),
            ("import_reconcile_after_seconds".into(), "1".into()),
        ],
        ..Default::default()
    })
}

#[test]
fn images_ls_on_a_fresh_app_lists_the_four_official_images() {
    let app = TestApp::spawn();
    let official = app.as_user("alice").get("/api/v1/images?is_official=true");
    let names: Vec<String> = official.body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 4, "{}", official.text);

    let run = berth_as(&app, "alice", &["images", "ls", "--official"]);
    assert_eq!(run.status, Some(0), "{run}");
    for name in &names {
        assert!(run.stdout.contains(name.as_str()), "{name} missing: {run}");
    }
    assert!(run.stdout.contains("(4 images)"), "{run}");

    // The same list for scripts.
    let run = berth_as(&app, "alice", &["images", "ls", "--official", "--json"]);
    assert_eq!(run.status, Some(0), "{run}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(v["items"].as_array().unwrap().len(), 4, "{run}");

    // An unknown image: the API's own words, exit 1.
    let run = berth_as(&app, "alice", &["images", "show", "999999"]);
    assert_eq!(run.status, Some(1), "{run}");
    assert!(run.stderr.contains("not found"), "{run}");
}

#[test]
fn import_watch_follows_an_import_to_its_digest() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor);
    let run = berth_as(
        &app,
        "alice",
        &["import", "docker.io/library/nginx:1.25", "--watch"],
    );
    assert_eq!(run.status, Some(0), "{run}");
    assert!(run.stdout.contains("progress 100%"), "{run}");
    let listed = app
        .as_user("alice")
        .get("/api/v1/images?name=library/nginx&ready=true");
    let id = listed.body["data"]["items"][0]["image_id"]
        .as_i64()
        .unwrap();
    let image = app.as_user("alice").get(&format!("/api/v1/images/{id}"));
    let digest = image.body["data"]["digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"), "{}", image.text);
    assert!(run.stdout.trim_end().ends_with(&digest), "{digest}: {run}");
}

#[test]
fn import_watch_prints_each_layer_as_workers_report_it() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    // Harbor's execution never ends, so only the worker's layer reports move the import.
    let harbor = TestHarbor::start();
    harbor.faults(FaultsPatch {
        hang_executions: Some(true),
        ..Default::default()
    });
    let app = app_with(&harbor);
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(host_binary())
        .args(["import", "docker.io/team/worker:3", "--watch"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("BERTH_URL", &app.base_url)
        .env("BERTH_TOKEN", app.token("alice", Role::User))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let mut wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !lines.iter().any(|l: &String| l.contains(want)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => panic!("no line with {want:?} in {lines:#?}"),
            }
        }
    };
    wait_for("progress ");

    let reference = format!("{}/catalog/docker.io/team/worker:3", harbor.sim.addr());
    let name = berth_domain::services::imports::progress_name(&reference);
    let report = serde_json::json!({
        "sha256:aaaa": {"status": "downloading", "progress": 45},
        "sha256:bbbb": {"status": "completed", "progress": 100},
    });
    let r = app.raw(
        "PUT",
        &format!("/api/v1/images:import/{name}/progress"),
        None,
        &[
            ("authorization", &format!("Bearer {WORKER_TOKEN}")),
            ("content-type", "application/json"),
        ],
        report.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    wait_for("layer aaaa downloading 45%");
    wait_for("layer bbbb completed 100%");
    wait_for("progress 72%");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn import_watch_of_an_unknown_image_fails_saying_it_was_not_found() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor);
    let run = berth_as(
        &app,
        "alice",
        &[
            "import",
            "docker.io/library/nosuchimage:does-not-exist",
            "--watch",
        ],
    );
    assert_eq!(run.status, Some(1), "{run}");
    assert!(run.stderr.contains("not found"), "{run}");
}

#[test]
fn login_saves_url_and_token_privately_and_later_commands_use_them() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn();
    let home = tempfile::tempdir().unwrap();
    let token = app.token("alice", Role::User);

    // A refused token is not saved: exit 3, the API's message.
    let run = berth(
        home.path(),
        &[],
        &["login", &app.base_url, "--token", "nope"],
    );
    assert_eq!(run.status, Some(3), "{run}");
    let path = home.path().join(".config/berth/config.toml");
    assert!(!path.exists(), "{run}");

    let run = berth(
        home.path(),
        &[],
        &["login", &app.base_url, "--token", &token],
    );
    assert_eq!(run.status, Some(0), "{run}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(
        saved.contains(&token) && saved.contains(&app.base_url),
        "{saved}"
    );

    let run = berth(home.path(), &[], &["images", "ls", "--official"]);
    assert_eq!(run.status, Some(0), "{run}");
    assert!(run.stdout.contains("(4 images)"), "{run}");

    // The environment overrides the saved token.
    let run = berth(home.path(), &[("BERTH_TOKEN", "forged")], &["images", "ls"]);
    assert_eq!(run.status, Some(3), "{run}");

    // Not logged in at all: exit 3 and what to do.
    let empty = tempfile::tempdir().unwrap();
    let run = berth(empty.path(), &[], &["images", "ls"]);
    assert_eq!(run.status, Some(3), "{run}");
    assert!(run.stderr.contains("berth login"), "{run}");

    // Usage errors are clap's: exit 2.
    let run = berth(
        home.path(),
        &[],
        &["images", "ls", "--official", "--custom"],
    );
    assert_eq!(run.status, Some(2), "{run}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let run = berth(home.path(), &[], &["completions", shell]);
        assert_eq!(run.status, Some(0), "{run}");
        assert!(run.stdout.contains("images"), "{shell}: {run}");
    }
}

#[test]
fn build_watch_follows_a_build_to_its_image_and_builds_ls_lists_it() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor);
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = dir.path().join("Dockerfile");
    std::fs::write(
        &dockerfile,
        "FROM ubuntu20-pytorch:2.0\nRUN pip install transformers\n",
    )
    .unwrap();
    let file = dockerfile.to_str().unwrap();
    let run = berth_as(
        &app,
        "alice",
        &["build", "-f", file, "--name", "my-image:1.0", "--watch"],
    );
    assert_eq!(run.status, Some(0), "{run}");
    assert!(run.stdout.contains(": succeeded"), "{run}");
    assert!(run.stdout.contains("ready"), "{run}");

    let run = berth_as(&app, "alice", &["builds", "ls"]);
    assert_eq!(run.status, Some(0), "{run}");
    assert!(run.stdout.contains("my-image:1.0"), "{run}");

    // The same name again: the API's 409, in its own words, exit 1.
    let run = berth_as(
        &app,
        "alice",
        &["build", "-f", file, "--name", "my-image:1.0"],
    );
    assert_eq!(run.status, Some(1), "{run}");
    assert!(run.stderr.starts_with("error: "), "{run}");
}

#[test]
fn registries_are_managed_by_admins_only() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor);
    let home = tempfile::tempdir().unwrap();
    let admin = app.token("root", Role::Admin);
    let as_admin = [
        ("BERTH_URL", app.base_url.as_str()),
        ("BERTH_TOKEN", &admin),
    ];

    let run = berth_as(&app, "alice", &["registries", "add", "nvcr.io"]);
    assert_eq!(run.status, Some(3), "{run}");
    assert!(run.stderr.contains("only admins"), "{run}");

    let run = berth(
        home.path(),
        &as_admin,
        &[
            "registries",
            "add",
            "nvcr.io",
            "--username",
            "$oauthtoken",
            "--password",
            "k",
        ],
    );
    assert_eq!(run.status, Some(0), "{run}");
    let run = berth_as(&app, "alice", &["registries", "ls", "--json"]);
    assert_eq!(run.status, Some(0), "{run}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let id = v["items"][0]["id"].as_i64().unwrap().to_string();
    // A user sees no credential facts; an admin sees the username, never the password.
    assert!(v["items"][0].get("has_password").is_none(), "{run}");
    assert!(!run.stdout.contains("$oauthtoken"), "{run}");
    let run = berth(home.path(), &as_admin, &["registries", "ls", "--json"]);
    assert_eq!(run.status, Some(0), "{run}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["items"][0]["has_password"], true, "{run}");
    assert_eq!(v["items"][0]["username"], "$oauthtoken", "{run}");
    assert!(
        !run.stdout.contains("\"k\""),
        "the password is never shown: {run}"
    );

    let run = berth(home.path(), &as_admin, &["registries", "rm", &id]);
    assert_eq!(run.status, Some(0), "{run}");
    let run = berth(home.path(), &as_admin, &["registries", "rm", &id]);
    assert_eq!(run.status, Some(1), "{run}");
    assert!(run.stderr.contains("not found"), "{run}");

    let run = berth(home.path(), &as_admin, &["stats", "--json"]);
    assert_eq!(run.status, Some(0), "{run}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(v["totalProjects"].is_number(), "{run}");
}

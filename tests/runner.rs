//! Real builds end to end: `berth up --runner buildah` starts berth-runner and a
//! docker-registry on loopback; builds run in buildah, are pushed to that registry, the
//! registry's notifications reach the Harbor simulator, which reads the real manifest and
//! sends PUSH_ARTIFACT to berth. Needs buildah, skopeo, docker-registry, busybox-static and
//! python3-pip
//! (scripts/test.sh installs them) and root (buildah's chroot isolation): without them the
//! tests are skipped with a message, and fail when `CI` is set.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::{AppOptions, TestApp, skip_on_spin};

mod fake_kubernetes;
use fake_kubernetes::FakeKubernetes;
use serde_json::{Value, json};

/// The demo's runner secret (spin.toml's default `runner_secret`).
/// What the test support sets `runner_secret` to (tests/support/mod.rs).
const RUNNER_SECRET: &str = "test-runner-secret";

fn missing_tools() -> Vec<String> {
    let mut missing: Vec<String> = ["buildah", "skopeo", "docker-registry"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(String::from)
        .collect();
    if !PathBuf::from("/bin/busybox").is_file() {
        missing.push("busybox-static".into());
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if !Command::new("/usr/bin/python3")
        .args(["-c", "import pip"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        missing.push("python3-pip".into());
    }
    if uid != "0" {
        missing.push("root (buildah --isolation chroot)".into());
    }
    missing
}

/// A berth with real builds, or `None` (the test is skipped) where the tools are missing.
struct RealApp {
    app: TestApp,
    runner_url: String,
    registry: String,
    base_name: String,
    base_ref: String,
}

/// The official base image whose name starts with `prefix`, ready to build on.
fn official_base(app: &TestApp, prefix: &str) -> Value {
    let list = app
        .as_user("alice")
        .get(&format!("/api/v1/images?name={prefix}&is_official=true"));
    let base = list.body["data"]["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|i| i["name"].as_str().unwrap_or("").starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no official {prefix} image: {}", list.text))
        .clone();
    assert_eq!(base["availability"], "ready", "{base}");
    base
}

/// Whether the tools are missing (the test is then skipped, with a message; in CI it fails).
fn skipped() -> bool {
    if skip_on_spin(
        "real builds need berth up --runner buildah (it starts the runner and registry)",
    ) {
        return true;
    }
    let missing = missing_tools();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and real-build tests need: {} (scripts/test.sh installs them)",
            missing.join(", ")
        );
        eprintln!(
            "SKIPPED: real-build tests need {} (scripts/test.sh installs them)",
            missing.join(", ")
        );
    }
    !missing.is_empty()
}

fn start(deadline_seconds: u32, env: &[(&str, &str)]) -> Option<RealApp> {
    if skipped() {
        return None;
    }
    let app = TestApp::spawn_with(AppOptions {
        demo_harbor: true,
        args: vec!["--runner".into(), "buildah".into()],
        variables: vec![(
            "build_deadline_seconds".into(),
            deadline_seconds.to_string(),
        )],
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    });
    // berth up lists the base image once it serves.
    let start = Instant::now();
    while !app.output().contains("is in the catalog") {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the base image was not listed:\n{}",
            app.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = app.output();
    let after = |marker: &str| -> String {
        let rest = &output[output
            .find(marker)
            .unwrap_or_else(|| panic!("no '{marker}' in:\n{output}"))
            + marker.len()..];
        rest.split(|c: char| c.is_whitespace() || c == ';')
            .next()
            .unwrap()
            .to_owned()
    };
    let runner_url = after("berth-runner (buildah) on ");
    let registry = after("registry: docker-registry on http://");
    let base = official_base(&app, "busybox");
    Some(RealApp {
        app,
        runner_url,
        registry,
        base_name: base["name"].as_str().unwrap().to_owned(),
        base_ref: base["registry_url"].as_str().unwrap().to_owned(),
    })
}

impl RealApp {
    fn build(&self, who: &str, body: Value) -> String {
        let r = self
            .app
            .as_user(who)
            .send("POST", "/api/v1/images:build", Some(&body));
        assert_eq!(r.status, 202, "{}", r.text);
        r.body["data"]["build_id"].as_str().unwrap().to_owned()
    }

    fn wait_build(&self, who: &str, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let r = self.app.as_user(who).get(&format!("/api/v1/builds/{id}"));
            assert_eq!(r.status, 200, "{}", r.text);
            let b = r.body["data"].clone();
            if matches!(b["status"].as_str(), Some("succeeded" | "failed")) {
                return b;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "build {id} still {}: {b}\n{}",
                b["status"],
                self.app.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The runner's own record of a build (`GET /runner/jobs/{id}`, signed over the path).
    fn runner_job(&self, id: &str) -> (u16, Value) {
        let path = format!("/runner/jobs/{id}");
        let sig = berth_domain::auth::signature(RUNNER_SECRET, path.as_bytes());
        match ureq::get(&format!("{}{path}", self.runner_url))
            .set("x-berth-signature", &sig)
            .call()
        {
            Ok(r) => (r.status(), r.into_json().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    fn runner_health(&self) -> Value {
        ureq::get(&format!("{}/runner/health", self.runner_url))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    }

    /// The catalog's digest of a built image equals the registry's (skopeo reads it).
    fn assert_pushed(&self, who: &str, build: &Value) -> String {
        assert_eq!(build["status"], "succeeded", "{build}");
        let image = self
            .app
            .as_user(who)
            .get(&format!("/api/v1/images/{}", build["image_id"]));
        assert_eq!(image.status, 200, "{}", image.text);
        let image = &image.body["data"];
        let reference = image["registry_url"].as_str().unwrap();
        assert!(
            reference.starts_with(&format!("{}/catalog/users/{who}/", self.registry)),
            "{reference}"
        );
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(image["digest"], inspected["Digest"], "catalog vs registry");
        assert_eq!(image["arch"], "amd64");
        assert!(image["size"].as_i64().unwrap() > 100_000, "{image}");
        reference.to_owned()
    }

    fn environments(&self) -> [String; 4] {
        let envs = self.app.state_dir.path().join("environments");
        [
            "--root".into(),
            envs.join("storage").display().to_string(),
            "--runroot".into(),
            envs.join("run").display().to_string(),
        ]
    }
}

/// Whether any process runs exactly this command line.
fn process_running(cmdline: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read(p.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmdline)
            .unwrap_or(false)
    })
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn dockerfile_and_environment_builds_push_real_images() {
    let Some(real) = start(600, &[]) else { return };
    // Dockerfile mode, FROM the catalog's busybox by its catalog name, with RUN steps.
    let id = real.build(
        "alice",
        json!({"name": "hello:1.0", "base_image": real.base_name,
               "dockerfile": format!("FROM {}\nRUN echo hello > /hello.txt\nRUN test -s /hello.txt && ls /\n", real.base_name)}),
    );
    let build = real.wait_build("alice", &id);
    let reference = real.assert_pushed("alice", &build);
    // The image really holds what the RUN step wrote.
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--config"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The base's layer and the build's (buildah commits a build's steps as one layer).
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        2,
        "{config}"
    );
    let history = config["history"].to_string();
    assert!(history.contains("echo hello > /hello.txt"), "{history}");
    // Harbor's webhook may complete the build before the runner has cleaned up.
    wait_until("the runner did not record the push", || {
        real.runner_job(&id).1["status"]["state"] == "pushed"
    });
    let (status, job) = real.runner_job(&id);
    assert_eq!(status, 200);
    assert!(
        job["log_tail"].as_str().unwrap().contains("STEP 3/3"),
        "{job}"
    );
    // Build storage is gone once the build is.
    let builds_dir = real.app.state_dir.path().join("runner/builds");
    assert_eq!(
        std::fs::read_dir(&builds_dir).unwrap().count(),
        0,
        "storage left in {}",
        builds_dir.display()
    );

    // Environment mode: a running container on the node (buildah's storage) is committed.
    let envs = real.environments();
    let created = Command::new("buildah")
        .args(&envs)
        .args(["from", "--tls-verify=false", "--name", "env-alice-1"])
        .arg(&real.base_ref)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let ran = Command::new("buildah")
        .args(&envs)
        .args([
            "run",
            "--isolation",
            "chroot",
            "env-alice-1",
            "--",
            "sh",
            "-c",
            "echo work > /saved.txt",
        ])
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let id = real.build(
        "alice",
        json!({"name": "saved-env:1.0", "mode": "environment", "environment_id": "env-alice-1"}),
    );
    let build = real.wait_build("alice", &id);
    real.assert_pushed("alice", &build);
    // The environment itself is left running as it was.
    let still = Command::new("buildah")
        .args(&envs)
        .args(["inspect", "--type", "container", "env-alice-1"])
        .output()
        .unwrap();
    assert!(still.status.success());

    // An unknown environment is refused, never "succeeds".
    let id = real.build(
        "alice",
        json!({"name": "ghost:1.0", "mode": "environment", "environment_id": "env-nobody-9"}),
    );
    let build = real.wait_build("alice", &id);
    assert_eq!(build["status"], "failed", "{build}");
    assert!(
        build["message"]
            .as_str()
            .unwrap()
            .contains("'env-nobody-9' is not a container on this node"),
        "{build}"
    );
    assert!(build["image_id"].is_null());
}

/// A PEP 503 simple index on loopback holding one tiny pure-Python wheel; records the
/// paths it served.
struct PackageIndex {
    url: String,
    served: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

const WHEEL: &str = "berthdemo-1.0-py3-none-any.whl";

impl PackageIndex {
    fn start(dir: &std::path::Path) -> PackageIndex {
        // A wheel is a zip: the module, and METADATA, WHEEL and RECORD in its .dist-info.
        let wheel_path = dir.join(WHEEL);
        let made = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 files = {'berthdemo.py': 'GREETING = \"hello from berthdemo\"\\n',\n\
                 'berthdemo-1.0.dist-info/METADATA': 'Metadata-Version: 2.1\\nName: berthdemo\\nVersion: 1.0\\n',\n\
                 'berthdemo-1.0.dist-info/WHEEL': 'Wheel-Version: 1.0\\nGenerator: berth-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}\n\
                 record = ''.join(f'{n},,\\n' for n in files) + 'berthdemo-1.0.dist-info/RECORD,,\\n'\n\
                 with zipfile.ZipFile(sys.argv[1], 'w') as z:\n\
                 \x20   for n, t in files.items(): z.writestr(n, t)\n\
                 \x20   z.writestr('berthdemo-1.0.dist-info/RECORD', record)\n",
            )
            .arg(&wheel_path)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let wheel = std::fs::read(&wheel_path).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/simple", listener.local_addr().unwrap());
        let served = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = served.clone();
        std::thread::spawn(move || {
            use std::io::{BufRead, BufReader, Write};
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // The headers end with an empty line; there is no body to read.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split(' ').nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push(path.clone());
                let page = format!(
                    "<!DOCTYPE html><html><body><a href=\"/files/{WHEEL}\">{WHEEL}</a></body></html>"
                );
                let (status, kind, body) = match path.as_str() {
                    "/simple/berthdemo/" => ("200 OK", "text/html", page.into_bytes()),
                    p if p == format!("/files/{WHEEL}") => {
                        ("200 OK", "application/octet-stream", wheel.clone())
                    }
                    _ => ("404 Not Found", "text/plain", b"not here".to_vec()),
                };
                let mut out = &stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = out.write_all(&body);
            }
        });
        PackageIndex { url, served }
    }
}

#[test]
fn packages_build_installs_from_the_configured_index_and_pushes() {
    if skipped() {
        return;
    }
    let wheels = tempfile::tempdir().unwrap();
    let index = PackageIndex::start(wheels.path());
    let Some(real) = start(600, &[("BERTH_RUNNER_PIP_INDEX_URL", &index.url)]) else {
        return;
    };
    // berth up lists a Python base (the machine's python3 and pip) after the busybox one.
    let listed = Instant::now();
    while !real.app.output().contains("Base image python:") {
        assert!(
            listed.elapsed() < Duration::from_secs(60),
            "no Python base image was listed:\n{}",
            real.app.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let python = official_base(&real.app, "python");

    let id = real.build(
        "bob",
        json!({"name": "with-pkgs:1.0", "mode": "packages", "base_image": python["name"],
               "packages": {"pip": ["berthdemo==1.0"]}}),
    );
    let build = real.wait_build("bob", &id);
    let reference = real.assert_pushed("bob", &build);
    // pip fetched the wheel from the configured index.
    let served = index.served.lock().unwrap().clone();
    assert!(
        served.contains(&"/simple/berthdemo/".to_owned()),
        "{served:?}"
    );
    assert!(served.contains(&format!("/files/{WHEEL}")), "{served:?}");
    // The image has the base's layers and the build's, whose history is the pip install.
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--config"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        3,
        "busybox, python and the build: {config}"
    );
    assert!(
        config["history"].to_string().contains("pip install"),
        "{config}"
    );
    // The package is really in the pushed image: Python imports it there.
    let envs = real.environments();
    let created = Command::new("buildah")
        .args(&envs)
        .args(["from", "--tls-verify=false", "--name", "check-pkgs"])
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let ran = Command::new("buildah")
        .args(&envs)
        .args(["run", "--isolation", "chroot", "check-pkgs", "--"])
        .args([
            "python3",
            "-c",
            "import berthdemo; print(berthdemo.GREETING)",
        ])
        .output()
        .unwrap();
    let _ = Command::new("buildah")
        .args(&envs)
        .args(["rm", "check-pkgs"])
        .output();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout).trim(),
        "hello from berthdemo"
    );

    // The busybox base has no pip: the same packages build on it fails, and its log tail
    // shows the generated Dockerfile's pip install, with the configured index, not found.
    let id = real.build(
        "bob",
        json!({"name": "no-pip:1.0", "mode": "packages", "base_image": real.base_name,
               "packages": {"pip": ["berthdemo==1.0"]}}),
    );
    let build = real.wait_build("bob", &id);
    assert_eq!(build["status"], "failed", "{build}");
    let tail = build["log_tail"].as_str().unwrap();
    assert!(tail.contains("pip install"), "{tail}");
    assert!(
        tail.contains(&format!("--index-url {}", index.url)),
        "{tail}"
    );
    assert!(tail.contains("pip: not found"), "{tail}");
    assert!(build["image_id"].is_null());
}

#[test]
fn a_failing_run_fails_the_build_with_its_log_tail_and_forged_jobs_are_refused() {
    let Some(real) = start(600, &[]) else { return };
    let id = real.build(
        "alice",
        json!({"name": "broken:1.0",
               "dockerfile": format!("FROM {}\nRUN echo about-to-fail-7 && exit 3\n", real.base_ref)}),
    );
    let build = real.wait_build("alice", &id);
    assert_eq!(build["status"], "failed", "{build}");
    assert!(
        build["message"].as_str().unwrap().contains("exit status 3"),
        "{build}"
    );
    let tail = build["log_tail"].as_str().unwrap();
    assert!(tail.contains("about-to-fail-7"), "{tail}");
    assert!(tail.contains("RUN echo about-to-fail-7"), "{tail}");
    assert!(build["image_id"].is_null());

    // A job whose signature does not verify is refused and never runs.
    let job = json!({"build_id": "build-forged1", "mode": "dockerfile",
        "dockerfile": format!("FROM {}\nRUN true\n", real.base_ref),
        "push": {"registry": real.registry, "repository": "catalog/users/mallory/x", "tag": "1"},
        "callback": {"url": "http://127.0.0.1:9/", "token": "t"}});
    let body = serde_json::to_vec(&job).unwrap();
    for sig in [
        berth_domain::auth::signature("not-the-secret", &body),
        "sha256=".to_owned() + &"0".repeat(64),
        String::new(),
    ] {
        let r = ureq::post(&format!("{}/runner/jobs", real.runner_url))
            .set("x-berth-signature", &sig)
            .send_bytes(&body);
        let Err(ureq::Error::Status(code, r)) = r else {
            panic!("a forged job was accepted")
        };
        assert_eq!(code, 401);
        assert!(r.into_string().unwrap().contains("bad signature"));
    }
    assert_eq!(real.runner_job("build-forged1").0, 404);
    // The same body, signed with the secret, is accepted: the refusal was the signature's.
    let sig = berth_domain::auth::signature(RUNNER_SECRET, &body);
    let ok = ureq::post(&format!("{}/runner/jobs", real.runner_url))
        .set("x-berth-signature", &sig)
        .send_bytes(&body)
        .unwrap();
    assert_eq!(ok.status(), 202);
}

#[test]
fn cancelled_and_overdue_builds_are_stopped_in_the_runner() {
    let Some(real) = start(20, &[]) else { return };
    // Cancelled by its owner while a RUN step runs.
    let id = real.build(
        "alice",
        json!({"name": "long:1.0", "dockerfile": format!("FROM {}\nRUN sleep 3117\n", real.base_ref)}),
    );
    wait_until("the RUN step did not start", || {
        process_running("sleep 3117")
    });
    let r = real
        .app
        .as_user("alice")
        .send("POST", &format!("/api/v1/builds/{id}/cancel"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "failed");
    assert_eq!(r.body["data"]["message"], "cancelled by alice");
    wait_until("the runner did not stop the build", || {
        real.runner_job(&id).1["status"]["state"] == "cancelled"
    });
    wait_until("the RUN step still runs", || !process_running("sleep 3117"));
    let again =
        real.app
            .as_user("alice")
            .send("POST", &format!("/api/v1/builds/{id}/cancel"), None);
    assert_eq!(again.status, 409, "{}", again.text);
    let other = real
        .app
        .as_user("bob")
        .send("POST", &format!("/api/v1/builds/{id}/cancel"), None);
    assert_eq!(other.status, 404, "{}", other.text);

    // Past berth's deadline (20 s): the read that fails it tells the runner to stop.
    let id = real.build(
        "alice",
        json!({"name": "overdue:1.0", "dockerfile": format!("FROM {}\nRUN sleep 3118\n", real.base_ref)}),
    );
    wait_until("the RUN step did not start", || {
        process_running("sleep 3118")
    });
    let build = real.wait_build("alice", &id);
    assert_eq!(build["status"], "failed");
    assert!(
        build["message"].as_str().unwrap().contains("deadline"),
        "{build}"
    );
    wait_until("the runner did not stop the overdue build", || {
        real.runner_job(&id).1["status"]["state"] == "cancelled"
    });
    wait_until("the overdue RUN step still runs", || {
        !process_running("sleep 3118")
    });
    let builds_dir = real.app.state_dir.path().join("runner/builds");
    wait_until("build storage was not removed", || {
        std::fs::read_dir(&builds_dir).unwrap().count() == 0
    });
}

#[test]
fn four_builds_under_a_limit_of_two_queue_and_all_finish() {
    let Some(real) = start(
        600,
        &[
            ("BERTH_RUNNER_MAX_CONCURRENT", "2"),
            ("BERTH_RUNNER_MAX_QUEUED", "2"),
        ],
    ) else {
        return;
    };
    let ids: Vec<String> = (0..4)
        .map(|i| {
            real.build(
                "carol",
                json!({"name": format!("q{i}:1.0"),
                       "dockerfile": format!("FROM {}\nRUN sleep 3 && echo built-{i} > /which\n", real.base_ref)}),
            )
        })
        .collect();
    let health = real.runner_health();
    assert_eq!(
        health["running"].as_u64().unwrap() + health["queued"].as_u64().unwrap(),
        4,
        "{health}"
    );
    assert!(health["running"].as_u64().unwrap() <= 2, "{health}");
    // Full: a fifth build is refused by the runner with back-pressure, and berth says so.
    let fifth = real.app.as_user("carol").send(
        "POST",
        "/api/v1/images:build",
        Some(
            &json!({"name": "q4:1.0", "dockerfile": format!("FROM {}\nRUN true\n", real.base_ref)}),
        ),
    );
    assert_eq!(fifth.status, 502, "{}", fifth.text);
    assert!(fifth.text.contains("HTTP 429"), "{}", fifth.text);
    let mut running_max = 0;
    let start = Instant::now();
    while ids
        .iter()
        .any(|id| real.runner_job(id).1["status"]["state"] != "pushed")
    {
        let h = real.runner_health();
        running_max = running_max.max(h["running"].as_u64().unwrap());
        assert!(h["running"].as_u64().unwrap() <= 2, "{h}");
        assert!(start.elapsed() < Duration::from_secs(180), "{h}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(running_max, 2);
    for id in &ids {
        let build = real.wait_build("carol", id);
        real.assert_pushed("carol", &build);
    }
}

/// `--executor kubernetes`: the runner (started by berth up, configured through its
/// environment) creates one Job per build in a fake API server, whose kubelet runs the
/// Job's pod (`berth-runner build-one`) on this machine: the build really runs in buildah,
/// reports to berth and pushes; the Job's status ends the runner's record; a cancel deletes
/// the Job.
#[test]
fn kubernetes_executor_runs_each_build_as_a_job() {
    if skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runner_bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("berth-runner");
    let kube = FakeKubernetes::start(dir.path(), [("berth-runner".to_owned(), runner_bin)].into());
    let token_file = kube.token_file.display().to_string();
    let Some(real) = start(
        600,
        &[
            ("BERTH_RUNNER_EXECUTOR", "kubernetes"),
            ("BERTH_RUNNER_KUBE_API_URL", &kube.url),
            ("BERTH_RUNNER_KUBE_TOKEN_FILE", &token_file),
            ("BERTH_RUNNER_KUBE_NAMESPACE", fake_kubernetes::NAMESPACE),
            (
                "BERTH_RUNNER_KUBE_JOB_IMAGE",
                "registry.example.com/berth/berth-runner:0.1.0",
            ),
            ("BERTH_RUNNER_KUBE_POLL_MILLIS", "200"),
            ("BERTH_RUNNER_TIMEOUT_SECONDS", "900"),
        ],
    ) else {
        return;
    };
    let job_of = |id: &str| -> (String, Value) {
        let state = kube.state.lock().unwrap();
        state
            .jobs
            .iter()
            .find(|(_, j)| j["metadata"]["annotations"]["berth.dev/build-id"] == id)
            .map(|(n, j)| (n.clone(), j.clone()))
            .unwrap_or_else(|| panic!("no Job for {id}: {:?}", state.jobs.keys()))
    };

    // A build succeeds through its Job.
    let id = real.build(
        "alice",
        json!({"name": "via-k8s:1.0", "base_image": real.base_name,
               "dockerfile": format!("FROM {}\nRUN echo from-a-job > /job.txt\n", real.base_name)}),
    );
    let build = real.wait_build("alice", &id);
    let reference = real.assert_pushed("alice", &build);
    let (name, job) = job_of(&id);
    assert!(name.starts_with(&format!("berth-build-{id}-")), "{name}");
    assert_eq!(job["metadata"]["labels"]["berth.dev/build"], name.as_str());
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["berth.dev/build"],
        name.as_str()
    );
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 900);
    assert_eq!(job["spec"]["backoffLimit"], 0);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example.com/berth/berth-runner:0.1.0"
    );
    assert_eq!(container["command"], json!(["berth-runner"]));
    assert_eq!(container["args"][0], "build-one");
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--timeout-seconds=900"))
    );
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(container["resources"]["limits"]["memory"], "8Gi");
    assert!(
        container["resources"]["limits"]["cpu"].is_string(),
        "{container}"
    );
    // The job reaches the pod through a Secret the Job owns, never in the Job itself.
    let env = container["env"].to_string();
    assert!(
        env.contains(r#""secretKeyRef":{"key":"job.json","name":""#),
        "{env}"
    );
    assert!(!job.to_string().contains("\"callback\""), "{job}");
    {
        let state = kube.state.lock().unwrap();
        let secret = &state.secrets[&name];
        assert_eq!(secret["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(
            secret["metadata"]["ownerReferences"][0]["uid"],
            job["metadata"]["uid"]
        );
        assert_eq!(state.unauthorized, 0);
    }
    // The runner's record has the digest the pod pushed (its termination message).
    wait_until("the runner did not record the push", || {
        real.runner_job(&id).1["status"]["state"] == "pushed"
    });
    let inspected = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert_eq!(
        real.runner_job(&id).1["status"]["digest"],
        String::from_utf8_lossy(&inspected.stdout).trim()
    );

    // A failing build: the pod reports buildah's error to berth, the Job is Failed.
    let id = real.build(
        "alice",
        json!({"name": "k8s-broken:1.0",
               "dockerfile": format!("FROM {}\nRUN echo job-fails-5 && exit 5\n", real.base_ref)}),
    );
    let build = real.wait_build("alice", &id);
    assert_eq!(build["status"], "failed", "{build}");
    assert!(
        build["message"].as_str().unwrap().contains("exit status 5"),
        "{build}"
    );
    assert!(
        build["log_tail"].as_str().unwrap().contains("job-fails-5"),
        "{build}"
    );
    wait_until("the runner did not see the Job fail", || {
        real.runner_job(&id).1["status"]["state"] == "failed"
    });
    let (_, job) = job_of(&id);
    assert_eq!(job["status"]["conditions"][0]["type"], "Failed");
    let (_, record) = real.runner_job(&id);
    assert!(
        record["status"]["message"]
            .as_str()
            .unwrap()
            .contains("BackoffLimitExceeded"),
        "{record}"
    );

    // A cancel deletes the Job (in the background) and so stops its pod and RUN step.
    let id = real.build(
        "alice",
        json!({"name": "k8s-long:1.0", "dockerfile": format!("FROM {}\nRUN sleep 3119\n", real.base_ref)}),
    );
    wait_until("the RUN step did not start in the pod", || {
        process_running("sleep 3119")
    });
    let (name, _) = job_of(&id);
    let r = real
        .app
        .as_user("alice")
        .send("POST", &format!("/api/v1/builds/{id}/cancel"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until("the Job was not deleted", || {
        kube.state
            .lock()
            .unwrap()
            .deletions
            .contains(&(name.clone(), "propagationPolicy=Background".into()))
    });
    assert!(!kube.state.lock().unwrap().jobs.contains_key(&name));
    assert!(!kube.state.lock().unwrap().secrets.contains_key(&name));
    wait_until("the runner did not record the cancel", || {
        real.runner_job(&id).1["status"]["state"] == "cancelled"
    });
    wait_until("the pod's RUN step still runs", || {
        !process_running("sleep 3119")
    });
}

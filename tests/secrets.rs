//! No published default secret (issue #12, item 12): spin.toml gives secrets no default;
//! `berth up` in demo mode generates them once per state directory and says so, and
//! `berth token` signs with them; outside demo mode a missing secret stops the start.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use berth_domain::auth::{Claims, Role, issue_token};
use berth_tests::{host_binary, repo_root, skip_on_spin};

/// The development default spin.toml used to publish for `jwt_secret`.
const OLD_DEFAULT_JWT_SECRET: &str = "berth-dev-jwt-secret-change-me";

/// `berth` with none of the app's variables set: what a fresh deployment looks like.
fn berth(args: &[&str]) -> Command {
    let mut cmd = Command::new(host_binary());
    cmd.current_dir(repo_root()).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("SPIN_VARIABLE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

struct Up {
    child: Child,
    base: String,
    lines: Vec<String>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `berth up` in demo mode (no Harbor configured) on `state_dir`, until it serves.
fn up_demo(state_dir: &Path) -> Up {
    let mut child = berth(&["up", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state_dir)
        .env(
            "BERTH_COMPILE_CACHE",
            std::env::temp_dir().join("berth-test-compile-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start berth up");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens: a closed pipe would kill the host.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!("berth up did not serve; it printed:\n{}", lines.join("\n"))
            });
        if let Some(addr) = line.trim().strip_prefix("Serving ") {
            let base = addr.to_string();
            lines.push(line);
            return Up { child, base, lines };
        }
        lines.push(line);
    }
}

fn list_status(base: &str, token: &str) -> u16 {
    match ureq::get(&format!("{base}/api/v1/images"))
        .set("authorization", &format!("Bearer {token}"))
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("list: {e}"),
    }
}

fn berth_token(state_dir: &Path) -> String {
    let out = berth(&["token", "--sub", "alice", "--role", "admin", "--state-dir"])
        .arg(state_dir)
        .output()
        .expect("run berth token");
    assert!(
        out.status.success(),
        "berth token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn demo_mode_generates_secrets_once_per_state_dir_and_the_old_default_is_refused() {
    if skip_on_spin("berth up's demo mode and berth token") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let up = up_demo(state.path());
    let said = up.lines.join("\n");
    assert!(
        said.contains("Demo mode: generated") && said.contains("jwt_secret"),
        "berth up must say it generated secrets:\n{said}"
    );
    let file = state.path().join("demo-secrets.toml");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is readable by others", file.display());
    let saved: toml::Table = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    for name in [
        "jwt_secret",
        "harbor_password",
        "harbor_webhook_secret",
        "worker_token",
        "runner_secret",
        "runner_token",
        "registry_secret_key",
    ] {
        let value = saved[name].as_str().unwrap();
        assert_eq!(value.len(), 64, "{name} is 32 random bytes in hex");
        assert!(
            !said.contains(value),
            "berth up printed the value of {name}"
        );
    }

    // A token signed with the secret spin.toml used to publish is nobody.
    let forged = issue_token(
        OLD_DEFAULT_JWT_SECRET,
        &Claims {
            sub: "mallory".into(),
            role: Role::Admin,
            exp: i64::MAX / 2,
        },
    );
    assert_eq!(list_status(&up.base, &forged), 401);

    // `berth token` reads the same state directory.
    let token = berth_token(state.path());
    assert_eq!(list_status(&up.base, &token), 200);
    drop(up);

    // A restart keeps the secrets: the token is still good, nothing is regenerated.
    let up = up_demo(state.path());
    let said = up.lines.join("\n");
    assert!(
        !said.contains("generated"),
        "secrets regenerated on restart:\n{said}"
    );
    assert_eq!(list_status(&up.base, &token), 200);
    let again: toml::Table = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(again, saved);
}

#[test]
fn outside_demo_mode_a_missing_secret_is_a_start_up_error() {
    if skip_on_spin("berth up's start-up check of required secrets (runs berth up itself)") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let out = berth(&["up", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .env("SPIN_VARIABLE_HARBOR_URL", "http://harbor.example.internal")
        .env("SPIN_VARIABLE_HARBOR_PASSWORD", "set")
        .output()
        .expect("run berth up");
    assert!(!out.status.success(), "berth up started without jwt_secret");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jwt_secret") && err.contains("SPIN_VARIABLE_JWT_SECRET"),
        "the error must name the missing secret and how to set it: {err}"
    );
    assert!(
        !err.contains("harbor_password"),
        "a set secret is not reported missing: {err}"
    );
    assert!(
        !state.path().join("demo-secrets.toml").exists(),
        "no secrets are generated outside demo mode"
    );

    // And `berth token` refuses rather than signing with a default.
    let out = berth(&["token", "--sub", "a", "--role", "user", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jwt_secret is not set"));
}

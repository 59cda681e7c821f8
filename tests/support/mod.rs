//! `TestApp`: the berth host serving the built components on a random port, with a fresh
//! state dir; helpers to call it as an anonymous user, a user or an admin.
//!
//! The store: SQLite in the state dir, or with `BERTH_TEST_STORE=postgres` a fresh database
//! on a throwaway PostgreSQL cluster (`berth-test-support`, one cluster per test binary).
//!
//! Needs `target/release/berth` and the components (`scripts/test.sh` builds both), or
//! `BERTH_BIN` pointing at a host binary.
//!
//! The host: berth's, or with `BERTH_TEST_HOST=spin` real Spin (`spin.rs`) on the same files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use berth_domain::auth::{Claims, Role, issue_token};
use berth_domain::db::Db;
use serde_json::Value;

pub mod fixtures;
pub mod harbor;
pub mod proxy;
pub mod spin;
pub mod tally;

pub use berth_test_support::postgres;
pub use spin::{Host, skip_on_spin, test_host};

pub const JWT_SECRET: &str = "test-jwt-secret";
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const WORKER_TOKEN: &str = "test-worker-token";
pub const RUNNER_TOKEN: &str = "test-runner-token";
pub const REGISTRY_SECRET_KEY: &str = "test-registry-secret-key";

/// The repository root (where spin.toml lives).
pub fn repo_root() -> PathBuf {
    // Read at run time (cargo sets it for `cargo test`): a binary cargo reuses from another
    // checkout sharing the target dir would otherwise name that checkout.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    Path::new(&manifest_dir).parent().unwrap().to_path_buf()
}

pub fn host_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("BERTH_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let bin = target.join("release").join("berth");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test.sh (it builds the host and components)",
        bin.display()
    );
    bin
}

/// A running host and what it printed.
pub struct TestApp {
    pub base_url: String,
    pub state_dir: tempfile::TempDir,
    /// The PostgreSQL database the app runs on, when it does.
    pub database: Option<postgres::TestDatabase>,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    /// On Spin: the file its output goes to.
    spin_log: Option<PathBuf>,
    /// On Spin: the test's stand-in for the scheduler that calls the sweep route.
    _sweeps: Option<spin::SweepScheduler>,
}

/// A response: status, headers and the JSON body (Null when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Options for starting a host.
#[derive(Default)]
pub struct AppOptions {
    /// Extra `SPIN_VARIABLE_*` values, by variable name.
    pub variables: Vec<(String, String)>,
    /// Prepares the app's database (SQLite or PostgreSQL) before the host starts.
    pub prepare_db: Option<Box<dyn FnOnce(&dyn Db)>>,
    /// Points berth at a Harbor (`TestHarbor::variables`) whose webhooks reach the app.
    /// Without one, berth's Harbor is a closed port.
    pub harbor: Option<Vec<(String, String)>>,
    /// Extra environment for the host process (e.g. `BERTH_MAX_BODY_BYTES`).
    pub env: Vec<(String, String)>,
    /// Extra `berth up` arguments (e.g. `--runner buildah`).
    pub args: Vec<String>,
    /// Leave `harbor_url` unset, so `berth up` serves its demo Harbor (ignored with `harbor`).
    pub demo_harbor: bool,
}

impl TestApp {
    pub fn spawn() -> TestApp {
        TestApp::spawn_with(AppOptions::default())
    }

    pub fn spawn_with(mut opts: AppOptions) -> TestApp {
        let state_dir = tempfile::tempdir().expect("temp dir");
        // Options that choose a store themselves (e.g. replicas sharing one database) win.
        let database = if opts.variables.iter().any(|(k, _)| k == "store") {
            None
        } else if test_store() == "postgres" {
            let db = postgres::fresh_database();
            opts.variables.extend(db.variables());
            Some(db)
        } else {
            None
        };
        if let Some(prepare) = opts.prepare_db {
            match &database {
                Some(db) => prepare(&db.connect()),
                None => {
                    let conn =
                        rusqlite::Connection::open(state_dir.path().join("sqlite_db.db")).unwrap();
                    prepare(&berth_domain::db::native::SqliteDb(conn));
                }
            }
        }
        let port = free_port();
        let host = test_host();
        let (mut cmd, spin_log) = match host {
            Host::Berth => {
                let mut cmd = Command::new(host_binary());
                cmd.current_dir(repo_root())
                    .args([
                        "up",
                        "--listen",
                        &format!("127.0.0.1:{port}"),
                        "--state-dir",
                    ])
                    .arg(state_dir.path())
                    .args(&opts.args)
                    .env("BERTH_COMPILE_CACHE", shared_compile_cache())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                (cmd, None)
            }
            Host::Spin => {
                // What only berth's host understands: such a test calls skip_on_spin first.
                assert!(
                    opts.args.is_empty()
                        && !opts.demo_harbor
                        && !opts.env.iter().any(|(k, _)| k.starts_with("BERTH_")),
                    "berth-only host options on Spin (skip the test with skip_on_spin)"
                );
                let (cmd, log) = spin::command(state_dir.path(), port);
                (cmd, Some(log))
            }
        };
        cmd.env("SPIN_VARIABLE_JWT_SECRET", JWT_SECRET)
            .env("SPIN_VARIABLE_HARBOR_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("SPIN_VARIABLE_WORKER_TOKEN", WORKER_TOKEN)
            .env("SPIN_VARIABLE_RUNNER_TOKEN", RUNNER_TOKEN)
            .env("SPIN_VARIABLE_REGISTRY_SECRET_KEY", REGISTRY_SECRET_KEY)
            // Required secrets that a test with no Harbor never uses (`harbor` overrides them).
            .env("SPIN_VARIABLE_HARBOR_PASSWORD", "test-harbor-password")
            .env("SPIN_VARIABLE_RUNNER_SECRET", "test-runner-secret")
            .env(
                "SPIN_VARIABLE_PUBLIC_URL",
                format!("http://127.0.0.1:{port}"),
            );
        let harbor = match opts.harbor {
            Some(vars) => {
                let hook = format!("http://127.0.0.1:{port}/api/v1/hooks/harbor");
                vars.into_iter()
                    .chain([("webhook_url".to_owned(), hook)])
                    .collect()
            }
            None if opts.demo_harbor => Vec::new(),
            // The official images then name seed 000's example registry.
            None => vec![
                ("harbor_url".to_owned(), "http://127.0.0.1:1".to_owned()),
                (
                    "harbor_registry_host".to_owned(),
                    "harbor.remotegpu.com".to_owned(),
                ),
            ],
        };
        for (name, value) in harbor.iter().chain(&opts.variables) {
            cmd.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        cmd.envs(opts.env);
        let mut child = cmd.spawn().expect("start the host");
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(log) = spin_log {
            spin::wait_ready(&mut child, port, &log);
            let base_url = format!("http://127.0.0.1:{port}");
            // spin.toml's default period unless the test sets one.
            let period = opts
                .variables
                .iter()
                .find(|(name, _)| name == "sweep_interval_seconds")
                .and_then(|(_, v)| v.parse::<f64>().ok())
                .unwrap_or(30.0);
            let sweeps = spin::SweepScheduler::start(&base_url, Duration::from_secs_f64(period));
            return TestApp {
                base_url,
                state_dir,
                database,
                child,
                output,
                spin_log: Some(log),
                _sweeps: Some(sweeps),
            };
        }
        let (tx, rx) = mpsc::channel();
        drain(child.stdout.take().unwrap(), output.clone(), Some(tx));
        drain(child.stderr.take().unwrap(), output.clone(), None);
        let base_url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "host did not start serving:\n{}",
                    output.lock().unwrap().join("\n")
                );
            }
        };
        TestApp {
            base_url,
            state_dir,
            database,
            child,
            output,
            spin_log: None,
            _sweeps: None,
        }
    }

    /// A native connection to the app's store (SQLite file or PostgreSQL database), to
    /// read what it stored or to leave rows as a crash would.
    pub fn db(&self) -> Box<dyn Db> {
        match &self.database {
            Some(db) => Box::new(db.connect()),
            None => Box::new(berth_domain::db::native::SqliteDb(
                rusqlite::Connection::open(self.sqlite_path()).expect("open the app's SQLite file"),
            )),
        }
    }

    /// The app's SQLite file (when it runs on SQLite).
    pub fn sqlite_path(&self) -> PathBuf {
        self.state_dir.path().join("sqlite_db.db")
    }

    /// The host process's id (e.g. to read its memory from `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` the host listens on, for raw TCP clients.
    pub fn addr(&self) -> &str {
        self.base_url.trim_start_matches("http://")
    }

    /// Everything the host printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        match &self.spin_log {
            Some(log) => std::fs::read_to_string(log).unwrap_or_default(),
            None => self.output.lock().unwrap().join("\n"),
        }
    }

    pub fn token(&self, sub: &str, role: Role) -> String {
        token(sub, role, 3600)
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        let body = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        self.raw(method, path, auth, headers, &body)
    }

    /// A request with exactly these extra headers and body bytes.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut req = ureq::request(method, &format!("{}{}", self.base_url, path))
            .timeout(Duration::from_secs(30));
        if let Some(token) = auth {
            req = req.set("authorization", &format!("Bearer {token}"));
        }
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let result = if body.is_empty() && matches!(method, "GET" | "HEAD" | "DELETE") {
            req.call()
        } else {
            req.send_bytes(body)
        };
        let resp = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = resp.header(&n).unwrap_or_default().to_owned();
                (n, v)
            })
            .collect();
        let text = resp.into_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn get(&self, path: &str, auth: Option<&str>) -> Reply {
        self.call("GET", path, auth, None)
    }

    pub fn as_user(&self, name: &str) -> Caller<'_> {
        Caller {
            app: self,
            token: Some(self.token(name, Role::User)),
        }
    }

    pub fn as_admin(&self) -> Caller<'_> {
        Caller {
            app: self,
            token: Some(self.token("admin", Role::Admin)),
        }
    }

    pub fn anonymous(&self) -> Caller<'_> {
        Caller {
            app: self,
            token: None,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(log) = &self.spin_log else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        };
        spin::kill_group(&mut self.child);
        if std::thread::panicking() {
            eprintln!("Spin's output is kept in {}", log.display());
        } else {
            let _ = std::fs::remove_file(log);
        }
    }
}

/// A token for `JWT_SECRET`, valid for `ttl` seconds from now (negative: already expired).
pub fn token(sub: &str, role: Role, ttl: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    issue_token(
        JWT_SECRET,
        &Claims {
            sub: sub.into(),
            role,
            exp: now + ttl,
        },
    )
}

/// One caller's view of the app.
pub struct Caller<'a> {
    app: &'a TestApp,
    token: Option<String>,
}

impl Caller<'_> {
    pub fn get(&self, path: &str) -> Reply {
        self.app.call("GET", path, self.token.as_deref(), None)
    }

    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.app.call(method, path, self.token.as_deref(), body)
    }

    /// A JSON body with extra headers (e.g. `If-Match`).
    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.app.raw(
            method,
            path,
            self.token.as_deref(),
            &all,
            &serde_json::to_vec(body).unwrap(),
        )
    }

    pub fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.app
            .raw(method, path, self.token.as_deref(), headers, body)
    }
}

/// The store the end-to-end tests run on: `BERTH_TEST_STORE` (`sqlite`, the default, or
/// `postgres`).
pub fn test_store() -> String {
    match std::env::var("BERTH_TEST_STORE").as_deref() {
        Ok("postgres") => "postgres".into(),
        Ok("sqlite") | Ok("") | Err(_) => "sqlite".into(),
        Ok(other) => panic!("BERTH_TEST_STORE={other}: expected sqlite or postgres"),
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Compiled components are cached across the test run, so each host starts fast.
fn shared_compile_cache() -> PathBuf {
    let dir = std::env::temp_dir().join("berth-test-compile-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn drain(
    stream: impl std::io::Read + Send + 'static,
    out: Arc<Mutex<Vec<String>>>,
    ready: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let (Some(tx), Some(url)) = (&ready, line.strip_prefix("Serving ")) {
                let _ = tx.send(url.trim().to_owned());
            }
            out.lock().unwrap().push(line);
        }
    });
}

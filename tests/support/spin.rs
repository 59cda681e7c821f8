//! Real Spin as the end-to-end host: with `BERTH_TEST_HOST=spin`, [`crate::TestApp`] runs
//! `spin up` on the repository's spin.toml and the same built `.wasm` files instead of
//! `berth up`. Variables go in as `SPIN_VARIABLE_*` (as for berth), the SQLite database is
//! named by a runtime config (`<state-dir>/sqlite_db.db`, where fixtures write it), and
//! PostgreSQL needs nothing more: its address is a variable (`db_url`).
//!
//! Spin's stdout and stderr (its own lines and the components' output) go to a log file
//! under `target/spin-logs/`, kept when the test fails. `spin up` runs its trigger as a
//! child process, so the app is started in its own process group and the group is killed
//! on drop. Spin is `$BERTH_SPIN_BIN`, else `spin` on the PATH.
//!
//! Tests of what only berth's host has (its flags, limits, demo mode, its CLI) call
//! [`skip_on_spin`], which prints why.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The host the end-to-end tests run on: `BERTH_TEST_HOST` (`berth`, the default, or `spin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Berth,
    Spin,
}

pub fn test_host() -> Host {
    match std::env::var("BERTH_TEST_HOST").as_deref() {
        Ok("spin") => Host::Spin,
        Ok("berth") | Ok("") | Err(_) => Host::Berth,
        Ok(other) => panic!("BERTH_TEST_HOST={other}: expected berth or spin"),
    }
}

/// On Spin, prints `skipped on Spin: <test>: <why>` and returns true: the test then returns
/// at once. The line is written past the test harness's output capture, so it always shows.
pub fn skip_on_spin(why: &str) -> bool {
    if test_host() != Host::Spin {
        return false;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let line = format!("skipped on Spin: {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    true
}

fn spin_binary() -> PathBuf {
    std::env::var_os("BERTH_SPIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| "spin".into())
}

/// Where the apps' logs go: `target/spin-logs/` (a failed test's log stays there).
fn log_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    let dir = target.join("spin-logs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `spin up` serving spin.toml on `port`, with its state (and SQLite database) in
/// `state_dir`, writing everything it prints to the returned log file.
pub fn command(state_dir: &Path, port: u16) -> (Command, PathBuf) {
    let database = state_dir.join("sqlite_db.db");
    let runtime_config = state_dir.join("runtime-config.toml");
    std::fs::write(
        &runtime_config,
        format!(
            "[sqlite_database.default]\ntype = \"spin\"\npath = {}\n",
            toml::Value::String(database.display().to_string())
        ),
    )
    .unwrap();
    let test = std::thread::current()
        .name()
        .unwrap_or("app")
        .replace("::", "-");
    let log = log_dir().join(format!("{test}-{port}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(spin_binary());
    cmd.current_dir(crate::repo_root())
        .arg("up")
        .arg("--from")
        .arg(crate::repo_root().join("spin.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--runtime-config-file")
        .arg(&runtime_config)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .process_group(0);
    (cmd, log)
}

/// Waits until Spin accepts connections on `port` (it binds once every component is
/// ready); panics with its log if it exits or takes over two minutes.
pub fn wait_ready(child: &mut Child, port: u16, log: &Path) {
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || start.elapsed() > Duration::from_secs(120) {
            kill_group(child);
            panic!(
                "spin up did not start serving ({}); its output ({}):\n{}",
                exited.map_or("timed out".to_owned(), |s| s.to_string()),
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills `spin up` and its trigger process (the whole group) and reaps it.
pub fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the group this test started (process_group(0) made its id the pgid).
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.wait();
}

/// On Spin nothing calls the sweep by itself (berth up runs a timer; on SpinKube
/// deploy/sweep-cronjob.yaml does): this plays that scheduler for one app, calling
/// `POST /api/v1/internal/sweep` with the worker token every `interval` until dropped.
pub struct SweepScheduler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SweepScheduler {
    pub fn start(base_url: &str, interval: Duration) -> SweepScheduler {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let url = format!("{base_url}/api/v1/internal/sweep");
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build();
            let mut next = Instant::now() + interval;
            while !stopped.load(Ordering::Relaxed) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                // A failed call is retried at the next period, as a cron job would be.
                let _ = agent
                    .post(&url)
                    .set("authorization", &format!("Bearer {}", crate::WORKER_TOKEN))
                    .call();
                next = Instant::now() + interval;
            }
        });
        SweepScheduler {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SweepScheduler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

//! The host under test: `berth up` (or real Spin's `spin up`) as a child process on the
//! benchmark's manifest (the app plus the hello-world baseline), its start-up time and its
//! memory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::{HostKind, load};

/// The baseline's route in the benchmark manifest.
pub const HELLO_ROUTE: &str = "/bench/hello";
pub const HELLO_ID: &str = "bench-hello";

/// Writes `<out>`: the app's manifest with absolute component sources, no build sections, and
/// the hello-world component on [`HELLO_ROUTE`]; returns the components' `.wasm` files.
pub fn write_manifest(
    app_manifest: &Path,
    hello_wasm: &Path,
    out: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    let text = std::fs::read_to_string(app_manifest)
        .with_context(|| format!("cannot read {}", app_manifest.display()))?;
    let mut doc: toml::Table = toml::from_str(&text)?;
    let dir = app_manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut sources = Vec::new();
    let components = doc
        .get_mut("component")
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| anyhow!("{} has no components", app_manifest.display()))?;
    for (id, c) in components.iter_mut() {
        let Some(c) = c.as_table_mut() else { continue };
        c.remove("build");
        if let Some(src) = c.get("source").and_then(toml::Value::as_str) {
            let abs = dir.join(src);
            c.insert("source".into(), abs.display().to_string().into());
            sources.push((id.clone(), abs));
        }
    }
    let mut hello = toml::Table::new();
    hello.insert("source".into(), hello_wasm.display().to_string().into());
    components.insert(HELLO_ID.into(), hello.into());
    sources.push((HELLO_ID.to_string(), hello_wasm.to_path_buf()));
    let mut trigger = toml::Table::new();
    trigger.insert("route".into(), HELLO_ROUTE.into());
    trigger.insert("component".into(), HELLO_ID.into());
    doc.get_mut("trigger")
        .and_then(|t| t.get_mut("http"))
        .and_then(toml::Value::as_array_mut)
        .ok_or_else(|| anyhow!("{} has no [[trigger.http]]", app_manifest.display()))?
        .push(trigger.into());
    std::fs::write(out, toml::to_string(&doc)?)?;
    Ok(sources)
}

/// A running `berth up` or `spin up`, in a process group of its own (`spin up` serves from
/// a child process, `spin trigger http`: both end with the group).
pub struct Host {
    child: Child,
    /// The process that serves: `berth up` itself, or `spin up`'s trigger child.
    server_pid: u32,
    pub addr: SocketAddr,
    /// Spawn → first 200 from the baseline route.
    pub first_response: Duration,
    sampler: Option<RssSampler>,
}

pub struct HostConfig<'a> {
    pub manifest: &'a Path,
    pub state_dir: &'a Path,
    pub compile_cache: &'a Path,
    pub variables: &'a [(String, String)],
    /// Port 0 picks a free one.
    pub listen: SocketAddr,
    pub kind: HostKind,
    /// The `spin` executable (for [`HostKind::Spin`]).
    pub spin: &'a Path,
}

/// Spin's runtime configuration: its `default` SQLite database is the seeded file berth
/// serves (`<state>/sqlite_db.db`).
fn spin_runtime_config(state_dir: &Path) -> Result<PathBuf> {
    let dir = state_dir.join("spin");
    std::fs::create_dir_all(&dir)?;
    let mut db = toml::Table::new();
    db.insert("type".into(), "spin".into());
    db.insert(
        "path".into(),
        state_dir.join("sqlite_db.db").display().to_string().into(),
    );
    let mut databases = toml::Table::new();
    databases.insert("default".into(), db.into());
    let mut doc = toml::Table::new();
    doc.insert("sqlite_database".into(), databases.into());
    let path = dir.join("runtime-config.toml");
    std::fs::write(&path, toml::to_string(&doc)?)?;
    Ok(path)
}

/// A free loopback port: Spin prints the address it was given, so port 0 would not say
/// which one it took.
fn free_port(listen: SocketAddr) -> Result<SocketAddr> {
    if listen.port() != 0 {
        return Ok(listen);
    }
    Ok(std::net::TcpListener::bind(listen)?.local_addr()?)
}

impl Host {
    pub async fn start(cfg: &HostConfig<'_>) -> Result<Host> {
        let log_name = match cfg.kind {
            HostKind::Berth => "host.log",
            HostKind::Spin => "spin.log",
        };
        let log_path = cfg.state_dir.join(log_name);
        let log = std::fs::File::create(&log_path)?;
        let started = Instant::now();
        let mut cmd = match cfg.kind {
            HostKind::Berth => {
                let exe = std::env::current_exe().context("cannot find the berth executable")?;
                let mut cmd = Command::new(exe);
                cmd.arg("up")
                    .arg("--listen")
                    .arg(cfg.listen.to_string())
                    .arg("--state-dir")
                    .arg(cfg.state_dir)
                    .arg("-f")
                    .arg(cfg.manifest)
                    .env("BERTH_COMPILE_CACHE", cfg.compile_cache)
                    // Warnings only: a log line per request would measure stderr, not the service.
                    .env("BERTH_LOG", "warn");
                cmd
            }
            HostKind::Spin => {
                let mut cmd = Command::new(cfg.spin);
                cmd.arg("up")
                    .arg("-f")
                    .arg(cfg.manifest)
                    .arg("--listen")
                    .arg(free_port(cfg.listen)?.to_string())
                    .arg("--runtime-config-file")
                    .arg(spin_runtime_config(cfg.state_dir)?)
                    .arg("--state-dir")
                    .arg(cfg.state_dir.join("spin"));
                cmd
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0);
        for (name, value) in cfg.variables {
            cmd.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} up", cfg.kind.command()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.trim().strip_prefix("Serving http://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let mut host = Host {
            server_pid: child.id(),
            child,
            addr: "127.0.0.1:0".parse()?,
            first_response: Duration::ZERO,
            sampler: None,
        };
        let what = cfg.kind.command();
        host.addr = match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(url)) => url.parse::<SocketAddr>()?,
            _ => bail!("{what} up did not start; see {}", log_path.display()),
        };
        host.first_response = loop {
            if let Ok((200, _)) = load::get_once(host.addr, HELLO_ROUTE, None).await {
                break started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("{what} up never answered {HELLO_ROUTE} with 200");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        if cfg.kind == HostKind::Spin {
            host.server_pid = first_child(host.pid()).unwrap_or(host.pid());
        }
        Ok(host)
    }

    /// Ends the host at once, as `kill -9` does (SIGKILL to its process group).
    pub fn kill(&mut self) {
        // SAFETY: kill(2) with the group this host was started in (`process_group(0)`).
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts recording the peak resident set size (sampled every 50 ms).
    pub fn sample_rss(&mut self) {
        self.sampler = Some(RssSampler::start(self.server_pid));
    }

    /// The peak RSS seen by the sampler and the kernel's high-water mark, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let peak = self
            .sampler
            .as_ref()
            .map_or(0, |s| s.peak.load(Ordering::Relaxed));
        (peak, proc_status(self.server_pid, "VmHWM:").unwrap_or(0))
    }

    pub fn current_rss_kib(&self) -> u64 {
        proc_status(self.server_pid, "VmRSS:").unwrap_or(0)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(s) = &self.sampler {
            s.stop.store(true, Ordering::Relaxed);
        }
        self.kill();
    }
}

/// The first child process of `pid` (Linux `/proc/<pid>/task/<pid>/children`).
fn first_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match proc_status(pid, "VmRSS:") {
                    Some(kib) => {
                        p.fetch_max(kib, Ordering::Relaxed);
                    }
                    None => break,
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RssSampler { peak, stop }
    }
}

/// A `kB` field of `/proc/<pid>/status`.
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

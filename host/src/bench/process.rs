//! The host under test: `berth up` as a child process on the benchmark's manifest (the app
//! plus the hello-world baseline), its start-up time and its memory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::load;

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

/// A running `berth up`.
pub struct Host {
    child: Child,
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
}

impl Host {
    pub async fn start(cfg: &HostConfig<'_>) -> Result<Host> {
        let exe = std::env::current_exe().context("cannot find the berth executable")?;
        let log = std::fs::File::create(cfg.state_dir.join("host.log"))?;
        let started = Instant::now();
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
            .env("BERTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (name, value) in cfg.variables {
            cmd.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
        }
        let mut child = cmd.spawn().context("cannot start berth up")?;
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
        let addr = match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(url)) => url.parse::<SocketAddr>()?,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "berth up did not start; see {}",
                    cfg.state_dir.join("host.log").display()
                );
            }
        };
        let first_response = loop {
            if let Ok((200, _)) = load::get_once(addr, HELLO_ROUTE, None).await {
                break started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(300) {
                let _ = child.kill();
                bail!("berth up never answered {HELLO_ROUTE} with 200");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        Ok(Host {
            child,
            addr,
            first_response,
            sampler: None,
        })
    }

    /// Ends the host at once, as `kill -9` does (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts recording the peak resident set size (sampled every 50 ms).
    pub fn sample_rss(&mut self) {
        self.sampler = Some(RssSampler::start(self.pid()));
    }

    /// The peak RSS seen by the sampler and the kernel's high-water mark, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let peak = self
            .sampler
            .as_ref()
            .map_or(0, |s| s.peak.load(Ordering::Relaxed));
        (peak, proc_status(self.pid(), "VmHWM:").unwrap_or(0))
    }

    pub fn current_rss_kib(&self) -> u64 {
        proc_status(self.pid(), "VmRSS:").unwrap_or(0)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(s) = &self.sampler {
            s.stop.store(true, Ordering::Relaxed);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

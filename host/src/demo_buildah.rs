//! `berth up --runner buildah`: real builds on one machine. Next to the Harbor simulator,
//! berth up starts Debian's `docker-registry` (the CNCF distribution registry) on loopback
//! and `berth-runner` (built with berth, found beside it). Builds are pushed to that
//! registry; its notifications tell the simulator, which reads the real manifest and sends
//! PUSH_ARTIFACT to berth. A small real base image (Debian's static busybox) is pushed at
//! start-up and listed in the catalog, so Dockerfiles with `RUN` steps build offline; a
//! second one adds the machine's Python and pip (Debian's python3-pip) for packages builds.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::Digest;
use tokio::process::{Child, Command};

/// What was started; dropping it stops the processes.
pub struct RealBuilds {
    /// `127.0.0.1:PORT`, the registry builds push to (berth's `harbor_registry_host`).
    pub registry_host: String,
    pub runner_url: String,
    /// The base images to list in the catalog (busybox first).
    pub bases: Vec<BaseImage>,
    _children: Vec<Child>,
}

/// A base image pushed at start-up, listed in the catalog as an official image.
#[derive(Clone, Debug)]
pub struct BaseImage {
    pub name: String,
    pub reference: String,
    pub display_name: String,
    pub description: String,
}

/// The registry's port and the token its notifications carry, chosen before the
/// simulator starts (the simulator must know where to read manifests from).
pub struct Plan {
    pub registry_port: u16,
    pub notification_token: String,
}

impl Plan {
    pub fn new() -> Result<Plan> {
        let seed = sha2::Sha256::new()
            .chain_update(std::process::id().to_le_bytes())
            .chain_update(format!("{:?}", std::time::SystemTime::now()))
            .finalize();
        Ok(Plan {
            registry_port: free_port()?,
            notification_token: seed.iter().take(16).map(|b| format!("{b:02x}")).collect(),
        })
    }

    pub fn registry_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.registry_port)
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `berth-runner`, beside the running `berth` (both are built by `cargo build --release`).
fn runner_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the berth binary")?;
    let bin = exe.with_file_name("berth-runner");
    if !bin.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release` (it is part of the workspace)",
            bin.display()
        );
    }
    Ok(bin)
}

fn tool(name: &str, package: &str) -> Result<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("--runner buildah needs {name}: install it (apt-get install {package})")
}

/// `1.35` from `BusyBox v1.35.0 (Debian …)`.
fn busybox_version(busybox: &Path) -> String {
    let out = std::process::Command::new(busybox).output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .and_then(|v| {
            let mut parts = v.split('.');
            Some(format!("{}.{}", parts.next()?, parts.next()?))
        })
        .filter(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .unwrap_or_else(|| "latest".into())
}

async fn wait_http(url: &str, what: &str, child: &mut Child) -> Result<()> {
    let start = Instant::now();
    loop {
        let probe = url.to_owned();
        let up = tokio::task::spawn_blocking(move || {
            ureq::get(&probe)
                .timeout(Duration::from_secs(1))
                .call()
                .is_ok()
        })
        .await
        .unwrap_or(false);
        if up {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited with {status} before serving");
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("{what} did not start serving on {url}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the registry, pushes the base image and starts the runner.
pub async fn start(
    plan: &Plan,
    sim_url: &str,
    state_dir: &Path,
    runner_secret: &str,
) -> Result<RealBuilds> {
    let registry = tool("docker-registry", "docker-registry")?;
    tool("buildah", "buildah")?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("--runner buildah needs a static busybox: apt-get install busybox-static")?;
    let runner = runner_binary()?;
    let state_dir = std::path::absolute(state_dir)?;
    let dir = state_dir.join("registry");
    std::fs::create_dir_all(dir.join("data"))?;
    let port = plan.registry_port;
    let config = dir.join("config.yml");
    // Anonymous pulls and pushes on loopback; pushes are reported to the simulator.
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  host: http://127.0.0.1:{port}\n\
             notifications:\n  endpoints:\n    - name: harbor\n      url: {sim_url}/service/notifications\n\
             \x20     headers:\n        Authorization: [Bearer {token}]\n      timeout: 3s\n      threshold: 5\n      backoff: 1s\n",
            data = dir.join("data").display(),
            token = plan.notification_token,
        ),
    )?;
    let mut children = Vec::new();
    let mut registry_child = Command::new(&runner)
        .arg("supervise")
        .arg("--")
        .arg(&registry)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start docker-registry")?;
    let registry_host = format!("127.0.0.1:{port}");
    wait_http(
        &format!("http://{registry_host}/v2/"),
        "docker-registry",
        &mut registry_child,
    )
    .await?;
    children.push(registry_child);

    let work = state_dir.join("runner");
    let version = busybox_version(&busybox);
    let busybox_ref = format!("{registry_host}/library/busybox:{version}");
    base_image(
        &runner,
        &work,
        "busybox-image",
        &[
            "--push".as_ref(),
            busybox_ref.as_ref(),
            "--busybox".as_ref(),
            busybox.as_os_str(),
        ],
    )
    .await?;
    let mut bases = vec![BaseImage {
        name: format!("busybox:{version}"),
        reference: busybox_ref.clone(),
        display_name: format!("BusyBox {version} (static, offline base image)"),
        description: "Debian's static busybox on an empty image: a small real base for builds that must work offline.".into(),
    }];
    // Python and pip for packages builds: where Debian's python3-pip is installed.
    match python_version() {
        Some(py) => {
            let python_ref = format!("{registry_host}/library/python:{py}");
            let pushed = base_image(
                &runner,
                &work,
                "python-image",
                &[
                    "--push".as_ref(),
                    python_ref.as_ref(),
                    "--from".as_ref(),
                    busybox_ref.as_ref(),
                ],
            )
            .await;
            match pushed {
                Ok(()) => bases.push(BaseImage {
                    name: format!("python:{py}"),
                    reference: python_ref,
                    display_name: format!("Python {py} with pip (offline base image)"),
                    description: "The machine's Debian Python and pip on the busybox base: packages builds with pip work offline against a local index.".into(),
                }),
                Err(e) => eprintln!("warning: no Python base image: {e:#}"),
            }
        }
        None => eprintln!(
            "warning: no Python base image (packages builds need one): apt-get install python3-pip"
        ),
    }

    let runner_port = free_port()?;
    let runner_url = format!("http://127.0.0.1:{runner_port}");
    let envs = state_dir.join("environments");
    let mut runner_child = Command::new(&runner)
        .args(["serve", "--exit-with-parent", "--tls-verify", "false"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{runner_port}"))
        .arg("--work-dir")
        .arg(work.join("builds"))
        .arg("--environment-root")
        .arg(envs.join("storage"))
        .arg("--environment-runroot")
        .arg(envs.join("run"))
        .env("BERTH_RUNNER_SECRET", runner_secret)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start berth-runner")?;
    wait_http(
        &format!("{runner_url}/runner/health"),
        "berth-runner",
        &mut runner_child,
    )
    .await?;
    children.push(runner_child);
    println!(
        "Build runner: berth-runner (buildah) on {runner_url}; registry: docker-registry on http://{registry_host}; \
         environments: buildah --root {} --runroot {}",
        envs.join("storage").display(),
        envs.join("run").display()
    );
    Ok(RealBuilds {
        registry_host,
        runner_url,
        bases,
        _children: children,
    })
}

/// `3.11` when Debian's /usr/bin/python3 can import pip.
fn python_version() -> Option<String> {
    let out = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, pip; print('%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .then_some(v)
}

/// Runs `berth-runner <command> --tls-verify false --work-dir <work> <args>`.
async fn base_image(
    runner: &Path,
    work: &Path,
    command: &str,
    args: &[&std::ffi::OsStr],
) -> Result<()> {
    let out = Command::new(runner)
        .args([command, "--tls-verify", "false"])
        .arg("--work-dir")
        .arg(work)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run berth-runner {command}"))?;
    if !out.status.success() {
        bail!(
            "berth-runner {command} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Lists a base image in the catalog as an official image, once berth serves on
/// `base_url` (a later start with the same state dir points it at the new registry).
pub fn register_base(base_url: &str, admin_token: &str, base: &BaseImage) -> Result<()> {
    let (name, reference) = (base.name.as_str(), base.reference.as_str());
    let start = Instant::now();
    let auth = format!("Bearer {admin_token}");
    let images = format!("{base_url}/api/v1/images");
    let body = serde_json::json!({
        "name": name,
        "display_name": base.display_name,
        "description": base.description,
        "category": "base",
        "is_official": true,
        "chip_type": "CPU",
        "registry_url": reference,
    });
    loop {
        match ureq::post(&images)
            .set("authorization", &auth)
            .timeout(Duration::from_secs(10))
            .send_json(&body)
        {
            Ok(_) => return Ok(()),
            Err(ureq::Error::Status(409, _)) => break,
            Err(ureq::Error::Status(code, r)) => {
                bail!(
                    "berth refused the base image ({code}): {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(_) if start.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => bail!("berth did not answer: {e}"),
        }
    }
    // Already listed from an earlier start: point it at this start's registry.
    let list: serde_json::Value = ureq::get(&images)
        .query("name", name)
        .query("is_official", "true")
        .set("authorization", &auth)
        .call()?
        .into_json()?;
    let id = list["data"]["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .and_then(|i| i["image_id"].as_i64())
        .context("the base image's name is taken by another image")?;
    ureq::put(&format!("{images}/{id}"))
        .set("authorization", &auth)
        .send_json(serde_json::json!({"registry_url": reference}))?;
    Ok(())
}

//! Running a job with buildah. Each build gets a directory of its own under the work
//! directory: the context (the Dockerfile), buildah's storage (`--root`, `--runroot`) and
//! the registry credentials (`--authfile`, never on a command line). The directory is
//! removed after the build, whatever happened, so nothing of one build outlives it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::jobs::{Job, Mode};
use crate::log_tail::LogTail;
use crate::{BuildahConfig, Config};

/// Why a build ended without a push.
#[derive(Debug)]
pub enum Stop {
    /// berth cancelled it (or its deadline passed): no callback, berth already knows.
    Cancelled(String),
    /// It failed: the message goes to berth with the log tail.
    Failed(String),
}

/// How often a running step checks the storage quota.
const QUOTA_CHECK_EVERY: Duration = Duration::from_secs(3);

/// What a running step watches besides the process itself.
pub struct Watch<'a> {
    pub log: &'a Mutex<LogTail>,
    pub cancel: watch::Receiver<Option<String>>,
    pub deadline: Instant,
    pub timeout_seconds: u64,
    /// The directory all builds share and the bytes it may hold.
    pub quota: Option<(PathBuf, u64)>,
}

/// Builds (or commits) and pushes one job; returns the pushed manifest's digest.
pub async fn run_job(config: &Config, job: &Arc<Job>) -> Result<String, Stop> {
    let dir = config.buildah.work_dir.join(&job.spec.build_id);
    let result = run_in(config, job, &dir).await;
    remove_build_storage(&config.buildah, &dir).await;
    result
}

async fn run_in(config: &Config, job: &Arc<Job>, dir: &Path) -> Result<String, Stop> {
    let work_dir = config.buildah.work_dir.clone();
    let used = dir_size(work_dir.clone()).await;
    if used >= config.storage_quota_bytes {
        return Err(Stop::Failed(format!(
            "the runner's build storage is full ({used} of {} bytes used)",
            config.storage_quota_bytes
        )));
    }
    let io = |e: std::io::Error| Stop::Failed(format!("cannot prepare the build directory: {e}"));
    let context = dir.join("context");
    tokio::fs::create_dir_all(&context).await.map_err(io)?;
    let spec = &job.spec;
    let username = spec
        .push
        .username
        .clone()
        .or(config.buildah.registry_username.clone());
    let password = spec
        .push
        .password
        .clone()
        .or(config.buildah.registry_password.clone());
    let authfile = match (username, password) {
        (Some(u), Some(p)) => Some(write_authfile(dir, &spec.push.registry, &u, &p).map_err(io)?),
        _ => None,
    };
    let mut watch = Watch {
        log: &job.log,
        cancel: job.cancel.subscribe(),
        deadline: Instant::now() + Duration::from_secs(config.timeout_seconds),
        timeout_seconds: config.timeout_seconds,
        quota: Some((work_dir, config.storage_quota_bytes)),
    };
    let image = format!("localhost/berth-build/{}", spec.build_id);
    let b = &config.buildah;
    match spec.mode {
        Mode::Dockerfile | Mode::Packages => {
            let dockerfile = context.join("Dockerfile");
            tokio::fs::write(&dockerfile, spec.dockerfile.as_deref().unwrap_or_default())
                .await
                .map_err(io)?;
            let storage = build_storage(dir);
            let mut args = storage.clone();
            args.extend(bud_args(b, &dockerfile, &image));
            if spec.mode == Mode::Packages {
                args.extend(mirror_build_args(config));
            }
            args.push(context.display().to_string());
            step(b, &args, &mut watch, "the build").await?;
            push(
                b,
                &storage,
                &image,
                spec,
                authfile.as_deref(),
                dir,
                &mut watch,
            )
            .await
        }
        Mode::Environment => {
            let env = spec.environment_id.as_deref().unwrap_or_default();
            let storage = environment_storage(config);
            let mut inspect = storage.clone();
            inspect.extend(
                [
                    "inspect",
                    "--type",
                    "container",
                    "--format",
                    "{{.ContainerID}}",
                    env,
                ]
                .map(String::from),
            );
            if step(b, &inspect, &mut watch, "looking up the environment")
                .await
                .is_err()
            {
                return Err(Stop::Failed(format!(
                    "environment '{env}' is not a container on this node"
                )));
            }
            let mut commit = storage.clone();
            commit.extend(["commit".into(), env.into(), image.clone()]);
            step(b, &commit, &mut watch, "saving the environment").await?;
            let pushed = push(
                b,
                &storage,
                &image,
                spec,
                authfile.as_deref(),
                dir,
                &mut watch,
            )
            .await;
            // The saved image is the build's; the environment's container stays as it is.
            let mut rmi = storage.clone();
            rmi.extend(["rmi".into(), image.clone()]);
            let _ = quiet(b, &rmi).await;
            pushed
        }
    }
}

/// The mirrors a packages build installs from, as the build arguments berth's generated
/// Dockerfile reads (`ARG APT_MIRROR`, `ARG PIP_INDEX_URL`).
fn mirror_build_args(config: &Config) -> Vec<String> {
    [
        ("PIP_INDEX_URL", &config.pip_index_url),
        ("APT_MIRROR", &config.apt_mirror),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some(["--build-arg".into(), format!("{name}={}", value.as_ref()?)]))
    .flatten()
    .collect()
}

pub fn bud_args(b: &BuildahConfig, dockerfile: &Path, image: &str) -> Vec<String> {
    vec![
        "bud".into(),
        "--isolation".into(),
        b.isolation.clone(),
        format!("--tls-verify={}", b.tls_verify),
        "-f".into(),
        dockerfile.display().to_string(),
        "-t".into(),
        image.into(),
    ]
}

async fn push(
    b: &BuildahConfig,
    storage: &[String],
    image: &str,
    spec: &crate::jobs::JobSpec,
    authfile: Option<&Path>,
    dir: &Path,
    watch: &mut Watch<'_>,
) -> Result<String, Stop> {
    let digest_file = dir.join("digest");
    let mut args = storage.to_vec();
    args.extend([
        "push".into(),
        format!("--tls-verify={}", b.tls_verify),
        "--digestfile".into(),
        digest_file.display().to_string(),
    ]);
    if let Some(f) = authfile {
        args.extend(["--authfile".into(), f.display().to_string()]);
    }
    args.extend([image.into(), format!("docker://{}", spec.target())]);
    step(b, &args, watch, "the push").await?;
    let digest = tokio::fs::read_to_string(&digest_file)
        .await
        .map_err(|e| Stop::Failed(format!("buildah push wrote no digest: {e}")))?;
    Ok(digest.trim().to_owned())
}

/// buildah's global options for a build's own storage.
pub fn build_storage(dir: &Path) -> Vec<String> {
    vec![
        "--root".into(),
        dir.join("storage").display().to_string(),
        "--runroot".into(),
        dir.join("run").display().to_string(),
    ]
}

/// buildah's global options for the storage holding the node's environments.
fn environment_storage(config: &Config) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(root) = &config.environment_root {
        args.extend(["--root".into(), root.display().to_string()]);
    }
    if let Some(run) = &config.environment_runroot {
        args.extend(["--runroot".into(), run.display().to_string()]);
    }
    args
}

/// A containers-auth.json for one registry, readable by the runner only.
fn write_authfile(
    dir: &Path,
    registry: &str,
    user: &str,
    password: &str,
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("auth.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let body = json!({"auths": {registry: {"auth": auth}}});
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(body.to_string().as_bytes())?;
    Ok(path)
}

/// Runs one buildah command, its output going to the log tail; stops it (the whole process
/// group: buildah and the RUN step it started) when the build is cancelled, times out or
/// its storage grows past the quota.
pub async fn step(
    b: &BuildahConfig,
    args: &[String],
    w: &mut Watch<'_>,
    what: &str,
) -> Result<(), Stop> {
    let mut cmd = Command::new(&b.buildah);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    crate::supervise::die_with_runner(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| Stop::Failed(format!("cannot run {}: {e}", b.buildah.display())))?;
    let pid = child.id();
    let (out, err) = (child.stdout.take(), child.stderr.take());
    // The output may still be in the pipes when buildah exits: read both to the end.
    let mut run = std::pin::pin!(async {
        let (status, _, _) = tokio::join!(child.wait(), forward(out, w.log), forward(err, w.log));
        status
    });
    let mut cancel = w.cancel.clone();
    let mut cancelled = std::pin::pin!(async {
        let _ = cancel.wait_for(Option::is_some).await;
    });
    let quota = w.quota.clone();
    let mut over_quota = std::pin::pin!(async {
        let Some((dir, quota)) = quota else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(QUOTA_CHECK_EVERY).await;
            if dir_size(dir.clone()).await > quota {
                return quota;
            }
        }
    });
    let stop = tokio::select! {
        status = &mut run => {
            let status = status.map_err(|e| Stop::Failed(format!("{what}: {e}")))?;
            if status.success() {
                return Ok(());
            }
            let line = w.log.lock().expect("log lock").error_line();
            return Err(Stop::Failed(line.unwrap_or_else(|| {
                format!("{what} failed: buildah exited with {status}")
            })));
        }
        _ = &mut cancelled => Stop::Cancelled(String::new()),
        _ = tokio::time::sleep_until(w.deadline) => Stop::Failed(format!(
            "the build ran longer than the runner's timeout of {} seconds",
            w.timeout_seconds
        )),
        quota = &mut over_quota => Stop::Failed(format!(
            "the build's storage grew past the runner's quota of {quota} bytes"
        )),
    };
    let stop = match stop {
        Stop::Cancelled(_) => Stop::Cancelled(w.cancel.borrow().clone().unwrap_or_default()),
        other => other,
    };
    if let Some(pid) = pid {
        let group = -(pid as i32);
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe { libc::kill(group, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(3), &mut run)
            .await
            .is_err()
        {
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGKILL) };
            let _ = run.await;
        }
        // A RUN step may outlive buildah in its group for a moment.
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
    }
    w.log.lock().expect("log lock").push(&format!(
        "stopped: {}",
        match &stop {
            Stop::Cancelled(r) | Stop::Failed(r) => r,
        }
    ));
    Err(stop)
}

fn forward(
    stream: Option<impl AsyncRead + Unpin + Send + 'static>,
    log: &Mutex<LogTail>,
) -> impl std::future::Future<Output = ()> + '_ {
    async move {
        let Some(stream) = stream else { return };
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.lock().expect("log lock").push(&line);
        }
    }
}

/// Runs a buildah command whose output does not matter (clean-up).
async fn quiet(b: &BuildahConfig, args: &[String]) -> bool {
    Command::new(&b.buildah)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Removes a build's containers, images and directory (unmounting what a stopped buildah
/// left mounted).
pub async fn remove_build_storage(b: &BuildahConfig, dir: &Path) {
    if !dir.join("storage").exists() && !dir.exists() {
        return;
    }
    let storage = build_storage(dir);
    if dir.join("storage").exists() {
        let mut rm = storage.clone();
        rm.extend(["rm".into(), "--all".into()]);
        quiet(b, &rm).await;
        let mut rmi = storage.clone();
        rmi.extend(["rmi".into(), "--all".into(), "--force".into()]);
        quiet(b, &rmi).await;
    }
    unmount_under(dir);
    if let Err(e) = tokio::fs::remove_dir_all(dir).await {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the build's storage");
    }
}

fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p) {
            // SAFETY: a valid NUL-terminated path; MNT_DETACH unmounts lazily.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Bytes of the files under `dir`, not crossing into mounts (a container's mounted root
/// would count its image twice).
pub async fn dir_size(dir: PathBuf) -> u64 {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::MetadataExt;
        let Ok(top) = std::fs::symlink_metadata(&dir) else {
            return 0;
        };
        let mut total = 0;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(m) = e.metadata() else { continue };
                if m.dev() != top.dev() {
                    continue;
                }
                if m.is_dir() {
                    stack.push(e.path());
                } else if m.is_file() {
                    total += m.blocks() * 512;
                }
            }
        }
        total
    })
    .await
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn packages_builds_get_the_configured_mirrors_as_build_arguments() {
        let config = |args: &[&str]| {
            let mut all = vec!["serve", "--secret", "s"];
            all.extend(args);
            Serve::parse_from(all).config
        };
        assert!(mirror_build_args(&config(&[])).is_empty());
        assert_eq!(
            mirror_build_args(&config(&[
                "--apt-mirror",
                "http://apt.internal/debian",
                "--pip-index-url",
                "http://pypi.internal/simple"
            ])),
            [
                "--build-arg",
                "PIP_INDEX_URL=http://pypi.internal/simple",
                "--build-arg",
                "APT_MIRROR=http://apt.internal/debian"
            ]
        );
    }
}

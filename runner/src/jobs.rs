//! Jobs: what berth sends, the queue (at most `max_concurrent` running, `max_queued`
//! waiting), each job's state, and the status callbacks to berth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::buildah;
use crate::kubernetes::Kubernetes;
use crate::log_tail::LogTail;
use crate::{Config, Executor};

/// Jobs remembered after they end (for `GET /runner/jobs/{id}` and duplicate POSTs).
const FINISHED_KEPT: usize = 500;
/// Largest Dockerfile a job may carry.
pub const MAX_DOCKERFILE_BYTES: usize = 64 * 1024;

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub build_id: String,
    pub mode: Mode,
    #[serde(default)]
    pub dockerfile: Option<String>,
    #[serde(default)]
    pub base_image: Option<String>,
    #[serde(default)]
    pub environment_id: Option<String>,
    pub push: PushSpec,
    pub callback: CallbackSpec,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Dockerfile,
    Packages,
    Environment,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PushSpec {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    /// Robot credentials for this push; the runner's own when absent.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CallbackSpec {
    pub url: String,
    pub token: String,
}

fn token_ok(s: &str, max: usize, extra: &str) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

impl JobSpec {
    /// Checks what reaches a path or a command line; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !token_ok(&self.build_id, 64, "_.-") {
            return Err("build_id must be 1 to 64 of letters, digits, _ . -".into());
        }
        match self.mode {
            Mode::Environment => {
                let env = self.environment_id.as_deref().unwrap_or_default();
                if !token_ok(env, 128, "_.-") {
                    return Err("environment_id is required in environment mode: 1 to 128 of letters, digits, _ . -".into());
                }
            }
            Mode::Dockerfile | Mode::Packages => {
                let d = self.dockerfile.as_deref().unwrap_or_default();
                if d.trim().is_empty() {
                    return Err("dockerfile is required in dockerfile and packages modes".into());
                }
                if d.len() > MAX_DOCKERFILE_BYTES {
                    return Err(format!(
                        "dockerfile is larger than {MAX_DOCKERFILE_BYTES} bytes"
                    ));
                }
            }
        }
        if !token_ok(&self.push.registry, 255, ".-:[]") {
            return Err(format!(
                "push.registry '{}' is not a host[:port]",
                self.push.registry
            ));
        }
        let repo_ok = self.push.repository.len() <= 255
            && self.push.repository.split('/').count() >= 2
            && self.push.repository.split('/').all(|p| {
                token_ok(p, 128, "_.-") && p.ends_with(|c: char| c.is_ascii_alphanumeric())
            });
        if !repo_ok {
            return Err(format!(
                "push.repository '{}' is not <project>/<repository>",
                self.push.repository
            ));
        }
        if !(token_ok(&self.push.tag, 128, "_.-") || self.push.tag.starts_with('_')) {
            return Err(format!("push.tag '{}' is not a tag", self.push.tag));
        }
        if !self.callback.url.starts_with("http://") || self.callback.url.len() > 2048 {
            return Err("callback.url must be an http:// URL".into());
        }
        if self.callback.token.is_empty() {
            return Err("callback.token is required".into());
        }
        Ok(())
    }

    /// `registry/repository:tag`.
    pub fn target(&self) -> String {
        format!(
            "{}/{}:{}",
            self.push.registry, self.push.repository, self.push.tag
        )
    }
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Pushed { digest: String },
    Failed { message: String },
    Cancelled { reason: String },
}

impl JobState {
    pub fn is_final(&self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// One accepted job.
pub struct Job {
    pub spec: JobSpec,
    pub state: Mutex<JobState>,
    pub log: Mutex<LogTail>,
    /// Set (with the reason) when berth cancels the build.
    pub cancel: watch::Sender<Option<String>>,
}

impl Job {
    pub fn state(&self) -> JobState {
        self.state.lock().expect("state lock").clone()
    }
    fn set(&self, s: JobState) {
        *self.state.lock().expect("state lock") = s;
    }
    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").text()
    }
}

pub struct Runner {
    pub config: Config,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    slots: Arc<Semaphore>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Set under `--executor kubernetes`: builds run as Kubernetes Jobs.
    kube: Option<Kubernetes>,
}

/// Why a job was not accepted.
pub enum Refusal {
    Invalid(String),
    QueueFull { waiting: usize },
    Finished,
}

impl Runner {
    /// The runner `serve` runs: jobs must be signed with the secret.
    pub fn new(config: Config) -> anyhow::Result<Runner> {
        anyhow::ensure!(
            !config.secret.is_empty(),
            "the job signing secret is empty (set --secret or BERTH_RUNNER_SECRET)"
        );
        Runner::unsigned(config)
    }

    /// A runner without a job server (`build-one`: the job comes from the pod's Secret).
    fn unsigned(config: Config) -> anyhow::Result<Runner> {
        anyhow::ensure!(
            config.max_concurrent >= 1,
            "--max-concurrent must be at least 1"
        );
        std::fs::create_dir_all(&config.buildah.work_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the work directory {}: {e}",
                config.buildah.work_dir.display()
            )
        })?;
        let kube = match config.executor {
            Executor::Kubernetes => Some(Kubernetes::new(&config.kube)?),
            Executor::Buildah => None,
        };
        Ok(Runner {
            kube,
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            config,
            jobs: Mutex::new(HashMap::new()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs.lock().expect("jobs lock").get(id).cloned()
    }

    /// (running, queued) right now.
    pub fn load(&self) -> (usize, usize) {
        let jobs = self.jobs.lock().expect("jobs lock");
        let count = |s: JobState| jobs.values().filter(|j| j.state() == s).count();
        (count(JobState::Running), count(JobState::Queued))
    }

    /// Accepts a job: it waits for a slot, then builds. A POST of a job still in flight
    /// is the same job (berth may retry).
    pub fn submit(self: &Arc<Self>, spec: JobSpec) -> Result<Arc<Job>, Refusal> {
        let (job, new) = self.accept(spec)?;
        if new {
            let runner = self.clone();
            let task_job = job.clone();
            tokio::spawn(async move { runner.run(task_job).await });
        }
        Ok(job)
    }

    /// Records a job (or finds the same one in flight: `false`), without running it.
    fn accept(&self, spec: JobSpec) -> Result<(Arc<Job>, bool), Refusal> {
        spec.validate().map_err(Refusal::Invalid)?;
        let mut jobs = self.jobs.lock().expect("jobs lock");
        if let Some(existing) = jobs.get(&spec.build_id) {
            return if existing.state().is_final() {
                Err(Refusal::Finished)
            } else {
                Ok((existing.clone(), false))
            };
        }
        let waiting = jobs
            .values()
            .filter(|j| j.state() == JobState::Queued)
            .count();
        let running = jobs
            .values()
            .filter(|j| j.state() == JobState::Running)
            .count();
        // Jobs beyond the free slots wait; the queue holds at most max_queued of them.
        if running + waiting >= self.config.max_concurrent + self.config.max_queued {
            return Err(Refusal::QueueFull { waiting });
        }
        if jobs.len() >= FINISHED_KEPT {
            jobs.retain(|_, j| !j.state().is_final());
        }
        let mut secrets = vec![spec.callback.token.clone(), self.config.secret.clone()];
        secrets.extend(spec.push.password.clone());
        secrets.extend(self.config.buildah.registry_password.clone());
        let job = Arc::new(Job {
            log: Mutex::new(LogTail::new(self.config.log_tail_bytes, secrets)),
            spec,
            state: Mutex::new(JobState::Queued),
            cancel: watch::channel(None).0,
        });
        jobs.insert(job.spec.build_id.clone(), job.clone());
        Ok((job, true))
    }

    /// Stops a build (berth cancelled it, or its deadline passed). Returns the state before.
    pub fn cancel(&self, id: &str, reason: &str) -> Option<JobState> {
        let job = self.job(id)?;
        let before = job.state();
        if !before.is_final() {
            job.cancel.send_replace(Some(reason.to_owned()));
        }
        Some(before)
    }

    async fn run(self: Arc<Self>, job: Arc<Job>) {
        let id = job.spec.build_id.clone();
        let mut cancelled = job.cancel.subscribe();
        let permit = tokio::select! {
            p = self.slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = cancelled.wait_for(Option::is_some) => {
                let reason = job.cancel.borrow().clone().unwrap_or_default();
                tracing::info!(build = %id, %reason, "cancelled while queued");
                job.set(JobState::Cancelled { reason });
                return;
            }
        };
        job.set(JobState::Running);
        tracing::info!(build = %id, mode = ?job.spec.mode, target = %job.spec.target(), "build started");
        self.callback(&job, json!({"status": "running", "log_tail": format!("building {} from {} on berth-runner", job.spec.target(), job.spec.base_image.as_deref().or(job.spec.environment_id.as_deref()).unwrap_or("scratch"))}))
            .await;
        let outcome = match &self.kube {
            Some(kube) => kube.run_job(&self.config, &job).await,
            None => buildah::run_job(&self.config, &job).await,
        };
        drop(permit);
        match outcome {
            Ok(digest) => {
                tracing::info!(build = %id, %digest, "pushed");
                job.set(JobState::Pushed {
                    digest: digest.clone(),
                });
                let tail = format!("{}\npushed {}@{digest}", job.log_text(), job.spec.target());
                self.callback(&job, json!({"status": "running", "log_tail": tail}))
                    .await;
            }
            Err(buildah::Stop::Cancelled(reason)) => {
                tracing::info!(build = %id, %reason, "build stopped");
                job.set(JobState::Cancelled { reason });
            }
            Err(buildah::Stop::Failed(message)) => {
                tracing::info!(build = %id, %message, "build failed");
                job.set(JobState::Failed {
                    message: message.clone(),
                });
                self.callback(
                    &job,
                    json!({"status": "failed", "message": message, "log_tail": job.log_text()}),
                )
                .await;
            }
        }
    }

    /// `PUT callback.url` with the runner token: three attempts on transport errors and 5xx.
    async fn callback(&self, job: &Job, payload: Value) {
        let body = Bytes::from(serde_json::to_vec(&payload).expect("JSON serializes"));
        for attempt in 1..=3 {
            let request = hyper::Request::put(job.spec.callback.url.as_str())
                .header(
                    "authorization",
                    format!("Bearer {}", job.spec.callback.token),
                )
                .header("content-type", "application/json")
                .body(Full::new(body.clone()));
            let Ok(request) = request else {
                tracing::warn!(build = %job.spec.build_id, "callback URL is not valid");
                return;
            };
            let sent = tokio::time::timeout(Duration::from_secs(10), async {
                let resp = self.client.request(request).await?;
                let status = resp.status().as_u16();
                let _ = resp.into_body().collect().await;
                Ok::<u16, hyper_util::client::legacy::Error>(status)
            })
            .await;
            match sent {
                Ok(Ok(status)) if status < 500 => {
                    if status >= 300 {
                        tracing::warn!(build = %job.spec.build_id, status, "berth refused a status callback");
                    }
                    return;
                }
                Ok(Ok(status)) => {
                    tracing::warn!(build = %job.spec.build_id, status, attempt, "status callback failed")
                }
                Ok(Err(e)) => {
                    tracing::warn!(build = %job.spec.build_id, error = %e, attempt, "status callback failed")
                }
                Err(_) => {
                    tracing::warn!(build = %job.spec.build_id, attempt, "status callback timed out")
                }
            }
            tokio::time::sleep(Duration::from_secs(attempt)).await;
        }
    }
}

/// `berth-runner build-one`: the job from `BERTH_RUNNER_JOB`, run as `serve` runs a job
/// (status callbacks included); the pushed digest goes to the termination log.
pub async fn build_one(config: Config, termination_log: &std::path::Path) -> anyhow::Result<()> {
    let text = std::env::var("BERTH_RUNNER_JOB")
        .map_err(|_| anyhow::anyhow!("BERTH_RUNNER_JOB (the job, as JSON) is not set"))?;
    let spec: JobSpec =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("invalid job: {e}"))?;
    let runner = Arc::new(Runner::unsigned(config)?);
    let job = match runner.accept(spec) {
        Ok((job, _)) => job,
        Err(Refusal::Invalid(m)) => anyhow::bail!("invalid job: {m}"),
        Err(_) => anyhow::bail!("the job was not accepted"),
    };
    // Kubernetes stops a pod with SIGTERM (its Job deleted, its deadline passed): stop the
    // build as a cancel does, so buildah and its RUN step end with it.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stopper = runner.clone();
    let id = job.spec.build_id.clone();
    tokio::spawn(async move {
        if term.recv().await.is_some() {
            stopper.cancel(&id, "the build's pod was stopped");
        }
    });
    // Runs it here, to its last status callback.
    runner.clone().run(job.clone()).await;
    let state = job.state();
    eprintln!("{}", job.log_text());
    match state {
        JobState::Pushed { digest } => {
            if let Err(e) = std::fs::write(termination_log, &digest) {
                tracing::warn!(error = %e, "cannot write the termination log");
            }
            println!("pushed {}@{digest}", job.spec.target());
            Ok(())
        }
        JobState::Failed { message } => anyhow::bail!("{message}"),
        other => anyhow::bail!("the build ended {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        serde_json::from_value(json!({
            "build_id": "build-1a2b", "mode": "dockerfile", "dockerfile": "FROM x\n",
            "push": {"registry": "127.0.0.1:5000", "repository": "catalog/users/alice/app", "tag": "1.0"},
            "callback": {"url": "http://127.0.0.1:3000/api/v1/builds/build-1a2b/status", "token": "t"}
        }))
        .unwrap()
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(spec().validate(), Ok(()));
        let mut s = spec();
        s.build_id = "../etc".into();
        assert!(s.validate().unwrap_err().starts_with("build_id"));
        let mut s = spec();
        s.push.repository = "catalog/$(id)".into();
        assert!(s.validate().unwrap_err().starts_with("push.repository"));
        let mut s = spec();
        s.mode = Mode::Environment;
        assert!(s.validate().unwrap_err().starts_with("environment_id"));
        s.environment_id = Some("env-1;rm".into());
        assert!(s.validate().unwrap_err().starts_with("environment_id"));
        let mut s = spec();
        s.callback.url = "file:///etc/passwd".into();
        assert!(s.validate().unwrap_err().starts_with("callback.url"));
        assert!(
            serde_json::from_value::<JobSpec>(json!({"build_id": "b", "mode": "magic"})).is_err()
        );
    }
}

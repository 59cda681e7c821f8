//! `harbor-sim`: a simulator of the Harbor v2.15 REST API subset that berth's
//! image-catalog service uses (see `/work/shared/harbor/CONTRACT.md`).
//!
//! Start one in-process with [`Simulator::start`]; shape its behaviour through the
//! `/_sim/*` control API or the equivalent Rust methods ([`Simulator::set_faults`],
//! [`Simulator::define_upstream`], [`Simulator::state`]).
//!
//! The simulator also plays berth's **build runner** (not part of Harbor): jobs
//! POSTed to `/runner/jobs` report progress to their callback and push the built
//! image into the simulated Harbor (see [`Simulator::set_runner`]).

mod api;
mod content;
mod contents;
mod control;
mod engine;
mod http;
mod model;
mod notify;
mod registry;
mod runner;
mod server;
mod util;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::contents::ScanSpec;
pub use crate::model::{
    ArtifactSummary, DeliveryRecord, ExecutionSummary, PolicySummary, ProjectSummary,
    RegistrySummary, RequestRecord, RunnerCallbackRecord, RunnerJob, RunnerOutcome, SimState,
    StateCounts, TaskSummary, WebhookPolicySummary,
};
pub use crate::runner::{
    BUILT_IMAGE_SIZE, DEFAULT_FAIL_LOG_TAIL, DEFAULT_FAIL_MESSAGE, RUNNER_JOBS_PATH,
    RUNNER_OPERATOR, runner_signature,
};

/// A project created at start-up (Harbor ships with a public `library` project).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProjectSeed {
    pub name: String,
    pub public: bool,
}

/// Simulator configuration.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The one user the simulator knows; it is a system admin (or a robot, see `robot`).
    pub username: String,
    pub password: String,
    /// Host (and optional `:port`) of the simulated Harbor as clients reach it, e.g.
    /// `harbor.local`. Used in `resource_url`, `harbor_hostname` and `dest_resource.endpoint`.
    pub external_host: String,
    /// Scheme of Harbor's `ext_endpoint` (`https` by default).
    pub external_scheme: String,
    /// How long each execution phase lasts (fetch, Pending, Running).
    pub execution_step: Duration,
    /// Delay between the last task finishing and the execution status turning final
    /// (Harbor refreshes it asynchronously; the counters are always live). Default 0.
    pub status_refresh_delay: Duration,
    /// Behave as a system-level robot account: `/statistics` fills only `public_*`.
    pub robot: bool,
    /// Projects created at start-up.
    pub default_projects: Vec<ProjectSeed>,
    /// Webhook delivery timeout per attempt (Harbor: 3 s).
    pub webhook_timeout: Duration,
    /// Webhook attempts per delivery (Harbor: up to 3 failures).
    pub webhook_max_attempts: u32,
    /// Pause between webhook attempts (jobservice backoff, shortened); also the
    /// pause between the build runner's callback attempts.
    pub webhook_retry_delay: Duration,
    /// The build runner's shared secret: `POST /runner/jobs` must carry
    /// `X-Berth-Signature: sha256=<hex HMAC-SHA256(runner_secret, body)>`.
    pub runner_secret: String,
    /// Images Harbor holds from the start (see [`official_images`]).
    pub seed_images: Vec<SeedImage>,
    /// The build runner pulls bases on this Harbor: a job whose base it does not hold fails.
    /// Off by default (every base is taken to exist).
    pub runner_pulls_bases: bool,
    /// Image configs of the known GPU families in `extra_attrs.config`, and manifests
    /// through the registry API (`/v2/…/manifests/…`). On by default.
    pub image_contents: bool,
    /// A real registry (e.g. `http://127.0.0.1:5000`) whose push notifications arrive at
    /// `/service/notifications`: the simulator reads the pushed manifests from it.
    pub registry_url: Option<String>,
    /// The `Authorization: Bearer` value the registry's notifications must carry.
    pub registry_notification_token: Option<String>,
}

/// An image pushed into the simulated Harbor at start-up: `<project>/<repository>:<tag>`,
/// a single-arch `linux/amd64` image of `size` bytes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedImage {
    pub project: String,
    pub repository: String,
    pub tag: String,
    pub size: u64,
}

/// berth's official image set (seed 002) in Harbor's `library` project: what the demo Harbor
/// holds, so that builds based on an official image pull something that exists.
pub fn official_images() -> Vec<SeedImage> {
    const GIB: u64 = 1 << 30;
    [
        ("ubuntu20-pytorch", "2.0", 8 * GIB),
        ("ubuntu20-tensorflow", "2.12", 7 * GIB),
        ("ubuntu22-cuda", "12.0", 5 * GIB),
        ("ubuntu20-jupyter", "latest", 6 * GIB),
    ]
    .into_iter()
    .map(|(repository, tag, size)| SeedImage {
        project: "library".into(),
        repository: repository.into(),
        tag: tag.into(),
        size,
    })
    .collect()
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            username: "admin".into(),
            password: "Harbor12345".into(),
            external_host: "harbor.local".into(),
            external_scheme: "https".into(),
            execution_step: Duration::from_millis(300),
            status_refresh_delay: Duration::ZERO,
            robot: false,
            default_projects: vec![ProjectSeed {
                name: "library".into(),
                public: true,
            }],
            webhook_timeout: Duration::from_secs(3),
            webhook_max_attempts: 3,
            webhook_retry_delay: Duration::from_millis(200),
            runner_secret: "runner-secret".into(),
            seed_images: Vec::new(),
            runner_pulls_bases: false,
            image_contents: true,
            registry_url: None,
            registry_notification_token: None,
        }
    }
}

/// Injected API errors: the next `count` requests whose path starts with
/// `path_prefix` (default `/api/v2.0`) fail with `status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiErrorFault {
    pub status: u16,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Message for 4xx errors (5xx always read "internal server error").
    #[serde(default)]
    pub message: Option<String>,
}

fn one() -> u32 {
    1
}

/// Webhook delivery faults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookFaults {
    /// Record but never send deliveries.
    pub drop: bool,
    /// Send every delivery twice.
    pub duplicate: bool,
    /// Hold back every other delivery so consecutive events arrive out of order.
    pub reorder: bool,
    /// Record but never send this share of deliveries (0–100), spread over delivery ids.
    pub loss_percent: u8,
}

/// How `down` manifests.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub enum DownMode {
    /// Close the connection without a response.
    #[default]
    #[serde(rename = "close")]
    Close,
    /// Answer `503` (body rewritten to UNKNOWN / internal server error).
    #[serde(rename = "503")]
    ServiceUnavailable,
}

/// The current faults (all off by default).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Faults {
    pub api_errors: Option<ApiErrorFault>,
    pub latency_ms: u64,
    /// The next N replication tasks fail (REPLICATION `Error`, task `Failed`).
    pub fail_next_tasks: u32,
    /// Each task errors once, is retried and then succeeds: the execution reads
    /// `Failed` for one step before `Succeed`.
    pub flap_failed_before_succeed: bool,
    /// Tasks stay running (execution `InProgress`) until stopped or the fault is cleared.
    pub hang_executions: bool,
    pub webhooks: WebhookFaults,
    /// Every `/api/v2.0` request fails (see `down_mode`).
    pub down: bool,
    pub down_mode: DownMode,
    /// The version `GET /systeminfo` reports (`None`: [`DEFAULT_HARBOR_VERSION`]). Below
    /// v2.13, REPLICATION events carry no `execution_id` nor `task_id`, as Harbor's did.
    pub harbor_version: Option<String>,
    /// Each new replication task's job fails this many runs before one succeeds. The job
    /// service retries a failed run after its back-off, 3 runs at most (Harbor's
    /// `MaxFails` for replication), so 3 or more fails the task for good.
    pub task_retries: u32,
    /// Scales the retry back-off (`None` or 1: Harbor's own, `fails⁴ + 15 +
    /// rand(0..30)·(fails + 1)` seconds: 16–74 s, then 31–118 s).
    pub retry_time_scale: Option<f64>,
}

/// The Harbor version the simulator reports unless told otherwise.
pub const DEFAULT_HARBOR_VERSION: &str = "v2.15.0-sim";

impl Faults {
    pub fn harbor_version(&self) -> &str {
        self.harbor_version
            .as_deref()
            .unwrap_or(DEFAULT_HARBOR_VERSION)
    }

    /// Whether REPLICATION events name their execution and task (Harbor v2.13.0 and later).
    pub fn events_carry_execution_id(&self) -> bool {
        let v = self.harbor_version().trim_start_matches('v');
        let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (2, 13)
    }
}

/// A partial update of [`Faults`]; present fields overwrite, absent ones are kept.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsPatch {
    pub api_errors: Option<ApiErrorFault>,
    pub latency_ms: Option<u64>,
    pub fail_next_tasks: Option<u32>,
    pub flap_failed_before_succeed: Option<bool>,
    pub hang_executions: Option<bool>,
    pub webhooks: Option<WebhookFaultsPatch>,
    pub down: Option<bool>,
    pub down_mode: Option<DownMode>,
    /// An empty string restores the default version.
    pub harbor_version: Option<String>,
    pub task_retries: Option<u32>,
    pub retry_time_scale: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookFaultsPatch {
    pub drop: Option<bool>,
    pub duplicate: Option<bool>,
    pub reorder: Option<bool>,
    pub loss_percent: Option<u8>,
}

impl Faults {
    pub fn apply(&mut self, p: FaultsPatch) {
        if let Some(v) = p.api_errors {
            self.api_errors = Some(v);
        }
        if let Some(v) = p.latency_ms {
            self.latency_ms = v;
        }
        if let Some(v) = p.fail_next_tasks {
            self.fail_next_tasks = v;
        }
        if let Some(v) = p.flap_failed_before_succeed {
            self.flap_failed_before_succeed = v;
        }
        if let Some(v) = p.hang_executions {
            self.hang_executions = v;
        }
        if let Some(w) = p.webhooks {
            if let Some(v) = w.drop {
                self.webhooks.drop = v;
            }
            if let Some(v) = w.duplicate {
                self.webhooks.duplicate = v;
            }
            if let Some(v) = w.loss_percent {
                self.webhooks.loss_percent = v.min(100);
            }
            if let Some(v) = w.reorder {
                self.webhooks.reorder = v;
            }
        }
        if let Some(v) = p.down {
            self.down = v;
        }
        if let Some(v) = p.down_mode {
            self.down_mode = v;
        }
        if let Some(v) = p.harbor_version {
            self.harbor_version = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = p.task_retries {
            self.task_retries = v;
        }
        if let Some(v) = p.retry_time_scale {
            self.retry_time_scale = Some(v.max(0.0));
        }
    }
}

/// Why fetching an upstream image fails (the execution ends `Failed` with a
/// registry-style `status_text`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamFailure {
    Unauthorized,
    RateLimited,
    NotFound,
}

impl UpstreamFailure {
    pub fn status_text(self) -> &'static str {
        match self {
            UpstreamFailure::Unauthorized => "unauthorized: authentication required",
            UpstreamFailure::RateLimited => {
                "toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"
            }
            UpstreamFailure::NotFound => "name unknown: repository name not known to registry",
        }
    }
}

/// An image held by the simulated source registries.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamImage {
    /// Source registry host or URL (`hub.docker.com`, `docker.io`, `https://nvcr.io`);
    /// `None` applies to every registry.
    pub registry: Option<String>,
    /// Source repository, e.g. `library/nginx`.
    pub repository: String,
    pub tag: String,
    /// `os/arch[/variant]`; more than one makes a multi-arch index. Empty: the default rule.
    pub platforms: Vec<String>,
    /// Size in bytes of each platform image (manifest + config + layers).
    pub size: Option<u64>,
    /// The tag does not exist upstream (execution `Succeed` with `total=0`).
    pub missing: bool,
    pub failure: Option<UpstreamFailure>,
    /// Bump to change the content (and so the digests) of the same tag.
    pub revision: u32,
    /// Include a Docker-Hub-style attestation child (default: multi-arch on Docker Hub).
    pub attestation: Option<bool>,
}

/// How the simulated build runner treats the next jobs (all off by default).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RunnerControl {
    /// The next N accepted jobs fail (`failed` callback, nothing pushed).
    pub fail_next: u32,
    /// The next N accepted jobs go silent: no callback, no push, ever.
    pub silent_next: u32,
    /// `message` of the `failed` callback for `fail_next` failures
    /// (default [`DEFAULT_FAIL_MESSAGE`]).
    pub message: Option<String>,
    /// `log_tail` of every `failed` callback (default [`DEFAULT_FAIL_LOG_TAIL`]).
    pub log_tail: Option<String>,
}

/// A partial update of [`RunnerControl`]; present fields overwrite, absent ones are kept.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunnerControlPatch {
    pub fail_next: Option<u32>,
    pub silent_next: Option<u32>,
    pub message: Option<String>,
    pub log_tail: Option<String>,
}

impl RunnerControl {
    pub fn apply(&mut self, p: RunnerControlPatch) {
        if let Some(v) = p.fail_next {
            self.fail_next = v;
        }
        if let Some(v) = p.silent_next {
            self.silent_next = v;
        }
        if let Some(v) = p.message {
            self.message = Some(v);
        }
        if let Some(v) = p.log_tail {
            self.log_tail = Some(v);
        }
    }
}

/// A running simulator. Cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<server::Inner>,
}

impl Simulator {
    /// Binds `addr` (port 0 is fine) and serves on the current tokio runtime.
    pub async fn start(addr: SocketAddr, opts: SimOptions) -> anyhow::Result<Simulator> {
        let inner = server::start(addr, opts).await?;
        Ok(Simulator { inner })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    pub fn options(&self) -> &SimOptions {
        &self.inner.opts
    }

    /// Merges `patch` into the current faults.
    pub fn set_faults(&self, patch: FaultsPatch) {
        self.lock().faults.apply(patch);
    }

    /// What later scans find; with `repository` and `reference`, also scans that artifact
    /// now (its SCANNING_* webhook goes out). Needs the simulator's tokio runtime entered.
    /// Returns the control endpoint's status (404 for an unknown artifact).
    pub fn scan(&self, spec: ScanSpec) -> u16 {
        let body = serde_json::to_vec(&spec).unwrap_or_default();
        contents::control(&self.inner, "POST", &body).status
    }

    /// Turns every fault off.
    pub fn reset_faults(&self) {
        self.lock().faults = Faults::default();
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Defines (or redefines) an upstream image.
    pub fn define_upstream(&self, image: UpstreamImage) {
        self.lock().define_upstream(image);
    }

    /// Forgets every upstream definition (the default rules apply again).
    pub fn clear_upstream(&self) {
        self.lock().upstream.clear();
    }

    /// A snapshot of everything, as `GET /_sim/state` returns it.
    pub fn state(&self) -> SimState {
        self.lock().snapshot()
    }

    /// Clears the request log.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// `http://127.0.0.1:PORT/runner/jobs`: where berth POSTs build jobs.
    pub fn runner_url(&self) -> String {
        format!("{}{RUNNER_JOBS_PATH}", self.url())
    }

    /// Merges `patch` into the build runner's control (`fail_next`, `silent_next`, …).
    pub fn set_runner(&self, patch: RunnerControlPatch) {
        self.lock().runner.apply(patch);
    }

    /// Turns the build runner's control back to defaults (the job records are kept).
    pub fn reset_runner(&self) {
        self.lock().runner = RunnerControl::default();
    }

    pub fn runner(&self) -> RunnerControl {
        self.lock().runner.clone()
    }

    /// Every job the build runner received, oldest first (also in [`SimState`]).
    pub fn runner_jobs(&self) -> Vec<RunnerJob> {
        self.lock().runner_jobs.clone()
    }

    /// The latest job record for `build_id`.
    pub fn runner_job(&self, build_id: &str) -> Option<RunnerJob> {
        self.lock()
            .runner_jobs
            .iter()
            .rev()
            .find(|j| j.build_id == build_id)
            .cloned()
    }

    /// Forgets the build runner's job records.
    pub fn clear_runner_jobs(&self) {
        self.lock().runner_jobs.clear();
    }

    /// Stops accepting connections.
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, model::State> {
        lock(&self.inner.state)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

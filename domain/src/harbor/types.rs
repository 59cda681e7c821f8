//! Harbor's response objects, as far as berth reads them.
//!
//! Harbor omits zero values from response bodies (CONTRACT §0.5): every struct here is
//! `#[serde(default)]`, so a missing key reads as `""`, `0`, `false` or empty, and lists or
//! maps that come as `null` read as empty too. Unknown keys are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Harbor renders a time that was never set as year 1 (CONTRACT §0.5).
fn set_time(t: &str) -> Option<String> {
    if t.is_empty() || t.starts_with("0001-01-01") {
        None
    } else {
        Some(t.to_owned())
    }
}

/// `null` reads as the default, like a missing key.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// Harbor's `Registry` (CONTRACT §2.1). `access_secret` comes back masked (`*****`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Registry {
    pub id: i64,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub kind: String,
    #[serde(deserialize_with = "nullable")]
    pub url: String,
    #[serde(deserialize_with = "nullable")]
    pub credential: RegistryCredential,
    pub insecure: bool,
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    #[serde(deserialize_with = "nullable")]
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RegistryCredential {
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub kind: String,
    #[serde(deserialize_with = "nullable")]
    pub access_key: String,
    #[serde(deserialize_with = "nullable")]
    pub access_secret: String,
}

/// Harbor's `ReplicationPolicy` (CONTRACT §3.1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReplicationPolicy {
    pub id: i64,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub description: String,
    pub src_registry: Option<Registry>,
    pub dest_registry: Option<Registry>,
    #[serde(deserialize_with = "nullable")]
    pub dest_namespace: String,
    /// `None` (absent or null) means `-1`, legacy mode.
    pub dest_namespace_replace_count: Option<i8>,
    #[serde(deserialize_with = "nullable")]
    pub filters: Vec<ReplicationFilter>,
    pub trigger: Option<ReplicationTrigger>,
    pub replicate_deletion: bool,
    pub deletion: bool,
    #[serde(rename = "override")]
    pub override_: bool,
    pub enabled: bool,
    pub speed: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReplicationFilter {
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub kind: String,
    /// A string, except for `label` filters (a list of strings).
    pub value: Value,
    #[serde(deserialize_with = "nullable")]
    pub decoration: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReplicationTrigger {
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub kind: String,
    pub trigger_settings: Option<Value>,
}

/// An execution's status (CONTRACT §4.2). A missing status reads as `InProgress`, which
/// keeps a poller polling rather than concluding anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ExecutionStatus {
    #[default]
    InProgress,
    Succeed,
    Failed,
    Stopped,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::InProgress => "InProgress",
            ExecutionStatus::Succeed => "Succeed",
            ExecutionStatus::Failed => "Failed",
            ExecutionStatus::Stopped => "Stopped",
        }
    }
}

/// What a finished execution means for the import (CONTRACT §4.1/§4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionOutcome {
    /// Every task succeeded (and there was at least one).
    Imported,
    /// `Succeed` with `total == 0`: nothing matched, i.e. no such image or tag upstream.
    NotFoundAtSource,
    /// The flow or a task failed; `status_text` and the tasks tell why.
    Failed,
    /// Stopped by a user or by berth.
    Stopped,
}

/// Harbor's `ReplicationExecution`. The counters are computed live from the tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Execution {
    pub id: i64,
    pub policy_id: i64,
    pub status: ExecutionStatus,
    pub status_text: String,
    /// `manual`, `scheduled` or `event_based`.
    pub trigger: String,
    pub start_time: Option<String>,
    /// `None` while running (Harbor sends year 1).
    pub end_time: Option<String>,
    pub total: i64,
    pub succeed: i64,
    pub failed: i64,
    pub in_progress: i64,
    pub stopped: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawExecution {
    id: i64,
    policy_id: i64,
    #[serde(deserialize_with = "nullable")]
    status: ExecutionStatus,
    #[serde(deserialize_with = "nullable")]
    status_text: String,
    #[serde(deserialize_with = "nullable")]
    trigger: String,
    #[serde(deserialize_with = "nullable")]
    start_time: String,
    #[serde(deserialize_with = "nullable")]
    end_time: String,
    total: i64,
    succeed: i64,
    failed: i64,
    in_progress: i64,
    stopped: i64,
}

impl From<RawExecution> for Execution {
    fn from(r: RawExecution) -> Execution {
        Execution {
            id: r.id,
            policy_id: r.policy_id,
            status: r.status,
            status_text: r.status_text,
            trigger: r.trigger,
            start_time: set_time(&r.start_time),
            end_time: set_time(&r.end_time),
            total: r.total,
            succeed: r.succeed,
            failed: r.failed,
            in_progress: r.in_progress,
            stopped: r.stopped,
        }
    }
}

impl Execution {
    /// CONTRACT §4.2: Harbor refreshes `status` only every ~30 s, so an execution is over
    /// when `status != InProgress`, or already when `total > 0 && in_progress == 0`.
    pub fn is_finished(&self) -> bool {
        self.status != ExecutionStatus::InProgress || (self.total > 0 && self.in_progress == 0)
    }

    /// The outcome, once [`is_finished`](Self::is_finished); `None` while running. When
    /// the counters decide before `status` does, Harbor's precedence applies: any failed
    /// task → `Failed`, else any stopped → `Stopped`, else `Imported`.
    pub fn outcome(&self) -> Option<ExecutionOutcome> {
        match self.status {
            ExecutionStatus::Succeed if self.total == 0 => Some(ExecutionOutcome::NotFoundAtSource),
            ExecutionStatus::Succeed => Some(ExecutionOutcome::Imported),
            ExecutionStatus::Failed => Some(ExecutionOutcome::Failed),
            ExecutionStatus::Stopped => Some(ExecutionOutcome::Stopped),
            ExecutionStatus::InProgress if self.is_finished() => Some(if self.failed > 0 {
                ExecutionOutcome::Failed
            } else if self.stopped > 0 {
                ExecutionOutcome::Stopped
            } else {
                ExecutionOutcome::Imported
            }),
            ExecutionStatus::InProgress => None,
        }
    }
}

/// Harbor's `ReplicationTask` (CONTRACT §4.3): one per source repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Task {
    pub id: i64,
    pub execution_id: i64,
    /// `Pending`, `InProgress`, `Succeed`, `Failed` or `Stopped`.
    pub status: String,
    pub job_id: String,
    pub operation: String,
    pub resource_type: String,
    /// `"<repo> [<N> item(s) in total]"`.
    pub src_resource: String,
    pub dst_resource: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawTask {
    id: i64,
    execution_id: i64,
    #[serde(deserialize_with = "nullable")]
    status: String,
    #[serde(deserialize_with = "nullable")]
    job_id: String,
    #[serde(deserialize_with = "nullable")]
    operation: String,
    #[serde(deserialize_with = "nullable")]
    resource_type: String,
    #[serde(deserialize_with = "nullable")]
    src_resource: String,
    #[serde(deserialize_with = "nullable")]
    dst_resource: String,
    #[serde(deserialize_with = "nullable")]
    start_time: String,
    #[serde(deserialize_with = "nullable")]
    end_time: String,
}

impl From<RawTask> for Task {
    fn from(r: RawTask) -> Task {
        Task {
            id: r.id,
            execution_id: r.execution_id,
            status: r.status,
            job_id: r.job_id,
            operation: r.operation,
            resource_type: r.resource_type,
            src_resource: r.src_resource,
            dst_resource: r.dst_resource,
            start_time: set_time(&r.start_time),
            end_time: set_time(&r.end_time),
        }
    }
}

impl Task {
    /// The repository in `src_resource`/`dst_resource`: the part before `" ["`.
    pub fn resource_name(resource: &str) -> &str {
        resource.split(" [").next().unwrap_or(resource).trim()
    }
}

/// One platform of a multi-arch image (an index's child).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    pub digest: String,
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    /// The child's size: not in the index's `references`; filled by
    /// `HarborClient::fill_platform_sizes`, which reads each child.
    pub size: Option<i64>,
}

/// An artifact as berth records it (CONTRACT §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Artifact {
    pub digest: String,
    /// Bytes; for an index, the index plus its children.
    pub size: i64,
    /// The config media type for a single manifest; equal to `manifest_media_type` for an index.
    pub media_type: String,
    pub manifest_media_type: String,
    pub artifact_type: String,
    pub push_time: Option<String>,
    /// `catalog/nginx`: includes the project.
    pub repository_name: String,
    pub tags: Vec<String>,
    /// Single manifest only (`extra_attrs.architecture`).
    pub architecture: Option<String>,
    /// Single manifest only (`extra_attrs.os`).
    pub os: Option<String>,
    /// Index only: the image platforms, attestation manifests excluded.
    pub platforms: Vec<Platform>,
}

const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

impl Artifact {
    /// Whether this is an index (multi-arch image) rather than a single manifest.
    pub fn is_index(&self) -> bool {
        INDEX_MEDIA_TYPES.contains(&self.manifest_media_type.as_str()) || !self.platforms.is_empty()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawArtifact {
    #[serde(deserialize_with = "nullable")]
    digest: String,
    size: i64,
    #[serde(deserialize_with = "nullable")]
    media_type: String,
    #[serde(deserialize_with = "nullable")]
    manifest_media_type: String,
    #[serde(deserialize_with = "nullable")]
    artifact_type: String,
    #[serde(deserialize_with = "nullable")]
    push_time: String,
    #[serde(deserialize_with = "nullable")]
    repository_name: String,
    #[serde(deserialize_with = "nullable")]
    tags: Vec<RawTag>,
    #[serde(deserialize_with = "nullable")]
    extra_attrs: BTreeMap<String, Value>,
    #[serde(deserialize_with = "nullable")]
    references: Vec<RawReference>,
    /// Present with `with_scan_overview=true` once a scan was asked for.
    scan_overview: Option<Value>,
}

impl RawArtifact {
    pub(crate) fn size(&self) -> i64 {
        self.size
    }

    pub(crate) fn extra_attrs(&self) -> &BTreeMap<String, Value> {
        &self.extra_attrs
    }

    pub(crate) fn scan_overview(&self) -> Option<&Value> {
        self.scan_overview.as_ref().filter(|v| v.is_object())
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTag {
    #[serde(deserialize_with = "nullable")]
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawReference {
    #[serde(deserialize_with = "nullable")]
    child_digest: String,
    #[serde(deserialize_with = "nullable")]
    platform: RawPlatform,
    #[serde(deserialize_with = "nullable")]
    annotations: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPlatform {
    #[serde(deserialize_with = "nullable")]
    architecture: String,
    #[serde(deserialize_with = "nullable")]
    os: String,
    #[serde(deserialize_with = "nullable")]
    variant: String,
}

impl RawReference {
    /// Docker Hub attaches attestation manifests to indexes (CONTRACT §5.1): platform
    /// `unknown/unknown`, annotation `vnd.docker.reference.type=attestation-manifest`.
    /// A child without a platform is not an image platform either.
    fn is_image_platform(&self) -> bool {
        let p = &self.platform;
        let attestation = self
            .annotations
            .get("vnd.docker.reference.type")
            .and_then(Value::as_str)
            .is_some_and(|t| t == "attestation-manifest");
        let unknown = |s: &str| s.is_empty() || s == "unknown";
        !attestation && !unknown(&p.architecture) && !unknown(&p.os)
    }
}

impl From<RawArtifact> for Artifact {
    fn from(r: RawArtifact) -> Artifact {
        let attr = |k: &str| {
            r.extra_attrs
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let (architecture, os) = (attr("architecture"), attr("os"));
        let platforms = r
            .references
            .iter()
            .filter(|c| c.is_image_platform())
            .map(|c| Platform {
                digest: c.child_digest.clone(),
                architecture: c.platform.architecture.clone(),
                os: c.platform.os.clone(),
                variant: Some(c.platform.variant.clone()).filter(|v| !v.is_empty()),
                size: None,
            })
            .collect();
        Artifact {
            digest: r.digest,
            size: r.size,
            media_type: r.media_type,
            manifest_media_type: r.manifest_media_type,
            artifact_type: r.artifact_type,
            push_time: set_time(&r.push_time),
            repository_name: r.repository_name,
            tags: r
                .tags
                .into_iter()
                .map(|t| t.name)
                .filter(|n| !n.is_empty())
                .collect(),
            architecture,
            os,
            platforms,
        }
    }
}

/// Harbor's `Statistic` (CONTRACT §6). A robot account sees only the `public_*` counts;
/// `private_*` and `total_*` read 0 for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Statistics {
    pub private_project_count: i64,
    pub private_repo_count: i64,
    pub public_project_count: i64,
    pub public_repo_count: i64,
    pub total_project_count: i64,
    pub total_repo_count: i64,
    pub total_storage_consumption: i64,
}

/// Harbor's `GeneralInfo` (`GET /systeminfo`), as far as berth reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SystemInfo {
    /// `v2.12.2-73072d0d`; empty for an anonymous caller.
    #[serde(deserialize_with = "nullable")]
    pub harbor_version: String,
}

impl SystemInfo {
    /// `(major, minor)` of `harbor_version`, e.g. `(2, 12)`.
    pub fn version(&self) -> Option<(u32, u32)> {
        let v = self.harbor_version.trim().trim_start_matches('v');
        let mut parts = v.split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }

    /// Whether REPLICATION events carry `execution_id` and `task_id` (Harbor v2.13.0 and
    /// later); `None` when the version is unknown.
    pub fn events_carry_execution_id(&self) -> Option<bool> {
        self.version().map(|v| v >= (2, 13))
    }
}

/// Harbor's `WebhookPolicy` (CONTRACT §7.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WebhookPolicy {
    pub id: i64,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub description: String,
    pub project_id: i64,
    #[serde(deserialize_with = "nullable")]
    pub targets: Vec<WebhookTarget>,
    #[serde(deserialize_with = "nullable")]
    pub event_types: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub creator: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WebhookTarget {
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub kind: String,
    #[serde(deserialize_with = "nullable")]
    pub address: String,
    #[serde(deserialize_with = "nullable")]
    pub auth_header: String,
    pub skip_cert_verify: bool,
    #[serde(deserialize_with = "nullable")]
    pub payload_format: String,
}

#[cfg(test)]
mod tests;

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
mod tests {
    use super::*;

    fn execution(json: &str) -> Execution {
        serde_json::from_str::<RawExecution>(json).unwrap().into()
    }

    #[test]
    fn parses_the_contracts_registry() {
        let r: Registry = serde_json::from_str(
            r#"{"id":3,"name":"dockerhub","type":"docker-hub","url":"https://hub.docker.com",
                "credential":{"type":"basic","access_key":"myuser","access_secret":"*****"},
                "status":"healthy","creation_time":"2025-01-10T07:59:00.000Z",
                "update_time":"2025-01-10T07:59:00.000Z"}"#,
        )
        .unwrap();
        assert_eq!(r.id, 3);
        assert_eq!(r.kind, "docker-hub");
        assert_eq!(r.credential.access_key, "myuser");
        assert!(!r.insecure, "omitted insecure is false");
        assert_eq!(r.description, "");
        // Anonymous: `credential` is `{}`, or absent, or null.
        for credential in [r#","credential":{}"#, "", r#","credential":null"#] {
            let r: Registry = serde_json::from_str(&format!(
                r#"{{"id":0,"name":"x","type":"docker-registry","url":"https://nvcr.io"{credential}}}"#
            ))
            .unwrap();
            assert_eq!(r.credential, RegistryCredential::default());
        }
    }

    #[test]
    fn parses_the_contracts_execution() {
        let e = execution(
            r#"{"id":42,"policy_id":7,"status":"InProgress","trigger":"manual","status_text":"",
                "start_time":"2025-01-10T08:00:00.000Z","end_time":"0001-01-01T00:00:00.000Z",
                "total":1,"succeed":0,"failed":0,"in_progress":1,"stopped":0}"#,
        );
        assert_eq!(
            e,
            Execution {
                id: 42,
                policy_id: 7,
                status: ExecutionStatus::InProgress,
                status_text: String::new(),
                trigger: "manual".into(),
                start_time: Some("2025-01-10T08:00:00.000Z".into()),
                end_time: None,
                total: 1,
                succeed: 0,
                failed: 0,
                in_progress: 1,
                stopped: 0,
            }
        );
        assert_eq!(e.status.as_str(), "InProgress");
    }

    #[test]
    fn unknown_execution_status_is_an_error() {
        assert!(serde_json::from_str::<RawExecution>(r#"{"id":1,"status":"Running"}"#).is_err());
        // Missing keys are zero values; a missing status keeps polling.
        let e = execution(r#"{"id":1}"#);
        assert_eq!((e.status, e.total), (ExecutionStatus::InProgress, 0));
        assert!(!e.is_finished());
    }

    #[test]
    fn execution_outcomes_follow_contract_4() {
        let with = |status: &str, total, succeed, failed, in_progress, stopped| {
            execution(&format!(
                r#"{{"id":1,"status":"{status}","total":{total},"succeed":{succeed},"failed":{failed},
                    "in_progress":{in_progress},"stopped":{stopped}}}"#
            ))
        };
        use ExecutionOutcome::*;
        let cases = [
            // Nothing matched upstream.
            (with("Succeed", 0, 0, 0, 0, 0), Some(NotFoundAtSource)),
            (with("Succeed", 1, 1, 0, 0, 0), Some(Imported)),
            // Flow failure before any task.
            (with("Failed", 0, 0, 0, 0, 0), Some(Failed)),
            (with("Stopped", 2, 1, 0, 0, 1), Some(Stopped)),
            // Running, and the flow has not created tasks yet.
            (with("InProgress", 0, 0, 0, 0, 0), None),
            (with("InProgress", 2, 1, 0, 1, 0), None),
            // Counters final while the status is stale: Harbor's precedence.
            (with("InProgress", 2, 2, 0, 0, 0), Some(Imported)),
            (with("InProgress", 3, 1, 1, 0, 1), Some(Failed)),
            (with("InProgress", 2, 1, 0, 0, 1), Some(Stopped)),
        ];
        for (e, want) in cases {
            assert_eq!(e.outcome(), want, "{e:?}");
            assert_eq!(e.is_finished(), want.is_some(), "{e:?}");
        }
    }

    #[test]
    fn parses_the_contracts_task() {
        let t: Task = serde_json::from_str::<RawTask>(
            r#"{"id":101,"execution_id":42,"status":"Succeed","job_id":"6f1c2d3e4b5a69788796a5b4",
                "operation":"copy","resource_type":"image",
                "src_resource":"library/nginx [1 item(s) in total]",
                "dst_resource":"catalog/nginx [1 item(s) in total]",
                "start_time":"2025-01-10T08:00:03.000Z","end_time":"2025-01-10T08:01:59.000Z"}"#,
        )
        .unwrap()
        .into();
        assert_eq!(t.status, "Succeed");
        assert_eq!(Task::resource_name(&t.src_resource), "library/nginx");
        assert_eq!(t.end_time.as_deref(), Some("2025-01-10T08:01:59.000Z"));
    }

    #[test]
    fn parses_the_contracts_single_arch_artifact() {
        let a: Artifact = serde_json::from_str::<RawArtifact>(
            r#"{"id":10,"type":"IMAGE","media_type":"application/vnd.oci.image.config.v1+json",
                "manifest_media_type":"application/vnd.oci.image.manifest.v1+json",
                "artifact_type":"application/vnd.oci.image.config.v1+json",
                "project_id":5,"repository_id":9,"repository_name":"catalog/nginx",
                "digest":"sha256:aa01","size":71234567,"icon":"sha256:0048",
                "push_time":"2025-01-10T08:01:40.000Z","pull_time":"0001-01-01T00:00:00.000Z",
                "extra_attrs":{"architecture":"amd64","os":"linux","author":"NGINX Docker Maintainers",
                  "created":"2024-08-14T21:31:12Z",
                  "config":{"Env":["PATH=/usr/bin"],"Entrypoint":["/docker-entrypoint.sh"],
                            "Cmd":["nginx","-g","daemon off;"],"ExposedPorts":{"80/tcp":{}},
                            "Labels":{"maintainer":"NGINX Docker Maintainers"}}},
                "addition_links":{"build_history":{"absolute":false,
                  "href":"/api/v2.0/projects/catalog/repositories/nginx/artifacts/sha256:aa01/additions/build_history"}}}"#,
        )
        .unwrap()
        .into();
        assert_eq!(
            a,
            Artifact {
                digest: "sha256:aa01".into(),
                size: 71234567,
                media_type: "application/vnd.oci.image.config.v1+json".into(),
                manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                artifact_type: "application/vnd.oci.image.config.v1+json".into(),
                push_time: Some("2025-01-10T08:01:40.000Z".into()),
                repository_name: "catalog/nginx".into(),
                tags: vec![],
                architecture: Some("amd64".into()),
                os: Some("linux".into()),
                platforms: vec![],
            }
        );
        assert!(!a.is_index());
    }

    #[test]
    fn index_children_without_image_platforms_are_dropped() {
        let a: Artifact = serde_json::from_str::<RawArtifact>(
            r#"{"digest":"sha256:1f1e","manifest_media_type":"application/vnd.docker.distribution.manifest.list.v2+json",
                "media_type":"application/vnd.docker.distribution.manifest.list.v2+json",
                "extra_attrs":null,"tags":null,
                "references":[
                  {"child_digest":"sha256:aa","platform":{"architecture":"amd64","os":"linux"}},
                  {"child_digest":"sha256:bb","platform":{"architecture":"arm","os":"linux","variant":"v7","os.version":"x"}},
                  {"child_digest":"sha256:cc","platform":{"architecture":"unknown","os":"unknown"}},
                  {"child_digest":"sha256:dd","platform":{"architecture":"amd64","os":"linux"},
                   "annotations":{"vnd.docker.reference.type":"attestation-manifest"}},
                  {"child_digest":"sha256:ee"}
                ]}"#,
        )
        .unwrap()
        .into();
        assert!(a.is_index());
        let kept: Vec<_> = a
            .platforms
            .iter()
            .map(|p| (p.digest.as_str(), p.variant.as_deref()))
            .collect();
        assert_eq!(kept, [("sha256:aa", None), ("sha256:bb", Some("v7"))]);
        assert_eq!((a.architecture, a.os, a.push_time), (None, None, None));
    }

    #[test]
    fn parses_the_contracts_statistics() {
        let s: Statistics = serde_json::from_str(
            r#"{"private_project_count":2,"private_repo_count":7,"public_project_count":1,"public_repo_count":3,
                "total_project_count":3,"total_repo_count":10,"total_storage_consumption":123456789012}"#,
        )
        .unwrap();
        assert_eq!(s.total_storage_consumption, 123_456_789_012);
        assert_eq!(s.private_repo_count, 7);
    }

    #[test]
    fn parses_the_contracts_webhook_policy() {
        let w: WebhookPolicy = serde_json::from_str(
            r#"{"id":3,"name":"catalog-callback","project_id":5,
                "targets":[{"type":"http","address":"https://catalog.example.com/hooks/harbor",
                            "auth_header":"Bearer s3cr3t","payload_format":"Default"}],
                "event_types":["REPLICATION","PUSH_ARTIFACT","DELETE_ARTIFACT"],
                "creation_time":"2025-01-10T07:59:00.000Z","update_time":"2025-01-10T07:59:00.000Z","enabled":true}"#,
        )
        .unwrap();
        assert_eq!(w.targets[0].auth_header, "Bearer s3cr3t");
        assert!(!w.targets[0].skip_cert_verify);
        assert_eq!(w.creator, "");
        assert_eq!(w.event_types.len(), 3);
    }
}

//! Request sequences of every client method against a scripted Harbor. Each scenario
//! returns the requests it made, so the contract test can check them all against the
//! swagger.

use serde_json::json;

use super::fake::*;
use super::*;

/// Declares the scenarios: one `#[test]` each, and `ALL` for the contract test.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                scenarios::$name();
            }
        )*
        pub(super) const ALL: &[(&str, fn() -> Vec<OutboundRequest>)] =
            &[$((stringify!($name), scenarios::$name)),*];
    };
}

scenarios! {
    ensure_project_exists,
    ensure_project_creates_on_404,
    ensure_project_conflict_is_success,
    ensure_project_forbidden,
    ensure_project_unauthorized,
    ensure_registry_reuses_a_match,
    ensure_registry_pages_through,
    ensure_registry_prefers_the_same_access_key,
    ensure_registry_creates_when_missing,
    ensure_registry_conflict_relists_by_name,
    ensure_registry_conflict_with_other_endpoint,
    ensure_registry_unhealthy,
    ensure_policy_creates_when_missing,
    ensure_policy_keeps_an_identical_policy,
    ensure_policy_puts_on_drift,
    ensure_policy_conflict_relists,
    start_execution_reads_location,
    start_execution_without_location,
    start_execution_disabled_policy,
    execution_polls_and_decides,
    stop_execution_ignores_the_body,
    tasks_page_through,
    artifact_index_for_nested_repository,
    artifact_single_manifest,
    artifact_not_found,
    fill_platform_sizes_reads_children,
    artifact_details_read_config_and_scan,
    scan_artifact_asks_harbor,
    delete_artifact_outcomes,
    statistics_for_a_robot,
    webhook_creates_when_missing,
    webhook_keeps_a_matching_policy,
    webhook_puts_on_drift,
    webhook_conflict_relists,
    unreachable_harbor,
    request_id_on_every_request,
}

fn registry_json(id: i64, name: &str, kind: &str, url: &str, key: &str) -> serde_json::Value {
    let credential = if key.is_empty() {
        json!({})
    } else {
        json!({"type": "basic", "access_key": key, "access_secret": "*****"})
    };
    json!({"id": id, "name": name, "type": kind, "url": url, "credential": credential,
           "status": "healthy", "creation_time": "2025-01-10T07:59:00.000Z",
           "update_time": "2025-01-10T07:59:00.000Z"})
}

fn nginx_spec() -> PolicySpec {
    PolicySpec::new(
        "import-docker.io-library-nginx-1.25",
        3,
        "library/nginx",
        "1.25",
    )
}

/// The policy as Harbor renders berth's body back (CONTRACT §3.5).
fn nginx_policy_json() -> serde_json::Value {
    json!({"id": 7, "name": "import-docker.io-library-nginx-1.25",
           "description": "Image import managed by berth",
           "creation_time": "2025-01-10T07:59:00.000Z", "update_time": "2025-01-10T07:59:00.000Z",
           "src_registry": registry_json(3, "dockerhub", "docker-hub", "https://hub.docker.com", ""),
           "dest_registry": {"id": 0, "name": "Local", "type": "harbor", "url": "http://core:8080",
                             "status": "healthy", "credential": {"type": "secret", "access_secret": "*****"},
                             "insecure": true, "creation_time": "0001-01-01T00:00:00.000Z",
                             "update_time": "0001-01-01T00:00:00.000Z"},
           "dest_namespace": "catalog", "dest_namespace_replace_count": 1,
           "filters": [{"type": "name", "value": "library/nginx"},
                       {"type": "tag", "value": "1.25", "decoration": "matches"}],
           "trigger": {"type": "manual"}, "override": true, "enabled": true,
           "speed": 0, "copy_by_chunk": false, "single_active_replication": false})
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// CONTRACT §5.1's multi-arch example, with full digests.
fn index_json() -> serde_json::Value {
    json!({
        "id": 12, "type": "IMAGE",
        "media_type": "application/vnd.oci.image.index.v1+json",
        "manifest_media_type": "application/vnd.oci.image.index.v1+json",
        "project_id": 5, "repository_id": 9, "repository_name": "catalog/nvidia/pytorch",
        "digest": digest('1'), "size": 143512345,
        "icon": "sha256:0048162a053eef4d4ce3fe7518615bef084403614f8bca43b40ae2e762e11e06",
        "push_time": "2025-01-10T08:01:58.412Z", "pull_time": "0001-01-01T00:00:00.000Z",
        "references": [
            {"parent_id": 12, "child_id": 10, "child_digest": digest('a'),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"parent_id": 12, "child_id": 11, "child_digest": digest('b'),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"parent_id": 12, "child_id": 13, "child_digest": digest('c'),
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.digest": digest('a'),
                             "vnd.docker.reference.type": "attestation-manifest"}}
        ],
        "tags": [{"id": 7, "repository_id": 9, "artifact_id": 12, "name": "24.01-py3",
                  "push_time": "2025-01-10T08:01:58.431Z", "pull_time": "0001-01-01T00:00:00.000Z",
                  "immutable": false}]
    })
}

fn child_json(d: &str, arch: &str, size: i64) -> serde_json::Value {
    json!({"id": 10, "type": "IMAGE", "digest": d, "size": size,
           "media_type": "application/vnd.oci.image.config.v1+json",
           "manifest_media_type": "application/vnd.oci.image.manifest.v1+json",
           "push_time": "2025-01-10T08:01:40.000Z", "pull_time": "0001-01-01T00:00:00.000Z",
           "extra_attrs": {"architecture": arch, "os": "linux"}})
}

fn webhook_json(address: &str, auth: &str, events: &[&str]) -> serde_json::Value {
    json!({"id": 3, "name": "berth-events", "project_id": 5,
           "targets": [{"type": "http", "address": address, "auth_header": auth,
                        "payload_format": "Default"}],
           "event_types": events,
           "creation_time": "2025-01-10T07:59:00.000Z", "update_time": "2025-01-10T07:59:00.000Z",
           "enabled": true})
}

const HOOK: &str = "https://berth.example.com/hooks/harbor";
const HOOK_AUTH: &str = "Bearer s3cr3t";
const EVENTS: [&str; 3] = ["REPLICATION", "PUSH_ARTIFACT", "DELETE_ARTIFACT"];

/// The scenarios, by the part of Harbor's API they exercise.
mod scenarios {
    use super::{FakeHarbor, HarborClient, OutboundRequest};

    mod artifacts;
    mod replication;

    pub use artifacts::*;
    pub use replication::*;

    type Requests = Vec<OutboundRequest>;

    fn done(c: HarborClient<FakeHarbor>) -> Requests {
        c.sender().assert_drained();
        c.sender().requests()
    }
}

/// The registry API is not in Harbor's REST swagger, so this one is not a contract scenario.
#[test]
fn manifest_layers_read_through_the_registry_api() {
    let d = digest('a');
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest('c'), "size": 7},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest('1'), "size": 100},
                   {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest('2'), "size": 200}]});
    let c = client(FakeHarbor::default().then(json(200, manifest)));
    let layers = block_on(c.manifest_layers("docker.io/pytorch/pytorch", &d)).unwrap();
    assert_eq!(
        c.sender().lines(),
        [format!(
            "GET {BASE_URL}/v2/catalog/docker.io/pytorch/pytorch/manifests/{d}"
        )]
    );
    assert_eq!(layers.len(), 2);
    assert_eq!(
        (layers[1].digest.as_str(), layers[1].size),
        (digest('2').as_str(), 200)
    );
    assert_eq!(
        layers[0].media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
}

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

mod scenarios {
    use super::*;

    type Requests = Vec<OutboundRequest>;

    fn done(c: HarborClient<FakeHarbor>) -> Requests {
        c.sender().assert_drained();
        c.sender().requests()
    }

    pub fn ensure_project_exists() -> Requests {
        let c = client(FakeHarbor::default().then(response(200)));
        block_on(c.ensure_project()).unwrap();
        assert_eq!(c.sender().lines(), ["HEAD /projects?project_name=catalog"]);
        let r = &c.sender().requests()[0];
        let auth = r
            .headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.as_str());
        // base64("robot$catalog-svc:Harbor12345-secret")
        assert_eq!(
            auth,
            Some("Basic cm9ib3QkY2F0YWxvZy1zdmM6SGFyYm9yMTIzNDUtc2VjcmV0")
        );
        assert!(r.body.is_empty());
        assert!(
            !r.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        );
        done(c)
    }

    pub fn ensure_project_creates_on_404() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(response(404))
                .then(created("/api/v2.0/projects/5")),
        );
        block_on(c.ensure_project()).unwrap();
        assert_eq!(
            c.sender().lines(),
            ["HEAD /projects?project_name=catalog", "POST /projects"]
        );
        let post = &c.sender().requests()[1];
        assert_eq!(
            body_json(post),
            json!({"project_name": "catalog", "metadata": {"public": "false"}})
        );
        assert!(
            post.headers
                .contains(&("content-type".into(), "application/json".into()))
        );
        done(c)
    }

    pub fn ensure_project_conflict_is_success() -> Requests {
        let c = client(FakeHarbor::default().then(response(404)).then(error(
            409,
            "CONFLICT",
            "The project named catalog already exists",
        )));
        block_on(c.ensure_project()).unwrap();
        done(c)
    }

    pub fn ensure_project_forbidden() -> Requests {
        let c = client(FakeHarbor::default().then(response(404)).then(error(
            403,
            "FORBIDDEN",
            "Only system level robot can create project",
        )));
        let e = block_on(c.ensure_project()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Harbor refused the request (403 FORBIDDEN): Only system level robot can create project"
        );
        done(c)
    }

    pub fn ensure_project_unauthorized() -> Requests {
        // HEAD has no body: the status line is all there is.
        let c = client(FakeHarbor::default().then(response(401)));
        let e = block_on(c.ensure_project()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Harbor refused the request (401 UNAUTHORIZED): Unauthorized"
        );
        assert_eq!(c.sender().lines().len(), 1);
        done(c)
    }

    pub fn ensure_registry_reuses_a_match() -> Requests {
        let c = client(FakeHarbor::default().then(page(
            json!([
                registry_json(
                    2,
                    "hub-mirror",
                    "docker-hub",
                    "https://mirror.example.com",
                    ""
                ),
                registry_json(3, "dockerhub", "docker-hub", "https://hub.docker.com/", ""),
            ]),
            2,
            None,
        )));
        let id = block_on(c.ensure_registry(&SourceRegistry::for_host("docker.io"))).unwrap();
        assert_eq!(id, 3);
        assert_eq!(
            c.sender().lines(),
            ["GET /registries?q=type%3Ddocker-hub&page=1&page_size=100"]
        );
        done(c)
    }

    pub fn ensure_registry_pages_through() -> Requests {
        let next =
            "</api/v2.0/registries?page=2&page_size=100&q=type=docker-registry>; rel=\"next\"";
        let prev =
            "</api/v2.0/registries?page=1&page_size=100&q=type=docker-registry>; rel=\"prev\"";
        let c = client(
            FakeHarbor::default()
                .then(page(
                    json!([registry_json(
                        4,
                        "quay.io",
                        "docker-registry",
                        "https://quay.io",
                        ""
                    )]),
                    2,
                    Some(next),
                ))
                .then(page(
                    json!([registry_json(
                        6,
                        "nvcr",
                        "docker-registry",
                        "https://NVCR.io",
                        "$oauthtoken"
                    )]),
                    2,
                    Some(prev),
                )),
        );
        let source = SourceRegistry::for_host("nvcr.io").with_credential("$oauthtoken", "nvapi-x");
        assert_eq!(block_on(c.ensure_registry(&source)).unwrap(), 6);
        assert_eq!(
            c.sender().lines(),
            [
                "GET /registries?q=type%3Ddocker-registry&page=1&page_size=100",
                "GET /registries?q=type%3Ddocker-registry&page=2&page_size=100"
            ]
        );
        done(c)
    }

    pub fn ensure_registry_prefers_the_same_access_key() -> Requests {
        let c = client(FakeHarbor::default().then(page(
            json!([
                registry_json(3, "dockerhub", "docker-hub", "https://hub.docker.com", ""),
                registry_json(
                    8,
                    "dockerhub-auth",
                    "docker-hub",
                    "https://hub.docker.com",
                    "berth"
                ),
            ]),
            2,
            None,
        )));
        let source = SourceRegistry::for_host("docker.io").with_credential("berth", "dckr_pat_x");
        assert_eq!(block_on(c.ensure_registry(&source)).unwrap(), 8);
        done(c)
    }

    pub fn ensure_registry_creates_when_missing() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(page(json!([]), 0, None))
                .then(created("/api/v2.0/registries/5")),
        );
        let source = SourceRegistry::for_host("nvcr.io").with_credential("$oauthtoken", "nvapi-x");
        assert_eq!(block_on(c.ensure_registry(&source)).unwrap(), 5);
        assert_eq!(
            c.sender().lines(),
            [
                "GET /registries?q=type%3Ddocker-registry&page=1&page_size=100",
                "POST /registries"
            ]
        );
        assert_eq!(
            body_json(&c.sender().requests()[1]),
            json!({"name": "nvcr.io", "type": "docker-registry", "url": "https://nvcr.io",
                   "insecure": false, "description": "Import source managed by berth",
                   "credential": {"type": "basic", "access_key": "$oauthtoken",
                                  "access_secret": "nvapi-x"}})
        );
        done(c)
    }

    pub fn ensure_registry_conflict_relists_by_name() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(page(json!([]), 0, None))
                .then(error(409, "CONFLICT", "registry dockerhub already exists"))
                .then(page(
                    json!([registry_json(
                        3,
                        "dockerhub",
                        "docker-hub",
                        "https://hub.docker.com",
                        ""
                    )]),
                    1,
                    None,
                )),
        );
        let id = block_on(c.ensure_registry(&SourceRegistry::for_host("docker.io"))).unwrap();
        assert_eq!(id, 3);
        assert_eq!(
            c.sender().lines(),
            [
                "GET /registries?q=type%3Ddocker-hub&page=1&page_size=100",
                "POST /registries",
                "GET /registries?q=name%3Ddockerhub&page=1&page_size=100"
            ]
        );
        done(c)
    }

    pub fn ensure_registry_conflict_with_other_endpoint() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(page(json!([]), 0, None))
                .then(error(409, "CONFLICT", "registry nvcr.io already exists"))
                .then(page(
                    json!([registry_json(
                        9,
                        "nvcr.io",
                        "harbor",
                        "https://nvcr.example.com",
                        ""
                    )]),
                    1,
                    None,
                )),
        );
        let e = block_on(c.ensure_registry(&SourceRegistry::for_host("nvcr.io"))).unwrap_err();
        assert!(e.is_conflict());
        assert_eq!(
            e.to_string(),
            "Harbor refused the request (409 CONFLICT): a registry named nvcr.io already exists \
             for harbor https://nvcr.example.com, not docker-registry https://nvcr.io"
        );
        done(c)
    }

    pub fn ensure_registry_unhealthy() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(page(json!([]), 0, None))
                .then(error(400, "BAD_REQUEST", "the registry is unhealthy")),
        );
        let e =
            block_on(c.ensure_registry(&SourceRegistry::for_host("registry.k8s.io"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Harbor refused the request (400 BAD_REQUEST): the registry is unhealthy"
        );
        assert!(!e.is_retryable());
        done(c)
    }

    pub fn ensure_policy_creates_when_missing() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(page(json!([]), 0, None))
                .then(created("/api/v2.0/replication/policies/7")),
        );
        assert_eq!(block_on(c.ensure_pull_policy(&nginx_spec())).unwrap(), 7);
        assert_eq!(
            c.sender().lines(),
            [
                "GET /replication/policies?q=name%3Dimport-docker.io-library-nginx-1.25&page=1&page_size=100",
                "POST /replication/policies"
            ]
        );
        assert_eq!(
            body_json(&c.sender().requests()[1]),
            nginx_spec().body("catalog")
        );
        done(c)
    }

    pub fn ensure_policy_keeps_an_identical_policy() -> Requests {
        let c = client(FakeHarbor::default().then(page(json!([nginx_policy_json()]), 1, None)));
        assert_eq!(block_on(c.ensure_pull_policy(&nginx_spec())).unwrap(), 7);
        assert_eq!(c.sender().lines().len(), 1);
        done(c)
    }

    pub fn ensure_policy_puts_on_drift() -> Requests {
        let mut stale = nginx_policy_json();
        stale["filters"][1]["value"] = json!("1.24");
        stale.as_object_mut().unwrap().remove("override");
        let c = client(
            FakeHarbor::default()
                .then(page(json!([stale]), 1, None))
                .then(response(200)),
        );
        assert_eq!(block_on(c.ensure_pull_policy(&nginx_spec())).unwrap(), 7);
        assert_eq!(c.sender().lines()[1], "PUT /replication/policies/7");
        assert_eq!(
            body_json(&c.sender().requests()[1]),
            nginx_spec().body("catalog")
        );
        done(c)
    }

    pub fn ensure_policy_conflict_relists() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(page(json!([]), 0, None))
                .then(error(
                    409,
                    "CONFLICT",
                    "replication policy import-docker.io-library-nginx-1.25 already exists",
                ))
                .then(page(json!([nginx_policy_json()]), 1, None)),
        );
        assert_eq!(block_on(c.ensure_pull_policy(&nginx_spec())).unwrap(), 7);
        assert_eq!(c.sender().lines().len(), 3);
        done(c)
    }

    pub fn start_execution_reads_location() -> Requests {
        let c = client(FakeHarbor::default().then(created("/api/v2.0/replication/executions/42")));
        assert_eq!(block_on(c.start_execution(7)).unwrap(), 42);
        assert_eq!(c.sender().lines(), ["POST /replication/executions"]);
        assert_eq!(
            body_json(&c.sender().requests()[0]),
            json!({"policy_id": 7})
        );
        done(c)
    }

    pub fn start_execution_without_location() -> Requests {
        let c = client(FakeHarbor::default().then(response(201)));
        let e = block_on(c.start_execution(7)).unwrap_err();
        assert!(matches!(e, HarborError::Protocol(_)));
        assert_eq!(
            e.to_string(),
            "Harbor sent a response berth does not understand: Harbor created the replication \
             execution but sent no Location header with its id"
        );
        done(c)
    }

    pub fn start_execution_disabled_policy() -> Requests {
        let c = client(FakeHarbor::default().then(error(
            412,
            "PRECONDITION",
            "the policy 7 is disabled",
        )));
        let e = block_on(c.start_execution(7)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Harbor refused the request (412 PRECONDITION): the policy 7 is disabled"
        );
        done(c)
    }

    pub fn execution_polls_and_decides() -> Requests {
        let running = json!({"id": 42, "policy_id": 7, "status": "InProgress", "trigger": "manual",
            "status_text": "", "start_time": "2025-01-10T08:00:00.000Z",
            "end_time": "0001-01-01T00:00:00.000Z",
            "total": 1, "succeed": 0, "failed": 0, "in_progress": 1, "stopped": 0});
        let mut counted = running.clone();
        counted["succeed"] = json!(1);
        counted["in_progress"] = json!(0);
        let c = client(
            FakeHarbor::default()
                .then(json(200, running))
                .then(json(200, counted)),
        );
        let e = block_on(c.execution(42)).unwrap();
        assert_eq!(e.status, ExecutionStatus::InProgress);
        assert_eq!(e.end_time, None);
        assert!(!e.is_finished());
        assert_eq!(e.outcome(), None);
        let e = block_on(c.execution(42)).unwrap();
        assert_eq!(e.status, ExecutionStatus::InProgress);
        assert!(e.is_finished());
        assert_eq!(e.outcome(), Some(ExecutionOutcome::Imported));
        assert_eq!(
            c.sender().lines(),
            [
                "GET /replication/executions/42",
                "GET /replication/executions/42"
            ]
        );
        done(c)
    }

    pub fn stop_execution_ignores_the_body() -> Requests {
        let mut r = response(200);
        r.body = b"null".to_vec();
        let c = client(FakeHarbor::default().then(r).then(error(
            404,
            "NOT_FOUND",
            "replication execution 43 not found",
        )));
        block_on(c.stop_execution(42)).unwrap();
        assert!(block_on(c.stop_execution(43)).unwrap_err().is_not_found());
        assert_eq!(c.sender().lines()[0], "PUT /replication/executions/42");
        assert!(c.sender().requests()[0].body.is_empty());
        done(c)
    }

    pub fn tasks_page_through() -> Requests {
        let task = |id: i64, status: &str| {
            json!({"id": id, "execution_id": 42, "status": status, "job_id": "6f1c2d3e4b5a69788796a5b4",
                   "operation": "copy", "resource_type": "image",
                   "src_resource": "library/nginx [1 item(s) in total]",
                   "dst_resource": "catalog/nginx [1 item(s) in total]",
                   "start_time": "2025-01-10T08:00:03.000Z", "end_time": "2025-01-10T08:01:59.000Z"})
        };
        // No Link header: X-Total-Count alone says there is more.
        let c = client(
            FakeHarbor::default()
                .then(page(json!([task(101, "Succeed")]), 2, None))
                .then(page(json!([task(102, "Failed")]), 2, None)),
        );
        let tasks = block_on(c.tasks(42)).unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].id, 101);
        assert_eq!(tasks[1].status, "Failed");
        assert_eq!(Task::resource_name(&tasks[0].dst_resource), "catalog/nginx");
        assert_eq!(
            c.sender().lines(),
            [
                "GET /replication/executions/42/tasks?page=1&page_size=100",
                "GET /replication/executions/42/tasks?page=2&page_size=100"
            ]
        );
        done(c)
    }

    pub fn artifact_index_for_nested_repository() -> Requests {
        let c = client(FakeHarbor::default().then(json(200, index_json())));
        let a = block_on(c.artifact("nvidia/pytorch", "24.01-py3")).unwrap();
        assert_eq!(
            c.sender().lines(),
            [
                "GET /projects/catalog/repositories/nvidia%252Fpytorch/artifacts/24.01-py3?with_tag=true"
            ]
        );
        assert!(a.is_index());
        assert_eq!(a.digest, digest('1'));
        assert_eq!(a.size, 143512345);
        assert_eq!(a.tags, ["24.01-py3"]);
        assert_eq!(a.architecture, None);
        assert_eq!(
            a.platforms,
            vec![
                Platform {
                    digest: digest('a'),
                    architecture: "amd64".into(),
                    os: "linux".into(),
                    variant: None,
                    size: None
                },
                Platform {
                    digest: digest('b'),
                    architecture: "arm64".into(),
                    os: "linux".into(),
                    variant: Some("v8".into()),
                    size: None
                },
            ]
        );
        done(c)
    }

    pub fn artifact_single_manifest() -> Requests {
        let d = digest('a');
        let c = client(FakeHarbor::default().then(json(200, child_json(&d, "amd64", 71234567))));
        let a = block_on(c.artifact("nginx", &d)).unwrap();
        assert_eq!(
            c.sender().lines(),
            [format!(
                "GET /projects/catalog/repositories/nginx/artifacts/{d}?with_tag=true"
            )]
        );
        assert!(!a.is_index());
        assert_eq!(
            (a.architecture.as_deref(), a.os.as_deref()),
            (Some("amd64"), Some("linux"))
        );
        assert!(a.tags.is_empty());
        done(c)
    }

    pub fn artifact_not_found() -> Requests {
        let c = client(FakeHarbor::default().then(error(
            404,
            "NOT_FOUND",
            "artifact catalog/nginx:1.26 not found",
        )));
        let e = block_on(c.artifact("nginx", "1.26")).unwrap_err();
        assert!(e.is_not_found());
        done(c)
    }

    pub fn fill_platform_sizes_reads_children() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(json(200, index_json()))
                .then(json(200, child_json(&digest('a'), "amd64", 1000)))
                .then(json(200, child_json(&digest('b'), "arm64", 2000))),
        );
        let mut a = block_on(c.artifact("nvidia/pytorch", "24.01-py3")).unwrap();
        block_on(c.fill_platform_sizes("nvidia/pytorch", &mut a)).unwrap();
        let sizes: Vec<_> = a.platforms.iter().map(|p| p.size).collect();
        assert_eq!(sizes, [Some(1000), Some(2000)]);
        assert_eq!(
            c.sender().lines()[2],
            format!(
                "GET /projects/catalog/repositories/nvidia%252Fpytorch/artifacts/{}?with_tag=false",
                digest('b')
            )
        );
        done(c)
    }

    pub fn artifact_details_read_config_and_scan() -> Requests {
        let d = digest('a');
        let mut body = child_json(&d, "amd64", 1000);
        body["extra_attrs"]["config"] =
            json!({"Env": ["PYTORCH_VERSION=2.0.0"], "Labels": {"maintainer": "x"}});
        body["scan_overview"] = json!({"application/vnd.security.vulnerability.report; version=1.1": {
            "scan_status": "Success", "severity": "Low",
            "summary": {"total": 1, "fixable": 0, "summary": {"Low": 1}}}});
        let c = client(FakeHarbor::default().then(json(200, body)));
        let details = block_on(c.artifact_details("pytorch/pytorch", &d)).unwrap();
        assert_eq!(
            c.sender().lines(),
            [format!(
                "GET /projects/catalog/repositories/pytorch%252Fpytorch/artifacts/{d}?with_tag=false&with_scan_overview=true"
            )]
        );
        assert_eq!(details.size, 1000);
        assert_eq!(details.config.unwrap().env, ["PYTORCH_VERSION=2.0.0"]);
        let scan = details.scan.unwrap();
        assert_eq!((scan.severity.as_str(), scan.total), ("Low", 1));
        done(c)
    }

    pub fn scan_artifact_asks_harbor() -> Requests {
        let d = digest('a');
        let c = client(FakeHarbor::default().then(response(202)));
        block_on(c.scan_artifact("pytorch/pytorch", &d)).unwrap();
        assert_eq!(
            c.sender().lines(),
            [format!(
                "POST /projects/catalog/repositories/pytorch%252Fpytorch/artifacts/{d}/scan"
            )]
        );
        done(c)
    }

    pub fn delete_artifact_outcomes() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(response(200))
                .then(error(
                    404,
                    "NOT_FOUND",
                    "artifact catalog/nginx:1.26 not found",
                ))
                .then(error(
                    412,
                    "VIOLATE_FOREIGN_KEY_CONSTRAINT",
                    "the deleting artifact is referenced by others",
                )),
        );
        assert_eq!(
            block_on(c.delete_artifact("nginx", "1.25")).unwrap(),
            DeleteOutcome::Deleted
        );
        assert_eq!(
            block_on(c.delete_artifact("nginx", "1.26")).unwrap(),
            DeleteOutcome::NotFound
        );
        let e = block_on(c.delete_artifact("nvidia/pytorch", &digest('a'))).unwrap_err();
        assert_eq!(e.status(), Some(412));
        assert_eq!(
            c.sender().lines()[0],
            "DELETE /projects/catalog/repositories/nginx/artifacts/1.25"
        );
        done(c)
    }

    pub fn statistics_for_a_robot() -> Requests {
        // Zero values are present here (x-omitempty: false), but a missing one reads as 0.
        let c = client(FakeHarbor::default().then(json(
            200,
            json!({"private_project_count": 0, "private_repo_count": 0,
                   "public_project_count": 1, "public_repo_count": 3,
                   "total_project_count": 0, "total_repo_count": 0}),
        )));
        let s = block_on(c.statistics()).unwrap();
        assert_eq!(
            s,
            Statistics {
                public_project_count: 1,
                public_repo_count: 3,
                ..Statistics::default()
            }
        );
        assert_eq!(c.sender().lines(), ["GET /statistics"]);
        done(c)
    }

    pub fn webhook_creates_when_missing() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(page(json!([]), 0, None))
                .then(created("/api/v2.0/projects/catalog/webhook/policies/3")),
        );
        let id =
            block_on(c.ensure_webhook_policy("berth-events", HOOK, HOOK_AUTH, &EVENTS)).unwrap();
        assert_eq!(id, 3);
        assert_eq!(
            c.sender().lines(),
            [
                "GET /projects/catalog/webhook/policies?q=name%3Dberth-events&page=1&page_size=100",
                "POST /projects/catalog/webhook/policies"
            ]
        );
        let post = &c.sender().requests()[1];
        assert!(
            post.headers
                .contains(&("x-is-resource-name".into(), "true".into()))
        );
        assert_eq!(
            body_json(post),
            json!({"name": "berth-events", "description": "Harbor events for berth",
                   "targets": [{"type": "http", "address": HOOK, "auth_header": HOOK_AUTH,
                                "skip_cert_verify": false, "payload_format": "Default"}],
                   "event_types": EVENTS, "enabled": true, "creator": "robot$catalog-svc"})
        );
        done(c)
    }

    pub fn webhook_keeps_a_matching_policy() -> Requests {
        let mut events = EVENTS;
        events.reverse();
        let c = client(FakeHarbor::default().then(page(
            json!([webhook_json(HOOK, HOOK_AUTH, &events)]),
            1,
            None,
        )));
        let id =
            block_on(c.ensure_webhook_policy("berth-events", HOOK, HOOK_AUTH, &EVENTS)).unwrap();
        assert_eq!(id, 3);
        assert_eq!(c.sender().lines().len(), 1);
        done(c)
    }

    pub fn webhook_puts_on_drift() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(page(
                    json!([webhook_json(HOOK, "Bearer old", &EVENTS)]),
                    1,
                    None,
                ))
                .then(response(200)),
        );
        let id =
            block_on(c.ensure_webhook_policy("berth-events", HOOK, HOOK_AUTH, &EVENTS)).unwrap();
        assert_eq!(id, 3);
        assert_eq!(
            c.sender().lines()[1],
            "PUT /projects/catalog/webhook/policies/3"
        );
        assert_eq!(
            body_json(&c.sender().requests()[1])["targets"][0]["auth_header"],
            HOOK_AUTH
        );
        done(c)
    }

    pub fn webhook_conflict_relists() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then(page(json!([]), 0, None))
                .then(error(
                    409,
                    "CONFLICT",
                    "notification policy named berth-events already exists",
                ))
                .then(page(
                    json!([webhook_json(HOOK, HOOK_AUTH, &EVENTS)]),
                    1,
                    None,
                )),
        );
        let id =
            block_on(c.ensure_webhook_policy("berth-events", HOOK, HOOK_AUTH, &EVENTS)).unwrap();
        assert_eq!(id, 3);
        done(c)
    }

    pub fn unreachable_harbor() -> Requests {
        let c = client(
            FakeHarbor::default()
                .then_fail("connection refused")
                .then_fail(&format!("proxy said: bad credentials {PASSWORD}")),
        );
        let e = block_on(c.statistics()).unwrap_err();
        assert_eq!(e, HarborError::Unreachable("connection refused".into()));
        assert!(e.is_retryable());
        let e = block_on(c.statistics()).unwrap_err();
        assert!(!e.to_string().contains(PASSWORD), "{e}");
        assert!(!format!("{e:?}").contains(PASSWORD));
        assert!(!format!("{c:?}").contains(PASSWORD));
        done(c)
    }

    pub fn request_id_on_every_request() -> Requests {
        let c = HarborClient::new(
            FakeHarbor::default()
                .then(response(200))
                .then(json(200, json!({}))),
            config(),
        )
        .with_request_id("req-123");
        block_on(c.ensure_project()).unwrap();
        // An empty body reads as zeros (CONTRACT §0.5).
        assert_eq!(block_on(c.statistics()).unwrap(), Statistics::default());
        for r in c.sender().requests() {
            assert!(
                r.headers
                    .contains(&("x-request-id".into(), "req-123".into()))
            );
        }
        done(c)
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

//! Scenarios of projects, registry endpoints, replication policies and executions.

use super::super::*;
use super::{Requests, done};

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
    let next = "</api/v2.0/registries?page=2&page_size=100&q=type=docker-registry>; rel=\"next\"";
    let prev = "</api/v2.0/registries?page=1&page_size=100&q=type=docker-registry>; rel=\"prev\"";
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
    let e = block_on(c.ensure_registry(&SourceRegistry::for_host("registry.k8s.io"))).unwrap_err();
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
    let c =
        client(FakeHarbor::default().then(error(412, "PRECONDITION", "the policy 7 is disabled")));
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

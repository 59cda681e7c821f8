//! Scenarios of artifacts, scans, statistics, webhook policies and transport failures.

use super::super::*;
use super::{Requests, done};

pub fn artifact_index_for_nested_repository() -> Requests {
    let c = client(FakeHarbor::default().then(json(200, index_json())));
    let a = block_on(c.artifact("nvidia/pytorch", "24.01-py3")).unwrap();
    assert_eq!(
        c.sender().lines(),
        ["GET /projects/catalog/repositories/nvidia%252Fpytorch/artifacts/24.01-py3?with_tag=true"]
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
    let id = block_on(c.ensure_webhook_policy("berth-events", HOOK, HOOK_AUTH, &EVENTS)).unwrap();
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
    let id = block_on(c.ensure_webhook_policy("berth-events", HOOK, HOOK_AUTH, &EVENTS)).unwrap();
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
    let id = block_on(c.ensure_webhook_policy("berth-events", HOOK, HOOK_AUTH, &EVENTS)).unwrap();
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
    let id = block_on(c.ensure_webhook_policy("berth-events", HOOK, HOOK_AUTH, &EVENTS)).unwrap();
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

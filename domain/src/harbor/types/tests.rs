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

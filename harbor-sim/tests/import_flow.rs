//! The §8 import flow end to end over real HTTP, with a webhook receiver.

mod support;

use std::time::Duration;

use harbor_sim::UpstreamImage;
use serde_json::json;
use support::*;

#[tokio::test]
async fn single_arch_import_from_a_generic_registry() {
    let (sim, api, _) = start(opts()).await;
    let hooks = Receiver::start().await;
    sim.define_upstream(UpstreamImage {
        registry: Some("nvcr.io".into()),
        repository: "nvidia/pytorch".into(),
        tag: "24.01-py3".into(),
        size: Some(123_456_789),
        ..Default::default()
    });
    ensure_project(&api, "catalog").await;
    add_webhook(
        &api,
        "catalog",
        &hooks.url(),
        &["REPLICATION", "PUSH_ARTIFACT", "DELETE_ARTIFACT"],
    )
    .await;

    let reg = ensure_registry(
        &api,
        "nvcr",
        "docker-registry",
        "https://nvcr.io",
        json!({"type": "basic", "access_key": "$oauthtoken", "access_secret": "nvapi-xyz"}),
    )
    .await;
    // ensure-registry finds the existing one the second time
    assert_eq!(
        ensure_registry(
            &api,
            "nvcr",
            "docker-registry",
            "https://nvcr.io",
            json!({})
        )
        .await,
        reg
    );
    let r = api.get(&format!("/registries/{reg}")).await;
    let v = r.json();
    assert_eq!(v["credential"]["access_secret"], "*****");
    assert_eq!(v["credential"]["access_key"], "$oauthtoken");
    assert_eq!(v["status"], "healthy");
    assert!(v.get("insecure").is_none() && v.get("description").is_none());

    let body = policy_body(
        "import-nvcr-pytorch",
        reg,
        "nvidia/pytorch",
        "24.01-py3",
        "catalog",
        1,
    );
    let policy = ensure_policy(&api, body.clone()).await;
    // create-or-update: same name → PUT
    assert_eq!(ensure_policy(&api, body).await, policy);
    let p = api
        .get(&format!("/replication/policies/{policy}"))
        .await
        .json();
    assert_eq!(p["dest_registry"]["id"], 0);
    assert_eq!(p["dest_registry"]["name"], "Local");
    assert_eq!(p["src_registry"]["id"], reg);
    assert_eq!(p["dest_namespace_replace_count"], 1);
    assert_eq!(p["speed"], 0);
    assert_eq!(p["copy_by_chunk"], false);
    assert_eq!(p["single_active_replication"], false);
    assert!(p.get("description").is_none() && p.get("replicate_deletion").is_none());
    assert_eq!(p["filters"][1]["decoration"], "matches");
    assert_eq!(p["trigger"], json!({"type": "manual"}));

    let exec = start_execution(&api, policy).await;
    let first = api
        .get(&format!("/replication/executions/{exec}"))
        .await
        .json();
    assert_eq!(first["status"], "InProgress");
    assert_eq!(first["end_time"], "0001-01-01T00:00:00.000Z");
    assert_eq!(first["status_text"], "");
    assert_eq!(first["total"], 0);
    let done = wait_execution(&api, exec).await;
    assert_eq!(done["status"], "Succeed", "{done}");
    assert_eq!(
        (
            done["total"].as_i64(),
            done["succeed"].as_i64(),
            done["in_progress"].as_i64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(done["trigger"], "manual");
    assert!(done["end_time"].as_str().unwrap().ends_with('Z'));
    assert_ne!(done["end_time"], "0001-01-01T00:00:00.000Z");

    let tasks = api
        .get(&format!("/replication/executions/{exec}/tasks"))
        .await;
    assert_eq!(tasks.header("X-Total-Count").as_deref(), Some("1"));
    let t = &tasks.json()[0];
    assert_eq!(t["status"], "Succeed");
    assert_eq!(t["operation"], "copy");
    assert_eq!(t["resource_type"], "image");
    assert_eq!(t["src_resource"], "nvidia/pytorch [1 item(s) in total]");
    assert_eq!(t["dst_resource"], "catalog/pytorch [1 item(s) in total]");
    assert_eq!(t["job_id"].as_str().unwrap().len(), 24);

    let a = api
        .get("/projects/catalog/repositories/pytorch/artifacts/24.01-py3?with_tag=true")
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = a.json();
    assert_eq!(a["size"], 123_456_789);
    assert_eq!(a["type"], "IMAGE");
    assert_eq!(
        a["manifest_media_type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        a["media_type"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(a["extra_attrs"]["architecture"], "amd64");
    assert_eq!(a["extra_attrs"]["os"], "linux");
    assert_eq!(a["repository_name"], "catalog/pytorch");
    assert_eq!(a["pull_time"], "0001-01-01T00:00:00.000Z");
    assert_eq!(a["tags"][0]["name"], "24.01-py3");
    assert_eq!(a["tags"][0]["immutable"], false);
    assert!(a.get("references").is_none());
    assert_eq!(a["addition_links"]["build_history"]["absolute"], false);
    let push_time = a["push_time"].as_str().unwrap();
    assert_eq!(
        push_time.len(),
        "2025-01-10T08:01:58.123Z".len(),
        "{push_time}"
    );
    let digest = a["digest"].as_str().unwrap().to_string();
    // by digest too, and deterministic across simulators
    let b = api
        .get(&format!(
            "/projects/catalog/repositories/pytorch/artifacts/{digest}"
        ))
        .await;
    assert_eq!(b.json()["digest"], digest.as_str());

    // webhooks: REPLICATION Running then Success, one PUSH_ARTIFACT by tag
    let got = hooks
        .wait("replication success", |h| {
            h.iter()
                .any(|h| h.body["event_data"]["replication"]["job_status"] == "Success")
                && h.iter().any(|h| h.body["type"] == "PUSH_ARTIFACT")
        })
        .await;
    let rep: Vec<_> = got
        .iter()
        .filter(|h| h.body["type"] == "REPLICATION")
        .collect();
    let statuses: Vec<_> = rep
        .iter()
        .map(|h| {
            h.body["event_data"]["replication"]["job_status"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(
        statuses.contains(&"Running") && statuses.contains(&"Success"),
        "{statuses:?}"
    );
    let success = rep
        .iter()
        .find(|h| h.body["event_data"]["replication"]["job_status"] == "Success")
        .unwrap();
    assert_eq!(success.headers["authorization"], "Bearer s3cr3t");
    assert_eq!(success.headers["content-type"], "application/json");
    assert!(
        success
            .raw
            .starts_with("{\"type\":\"REPLICATION\",\"occur_at\":")
    );
    let r = &success.body["event_data"]["replication"];
    assert_eq!(success.body["operator"], "admin");
    assert_eq!(r["harbor_hostname"], "harbor.local");
    assert_eq!(r["artifact_type"], "image");
    assert_eq!(r["authentication_type"], "basic");
    assert_eq!(r["override_mode"], true);
    assert_eq!(r["trigger_type"], "MANUAL");
    assert_eq!(r["policy_creator"], "admin");
    assert_eq!(
        r["src_resource"],
        json!({"registry_name":"nvcr","registry_type":"docker-registry","endpoint":"https://nvcr.io","namespace":"nvidia"})
    );
    assert_eq!(
        r["dest_resource"],
        json!({"registry_type":"harbor","endpoint":"https://harbor.local","namespace":"catalog"})
    );
    assert_eq!(
        r["successful_artifact"],
        json!([{"type":"image","status":"Success","name_tag":"pytorch [1 item(s) in total]","references":["24.01-py3"]}])
    );
    assert_eq!(r["execution_id"], exec);
    assert!(r.get("failed_artifact").is_none() && r.get("description").is_none());
    let running = rep
        .iter()
        .find(|h| h.body["event_data"]["replication"]["job_status"] == "Running")
        .unwrap();
    assert!(
        running.body["event_data"]["replication"]
            .get("successful_artifact")
            .is_none()
    );
    let push = got
        .iter()
        .find(|h| h.body["type"] == "PUSH_ARTIFACT")
        .unwrap();
    assert_eq!(push.body["operator"], "harbor-jobservice");
    assert_eq!(
        push.body["event_data"]["resources"],
        json!([{"digest": digest, "tag": "24.01-py3", "resource_url": "harbor.local/catalog/pytorch:24.01-py3"}])
    );
    let repo = &push.body["event_data"]["repository"];
    assert_eq!(repo["name"], "pytorch");
    assert_eq!(repo["namespace"], "catalog");
    assert_eq!(repo["repo_full_name"], "catalog/pytorch");
    assert_eq!(repo["repo_type"], "private");
    assert!(repo["date_created"].as_i64().unwrap() > 1_700_000_000);

    // statistics as a system admin
    let s = api.get("/statistics").await.json();
    assert_eq!(s["total_project_count"], 2); // library + catalog
    assert_eq!(s["public_project_count"], 1);
    assert_eq!(s["private_project_count"], 1);
    assert_eq!(s["total_repo_count"], 1);
    assert_eq!(s["private_repo_count"], 1);
    assert_eq!(s["public_repo_count"], 0);
    assert_eq!(s["total_storage_consumption"], 123_456_789);

    // the repository
    let repo = api
        .get("/projects/catalog/repositories/pytorch")
        .await
        .json();
    assert_eq!(repo["name"], "catalog/pytorch");
    assert_eq!(repo["artifact_count"], 1);
    assert_eq!(repo["pull_count"], 0);

    // the request log records what berth sent
    let st = sim.state();
    assert!(st.requests.iter().any(|r| r.method == "HEAD"
        && r.path == "/api/v2.0/projects"
        && r.query.as_deref() == Some("project_name=catalog")
        && r.status == Some(404)));
    assert!(st.requests.iter().any(|r| r.method == "POST"
        && r.path == "/api/v2.0/replication/executions"
        && r.body == Some(json!({"policy_id": policy}))));
    assert_eq!(st.executions[0].status, "Succeed");
    assert_eq!(st.artifacts[0].tags, vec!["24.01-py3".to_string()]);
}

#[tokio::test]
async fn multi_arch_import_then_reimport_and_delete() {
    let (sim, api, _) = start(opts()).await;
    let hooks = Receiver::start().await;
    ensure_project(&api, "catalog").await;
    add_webhook(
        &api,
        "catalog",
        &hooks.url(),
        &["REPLICATION", "PUSH_ARTIFACT", "DELETE_ARTIFACT"],
    )
    .await;
    let (exec, done) = import(
        &api,
        "dockerhub",
        "docker-hub",
        "https://hub.docker.com",
        "library/nginx",
        "1.25",
        "catalog",
        1,
    )
    .await;
    assert_eq!(done["status"], "Succeed", "{done}");

    let a = api
        .get("/projects/catalog/repositories/nginx/artifacts/1.25?with_tag=true")
        .await
        .json();
    assert_eq!(
        a["manifest_media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(a["media_type"], a["manifest_media_type"]);
    assert!(a.get("extra_attrs").is_none() && a.get("artifact_type").is_none());
    let refs = a["references"].as_array().unwrap();
    assert_eq!(refs.len(), 3);
    assert_eq!(
        refs[0]["platform"],
        json!({"architecture":"amd64","os":"linux"})
    );
    assert_eq!(
        refs[1]["platform"],
        json!({"architecture":"arm64","os":"linux","variant":"v8"})
    );
    assert_eq!(
        refs[2]["platform"],
        json!({"architecture":"unknown","os":"unknown"})
    );
    assert_eq!(
        refs[2]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        refs[2]["annotations"]["vnd.docker.reference.digest"],
        refs[0]["child_digest"]
    );
    assert_eq!(refs[0]["parent_id"], a["id"]);

    // size of an index = sum of children + index length
    let mut children = 0;
    for r in refs {
        let c = api
            .get(&format!(
                "/projects/catalog/repositories/nginx/artifacts/{}",
                r["child_digest"].as_str().unwrap()
            ))
            .await
            .json();
        assert!(c.get("tags").is_none());
        children += c["size"].as_i64().unwrap();
        assert_eq!(
            c["manifest_media_type"],
            "application/vnd.oci.image.manifest.v1+json"
        );
    }
    let index_len = a["size"].as_i64().unwrap() - children;
    assert!(index_len > 300 && index_len < 2000, "{index_len}");

    // list hides untagged children unless q=base=*
    let l = api
        .get("/projects/catalog/repositories/nginx/artifacts")
        .await;
    assert_eq!(l.header("X-Total-Count").as_deref(), Some("1"));
    let l = api
        .get("/projects/catalog/repositories/nginx/artifacts?q=base%3D*")
        .await;
    assert_eq!(l.header("X-Total-Count").as_deref(), Some("4"));

    // PUSH_ARTIFACT: children by digest first, the tagged index last
    let got = hooks
        .wait("4 pushes + success", |h| {
            h.iter()
                .filter(|h| h.body["type"] == "PUSH_ARTIFACT")
                .count()
                == 4
                && h.iter()
                    .any(|h| h.body["event_data"]["replication"]["job_status"] == "Success")
        })
        .await;
    let pushes: Vec<_> = got
        .iter()
        .filter(|h| h.body["type"] == "PUSH_ARTIFACT")
        .collect();
    for p in &pushes[..3] {
        let res = &p.body["event_data"]["resources"][0];
        assert_eq!(res["tag"], res["digest"]);
        assert!(
            res["resource_url"]
                .as_str()
                .unwrap()
                .starts_with("harbor.local/catalog/nginx@sha256:")
        );
    }
    let last = &pushes[3].body["event_data"]["resources"][0];
    assert_eq!(last["tag"], "1.25");
    assert_eq!(last["digest"], a["digest"]);
    assert_eq!(last["resource_url"], "harbor.local/catalog/nginx:1.25");
    let success = got
        .iter()
        .find(|h| h.body["event_data"]["replication"]["job_status"] == "Success")
        .unwrap();
    let r = &success.body["event_data"]["replication"];
    assert_eq!(r["src_resource"]["namespace"], "library");
    assert_eq!(r["src_resource"]["endpoint"], "https://hub.docker.com");
    assert!(r.get("authentication_type").is_none(), "anonymous registry");
    assert_eq!(
        r["successful_artifact"][0]["name_tag"],
        "nginx [1 item(s) in total]"
    );
    assert_eq!(r["execution_id"], exec);

    // anonymous registry renders credential {}
    let regs = api.get("/registries?q=name=dockerhub").await.json();
    assert_eq!(regs[0]["credential"], json!({}));

    // re-import of the unchanged tag pushes nothing (§4.5)
    let before = hooks.hooks().len();
    let policy = sim.state().policies[0].id;
    let exec2 = start_execution(&api, policy).await;
    assert_eq!(wait_execution(&api, exec2).await["status"], "Succeed");
    hooks
        .wait("second success", |h| {
            h.iter()
                .filter(|h| h.body["event_data"]["replication"]["job_status"] == "Success")
                .count()
                == 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after: Vec<_> = hooks.hooks()[before..].to_vec();
    assert!(
        after.iter().all(|h| h.body["type"] == "REPLICATION"),
        "{after:#?}"
    );

    // a child cannot be deleted
    let child = refs[0]["child_digest"].as_str().unwrap();
    let r = api
        .delete(&format!(
            "/projects/catalog/repositories/nginx/artifacts/{child}"
        ))
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(
        r.error(),
        (
            "VIOLATE_FOREIGN_KEY_CONSTRAINT".into(),
            "the deleting artifact is referenced by others".into()
        )
    );

    // delete the index by tag: artifact, tags and children go; one DELETE_ARTIFACT
    let r = api
        .delete("/projects/catalog/repositories/nginx/artifacts/1.25")
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = api
        .get("/projects/catalog/repositories/nginx/artifacts/1.25")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.error(),
        (
            "NOT_FOUND".into(),
            "artifact catalog/nginx:1.25 not found".into()
        )
    );
    let r = api
        .get(&format!(
            "/projects/catalog/repositories/nginx/artifacts/{child}"
        ))
        .await;
    assert_eq!(
        r.error().1,
        format!("artifact catalog/nginx@{child} not found")
    );
    let del = hooks
        .wait("delete", |h| {
            h.iter().any(|h| h.body["type"] == "DELETE_ARTIFACT")
        })
        .await;
    let del: Vec<_> = del
        .iter()
        .filter(|h| h.body["type"] == "DELETE_ARTIFACT")
        .collect();
    assert_eq!(del.len(), 1);
    assert_eq!(del[0].body["operator"], "admin");
    assert_eq!(del[0].body["event_data"]["resources"][0]["tag"], "1.25");
    assert_eq!(
        del[0].body["event_data"]["resources"][0]["digest"],
        a["digest"]
    );
    assert_eq!(
        del[0].body["event_data"]["repository"]["repo_full_name"],
        "catalog/nginx"
    );
    assert!(sim.state().artifacts.is_empty());

    // importing again pushes again
    let exec3 = start_execution(&api, policy).await;
    assert_eq!(wait_execution(&api, exec3).await["status"], "Succeed");
    let again = api
        .get("/projects/catalog/repositories/nginx/artifacts/1.25")
        .await
        .json();
    assert_eq!(again["digest"], a["digest"], "digests are deterministic");

    // repository delete: DELETE_ARTIFACT without date_created
    let r = api.delete("/projects/catalog/repositories/nginx").await;
    assert_eq!(r.status, 200);
    let got = hooks
        .wait("repo delete", |h| {
            h.iter()
                .filter(|h| h.body["type"] == "DELETE_ARTIFACT")
                .count()
                == 2
        })
        .await;
    let last_del = got
        .iter()
        .rev()
        .find(|h| h.body["type"] == "DELETE_ARTIFACT")
        .unwrap();
    assert!(
        last_del.body["event_data"]["repository"]
            .get("date_created")
            .is_none()
    );
    let r = api.get("/projects/catalog/repositories/nginx").await;
    assert_eq!(r.error().1, "repository catalog/nginx not found");
}

#[tokio::test]
async fn nothing_upstream_succeeds_with_zero_total_and_no_events() {
    let (_sim, api, _) = start(opts()).await;
    let hooks = Receiver::start().await;
    ensure_project(&api, "catalog").await;
    add_webhook(
        &api,
        "catalog",
        &hooks.url(),
        &["REPLICATION", "PUSH_ARTIFACT"],
    )
    .await;
    for tag in ["missing", "does-not-exist-1"] {
        let (_, done) = import(
            &api,
            "dockerhub",
            "docker-hub",
            "https://hub.docker.com",
            "library/nginx",
            tag,
            "catalog",
            1,
        )
        .await;
        assert_eq!(done["status"], "Succeed");
        assert_eq!(done["total"], 0);
        assert_eq!(done["status_text"], "no resources need to be replicated");
    }
    // Docker Hub needs the namespace in the name filter
    let (_, done) = import(
        &api,
        "dockerhub",
        "docker-hub",
        "https://hub.docker.com",
        "nginx",
        "1.25",
        "catalog",
        1,
    )
    .await;
    assert_eq!(done["total"], 0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(hooks.hooks().is_empty(), "{:#?}", hooks.hooks());
}

#[tokio::test]
async fn destination_naming_rules() {
    let (_sim, api, _) = start(opts()).await;
    for (repo, count, dest) in [
        ("library/nginx", 0, "library%252Fnginx"),
        ("nvidia/pytorch", -1, "pytorch"),
        ("a/b/c/img", 2, "c%252Fimg"),
    ] {
        let (_, done) = import(
            &api,
            "gen",
            "docker-registry",
            "https://registry.example.com",
            repo,
            "v1",
            "catalog",
            count,
        )
        .await;
        assert_eq!(done["status"], "Succeed", "{repo}: {done}");
        let r = api
            .get(&format!(
                "/projects/catalog/repositories/{dest}/artifacts/v1"
            ))
            .await;
        assert_eq!(r.status, 200, "{dest}: {}", r.text());
        let href = r.json()["addition_links"]["build_history"]["href"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            href.contains(&format!("/repositories/{dest}/artifacts/sha256:")),
            "{href}"
        );
    }
    // a count above the number of components fails the flow
    let (_, done) = import(
        &api,
        "gen",
        "docker-registry",
        "https://registry.example.com",
        "a/b/c/img",
        "v2",
        "catalog",
        4,
    )
    .await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["total"], 0);
    assert!(
        done["status_text"]
            .as_str()
            .unwrap()
            .contains("destination namespace replace count is 4"),
        "{done}"
    );
    // a missing destination project is created by the flow
    let (_, done) = import(
        &api,
        "gen",
        "docker-registry",
        "https://registry.example.com",
        "tools/jq",
        "1.7",
        "newproj",
        1,
    )
    .await;
    assert_eq!(done["status"], "Succeed");
}

#[tokio::test]
async fn override_semantics_and_multi_tag_policies() {
    let (sim, api, _) = start(opts()).await;
    ensure_project(&api, "catalog").await;
    let reg = ensure_registry(
        &api,
        "gen",
        "docker-registry",
        "https://r.example.com",
        json!({}),
    )
    .await;
    for tag in ["1.0", "1.1", "2.0"] {
        sim.define_upstream(UpstreamImage {
            repository: "team/app".into(),
            tag: tag.into(),
            ..Default::default()
        });
    }
    // a tag pattern covers the defined tags: one task, two items
    let mut body = policy_body("pattern", reg, "team/app", "1.*", "catalog", 1);
    body["override"] = json!(false);
    let policy = ensure_policy(&api, body.clone()).await;
    let exec = start_execution(&api, policy).await;
    let done = wait_execution(&api, exec).await;
    assert_eq!(done["total"], 1);
    let tasks = api
        .get(&format!("/replication/executions/{exec}/tasks"))
        .await
        .json();
    assert_eq!(tasks[0]["src_resource"], "team/app [2 item(s) in total]");
    let d10 = api
        .get("/projects/catalog/repositories/app/artifacts/1.0")
        .await
        .json()["digest"]
        .clone();

    // upstream changes; override:false keeps the old digest
    sim.define_upstream(UpstreamImage {
        repository: "team/app".into(),
        tag: "1.0".into(),
        revision: 1,
        ..Default::default()
    });
    let exec = start_execution(&api, policy).await;
    wait_execution(&api, exec).await;
    let now = api
        .get("/projects/catalog/repositories/app/artifacts/1.0")
        .await
        .json();
    assert_eq!(now["digest"], d10);
    // override:true moves the tag
    body["override"] = json!(true);
    ensure_policy(&api, body).await;
    let exec = start_execution(&api, policy).await;
    wait_execution(&api, exec).await;
    let now = api
        .get("/projects/catalog/repositories/app/artifacts/1.0")
        .await
        .json();
    assert_ne!(now["digest"], d10);
    // the old artifact stays, untagged
    let old = api
        .get(&format!(
            "/projects/catalog/repositories/app/artifacts/{}",
            d10.as_str().unwrap()
        ))
        .await
        .json();
    assert!(old.get("tags").is_none());
}

#[tokio::test]
async fn cloudevents_payload_format_and_health() {
    let (_sim, api, anon) = start(opts()).await;
    let hooks = Receiver::start().await;
    ensure_project(&api, "catalog").await;
    let r = api
        .post(
            "/projects/catalog/webhook/policies",
            json!({"name": "ce", "targets": [{"type": "http", "address": hooks.url(),
                   "payload_format": "CloudEvents"}],
                   "event_types": ["PUSH_ARTIFACT"], "enabled": true}),
        )
        .await;
    assert_eq!(r.status, 201);
    let (_, done) = import(
        &api,
        "gen",
        "docker-registry",
        "https://r.example.com",
        "team/app",
        "1.0",
        "catalog",
        1,
    )
    .await;
    assert_eq!(done["status"], "Succeed");
    let got = hooks.wait("push", |h| !h.is_empty()).await;
    assert_eq!(
        got[0].headers["content-type"],
        "application/cloudevents+json"
    );
    assert!(got[0].headers.get("authorization").is_none());
    let b = &got[0].body;
    assert_eq!(b["specversion"], "1.0");
    assert_eq!(b["type"], "harbor.artifact.pushed");
    assert_eq!(b["source"], "/projects/2/webhook/policies/1");
    assert_eq!(b["operator"], "harbor-jobservice");
    assert_eq!(b["data"]["resources"][0]["tag"], "1.0");
    assert_eq!(anon.get("/health").await.json()["status"], "healthy");
}

//! Error shapes, validation, pagination and encoding rules.

mod support;

use http::Method;
use serde_json::json;
use support::*;

#[tokio::test]
async fn unauthenticated_and_bad_credentials_get_401() {
    let (sim, _api, anon) = start(opts()).await;
    let wrong = Api::new(&sim.url(), Some(("admin", "wrong")));
    for api in [&anon, &wrong] {
        let r = api.get("/registries").await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.text(),
            "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"unauthorized\"}]}\n"
        );
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("application/json; charset=utf-8")
        );
        // a generated UUIDv4 request id
        let id = r.header("X-Request-ID").unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
    for path in [
        "/statistics",
        "/replication/policies",
        "/replication/executions/1",
        "/projects/library/webhook/policies",
        "/projects?project_name=library",
    ] {
        let r = if path.starts_with("/projects?") {
            anon.head(path).await
        } else {
            anon.get(path).await
        };
        assert_eq!(r.status, 401, "{path}");
    }
    let r = anon.post("/projects", json!({"project_name": "x"})).await;
    assert_eq!(r.status, 401);
    // public project content is readable anonymously; private is not
    assert_eq!(anon.get("/projects/library").await.status, 200);
    assert_eq!(
        anon.get("/projects/library/repositories/nginx/artifacts/1")
            .await
            .error()
            .1,
        "repository library/nginx not found"
    );
    assert_eq!(
        anon.get("/projects/nope/repositories/nginx").await.status,
        401
    );
    // the request log marks anonymous requests
    assert!(sim.state().requests.iter().all(|r| r.user.is_none()));
}

#[tokio::test]
async fn request_id_is_echoed() {
    let (_sim, api, _) = start(opts()).await;
    let r = api
        .send(
            Method::GET,
            "/registries/99",
            None,
            &[("X-Request-Id", "abc-123")],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("X-Request-ID").as_deref(), Some("abc-123"));
    let r = api
        .send(
            Method::GET,
            "/registries",
            None,
            &[("X-Request-Id", "ok-1")],
        )
        .await;
    assert_eq!(r.header("X-Request-ID").as_deref(), Some("ok-1"));
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );
}

#[tokio::test]
async fn projects() {
    let (_sim, api, _) = start(opts()).await;
    let r = api.head("/projects?project_name=catalog").await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    let r = api
        .post(
            "/projects",
            json!({"project_name": "catalog", "metadata": {"public": "false"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location").as_deref(),
        Some("/api/v2.0/projects/2")
    );
    assert!(r.body.is_empty());
    assert_eq!(api.head("/projects?project_name=catalog").await.status, 200);
    let r = api
        .post("/projects", json!({"project_name": "catalog"}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.error(),
        (
            "CONFLICT".into(),
            "The project named catalog already exists".into()
        )
    );
    let r = api
        .post("/projects", json!({"project_name": "Bad_Name"}))
        .await;
    assert_eq!(
        r.error(),
        (
            "BAD_REQUEST".into(),
            "project name is not in lower case or contains illegal characters".into()
        )
    );
    let r = api
        .post(
            "/projects",
            json!({"project_name": "p2", "metadata": {"public": "yes"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .send(
            Method::POST,
            "/projects",
            Some(&json!({"project_name": "byname", "metadata": {"public": "true"}})),
            &[("X-Resource-Name-In-Location", "true")],
        )
        .await;
    assert_eq!(
        r.header("Location").as_deref(),
        Some("/api/v2.0/projects/byname")
    );

    let p = api.get("/projects/catalog").await.json();
    assert_eq!(p["project_id"], 2);
    assert_eq!(p["metadata"]["public"], "false");
    assert_eq!(p["repo_count"], 0);
    assert_eq!(api.get("/projects/2").await.json()["name"], "catalog");
    // a numeric name needs X-Is-Resource-Name
    api.post("/projects", json!({"project_name": "123"})).await;
    assert_eq!(api.get("/projects/123").await.status, 404);
    let r = api
        .send(
            Method::GET,
            "/projects/123",
            None,
            &[("X-Is-Resource-Name", "true")],
        )
        .await;
    assert_eq!(r.json()["name"], "123");
    assert_eq!(
        api.get("/projects/nope").await.error(),
        ("NOT_FOUND".into(), "project nope not found".into())
    );
}

#[tokio::test]
async fn registries_validation_and_lookup() {
    let (_sim, api, _) = start(opts()).await;
    let post = |body: serde_json::Value| {
        let api = api.clone();
        async move { api.post("/registries", body).await }
    };
    let r = post(json!({"name": "", "type": "docker-hub", "url": "https://hub.docker.com"})).await;
    assert_eq!(
        r.error(),
        ("BAD_REQUEST".into(), "name cannot be empty".into())
    );
    let r = post(
        json!({"name": "x".repeat(65), "type": "docker-hub", "url": "https://hub.docker.com"}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post(
        json!({"name": "u", "type": "docker-registry", "url": "https://unreachable.example.com"}),
    )
    .await;
    assert_eq!(
        r.error(),
        ("BAD_REQUEST".into(), "the registry is unhealthy".into())
    );
    let r =
        post(json!({"name": "f", "type": "docker-registry", "url": "ftp://x.example.com"})).await;
    assert_eq!(r.status, 400);
    let r = post(json!({"name": "t", "type": "nope", "url": "https://x.example.com"})).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.error(),
        ("UNKNOWN".into(), "internal server error".into())
    );
    // URL normalization
    let r = post(json!({"name": "nvcr.io", "type": "docker-registry", "url": " nvcr.io/ "})).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location").as_deref(),
        Some("/api/v2.0/registries/1")
    );
    let reg = api.get("/registries/1").await.json();
    assert_eq!(reg["url"], "http://nvcr.io");
    assert_eq!(reg["id"], 1);
    let r = post(json!({"name": "nvcr.io", "type": "docker-registry", "url": "https://other.io"}))
        .await;
    assert_eq!(
        r.error(),
        ("CONFLICT".into(), "registry nvcr.io already exists".into())
    );
    post(json!({"name": "dockerhub", "type": "docker-hub", "url": "https://hub.docker.com"})).await;
    let l = api.get("/registries?q=type=docker-hub").await;
    assert_eq!(l.json().as_array().unwrap().len(), 1);
    assert_eq!(l.header("X-Total-Count").as_deref(), Some("1"));
    let l = api
        .get("/registries?q=url%3Dhttp%3A%2F%2Fnvcr.io")
        .await
        .json();
    assert_eq!(l[0]["name"], "nvcr.io");
    let l = api.get("/registries?q=name%3D~docker").await.json();
    assert_eq!(l.as_array().unwrap().len(), 1);
    let l = api.get("/registries?name=nvcr").await.json();
    assert_eq!(l[0]["name"], "nvcr.io");
    assert_eq!(
        api.get("/registries/42").await.error(),
        ("NOT_FOUND".into(), "registry 42 not found".into())
    );
    let r = api.get("/registries/abc").await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error().0, "UNPROCESSABLE_ENTITY");
    let adapters = api.get("/replication/adapters").await.json();
    assert!(adapters.as_array().unwrap().contains(&json!("docker-hub")));
}

#[tokio::test]
async fn policy_validation_and_lifecycle() {
    let (_sim, api, _) = start(opts()).await;
    let reg = ensure_registry(
        &api,
        "hub",
        "docker-hub",
        "https://hub.docker.com",
        json!({}),
    )
    .await;
    let good = policy_body("p1", reg, "library/nginx", "1.25", "catalog", 1);
    let cases = [
        (json!({"name": ""}), 400, "empty name"),
        (
            json!({"dest_registry": {"id": reg}}),
            400,
            "either src_registry or dest_registry should be empty and the other one shouldn't be empty",
        ),
        (
            json!({"src_registry": {"id": 0}}),
            400,
            "either src_registry or dest_registry should be empty and the other one shouldn't be empty",
        ),
        (
            json!({"src_registry": {"id": 77}}),
            404,
            "registry 77 not found",
        ),
        (
            json!({"filters": [{"type": "bogus", "value": "x"}]}),
            400,
            "invalid filter type",
        ),
        (
            json!({"filters": [{"type": "name", "value": "x", "decoration": "matches"}]}),
            400,
            "only tag and label filter support decoration",
        ),
        (
            json!({"filters": [{"type": "tag", "value": 5}]}),
            400,
            "the type of filter value isn't string",
        ),
        (
            json!({"dest_namespace": "Bad NS"}),
            400,
            "invalid destination namespace: Bad NS",
        ),
        (
            json!({"trigger": {"type": "sometimes"}}),
            400,
            "invalid trigger type",
        ),
        (
            json!({"trigger": {"type": "scheduled"}}),
            400,
            "the cron string cannot be empty when the trigger type is scheduled",
        ),
    ];
    for (patch, status, message) in cases {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = api.post("/replication/policies", body).await;
        assert_eq!(r.status, status, "{patch}: {}", r.text());
        assert_eq!(r.error().1, message, "{patch}");
    }
    let id = api
        .post("/replication/policies", good.clone())
        .await
        .location_id();
    let r = api.post("/replication/policies", good.clone()).await;
    assert_eq!(
        r.error(),
        (
            "CONFLICT".into(),
            "replication policy p1 already exists".into()
        )
    );
    // omitted replace count → legacy -1
    let mut legacy = good.clone();
    legacy["name"] = json!("legacy");
    legacy
        .as_object_mut()
        .unwrap()
        .remove("dest_namespace_replace_count");
    let lid = api
        .post("/replication/policies", legacy)
        .await
        .location_id();
    assert_eq!(
        api.get(&format!("/replication/policies/{lid}"))
            .await
            .json()["dest_namespace_replace_count"],
        -1
    );
    // q=name= exact; list paging headers
    let l = api.get("/replication/policies?q=name%3Dp1").await;
    assert_eq!(l.header("X-Total-Count").as_deref(), Some("1"));
    assert_eq!(l.json()[0]["id"], id);
    assert!(l.header("Link").is_none());
    // disable → 412 on start
    let mut off = good.clone();
    off["enabled"] = json!(false);
    assert_eq!(
        api.put(&format!("/replication/policies/{id}"), Some(off))
            .await
            .status,
        200
    );
    let p = api.get(&format!("/replication/policies/{id}")).await.json();
    assert!(p.get("enabled").is_none());
    let r = api
        .post("/replication/executions", json!({"policy_id": id}))
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(
        r.error(),
        (
            "PRECONDITION".into(),
            format!("the policy {id} is disabled")
        )
    );
    let r = api
        .post("/replication/executions", json!({"policy_id": 999}))
        .await;
    assert_eq!(
        r.error(),
        (
            "NOT_FOUND".into(),
            "replication policy 999 not found".into()
        )
    );
    assert_eq!(
        api.get("/replication/executions/5").await.error().1,
        "replication execution 5 not found"
    );
    assert_eq!(api.get("/replication/executions/5/tasks").await.status, 404);
    assert_eq!(api.put("/replication/executions/5", None).await.status, 404);
    assert_eq!(
        api.put("/replication/policies/999", Some(good.clone()))
            .await
            .error()
            .1,
        "replication policy 999 not found"
    );
    assert_eq!(
        api.delete(&format!("/replication/policies/{id}"))
            .await
            .status,
        200
    );
    assert_eq!(
        api.get(&format!("/replication/policies/{id}"))
            .await
            .error()
            .1,
        format!("replication policy {id} not found")
    );
}

#[tokio::test]
async fn pagination() {
    let (_sim, api, _) = start(opts()).await;
    let reg = ensure_registry(
        &api,
        "hub",
        "docker-hub",
        "https://hub.docker.com",
        json!({}),
    )
    .await;
    for i in 0..25 {
        let r = api
            .post(
                "/replication/policies",
                policy_body(&format!("p{i:02}"), reg, "library/nginx", "1", "catalog", 1),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let r = api.get("/replication/policies?page=2&page_size=10").await;
    assert_eq!(r.header("X-Total-Count").as_deref(), Some("25"));
    assert_eq!(r.json().as_array().unwrap().len(), 10);
    assert_eq!(
        r.header("Link").as_deref(),
        Some(
            "</api/v2.0/replication/policies?page=1&page_size=10>; rel=\"prev\" , </api/v2.0/replication/policies?page=3&page_size=10>; rel=\"next\""
        )
    );
    let r = api
        .get("/replication/policies?page=3&page_size=10&q=name%3D~p")
        .await;
    assert_eq!(r.json().as_array().unwrap().len(), 5);
    assert_eq!(
        r.header("Link").as_deref(),
        Some("</api/v2.0/replication/policies?page=2&page_size=10&q=name=~p>; rel=\"prev\"")
    );
    let r = api.get("/replication/policies").await;
    assert_eq!(
        r.json().as_array().unwrap().len(),
        10,
        "default page_size 10"
    );
    let r = api.get("/replication/policies?page_size=101").await;
    assert_eq!(r.status, 422);
    assert_eq!(r.error().0, "UNPROCESSABLE_ENTITY");
    let r = api.get("/replication/policies?page_size=100").await;
    assert_eq!(r.json().as_array().unwrap().len(), 25);
    assert!(r.header("Link").is_none());
    let r = api
        .get("/replication/policies?sort=name&page_size=3")
        .await
        .json();
    assert_eq!(r[0]["name"], "p00");
    let r = api.get("/replication/policies?q=garbage").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn repository_names_must_be_double_encoded() {
    let (_sim, api, _) = start(opts()).await;
    let (_, done) = import(
        &api,
        "nvcr",
        "docker-registry",
        "https://nvcr.io",
        "nvidia/pytorch",
        "24.01-py3",
        "catalog",
        0,
    )
    .await;
    assert_eq!(done["status"], "Succeed");
    let ok = api
        .get("/projects/catalog/repositories/nvidia%252Fpytorch/artifacts/24.01-py3")
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["repository_name"], "catalog/nvidia/pytorch");
    for bad in [
        "/projects/catalog/repositories/nvidia%2Fpytorch/artifacts/24.01-py3",
        "/projects/catalog/repositories/nvidia/pytorch/artifacts/24.01-py3",
    ] {
        let r = api.get(bad).await;
        assert_eq!(r.status, 404, "{bad}");
        assert_eq!(r.error().0, "NOT_FOUND");
    }
    assert_eq!(
        api.get("/projects/catalog/repositories/nvidia%252Fpytorch")
            .await
            .json()["name"],
        "catalog/nvidia/pytorch"
    );
    // tag vs digest vs repository messages
    assert_eq!(
        api.get("/projects/catalog/repositories/nvidia%252Fpytorch/artifacts/nope")
            .await
            .error()
            .1,
        "artifact catalog/nvidia/pytorch:nope not found"
    );
    let d = format!("sha256:{}", "a".repeat(64));
    assert_eq!(
        api.get(&format!(
            "/projects/catalog/repositories/nvidia%252Fpytorch/artifacts/{d}"
        ))
        .await
        .error()
        .1,
        format!("artifact catalog/nvidia/pytorch@{d} not found")
    );
    assert_eq!(
        api.get("/projects/catalog/repositories/nginx/artifacts/1.0")
            .await
            .error()
            .1,
        "repository catalog/nginx not found"
    );
    // unknown route, wrong method
    assert_eq!(api.get("/nope").await.status, 404);
    assert_eq!(api.delete("/registries").await.status, 405);
}

#[tokio::test]
async fn webhook_policy_validation_and_crud() {
    let (_sim, api, anon) = start(opts()).await;
    ensure_project(&api, "catalog").await;
    let base = "/projects/catalog/webhook/policies";
    let target = json!([{"type": "http", "address": "http://127.0.0.1:9/h"}]);
    let cases = [
        (
            json!({"name": "a", "targets": target, "event_types": []}),
            "empty event type",
        ),
        (
            json!({"name": "a", "targets": target, "event_types": ["NOPE"]}),
            "unsupported event type NOPE",
        ),
        (
            json!({"name": "a", "targets": [], "event_types": ["REPLICATION"]}),
            "empty notification target with policy a",
        ),
        (
            json!({"name": "a", "targets": [{"type": "slack", "address": "http://x", "payload_format": "Default"}], "event_types": ["REPLICATION"]}),
            "set payload format is not allowed for slack",
        ),
    ];
    for (body, msg) in cases {
        let r = api.post(base, body).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.error().1, msg);
    }
    let r = api
        .post(
            base,
            json!({"name": "a", "targets": [{"type": "http", "address": "ftp://x"}], "event_types": ["REPLICATION"]}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .post(
            base,
            json!({"name": "cb", "targets": target, "event_types": ["REPLICATION"], "enabled": true}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location").as_deref(),
        Some("/api/v2.0/projects/catalog/webhook/policies/1")
    );
    let r = api
        .post(
            base,
            json!({"name": "cb", "targets": target, "event_types": ["REPLICATION"]}),
        )
        .await;
    assert_eq!(
        r.error(),
        (
            "CONFLICT".into(),
            "notification policy named cb already exists".into()
        )
    );
    let w = api.get(&format!("{base}/1")).await.json();
    assert_eq!(w["targets"][0]["payload_format"], "Default");
    assert_eq!(w["enabled"], true);
    assert_eq!(w["project_id"], 2);
    assert!(w.get("description").is_none() && w.get("creator").is_none());
    assert!(w["targets"][0].get("skip_cert_verify").is_none());
    // by project id as well
    assert_eq!(api.get("/projects/2/webhook/policies/1").await.status, 200);
    let l = api.get(&format!("{base}?q=name%3Dcb")).await;
    assert_eq!(l.header("X-Total-Count").as_deref(), Some("1"));
    // disabled stays present
    let r = api
        .put(
            &format!("{base}/1"),
            Some(json!({"name": "cb", "targets": target, "event_types": ["PUSH_ARTIFACT"], "enabled": false})),
        )
        .await;
    assert_eq!(r.status, 200);
    let w = api.get(&format!("{base}/1")).await.json();
    assert_eq!(w["enabled"], false);
    assert_eq!(w["event_types"], json!(["PUSH_ARTIFACT"]));
    // another project's policy is 404
    ensure_project(&api, "other").await;
    assert_eq!(
        api.get("/projects/other/webhook/policies/1").await.status,
        404
    );
    assert_eq!(api.get("/projects/nope/webhook/policies").await.status, 404);
    assert_eq!(anon.get(base).await.status, 401);
    assert_eq!(api.delete(&format!("{base}/1")).await.status, 200);
    assert_eq!(api.get(&format!("{base}/1")).await.status, 404);
}

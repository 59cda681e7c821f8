//! Every fault kind, the control API over HTTP, statistics as a robot, and the binary.

mod support;

use std::time::{Duration, Instant};

use harbor_sim::{
    ApiErrorFault, DownMode, FaultsPatch, SimOptions, UpstreamFailure, UpstreamImage,
    WebhookFaultsPatch,
};
use serde_json::json;
use support::*;

async fn hub_policy(api: &Api, tag: &str) -> i64 {
    ensure_project(api, "catalog").await;
    let reg = ensure_registry(
        api,
        "hub",
        "docker-hub",
        "https://hub.docker.com",
        json!({}),
    )
    .await;
    ensure_policy(
        api,
        policy_body(&format!("p-{tag}"), reg, "library/nginx", tag, "catalog", 1),
    )
    .await
}

#[tokio::test]
async fn api_errors_latency_and_down() {
    let (sim, api, _) = start(opts()).await;
    sim.set_faults(FaultsPatch {
        api_errors: Some(ApiErrorFault {
            status: 500,
            count: 2,
            path_prefix: Some("/api/v2.0/replication".into()),
            message: None,
        }),
        ..Default::default()
    });
    // other paths are unaffected
    assert_eq!(api.get("/registries").await.status, 200);
    for _ in 0..2 {
        let r = api.get("/replication/policies").await;
        assert_eq!(r.status, 500);
        assert_eq!(
            r.text(),
            "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"internal server error\"}]}\n"
        );
        assert!(r.header("X-Request-ID").is_some());
    }
    assert_eq!(api.get("/replication/policies").await.status, 200);
    assert!(sim.faults().api_errors.is_none(), "used up");

    // 429 keeps its code and message
    sim.set_faults(FaultsPatch {
        api_errors: Some(ApiErrorFault {
            status: 429,
            count: 1,
            path_prefix: None,
            message: Some("slow down".into()),
        }),
        ..Default::default()
    });
    let r = api.get("/registries").await;
    assert_eq!(r.error(), ("TOO_MANY_REQUEST".into(), "slow down".into()));

    // latency
    sim.set_faults(FaultsPatch {
        latency_ms: Some(150),
        ..Default::default()
    });
    let t = Instant::now();
    api.get("/registries").await;
    assert!(t.elapsed() >= Duration::from_millis(150));
    sim.reset_faults();

    // down: closed connection, then 503
    sim.set_faults(FaultsPatch {
        down: Some(true),
        ..Default::default()
    });
    let r = api
        .try_send(http::Method::GET, "/registries", None, &[])
        .await;
    assert!(r.is_err(), "{r:?}");
    sim.set_faults(FaultsPatch {
        down_mode: Some(DownMode::ServiceUnavailable),
        ..Default::default()
    });
    let r = api.get("/registries").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.error(),
        ("UNKNOWN".into(), "internal server error".into())
    );
    // the control API keeps working while down
    let r = api.get("/_sim/state").await;
    assert_eq!(r.status, 200);
    let st = sim.state();
    assert!(
        st.requests.iter().any(|r| r.status.is_none()),
        "closed connection logged"
    );
    sim.reset_faults();
    assert_eq!(api.get("/registries").await.status, 200);
}

#[tokio::test]
async fn fail_next_tasks() {
    let (sim, api, _) = start(opts()).await;
    let hooks = Receiver::start().await;
    let policy = hub_policy(&api, "1.25").await;
    add_webhook(
        &api,
        "catalog",
        &hooks.url(),
        &["REPLICATION", "PUSH_ARTIFACT"],
    )
    .await;
    sim.set_faults(FaultsPatch {
        fail_next_tasks: Some(1),
        ..Default::default()
    });
    let exec = start_execution(&api, policy).await;
    let done = wait_execution(&api, exec).await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(
        (done["total"].as_i64(), done["failed"].as_i64()),
        (Some(1), Some(1))
    );
    let tasks = api
        .get(&format!(
            "/replication/executions/{exec}/tasks?status=Failed"
        ))
        .await
        .json();
    assert_eq!(tasks.as_array().unwrap().len(), 1);
    let got = hooks
        .wait("error event", |h| {
            h.iter()
                .any(|h| h.body["event_data"]["replication"]["job_status"] == "Error")
        })
        .await;
    let err = got
        .iter()
        .find(|h| h.body["event_data"]["replication"]["job_status"] == "Error")
        .unwrap();
    assert_eq!(
        err.body["event_data"]["replication"]["failed_artifact"],
        json!([{"type":"image","status":"Error","name_tag":"nginx [1 item(s) in total]","references":["1.25"]}])
    );
    assert!(got.iter().all(|h| h.body["type"] != "PUSH_ARTIFACT"));
    assert_eq!(sim.faults().fail_next_tasks, 0);
    // the next run succeeds
    let exec = start_execution(&api, policy).await;
    assert_eq!(wait_execution(&api, exec).await["status"], "Succeed");
}

#[tokio::test]
async fn flap_failed_before_succeed() {
    let (sim, api, _) = start(opts()).await;
    let hooks = Receiver::start().await;
    let policy = hub_policy(&api, "1.25").await;
    add_webhook(&api, "catalog", &hooks.url(), &["REPLICATION"]).await;
    sim.set_faults(FaultsPatch {
        flap_failed_before_succeed: Some(true),
        ..Default::default()
    });
    let exec = start_execution(&api, policy).await;
    let mut seen = Vec::new();
    for _ in 0..300 {
        let s = api
            .get(&format!("/replication/executions/{exec}"))
            .await
            .json()["status"]
            .as_str()
            .unwrap()
            .to_string();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "Succeed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen, ["InProgress", "Failed", "InProgress", "Succeed"]);
    let got = hooks.wait("4 replication events", |h| h.len() >= 4).await;
    let mut statuses: Vec<_> = got
        .iter()
        .map(|h| {
            h.body["event_data"]["replication"]["job_status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["Error", "Running", "Running", "Success"]);
}

#[tokio::test]
async fn hang_then_stop() {
    let (sim, api, _) = start(opts()).await;
    let hooks = Receiver::start().await;
    let policy = hub_policy(&api, "1.25").await;
    add_webhook(&api, "catalog", &hooks.url(), &["REPLICATION"]).await;
    sim.set_faults(FaultsPatch {
        hang_executions: Some(true),
        ..Default::default()
    });
    let exec = start_execution(&api, policy).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let e = api
        .get(&format!("/replication/executions/{exec}"))
        .await
        .json();
    assert_eq!(e["status"], "InProgress");
    assert_eq!(e["in_progress"], 1);
    let t = api
        .get(&format!(
            "/replication/executions/{exec}/tasks?status=InProgress"
        ))
        .await
        .json();
    assert_eq!(t[0]["status"], "InProgress");
    // the policy cannot be deleted while it runs
    let r = api.delete(&format!("/replication/policies/{policy}")).await;
    assert_eq!(r.status, 412);
    assert_eq!(
        r.error().1,
        "contains executions that aren't in final status, stop the execution first"
    );
    // stop
    let r = api
        .put(&format!("/replication/executions/{exec}"), None)
        .await;
    assert_eq!(r.status, 200);
    let e = api
        .get(&format!("/replication/executions/{exec}"))
        .await
        .json();
    assert_eq!(e["status"], "Stopped");
    assert_eq!(e["stopped"], 1);
    assert_ne!(e["end_time"], "0001-01-01T00:00:00.000Z");
    hooks
        .wait("stopped event", |h| {
            h.iter()
                .any(|h| h.body["event_data"]["replication"]["job_status"] == "Stopped")
        })
        .await;
    assert_eq!(
        api.delete(&format!("/replication/policies/{policy}"))
            .await
            .status,
        200
    );
    assert!(sim.state().executions.is_empty());
}

#[tokio::test]
async fn single_active_replication_skips() {
    let (sim, api, _) = start(opts()).await;
    let policy = hub_policy(&api, "1.25").await;
    let mut body = api
        .get(&format!("/replication/policies/{policy}"))
        .await
        .json();
    body["single_active_replication"] = json!(true);
    assert_eq!(
        api.put(&format!("/replication/policies/{policy}"), Some(body))
            .await
            .status,
        200
    );
    sim.set_faults(FaultsPatch {
        hang_executions: Some(true),
        ..Default::default()
    });
    let first = start_execution(&api, policy).await;
    let second = start_execution(&api, policy).await;
    let e = api
        .get(&format!("/replication/executions/{second}"))
        .await
        .json();
    assert_eq!(e["status"], "Failed");
    assert_eq!(
        e["status_text"],
        "Execution skipped: active replication still in progress."
    );
    sim.reset_faults();
    assert_eq!(wait_execution(&api, first).await["status"], "Succeed");
}

#[tokio::test]
async fn upstream_failures() {
    let (sim, api, _) = start(opts()).await;
    for (tag, failure, text) in [
        (
            "rl",
            UpstreamFailure::RateLimited,
            "toomanyrequests: You have reached your pull rate limit",
        ),
        (
            "auth",
            UpstreamFailure::Unauthorized,
            "unauthorized: authentication required",
        ),
        (
            "nf",
            UpstreamFailure::NotFound,
            "repository name not known to registry",
        ),
    ] {
        sim.define_upstream(UpstreamImage {
            repository: "library/nginx".into(),
            tag: tag.into(),
            failure: Some(failure),
            ..Default::default()
        });
        let policy = hub_policy(&api, tag).await;
        let exec = start_execution(&api, policy).await;
        let done = wait_execution(&api, exec).await;
        assert_eq!(done["status"], "Failed");
        assert_eq!(done["total"], 0);
        assert!(
            done["status_text"].as_str().unwrap().contains(text),
            "{done}"
        );
    }
    // a defined platform set and `missing`
    sim.define_upstream(UpstreamImage {
        repository: "library/nginx".into(),
        tag: "arm".into(),
        platforms: vec!["linux/arm64/v8".into()],
        ..Default::default()
    });
    sim.define_upstream(UpstreamImage {
        repository: "library/nginx".into(),
        tag: "gone".into(),
        missing: true,
        ..Default::default()
    });
    let exec = start_execution(&api, hub_policy(&api, "arm").await).await;
    assert_eq!(wait_execution(&api, exec).await["status"], "Succeed");
    let a = api
        .get("/projects/catalog/repositories/nginx/artifacts/arm")
        .await
        .json();
    assert_eq!(a["extra_attrs"]["architecture"], "arm64");
    assert!(a.get("references").is_none());
    let exec = start_execution(&api, hub_policy(&api, "gone").await).await;
    assert_eq!(wait_execution(&api, exec).await["total"], 0);
}

#[tokio::test]
async fn webhook_faults_and_retries() {
    let (sim, api, _) = start(opts()).await;
    let hooks = Receiver::start().await;
    let policy = hub_policy(&api, "1.25").await;
    add_webhook(&api, "catalog", &hooks.url(), &["REPLICATION"]).await;

    // drop: recorded, never sent
    sim.set_faults(FaultsPatch {
        webhooks: Some(WebhookFaultsPatch {
            drop: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    });
    let exec = start_execution(&api, policy).await;
    wait_execution(&api, exec).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*hooks.hits.lock().unwrap(), 0);
    let st = sim.state();
    assert_eq!(st.webhook_deliveries.len(), 2);
    assert!(st.webhook_deliveries.iter().all(|d| d.dropped));

    // duplicate: each delivery twice
    sim.reset_faults();
    sim.set_faults(FaultsPatch {
        webhooks: Some(WebhookFaultsPatch {
            duplicate: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    });
    let exec = start_execution(&api, policy).await;
    wait_execution(&api, exec).await;
    hooks.wait("4 deliveries", |h| h.len() == 4).await;

    // reorder: Running arrives after Success
    sim.reset_faults();
    hooks.hooks.lock().unwrap().clear();
    sim.set_faults(FaultsPatch {
        webhooks: Some(WebhookFaultsPatch {
            reorder: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    });
    let exec = start_execution(&api, policy).await;
    wait_execution(&api, exec).await;
    let got = hooks.wait("2 deliveries", |h| h.len() == 2).await;
    let order: Vec<_> = got
        .iter()
        .map(|h| {
            h.body["event_data"]["replication"]["job_status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(order, ["Success", "Running"]);

    // retries: non-2xx twice, then success on the third attempt
    sim.reset_faults();
    let deletes = Receiver::start().await;
    *deletes.script.lock().unwrap() = vec![500, 502];
    add_webhook(&api, "catalog", &deletes.url(), &["DELETE_ARTIFACT"]).await;
    let r = api
        .delete("/projects/catalog/repositories/nginx/artifacts/1.25")
        .await;
    assert_eq!(r.status, 200);
    deletes.wait("delete delivered", |h| h.len() == 1).await;
    assert_eq!(*deletes.hits.lock().unwrap(), 3);
    let attempts: Vec<_> = sim
        .state()
        .webhook_deliveries
        .iter()
        .filter(|d| d.event_type == "DELETE_ARTIFACT")
        .map(|d| (d.attempt, d.status))
        .collect();
    assert_eq!(attempts, [(1, Some(500)), (2, Some(502)), (3, Some(200))]);

    // re-import so there is something to delete again
    let exec = start_execution(&api, policy).await;
    wait_execution(&api, exec).await;

    // an unreachable target: 3 failed attempts recorded
    add_webhook(
        &api,
        "catalog",
        "http://127.0.0.1:1/h",
        &["DELETE_ARTIFACT"],
    )
    .await;
    api.delete("/projects/catalog/repositories/nginx/artifacts/1.25")
        .await;
    for _ in 0..100 {
        let n = sim
            .state()
            .webhook_deliveries
            .iter()
            .filter(|d| d.target == "http://127.0.0.1:1/h")
            .count();
        if n >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed: Vec<_> = sim
        .state()
        .webhook_deliveries
        .into_iter()
        .filter(|d| d.target == "http://127.0.0.1:1/h")
        .collect();
    assert_eq!(failed.len(), 3);
    assert!(
        failed
            .iter()
            .all(|d| d.status.is_none() && d.error.is_some())
    );
}

#[tokio::test]
async fn slow_receivers_time_out() {
    let mut o = opts();
    o.webhook_timeout = Duration::from_millis(100);
    o.webhook_max_attempts = 1;
    let (sim, api, _) = start(o).await;
    // a receiver that never answers
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut keep = Vec::new();
        loop {
            if let Ok((s, _)) = listener.accept().await {
                keep.push(s);
            }
        }
    });
    let policy = hub_policy(&api, "1.25").await;
    add_webhook(
        &api,
        "catalog",
        &format!("http://{addr}/h"),
        &["REPLICATION"],
    )
    .await;
    let exec = start_execution(&api, policy).await;
    wait_execution(&api, exec).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = sim.state().webhook_deliveries;
    assert!(!d.is_empty());
    assert!(
        d[0].error.as_deref().unwrap().contains("Client.Timeout"),
        "{d:?}"
    );
}

#[tokio::test]
async fn status_refresh_delay_keeps_in_progress_with_final_counters() {
    let mut o = opts();
    o.status_refresh_delay = Duration::from_millis(400);
    let (_sim, api, _) = start(o).await;
    let policy = hub_policy(&api, "1.25").await;
    let exec = start_execution(&api, policy).await;
    let mut saw_lag = false;
    for _ in 0..200 {
        let e = api
            .get(&format!("/replication/executions/{exec}"))
            .await
            .json();
        if e["status"] == "InProgress" && e["total"] == 1 && e["succeed"] == 1 {
            saw_lag = true;
        }
        if e["status"] == "Succeed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_lag);
}

#[tokio::test]
async fn statistics_as_robot_and_anonymous() {
    let (_sim, api, anon) = start(SimOptions {
        username: "robot$catalog-svc".into(),
        password: "secret".into(),
        robot: true,
        ..opts()
    })
    .await;
    ensure_project(&api, "catalog").await;
    let (_, done) = import(
        &api,
        "hub",
        "docker-hub",
        "https://hub.docker.com",
        "library/nginx",
        "1.25",
        "catalog",
        1,
    )
    .await;
    assert_eq!(done["status"], "Succeed");
    let s = api.get("/statistics").await.json();
    assert_eq!(
        s,
        json!({"private_project_count":0,"private_repo_count":0,"public_project_count":1,
               "public_repo_count":0,"total_project_count":0,"total_repo_count":0,
               "total_storage_consumption":0})
    );
    assert_eq!(anon.get("/statistics").await.status, 401);
    // the robot name is the operator / creator
    let p = api.get("/replication/executions/1").await.json();
    assert_eq!(p["status"], "Succeed");
}

#[tokio::test]
async fn control_api_over_http() {
    let (sim, api, _) = start(opts()).await;
    let r = api
        .post(
            "/_sim/upstream",
            json!({"repository":"library/nginx","tag":"1.27","platforms":["linux/amd64","linux/arm64"],
                   "size":1000000,"missing":false,"failure":null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = api
        .post(
            "/_sim/upstream",
            json!({"repository":"x","tag":"y","bogus":1}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .post(
            "/_sim/faults",
            json!({"latency_ms": 5, "webhooks": {"drop": true}}),
        )
        .await;
    assert_eq!(r.json()["latency_ms"], 5);
    let r = api
        .post("/_sim/faults", json!({"fail_next_tasks": 2}))
        .await;
    let f = r.json();
    assert_eq!(
        (f["latency_ms"].as_i64(), f["fail_next_tasks"].as_i64()),
        (Some(5), Some(2))
    );
    assert_eq!(f["webhooks"]["drop"], true);
    assert_eq!(api.delete("/_sim/faults").await.json()["latency_ms"], 0);

    let (_, done) = import(
        &api,
        "hub",
        "docker-hub",
        "https://hub.docker.com",
        "library/nginx",
        "1.27",
        "catalog",
        1,
    )
    .await;
    assert_eq!(done["status"], "Succeed");
    let a = api
        .get("/projects/catalog/repositories/nginx/artifacts/1.27")
        .await
        .json();
    let refs = a["references"].as_array().unwrap();
    assert_eq!(refs.len(), 3);
    assert_eq!(
        refs[1]["platform"],
        json!({"architecture":"arm64","os":"linux"})
    );

    let st = api.get("/_sim/state").await.json();
    assert_eq!(st["counts"]["registries"], 1);
    assert_eq!(st["counts"]["artifacts"], 4);
    assert_eq!(st["executions"][0]["status"], "Succeed");
    assert_eq!(st["registries"][0]["type"], "docker-hub");
    let tagged: Vec<_> = st["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["tags"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0]["repository"], "catalog/nginx");
    assert!(st["requests"].as_array().unwrap().len() > 5);
    assert_eq!(api.delete("/_sim/requests").await.status, 200);
    assert!(sim.state().requests.is_empty());
    assert_eq!(api.get("/_sim/nope").await.status, 404);
}

#[tokio::test]
async fn binary_prints_its_address() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_harbor-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--username",
            "admin",
            "--password",
            "Harbor12345",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        line.starts_with("harbor-sim listening on http://127.0.0.1:"),
        "{line}"
    );
    let url = line
        .trim_start_matches("harbor-sim listening on ")
        .to_string();
    let api = Api::new(&url, Some(("admin", "Harbor12345")));
    assert_eq!(api.head("/projects?project_name=library").await.status, 200);
    child.kill().await.unwrap();
}

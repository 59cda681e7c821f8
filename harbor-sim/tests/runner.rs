//! The simulated build runner over real HTTP: berth's signed job, the status
//! callbacks, the push into the simulated Harbor and its PUSH_ARTIFACT webhook.

mod support;

use std::time::Duration;

use bytes::Bytes;
use harbor_sim::{
    BUILT_IMAGE_SIZE, DEFAULT_FAIL_LOG_TAIL, DEFAULT_FAIL_MESSAGE, RunnerControl,
    RunnerControlPatch, RunnerOutcome, Simulator, runner_signature,
};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use support::*;

const SECRET: &str = "runner-secret";
const DOCKERFILE: &str = "FROM harbor.local/library/ubuntu20-pytorch:2.0\nRUN pip install numpy==1.26.4\nRUN useradd -m alice";

/// POSTs raw bytes to the runner, signed with `secret` unless `None`.
async fn post_raw(sim: &Simulator, body: Vec<u8>, secret: Option<&str>) -> R {
    let mut b = Request::post(sim.runner_url()).header("Content-Type", "application/json");
    if let Some(s) = secret {
        b = b.header("X-Berth-Signature", runner_signature(s, &body));
    }
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .request(b.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("runner request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    R {
        status,
        headers,
        body,
    }
}

async fn post_job(sim: &Simulator, job: &Value) -> R {
    post_raw(sim, serde_json::to_vec(job).unwrap(), Some(SECRET)).await
}

fn job(
    build_id: &str,
    repository: &str,
    tag: &str,
    dockerfile: &str,
    callbacks: &Receiver,
) -> Value {
    json!({
        "build_id": build_id,
        "mode": "dockerfile",
        "dockerfile": dockerfile,
        "base_image": "harbor.local/library/ubuntu20-pytorch:2.0",
        "push": {"registry": "127.0.0.1:8099", "repository": repository, "tag": tag},
        "callback": {
            "url": format!("http://{}/api/v1/builds/{build_id}/status", callbacks.addr),
            "token": "runner-token"
        }
    })
}

/// Waits until the runner's record of `build_id` satisfies `pred`.
async fn wait_job(
    sim: &Simulator,
    build_id: &str,
    pred: impl Fn(&harbor_sim::RunnerJob) -> bool,
) -> harbor_sim::RunnerJob {
    for _ in 0..200 {
        if let Some(j) = sim.runner_job(build_id).filter(|j| pred(j)) {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "timed out waiting for job {build_id}: {:#?}",
        sim.runner_job(build_id)
    );
}

/// Long enough for a whole job to have run (a few `execution_step`s).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn signed_job_is_built_pushed_and_announced_by_webhook() {
    let (sim, api, _) = start(opts()).await;
    let callbacks = Receiver::start().await;
    let hooks = Receiver::start().await;
    ensure_project(&api, "catalog").await;
    add_webhook(
        &api,
        "catalog",
        &hooks.url(),
        &["PUSH_ARTIFACT", "DELETE_ARTIFACT"],
    )
    .await;
    let body = job(
        "build-1a2b3c",
        "catalog/users/alice/my-custom-image",
        "1.0",
        DOCKERFILE,
        &callbacks,
    );

    let r = post_job(&sim, &body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"accepted": true, "job_id": "build-1a2b3c"})
    );
    let j = sim.runner_job("build-1a2b3c").expect("recorded");
    assert_eq!(j.outcome, RunnerOutcome::Accepted);
    assert!(j.signature_ok);
    // berth retrying the POST while the job runs: the same job, answered 202 again
    let again = post_job(&sim, &body).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["job_id"], "build-1a2b3c");

    let pushes = hooks
        .wait("PUSH_ARTIFACT", |h| {
            h.iter().any(|h| h.body["type"] == "PUSH_ARTIFACT")
        })
        .await;
    // both callbacks arrived before the push
    let cbs = callbacks.hooks();
    assert_eq!(cbs.len(), 2, "{cbs:#?}");
    for c in &cbs {
        assert_eq!(c.method, "PUT");
        assert_eq!(c.path, "/api/v1/builds/build-1a2b3c/status");
        assert_eq!(
            c.headers.get("authorization").unwrap(),
            "Bearer runner-token"
        );
        assert_eq!(c.headers.get("content-type").unwrap(), "application/json");
    }
    assert_eq!(
        cbs[0].body,
        json!({"status": "running", "log_tail": "Step 1/3 : FROM harbor.local/library/ubuntu20-pytorch:2.0"})
    );
    assert_eq!(
        cbs[1].body,
        json!({"status": "running", "log_tail": "pushed 127.0.0.1:8099/catalog/users/alice/my-custom-image:1.0"})
    );

    // PUSH_ARTIFACT exactly as a docker push by the runner's robot
    assert_eq!(pushes.len(), 1, "{pushes:#?}");
    let p = &pushes[0].body;
    assert_eq!(p["operator"], "robot$runner");
    let res = &p["event_data"]["resources"];
    assert_eq!(res.as_array().unwrap().len(), 1);
    assert_eq!(res[0]["tag"], "1.0");
    assert_eq!(
        res[0]["resource_url"],
        "harbor.local/catalog/users/alice/my-custom-image:1.0"
    );
    let repo = &p["event_data"]["repository"];
    assert_eq!(
        repo["repo_full_name"],
        "catalog/users/alice/my-custom-image"
    );
    assert_eq!(repo["name"], "users/alice/my-custom-image");
    assert_eq!(repo["namespace"], "catalog");
    assert_eq!(repo["repo_type"], "private");
    assert!(repo["date_created"].as_i64().unwrap() > 0);
    assert_eq!(
        pushes[0].headers.get("authorization").unwrap(),
        "Bearer s3cr3t"
    );

    // the artifact is in Harbor with the tag
    let a = api
        .get("/projects/catalog/repositories/users%252Falice%252Fmy-custom-image/artifacts/1.0?with_tag=true")
        .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = a.json();
    assert_eq!(a["digest"], res[0]["digest"]);
    assert_eq!(a["size"], BUILT_IMAGE_SIZE);
    assert_eq!(a["tags"][0]["name"], "1.0");
    assert_eq!(a["extra_attrs"]["architecture"], "amd64");
    assert_eq!(a["extra_attrs"]["os"], "linux");
    assert_eq!(
        a["manifest_media_type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert!(a.get("references").is_none());

    // the record: what berth sent, the callbacks, the result
    let j = wait_job(&sim, "build-1a2b3c", |j| j.outcome == RunnerOutcome::Pushed).await;
    assert_eq!(j.mode, "dockerfile");
    assert_eq!(j.submissions, 2);
    assert_eq!(j.body["dockerfile"], DOCKERFILE);
    assert_eq!(j.body, body);
    assert_eq!(
        j.pushed.as_deref(),
        Some("catalog/users/alice/my-custom-image:1.0")
    );
    assert_eq!(j.digest.as_deref(), res[0]["digest"].as_str());
    assert_eq!(j.callbacks.len(), 2);
    assert!(
        j.callbacks
            .iter()
            .all(|c| c.status == Some(200) && c.error.is_none() && c.attempt == 1)
    );
    assert_eq!(j.callbacks[0].payload["status"], "running");

    // GET /_sim/state lists the job; the request log has the POSTs
    let st = api.get("/_sim/state").await.json();
    assert_eq!(st["counts"]["runner_jobs"], 1);
    assert_eq!(st["runner_jobs"][0]["build_id"], "build-1a2b3c");
    assert_eq!(st["runner_jobs"][0]["outcome"], "pushed");
    assert_eq!(st["runner_jobs"][0]["signature_ok"], true);
    assert_eq!(st["runner_jobs"][0]["callbacks"][0]["status"], 200);
    let posts: Vec<_> = sim
        .state()
        .requests
        .into_iter()
        .filter(|r| r.path == "/runner/jobs")
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].method, "POST");
    assert_eq!(posts[0].status, Some(202));
    assert_eq!(posts[0].body.as_ref(), Some(&body));

    // exactly one build ran
    settle().await;
    assert_eq!(callbacks.hooks().len(), 2);
    assert_eq!(hooks.of_type("PUSH_ARTIFACT").len(), 1);
}

#[tokio::test]
async fn environment_job_creates_a_missing_project() {
    let (sim, api, _) = start(opts()).await;
    let callbacks = Receiver::start().await;
    let body = json!({
        "build_id": "build-env",
        "mode": "environment",
        "environment_id": "env-42",
        "push": {"registry": "127.0.0.1:1", "repository": "builds/env-42", "tag": "v3"},
        "callback": {"url": format!("http://{}/cb", callbacks.addr), "token": "t"}
    });
    assert_eq!(post_job(&sim, &body).await.status, 202);
    let j = wait_job(&sim, "build-env", |j| j.outcome == RunnerOutcome::Pushed).await;
    assert_eq!(j.mode, "environment");
    assert_eq!(
        callbacks.hooks()[0].body["log_tail"],
        "Step 1/3 : FROM scratch"
    );
    let st = sim.state();
    let p = st.projects.iter().find(|p| p.name == "builds").unwrap();
    assert!(!p.public);
    let a = st
        .artifacts
        .iter()
        .find(|a| a.repository == "builds/env-42")
        .unwrap();
    assert_eq!(a.tags, vec!["v3".to_string()]);
    let r = api
        .get("/projects/builds/repositories/env-42/artifacts/v3")
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn bad_signatures_and_bad_jobs_are_rejected() {
    let (sim, _api, _) = start(opts()).await;
    let callbacks = Receiver::start().await;
    let body = job("build-bad", "catalog/img", "1", DOCKERFILE, &callbacks);
    let bytes = serde_json::to_vec(&body).unwrap();

    for secret in [None, Some("wrong-secret")] {
        let r = post_raw(&sim, bytes.clone(), secret).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json(), json!({"error": "bad signature"}));
    }
    // signed, but the signature covers other bytes
    let mut r = Request::post(sim.runner_url())
        .header("X-Berth-Signature", runner_signature(SECRET, b"{}"));
    r = r.header("Content-Type", "application/json");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .request(r.body(Full::new(Bytes::from(bytes.clone()))).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // well signed but malformed
    let r = post_raw(&sim, b"{not json".to_vec(), Some(SECRET)).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid job")
    );
    let mut missing = body.clone();
    missing.as_object_mut().unwrap().remove("push");
    let r = post_job(&sim, &missing).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("push"), "{}", r.text());
    let mut no_dockerfile = body.clone();
    no_dockerfile.as_object_mut().unwrap().remove("dockerfile");
    assert_eq!(post_job(&sim, &no_dockerfile).await.status, 400);
    let mut bad_mode = body.clone();
    bad_mode["mode"] = json!("magic");
    assert_eq!(post_job(&sim, &bad_mode).await.status, 400);

    settle().await;
    assert!(callbacks.hooks().is_empty());
    let st = sim.state();
    assert!(st.artifacts.is_empty());
    assert_eq!(st.runner_jobs.len(), 7);
    assert!(
        st.runner_jobs
            .iter()
            .all(|j| j.outcome == RunnerOutcome::Rejected)
    );
    assert_eq!(
        st.runner_jobs
            .iter()
            .filter(|j| !j.signature_ok && j.error.as_deref() == Some("bad signature"))
            .count(),
        3
    );
    assert_eq!(st.runner_jobs[0].build_id, "build-bad");
    assert_eq!(st.runner_jobs[0].body, body);
    assert_eq!(st.runner_jobs[3].body, json!("{not json"));
    assert!(st.runner_jobs[4].signature_ok);
    assert!(st.runner_jobs[4].error.as_deref().unwrap().contains("push"));
}

#[tokio::test]
async fn fail_marker_reports_failed_and_pushes_nothing() {
    let (sim, _api, _) = start(opts()).await;
    let callbacks = Receiver::start().await;
    let dockerfile = "FROM harbor.local/library/ubuntu20-pytorch:2.0\nRUN pip install nonexistent-pkg\n# sim: fail";
    let body = job(
        "build-fail",
        "catalog/users/bob/broken",
        "1.0",
        dockerfile,
        &callbacks,
    );
    assert_eq!(post_job(&sim, &body).await.status, 202);
    let cbs = callbacks.wait("failed callback", |h| h.len() >= 2).await;
    assert_eq!(cbs[0].body["status"], "running");
    assert_eq!(
        cbs[1].body,
        json!({
            "status": "failed",
            "message": "The command '/bin/sh -c pip install nonexistent-pkg' returned a non-zero code: 1",
            "log_tail": "ERROR: No matching distribution found for nonexistent-pkg"
        })
    );
    assert_eq!(
        cbs[1].headers.get("authorization").unwrap(),
        "Bearer runner-token"
    );
    let j = wait_job(&sim, "build-fail", |j| j.callbacks.len() == 2).await;
    assert_eq!(j.outcome, RunnerOutcome::Failed);
    assert!(j.pushed.is_none() && j.digest.is_none());
    settle().await;
    let st = sim.state();
    assert!(st.artifacts.is_empty());
    assert_eq!(st.counts.repositories, 0);
    assert_eq!(callbacks.hooks().len(), 2);
}

#[tokio::test]
async fn silent_marker_never_calls_back_nor_pushes() {
    let (sim, _api, _) = start(opts()).await;
    let callbacks = Receiver::start().await;
    let dockerfile = format!("{DOCKERFILE}\n# sim: silent");
    let body = job(
        "build-silent",
        "catalog/quiet",
        "1",
        &dockerfile,
        &callbacks,
    );
    let r = post_job(&sim, &body).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["accepted"], true);
    settle().await;
    assert_eq!(*callbacks.hits.lock().unwrap(), 0);
    let j = sim.runner_job("build-silent").unwrap();
    assert_eq!(j.outcome, RunnerOutcome::Silent);
    assert!(j.callbacks.is_empty());
    assert!(sim.state().artifacts.is_empty());
}

#[tokio::test]
async fn control_api_fail_next_and_silent_next() {
    let (sim, api, _) = start(opts()).await;
    let callbacks = Receiver::start().await;

    let r = api
        .post(
            "/_sim/runner",
            json!({"fail_next": 1, "silent_next": 1, "message": "boom: exit code 2"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"fail_next": 1, "silent_next": 1, "message": "boom: exit code 2", "log_tail": null})
    );
    // merge: only log_tail changes
    let r = api
        .post("/_sim/runner", json!({"log_tail": "E: oops"}))
        .await;
    assert_eq!(r.json()["fail_next"], 1);
    assert_eq!(r.json()["log_tail"], "E: oops");
    assert_eq!(
        api.post("/_sim/runner", json!({"fail_nxt": 1}))
            .await
            .status,
        400
    );

    // silent_next is consumed first, then fail_next, then jobs build again
    for (id, repo) in [
        ("b-1", "catalog/a"),
        ("b-2", "catalog/b"),
        ("b-3", "catalog/c"),
    ] {
        assert_eq!(
            post_job(&sim, &job(id, repo, "1", DOCKERFILE, &callbacks))
                .await
                .status,
            202
        );
    }
    assert_eq!(
        sim.runner(),
        RunnerControl {
            fail_next: 0,
            silent_next: 0,
            message: Some("boom: exit code 2".into()),
            log_tail: Some("E: oops".into()),
        }
    );
    let failed = wait_job(&sim, "b-2", |j| j.outcome == RunnerOutcome::Failed).await;
    let last = failed.callbacks.last().unwrap();
    assert_eq!(
        last.payload,
        json!({"status": "failed", "message": "boom: exit code 2", "log_tail": "E: oops"})
    );
    wait_job(&sim, "b-3", |j| j.outcome == RunnerOutcome::Pushed).await;
    settle().await;
    assert_eq!(
        sim.runner_job("b-1").unwrap().outcome,
        RunnerOutcome::Silent
    );
    let st = sim.state();
    let repos: Vec<_> = st.artifacts.iter().map(|a| a.repository.as_str()).collect();
    assert_eq!(repos, vec!["catalog/c"]);
    assert_eq!(st.runner.fail_next, 0);

    // DELETE resets
    let r = api.delete("/_sim/runner").await;
    assert_eq!(
        r.json(),
        json!({"fail_next": 0, "silent_next": 0, "message": null, "log_tail": null})
    );
    let jobs = api.get("/_sim/runner/jobs").await.json();
    assert_eq!(jobs.as_array().unwrap().len(), 3);

    // the same through Rust: default failure message
    sim.set_runner(RunnerControlPatch {
        fail_next: Some(1),
        ..Default::default()
    });
    assert_eq!(sim.runner().fail_next, 1);
    post_job(&sim, &job("b-4", "catalog/d", "1", DOCKERFILE, &callbacks)).await;
    let j = wait_job(&sim, "b-4", |j| j.outcome == RunnerOutcome::Failed).await;
    let last = wait_job(&sim, "b-4", |j| j.callbacks.len() == 2)
        .await
        .callbacks
        .pop()
        .unwrap();
    assert_eq!(j.mode, "dockerfile");
    assert_eq!(last.payload["message"], DEFAULT_FAIL_MESSAGE);
    assert_eq!(last.payload["log_tail"], DEFAULT_FAIL_LOG_TAIL);
    sim.set_runner(RunnerControlPatch {
        silent_next: Some(2),
        ..Default::default()
    });
    sim.reset_runner();
    assert_eq!(sim.runner(), RunnerControl::default());
    sim.clear_runner_jobs();
    assert!(sim.runner_jobs().is_empty());
}

#[tokio::test]
async fn callback_errors_are_recorded_and_retried_at_most_twice() {
    let (sim, _api, _) = start(opts()).await;
    // a port nobody listens on
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut body = json!({
        "build_id": "build-dead", "mode": "packages",
        "dockerfile": DOCKERFILE,
        "push": {"registry": "r", "repository": "catalog/dead", "tag": "1"},
        "callback": {"url": format!("http://{dead}/status"), "token": "t"}
    });
    assert_eq!(post_job(&sim, &body).await.status, 202);
    let j = wait_job(&sim, "build-dead", |j| j.outcome == RunnerOutcome::Pushed).await;
    // two messages, three attempts each, all transport errors; the push still happens
    assert_eq!(j.callbacks.len(), 6, "{:#?}", j.callbacks);
    assert!(j.callbacks.iter().all(|c| c.status.is_none()
        && c.error.as_deref().unwrap().starts_with("Put \"http://")));
    assert_eq!(
        j.callbacks.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 1, 2, 3]
    );
    assert_eq!(sim.state().artifacts.len(), 1);

    // 5xx is retried, 4xx is not
    let callbacks = Receiver::start().await;
    callbacks.script.lock().unwrap().extend([503, 401]);
    body["build_id"] = json!("build-flaky");
    body["callback"]["url"] = json!(format!("http://{}/status", callbacks.addr));
    assert_eq!(post_job(&sim, &body).await.status, 202);
    let j = wait_job(&sim, "build-flaky", |j| {
        j.outcome == RunnerOutcome::Pushed && j.callbacks.len() == 3
    })
    .await;
    let seen: Vec<_> = j.callbacks.iter().map(|c| (c.attempt, c.status)).collect();
    assert_eq!(seen, vec![(1, Some(503)), (2, Some(401)), (1, Some(200))]);
    assert_eq!(
        j.callbacks[1].error.as_deref(),
        Some("unexpected status code 401")
    );
}

//! Test helpers: a hyper client for the simulator and a webhook receiver.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use harbor_sim::{SimOptions, Simulator};
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

pub fn opts() -> SimOptions {
    SimOptions {
        execution_step: Duration::from_millis(40),
        webhook_timeout: Duration::from_millis(500),
        webhook_retry_delay: Duration::from_millis(20),
        ..SimOptions::default()
    }
}

pub async fn start(opts: SimOptions) -> (Simulator, Api, Api) {
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), opts.clone())
        .await
        .expect("start");
    let admin = Api::new(&sim.url(), Some((&opts.username, &opts.password)));
    let anon = Api::new(&sim.url(), None);
    (sim, admin, anon)
}

#[derive(Debug)]
pub struct R {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl R {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, k: &str) -> Option<String> {
        self.headers.get(k).map(|v| v.to_str().unwrap().to_string())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The `{"errors":[{code,message}]}` pair.
    pub fn error(&self) -> (String, String) {
        let v = self.json();
        (
            v["errors"][0]["code"].as_str().unwrap().to_string(),
            v["errors"][0]["message"].as_str().unwrap().to_string(),
        )
    }
    /// Last path segment of `Location`, as an id.
    pub fn location_id(&self) -> i64 {
        self.header("Location")
            .expect("Location")
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    auth: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub fn new(base: &str, cred: Option<(&str, &str)>) -> Api {
        Api {
            base: base.to_string(),
            auth: cred.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<R, String> {
        let uri = if path.starts_with("/_sim") || path.starts_with("/api") {
            format!("{}{}", self.base, path)
        } else {
            format!("{}/api/v2.0{}", self.base, path)
        };
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(a) = &self.auth {
            b = b.header("Authorization", a);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = match body {
            Some(v) => {
                b = b.header("Content-Type", "application/json");
                Bytes::from(serde_json::to_vec(v).unwrap())
            }
            None => Bytes::new(),
        };
        let resp = self
            .client
            .request(b.body(Full::new(body)).unwrap())
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Ok(R {
            status,
            headers,
            body,
        })
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> R {
        self.try_send(method, path, body, headers)
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> R {
        self.send(Method::GET, path, None, &[]).await
    }
    pub async fn head(&self, path: &str) -> R {
        self.send(Method::HEAD, path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: Value) -> R {
        self.send(Method::POST, path, Some(&body), &[]).await
    }
    pub async fn put(&self, path: &str, body: Option<Value>) -> R {
        self.send(Method::PUT, path, body.as_ref(), &[]).await
    }
    pub async fn delete(&self, path: &str) -> R {
        self.send(Method::DELETE, path, None, &[]).await
    }
}

/// One webhook delivery as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Hook {
    pub method: String,
    /// Path and query of the request.
    pub path: String,
    pub headers: HeaderMap,
    pub raw: String,
    pub body: Value,
}

/// A webhook (or build-callback) receiver answering with scripted statuses (then 200).
/// Only requests answered 200 are kept in `hooks`.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub hooks: Arc<Mutex<Vec<Hook>>>,
    pub script: Arc<Mutex<Vec<u16>>>,
    pub hits: Arc<Mutex<u32>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rx = Receiver {
            addr: listener.local_addr().unwrap(),
            hooks: Arc::default(),
            script: Arc::default(),
            hits: Arc::default(),
        };
        let r = rx.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let r = r.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let r = r.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let bytes = body.collect().await.unwrap().to_bytes();
                            *r.hits.lock().unwrap() += 1;
                            let scripted = {
                                let mut s = r.script.lock().unwrap();
                                if s.is_empty() {
                                    None
                                } else {
                                    Some(s.remove(0))
                                }
                            };
                            let status = scripted.unwrap_or(200);
                            if status == 200 {
                                r.hooks.lock().unwrap().push(Hook {
                                    method: parts.method.to_string(),
                                    path: parts
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default(),
                                    headers: parts.headers,
                                    raw: String::from_utf8_lossy(&bytes).into_owned(),
                                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                                });
                            }
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        rx
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/harbor", self.addr)
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    pub fn of_type(&self, t: &str) -> Vec<Hook> {
        self.hooks()
            .into_iter()
            .filter(|h| h.body["type"] == t)
            .collect()
    }

    /// Waits until `pred` holds for the received hooks.
    pub async fn wait(&self, what: &str, pred: impl Fn(&[Hook]) -> bool) -> Vec<Hook> {
        for _ in 0..200 {
            let h = self.hooks();
            if pred(&h) {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for {what}: got {:#?}", self.hooks());
    }
}

// ---- the §8 import flow, as berth performs it ----

pub async fn ensure_project(api: &Api, name: &str) {
    let r = api.head(&format!("/projects?project_name={name}")).await;
    if r.status == 404 {
        let r = api
            .post(
                "/projects",
                json!({"project_name": name, "metadata": {"public": "false"}}),
            )
            .await;
        assert!(r.status == 201 || r.status == 409, "{r:?}");
    } else {
        assert_eq!(r.status, 200);
    }
}

pub async fn ensure_registry(api: &Api, name: &str, rtype: &str, url: &str, cred: Value) -> i64 {
    let r = api
        .get(&format!("/registries?q=type%3D{rtype}&page_size=100"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for reg in r.json().as_array().unwrap() {
        if reg["type"] == rtype && reg["url"] == url {
            return reg["id"].as_i64().unwrap();
        }
    }
    let r = api
        .post(
            "/registries",
            json!({"name": name, "type": rtype, "url": url, "insecure": false, "credential": cred}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.body.is_empty());
    r.location_id()
}

pub fn policy_body(
    name: &str,
    registry: i64,
    repo: &str,
    tag: &str,
    ns: &str,
    count: i64,
) -> Value {
    json!({
        "name": name,
        "description": "",
        "src_registry": {"id": registry},
        "dest_namespace": ns,
        "dest_namespace_replace_count": count,
        "filters": [{"type": "name", "value": repo},
                    {"type": "tag", "value": tag, "decoration": "matches"}],
        "trigger": {"type": "manual"},
        "override": true,
        "enabled": true,
        "replicate_deletion": false,
        "speed": 0
    })
}

pub async fn ensure_policy(api: &Api, body: Value) -> i64 {
    let name = body["name"].as_str().unwrap().to_string();
    let r = api
        .get(&format!("/replication/policies?q=name%3D{name}"))
        .await;
    assert_eq!(r.status, 200);
    let list = r.json();
    if let Some(p) = list.as_array().unwrap().first() {
        let id = p["id"].as_i64().unwrap();
        let r = api
            .put(&format!("/replication/policies/{id}"), Some(body))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        return id;
    }
    let r = api.post("/replication/policies", body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.location_id()
}

pub async fn start_execution(api: &Api, policy: i64) -> i64 {
    let r = api
        .post("/replication/executions", json!({"policy_id": policy}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        r.header("Location")
            .unwrap()
            .starts_with("/api/v2.0/replication/executions/")
    );
    r.location_id()
}

/// Polls until the execution status is final.
pub async fn wait_execution(api: &Api, id: i64) -> Value {
    for _ in 0..400 {
        let r = api.get(&format!("/replication/executions/{id}")).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        if v["status"] != "InProgress" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("execution {id} never finished");
}

/// Everything from "ensure project" to a final execution.
#[allow(clippy::too_many_arguments)]
pub async fn import(
    api: &Api,
    reg_name: &str,
    rtype: &str,
    url: &str,
    repo: &str,
    tag: &str,
    project: &str,
    count: i64,
) -> (i64, Value) {
    ensure_project(api, project).await;
    let reg = ensure_registry(api, reg_name, rtype, url, json!({})).await;
    let pname = format!("import-{}-{}", repo.replace('/', "-"), tag);
    let policy = ensure_policy(api, policy_body(&pname, reg, repo, tag, project, count)).await;
    let exec = start_execution(api, policy).await;
    (exec, wait_execution(api, exec).await)
}

static HOOK_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

pub async fn add_webhook(api: &Api, project: &str, address: &str, events: &[&str]) -> i64 {
    let r = api
        .post(
            &format!("/projects/{project}/webhook/policies"),
            json!({
                "name": format!("catalog-callback-{}", HOOK_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
                "description": "",
                "targets": [{"type": "http", "address": address, "auth_header": "Bearer s3cr3t",
                             "skip_cert_verify": false, "payload_format": "Default"}],
                "event_types": events,
                "enabled": true
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.location_id()
}

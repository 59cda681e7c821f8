//! A small fake Kubernetes API server, faithful to the real API's paths and status shapes
//! for what berth-runner's Kubernetes executor uses: `batch/v1` Jobs (create, get, delete
//! with `propagationPolicy`), `v1` Secrets (create) and Pods (list by `job-name` label).
//! Its "kubelet" runs a Job's pod as a local process: the container's command and args,
//! its env resolved from the Secret, its `emptyDir` work volume a temporary directory, its
//! termination message a file, its output `<dir>/<job>/log`. A pod's exit marks the Job Complete or Failed (in
//! `status.conditions`, as the Job controller does); deleting a Job sends its pod SIGTERM.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

pub const NAMESPACE: &str = "berth-builds";
pub const TOKEN: &str = "fake-service-account-token";

#[derive(Default)]
pub struct State {
    pub jobs: HashMap<String, Value>,
    pub secrets: HashMap<String, Value>,
    pub pods: HashMap<String, Pod>,
    /// `DELETE` requests: (job name, query string).
    pub deletions: Vec<(String, String)>,
    /// Requests without the service-account token.
    pub unauthorized: usize,
}

pub struct Pod {
    child: Option<Child>,
    pub exit_code: Option<i32>,
    termination_log: PathBuf,
}

pub struct FakeKubernetes {
    pub url: String,
    pub token_file: PathBuf,
    pub state: Arc<Mutex<State>>,
}

impl FakeKubernetes {
    /// Serves on loopback; `programs` maps a container command to the local executable.
    pub fn start(dir: &Path, programs: HashMap<String, PathBuf>) -> FakeKubernetes {
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let served = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = served.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        let kubelet = state.clone();
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            loop {
                run_kubelet(&kubelet, &dir, &programs);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        FakeKubernetes {
            url,
            token_file,
            state,
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn serve(stream: std::net::TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let (mut length, mut auth) = (0, String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) <= 2 {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or(("", ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "authorization" => auth = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let mut parts = request.split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (code, reply) = if auth != format!("Bearer {TOKEN}") {
        state.lock().unwrap().unauthorized += 1;
        (401, status(401, "Unauthorized", "Unauthorized"))
    } else {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        route(&method, path, query, body, &mut state.lock().unwrap())
    };
    let text = reply.to_string();
    let mut out = &stream;
    let _ = write!(
        out,
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn route(method: &str, path: &str, query: &str, body: Value, s: &mut State) -> (u16, Value) {
    let jobs = format!("/apis/batch/v1/namespaces/{NAMESPACE}/jobs");
    let secrets = format!("/api/v1/namespaces/{NAMESPACE}/secrets");
    let pods = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    let created = |mut object: Value| {
        object["metadata"]["uid"] = json!(format!(
            "uid-{}",
            object["metadata"]["name"].as_str().unwrap_or("")
        ));
        object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        object
    };
    match method {
        "POST" if path == jobs || path == secrets => {
            let Some(name) = body["metadata"]["name"].as_str().map(str::to_owned) else {
                return (422, status(422, "Invalid", "metadata.name: Required value"));
            };
            let (kind, store) = if path == jobs {
                ("jobs.batch", &mut s.jobs)
            } else {
                ("secrets", &mut s.secrets)
            };
            if store.contains_key(&name) {
                return (
                    409,
                    status(
                        409,
                        "AlreadyExists",
                        &format!("{kind} \"{name}\" already exists"),
                    ),
                );
            }
            let mut object = created(body);
            if path == jobs {
                object["status"] = json!({});
            }
            store.insert(name, object.clone());
            (201, object)
        }
        "GET" if path == pods => {
            let selector = query
                .strip_prefix("labelSelector=job-name%3D")
                .unwrap_or("");
            let items: Vec<Value> = s
                .pods
                .iter()
                .filter(|(job, _)| job.as_str() == selector)
                .map(|(job, pod)| {
                    let state = match pod.exit_code {
                        Some(code) => json!({"terminated": {"exitCode": code,
                            "message": std::fs::read_to_string(&pod.termination_log).unwrap_or_default()}}),
                        None => json!({"running": {}}),
                    };
                    json!({"metadata": {"name": format!("{job}-x7k2p"), "labels": {"job-name": job}},
                           "status": {"containerStatuses": [{"name": "build", "state": state}]}})
                })
                .collect();
            (
                200,
                json!({"kind": "PodList", "apiVersion": "v1", "items": items}),
            )
        }
        "GET" | "DELETE" if path.starts_with(&format!("{jobs}/")) => {
            let name = &path[jobs.len() + 1..];
            if method == "DELETE" {
                s.deletions.push((name.to_owned(), query.to_owned()));
                let Some(job) = s.jobs.remove(name) else {
                    return (
                        404,
                        status(404, "NotFound", &format!("jobs.batch \"{name}\" not found")),
                    );
                };
                // The pod goes (in the background) and the Secret the Job owns with it.
                if let Some(pod) = s.pods.get_mut(name)
                    && let Some(child) = &pod.child
                {
                    let _ = Command::new("kill")
                        .args(["-TERM", &child.id().to_string()])
                        .status();
                }
                s.secrets.retain(|_, secret| {
                    secret["metadata"]["ownerReferences"][0]["uid"] != job["metadata"]["uid"]
                });
                return (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
                                    "details": {"name": name, "group": "batch", "kind": "jobs"}}),
                );
            }
            match s.jobs.get(name) {
                Some(job) => (200, job.clone()),
                None => (
                    404,
                    status(404, "NotFound", &format!("jobs.batch \"{name}\" not found")),
                ),
            }
        }
        _ => (
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        ),
    }
}

/// Starts the pods of Jobs whose Secret exists, and records the ends of those that exited.
fn run_kubelet(state: &Mutex<State>, dir: &Path, programs: &HashMap<String, PathBuf>) {
    let mut s = state.lock().unwrap();
    // Pods of deleted Jobs end (SIGTERM): reap them.
    let State { jobs, pods, .. } = &mut *s;
    for (name, pod) in pods.iter_mut() {
        if !jobs.contains_key(name)
            && pod.exit_code.is_none()
            && let Some(Ok(Some(exit))) = pod.child.as_mut().map(Child::try_wait)
        {
            pod.exit_code = Some(exit.code().unwrap_or(143));
        }
    }
    let names: Vec<String> = s.jobs.keys().cloned().collect();
    for name in names {
        let State { jobs, pods, .. } = &mut *s;
        if let Some(pod) = pods.get_mut(&name) {
            if pod.exit_code.is_none()
                && let Some(Ok(Some(exit))) = pod.child.as_mut().map(Child::try_wait)
            {
                let code = exit.code().unwrap_or(137);
                pod.exit_code = Some(code);
                let job = jobs.get_mut(&name).unwrap();
                job["status"] = if code == 0 {
                    json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
                } else {
                    json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})
                };
            }
            continue;
        }
        let job = s.jobs[&name].clone();
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        let mut env = Vec::new();
        let mut ready = true;
        for e in container["env"].as_array().into_iter().flatten() {
            let value = match e["valueFrom"]["secretKeyRef"].as_object() {
                Some(r) => {
                    let secret = r["name"].as_str().unwrap();
                    match s.secrets.get(secret) {
                        Some(sec) => String::from_utf8(
                            base64::engine::general_purpose::STANDARD
                                .decode(
                                    sec["data"][r["key"].as_str().unwrap()]
                                        .as_str()
                                        .unwrap_or(""),
                                )
                                .unwrap(),
                        )
                        .unwrap(),
                        // CreateContainerConfigError until the Secret exists.
                        None => {
                            ready = false;
                            break;
                        }
                    }
                }
                None => e["value"].as_str().unwrap_or("").to_owned(),
            };
            env.push((e["name"].as_str().unwrap().to_owned(), value));
        }
        if !ready {
            continue;
        }
        // The emptyDir volume and the termination message file, on this machine.
        let pod_dir = dir.join(&name);
        std::fs::create_dir_all(pod_dir.join("work")).unwrap();
        let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
        let termination_log = pod_dir.join("termination-log");
        let log = pod_dir.join("log");
        let command = container["command"][0].as_str().unwrap();
        let program = programs
            .get(command)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(command));
        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                a.as_str()
                    .unwrap()
                    .replace(mount, &pod_dir.join("work").display().to_string())
            })
            .collect();
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .env("BERTH_RUNNER_TERMINATION_LOG", &termination_log)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        s.pods.insert(
            name,
            Pod {
                child: Some(child),
                exit_code: None,
                termination_log,
            },
        );
    }
}

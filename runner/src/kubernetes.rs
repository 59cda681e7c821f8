//! The Kubernetes executor: each build runs as a `batch/v1` Job whose pod runs
//! `berth-runner build-one` (the same buildah build, reporting to berth itself). The runner
//! keeps the queue and the limits: a Job is created when a build gets a slot, watched
//! (polled) until it completes or fails, and deleted (`propagationPolicy=Background`) when
//! berth cancels the build or its deadline passes.
//!
//! The API is plain JSON over HTTPS with the pod's service-account token and CA, from the
//! standard paths unless flags say otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use clap::Args;
use serde_json::{Value, json};
use sha2::Digest;

use crate::Config;
use crate::buildah::Stop;
use crate::jobs::Job;

const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The key of the build's Secret that holds its job (with the push credentials).
const JOB_KEY: &str = "job.json";
/// Slack past the Job's own activeDeadlineSeconds before the runner deletes it itself.
const DEADLINE_GRACE: Duration = Duration::from_secs(60);

#[derive(Args, Clone, Debug)]
pub struct KubeConfig {
    /// The API server; in a pod, `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    #[arg(long, env = "BERTH_RUNNER_KUBE_API_URL")]
    pub kube_api_url: Option<String>,
    /// The bearer token file (re-read for each request: projected tokens rotate).
    #[arg(
        long,
        env = "BERTH_RUNNER_KUBE_TOKEN_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    pub kube_token_file: PathBuf,
    /// The CA bundle the API server's certificate is checked against.
    #[arg(
        long,
        env = "BERTH_RUNNER_KUBE_CA_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    )]
    pub kube_ca_file: PathBuf,
    /// The namespace build Jobs run in; the runner pod's own by default.
    #[arg(long, env = "BERTH_RUNNER_KUBE_NAMESPACE")]
    pub kube_namespace: Option<String>,
    /// The image build Jobs run (berth-runner on buildah, as the runner's own).
    #[arg(long, env = "BERTH_RUNNER_KUBE_JOB_IMAGE")]
    pub kube_job_image: Option<String>,
    /// The service account build pods run as (none of the API is needed there).
    #[arg(long, env = "BERTH_RUNNER_KUBE_JOB_SERVICE_ACCOUNT")]
    pub kube_job_service_account: Option<String>,
    /// A build pod's CPU limit (and request: a quarter of it).
    #[arg(long, default_value = "4")]
    pub kube_job_cpu: String,
    /// A build pod's memory limit (and request).
    #[arg(long, default_value = "8Gi")]
    pub kube_job_memory: String,
    /// A build pod's ephemeral storage limit (its work directory).
    #[arg(long, default_value = "100Gi")]
    pub kube_job_storage: String,
    /// How often a build's Job is polled.
    #[arg(long, env = "BERTH_RUNNER_KUBE_POLL_MILLIS", default_value_t = 2000)]
    pub kube_poll_millis: u64,
}

/// What the executor needs resolved once at start-up.
pub struct Kubernetes {
    api: String,
    namespace: String,
    image: String,
    token_file: PathBuf,
    agent: ureq::Agent,
}

impl Kubernetes {
    pub fn new(k: &KubeConfig) -> anyhow::Result<Kubernetes> {
        let api = match &k.kube_api_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
                    anyhow::anyhow!("--executor kubernetes outside a pod needs --kube-api-url")
                })?;
                let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or("443".into());
                if host.contains(':') {
                    format!("https://[{host}]:{port}")
                } else {
                    format!("https://{host}:{port}")
                }
            }
        };
        let namespace = match &k.kube_namespace {
            Some(ns) => ns.clone(),
            None => std::fs::read_to_string(format!("{SERVICE_ACCOUNT}/namespace"))
                .map(|s| s.trim().to_owned())
                .map_err(|e| {
                    anyhow::anyhow!("no --kube-namespace and no service-account namespace: {e}")
                })?,
        };
        let image = k
            .kube_job_image
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--executor kubernetes needs --kube-job-image"))?;
        let mut agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30));
        if api.starts_with("https://") {
            agent = agent.tls_config(Arc::new(tls_config(&k.kube_ca_file)?));
        }
        Ok(Kubernetes {
            api,
            namespace,
            image,
            token_file: k.kube_token_file.clone(),
            agent: agent.build(),
        })
    }

    /// One API call: `(status, body)`, or the transport error.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            format!(
                "cannot read the service-account token {}: {e}",
                self.token_file.display()
            )
        })?;
        let request = self
            .agent
            .request(method, &format!("{}{path}", self.api))
            .set("authorization", &format!("Bearer {}", token.trim()))
            .set("accept", "application/json");
        let answer = tokio::task::spawn_blocking(move || match body {
            Some(b) => request.send_json(b),
            None => request.call(),
        })
        .await
        .map_err(|e| e.to_string())?;
        let response = match answer {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(format!("the Kubernetes API did not answer: {e}")),
        };
        let status = response.status();
        let body = tokio::task::spawn_blocking(move || {
            response.into_json::<Value>().unwrap_or(Value::Null)
        })
        .await
        .unwrap_or(Value::Null);
        Ok((status, body))
    }

    fn jobs(&self) -> String {
        format!("/apis/batch/v1/namespaces/{}/jobs", self.namespace)
    }

    /// Runs one build as a Job; returns the pushed digest (the pod's termination message).
    pub async fn run_job(&self, config: &Config, job: &Arc<Job>) -> Result<String, Stop> {
        let spec = &job.spec;
        let name = job_name(&spec.build_id);
        let log = |line: String| job.log.lock().expect("log lock").push(&line);
        let fail = |what: &str, (status, body): (u16, Value)| {
            Stop::Failed(format!(
                "{what}: HTTP {status}: {}",
                body["message"].as_str().unwrap_or("no message")
            ))
        };
        let manifest = job_manifest(config, &self.image, &self.namespace, &name, &spec.build_id);
        let created = self
            .call("POST", &self.jobs(), Some(manifest))
            .await
            .map_err(Stop::Failed)?;
        let uid = match created {
            (201, body) => body["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            other => return Err(fail("cannot create the build's Kubernetes Job", other)),
        };
        log(format!("created Job {}/{name}", self.namespace));
        // The job, with the push credentials, reaches the pod through a Secret the Job owns
        // (garbage-collected with it). The pod waits for it to exist.
        let one = serde_json::to_value(JobForPod::from(config, job)).expect("JSON");
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels(&name),
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid}]},
            "data": {JOB_KEY: base64::engine::general_purpose::STANDARD.encode(one.to_string())},
        });
        let secrets = format!("/api/v1/namespaces/{}/secrets", self.namespace);
        match self.call("POST", &secrets, Some(secret)).await {
            Ok((201, _)) => {}
            Ok(other) => {
                self.delete(&name).await;
                return Err(fail("cannot create the build's Secret", other));
            }
            Err(e) => {
                self.delete(&name).await;
                return Err(Stop::Failed(e));
            }
        }

        let mut cancel = job.cancel.subscribe();
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(config.timeout_seconds)
            + DEADLINE_GRACE;
        let poll = Duration::from_millis(config.kube.kube_poll_millis.max(100));
        loop {
            let stop = tokio::select! {
                _ = tokio::time::sleep(poll) => None,
                _ = cancel.wait_for(Option::is_some) => Some(Stop::Cancelled(
                    job.cancel.borrow().clone().unwrap_or_default(),
                )),
                _ = tokio::time::sleep_until(deadline) => Some(Stop::Failed(format!(
                    "the build ran longer than the runner's timeout of {} seconds",
                    config.timeout_seconds
                ))),
            };
            if let Some(stop) = stop {
                self.delete(&name).await;
                let (Stop::Cancelled(reason) | Stop::Failed(reason)) = &stop;
                log(format!("stopped: {reason} (deleted Job {name})"));
                return Err(stop);
            }
            let status = match self
                .call("GET", &format!("{}/{name}", self.jobs()), None)
                .await
            {
                Ok((200, body)) => body["status"].clone(),
                Ok((404, _)) => {
                    return Err(Stop::Failed(format!("the build's Job {name} was deleted")));
                }
                Ok((code, _)) => {
                    tracing::warn!(build = %spec.build_id, code, "cannot read the build's Job");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(build = %spec.build_id, error = %e, "cannot read the build's Job");
                    continue;
                }
            };
            let condition = |kind: &str| {
                status["conditions"]
                    .as_array()
                    .and_then(|cs| {
                        cs.iter()
                            .find(|c| c["type"] == kind && c["status"] == "True")
                    })
                    .cloned()
            };
            if condition("Complete").is_some() {
                log(format!("Job {name} completed"));
                return Ok(self.pushed_digest(&name).await);
            }
            if let Some(failed) = condition("Failed") {
                let message = format!(
                    "the build's Kubernetes Job failed ({}): {}",
                    failed["reason"].as_str().unwrap_or("unknown"),
                    failed["message"].as_str().unwrap_or("no message")
                );
                log(message.clone());
                return Err(Stop::Failed(message));
            }
        }
    }

    /// The digest `build-one` wrote to its termination message.
    async fn pushed_digest(&self, name: &str) -> String {
        let pods = format!(
            "/api/v1/namespaces/{}/pods?labelSelector=job-name%3D{name}",
            self.namespace
        );
        let Ok((200, list)) = self.call("GET", &pods, None).await else {
            return String::new();
        };
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|pod| {
                pod["status"]["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .find_map(|c| {
                c["state"]["terminated"]["message"]
                    .as_str()
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_default()
    }

    /// Deletes a build's Job and, in the background, its pod and Secret.
    async fn delete(&self, name: &str) {
        let path = format!("{}/{name}?propagationPolicy=Background", self.jobs());
        match self.call("DELETE", &path, None).await {
            Ok((200 | 202 | 404, _)) => {}
            Ok((code, body)) => {
                tracing::warn!(job = name, code, message = %body["message"], "cannot delete the build's Job")
            }
            Err(e) => tracing::warn!(job = name, error = %e, "cannot delete the build's Job"),
        }
    }
}

/// The job as the pod gets it: berth's, with the runner's push credentials filled in.
#[derive(serde::Serialize)]
struct JobForPod {
    build_id: String,
    mode: crate::jobs::Mode,
    dockerfile: Option<String>,
    base_image: Option<String>,
    environment_id: Option<String>,
    push: Value,
    callback: Value,
}

impl JobForPod {
    fn from(config: &Config, job: &Job) -> JobForPod {
        let s = &job.spec;
        JobForPod {
            build_id: s.build_id.clone(),
            mode: s.mode,
            dockerfile: s.dockerfile.clone(),
            base_image: s.base_image.clone(),
            environment_id: s.environment_id.clone(),
            push: json!({
                "registry": s.push.registry, "repository": s.push.repository, "tag": s.push.tag,
                "username": s.push.username.clone().or(config.buildah.registry_username.clone()),
                "password": s.push.password.clone().or(config.buildah.registry_password.clone()),
            }),
            callback: json!({"url": s.callback.url, "token": s.callback.token}),
        }
    }
}

/// A DNS-1123 name for a build's Job (and Secret): its id lowercased, other characters as
/// `-`, and a hash of the id so two ids never share a name.
pub fn job_name(build_id: &str) -> String {
    let safe: String = build_id
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let hash = sha2::Sha256::digest(build_id.as_bytes());
    format!(
        "berth-build-{}-{:02x}{:02x}{:02x}{:02x}",
        safe.trim_matches('-'),
        hash[0],
        hash[1],
        hash[2],
        hash[3]
    )
}

fn labels(name: &str) -> Value {
    json!({"app.kubernetes.io/name": "berth-build", "app.kubernetes.io/managed-by": "berth-runner", "berth.dev/build": name})
}

/// The Job: one pod, never retried, rootless buildah (as deploy/runner.yaml runs the
/// runner), deadline and resources from the runner's limits.
fn job_manifest(
    config: &Config,
    image: &str,
    namespace: &str,
    name: &str,
    build_id: &str,
) -> Value {
    let k = &config.kube;
    let mut args = vec![
        "build-one".to_owned(),
        "--work-dir=/var/lib/berth-runner".into(),
        format!("--isolation={}", config.buildah.isolation),
        format!("--tls-verify={}", config.buildah.tls_verify),
        format!("--timeout-seconds={}", config.timeout_seconds),
        format!("--log-tail-bytes={}", config.log_tail_bytes),
    ];
    if let Some(url) = &config.pip_index_url {
        args.push(format!("--pip-index-url={url}"));
    }
    if let Some(url) = &config.apt_mirror {
        args.push(format!("--apt-mirror={url}"));
    }
    let mut pod = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
            "seccompProfile": {"type": "Unconfined"}},
        "containers": [{
            "name": "build",
            "image": image,
            "command": ["berth-runner"],
            "args": args,
            "env": [
                {"name": "BERTH_RUNNER_JOB", "valueFrom": {"secretKeyRef": {"name": name, "key": JOB_KEY}}},
                {"name": "BUILDAH_ISOLATION", "value": config.buildah.isolation},
            ],
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID"]}},
            "resources": {
                "requests": {"cpu": quarter(&k.kube_job_cpu), "memory": k.kube_job_memory},
                "limits": {"cpu": k.kube_job_cpu, "memory": k.kube_job_memory, "ephemeral-storage": k.kube_job_storage},
            },
            "terminationMessagePolicy": "File",
            "volumeMounts": [{"name": "work", "mountPath": "/var/lib/berth-runner"}],
        }],
        "volumes": [{"name": "work", "emptyDir": {"sizeLimit": k.kube_job_storage}}],
    });
    if let Some(sa) = &k.kube_job_service_account {
        pod["serviceAccountName"] = json!(sa);
    }
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(name),
            "annotations": {"berth.dev/build-id": build_id}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": config.timeout_seconds,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels(name), "annotations": {"container.apparmor.security.beta.kubernetes.io/build": "unconfined"}}, "spec": pod},
        },
    })
}

/// A quarter of a CPU quantity (`4` → `1000m`) for the request; the limit when unparsable.
fn quarter(cpu: &str) -> String {
    let millis = match cpu.strip_suffix('m') {
        Some(m) => m.parse::<u64>().ok(),
        None => cpu.parse::<f64>().ok().map(|c| (c * 1000.0) as u64),
    };
    millis.map_or(cpu.to_owned(), |m| format!("{}m", (m / 4).max(1)))
}

fn tls_config(ca_file: &std::path::Path) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| anyhow::anyhow!("cannot read the Kubernetes CA {}: {e}", ca_file.display()))?
    {
        roots.add(
            cert.map_err(|e| anyhow::anyhow!("bad certificate in {}: {e}", ca_file.display()))?,
        )?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_dns_labels_and_distinct() {
        let a = job_name("build-1a2b");
        assert!(a.starts_with("berth-build-build-1a2b-"), "{a}");
        assert_ne!(job_name("Build_1"), job_name("build-1"));
        for id in ["Build_1", "x.y", &"a".repeat(64)] {
            let n = job_name(id);
            assert!(n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
        }
        assert_eq!(quarter("4"), "1000m");
        assert_eq!(quarter("1.5"), "375m");
        assert_eq!(quarter("500m"), "125m");
    }

    #[test]
    fn an_https_api_needs_a_readable_ca() {
        let config = KubeConfig {
            kube_api_url: Some("https://10.0.0.1:443".into()),
            kube_token_file: "/nonexistent/token".into(),
            kube_ca_file: "/nonexistent/ca.crt".into(),
            kube_namespace: Some("berth".into()),
            kube_job_image: Some("img".into()),
            kube_job_service_account: None,
            kube_job_cpu: "4".into(),
            kube_job_memory: "8Gi".into(),
            kube_job_storage: "100Gi".into(),
            kube_poll_millis: 2000,
        };
        let err = Kubernetes::new(&config)
            .err()
            .expect("no CA file")
            .to_string();
        assert!(
            err.contains("cannot read the Kubernetes CA /nonexistent/ca.crt"),
            "{err}"
        );
        let no_image = KubeConfig {
            kube_job_image: None,
            ..config
        };
        let err = Kubernetes::new(&no_image)
            .err()
            .expect("no image")
            .to_string();
        assert!(err.contains("--kube-job-image"), "{err}");
    }
}

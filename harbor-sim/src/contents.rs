//! What is inside the simulated images: realistic image configs for the common GPU image
//! families (in the artifact's `extra_attrs.config`, as Harbor shows them), the manifests
//! through Harbor's registry API (`GET /v2/<repo>/manifests/<ref>`), and Trivy-style
//! vulnerability scans on demand (`POST …/artifacts/{ref}/scan`, `/_sim/scans`), with
//! SCANNING_COMPLETED / SCANNING_FAILED webhooks. `SimOptions::image_contents` switches the
//! configs and the registry API off.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::content::{self, Manifest};
use crate::http::{ApiError, Resp};
use crate::lock;
use crate::model::Pushed;
use crate::server::Inner;
use crate::util::seed_u64;

const PATH: &str = "PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NVIDIA: [&str; 3] = [
    "NVIDIA_VISIBLE_DEVICES=all",
    "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
    "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
];

/// The leading dotted version of `text` after `marker`.
fn version_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let rest = text[start..].trim_start_matches('v');
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let v = rest[..end].trim_end_matches('.');
    (!v.is_empty()).then(|| v.to_owned())
}

fn require_cuda(cuda: &str) -> String {
    let mm: Vec<&str> = cuda.split('.').take(2).collect();
    format!(
        "NVIDIA_REQUIRE_CUDA=cuda>={} brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,driver<471",
        mm.join(".")
    )
}

/// The config (`Env`, `Labels`) an image of a known family carries, as its publishers build
/// it; `None` for other images.
pub fn family_config(registry_host: &str, repo: &str, tag: &str) -> Option<Value> {
    let ngc = registry_host.contains("nvcr.io");
    let mut env: Vec<String> = vec![PATH.into()];
    let mut labels = json!({});
    match repo {
        "pytorch/pytorch" => {
            // pytorch/pytorch's Dockerfile sets PYTORCH_VERSION only; CUDA is in the tag.
            env[0] = "PATH=/opt/conda/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into();
            env.extend(NVIDIA.iter().map(|s| s.to_string()));
            if let Some(v) = version_after(tag, "") {
                env.push(format!("PYTORCH_VERSION={v}"));
            }
            labels = json!({"com.nvidia.volumes.needed": "nvidia_driver",
                "org.opencontainers.image.ref.name": "ubuntu", "org.opencontainers.image.version": "20.04"});
        }
        "nvidia/pytorch" | "nvidia/tensorflow" | "nvidia/tritonserver" if ngc => {
            let release = version_after(tag, "").unwrap_or_else(|| "24.01".into());
            env.extend(NVIDIA.iter().map(|s| s.to_string()));
            env.push("CUDA_VERSION=12.3.2.001".into());
            env.push("CUDNN_VERSION=8.9.7.29+cuda12.2".into());
            env.push(require_cuda("12.3"));
            env.push("PYTHON_VERSION=3.10.12".into());
            match repo {
                "nvidia/pytorch" => {
                    env.push("PYTORCH_VERSION=2.2.0a0+81ea7a4".into());
                    env.push(format!("NVIDIA_PYTORCH_VERSION={release}"));
                }
                "nvidia/tensorflow" => {
                    env.push("TENSORFLOW_VERSION=2.14.0".into());
                    env.push(format!("NVIDIA_TENSORFLOW_VERSION={release}-tf2"));
                }
                _ => {
                    env.push("TRITON_SERVER_VERSION=2.42.0".into());
                    env.push(format!("NVIDIA_TRITON_SERVER_VERSION={release}"));
                }
            }
            labels = json!({"com.nvidia.build.id": "80741402", "com.nvidia.cudnn.version": "8.9.7.29+cuda12.2"});
        }
        "nvidia/cuda" => {
            let cuda = version_after(tag, "").unwrap_or_else(|| "12.2.0".into());
            env.extend(NVIDIA.iter().map(|s| s.to_string()));
            env.push(format!("CUDA_VERSION={cuda}"));
            env.push(require_cuda(&cuda));
            if tag.contains("cudnn") {
                env.push("NV_CUDNN_VERSION=8.9.4.25".into());
            }
            labels = json!({"maintainer": "NVIDIA CORPORATION <cudatools@nvidia.com>"});
        }
        "tensorflow/tensorflow" => {
            // TensorFlow's GPU images carry no CUDA variable.
            env.push("LANG=C.UTF-8".into());
            if tag.contains("gpu") {
                env.extend(NVIDIA.iter().map(|s| s.to_string()));
            }
            labels = json!({"maintainer": "TensorFlow Developers <tensorflow@googlegroups.com>"});
        }
        "vllm/vllm-openai" => {
            env.extend(NVIDIA.iter().map(|s| s.to_string()));
            env.push("CUDA_VERSION=12.1.0".into());
            env.push(require_cuda("12.1"));
            labels = json!({"maintainer": "NVIDIA CORPORATION <cudatools@nvidia.com>"});
        }
        _ if (repo.starts_with("jupyter/") || repo.starts_with("jupyterhub/"))
            && repo.ends_with("-notebook") =>
        {
            env.push("CONDA_DIR=/opt/conda".into());
            env.push("NB_USER=jovyan".into());
            labels = json!({"maintainer": "Jupyter Project <jupyter@googlegroups.com>"});
        }
        _ => return None,
    }
    Some(json!({"Env": env, "Cmd": ["/bin/bash"], "Labels": labels}))
}

/// Puts `config` into every image manifest of `m` (not attestations).
pub fn apply_config(m: &mut Manifest, config: &Value) {
    let is_image = |extra: &Option<Value>| {
        extra
            .as_ref()
            .is_some_and(|e| e["architecture"] != "unknown")
    };
    if is_image(&m.extra_attrs)
        && let Some(extra) = m.extra_attrs.as_mut()
    {
        extra["config"] = config.clone();
    }
    for child in &mut m.children {
        apply_config(&mut child.manifest, config);
    }
}

/// `GET`/`HEAD /v2/<repository>/manifests/<tag or digest>`, with the same basic auth as the
/// API. `None` for paths that are not the registry API.
pub fn registry_api(
    inner: &Arc<Inner>,
    method: &str,
    path: &str,
    user: Option<&str>,
) -> Option<Resp> {
    let rest = path.strip_prefix("/v2/")?;
    if !inner.opts.image_contents {
        return None;
    }
    let (name, reference) = rest.rsplit_once("/manifests/")?;
    if !matches!(method, "GET" | "HEAD") {
        return Some(Resp::error(&ApiError::for_status(405, None)));
    }
    if user.is_none() {
        let mut r = Resp::json(
            401,
            &json!({"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized: authentication required"}]}),
        );
        r.headers
            .push(("Www-Authenticate".into(), "Basic realm=\"harbor\"".into()));
        return Some(r);
    }
    let st = lock(&inner.state);
    let unknown = || {
        Resp::json(
            404,
            &json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": format!("manifest unknown: {name}:{reference}")}]}),
        )
    };
    let Some(repo) = st.repository_by_name(name) else {
        return Some(unknown());
    };
    let id = if reference.starts_with("sha256:") {
        st.artifact_by_digest(repo.id, reference).map(|a| a.id)
    } else {
        st.tag_in_repo(repo.id, reference).map(|t| t.artifact_id)
    };
    let Some(a) = id.and_then(|id| st.artifact(id)) else {
        return Some(unknown());
    };
    let doc = if a.references.is_empty() {
        let layer_media = if a.manifest_media_type == content::OCI_MANIFEST {
            content::OCI_LAYER
        } else {
            content::DOCKER_LAYER
        };
        let config = a.blobs.get(1).cloned().unwrap_or_default();
        let layers = a.blobs.get(2..).unwrap_or_default();
        content::layer_doc(
            &a.manifest_media_type,
            &a.media_type,
            &config,
            layers,
            layer_media,
        )
    } else {
        let manifests: Vec<Value> = a
            .references
            .iter()
            .filter_map(|r| {
                let child = st.artifact(r.child_id)?;
                Some(
                    json!({"mediaType": child.manifest_media_type, "digest": r.child_digest,
                    "size": child.blobs.first().map_or(0, |b| b.1), "platform": r.platform}),
                )
            })
            .collect();
        json!({"schemaVersion": 2, "mediaType": a.manifest_media_type, "manifests": manifests})
            .to_string()
    };
    let mut r = Resp::json(200, &Value::Null);
    r.body = Some((doc.into_bytes().into(), "application/json"));
    r.headers
        .push(("Docker-Content-Digest".into(), a.digest.clone()));
    r.headers.push((
        "X-Manifest-Media-Type".into(),
        a.manifest_media_type.clone(),
    ));
    Some(r)
}

/// What the scans the simulator runs find (`POST /_sim/scans`).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScanSpec {
    /// `Success` (default) or `Error` (the scan fails: SCANNING_FAILED).
    pub status: Option<String>,
    /// Findings per severity (`Critical`, `High`, `Medium`, `Low`, `Unknown`); absent: a few
    /// low and medium ones derived from the digest.
    pub counts: Option<std::collections::BTreeMap<String, i64>>,
    /// With `reference`, scans that artifact now (else the spec applies to later scans).
    pub repository: Option<String>,
    pub reference: Option<String>,
}

const REPORT: &str = "application/vnd.security.vulnerability.report; version=1.1";

/// A `scan_overview` as Harbor renders it.
pub fn overview(spec: &ScanSpec, digest: &str) -> Value {
    let status = spec.status.clone().unwrap_or_else(|| "Success".into());
    let counts = spec.counts.clone().unwrap_or_else(|| {
        let h = seed_u64(digest);
        [
            ("Medium".to_string(), (h % 5) as i64),
            ("Low".to_string(), 3 + (h >> 8) as i64 % 20),
        ]
        .into_iter()
        .collect()
    });
    let severity = ["Critical", "High", "Medium", "Low", "Unknown"]
        .into_iter()
        .find(|s| counts.get(*s).copied().unwrap_or(0) > 0)
        .unwrap_or("None");
    let total: i64 = counts.values().sum();
    let now = chrono::Utc::now();
    let start = now - chrono::Duration::seconds(12);
    let mut report = json!({
        "report_id": crate::util::uuid_v4(),
        "scan_status": status,
        "duration": 12,
        "start_time": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "end_time": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.50.1"},
        "complete_percent": 100,
    });
    if status == "Success" {
        report["severity"] = json!(severity);
        report["summary"] = json!({"total": total, "fixable": total / 2, "summary": counts});
    }
    json!({ REPORT: report })
}

/// Scans artifact `id` after one `execution_step` and sends the webhook.
pub fn scan_later(inner: &Arc<Inner>, id: i64) {
    let inner = inner.clone();
    tokio::spawn(async move {
        tokio::time::sleep(inner.opts.execution_step).await;
        finish_scan(&inner, id);
    });
}

fn finish_scan(inner: &Arc<Inner>, id: i64) {
    let (pushed, overview, failed) = {
        let mut st = lock(&inner.state);
        let Some(a) = st.artifact(id).cloned() else {
            return;
        };
        let spec = st.scan_spec.clone();
        let overview = overview(&spec, &a.digest);
        st.scans.insert(id, overview.clone());
        let project = a
            .repository_name
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let tag = st.tags_of(id).first().map(|t| t.name.clone());
        let failed = spec.status.as_deref().is_some_and(|s| s != "Success");
        (
            Pushed {
                project,
                repo_full_name: a.repository_name.clone(),
                digest: a.digest.clone(),
                tag,
            },
            overview,
            failed,
        )
    };
    let kind = if failed {
        "SCANNING_FAILED"
    } else {
        "SCANNING_COMPLETED"
    };
    let mut payload = crate::engine::artifact_payload(inner, kind, "auto", &pushed, true);
    if let Some(r) = payload.event_data.resources.first_mut() {
        r.scan_overview = Some(overview);
    }
    crate::notify::emit(inner, &pushed.project, payload, "");
}

/// `POST /_sim/scans` (a spec, or a scan now with `repository` and `reference`),
/// `GET` and `DELETE /_sim/scans`.
pub fn control(inner: &Arc<Inner>, method: &str, body: &[u8]) -> Resp {
    match method {
        "GET" => Resp::json(200, &json!(lock(&inner.state).scan_spec)),
        "DELETE" => {
            let mut st = lock(&inner.state);
            st.scan_spec = ScanSpec::default();
            st.scans.clear();
            Resp::json(200, &json!(st.scan_spec))
        }
        "POST" => {
            let spec: ScanSpec = match serde_json::from_slice(body) {
                Ok(s) => s,
                Err(e) => return Resp::json(400, &json!({"error": format!("invalid scan: {e}")})),
            };
            let target = {
                let mut st = lock(&inner.state);
                let target = match (&spec.repository, &spec.reference) {
                    (Some(repo), Some(reference)) => {
                        let Some(r) = st.repository_by_name(repo).map(|r| r.id) else {
                            return Resp::json(
                                404,
                                &json!({"error": format!("no repository {repo}")}),
                            );
                        };
                        let id = if reference.starts_with("sha256:") {
                            st.artifact_by_digest(r, reference).map(|a| a.id)
                        } else {
                            st.tag_in_repo(r, reference).map(|t| t.artifact_id)
                        };
                        let Some(id) = id else {
                            return Resp::json(
                                404,
                                &json!({"error": format!("no artifact {repo}:{reference}")}),
                            );
                        };
                        Some(id)
                    }
                    (None, None) => None,
                    _ => {
                        return Resp::json(
                            400,
                            &json!({"error": "give both repository and reference, or neither"}),
                        );
                    }
                };
                st.scan_spec = ScanSpec {
                    repository: None,
                    reference: None,
                    ..spec
                };
                target
            };
            if let Some(id) = target {
                finish_scan(inner, id);
            }
            Resp::json(200, &json!(lock(&inner.state).scan_spec))
        }
        _ => Resp::json(405, &json!({"error": "use GET, POST or DELETE"})),
    }
}

//! A real registry behind the simulator. Harbor's core learns of pushes from its
//! distribution's notifications; so does the simulator: a CNCF distribution registry
//! (`docker-registry`) configured with `notifications: endpoints:` pointing at
//! `/service/notifications` reports each push, the simulator reads the real manifest and
//! config from that registry (digest, size, platform, layers), records the artifact and
//! sends PUSH_ARTIFACT to the project's webhook policies, as for a simulated push.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::content::Manifest;
use crate::engine;
use crate::http::Resp;
use crate::lock;
use crate::server::Inner;
use crate::util::{sha256_digest, uuid_v4, valid_component, valid_repository_name};

/// Where the registry posts its notifications (Harbor core's path).
pub const NOTIFICATIONS_PATH: &str = "/service/notifications";

/// Manifests the simulator reads (a built image is one of these, not an index).
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Deserialize)]
struct Envelope {
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    action: String,
    target: Target,
    #[serde(default)]
    actor: Option<Actor>,
}

#[derive(Deserialize)]
struct Target {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Deserialize)]
struct Actor {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /service/notifications`: answers at once (the registry does not wait for us),
/// and reads each tagged manifest push from the registry in the background.
pub fn handle(inner: &Arc<Inner>, headers: &HeaderMap, body: &[u8]) -> Resp {
    let Some(registry) = inner.opts.registry_url.clone() else {
        return Resp::json(404, &json!({"error": "no registry is configured"}));
    };
    if let Some(token) = &inner.opts.registry_notification_token {
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(token.as_str()) {
            return Resp::json(401, &json!({"error": "bad notification token"}));
        }
    }
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => return Resp::json(400, &json!({"error": format!("invalid notification: {e}")})),
    };
    for event in envelope.events {
        let tag = event.target.tag.clone().unwrap_or_default();
        let is_manifest = event.target.media_type.contains("manifest");
        if event.action != "push" || tag.is_empty() || !is_manifest {
            continue;
        }
        let Some((project, rest)) = event.target.repository.split_once('/') else {
            continue;
        };
        if !valid_component(project) || !valid_repository_name(rest) {
            continue;
        }
        let inner = inner.clone();
        let registry = registry.clone();
        let operator = event
            .actor
            .and_then(|a| a.name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| crate::runner::RUNNER_OPERATOR.to_owned());
        tokio::spawn(async move {
            let repo = event.target.repository.clone();
            match read_manifest(&inner, &registry, &repo, &event.target.digest).await {
                Ok(manifest) => record(&inner, &repo, &tag, &manifest, &operator),
                Err(e) => tracing::warn!(%repo, %tag, error = %e, "cannot read a pushed manifest"),
            }
        });
    }
    Resp::json(200, &json!({}))
}

fn record(inner: &Arc<Inner>, repo_full: &str, tag: &str, manifest: &Manifest, operator: &str) {
    let project = repo_full.split('/').next().unwrap_or(repo_full);
    let pushes = lock(&inner.state).push_image(project, repo_full, manifest, tag, true);
    engine::push_events(inner, &pushes, operator, &uuid_v4());
}

async fn get(inner: &Inner, url: &str, accept: &str) -> Result<Bytes, String> {
    let req = hyper::Request::get(url)
        .header("accept", accept)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("GET {url}: {e}"))?;
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        inner.client.request(req),
    )
    .await
    .map_err(|_| format!("GET {url}: timed out"))?
    .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("GET {url}: {status}"));
    }
    Ok(body)
}

/// The manifest and its config, as Harbor records an artifact: size is the manifest, the
/// config and every layer; the platform and creation time come from the config.
async fn read_manifest(
    inner: &Inner,
    registry: &str,
    repo: &str,
    digest: &str,
) -> Result<Manifest, String> {
    let registry = registry.trim_end_matches('/');
    let raw = get(
        inner,
        &format!("{registry}/v2/{repo}/manifests/{digest}"),
        MANIFEST_TYPES,
    )
    .await?;
    let real_digest = sha256_digest(&raw);
    if !digest.is_empty() && digest != real_digest {
        return Err(format!("the registry served {real_digest} for {digest}"));
    }
    let doc: Value = serde_json::from_slice(&raw).map_err(|e| format!("manifest: {e}"))?;
    let blob = |v: &Value| {
        (
            v["digest"].as_str().unwrap_or_default().to_owned(),
            v["size"].as_i64().unwrap_or(0),
        )
    };
    let config = blob(&doc["config"]);
    if config.0.is_empty() {
        return Err("the manifest has no config (an index?)".into());
    }
    let layers: Vec<(String, i64)> = doc["layers"]
        .as_array()
        .map(|ls| ls.iter().map(blob).collect())
        .unwrap_or_default();
    let config_doc: Value = serde_json::from_slice(
        &get(
            inner,
            &format!("{registry}/v2/{repo}/blobs/{}", config.0),
            "*/*",
        )
        .await?,
    )
    .map_err(|e| format!("config: {e}"))?;
    let config_media = doc["config"]["mediaType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let size = raw.len() as i64 + config.1 + layers.iter().map(|l| l.1).sum::<i64>();
    let mut blobs = vec![(real_digest.clone(), raw.len() as i64), config];
    blobs.extend(layers);
    Ok(Manifest {
        digest: real_digest,
        manifest_media_type: doc["mediaType"]
            .as_str()
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_owned(),
        media_type: config_media.clone(),
        artifact_type: config_media,
        size,
        extra_attrs: Some(json!({
            "architecture": config_doc["architecture"],
            "os": config_doc["os"],
            "created": config_doc["created"],
            "config": config_doc["config"],
        })),
        annotations: doc.get("annotations").cloned(),
        children: Vec::new(),
        blobs,
    })
}

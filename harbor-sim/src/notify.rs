//! Webhook events and their delivery (§7.3–§7.8).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use crate::lock;
use crate::model::DeliveryRecord;
use crate::server::Inner;
use crate::util::fmt_time;

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// The Default payload envelope (§7.4). Field order follows Harbor's Go structs.
#[derive(Serialize, Clone, Debug)]
pub struct Payload {
    #[serde(rename = "type")]
    pub event_type: String,
    pub occur_at: i64,
    pub operator: String,
    pub event_data: EventData,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct EventData {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepoInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<Replication>,
}

#[derive(Serialize, Clone, Debug)]
pub struct Resource {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
    pub tag: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_overview: Option<serde_json::Value>,
}

#[derive(Serialize, Clone, Debug)]
pub struct RepoInfo {
    #[serde(skip_serializing_if = "is_zero")]
    pub date_created: i64,
    pub name: String,
    pub namespace: String,
    pub repo_full_name: String,
    pub repo_type: String,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct Replication {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub harbor_hostname: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub job_status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authentication_type: String,
    #[serde(skip_serializing_if = "is_false")]
    pub override_mode: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trigger_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy_creator: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub execution_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_resource: Option<ReplicationResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_resource: Option<ReplicationResource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub successful_artifact: Vec<ArtifactInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_artifact: Vec<ArtifactInfo>,
    #[serde(skip_serializing_if = "is_zero")]
    pub execution_id: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub task_id: i64,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct ReplicationResource {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub registry_name: String,
    pub registry_type: String,
    pub endpoint: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

#[derive(Serialize, Clone, Debug)]
pub struct ArtifactInfo {
    #[serde(rename = "type")]
    pub artifact_type: String,
    pub status: String,
    pub name_tag: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: String,
    source: String,
    #[serde(rename = "type")]
    event_type: &'static str,
    datacontenttype: &'static str,
    time: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    requestid: &'a str,
    operator: &'a str,
    data: &'a EventData,
}

fn cloudevents_type(t: &str) -> &'static str {
    match t {
        "PUSH_ARTIFACT" => "harbor.artifact.pushed",
        "DELETE_ARTIFACT" => "harbor.artifact.deleted",
        "PULL_ARTIFACT" => "harbor.artifact.pulled",
        "REPLICATION" => "harbor.replication.status.changed",
        "SCANNING_COMPLETED" => "harbor.scan.completed",
        "SCANNING_FAILED" => "harbor.scan.failed",
        _ => "harbor.unknown",
    }
}

/// Sends `payload` to every enabled policy of `project` that lists its type.
pub fn emit(inner: &Arc<Inner>, project: &str, payload: Payload, request_id: &str) {
    let mut jobs = Vec::new();
    {
        let mut st = lock(&inner.state);
        let Some(project_id) = st.project_by_name(project).map(|p| p.id) else {
            return;
        };
        let faults = st.faults.webhooks.clone();
        let policies: Vec<_> = st
            .webhook_policies
            .iter()
            .filter(|w| {
                w.project_id == project_id
                    && w.enabled
                    && w.event_types.iter().any(|e| e == &payload.event_type)
            })
            .cloned()
            .collect();
        let payload_value = serde_json::to_value(&payload).unwrap_or_default();
        for w in policies {
            for t in w.targets.iter().filter(|t| t.ttype == "http") {
                let (body, content_type) = if t.payload_format == "CloudEvents" {
                    let ce = CloudEvent {
                        specversion: "1.0",
                        id: crate::util::uuid_v4(),
                        source: format!("/projects/{project_id}/webhook/policies/{}", w.id),
                        event_type: cloudevents_type(&payload.event_type),
                        datacontenttype: "application/json",
                        time: Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        requestid: request_id,
                        operator: &payload.operator,
                        data: &payload.event_data,
                    };
                    (
                        serde_json::to_vec(&ce).unwrap_or_default(),
                        "application/cloudevents+json",
                    )
                } else {
                    (
                        serde_json::to_vec(&payload).unwrap_or_default(),
                        "application/json",
                    )
                };
                st.ids.delivery += 1;
                let id = st.ids.delivery;
                // Multiplying by a number prime to 100 spreads the lost ids evenly.
                let lost = (id * 37).rem_euclid(100) < i64::from(faults.loss_percent);
                if faults.drop || lost {
                    st.deliveries.push(DeliveryRecord {
                        id,
                        event_type: payload.event_type.clone(),
                        policy_id: w.id,
                        target: t.address.clone(),
                        attempt: 0,
                        status: None,
                        error: Some("dropped by fault injection".into()),
                        dropped: true,
                        payload: payload_value.clone(),
                        at: fmt_time(Some(Utc::now())),
                    });
                    continue;
                }
                let delay = if faults.reorder && id % 2 == 1 {
                    inner.opts.execution_step.max(Duration::from_millis(300))
                } else {
                    Duration::ZERO
                };
                let copies = if faults.duplicate { 2 } else { 1 };
                for _ in 0..copies {
                    jobs.push(Delivery {
                        id,
                        event_type: payload.event_type.clone(),
                        policy_id: w.id,
                        address: t.address.clone(),
                        auth_header: t.auth_header.clone(),
                        content_type,
                        body: Bytes::from(body.clone()),
                        payload: payload_value.clone(),
                        delay,
                    });
                }
            }
        }
    }
    for job in jobs {
        let inner = inner.clone();
        tokio::spawn(async move { deliver(inner, job).await });
    }
}

struct Delivery {
    id: i64,
    event_type: String,
    policy_id: i64,
    address: String,
    auth_header: String,
    content_type: &'static str,
    body: Bytes,
    payload: serde_json::Value,
    delay: Duration,
}

async fn deliver(inner: Arc<Inner>, d: Delivery) {
    if !d.delay.is_zero() {
        tokio::time::sleep(d.delay).await;
    }
    let max = inner.opts.webhook_max_attempts.max(1);
    for attempt in 1..=max {
        let result = send_once(&inner, &d).await;
        let (status, error) = match &result {
            Ok(s) => (Some(*s), None),
            Err(e) => (None, Some(e.clone())),
        };
        let ok = matches!(status, Some(s) if (200..300).contains(&s));
        let record = DeliveryRecord {
            id: d.id,
            event_type: d.event_type.clone(),
            policy_id: d.policy_id,
            target: d.address.clone(),
            attempt,
            status,
            error: if ok {
                None
            } else {
                error.or_else(|| status.map(|s| format!("unexpected status code {s}")))
            },
            dropped: false,
            payload: d.payload.clone(),
            at: fmt_time(Some(Utc::now())),
        };
        {
            let mut st = lock(&inner.state);
            if st.deliveries.len() >= crate::model::MAX_LOG {
                st.deliveries.remove(0);
            }
            st.deliveries.push(record);
        }
        if ok {
            return;
        }
        if attempt < max {
            tokio::time::sleep(inner.opts.webhook_retry_delay).await;
        }
    }
}

async fn send_once(inner: &Arc<Inner>, d: &Delivery) -> Result<u16, String> {
    let uri: http::Uri = d
        .address
        .parse()
        .map_err(|e| format!("invalid address {}: {e}", d.address))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "Post \"{}\": https targets are not supported by harbor-sim",
                d.address
            ));
        }
        _ => {
            return Err(format!(
                "Post \"{}\": unsupported protocol scheme \"{}\"",
                d.address,
                uri.scheme_str().unwrap_or_default()
            ));
        }
    }
    let mut req = hyper::Request::post(uri)
        .header("Content-Type", d.content_type)
        .header("User-Agent", "Go-http-client/1.1")
        .header("Accept-Encoding", "gzip");
    if !d.auth_header.is_empty() {
        req = req.header("Authorization", d.auth_header.as_str());
    }
    let req = req
        .body(Full::new(d.body.clone()))
        .map_err(|e| e.to_string())?;
    let fut = async {
        let resp = inner
            .client
            .request(req)
            .await
            .map_err(|e| format!("Post \"{}\": {e}", d.address))?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        Ok::<u16, String>(status)
    };
    match tokio::time::timeout(inner.opts.webhook_timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Post \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            d.address
        )),
    }
}

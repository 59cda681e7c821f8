//! What is inside an artifact: each platform's image config (Harbor's `extra_attrs`), its
//! Trivy scan summary (`with_scan_overview`), and its manifest's layers (through Harbor's
//! registry API, `/v2/<project>/<repo>/manifests/<digest>`, which takes the same basic auth).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Call, HarborClient, HarborError, encode, types};
use crate::outbound::{HttpSender, OutboundRequest};

/// The part of an image config berth reads facts from (`extra_attrs.config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// One vulnerability scan's summary (Harbor's `NativeReportSummary`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// `Success`, `Running`, `Pending`, `Error`, `Stopped`.
    pub status: String,
    /// The highest severity found: `None`, `Unknown`, `Low`, `Medium`, `High`, `Critical`.
    pub severity: String,
    pub total: i64,
    pub fixable: i64,
    /// Count per severity.
    pub counts: BTreeMap<String, i64>,
    pub end_time: Option<String>,
}

/// One artifact read by digest: its size, config and scan.
#[derive(Debug, Clone, Default)]
pub struct ArtifactDetails {
    pub size: i64,
    pub config: Option<ImageConfig>,
    pub scan: Option<ScanSummary>,
}

/// One layer of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub digest: String,
    pub size: i64,
    pub media_type: String,
}

/// The scan summaries berth reads, in Harbor's order of preference.
const VULNERABILITY_REPORTS: [&str; 2] = [
    "application/vnd.security.vulnerability.report; version=1.1",
    "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0",
];

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

impl ImageConfig {
    pub(crate) fn from_extra_attrs(extra: &BTreeMap<String, Value>) -> Option<ImageConfig> {
        let config = extra.get("config")?.as_object()?;
        let env = config
            .get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let labels = config
            .get("Labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Some(ImageConfig { env, labels })
    }
}

impl ScanSummary {
    /// Reads a `scan_overview` object (artifact API or SCANNING_* webhook resource).
    pub fn from_overview(overview: &Value) -> Option<ScanSummary> {
        let report = VULNERABILITY_REPORTS
            .iter()
            .find_map(|m| overview.get(*m))
            .or_else(|| overview.as_object()?.values().next())?;
        let text = |k: &str| report.get(k).and_then(Value::as_str).unwrap_or_default();
        let summary = &report["summary"];
        let counts = summary["summary"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let end_time =
            Some(text("end_time").to_owned()).filter(|t| !t.is_empty() && !t.starts_with("0001-"));
        Some(ScanSummary {
            status: text("scan_status").to_owned(),
            severity: text("severity").to_owned(),
            total: summary["total"].as_i64().unwrap_or(0),
            fixable: summary["fixable"].as_i64().unwrap_or(0),
            counts,
            end_time,
        })
    }

    pub fn is_finished(&self) -> bool {
        !matches!(self.status.as_str(), "Running" | "Pending" | "")
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawManifest {
    layers: Vec<RawLayer>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawLayer {
    digest: String,
    size: i64,
    media_type: String,
}

impl<S: HttpSender> HarborClient<S> {
    /// An artifact by tag or digest with its config and scan summary.
    pub async fn artifact_details(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<ArtifactDetails, HarborError> {
        let call = Call::new("GET", self.artifact_path(repository, reference))
            .query("with_tag", "false")
            .query("with_scan_overview", "true");
        let response = self.send_ok(&call).await?;
        let raw: types::RawArtifact = self.parse("artifact", &response)?;
        Ok(ArtifactDetails {
            size: raw.size(),
            config: ImageConfig::from_extra_attrs(raw.extra_attrs()),
            scan: raw.scan_overview().and_then(ScanSummary::from_overview),
        })
    }

    /// Asks Harbor to scan an artifact for vulnerabilities (answered 202; the result comes
    /// as SCANNING_COMPLETED or SCANNING_FAILED, and in `scan_overview`).
    pub async fn scan_artifact(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(), HarborError> {
        let call = Call::new(
            "POST",
            format!("{}/scan", self.artifact_path(repository, reference)),
        )
        .json(serde_json::json!({"scan_type": "vulnerability"}));
        self.send_ok(&call).await.map(|_| ())
    }

    /// The layers of an image manifest, read from Harbor's registry API.
    pub async fn manifest_layers(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<Layer>, HarborError> {
        use base64::Engine;
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.config.username, self.config.password));
        let name = format!("{}/{}", self.config.project, repository);
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.config.base_url.trim_end_matches('/'),
            name.split('/')
                .map(encode::segment)
                .collect::<Vec<_>>()
                .join("/"),
            encode::segment(digest)
        );
        let request = OutboundRequest::new("GET", url)
            .header("authorization", format!("Basic {credentials}"))
            .header("accept", MANIFEST_TYPES);
        let response = self
            .sender
            .send(request)
            .await
            .map_err(|e| self.error(HarborError::Unreachable(e.0)))?;
        if !(200..300).contains(&response.status) {
            return Err(self.status_error(&response));
        }
        let raw: RawManifest = self.parse("manifest", &response)?;
        Ok(raw
            .layers
            .into_iter()
            .map(|l| Layer {
                digest: l.digest,
                size: l.size,
                media_type: l.media_type,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_harbors_scan_overview() {
        let overview = json!({"application/vnd.security.vulnerability.report; version=1.1": {
            "report_id": "r1", "scan_status": "Success", "severity": "High", "duration": 12,
            "summary": {"total": 5, "fixable": 3, "summary": {"High": 2, "Medium": 1, "Low": 2}},
            "start_time": "2025-01-10T08:00:00Z", "end_time": "2025-01-10T08:00:12Z",
            "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.50.1"},
            "complete_percent": 100}});
        let s = ScanSummary::from_overview(&overview).unwrap();
        assert_eq!(
            (s.status.as_str(), s.severity.as_str()),
            ("Success", "High")
        );
        assert_eq!((s.total, s.fixable), (5, 3));
        assert_eq!(s.counts["High"], 2);
        assert_eq!(s.end_time.as_deref(), Some("2025-01-10T08:00:12Z"));
        assert!(s.is_finished());
        assert_eq!(ScanSummary::from_overview(&json!({})), None);
    }

    #[test]
    fn reads_env_and_labels_from_extra_attrs() {
        let extra: BTreeMap<String, Value> = serde_json::from_value(json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["A=1", "PYTORCH_VERSION=2.0.0"], "Labels": {"k": "v", "n": 1}}}))
        .unwrap();
        let c = ImageConfig::from_extra_attrs(&extra).unwrap();
        assert_eq!(c.env, vec!["A=1", "PYTORCH_VERSION=2.0.0"]);
        assert_eq!(c.labels.len(), 1);
    }
}

//! What berth learns from inside an imported artifact, once Harbor holds it: each
//! platform's layers (for `layersDetail`), the facts its image config yields
//! ([`crate::image_facts`]), and Harbor's vulnerability scan, with the scan requirement an
//! import must meet. Read where an import's artifact facts are read; recorded by the store.

use serde_json::{Map, Value, json};

use crate::config::ScanRequirement;
use crate::harbor::{Artifact, HarborClient, ScanSummary};
use crate::image_facts::{DerivedFacts, derive, severity_rank};
use crate::model::Platform;
use crate::outbound::HttpSender;

/// The contents of one artifact.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    pub derived: DerivedFacts,
    /// `layersDetail` entries, by layer digest: `{status, progress, digest, size, mediaType, platform}`.
    pub layers: Map<String, Value>,
    pub scan: Option<ScanSummary>,
}

/// The source an imported repository came from: `docker.io/pytorch/pytorch` (the path
/// inside berth's project) → (`docker.io`, `pytorch/pytorch`).
fn source_of(repository_in_project: &str) -> (String, String) {
    match repository_in_project.split_once('/') {
        Some((registry, rest)) if registry.contains('.') || registry.contains('_') => {
            (registry.replace('_', ":"), rest.to_owned())
        }
        _ => (String::new(), repository_in_project.to_owned()),
    }
}

/// Reads the contents of `artifact` (tag `tag` of `repository`, inside the project), and
/// fills each platform's size on the way. Every read that fails leaves its part empty:
/// contents never hold an import back, except the scan when one is required.
pub async fn read<S: HttpSender>(
    client: &HarborClient<S>,
    repository: &str,
    tag: &str,
    artifact: &mut Artifact,
) -> Contents {
    let (registry, source_repository) = source_of(repository);
    let mut contents = Contents::default();
    // The scan of the tagged artifact (an index's is the merge of its children's).
    match client.artifact_details(repository, &artifact.digest).await {
        Ok(top) => {
            contents.scan = top.scan;
            if let Some(c) = top.config {
                contents.derived = derive(&registry, &source_repository, tag, &c.env, &c.labels);
            }
        }
        Err(e) => eprintln!(
            "warning: reading artifact {repository}@{}: {e}",
            artifact.digest
        ),
    }
    let images: Vec<(String, String)> = if artifact.platforms.is_empty() {
        let platform = match (&artifact.os, &artifact.architecture) {
            (Some(os), Some(arch)) => format!("{os}/{arch}"),
            _ => String::new(),
        };
        vec![(artifact.digest.clone(), platform)]
    } else {
        artifact
            .platforms
            .iter()
            .map(|p| {
                let label = match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                };
                (p.digest.clone(), label)
            })
            .collect()
    };
    for (index, (digest, platform)) in images.iter().enumerate() {
        if !artifact.platforms.is_empty() {
            match client.artifact_details(repository, digest).await {
                Ok(child) => {
                    artifact.platforms[index].size = Some(child.size);
                    if let Some(c) = child.config {
                        let facts = derive(&registry, &source_repository, tag, &c.env, &c.labels);
                        contents.derived = std::mem::take(&mut contents.derived).or(facts);
                    }
                }
                Err(e) => eprintln!("warning: reading artifact {repository}@{digest}: {e}"),
            }
        }
        match client.manifest_layers(repository, digest).await {
            Ok(layers) => {
                for layer in layers {
                    contents
                        .layers
                        .entry(layer.digest.clone())
                        .or_insert(json!({
                            "status": "completed",
                            "progress": 100,
                            "digest": layer.digest,
                            "size": layer.size,
                            "mediaType": layer.media_type,
                            "platform": platform,
                        }));
                }
            }
            Err(e) => eprintln!("warning: reading manifest {repository}@{digest}: {e}"),
        }
    }
    contents
}

/// The scan as berth shows it.
pub fn scan_view(scan: &ScanSummary) -> Value {
    let count = |k: &str| scan.counts.get(k).copied().unwrap_or(0);
    json!({
        "status": scan.status,
        "severity": scan.severity,
        "total": scan.total,
        "fixable": scan.fixable,
        "critical": count("Critical"),
        "high": count("High"),
        "medium": count("Medium"),
        "low": count("Low"),
        "unknown": count("Unknown"),
        "scannedAt": scan.end_time,
    })
}

/// A scan as stored: its view, the severity rank the `max_severity` filter reads (only for
/// a scan that succeeded) and when it ended.
pub struct ScanRecord {
    pub view: Value,
    pub rank: Option<i64>,
    pub scanned_at: Option<String>,
}

impl From<&ScanSummary> for ScanRecord {
    fn from(scan: &ScanSummary) -> ScanRecord {
        ScanRecord {
            view: scan_view(scan),
            rank: (scan.status == "Success").then(|| severity_rank(&scan.severity).unwrap_or(0)),
            scanned_at: scan.end_time.clone(),
        }
    }
}

/// Facts about the image in Harbor once it is there.
#[derive(Debug, Clone, Default)]
pub struct ArtifactFacts {
    pub digest: String,
    pub size: i64,
    pub arch: Option<String>,
    pub os: Option<String>,
    pub platforms: Vec<Platform>,
    /// Layers, derived facts and scan, for an import read through Harbor.
    pub contents: Option<Contents>,
}

impl From<Artifact> for ArtifactFacts {
    fn from(a: Artifact) -> ArtifactFacts {
        let platforms: Vec<Platform> = a
            .platforms
            .iter()
            .map(|p| Platform {
                digest: p.digest.clone(),
                architecture: p.architecture.clone(),
                os: p.os.clone(),
                variant: p.variant.clone(),
                size: p.size.unwrap_or(0),
            })
            .collect();
        let single = |f: fn(&Platform) -> &String| {
            let mut values: Vec<&String> = platforms.iter().map(f).collect();
            values.dedup();
            (values.len() == 1).then(|| values[0].clone())
        };
        ArtifactFacts {
            digest: a.digest.clone(),
            size: a.size,
            arch: a.architecture.clone().or_else(|| {
                if platforms.is_empty() {
                    None
                } else {
                    single(|p| &p.architecture).or(Some("multi".into()))
                }
            }),
            os: a.os.clone().or_else(|| single(|p| &p.os)),
            platforms,
            contents: None,
        }
    }
}

/// The facts of an image beyond its columns, for detail views.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExtraFacts {
    pub cudnn_version: Option<String>,
    pub min_driver_version: Option<&'static str>,
    pub vulnerabilities: Option<Value>,
}

/// [`ExtraFacts`] from the image and its `image_facts` columns.
pub fn extra_facts_from(
    image: &crate::model::Image,
    cudnn_version: Option<String>,
    scan: Option<&str>,
) -> ExtraFacts {
    ExtraFacts {
        cudnn_version,
        min_driver_version: image
            .cuda_version
            .as_deref()
            .and_then(crate::image_facts::min_driver),
        vulnerabilities: scan.and_then(|s| serde_json::from_str(s).ok()),
    }
}

/// What the scan requirement says about an import whose copy is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanGate {
    Pass,
    /// No finished scan yet; `ask` when Harbor has none at all (berth asks for one).
    Wait {
        ask: bool,
    },
    Fail(String),
}

pub fn gate(requirement: ScanRequirement, scan: Option<&ScanSummary>) -> ScanGate {
    let ScanRequirement::AtMost(allowed) = requirement else {
        return ScanGate::Pass;
    };
    let Some(scan) = scan else {
        return ScanGate::Wait { ask: true };
    };
    if !scan.is_finished() {
        return ScanGate::Wait { ask: false };
    }
    if scan.status != "Success" {
        return ScanGate::Fail(format!(
            "Harbor's vulnerability scan ended '{}', and import_require_clean_scan requires a clean scan",
            scan.status
        ));
    }
    let found = severity_rank(&scan.severity).unwrap_or(0);
    if found <= allowed {
        return ScanGate::Pass;
    }
    let counts: Vec<String> = crate::image_facts::SEVERITIES
        .iter()
        .rev()
        .filter_map(|s| {
            let n = scan.counts.get(*s).copied().unwrap_or(0);
            (n > 0).then(|| format!("{n} {}", s.to_ascii_lowercase()))
        })
        .collect();
    let allowed_name = crate::image_facts::SEVERITIES[allowed as usize].to_ascii_lowercase();
    ScanGate::Fail(format!(
        "Harbor's vulnerability scan found {} (highest: {}); import_require_clean_scan allows {}",
        counts.join(", "),
        scan.severity.to_ascii_lowercase(),
        if allowed == 0 {
            "none".to_owned()
        } else {
            format!("up to {allowed_name}")
        }
    ))
}

/// Checks the scan requirement once Harbor holds the copy: `None` lets the import become
#[cfg(test)]
mod tests {
    use super::*;

    fn scan(status: &str, severity: &str, high: i64) -> ScanSummary {
        ScanSummary {
            status: status.into(),
            severity: severity.into(),
            total: high,
            counts: [("High".to_string(), high)].into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_gate_follows_the_requirement() {
        assert_eq!(gate(ScanRequirement::None, None), ScanGate::Pass);
        let strict = ScanRequirement::AtMost(0);
        assert_eq!(gate(strict, None), ScanGate::Wait { ask: true });
        assert_eq!(
            gate(strict, Some(&scan("Running", "", 0))),
            ScanGate::Wait { ask: false }
        );
        assert_eq!(
            gate(strict, Some(&scan("Success", "None", 0))),
            ScanGate::Pass
        );
        let ScanGate::Fail(m) = gate(strict, Some(&scan("Success", "High", 2))) else {
            panic!()
        };
        assert!(m.contains("2 high"), "{m}");
        assert_eq!(
            gate(
                ScanRequirement::AtMost(4),
                Some(&scan("Success", "High", 2))
            ),
            ScanGate::Pass
        );
        assert!(matches!(
            gate(strict, Some(&scan("Error", "", 0))),
            ScanGate::Fail(_)
        ));
    }

    #[test]
    fn sources_of_imported_repositories() {
        assert_eq!(
            source_of("docker.io/pytorch/pytorch"),
            ("docker.io".into(), "pytorch/pytorch".into())
        );
        assert_eq!(
            source_of("registry.example.com_5000/a/b"),
            ("registry.example.com:5000".into(), "a/b".into())
        );
        assert_eq!(source_of("builds/x"), (String::new(), "builds/x".into()));
    }
}

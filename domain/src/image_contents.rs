//! What berth learns from inside an imported artifact, once Harbor holds it: each
//! platform's layers (for `layersDetail`), the facts its image config yields
//! ([`crate::image_facts`]), and Harbor's vulnerability scan. Called where an import's
//! artifact facts are read and recorded, and from Harbor's SCANNING_* webhooks.

use serde_json::{Map, Value, json};

use crate::config::Context;
use crate::config::{HarborSettings, ScanRequirement};
use crate::db::{Db, DbError};
use crate::envelope::ApiError;
use crate::harbor::{Artifact, HarborClient, ScanSummary};
use crate::image_facts::{DerivedFacts, derive, severity_rank};
use crate::import_state::Observation;
use crate::imports::{ArtifactFacts, repository_in_project};
use crate::model::Image;
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

fn upsert_sql(columns: &str, updates: &str) -> String {
    format!(
        "INSERT INTO image_facts (image_id, {columns}) VALUES (?, {}) \
         ON CONFLICT (image_id) DO UPDATE SET {updates}",
        vec!["?"; columns.split(',').count()].join(", ")
    )
}

/// Records a scan of an image: its summary, and the severity rank the `max_severity`
/// filter reads (only for a scan that succeeded).
pub fn record_scan(db: &dyn Db, image_id: i64, scan: &ScanSummary) -> Result<(), DbError> {
    let rank = (scan.status == "Success").then(|| severity_rank(&scan.severity).unwrap_or(0));
    db.execute(
        &upsert_sql(
            "scan, scan_severity, scanned_at",
            "scan = excluded.scan, scan_severity = excluded.scan_severity, scanned_at = excluded.scanned_at",
        ),
        &[
            image_id.into(),
            scan_view(scan).to_string().into(),
            rank.into(),
            scan.end_time.clone().into(),
        ],
    )
}

/// Records what was derived and applies it to the image's columns, except where an admin
/// changed a column since: a column is replaced only while it is empty or still holds the
/// value berth derived before.
pub fn record(db: &dyn Db, image_id: i64, contents: &Contents) -> Result<(), DbError> {
    let before = db.query(
        "SELECT derived FROM image_facts WHERE image_id = ?",
        &[image_id.into()],
    )?;
    let old: DerivedFacts = before
        .first()
        .and_then(|r| serde_json::from_str(r.str("derived")).ok())
        .unwrap_or_default();
    let new = &contents.derived;
    let columns = [
        ("framework", &old.framework, &new.framework),
        (
            "framework_version",
            &old.framework_version,
            &new.framework_version,
        ),
        ("cuda_version", &old.cuda_version, &new.cuda_version),
        ("python_version", &old.python_version, &new.python_version),
    ];
    for (column, old, new) in columns {
        if new.is_none() {
            continue;
        }
        db.execute(
            &format!(
                "UPDATE images SET {column} = ? WHERE id = ? AND ({column} IS NULL OR {column} = ?)"
            ),
            &[new.clone().into(), image_id.into(), old.clone().into()],
        )?;
    }
    if old.cuda_version.is_none() && new.cuda_version.is_some() {
        // Ships with CUDA; set once, when CUDA is first found, so an admin's choice stays.
        db.execute(
            "UPDATE images SET preset_cuda = ? WHERE id = ?",
            &[true.into(), image_id.into()],
        )?;
    }
    db.execute(
        &upsert_sql(
            "derived, cudnn_version",
            "derived = excluded.derived, cudnn_version = excluded.cudnn_version",
        ),
        &[
            image_id.into(),
            serde_json::to_string(new).unwrap_or_default().into(),
            new.cudnn_version.clone().into(),
        ],
    )?;
    if let Some(scan) = &contents.scan {
        record_scan(db, image_id, scan)?;
    }
    Ok(())
}

/// The facts of an image beyond its columns, for detail views.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExtraFacts {
    pub cudnn_version: Option<String>,
    pub min_driver_version: Option<&'static str>,
    pub vulnerabilities: Option<Value>,
}

pub fn extra_facts(db: &dyn Db, image: &crate::model::Image) -> Result<ExtraFacts, DbError> {
    let rows = db.query(
        "SELECT cudnn_version, scan FROM image_facts WHERE image_id = ?",
        &[image.id.into()],
    )?;
    let row = rows.first();
    Ok(ExtraFacts {
        cudnn_version: row.and_then(|r| r.opt_string("cudnn_version")),
        min_driver_version: image
            .cuda_version
            .as_deref()
            .and_then(crate::image_facts::min_driver),
        vulnerabilities: row
            .and_then(|r| r.opt_string("scan"))
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
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
/// ready; otherwise what the import waits for, or why it failed.
pub async fn before_ready<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    client: &HarborClient<S>,
    image: &Image,
    facts: &ArtifactFacts,
) -> Result<Option<&'static str>, ApiError> {
    let scan = facts.contents.as_ref().and_then(|c| c.scan.as_ref());
    match gate(settings.require_clean_scan, scan) {
        ScanGate::Pass => Ok(None),
        ScanGate::Wait { ask } => {
            if ask {
                let repo = repository_in_project(settings, &image.repository);
                if let Err(e) = client.scan_artifact(repo, &facts.digest).await {
                    eprintln!(
                        "warning: asking Harbor to scan {repo}@{}: {e}",
                        facts.digest
                    );
                }
            }
            ctx.db.execute(
                "UPDATE imports SET message = ?, last_event_at = ? \
                 WHERE id = (SELECT MAX(id) FROM imports WHERE image_id = ?) AND state IN ('pending', 'running')",
                &[
                    "copied; waiting for Harbor's vulnerability scan (import_require_clean_scan)"
                        .into(),
                    crate::time::now_rfc3339().into(),
                    image.id.into(),
                ],
            )?;
            Ok(Some("waiting: the vulnerability scan"))
        }
        ScanGate::Fail(message) => {
            if let Some(scan) = scan {
                record_scan(ctx.db, image.id, scan)?;
            }
            crate::imports::observe(ctx.db, image.id, &Observation::Failed, Some(&message), None)?;
            Ok(Some("failed: the vulnerability scan is not clean"))
        }
    }
}

/// Harbor's SCANNING_COMPLETED and SCANNING_FAILED: records the scan on the image whose tag
/// or digest it names, and makes an import that waited for it due for a read.
pub fn scanning_event(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    data: &Value,
) -> Result<&'static str, ApiError> {
    let repo = data["repository"]["repo_full_name"]
        .as_str()
        .unwrap_or_default();
    let resource = &data["resources"][0];
    let tag = resource["tag"].as_str().unwrap_or_default();
    let digest = resource["digest"].as_str().unwrap_or_default();
    let image =
        match crate::imports::image_at(ctx.db, &settings.registry_host, repo, tag)? {
            Some(i) if !tag.is_empty() => Some(i),
            _ => {
                let rows = ctx.db.query(
                &format!(
                    "SELECT {} FROM images WHERE registry = ? AND repository = ? AND digest = ?",
                    crate::model::IMAGE_COLUMNS
                ),
                &[settings.registry_host.clone().into(), repo.into(), digest.into()],
            )?;
                rows.first().map(|r| Image::from_row(&r))
            }
        };
    let Some(image) = image
        .filter(|i| digest.is_empty() || i.digest.is_none() || i.digest.as_deref() == Some(digest))
    else {
        return Ok("ignored: no image has this artifact");
    };
    // SCANNING_FAILED may come without a summary.
    let scan =
        ScanSummary::from_overview(&resource["scan_overview"]).unwrap_or_else(|| ScanSummary {
            status: "Error".to_owned(),
            ..ScanSummary::default()
        });
    record_scan(ctx.db, image.id, &scan)?;
    if image.status == "importing"
        && let Some(row) = crate::imports::latest_import(ctx.db, image.id)?
        && !row.state.phase.is_terminal()
    {
        // The webhook answers within Harbor's budget: an import waiting for its scan is
        // made due, and the sweep (or the next read) completes it.
        crate::imports::note_harbor_event(ctx, &row, false)?;
        return Ok("scan recorded: the import is due for a read");
    }
    Ok("scan recorded")
}

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

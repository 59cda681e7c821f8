//! The scan requirement on imports (`import_require_clean_scan`): an import whose copy is
//! done waits for, or fails on, Harbor's vulnerability scan; SCANNING_* webhooks record it.

use serde_json::Value;

use crate::config::{Context, HarborSettings};
use crate::envelope::ApiError;
use crate::harbor::{HarborClient, ScanSummary};
use crate::image_contents::{ArtifactFacts, ScanGate, ScanRecord, gate};
use crate::import_state::Observation;
use crate::model::Image;
use crate::outbound::HttpSender;
use crate::services::harbor_ops::repository_in_project;
use crate::store::{image_writes, images, imports};

use super::observe;
use super::webhooks::note_harbor_event;

/// Checks the scan requirement once Harbor holds the copy: `None` lets the import become
/// ready; otherwise what the import waits for, or why it failed.
pub(super) async fn before_ready<S: HttpSender>(
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
            imports::note_waiting(
                ctx.db,
                image.id,
                "copied; waiting for Harbor's vulnerability scan (import_require_clean_scan)",
            )?;
            Ok(Some("waiting: the vulnerability scan"))
        }
        ScanGate::Fail(message) => {
            if let Some(scan) = scan {
                image_writes::record_scan(ctx.db, image.id, &ScanRecord::from(scan))?;
            }
            observe(ctx.db, image.id, &Observation::Failed, Some(&message), None)?;
            Ok(Some("failed: the vulnerability scan is not clean"))
        }
    }
}

/// Harbor's SCANNING_COMPLETED and SCANNING_FAILED: records the scan on the image whose tag
/// or digest it names, and makes an import that waited for it due for a read.
pub(super) fn scanning_event(
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
    let image = match images::image_at(ctx.db, &settings.registry_host, repo, tag)? {
        Some(i) if !tag.is_empty() => Some(i),
        _ => images::image_with_digest(ctx.db, &settings.registry_host, repo, digest)?,
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
    image_writes::record_scan(ctx.db, image.id, &ScanRecord::from(&scan))?;
    if image.status == "importing"
        && let Some(row) = imports::latest_import(ctx.db, image.id)?
        && !row.state.phase.is_terminal()
    {
        // The webhook answers within Harbor's budget: an import waiting for its scan is
        // made due, and the sweep (or the next read) completes it.
        note_harbor_event(ctx, &row, false)?;
        return Ok("scan recorded: the import is due for a read");
    }
    Ok("scan recorded")
}

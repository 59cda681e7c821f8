//! Harbor's webhooks (`POST /api/v1/hooks/harbor`): which import or build an event is
//! about, recorded within Harbor's 3-second budget without calling Harbor back.

use serde_json::{Value, json};

use crate::config::{Context, HarborSettings};
use crate::db::{DbError, with_write_tx};
use crate::envelope::{Api, ApiError};
use crate::http::{Request, Response};
use crate::image_ref::ImageRef;
use crate::import_state::Phase;
use crate::request::MAX_BODY_BYTES;
use crate::services::builds;
use crate::services::harbor_ops::policy_name;
use crate::store::imports::{self, ImportRow};
use crate::store::{image_writes, images};
use crate::time;

/// Checks Harbor's `Authorization` header against the configured secret, in constant time.
pub fn webhook_authorized(header: Option<&str>, secret: &str) -> bool {
    let Some(value) = header.map(str::trim) else {
        return false;
    };
    let token = value.strip_prefix("Bearer ").unwrap_or(value);
    crate::auth::secret_matches(secret, token)
}

/// `POST /api/v1/hooks/harbor`. Harbor gives a delivery 3 seconds, so this handler never
/// calls Harbor: it records which import or build the event is about (due for a read) and
/// answers; the sweep, or the next read of that import or build, asks Harbor.
pub fn webhook(req: &Request, ctx: &Context<'_>) -> Result<Response, ApiError> {
    if !webhook_authorized(
        req.header("authorization"),
        ctx.settings.harbor_webhook_secret().expose(),
    ) {
        return Err(ApiError::unauthorized(
            "the webhook's Authorization does not match harbor_webhook_secret",
        ));
    }
    // Harbor's events are a few KiB; anything larger is not one of them.
    if req.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            format!("the webhook body is larger than {} bytes", MAX_BODY_BYTES),
        ));
    }
    let event: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("the webhook body is not JSON: {e}")))?;
    let kind = event["type"].as_str().unwrap_or_default();
    let data = &event["event_data"];
    let settings = ctx.settings.harbor()?;
    let outcome = match kind {
        "REPLICATION" => {
            let replication = &data["replication"];
            let success = replication["job_status"].as_str() == Some("Success");
            match replication_import(ctx, &settings, replication)? {
                Some(row) => note_harbor_event(ctx, &row, success)?,
                None => "ignored: no import has this execution",
            }
        }
        "PUSH_ARTIFACT" | "DELETE_ARTIFACT" => {
            let repo = data["repository"]["repo_full_name"]
                .as_str()
                .unwrap_or_default();
            let tag = data["resources"][0]["tag"].as_str().unwrap_or_default();
            if tag.is_empty() || tag.starts_with("sha256:") {
                "ignored: a digest, not a tag"
            } else {
                match images::image_at(ctx.db, &settings.registry_host, repo, tag)? {
                    Some(image) if kind == "PUSH_ARTIFACT" => {
                        match imports::latest_import(ctx.db, image.id)? {
                            Some(row) => note_harbor_event(ctx, &row, true)?,
                            None => "ignored: no import of this image",
                        }
                    }
                    Some(image) if kind == "DELETE_ARTIFACT" && image.status == "ready" => {
                        image_writes::set_status(ctx.db, image.id, "failed", &time::now_rfc3339())?;
                        "image marked gone"
                    }
                    None if kind == "PUSH_ARTIFACT" => {
                        if builds::note_push(ctx, &format!("{repo}:{tag}"))? {
                            "noted: the build completes once berth has read the artifact"
                        } else {
                            "ignored: no matching image or build"
                        }
                    }
                    _ => "ignored: no matching image",
                }
            }
        }
        "SCANNING_COMPLETED" | "SCANNING_FAILED" => {
            super::scan::scanning_event(ctx, &settings, data)?
        }
        _ => "ignored: event type not used",
    };
    Ok(Api::V1.ok(json!({"type": kind, "outcome": outcome})))
}

/// The import a REPLICATION event is about: by `execution_id` (Harbor v2.13 and later);
/// else, as older Harbors send none, by the replicated artifact's destination repository and
/// tags, else by the policy name berth writes into each policy's description.
fn replication_import(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    replication: &Value,
) -> Result<Option<ImportRow>, DbError> {
    if let Some(id) = replication["execution_id"].as_i64().filter(|id| *id > 0) {
        return imports::import_by_execution(ctx.db, id);
    }
    let namespace = replication["dest_resource"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let artifacts = ["successful_artifact", "failed_artifact"]
        .into_iter()
        .filter_map(|key| replication[key].as_array())
        .flatten();
    for artifact in artifacts {
        let name =
            crate::harbor::Task::resource_name(artifact["name_tag"].as_str().unwrap_or_default());
        let repository = format!("{namespace}/{name}");
        let tags = artifact["references"].as_array().into_iter().flatten();
        for tag in tags.filter_map(Value::as_str) {
            if let Some(image) =
                images::image_at(ctx.db, &settings.registry_host, &repository, tag)?
            {
                if let Some(row) = imports::latest_import(ctx.db, image.id)? {
                    return Ok(Some(row));
                }
            }
        }
    }
    let description = replication["description"].as_str().unwrap_or_default();
    match description
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|word| word.starts_with("berth-import-"))
    {
        Some(policy) => import_by_policy_name(ctx, policy),
        None => Ok(None),
    }
}

/// The newest import still within its deadline whose replication policy is `policy`.
fn import_by_policy_name(ctx: &Context<'_>, policy: &str) -> Result<Option<ImportRow>, DbError> {
    Ok(imports::recent_imports(ctx.db)?.into_iter().find(|row| {
        ImageRef::parse(&row.source).is_ok_and(|source| policy_name(&source) == policy)
    }))
}

/// Records that Harbor said something about `row`'s import: an unfinished import is due for
/// a read of Harbor (the sweep and readers take due imports first); a success revives an
/// import that failed recently (see [`revivable`]). Returns the webhook's outcome.
pub(super) fn note_harbor_event(
    ctx: &Context<'_>,
    row: &ImportRow,
    success: bool,
) -> Result<&'static str, ApiError> {
    with_write_tx(ctx.db, || {
        let Some(latest) = imports::latest_import(ctx.db, row.image_id)?.filter(|l| l.id == row.id)
        else {
            return Ok("ignored: a newer import of this image exists");
        };
        if !latest.state.phase.is_terminal() {
            imports::mark_due(ctx.db, latest.id)?;
            return Ok("noted: berth reads Harbor in the sweep or on the next read");
        }
        if !(success && revivable(ctx, &latest)?) {
            return Ok("ignored: the import has ended");
        }
        let now = time::now_rfc3339();
        imports::revive(ctx.db, latest.id, &now)?;
        image_writes::set_status(ctx.db, latest.image_id, "importing", &now)?;
        Ok("revived: Harbor reports a success after a failure; berth reads Harbor again")
    })
}

/// A failed import Harbor may still complete: it failed on Harbor's word (its execution
/// read `Failed`, which leaves `failure_seen_at` set) before its deadline, and its image
/// still reads failed. Harbor retries a
/// failed task after a back-off, so a success can follow what looked final.
fn revivable(ctx: &Context<'_>, row: &ImportRow) -> Result<bool, ApiError> {
    if row.state.phase != Phase::Failed
        || row.execution_id.is_none()
        || row.failure_seen_at.is_none()
        || time::parse(&row.deadline_at).is_none_or(|d| d.timestamp() < ctx.now)
    {
        return Ok(false);
    }
    Ok(images::get(ctx.db, row.image_id)?.is_some_and(|image| image.status == "failed"))
}

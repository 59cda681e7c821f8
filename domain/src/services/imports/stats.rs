//! What the catalog component reads about imports and Harbor: an import's details
//! (reconciled when quiet) and Harbor's statistics, cached and fetched single-flight.

use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::config::{Context, HarborSettings};
use crate::envelope::{Api, ApiError};
use crate::http::Response;
use crate::outbound::HttpSender;
use crate::services::catalog::visible_image;
use crate::store::{self, images, imports};
use crate::time;

use super::reconcile;

/// `GET /api/v1/images/{id}/importing-details`: the import's progress; an unfinished import
/// that has been quiet (or is overdue) is first reconciled with Harbor.
pub async fn importing_details<S: HttpSender>(
    id: i64,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    let image = visible_image(id, ctx, caller)?;
    let mut row = imports::latest_import(ctx.db, id)?;

    if let Some(r) = &row {
        let quiet = r
            .last_event_at
            .as_deref()
            .and_then(time::parse)
            .is_none_or(|t| {
                ctx.now - t.timestamp() >= ctx.settings.import_reconcile_after_seconds()
            });
        let overdue = time::parse(&r.deadline_at).is_some_and(|d| d.timestamp() < ctx.now);
        if !r.state.phase.is_terminal() && (quiet || overdue) {
            if let Ok(settings) = ctx.settings.harbor() {
                reconcile(ctx, &settings, sender, r).await?;
                row = imports::latest_import(ctx.db, id)?;
            }
        }
    }
    let image = images::get(ctx.db, id)?.unwrap_or(image);
    let (progress, layers, message, phase) = match &row {
        Some(r) => (
            r.state.progress,
            r.state.layers.clone(),
            r.message.clone(),
            Some(r.state.phase.as_str()),
        ),
        None => (
            if image.status == "ready" { 100 } else { 0 },
            Map::new(),
            None,
            None,
        ),
    };
    Ok(Api::V1.ok(json!({
        "status": image.status,
        "progress": progress,
        "layersDetail": layers,
        "message": message,
        "importState": phase,
        "source": row.as_ref().map(|r| r.source.clone()),
    })))
}

const STATS_TTL_SECONDS: i64 = 30;
/// How long one caller may take to refresh the statistics before another may try (longer
/// than the host's outbound total timeout, so a live fetch is never doubled).
const STATS_REFRESH_LEASE_SECONDS: i64 = 90;

/// Harbor's statistics, cached for 30 s and fetched single-flight: while one request asks
/// Harbor, the others answer at once from the last copy (or 503 when there is none yet),
/// so a slow Harbor holds one instance, not one per caller.
pub async fn harbor_stats<S: HttpSender>(
    ctx: &Context<'_>,
    sender: S,
) -> Result<Response, ApiError> {
    let cached = store::cached_value(ctx.db, "harbor_stats")?;
    let last: Option<(Value, bool)> = cached.and_then(|(value, expires_at)| {
        let fresh = time::parse(&expires_at).is_some_and(|t| t.timestamp() > ctx.now);
        serde_json::from_str::<Value>(&value)
            .ok()
            .map(|v| (v, fresh))
    });
    match last {
        Some((v, true)) => return with_own_counts(ctx, v),
        Some((v, false)) if !claim_stats_refresh(ctx)? => return with_own_counts(ctx, v),
        None if !claim_stats_refresh(ctx)? => {
            return Err(ApiError::unavailable(
                "Harbor's statistics are being fetched; retry shortly",
                2,
            ));
        }
        _ => {}
    }
    let fetched = fetch_harbor_stats(ctx, sender).await;
    store::release_lease(ctx.db, "harbor_stats_refresh")?;
    let data = fetched?;
    let expires =
        time::to_rfc3339(chrono::Utc::now() + chrono::Duration::seconds(STATS_TTL_SECONDS));
    store::put_cached_value(ctx.db, "harbor_stats", &data.to_string(), &expires)?;
    with_own_counts(ctx, data)
}

/// Harbor's statistics plus berth's own project, counted now from berth's rows.
fn with_own_counts(ctx: &Context<'_>, mut data: Value) -> Result<Response, ApiError> {
    if let Ok(settings) = ctx.settings.harbor() {
        data["project"] = own_project_counts(ctx, &settings)?;
    }
    Ok(Api::V1.ok(data))
}

/// Takes the refresh lease unless another caller holds a live one.
fn claim_stats_refresh(ctx: &Context<'_>) -> Result<bool, ApiError> {
    Ok(store::claim_lease(
        ctx.db,
        "harbor_stats_refresh",
        STATS_REFRESH_LEASE_SECONDS,
    )?)
}

/// How long Harbor's system information is kept: it changes only with an upgrade.
const SYSTEM_INFO_TTL_SECONDS: i64 = 3600;

/// Harbor's version, read once and cached (`GET /systeminfo`); `None` while Harbor cannot
/// be asked.
pub async fn harbor_system_info<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    sender: S,
) -> Option<crate::harbor::SystemInfo> {
    if let Some(info) = cached_system_info(ctx) {
        return Some(info);
    }
    let info = match settings.client(sender).system_info().await {
        Ok(info) => info,
        Err(e) => {
            eprintln!("warning: reading Harbor's system information: {e}");
            return None;
        }
    };
    let expires =
        time::to_rfc3339(chrono::Utc::now() + chrono::Duration::seconds(SYSTEM_INFO_TTL_SECONDS));
    let _ = store::put_cached_value(ctx.db, "harbor_systeminfo", &info.harbor_version, &expires);
    Some(info)
}

/// Harbor's system information as last read, while fresh; never asks Harbor.
fn cached_system_info(ctx: &Context<'_>) -> Option<crate::harbor::SystemInfo> {
    let (value, expires_at) = store::cached_value(ctx.db, "harbor_systeminfo").ok()??;
    time::parse(&expires_at)
        .is_some_and(|t| t.timestamp() > ctx.now)
        .then(|| crate::harbor::SystemInfo {
            harbor_version: value,
        })
}

/// What the statistics say about Harbor's version: which webhooks berth can match directly.
pub(super) fn version_view(info: Option<&crate::harbor::SystemInfo>) -> Value {
    json!({
        "harborVersion": info.map(|i| i.harbor_version.clone()).filter(|v| !v.is_empty()),
        "eventsCarryExecutionId": info.and_then(|i| i.events_carry_execution_id()),
    })
}

/// berth's own project counted from berth's own rows: what is ready there (imports and
/// builds), whatever Harbor lets its account see.
fn own_project_counts(ctx: &Context<'_>, settings: &HarborSettings) -> Result<Value, ApiError> {
    let project = &settings.harbor.project;
    let (images, repositories, size) =
        images::ready_in_project(ctx.db, &settings.registry_host, project)?;
    Ok(json!({
        "name": project,
        "repositories": repositories,
        "images": images,
        "size": size,
    }))
}

async fn fetch_harbor_stats<S: HttpSender>(
    ctx: &Context<'_>,
    sender: S,
) -> Result<Value, ApiError> {
    let settings = ctx.settings.harbor()?;
    // The version as the sweep last read it: no second Harbor call on this path.
    let info = cached_system_info(ctx);
    let s = settings
        .client(&sender)
        .statistics()
        .await
        .map_err(|e| ApiError::new(502, format!("could not read Harbor's statistics: {e}")))?;
    // Harbor shows totals and storage only to system admins; robots see public counts only.
    let (projects, images, scope) = if s.total_project_count > 0 || s.total_repo_count > 0 {
        (s.total_project_count, s.total_repo_count, "all")
    } else {
        (s.public_project_count, s.public_repo_count, "public")
    };
    let data = json!({
        "totalProjects": projects,
        "totalImages": images,
        "totalSize": s.total_storage_consumption,
        "scope": scope,
        "harbor": version_view(info.as_ref()),
    });
    Ok(data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn harbor_versions_say_whether_events_name_their_execution() {
        let info = |v: &str| crate::harbor::SystemInfo {
            harbor_version: v.into(),
        };
        assert_eq!(info("v2.12.2-73072d0d").version(), Some((2, 12)));
        assert_eq!(
            info("v2.12.2-73072d0d").events_carry_execution_id(),
            Some(false)
        );
        assert_eq!(info("v2.13.0-rc1").events_carry_execution_id(), Some(true));
        assert_eq!(info("v3.0.1").events_carry_execution_id(), Some(true));
        assert_eq!(info("").events_carry_execution_id(), None);
    }
}

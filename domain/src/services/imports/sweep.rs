//! The sweep (`POST /api/v1/internal/sweep`): the progress component's scheduled pass over
//! unfinished imports and builds, each leased while it is worked on.

use serde_json::json;

use crate::config::Context;
use crate::envelope::{Api, ApiError};
use crate::http::{Request, Response};
use crate::outbound::HttpSender;
use crate::services::builds;
use crate::store::{self, imports};

use super::reconcile;
use super::require_worker_token;
use super::stats::{harbor_system_info, version_view};

/// The most imports, and the most builds, one sweep run reconciles.
pub const SWEEP_BATCH: usize = 20;
/// How long a sweeper holds an import or a build (longer than any reconcile takes).
const SWEEP_LEASE_SECONDS: i64 = 90;

/// `POST /api/v1/internal/sweep` (`Authorization: Bearer <worker_token>`), called by a
/// scheduler every `sweep_interval_seconds`: reconciles the unfinished imports heard from
/// least recently (those a webhook marked due first) and the unfinished builds, at most
/// [`SWEEP_BATCH`] of each. Each row is leased while it is worked on, so replicas sweeping
/// at once never work the same row; a row another sweeper holds is skipped.
pub async fn sweep<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    sender: S,
) -> Result<Response, ApiError> {
    require_worker_token(req, ctx)?;
    let settings = ctx.settings.harbor()?;
    let candidates = imports::unfinished_imports(ctx.db, 4 * SWEEP_BATCH as i64)?;
    let (mut reconciled, mut finished, mut skipped) = (0, 0, 0);
    for row in candidates {
        if reconciled >= SWEEP_BATCH {
            break;
        }
        let lease = format!("sweep_import_{}", row.id);
        if !store::claim_lease(ctx.db, &lease, SWEEP_LEASE_SECONDS)? {
            skipped += 1;
            continue;
        }
        reconciled += 1;
        let result = reconcile(ctx, &settings, &sender, &row).await;
        store::release_lease(ctx.db, &lease)?;
        if let Err(e) = result {
            eprintln!("warning: sweeping import {}: {}", row.id, e.message);
            continue;
        }
        if imports::latest_import(ctx.db, row.image_id)?
            .is_some_and(|r| r.state.phase.is_terminal())
        {
            finished += 1;
        }
    }
    let builds = builds::sweep(ctx, &sender, SWEEP_BATCH, SWEEP_LEASE_SECONDS).await?;
    let info = harbor_system_info(ctx, &settings, &sender).await;
    Ok(Api::V1.ok(json!({
        "imports": {"reconciled": reconciled, "finished": finished, "skipped": skipped},
        "builds": builds,
        "harbor": version_view(info.as_ref()),
    })))
}

//! Imports through Harbor: the trigger and retry (importer), Harbor's webhooks and worker
//! callbacks (progress), and reconciliation on read (catalog).
//!
//! berth never copies a layer: it asks Harbor to replicate `source` into its project and
//! learns the outcome from Harbor. Webhooks may be late, repeated, reordered or lost, so
//! completion is always decided from the execution's own status, every change goes through
//! [`ImportState::advance`], and a reader that finds an import quiet asks Harbor itself.

use crate::config::Context;
use crate::db::{Db, with_write_tx};
use crate::envelope::ApiError;
use crate::http::Request;
use crate::image_contents::ArtifactFacts;
use crate::import_state::{ImportState, Observation, Phase};
use crate::store::{image_writes, imports};
use crate::time;

mod progress;
mod reconcile;
mod scan;
mod start;
mod stats;
mod sweep;
mod webhooks;

pub use progress::{progress_name, worker_progress};
pub use reconcile::{failure_reason, reconcile};
pub use start::{retry, start};
pub use stats::{harbor_stats, harbor_system_info, importing_details};
pub use sweep::{SWEEP_BATCH, sweep};
pub use webhooks::{webhook, webhook_authorized};

/// What one observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Changed,
    Unchanged,
}

/// Applies an observation to an import (and its image) in one write transaction:
/// re-reads the row under the lock, so concurrent webhooks converge.
pub fn observe(
    db: &dyn Db,
    image_id: i64,
    observation: &Observation,
    message: Option<&str>,
    facts: Option<&ArtifactFacts>,
) -> Result<Applied, ApiError> {
    Ok(observe_state(db, image_id, observation, message, facts)?
        .map_or(Applied::Unchanged, |(applied, _)| applied))
}

/// [`observe`], also returning the import's state afterwards; `None` when the image has no
/// import.
pub fn observe_state(
    db: &dyn Db,
    image_id: i64,
    observation: &Observation,
    message: Option<&str>,
    facts: Option<&ArtifactFacts>,
) -> Result<Option<(Applied, ImportState)>, ApiError> {
    with_write_tx(db, || {
        let Some(row) = imports::latest_import(db, image_id)? else {
            return Ok(None);
        };
        let Some(next) = row.state.advance(observation) else {
            imports::touch_event(db, row.id)?;
            return Ok(Some((Applied::Unchanged, row.state)));
        };
        let now = time::now_rfc3339();
        imports::set_state(db, row.id, &next, message, &now)?;
        match next.phase {
            // Without facts (a worker reported none) only the status changes; kept apart so
            // a component that never passes facts links none of the facts' writes.
            Phase::Succeeded => match facts {
                Some(facts) => image_writes::mark_ready(db, image_id, facts, &now)?,
                None => image_writes::set_status(db, image_id, "ready", &now)?,
            },
            Phase::Failed => image_writes::set_status(db, image_id, "failed", &now)?,
            _ => {}
        }
        Ok(Some((Applied::Changed, next)))
    })
}

/// The sync workers' callbacks and the sweep are called with `Bearer <worker_token>`.
fn require_worker_token(req: &Request, ctx: &Context<'_>) -> Result<(), ApiError> {
    let token = req
        .header("authorization")
        .and_then(|h| h.trim().strip_prefix("Bearer "))
        .unwrap_or_default();
    if crate::auth::secret_matches(ctx.settings.worker_token().expose(), token.trim()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "send 'Authorization: Bearer <worker_token>'",
        ))
    }
}

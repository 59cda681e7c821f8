//! Reconciliation: what Harbor's execution says about an import, recorded through
//! [`ImportState::advance`](crate::import_state::ImportState::advance); completion once
//! Harbor holds the copy; and the re-drive of an import whose claimant stopped.

use crate::config::{Context, HarborSettings};
use crate::db::with_write_tx;
use crate::envelope::ApiError;
use crate::harbor::{Execution, ExecutionOutcome, HarborClient};
use crate::image_ref::ImageRef;
use crate::import_state::{Observation, Phase};
use crate::model::Image;
use crate::outbound::HttpSender;
use crate::services::harbor_ops::artifact_facts;
use crate::store::images;
use crate::store::imports::{self, ImportRow};
use crate::time;

use super::observe;

/// A failure reason a portal user can act on.
pub fn failure_reason(source: &str, status_text: &str) -> String {
    let lower = status_text.to_ascii_lowercase();
    if lower.contains("toomanyrequests") || lower.contains("rate limit") {
        format!(
            "the source registry rate-limited the pull of {source} (Docker Hub allows 10 anonymous pulls per hour): \
             add credentials for it under /api/v1/registries, or retry later"
        )
    } else if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
    {
        format!(
            "the source registry refused access to {source} (unauthorized): add credentials for it under /api/v1/registries"
        )
    } else if status_text.trim().is_empty() {
        format!(
            "Harbor's replication of {source} failed without a reason; see the execution's tasks in Harbor"
        )
    } else {
        format!(
            "Harbor's replication of {source} failed: {}",
            status_text.trim()
        )
    }
}

/// What an execution's status means for an import, given when a failure was first seen.
fn judge(
    execution: &Execution,
    source: &str,
    failure_seen_at: Option<&str>,
    confirm_seconds: i64,
    now: i64,
) -> Judgement {
    match execution.outcome() {
        None => {
            let progress = (execution.total > 0).then(|| {
                (execution.succeed + execution.failed + execution.stopped) * 100 / execution.total
            });
            Judgement::Observe(
                Observation::Running {
                    progress: Some(progress.unwrap_or(0).max(5)),
                },
                None,
            )
        }
        Some(ExecutionOutcome::Imported) => Judgement::Imported,
        Some(ExecutionOutcome::NotFoundAtSource) => Judgement::Observe(
            Observation::Failed,
            Some(format!(
                "{source} was not found at the source registry (no such repository or tag)"
            )),
        ),
        Some(ExecutionOutcome::Stopped) => Judgement::Observe(
            Observation::Failed,
            Some(format!("the import of {source} was stopped in Harbor")),
        ),
        // A task still running after a failure is Harbor's job service retrying it.
        Some(ExecutionOutcome::Failed) if execution.in_progress > 0 => {
            Judgement::Observe(Observation::Running { progress: Some(5) }, None)
        }
        Some(ExecutionOutcome::Failed) => {
            // Harbor retries a failed task after a back-off, so a failure is final only once
            // the execution has ended (Harbor's end time, else when berth first saw it) for
            // the whole confirm window with no task running.
            let ended = execution
                .end_time
                .as_deref()
                .and_then(time::parse)
                .or_else(|| failure_seen_at.and_then(time::parse))
                .map(|t| t.timestamp());
            match ended {
                Some(t) if now - t >= confirm_seconds => {
                    Judgement::HarborFailed(failure_reason(source, &execution.status_text))
                }
                Some(_) => Judgement::AwaitConfirmation {
                    first_seen: failure_seen_at.is_none(),
                },
                None if confirm_seconds == 0 => {
                    Judgement::HarborFailed(failure_reason(source, &execution.status_text))
                }
                None => Judgement::AwaitConfirmation { first_seen: true },
            }
        }
    }
}

enum Judgement {
    Observe(Observation, Option<String>),
    Imported,
    /// Harbor's execution failed and stayed so past the confirm window: final, unless a
    /// later success revives it.
    HarborFailed(String),
    /// Harbor reads `Failed`, which it sometimes does briefly before `Succeed`.
    AwaitConfirmation {
        first_seen: bool,
    },
}

/// Asks Harbor how import `row` is doing and records what it says. Errors reaching Harbor
/// leave the import as it was (the next event or read tries again).
pub async fn reconcile<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    sender: S,
    row: &ImportRow,
) -> Result<(), ApiError> {
    if row.state.phase.is_terminal() {
        return Ok(());
    }
    if time::parse(&row.deadline_at).is_some_and(|d| d.timestamp() < ctx.now) {
        let message = format!(
            "the import of {} did not finish within {} seconds; it can be retried",
            row.source, settings.deadline_seconds
        );
        if let Some(execution_id) = row.execution_id {
            let _ = settings.client(&sender).stop_execution(execution_id).await;
        }
        observe(
            ctx.db,
            row.image_id,
            &Observation::Failed,
            Some(&message),
            None,
        )?;
        return Ok(());
    }
    let Some(execution_id) = row.execution_id else {
        return redrive_if_stranded(ctx, settings, sender, row).await;
    };
    let client = settings.client(&sender);
    let execution = match client.execution(execution_id).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("warning: reading Harbor execution {execution_id}: {e}");
            return Ok(());
        }
    };
    match judge(
        &execution,
        &row.source,
        row.failure_seen_at.as_deref(),
        settings.confirm_failure_seconds,
        ctx.now,
    ) {
        Judgement::Observe(observation, message) => {
            // Running again (a retried task), or ended for a reason no retry changes.
            if row.failure_seen_at.is_some() {
                imports::clear_failure_seen(ctx.db, row.id)?;
            }
            observe(ctx.db, row.image_id, &observation, message.as_deref(), None)?;
        }
        Judgement::HarborFailed(message) => {
            // `failure_seen_at` stays set on such a failure: it marks the import revivable.
            imports::keep_failure_seen(ctx.db, row.id)?;
            observe(
                ctx.db,
                row.image_id,
                &Observation::Failed,
                Some(&message),
                None,
            )?;
        }
        Judgement::Imported => {
            if let Some(image) = images::get(ctx.db, row.image_id)? {
                complete(ctx, settings, &client, &image, row).await?;
            }
        }
        Judgement::AwaitConfirmation { first_seen } => {
            if first_seen {
                imports::note_failure_seen(ctx.db, row.id)?;
            } else {
                imports::touch_event(ctx.db, row.id)?;
            }
        }
    }
    Ok(())
}

/// Harbor holds the copy: the import is ready once berth has read the artifact's facts
/// (digest, size, platforms). When that read fails the import stays as it is and the next
/// webhook or read tries again; a digest the source pinned must be the one Harbor holds.
pub(super) async fn complete<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    client: &HarborClient<S>,
    image: &Image,
    row: &ImportRow,
) -> Result<&'static str, ApiError> {
    let Some(facts) = artifact_facts(client, settings, &image.repository, &image.tag).await else {
        imports::touch_event(ctx.db, row.id)?;
        return Ok("waiting: the artifact could not be read yet");
    };
    let pinned = ImageRef::parse(&row.source).ok().and_then(|r| r.digest);
    if let Some(pin) = pinned.filter(|pin| *pin != facts.digest) {
        let message = format!(
            "{} was pinned to {pin} but the source's tag holds {}; the copy was not accepted",
            row.source, facts.digest
        );
        imports::clear_failure_seen(ctx.db, row.id)?;
        observe(ctx.db, image.id, &Observation::Failed, Some(&message), None)?;
        return Ok("failed: not the pinned digest");
    }
    if let Some(waiting) = super::scan::before_ready(ctx, settings, client, image, &facts).await? {
        return Ok(waiting);
    }
    if let Some(layers) = facts
        .contents
        .as_ref()
        .map(|c| &c.layers)
        .filter(|l| !l.is_empty())
    {
        observe(
            ctx.db,
            image.id,
            &Observation::Layers(layers.clone()),
            None,
            None,
        )?;
    }
    observe(
        ctx.db,
        image.id,
        &Observation::Succeeded,
        None,
        Some(&facts),
    )?;
    Ok("image ready")
}

/// Whether `row` was claimed but never handed to Harbor (no execution id) for longer than
/// the re-drive grace: the process that claimed it stopped in between.
pub(super) fn stranded(row: &ImportRow, settings: &HarborSettings, now: i64) -> bool {
    row.state.phase == Phase::Pending
        && row.execution_id.is_none()
        && time::parse(&row.updated_at)
            .is_some_and(|t| now - t.timestamp() >= settings.redrive_after_seconds)
}

/// Drives a stranded import again. Safe to repeat: the policy has a deterministic name, and
/// an execution of it started since the claim (running or finished) is adopted rather than
/// started twice.
async fn redrive_if_stranded<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    sender: S,
    row: &ImportRow,
) -> Result<(), ApiError> {
    let taken = with_write_tx(ctx.db, || {
        let Some(latest) = imports::latest_import(ctx.db, row.image_id)? else {
            return Ok::<_, ApiError>(None);
        };
        if latest.id != row.id || !stranded(&latest, settings, ctx.now) {
            return Ok(None);
        }
        imports::take_stranded(ctx.db, latest.id)?;
        Ok(Some(latest))
    })?;
    let Some(row) = taken else {
        return Ok(());
    };
    let source =
        ImageRef::parse(&row.source).map_err(|e| ApiError::internal("reading an import", e))?;
    let claimed = Some(time::unix_seconds(&row.started_at));
    super::start::run_import(
        ctx,
        settings,
        sender,
        &source,
        row.image_id,
        row.id,
        claimed,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harbor::ExecutionStatus;

    fn failed(end_time: Option<String>, in_progress: i64) -> Execution {
        Execution {
            id: 1,
            status: ExecutionStatus::Failed,
            status_text: "boom".into(),
            end_time,
            total: 1,
            failed: 1 - in_progress,
            in_progress,
            ..Execution::default()
        }
    }

    fn ago(seconds: i64) -> String {
        time::to_rfc3339(chrono::Utc::now() - chrono::Duration::seconds(seconds))
    }

    #[test]
    fn a_failure_is_final_only_once_harbor_ended_it_for_the_whole_window() {
        let now = chrono::Utc::now().timestamp();
        // Harbor ended the execution long ago: final at first sight.
        let old = judge(&failed(Some(ago(200)), 0), "x", None, 150, now);
        assert!(matches!(old, Judgement::HarborFailed(m) if m.contains("boom")));
        // Ended recently: a retry may still come, whenever berth first saw it.
        let recent = judge(&failed(Some(ago(30)), 0), "x", Some(&ago(500)), 150, now);
        assert!(matches!(
            recent,
            Judgement::AwaitConfirmation { first_seen: false }
        ));
        let fresh = judge(&failed(Some(ago(30)), 0), "x", None, 150, now);
        assert!(matches!(
            fresh,
            Judgement::AwaitConfirmation { first_seen: true }
        ));
        // Without Harbor's end time, berth's first sighting counts.
        let unseen = judge(&failed(None, 0), "x", Some(&ago(200)), 150, now);
        assert!(matches!(unseen, Judgement::HarborFailed(_)));
        // A task running again is a retry, however old the failure.
        let retrying = judge(&failed(Some(ago(500)), 1), "x", Some(&ago(500)), 150, now);
        assert!(matches!(
            retrying,
            Judgement::Observe(Observation::Running { .. }, None)
        ));
    }
}

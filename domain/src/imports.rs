//! Imports through Harbor: the trigger and retry (importer), Harbor's webhooks and worker
//! callbacks (progress), and reconciliation on read (catalog).
//!
//! berth never copies a layer: it asks Harbor to replicate `source` into its project and
//! learns the outcome from Harbor. Webhooks may be late, repeated, reordered or lost, so
//! completion is always decided from the execution's own status, every change goes through
//! [`ImportState::advance`], and a reader that finds an import quiet asks Harbor itself.

use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::config::{Context, HarborSettings};
use crate::db::{Db, DbError, Dialect, Row, with_write_tx};
use crate::envelope::{Api, ApiError};
use crate::harbor::{
    DeleteOutcome, Execution, ExecutionOutcome, HarborClient, HarborError, PolicySpec,
    SourceRegistry, WebhookSpec,
};
use crate::http::Response;
use crate::image_ref::ImageRef;
use crate::import_state::{ImportState, Observation, Phase};
use crate::model::Image;
use crate::outbound::HttpSender;
use crate::{store, time};

// Methods of the Harbor settings that only imports and builds need.
impl HarborSettings {
    pub fn client<S: HttpSender>(&self, sender: S) -> HarborClient<S> {
        HarborClient::new(sender, self.harbor.clone())
    }

    /// Where `source` lands: (registry host, repository with project, tag). The source
    /// registry is part of the path: `quay.io/x/y:1` and `docker.io/x/y:1` are different
    /// images.
    fn destination(&self, source: &ImageRef) -> (String, String, String) {
        (
            self.registry_host.clone(),
            format!("{}/{}", self.dest_namespace(source), source.repository),
            source.tag.clone(),
        )
    }

    /// The Harbor namespace an import of `source` replicates into: `catalog/docker.io`.
    fn dest_namespace(&self, source: &ImageRef) -> String {
        format!(
            "{}/{}",
            self.harbor.project,
            registry_path_component(&source.registry)
        )
    }

    /// Whether `reference` is in berth's own Harbor project (only imports and builds may
    /// be there).
    pub fn is_reserved(&self, reference: &ImageRef) -> bool {
        reference.registry.eq_ignore_ascii_case(&self.registry_host)
            && reference
                .repository
                .split('/')
                .next()
                .is_some_and(|p| p == self.harbor.project)
    }
}

/// A registry host as one repository path component, injectively: lowercase, and the port's
/// `:` as `_` (a host never has `_`). `registry.example.com:5000` → `registry.example.com_5000`.
pub fn registry_path_component(registry: &str) -> String {
    registry.to_ascii_lowercase().replace(':', "_")
}

/// One import attempt, as stored.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub id: i64,
    pub image_id: i64,
    pub source: String,
    pub state: ImportState,
    pub message: Option<String>,
    pub execution_id: Option<i64>,
    /// When this attempt was claimed.
    pub started_at: String,
    pub updated_at: String,
    pub last_event_at: Option<String>,
    pub failure_seen_at: Option<String>,
    pub deadline_at: String,
}

const IMPORT_COLUMNS: &str = "id, image_id, source, state, progress, layers_detail, message, \
    execution_id, started_at, updated_at, last_event_at, failure_seen_at, deadline_at";

impl ImportRow {
    fn from_row(r: &Row<'_>) -> ImportRow {
        ImportRow {
            id: r.i64("id"),
            image_id: r.i64("image_id"),
            source: r.str("source").to_owned(),
            state: ImportState {
                phase: Phase::parse(r.str("state")).unwrap_or(Phase::Pending),
                progress: r.i64("progress"),
                layers: serde_json::from_str(r.str("layers_detail")).unwrap_or_default(),
            },
            message: r.opt_string("message"),
            execution_id: r.get("execution_id").as_i64(),
            started_at: r.str("started_at").to_owned(),
            updated_at: r.str("updated_at").to_owned(),
            last_event_at: r.opt_string("last_event_at"),
            failure_seen_at: r.opt_string("failure_seen_at"),
            deadline_at: r.str("deadline_at").to_owned(),
        }
    }
}

fn for_update(db: &dyn Db) -> &'static str {
    match db.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}

pub fn latest_import(db: &dyn Db, image_id: i64) -> Result<Option<ImportRow>, DbError> {
    let rows = db.query(
        &format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE image_id = ? ORDER BY id DESC LIMIT 1{}",
            for_update(db)
        ),
        &[image_id.into()],
    )?;
    Ok(rows.first().map(|r| ImportRow::from_row(&r)))
}

fn import_by_execution(db: &dyn Db, execution_id: i64) -> Result<Option<ImportRow>, DbError> {
    let rows = db.query(
        &format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE execution_id = ? ORDER BY id DESC LIMIT 1"
        ),
        &[execution_id.into()],
    )?;
    Ok(rows.first().map(|r| ImportRow::from_row(&r)))
}

pub(crate) fn image_at(
    db: &dyn Db,
    registry: &str,
    repository: &str,
    tag: &str,
) -> Result<Option<Image>, DbError> {
    let sql = format!(
        "SELECT {} FROM images WHERE registry = ? AND repository = ? AND tag = ?",
        crate::model::IMAGE_COLUMNS
    );
    let rows = db.query(&sql, &[registry.into(), repository.into(), tag.into()])?;
    Ok(rows.first().map(|r| Image::from_row(&r)))
}

/// Facts about the image in Harbor once it is there.
#[derive(Debug, Clone, Default)]
pub struct ArtifactFacts {
    pub digest: String,
    pub size: i64,
    pub arch: Option<String>,
    pub os: Option<String>,
    pub platforms: Vec<crate::model::Platform>,
    /// Layers, derived facts and scan, for an import read through Harbor.
    pub contents: Option<crate::image_contents::Contents>,
}

impl From<crate::harbor::Artifact> for ArtifactFacts {
    fn from(a: crate::harbor::Artifact) -> ArtifactFacts {
        let platforms: Vec<crate::model::Platform> = a
            .platforms
            .iter()
            .map(|p| crate::model::Platform {
                digest: p.digest.clone(),
                architecture: p.architecture.clone(),
                os: p.os.clone(),
                variant: p.variant.clone(),
                size: p.size.unwrap_or(0),
            })
            .collect();
        let single = |f: fn(&crate::model::Platform) -> &String| {
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
        let Some(row) = latest_import(db, image_id)? else {
            return Ok(None);
        };
        let Some(next) = row.state.advance(observation) else {
            db.execute(
                "UPDATE imports SET last_event_at = ? WHERE id = ?",
                &[time::now_rfc3339().into(), row.id.into()],
            )?;
            return Ok(Some((Applied::Unchanged, row.state)));
        };
        let now = time::now_rfc3339();
        db.execute(
            "UPDATE imports SET state = ?, progress = ?, layers_detail = ?, message = COALESCE(?, message), \
             updated_at = ?, last_event_at = ? WHERE id = ?",
            &[
                next.phase.as_str().into(),
                next.progress.into(),
                Value::Object(next.layers.clone()).to_string().into(),
                message.map(str::to_owned).into(),
                now.clone().into(),
                now.clone().into(),
                row.id.into(),
            ],
        )?;
        match next.phase {
            Phase::Succeeded => mark_ready(db, image_id, facts, &now)?,
            Phase::Failed => {
                db.execute(
                    "UPDATE images SET status = 'failed', revision = revision + 1, updated_at = ? WHERE id = ?",
                    &[now.into(), image_id.into()],
                )?;
            }
            _ => {}
        }
        Ok(Some((Applied::Changed, next)))
    })
}

fn mark_ready(
    db: &dyn Db,
    image_id: i64,
    facts: Option<&ArtifactFacts>,
    now: &str,
) -> Result<(), DbError> {
    let Some(f) = facts else {
        return db.execute(
            "UPDATE images SET status = 'ready', revision = revision + 1, updated_at = ? WHERE id = ?",
            &[now.into(), image_id.into()],
        );
    };
    db.execute(
        "UPDATE images SET status = 'ready', digest = ?, size = ?, arch = ?, os = ?, revision = revision + 1, \
         updated_at = ? WHERE id = ?",
        &[
            f.digest.clone().into(),
            f.size.into(),
            f.arch.clone().into(),
            f.os.clone().into(),
            now.into(),
            image_id.into(),
        ],
    )?;
    db.execute(
        "DELETE FROM image_platforms WHERE image_id = ?",
        &[image_id.into()],
    )?;
    for p in &f.platforms {
        db.execute(
            "INSERT INTO image_platforms (image_id, digest, architecture, os, variant, size) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
            &[
                image_id.into(),
                p.digest.clone().into(),
                p.architecture.clone().into(),
                p.os.clone().into(),
                p.variant.clone().into(),
                p.size.into(),
            ],
        )?;
    }
    if let Some(contents) = &f.contents {
        crate::image_contents::record(db, image_id, contents)?;
    }
    Ok(())
}

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
                ctx.db.execute(
                    "UPDATE imports SET failure_seen_at = NULL WHERE id = ?",
                    &[row.id.into()],
                )?;
            }
            observe(ctx.db, row.image_id, &observation, message.as_deref(), None)?;
        }
        Judgement::HarborFailed(message) => {
            // `failure_seen_at` stays set on such a failure: it marks the import revivable.
            ctx.db.execute(
                "UPDATE imports SET failure_seen_at = COALESCE(failure_seen_at, ?) WHERE id = ?",
                &[time::now_rfc3339().into(), row.id.into()],
            )?;
            observe(
                ctx.db,
                row.image_id,
                &Observation::Failed,
                Some(&message),
                None,
            )?;
        }
        Judgement::Imported => {
            if let Some(image) = store::get(ctx.db, row.image_id)? {
                complete(ctx, settings, &client, &image, row).await?;
            }
        }
        Judgement::AwaitConfirmation { first_seen } => {
            let now = time::now_rfc3339();
            if first_seen {
                ctx.db.execute(
                    "UPDATE imports SET failure_seen_at = ?, last_event_at = ? WHERE id = ?",
                    &[now.clone().into(), now.into(), row.id.into()],
                )?;
            } else {
                ctx.db.execute(
                    "UPDATE imports SET last_event_at = ? WHERE id = ?",
                    &[now.into(), row.id.into()],
                )?;
            }
        }
    }
    Ok(())
}

/// Harbor holds the copy: the import is ready once berth has read the artifact's facts
/// (digest, size, platforms). When that read fails the import stays as it is and the next
/// webhook or read tries again; a digest the source pinned must be the one Harbor holds.
pub(crate) async fn complete<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    client: &HarborClient<S>,
    image: &Image,
    row: &ImportRow,
) -> Result<&'static str, ApiError> {
    let Some(facts) = artifact_facts(client, settings, &image.repository, &image.tag).await else {
        ctx.db.execute(
            "UPDATE imports SET last_event_at = ? WHERE id = ?",
            &[time::now_rfc3339().into(), row.id.into()],
        )?;
        return Ok("waiting: the artifact could not be read yet");
    };
    let pinned = ImageRef::parse(&row.source).ok().and_then(|r| r.digest);
    if let Some(pin) = pinned.filter(|pin| *pin != facts.digest) {
        let message = format!(
            "{} was pinned to {pin} but the source's tag holds {}; the copy was not accepted",
            row.source, facts.digest
        );
        ctx.db.execute(
            "UPDATE imports SET failure_seen_at = NULL WHERE id = ?",
            &[row.id.into()],
        )?;
        observe(ctx.db, image.id, &Observation::Failed, Some(&message), None)?;
        return Ok("failed: not the pinned digest");
    }
    if let Some(waiting) =
        crate::image_contents::before_ready(ctx, settings, client, image, &facts).await?
    {
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
fn stranded(row: &ImportRow, settings: &HarborSettings, now: i64) -> bool {
    row.state.phase == Phase::Pending
        && row.execution_id.is_none()
        && time::parse(&row.updated_at)
            .is_some_and(|t| now - t.timestamp() >= settings.redrive_after_seconds)
}

/// Marks a stranded import as taken again (under the write lock, so one caller re-drives it).
fn take_stranded(db: &dyn Db, row: &ImportRow) -> Result<(), DbError> {
    db.execute(
        "UPDATE imports SET updated_at = ? WHERE id = ?",
        &[time::now_rfc3339().into(), row.id.into()],
    )
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
        let Some(latest) = latest_import(ctx.db, row.image_id)? else {
            return Ok::<_, ApiError>(None);
        };
        if latest.id != row.id || !stranded(&latest, settings, ctx.now) {
            return Ok(None);
        }
        take_stranded(ctx.db, &latest)?;
        Ok(Some(latest))
    })?;
    let Some(row) = taken else {
        return Ok(());
    };
    let source =
        ImageRef::parse(&row.source).map_err(|e| ApiError::internal("reading an import", e))?;
    let claimed = Some(time::unix_seconds(&row.started_at));
    run_import(
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

/// The repository path inside the project: `pytorch/pytorch` for `catalog/pytorch/pytorch`.
pub(crate) fn repository_in_project<'a>(settings: &HarborSettings, repository: &'a str) -> &'a str {
    repository
        .strip_prefix(settings.harbor.project.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(repository)
}

pub async fn artifact_facts<S: HttpSender>(
    client: &HarborClient<S>,
    settings: &HarborSettings,
    repository: &str,
    tag: &str,
) -> Option<ArtifactFacts> {
    let repo = repository_in_project(settings, repository);
    match client.artifact(repo, tag).await {
        Ok(mut artifact) => {
            // Also fills each platform's size.
            let contents = crate::image_contents::read(client, repo, tag, &mut artifact).await;
            let mut facts: ArtifactFacts = artifact.into();
            facts.contents = Some(contents);
            Some(facts)
        }
        Err(e) => {
            eprintln!("warning: reading artifact {repo}:{tag}: {e}");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// importer: POST /api/v1/images:import and PUT /api/v1/images/{id}/importing:retry

/// Seed 003's import answer, inside the v1 envelope.
fn import_answer(
    status: u16,
    state: i64,
    message: &str,
    already: i64,
    image_id: Option<i64>,
) -> Response {
    let data = json!({"state": state, "message": message, "alreadyImageId": already, "image_id": image_id});
    if status == 200 {
        Api::V1.ok_with(200, data, Some("success"))
    } else {
        Response::json(
            status,
            &json!({"code": status, "message": message, "data": data}),
        )
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImportBody {
    source: String,
    source_registry: Option<String>,
}

/// Docker Hub's names for itself.
fn same_registry(given: &str, parsed: &str) -> bool {
    let norm = |h: &str| {
        let h = h
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_ascii_lowercase();
        match h.as_str() {
            "index.docker.io"
            | "registry-1.docker.io"
            | "hub.docker.com"
            | "registry.hub.docker.com" => "docker.io".to_owned(),
            _ => h,
        }
    };
    norm(given) == norm(parsed)
}

/// How a request relates to what the catalog already has at the destination.
enum Claim {
    /// This request owns a new attempt.
    Start {
        image_id: i64,
        import_id: i64,
        /// A stranded attempt taken over: when it was claimed (Unix seconds). Harbor may
        /// already have run its execution since.
        redrive: Option<i64>,
    },
    Ready(i64),
    InProgress(i64),
}

pub async fn start<S: HttpSender>(
    req: &crate::http::Request,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    let body: ImportBody = crate::admin::json_body(req)?;
    let source =
        ImageRef::parse(body.source.trim()).map_err(|e| ApiError::bad_param("source", e))?;
    if let Some(given) = body
        .source_registry
        .as_deref()
        .filter(|g| !g.trim().is_empty())
    {
        if !same_registry(given, &source.registry) {
            return Err(ApiError::bad_param(
                "sourceRegistry",
                format!(
                    "'{given}' does not match the source's registry '{}'",
                    source.registry
                ),
            ));
        }
    }
    // Harbor replicates tags, never a bare digest: a pin names its tag too, and the copy
    // is accepted only if Harbor holds that digest.
    if source.digest.is_some() && !crate::image_ref::names_tag(body.source.trim()) {
        return Err(ApiError::bad_param(
            "source",
            format!(
                "'{}' pins a digest without a tag: Harbor replicates tags, so name the tag too \
                 (e.g. {}/{}:<tag>@<digest>); berth checks that the tag holds the digest",
                body.source.trim(),
                source.registry,
                source.repository
            ),
        ));
    }
    let settings = ctx.settings.harbor()?;
    if !settings
        .allowed_sources
        .iter()
        .any(|a| a == &source.registry)
    {
        return Err(ApiError::forbidden(format!(
            "{} is not an allowed import source; allowed: {}",
            source.registry,
            settings.allowed_sources.join(", ")
        )));
    }
    crate::migrations::ensure_for(ctx)?;
    claim_and_run(ctx, settings, sender, &source, caller).await
}

/// Claims the import of `source` and, when this request owns a new attempt, runs it;
/// otherwise answers with what is already there.
async fn claim_and_run<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    sender: S,
    source: &ImageRef,
    caller: &Caller,
) -> Result<Response, ApiError> {
    match claim(ctx, settings, source, caller)? {
        Claim::Ready(id) => Ok(import_answer(200, 2, "Image already exists", id, Some(id))),
        Claim::InProgress(id) => Ok(import_answer(
            200,
            1,
            "Image import already in progress",
            0,
            Some(id),
        )),
        Claim::Start {
            image_id,
            import_id,
            redrive,
        } => run_import(ctx, settings, sender, source, image_id, import_id, redrive).await,
    }
}

/// Decides, under the write lock, whether this request starts an attempt.
fn claim(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    source: &ImageRef,
    caller: &Caller,
) -> Result<Claim, ApiError> {
    let (registry, repository, tag) = settings.destination(source);
    let db = ctx.db;
    with_write_tx(db, || {
        let now = time::now_rfc3339();
        let image = image_at(db, &registry, &repository, &tag)?;
        // A copy the caller may not see (an admin made it private or took it offline) is
        // not theirs to re-import, and the answer names nothing of it: no id, no status.
        if image
            .as_ref()
            .is_some_and(|i| !crate::store::can_see(caller, i))
        {
            return Err(ApiError::conflict(format!(
                "{} cannot be imported: berth's copy of it is withheld by an admin; ask an admin",
                source.tagged()
            )));
        }
        let image_id = match image {
            Some(i) if i.status == "ready" => {
                if let Some(pin) = &source.digest {
                    if i.digest.as_deref() != Some(pin.as_str()) {
                        return Err(ApiError::conflict(format!(
                            "berth's copy of {} holds {}, not the pinned {pin}",
                            source.tagged(),
                            i.digest.as_deref().unwrap_or("an unknown digest")
                        )));
                    }
                }
                return Ok(Claim::Ready(i.id));
            }
            Some(i) if i.status == "importing" => {
                let latest = latest_import(db, i.id)?;
                if let Some(r) = latest.as_ref().filter(|r| stranded(r, settings, ctx.now)) {
                    take_stranded(db, r)?;
                    return Ok(Claim::Start {
                        image_id: i.id,
                        import_id: r.id,
                        redrive: Some(time::unix_seconds(&r.started_at)),
                    });
                }
                let expired = latest.is_some_and(|r| {
                    time::parse(&r.deadline_at).is_some_and(|d| d.timestamp() < ctx.now)
                });
                if !expired {
                    return Ok(Claim::InProgress(i.id));
                }
                i.id
            }
            Some(i) if i.status == "failed" => i.id,
            Some(_) => {
                // No id: the row may be one the caller cannot see.
                return Err(ApiError::conflict(format!(
                    "{} is in the catalog, not as an import",
                    source.tagged()
                )));
            }
            None => {
                let name = source.tagged();
                db.query(
                    "INSERT INTO images (name, description, category, framework, registry, repository, tag, \
                     visibility, owner, status, publication, origin, created_by, updated_by, created_at, updated_at) \
                     VALUES (?, ?, 'imported', NULL, ?, ?, ?, 'public', NULL, 'importing', 'online', 'import', ?, ?, ?, ?) \
                     RETURNING id",
                    // No owner: the row is a shared copy; the importer is created_by.
                    &[
                        name.clone().into(),
                        format!("Imported from {name}").into(),
                        registry.clone().into(),
                        repository.clone().into(),
                        tag.clone().into(),
                        caller.name.clone().into(),
                        caller.name.clone().into(),
                        now.clone().into(),
                        now.clone().into(),
                    ],
                )
                // Another image (not at this destination) may already hold the name.
                .map_err(|e| match e {
                    DbError::Conflict(_) => ApiError::conflict(format!(
                        "an image named '{name}' already exists and is not this import; \
                         ask an admin to rename it, then import again"
                    )),
                    other => other.into(),
                })?
                .scalar_i64()
                .ok_or_else(|| ApiError::internal("recording an import", "no id returned"))?
            }
        };
        db.execute(
            "UPDATE images SET status = 'importing', updated_by = ?, updated_at = ?, revision = revision + 1 WHERE id = ?",
            &[caller.name.clone().into(), now.clone().into(), image_id.into()],
        )?;
        let attempt = db
            .query(
                "SELECT COUNT(*) FROM imports WHERE image_id = ?",
                &[image_id.into()],
            )?
            .scalar_i64()
            .unwrap_or(0)
            + 1;
        let deadline = time::to_rfc3339(
            chrono::Utc::now() + chrono::Duration::seconds(settings.deadline_seconds),
        );
        let import_id = db
            .query(
                "INSERT INTO imports (image_id, source, source_registry, state, progress, layers_detail, attempt, \
                 started_at, updated_at, deadline_at) VALUES (?, ?, ?, 'pending', 0, '{}', ?, ?, ?, ?) RETURNING id",
                &[
                    image_id.into(),
                    // With its digest, if pinned: completion checks it.
                    source.to_string().into(),
                    source.registry.clone().into(),
                    attempt.into(),
                    now.clone().into(),
                    now.clone().into(),
                    deadline.into(),
                ],
            )?
            .scalar_i64()
            .ok_or_else(|| ApiError::internal("recording an import", "no id returned"))?;
        Ok(Claim::Start {
            image_id,
            import_id,
            redrive: None,
        })
    })
}

/// Drives Harbor for a claimed attempt: registry, policy, execution.
async fn run_import<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    sender: S,
    source: &ImageRef,
    image_id: i64,
    import_id: i64,
    redrive: Option<i64>,
) -> Result<Response, ApiError> {
    let client = settings.client(&sender);
    // An admin-managed registry (with its credentials) for the source's host, else an
    // anonymous endpoint.
    let managed = crate::registries::harbor_registry_for(ctx.db, &source.registry)?;
    let registry = SourceRegistry::for_image(source);
    let steps = async {
        ensure_project_and_webhooks(&client, settings).await?;
        let registry_id = match managed {
            Some(id) => id,
            None => client.ensure_registry(&registry).await?,
        };
        let mut policy = PolicySpec::new(
            policy_name(source),
            registry_id,
            source.repository.clone(),
            source.tag.clone(),
        )
        .with_replace_count(0)
        .with_dest_namespace(settings.dest_namespace(source));
        // Harbor before v2.13 names no execution in its REPLICATION events, only the
        // policy's description: it carries the policy name so berth can match them.
        policy.description = format!("Image import managed by berth ({})", policy.name);
        let policy_id = client.ensure_pull_policy(&policy).await?;
        // A re-drive adopts the execution the first run started before it stopped, if it
        // got that far: in progress, succeeded or failed, it is this attempt's copy.
        let adopted = match redrive {
            Some(claimed) => client.latest_execution_since(policy_id, claimed).await?,
            None => None,
        };
        let execution_id = match adopted {
            Some(id) => id,
            None => client.start_execution(policy_id).await?,
        };
        Ok::<_, HarborError>((registry_id, policy_id, execution_id))
    };
    match steps.await {
        Ok((registry_id, policy_id, execution_id)) => {
            let now = time::now_rfc3339();
            ctx.db.execute(
                "UPDATE imports SET state = 'running', progress = 1, harbor_registry_id = ?, policy_id = ?, \
                 execution_id = ?, updated_at = ?, last_event_at = ? WHERE id = ? AND state = 'pending'",
                &[registry_id.into(), policy_id.into(), execution_id.into(), now.clone().into(), now.into(), import_id.into()],
            )?;
            Ok(import_answer(
                200,
                1,
                "Image import started",
                0,
                Some(image_id),
            ))
        }
        Err(e) => {
            let message = match &e {
                HarborError::Unreachable(_) => format!(
                    "Harbor is unreachable, the import of {} was not started: {e}",
                    source.tagged()
                ),
                _ => format!(
                    "Harbor refused to start the import of {}: {e}",
                    source.tagged()
                ),
            };
            observe(ctx.db, image_id, &Observation::Failed, Some(&message), None)?;
            Ok(import_answer(502, 0, &message, 0, Some(image_id)))
        }
    }
}

/// Makes sure berth's Harbor project exists and sends berth its events (when berth knows
/// its own webhook address).
pub async fn ensure_project_and_webhooks<S: HttpSender>(
    client: &HarborClient<S>,
    settings: &HarborSettings,
) -> Result<(), HarborError> {
    client.ensure_project().await?;
    if !settings.webhook_url.is_empty() {
        client
            .ensure_webhook_spec(&WebhookSpec {
                name: "berth".into(),
                address: settings.webhook_url.clone(),
                auth_header: format!("Bearer {}", settings.webhook_secret.expose()),
                event_types: vec![
                    "REPLICATION".into(),
                    "PUSH_ARTIFACT".into(),
                    "DELETE_ARTIFACT".into(),
                    "SCANNING_COMPLETED".into(),
                    "SCANNING_FAILED".into(),
                ],
            })
            .await?;
    }
    Ok(())
}

/// One replication policy per source reference, named deterministically.
pub fn policy_name(source: &ImageRef) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(source.tagged().as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("berth-import-{hex}")
}

pub async fn retry<S: HttpSender>(
    id: i64,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    crate::migrations::ensure_for(ctx)?;
    let image = crate::catalog::visible_image(id, ctx, caller)?;
    // Imports have no owner; the one who started it (or an admin) may retry it, as they
    // could by importing the same source again.
    if !caller.is_admin() && image.created_by.as_deref() != Some(caller.name.as_str()) {
        return Err(ApiError::forbidden(
            "only the user who started the import or an admin can retry it",
        ));
    }
    let row = latest_import(ctx.db, id)?
        .ok_or_else(|| ApiError::conflict(format!("image {id} was not imported")))?;
    if image.status != "failed" {
        return Err(ApiError::conflict(format!(
            "image {id} is {}, only a failed import can be retried",
            image.status
        )));
    }
    let source =
        ImageRef::parse(&row.source).map_err(|e| ApiError::internal("reading an import", e))?;
    let settings = ctx.settings.harbor()?;
    claim_and_run(ctx, settings, sender, &source, caller).await
}

// ---------------------------------------------------------------------------------------
// catalog: importing-details, Harbor statistics

pub async fn importing_details<S: HttpSender>(
    id: i64,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    let image = crate::catalog::visible_image(id, ctx, caller)?;
    let mut row = latest_import(ctx.db, id)?;

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
                reconcile(ctx, settings, sender, r).await?;
                row = latest_import(ctx.db, id)?;
            }
        }
    }
    let image = store::get(ctx.db, id)?.unwrap_or(image);
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
    let cached = ctx.db.query(
        "SELECT value, expires_at FROM cached_values WHERE key = 'harbor_stats'",
        &[],
    )?;
    let last: Option<(Value, bool)> = cached.first().and_then(|r| {
        let fresh = time::parse(r.str("expires_at")).is_some_and(|t| t.timestamp() > ctx.now);
        serde_json::from_str::<Value>(r.str("value"))
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
    ctx.db.execute(
        "DELETE FROM cached_values WHERE key = 'harbor_stats_refresh'",
        &[],
    )?;
    let data = fetched?;
    let expires =
        time::to_rfc3339(chrono::Utc::now() + chrono::Duration::seconds(STATS_TTL_SECONDS));
    ctx.db.execute(
        "INSERT INTO cached_values (key, value, expires_at) VALUES ('harbor_stats', ?, ?) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        &[data.to_string().into(), expires.into()],
    )?;
    with_own_counts(ctx, data)
}

/// Harbor's statistics plus berth's own project, counted now from berth's rows.
fn with_own_counts(ctx: &Context<'_>, mut data: Value) -> Result<Response, ApiError> {
    if let Ok(settings) = ctx.settings.harbor() {
        data["project"] = own_project_counts(ctx, settings)?;
    }
    Ok(Api::V1.ok(data))
}

/// Takes the refresh lease unless another caller holds a live one.
fn claim_stats_refresh(ctx: &Context<'_>) -> Result<bool, ApiError> {
    Ok(claim_lease(
        ctx.db,
        "harbor_stats_refresh",
        STATS_REFRESH_LEASE_SECONDS,
    )?)
}

/// Takes the lease `key` for `seconds` unless another caller holds a live one: one row in
/// `cached_values`, claimed in one statement, so replicas sharing a database never both
/// hold it. [`release_lease`] ends it early.
pub fn claim_lease(db: &dyn Db, key: &str, seconds: i64) -> Result<bool, DbError> {
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::seconds(seconds);
    let claimed = db.query(
        "INSERT INTO cached_values (key, value, expires_at) VALUES (?, '', ?) \
         ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
         WHERE cached_values.expires_at < ? RETURNING key",
        &[
            key.into(),
            time::to_rfc3339(until).into(),
            time::to_rfc3339(now).into(),
        ],
    )?;
    Ok(!claimed.is_empty())
}

pub fn release_lease(db: &dyn Db, key: &str) -> Result<(), DbError> {
    db.execute("DELETE FROM cached_values WHERE key = ?", &[key.into()])
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
    let _ = ctx.db.execute(
        "INSERT INTO cached_values (key, value, expires_at) VALUES ('harbor_systeminfo', ?, ?) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        &[info.harbor_version.clone().into(), expires.into()],
    );
    Some(info)
}

/// Harbor's system information as last read, while fresh; never asks Harbor.
fn cached_system_info(ctx: &Context<'_>) -> Option<crate::harbor::SystemInfo> {
    let cached = ctx
        .db
        .query(
            "SELECT value, expires_at FROM cached_values WHERE key = 'harbor_systeminfo'",
            &[],
        )
        .ok()?;
    let r = cached.first()?;
    time::parse(r.str("expires_at"))
        .is_some_and(|t| t.timestamp() > ctx.now)
        .then(|| crate::harbor::SystemInfo {
            harbor_version: r.str("value").to_owned(),
        })
}

/// What the statistics say about Harbor's version: which webhooks berth can match directly.
fn version_view(info: Option<&crate::harbor::SystemInfo>) -> Value {
    json!({
        "harborVersion": info.map(|i| i.harbor_version.clone()).filter(|v| !v.is_empty()),
        "eventsCarryExecutionId": info.and_then(|i| i.events_carry_execution_id()),
    })
}

/// berth's own project counted from berth's own rows: what is ready there (imports and
/// builds), whatever Harbor lets its account see.
fn own_project_counts(ctx: &Context<'_>, settings: &HarborSettings) -> Result<Value, ApiError> {
    let project = &settings.harbor.project;
    let rows = ctx.db.query(
        &format!(
            "SELECT COUNT(*) AS images, COUNT(DISTINCT repository) AS repositories, \
             CAST(COALESCE(SUM(size), 0) AS BIGINT) AS size FROM images WHERE registry = ? \
             AND substr(repository, 1, {}) = ? AND status = 'ready' AND origin IN ('import', 'build')",
            project.chars().count() + 1
        ),
        &[
            settings.registry_host.clone().into(),
            format!("{project}/").into(),
        ],
    )?;
    let row = rows.first();
    let count = |column: &str| {
        row.as_ref()
            .and_then(|r| r.get(column).as_i64())
            .unwrap_or(0)
    };
    Ok(json!({
        "name": project,
        "repositories": count("repositories"),
        "images": count("images"),
        "size": count("size"),
    }))
}

// ---------------------------------------------------------------------------------------
// progress: the sweep

/// The most imports, and the most builds, one sweep run reconciles.
pub const SWEEP_BATCH: usize = 20;
/// How long a sweeper holds an import or a build (longer than any reconcile takes).
const SWEEP_LEASE_SECONDS: i64 = 90;

/// The sync workers' callbacks and the sweep are called with `Bearer <worker_token>`.
fn require_worker_token(req: &crate::http::Request, ctx: &Context<'_>) -> Result<(), ApiError> {
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

/// `POST /api/v1/internal/sweep` (`Authorization: Bearer <worker_token>`), called by a
/// scheduler every `sweep_interval_seconds`: reconciles the unfinished imports heard from
/// least recently (those a webhook marked due first) and the unfinished builds, at most
/// [`SWEEP_BATCH`] of each. Each row is leased while it is worked on, so replicas sweeping
/// at once never work the same row; a row another sweeper holds is skipped.
pub async fn sweep<S: HttpSender>(
    req: &crate::http::Request,
    ctx: &Context<'_>,
    sender: S,
) -> Result<Response, ApiError> {
    require_worker_token(req, ctx)?;
    crate::migrations::ensure_for(ctx)?;
    let settings = ctx.settings.harbor()?;
    let candidates = ctx.db.query(
        &format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE state IN ('pending', 'running') \
             ORDER BY COALESCE(last_event_at, '') ASC, id ASC LIMIT ?"
        ),
        &[(4 * SWEEP_BATCH as i64).into()],
    )?;
    let (mut reconciled, mut finished, mut skipped) = (0, 0, 0);
    for row in candidates.iter().map(|r| ImportRow::from_row(&r)) {
        if reconciled >= SWEEP_BATCH {
            break;
        }
        let lease = format!("sweep_import_{}", row.id);
        if !claim_lease(ctx.db, &lease, SWEEP_LEASE_SECONDS)? {
            skipped += 1;
            continue;
        }
        reconciled += 1;
        let result = reconcile(ctx, settings, &sender, &row).await;
        release_lease(ctx.db, &lease)?;
        if let Err(e) = result {
            eprintln!("warning: sweeping import {}: {}", row.id, e.message);
            continue;
        }
        if latest_import(ctx.db, row.image_id)?.is_some_and(|r| r.state.phase.is_terminal()) {
            finished += 1;
        }
    }
    let builds = crate::builds::sweep(ctx, &sender, SWEEP_BATCH, SWEEP_LEASE_SECONDS).await?;
    let info = harbor_system_info(ctx, settings, &sender).await;
    Ok(Api::V1.ok(json!({
        "imports": {"reconciled": reconciled, "finished": finished, "skipped": skipped},
        "builds": builds,
        "harbor": version_view(info.as_ref()),
    })))
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

// ---------------------------------------------------------------------------------------
// admin: deleting an imported or built image deletes its artifact in Harbor

/// Deletes the image's artifact in Harbor; an artifact already gone is fine.
pub async fn delete_in_harbor<S: HttpSender>(
    ctx: &Context<'_>,
    image: &Image,
    sender: S,
) -> Result<(), ApiError> {
    if !matches!(image.origin.as_str(), "import" | "build") || image.status == "failed" {
        return Ok(());
    }
    let settings = ctx.settings.harbor()?;
    if image.registry != settings.registry_host {
        return Ok(());
    }
    let repo = repository_in_project(settings, &image.repository);
    match settings
        .client(&sender)
        .delete_artifact(repo, &image.tag)
        .await
    {
        Ok(DeleteOutcome::Deleted | DeleteOutcome::NotFound) => Ok(()),
        Err(e) => Err(ApiError::new(
            502,
            format!(
                "Harbor did not delete {}: {e}; the image was kept, try again",
                image.registry_url()
            ),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// progress: Harbor webhooks and worker callbacks

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
pub fn webhook(req: &crate::http::Request, ctx: &Context<'_>) -> Result<Response, ApiError> {
    if !webhook_authorized(
        req.header("authorization"),
        ctx.settings.harbor_webhook_secret().expose(),
    ) {
        return Err(ApiError::unauthorized(
            "the webhook's Authorization does not match harbor_webhook_secret",
        ));
    }
    // Harbor's events are a few KiB; anything larger is not one of them.
    if req.body.len() > crate::admin::MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            format!(
                "the webhook body is larger than {} bytes",
                crate::admin::MAX_BODY_BYTES
            ),
        ));
    }
    let event: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("the webhook body is not JSON: {e}")))?;
    crate::migrations::ensure_for(ctx)?;
    let kind = event["type"].as_str().unwrap_or_default();
    let data = &event["event_data"];
    let settings = ctx.settings.harbor()?;
    let outcome = match kind {
        "REPLICATION" => {
            let replication = &data["replication"];
            let success = replication["job_status"].as_str() == Some("Success");
            match replication_import(ctx, settings, replication)? {
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
                match image_at(ctx.db, &settings.registry_host, repo, tag)? {
                    Some(image) if kind == "PUSH_ARTIFACT" => {
                        match latest_import(ctx.db, image.id)? {
                            Some(row) => note_harbor_event(ctx, &row, true)?,
                            None => "ignored: no import of this image",
                        }
                    }
                    Some(image) if kind == "DELETE_ARTIFACT" && image.status == "ready" => {
                        ctx.db.execute(
                            "UPDATE images SET status = 'failed', revision = revision + 1, updated_at = ? WHERE id = ?",
                            &[time::now_rfc3339().into(), image.id.into()],
                        )?;
                        "image marked gone"
                    }
                    None if kind == "PUSH_ARTIFACT" => {
                        if crate::builds::note_push(ctx, &format!("{repo}:{tag}"))? {
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
            crate::image_contents::scanning_event(ctx, settings, data)?
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
        return import_by_execution(ctx.db, id);
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
            if let Some(image) = image_at(ctx.db, &settings.registry_host, &repository, tag)? {
                if let Some(row) = latest_import(ctx.db, image.id)? {
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
    let rows = ctx.db.query(
        &format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE state IN ('pending', 'running', 'failed') \
             AND deadline_at > ? ORDER BY id DESC LIMIT 500"
        ),
        &[time::to_rfc3339(chrono::Utc::now()).into()],
    )?;
    Ok(rows.iter().map(|r| ImportRow::from_row(&r)).find(|row| {
        ImageRef::parse(&row.source).is_ok_and(|source| policy_name(&source) == policy)
    }))
}

/// Records that Harbor said something about `row`'s import: an unfinished import is due for
/// a read of Harbor (the sweep and readers take due imports first); a success revives an
/// import that failed recently (see [`revivable`]). Returns the webhook's outcome.
pub(crate) fn note_harbor_event(
    ctx: &Context<'_>,
    row: &ImportRow,
    success: bool,
) -> Result<&'static str, ApiError> {
    with_write_tx(ctx.db, || {
        let Some(latest) = latest_import(ctx.db, row.image_id)?.filter(|l| l.id == row.id) else {
            return Ok("ignored: a newer import of this image exists");
        };
        if !latest.state.phase.is_terminal() {
            ctx.db.execute(
                "UPDATE imports SET last_event_at = NULL WHERE id = ?",
                &[latest.id.into()],
            )?;
            return Ok("noted: berth reads Harbor in the sweep or on the next read");
        }
        if !(success && revivable(ctx, &latest)?) {
            return Ok("ignored: the import has ended");
        }
        let now = time::now_rfc3339();
        ctx.db.execute(
            "UPDATE imports SET state = 'running', failure_seen_at = NULL, last_event_at = NULL, \
             message = NULL, updated_at = ? WHERE id = ?",
            &[now.clone().into(), latest.id.into()],
        )?;
        ctx.db.execute(
            "UPDATE images SET status = 'importing', revision = revision + 1, updated_at = ? WHERE id = ?",
            &[now.into(), latest.image_id.into()],
        )?;
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
    Ok(store::get(ctx.db, row.image_id)?.is_some_and(|image| image.status == "failed"))
}

/// `PUT /api/v1/images:import/{name}/progress` from a sync worker.
pub fn worker_progress(
    name: &str,
    req: &crate::http::Request,
    ctx: &Context<'_>,
) -> Result<Response, ApiError> {
    require_worker_token(req, ctx)?;
    use base64::Engine;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(name.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad_param("name", "is not base64url of an image reference"))?;
    let reference = ImageRef::parse(&decoded).map_err(|e| ApiError::bad_param("name", e))?;
    let mut body: Value = crate::admin::json_body(req)?;
    let object = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let status = object.remove("status");
    let message = object
        .remove("message")
        .and_then(|m| m.as_str().map(str::to_owned));
    let mut facts = ArtifactFacts::default();
    let mut has_facts = false;
    if let Some(d) = object.remove("digest") {
        facts.digest = crate::image_ref::parse_digest(d.as_str().unwrap_or_default())
            .map_err(|e| ApiError::bad_param("digest", e))?;
        has_facts = true;
    }
    if let Some(s) = object.remove("size") {
        facts.size = s
            .as_i64()
            .filter(|s| *s >= 0)
            .ok_or_else(|| ApiError::bad_param("size", "must be a non-negative integer"))?;
    }
    facts.arch = object
        .remove("arch")
        .and_then(|v| v.as_str().map(str::to_owned));
    facts.os = object
        .remove("os")
        .and_then(|v| v.as_str().map(str::to_owned));
    let layers = crate::import_state::parse_layers(&Value::Object(object.clone()))
        .map_err(ApiError::bad_request)?;

    crate::migrations::ensure_for(ctx)?;
    let image = image_at(
        ctx.db,
        &reference.registry,
        &reference.repository,
        &reference.tag,
    )?
    .ok_or_else(|| ApiError::not_found(format!("no import of {} is known", reference.tagged())))?;
    let not_imported = || ApiError::not_found(format!("{} was not imported", reference.tagged()));
    // Each observation is one write transaction that reads the import under the lock and
    // returns its state afterwards: the answer needs no further read.
    let mut observations = Vec::new();
    if !layers.is_empty() {
        observations.push((Observation::Layers(layers), None, None));
    }
    match status.as_ref().and_then(Value::as_str) {
        Some("completed" | "succeeded" | "ready") => {
            let facts = has_facts.then_some(&facts);
            observations.push((Observation::Succeeded, message, facts));
        }
        Some("failed") => {
            let message = message.unwrap_or_else(|| "the sync worker reported a failure".into());
            observations.push((Observation::Failed, Some(message), None));
        }
        Some(other) => {
            return Err(ApiError::bad_param(
                "status",
                format!("'{other}' is not completed or failed"),
            ));
        }
        None => {}
    }
    let mut changed = false;
    let mut state = None;
    for (observation, message, facts) in &observations {
        let (applied, after) =
            observe_state(ctx.db, image.id, observation, message.as_deref(), *facts)?
                .ok_or_else(not_imported)?;
        changed |= applied == Applied::Changed;
        state = Some(after);
    }
    let state = match state {
        Some(s) => s,
        None => {
            latest_import(ctx.db, image.id)?
                .ok_or_else(not_imported)?
                .state
        }
    };
    Ok(Api::V1.ok(json!({
        "image_id": image.id,
        "changed": changed,
        "progress": state.progress,
        "layersDetail": state.layers,
        "importState": state.phase.as_str(),
    })))
}

/// The value a worker puts in the progress URL for an image.
pub fn progress_name(reference: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(reference)
}

// ---------------------------------------------------------------------------------------
// Routers of the importer and progress components

/// The importer component: `POST /api/v1/images:import`, and import retries forwarded by
/// the catalog component.
pub async fn handle_importer<S: HttpSender>(
    req: &crate::http::Request,
    ctx: &Context<'_>,
    sender: S,
) -> Response {
    let result = async {
        let caller = crate::catalog::caller(req, ctx)?;
        let segments = req.segments();
        match (
            req.method.as_str(),
            segments
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
        ) {
            ("POST", ["api", "v1", "images:import"]) => start(req, ctx, &caller, sender).await,
            (_, ["api", "v1", "registries"]) => {
                crate::registries::handle(req, ctx, &caller, None, sender).await
            }
            (_, ["api", "v1", "registries", id]) => {
                crate::registries::handle(req, ctx, &caller, Some(id), sender).await
            }

            ("POST", ["api", "v1", "images:build"]) => {
                crate::builds::start(req, ctx, &caller, sender, crate::builds::BuildApi::V1).await
            }
            ("POST", ["api", "images", "build"]) => {
                crate::builds::start(req, ctx, &caller, sender, crate::builds::BuildApi::Console)
                    .await
            }
            ("PUT", ["api", "v1", "images", id, "importing:retry"]) => {
                retry(crate::catalog::parse_id(id)?, ctx, &caller, sender).await
            }
            (method, ["api", "v1", "images:import"]) => {
                Err(ApiError::method_not_allowed(method, "POST"))
            }
            (method, ["api", "v1", "images", _, "importing:retry"]) => {
                Err(ApiError::method_not_allowed(method, "PUT"))
            }
            (method, _) => Err(ApiError::no_route(method, &req.path)),
        }
    };
    // `/api/images/build` is a console path: its errors use the console's envelope.
    crate::envelope::respond(Api::for_path(&req.path), result.await)
}

/// The progress component: Harbor's webhooks and sync workers' progress callbacks.
pub async fn handle_progress<S: HttpSender>(
    req: &crate::http::Request,
    ctx: &Context<'_>,
    sender: S,
) -> Response {
    let segments = req.segments();
    let result = match (
        req.method.as_str(),
        segments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        ("POST", ["api", "v1", "hooks", "harbor"]) => webhook(req, ctx),
        ("PUT", ["api", "v1", "images:import", name, "progress"]) => {
            worker_progress(name, req, ctx)
        }
        ("POST", ["api", "v1", "internal", "sweep"]) => sweep(req, ctx, sender).await,
        (method, ["api", "v1", "internal", "sweep"]) => {
            Err(ApiError::method_not_allowed(method, "POST"))
        }
        ("PUT", ["api", "v1", "builds", id, "status"]) => {
            crate::builds::runner_status(id, req, ctx)
        }
        (method, ["api", "v1", "hooks", "harbor"]) => {
            Err(ApiError::method_not_allowed(method, "POST"))
        }
        (method, ["api", "v1", "images:import", _, "progress"]) => {
            Err(ApiError::method_not_allowed(method, "PUT"))
        }
        (method, _) => Err(ApiError::no_route(method, &req.path)),
    };
    crate::envelope::respond(Api::V1, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::native::SqliteDb;
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

    #[test]
    fn a_lease_has_one_holder_until_released_or_expired() {
        let db = SqliteDb(rusqlite::Connection::open_in_memory().unwrap());
        db.execute(
            "CREATE TABLE cached_values (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at TEXT NOT NULL)",
            &[],
        )
        .unwrap();
        assert!(claim_lease(&db, "sweep_import_1", 90).unwrap());
        assert!(!claim_lease(&db, "sweep_import_1", 90).unwrap());
        assert!(claim_lease(&db, "sweep_import_2", 90).unwrap());
        release_lease(&db, "sweep_import_1").unwrap();
        assert!(claim_lease(&db, "sweep_import_1", 0).unwrap());
        // A lease of 0 s has already expired: the next caller takes it.
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(claim_lease(&db, "sweep_import_1", 90).unwrap());
    }

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

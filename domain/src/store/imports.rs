//! The `imports` table: one row per import attempt, its state as
//! [`ImportState::advance`](crate::import_state::ImportState::advance) left it, and what berth
//! last heard from Harbor.

use serde_json::Value;

use super::for_update;
use crate::db::{Db, DbError, Row};
use crate::import_state::{ImportState, Phase};
use crate::time;

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

fn import_rows(
    db: &dyn Db,
    sql: &str,
    params: &[crate::db::Value],
) -> Result<Vec<ImportRow>, DbError> {
    Ok(db
        .query(sql, params)?
        .iter()
        .map(|r| ImportRow::from_row(&r))
        .collect())
}

/// The image's latest import (locked on PostgreSQL inside a write transaction).
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

pub fn import_by_execution(db: &dyn Db, execution_id: i64) -> Result<Option<ImportRow>, DbError> {
    let rows = db.query(
        &format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE execution_id = ? ORDER BY id DESC LIMIT 1"
        ),
        &[execution_id.into()],
    )?;
    Ok(rows.first().map(|r| ImportRow::from_row(&r)))
}

/// The unfinished imports heard from least recently (those a webhook marked due first).
pub fn unfinished_imports(db: &dyn Db, limit: i64) -> Result<Vec<ImportRow>, DbError> {
    import_rows(
        db,
        &format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE state IN ('pending', 'running') \
             ORDER BY COALESCE(last_event_at, '') ASC, id ASC LIMIT ?"
        ),
        &[limit.into()],
    )
}

/// The newest imports that may still hear from Harbor: unfinished or failed, within their
/// deadline (at most 500).
pub fn recent_imports(db: &dyn Db) -> Result<Vec<ImportRow>, DbError> {
    import_rows(
        db,
        &format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE state IN ('pending', 'running', 'failed') \
             AND deadline_at > ? ORDER BY id DESC LIMIT 500"
        ),
        &[time::to_rfc3339(chrono::Utc::now()).into()],
    )
}

/// How many attempts the image's imports made so far.
pub fn attempts(db: &dyn Db, image_id: i64) -> Result<i64, DbError> {
    Ok(db
        .query(
            "SELECT COUNT(*) FROM imports WHERE image_id = ?",
            &[image_id.into()],
        )?
        .scalar_i64()
        .unwrap_or(0))
}

/// A new attempt, pending; its id.
pub struct NewImport<'a> {
    pub image_id: i64,
    /// With its digest, if pinned: completion checks it.
    pub source: String,
    pub source_registry: &'a str,
    pub attempt: i64,
    pub now: &'a str,
    pub deadline_at: String,
}

pub fn insert_import(db: &dyn Db, new: &NewImport<'_>) -> Result<Option<i64>, DbError> {
    Ok(db
        .query(
            "INSERT INTO imports (image_id, source, source_registry, state, progress, layers_detail, attempt, \
             started_at, updated_at, deadline_at) VALUES (?, ?, ?, 'pending', 0, '{}', ?, ?, ?, ?) RETURNING id",
            &[
                new.image_id.into(),
                new.source.clone().into(),
                new.source_registry.into(),
                new.attempt.into(),
                new.now.into(),
                new.now.into(),
                new.deadline_at.clone().into(),
            ],
        )?
        .scalar_i64())
}

/// Records the state an observation moved the import to.
pub fn set_state(
    db: &dyn Db,
    id: i64,
    next: &ImportState,
    message: Option<&str>,
    now: &str,
) -> Result<(), DbError> {
    db.execute(
        "UPDATE imports SET state = ?, progress = ?, layers_detail = ?, message = COALESCE(?, message), \
         updated_at = ?, last_event_at = ? WHERE id = ?",
        &[
            next.phase.as_str().into(),
            next.progress.into(),
            Value::Object(next.layers.clone()).to_string().into(),
            message.map(str::to_owned).into(),
            now.into(),
            now.into(),
            id.into(),
        ],
    )
}

/// Harbor started (or berth adopted) the attempt's execution: it is running.
pub fn set_running(
    db: &dyn Db,
    id: i64,
    registry_id: i64,
    policy_id: i64,
    execution_id: i64,
) -> Result<(), DbError> {
    let now = time::now_rfc3339();
    db.execute(
        "UPDATE imports SET state = 'running', progress = 1, harbor_registry_id = ?, policy_id = ?, \
         execution_id = ?, updated_at = ?, last_event_at = ? WHERE id = ? AND state = 'pending'",
        &[
            registry_id.into(),
            policy_id.into(),
            execution_id.into(),
            now.clone().into(),
            now.into(),
            id.into(),
        ],
    )
}

/// Something was heard about the import now (nothing changed).
pub fn touch_event(db: &dyn Db, id: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE imports SET last_event_at = ? WHERE id = ?",
        &[time::now_rfc3339().into(), id.into()],
    )
}

/// The import is due for a read of Harbor: the sweep and readers take due imports first.
pub fn mark_due(db: &dyn Db, id: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE imports SET last_event_at = NULL WHERE id = ?",
        &[id.into()],
    )
}

/// Marks a stranded import as taken again (under the write lock, so one caller re-drives it).
pub fn take_stranded(db: &dyn Db, id: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE imports SET updated_at = ? WHERE id = ?",
        &[time::now_rfc3339().into(), id.into()],
    )
}

/// Forgets a failure seen earlier (Harbor's execution runs again, or ended otherwise).
pub fn clear_failure_seen(db: &dyn Db, id: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE imports SET failure_seen_at = NULL WHERE id = ?",
        &[id.into()],
    )
}

/// Keeps when a failure was first seen (now, unless already set).
pub fn keep_failure_seen(db: &dyn Db, id: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE imports SET failure_seen_at = COALESCE(failure_seen_at, ?) WHERE id = ?",
        &[time::now_rfc3339().into(), id.into()],
    )
}

/// Harbor reads `Failed` for the first time: when, and that it was heard.
pub fn note_failure_seen(db: &dyn Db, id: i64) -> Result<(), DbError> {
    let now = time::now_rfc3339();
    db.execute(
        "UPDATE imports SET failure_seen_at = ?, last_event_at = ? WHERE id = ?",
        &[now.clone().into(), now.into(), id.into()],
    )
}

/// A failed import running again after Harbor reported a success.
pub fn revive(db: &dyn Db, id: i64, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE imports SET state = 'running', failure_seen_at = NULL, last_event_at = NULL, \
         message = NULL, updated_at = ? WHERE id = ?",
        &[now.into(), id.into()],
    )
}

/// The image's unfinished latest import waits for something: says what.
pub fn note_waiting(db: &dyn Db, image_id: i64, message: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE imports SET message = ?, last_event_at = ? \
         WHERE id = (SELECT MAX(id) FROM imports WHERE image_id = ?) AND state IN ('pending', 'running')",
        &[message.into(), time::now_rfc3339().into(), image_id.into()],
    )
}

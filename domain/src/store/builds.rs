//! The `builds` table: one row per custom build, from its request to its image.

use crate::db::{Db, DbError, Row};
use crate::time;

/// One build, as stored.
pub struct BuildRow {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub mode: String,
    pub base_image: Option<String>,
    pub base_image_id: Option<i64>,
    pub description: Option<String>,
    pub status: String,
    pub message: Option<String>,
    pub log_tail: Option<String>,
    pub target: String,
    pub image_id: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub deadline_at: String,
}

const BUILD_COLUMNS: &str = "id, owner, name, mode, base_image, base_image_id, description, status, message, \
    log_tail, target, image_id, created_at, updated_at, deadline_at";

impl BuildRow {
    fn from_row(r: &Row<'_>) -> BuildRow {
        BuildRow {
            id: r.str("id").to_owned(),
            owner: r.str("owner").to_owned(),
            name: r.str("name").to_owned(),
            mode: r.str("mode").to_owned(),
            base_image: r.opt_string("base_image"),
            base_image_id: r.get("base_image_id").as_i64(),
            description: r.opt_string("description"),
            status: r.str("status").to_owned(),
            message: r.opt_string("message"),
            log_tail: r.opt_string("log_tail"),
            target: r.str("target").to_owned(),
            image_id: r.get("image_id").as_i64(),
            created_at: r.str("created_at").to_owned(),
            updated_at: r.str("updated_at").to_owned(),
            deadline_at: r.str("deadline_at").to_owned(),
        }
    }
}

fn build_rows(
    db: &dyn Db,
    sql: &str,
    params: &[crate::db::Value],
) -> Result<Vec<BuildRow>, DbError> {
    Ok(db
        .query(sql, params)?
        .iter()
        .map(|r| BuildRow::from_row(&r))
        .collect())
}

pub fn load(db: &dyn Db, id: &str) -> Result<Option<BuildRow>, DbError> {
    Ok(build_rows(
        db,
        &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?"),
        &[id.into()],
    )?
    .into_iter()
    .next())
}

/// The owner's builds, newest first (at most 100).
pub fn list_for_owner(db: &dyn Db, owner: &str) -> Result<Vec<BuildRow>, DbError> {
    build_rows(
        db,
        &format!(
            "SELECT {BUILD_COLUMNS} FROM builds WHERE owner = ? ORDER BY created_at DESC, id DESC LIMIT 100"
        ),
        &[owner.into()],
    )
}

/// The unfinished builds least recently updated.
pub fn unfinished(db: &dyn Db, limit: i64) -> Result<Vec<BuildRow>, DbError> {
    build_rows(
        db,
        &format!(
            "SELECT {BUILD_COLUMNS} FROM builds WHERE status IN ('building', 'running') \
             ORDER BY updated_at ASC, id ASC LIMIT ?"
        ),
        &[limit.into()],
    )
}

/// The newest unfinished build that pushes to `target` (`<repository>:<tag>`).
pub fn unfinished_for_target(db: &dyn Db, target: &str) -> Result<Option<BuildRow>, DbError> {
    Ok(build_rows(
        db,
        &format!(
            "SELECT {BUILD_COLUMNS} FROM builds WHERE target = ? AND status IN ('building', 'running') \
             ORDER BY created_at DESC LIMIT 1"
        ),
        &[target.into()],
    )?
    .into_iter()
    .next())
}

/// The id of a build still running on `base_image_id`, if any.
pub fn running_on_base(db: &dyn Db, base_image_id: i64) -> Result<Option<String>, DbError> {
    let rows = db.query(
        "SELECT id FROM builds WHERE base_image_id = ? AND status IN ('building', 'running') LIMIT 1",
        &[base_image_id.into()],
    )?;
    Ok(rows.first().map(|r| r.str("id").to_owned()))
}

/// The id of a build still running to `target`, if any.
pub fn running_to_target(db: &dyn Db, target: &str) -> Result<Option<String>, DbError> {
    let rows = db.query(
        "SELECT id FROM builds WHERE target = ? AND status IN ('building', 'running')",
        &[target.into()],
    )?;
    Ok(rows.first().map(|r| r.str("id").to_owned()))
}

/// A build just requested, building.
pub struct NewBuild<'a> {
    pub id: &'a str,
    pub owner: &'a str,
    pub name: &'a str,
    pub mode: &'a str,
    pub base_image: Option<String>,
    pub base_image_id: Option<i64>,
    pub dockerfile: Option<String>,
    pub description: Option<String>,
    pub target: &'a str,
    pub now: &'a str,
    pub deadline_at: String,
}

pub fn insert(db: &dyn Db, b: &NewBuild<'_>) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO builds (id, owner, name, mode, base_image, base_image_id, dockerfile, description, status, \
         target, created_at, updated_at, deadline_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'building', ?, ?, ?, ?)",
        &[
            b.id.into(),
            b.owner.into(),
            b.name.into(),
            b.mode.into(),
            b.base_image.clone().into(),
            b.base_image_id.into(),
            b.dockerfile.clone().into(),
            b.description.clone().into(),
            b.target.into(),
            b.now.into(),
            b.now.into(),
            b.deadline_at.clone().into(),
        ],
    )
}

/// Moves a build to a final state, unless it already is in one; whether it moved.
pub fn finish(
    db: &dyn Db,
    id: &str,
    status: &str,
    message: Option<&str>,
    image_id: Option<i64>,
) -> Result<bool, DbError> {
    let changed = db.query(
        "UPDATE builds SET status = ?, message = COALESCE(?, message), image_id = COALESCE(?, image_id), updated_at = ? \
         WHERE id = ? AND status IN ('building', 'running') RETURNING id",
        &[status.into(), message.map(str::to_owned).into(), image_id.into(), time::now_rfc3339().into(), id.into()],
    )?;
    Ok(!changed.is_empty())
}

/// The runner reports the build running (with its log's tail); whether it was unfinished.
pub fn set_running(db: &dyn Db, id: &str, log_tail: Option<String>) -> Result<bool, DbError> {
    Ok(!db
        .query(
            "UPDATE builds SET status = 'running', log_tail = COALESCE(?, log_tail), updated_at = ? \
             WHERE id = ? AND status IN ('building', 'running') RETURNING id",
            &[log_tail.into(), time::now_rfc3339().into(), id.into()],
        )?
        .is_empty())
}

/// Keeps the log's tail of an unfinished build.
pub fn set_log_tail(db: &dyn Db, id: &str, log_tail: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE builds SET log_tail = ? WHERE id = ? AND status IN ('building', 'running')",
        &[log_tail.into(), id.into()],
    )
}

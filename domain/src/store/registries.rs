//! The `registries` table: the source registries imports pull from. Passwords are stored
//! sealed ([`crate::sealed`]); this module stores and returns them as they are.

use crate::db::{Db, DbError, Row};

/// A registry as stored (the password sealed).
pub struct RegistryRow {
    pub id: i64,
    pub name: String,
    pub host: String,
    pub kind: String,
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub harbor_registry_id: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str =
    "id, name, host, kind, url, username, password, harbor_registry_id, created_at, updated_at";

impl RegistryRow {
    fn from_row(r: &Row<'_>) -> RegistryRow {
        RegistryRow {
            id: r.i64("id"),
            name: r.str("name").to_owned(),
            host: r.str("host").to_owned(),
            kind: r.str("kind").to_owned(),
            url: r.str("url").to_owned(),
            username: r.opt_string("username"),
            password: r.opt_string("password"),
            harbor_registry_id: r.get("harbor_registry_id").as_i64(),
            created_at: r.str("created_at").to_owned(),
            updated_at: r.str("updated_at").to_owned(),
        }
    }
}

pub fn load(db: &dyn Db, id: i64) -> Result<Option<RegistryRow>, DbError> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM registries WHERE id = ?"),
        &[id.into()],
    )?;
    Ok(rows.first().map(|r| RegistryRow::from_row(&r)))
}

pub fn list(db: &dyn Db) -> Result<Vec<RegistryRow>, DbError> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM registries ORDER BY id"),
        &[],
    )?;
    Ok(rows.iter().map(|r| RegistryRow::from_row(&r)).collect())
}

/// The Harbor registry id an admin-managed registry for `host` has, if any.
pub fn harbor_registry_for(db: &dyn Db, host: &str) -> Result<Option<i64>, DbError> {
    let rows = db.query(
        "SELECT harbor_registry_id FROM registries WHERE host = ?",
        &[host.into()],
    )?;
    Ok(rows
        .first()
        .and_then(|r| r.get("harbor_registry_id").as_i64()))
}

/// (id, host, password) of every registry with a password.
pub fn with_passwords(db: &dyn Db) -> Result<Vec<(i64, String, String)>, DbError> {
    let rows = db.query(
        "SELECT id, host, password FROM registries WHERE password IS NOT NULL",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.i64("id"),
                r.str("host").to_owned(),
                r.str("password").to_owned(),
            )
        })
        .collect())
}

/// Replaces a password, only if it still is `old` (a concurrent write wins).
pub fn replace_password(db: &dyn Db, id: i64, old: &str, new: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE registries SET password = ? WHERE id = ? AND password = ?",
        &[new.into(), id.into(), old.into()],
    )
}

/// A registry's writable fields.
pub struct RegistryFields<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
    pub username: Option<String>,
    /// Sealed.
    pub password: Option<String>,
}

/// Inserts a registry; its id.
pub fn insert(
    db: &dyn Db,
    host: &str,
    fields: &RegistryFields<'_>,
    by: &str,
    now: &str,
) -> Result<Option<i64>, DbError> {
    Ok(db
        .query(
            "INSERT INTO registries (name, host, kind, url, username, password, created_by, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                fields.name.into(),
                host.into(),
                fields.kind.into(),
                fields.url.into(),
                fields.username.clone().into(),
                fields.password.clone().into(),
                by.into(),
                now.into(),
                now.into(),
            ],
        )?
        .scalar_i64())
}

pub fn update(db: &dyn Db, id: i64, fields: &RegistryFields<'_>, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE registries SET name = ?, kind = ?, url = ?, username = ?, password = ?, updated_at = ? WHERE id = ?",
        &[
            fields.name.into(),
            fields.kind.into(),
            fields.url.into(),
            fields.username.clone().into(),
            fields.password.clone().into(),
            now.into(),
            id.into(),
        ],
    )
}

pub fn set_harbor_registry_id(db: &dyn Db, id: i64, harbor_id: i64) -> Result<(), DbError> {
    db.execute(
        "UPDATE registries SET harbor_registry_id = ? WHERE id = ?",
        &[harbor_id.into(), id.into()],
    )
}

/// Deletes a registry; whether there was one.
pub fn delete(db: &dyn Db, id: i64) -> Result<bool, DbError> {
    Ok(!db
        .query(
            "DELETE FROM registries WHERE id = ? RETURNING id",
            &[id.into()],
        )?
        .is_empty())
}

/// Deletes a registry whose creation failed (no answer needed).
pub fn remove(db: &dyn Db, id: i64) -> Result<(), DbError> {
    db.execute("DELETE FROM registries WHERE id = ?", &[id.into()])
}

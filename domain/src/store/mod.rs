//! Every SQL statement the services run, by table: images (reads, then writes), imports,
//! builds, registries; here, what they share: row locks, leases and cached values
//! (`cached_values`). The store knows the schema and nothing of HTTP, settings or Harbor.

pub mod builds;
pub mod image_detail;
pub mod image_writes;
pub mod images;
pub mod imports;
pub mod registries;

use crate::db::{Db, DbError, Dialect};
use crate::time;

/// ` FOR UPDATE` on PostgreSQL, where a read inside a write transaction must lock its row;
/// SQLite's write transaction already holds the database.
pub(crate) fn for_update(db: &dyn Db) -> &'static str {
    match db.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
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

/// A cached value and when it expires (RFC 3339), whether or not it still is fresh.
pub fn cached_value(db: &dyn Db, key: &str) -> Result<Option<(String, String)>, DbError> {
    let rows = db.query(
        "SELECT value, expires_at FROM cached_values WHERE key = ?",
        &[key.into()],
    )?;
    Ok(rows
        .first()
        .map(|r| (r.str("value").to_owned(), r.str("expires_at").to_owned())))
}

/// Stores (or replaces) a cached value until `expires_at` (RFC 3339).
pub fn put_cached_value(
    db: &dyn Db,
    key: &str,
    value: &str,
    expires_at: &str,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO cached_values (key, value, expires_at) VALUES (?, ?, ?) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        &[key.into(), value.into(), expires_at.into()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::native::SqliteDb;

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
}

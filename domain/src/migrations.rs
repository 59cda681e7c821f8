//! Versioned schema migrations, applied by the components themselves, once, in order.
//!
//! Each component calls [`ensure`] before it touches the database. The applied versions are
//! recorded in `schema_migrations`; pending ones run inside one write transaction that takes
//! the write lock first (SQLite `BEGIN IMMEDIATE`, PostgreSQL advisory lock), so two instances
//! starting together apply each migration exactly once.
//!
//! On SQLite the version is also kept in the file's header (`PRAGMA user_version`, written in
//! the same transaction): the per-request check reads it without reading a table. Spin gives
//! every request a fresh connection, on which each statement is a round through the host.

use crate::db::{Db, DbError, Dialect, Value, with_write_tx};

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            // migrations/ without comments and indentation (build.rs).
            sqlite: include_str!(concat!(
                env!("OUT_DIR"),
                "/migrations/sqlite/",
                $name,
                ".sql"
            )),
            postgres: include_str!(concat!(
                env!("OUT_DIR"),
                "/migrations/postgres/",
                $name,
                ".sql"
            )),
        }
    };
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_schema"),
    migration!(2, "0002_official_images"),
    migration!(3, "0003_catalog_counts_and_search"),
    migration!(4, "0004_listed_newest_first"),
    migration!(5, "0005_imports_have_no_owner"),
    migration!(6, "0006_names_unique_per_owner"),
    migration!(7, "0007_written_addresses_framework_index_settings"),
    migration!(10, "0010_image_facts_and_scans"),
    migration!(11, "0011_catalog_revision"),
];

impl Migration {
    pub fn sql(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// Key of the PostgreSQL advisory lock that serializes migrations across replicas.
const PG_MIGRATION_LOCK: i64 = 0x6265_7274_6800; // "berth"

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

fn applied_version(db: &dyn Db) -> Result<Option<i64>, DbError> {
    match db.query("SELECT MAX(version) FROM schema_migrations", &[]) {
        Ok(rows) => Ok(Some(rows.scalar_i64().unwrap_or(0))),
        Err(DbError::Other(m)) if m.contains("schema_migrations") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The schema version as the per-request check reads it: SQLite's header, PostgreSQL's
/// `schema_migrations` (replicas of different builds share it, and it has no header).
fn version_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "(SELECT user_version FROM pragma_user_version)",
        Dialect::Postgres => "(SELECT MAX(version) FROM schema_migrations)",
    }
}

/// Applies pending migrations. Cheap when the schema is current: one statement.
pub fn ensure(db: &dyn Db) -> Result<(), DbError> {
    let current = db
        .query(&format!("SELECT {}", version_sql(db.dialect())), &[])
        .ok()
        .and_then(|rows| rows.scalar_i64());
    if current == Some(latest_version()) {
        return Ok(());
    }
    with_write_tx(db, || {
        if db.dialect() == Dialect::Postgres {
            db.execute(
                &format!("SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})"),
                &[],
            )?;
        }
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    BIGINT PRIMARY KEY,
                name       TEXT NOT NULL,
                applied_at TEXT NOT NULL
            )",
            &[],
        )?;
        // Re-read under the lock: another instance may have migrated meanwhile.
        let current = applied_version(db)?.unwrap_or(0);
        for m in MIGRATIONS.iter().filter(|m| m.version > current) {
            for statement in split_statements(m.sql(db.dialect())) {
                db.execute(statement, &[])?;
            }
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                &[
                    m.version.into(),
                    m.name.into(),
                    crate::time::now_rfc3339().into(),
                ],
            )?;
        }
        if db.dialect() == Dialect::Sqlite {
            // Also for a file migrated before the header kept the version.
            db.execute(
                &format!("PRAGMA user_version = {}", current.max(latest_version())),
                &[],
            )?;
        }
        Ok(())
    })
}

/// [`ensure`], then keeps the official images (seed 002) in the configured Harbor: they name
/// its registry host, which is a setting, not part of the schema. One statement when the
/// schema is current and the images are already there.
pub fn ensure_for(ctx: &crate::config::Context<'_>) -> Result<(), DbError> {
    ensure_for_reading(ctx, None).map(drop)
}

/// [`ensure_for`] that also reads `also` (a scalar subquery, e.g. the catalog's revision) in
/// the same statement, and returns it: the check costs no statement of its own then.
pub fn ensure_for_reading(
    ctx: &crate::config::Context<'_>,
    also: Option<&str>,
) -> Result<Value, DbError> {
    let check = SchemaCheck::new(ctx);
    let mut sql = format!("SELECT {}", check.columns(ctx.db.dialect()));
    if let Some(also) = also {
        sql.push_str(&format!(", {also} AS also"));
    }
    // Before the first migration the tables do not exist: that is the slow path below.
    if let Ok(rows) = ctx.db.query(&sql, &[])
        && let Some(row) = rows.first()
        && check.passed(&row)
    {
        return Ok(row.get("also").clone());
    }
    check.migrate(ctx.db)?;
    let Some(also) = also else {
        return Ok(Value::Null);
    };
    let rows = ctx.db.query(&format!("SELECT {also}"), &[])?;
    Ok(rows
        .rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or(Value::Null))
}

/// The per-request check as columns of a handler's own first statement, so that it costs
/// no statement of its own: `schema_version`, and `official_registry` when a Harbor is
/// configured. When it does not pass (or the statement failed on an old schema), the
/// handler calls [`SchemaCheck::migrate`] and reads again.
pub struct SchemaCheck {
    registry: Option<String>,
}

impl SchemaCheck {
    pub fn new(ctx: &crate::config::Context<'_>) -> SchemaCheck {
        SchemaCheck {
            registry: ctx.settings.registry_host().map(str::to_owned),
        }
    }

    /// Scalar subqueries for a `SELECT` list.
    pub fn columns(&self, dialect: Dialect) -> String {
        let mut columns = format!("{} AS schema_version", version_sql(dialect));
        if self.registry.is_some() {
            columns.push_str(
                ", (SELECT value FROM catalog_settings WHERE name = 'official_registry') AS official_registry",
            );
        }
        columns
    }

    /// Whether a row holding [`SchemaCheck::columns`] says the schema and the official
    /// images are current.
    pub fn passed(&self, row: &crate::db::Row<'_>) -> bool {
        row.get("schema_version").as_i64() == Some(latest_version())
            && self
                .registry
                .as_deref()
                .is_none_or(|r| row.opt_str("official_registry") == Some(r))
    }

    /// Applies pending migrations and moves the official images to the configured Harbor.
    pub fn migrate(&self, db: &dyn Db) -> Result<(), DbError> {
        ensure(db)?;
        match &self.registry {
            Some(registry) => keep_official_images_in(db, registry),
            None => Ok(()),
        }
    }
}

/// Moves the official images to `registry` and records that they are there.
fn keep_official_images_in(db: &dyn Db, registry: &str) -> Result<(), DbError> {
    with_write_tx(db, || {
        // An image an admin already registered at the new reference keeps it.
        db.execute(
            "UPDATE images SET registry = ?, revision = revision + 1 WHERE origin = 'seed' AND registry <> ? AND NOT EXISTS \
             (SELECT 1 FROM images o WHERE o.registry = ? AND o.repository = images.repository AND o.tag = images.tag)",
            &[registry.into(), registry.into(), registry.into()],
        )?;
        db.execute(
            "INSERT INTO catalog_settings (name, value) VALUES ('official_registry', ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[registry.into()],
        )?;
        Ok(())
    })
}

/// Splits a migration file into statements on `;`, outside quotes, `--` comments and
/// PostgreSQL `$$` bodies. A SQLite `CREATE TRIGGER ... BEGIN ... END;` is one statement: its
/// body's `;` do not split it (the body must not hold an `END;` of its own, e.g. `CASE ... END;`).
/// Spin's SQL interfaces run one statement per call. `build.rs`'s `minify_sql` follows the
/// same quoting rules: change them together.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut in_comment = false;
    let mut in_dollar = false;
    let bytes = sql.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_comment {
            in_comment = b != b'\n';
            continue;
        }
        match b {
            b'-' if !in_quote && !in_dollar && bytes.get(i + 1) == Some(&b'-') => in_comment = true,
            b'$' if !in_quote
                && bytes.get(i + 1) == Some(&b'$')
                && bytes.get(i.wrapping_sub(1)) != Some(&b'$') =>
            {
                in_dollar = !in_dollar
            }
            b'\'' if !in_dollar => in_quote = !in_quote,
            b';' if !in_quote && !in_dollar => {
                let stmt = strip_comments(&sql[start..i]);
                if inside_trigger_body(stmt) {
                    continue;
                }
                if !stmt.is_empty() {
                    out.push(stmt);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let tail = strip_comments(&sql[start..]);
    if !tail.is_empty() {
        out.push(tail);
    }
    out
}

/// Whether `stmt` is a SQLite trigger whose `BEGIN ... END` body is still open.
fn inside_trigger_body(stmt: &str) -> bool {
    let mut words = stmt.split_whitespace().map(str::to_ascii_uppercase);
    let is_trigger = words.next().as_deref() == Some("CREATE")
        && matches!(
            words.next().as_deref(),
            Some("TRIGGER" | "TEMP" | "TEMPORARY")
        );
    is_trigger
        && stmt
            .split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("BEGIN"))
        && !stmt
            .split_whitespace()
            .last()
            .is_some_and(|w| w.eq_ignore_ascii_case("END"))
}

/// Trims whitespace and whole-line `--` comments around a statement.
fn strip_comments(s: &str) -> &str {
    let mut s = s.trim();
    while s.starts_with("--") {
        s = s.split_once('\n').map_or("", |(_, rest)| rest).trim();
    }
    s
}

#[cfg(all(test, feature = "rusqlite"))]
mod tests {
    use super::*;
    use crate::db::native::SqliteDb;

    #[test]
    fn migrations_apply_once_and_seed_official_images() {
        let db = SqliteDb::open_in_memory();
        ensure(&db).unwrap();
        ensure(&db).unwrap();
        let versions = db
            .query("SELECT COUNT(*) FROM schema_migrations", &[])
            .unwrap();
        assert_eq!(versions.scalar_i64(), Some(MIGRATIONS.len() as i64));
        let official = db
            .query("SELECT COUNT(*) FROM images WHERE is_official = 1", &[])
            .unwrap();
        assert_eq!(official.scalar_i64(), Some(4));
    }

    /// 0006 rebuilds `images` with foreign keys on: what references an image survives, and
    /// a name is unique per owner only.
    #[test]
    fn names_unique_per_owner_keeps_what_references_images() {
        let db = SqliteDb::open_in_memory();
        db.execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)", &[]).unwrap();
        for m in MIGRATIONS.iter().filter(|m| m.version < 6) {
            for statement in split_statements(m.sql(Dialect::Sqlite)) {
                db.execute(statement, &[]).unwrap();
            }
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, '')",
                &[m.version.into(), m.name.into()],
            )
            .unwrap();
        }
        let t = "'2026-01-01T00:00:00.000Z'";
        for sql in [
            format!(
                "INSERT INTO image_platforms VALUES (1, 'sha256:a', 'amd64', 'linux', NULL, 1)"
            ),
            format!(
                "INSERT INTO imports (image_id, source, source_registry, state, started_at, updated_at, deadline_at) VALUES (2, 's', 'docker.io', 'succeeded', {t}, {t}, {t})"
            ),
            format!(
                "INSERT INTO builds (id, image_id, base_image_id, owner, name, mode, status, created_at, updated_at, deadline_at) VALUES ('build-1', 3, 1, 'alice', 'x:1', 'dockerfile', 'succeeded', {t}, {t}, {t})"
            ),
        ] {
            db.execute(&sql, &[]).unwrap();
        }
        ensure(&db).unwrap();
        let count = |sql: &str| db.query(sql, &[]).unwrap().scalar_i64().unwrap();
        assert_eq!(
            count("SELECT COUNT(*) FROM image_platforms WHERE image_id = 1"),
            1
        );
        assert_eq!(count("SELECT COUNT(*) FROM image_scopes"), 9);
        assert_eq!(count("SELECT COUNT(*) FROM imports WHERE image_id = 2"), 1);
        assert_eq!(count("SELECT image_id + base_image_id FROM builds"), 4);
        assert_eq!(
            count("SELECT COUNT(*) FROM images_name_fts WHERE images_name_fts MATCH 'pytorch'"),
            1
        );
        let insert = |owner: &str| {
            db.execute(
                &format!("INSERT INTO images (name, registry, repository, tag, owner, created_at, updated_at) \
                 VALUES ('ubuntu20-pytorch:2.0', 'r.io', 'a/b', '1', {owner}, {t}, {t})"),
                &[],
            )
        };
        insert("'alice'").unwrap();
        insert("'bob'").unwrap();
        assert!(matches!(insert("'bob'"), Err(DbError::Conflict(_))));
        assert!(matches!(insert("NULL"), Ok(())));
        assert!(matches!(insert("NULL"), Err(DbError::Conflict(_))));
        let new_id = count("SELECT MAX(id) FROM images");
        assert!(new_id > 4, "ids are not reused: {new_id}");
    }

    /// The per-request check reads the version from SQLite's header; a file migrated before
    /// the header kept it gets it on its next check, without running a migration again.
    #[test]
    fn the_header_keeps_the_schema_version() {
        let db = SqliteDb::open_in_memory();
        let header = || db.query("PRAGMA user_version", &[]).unwrap().scalar_i64();
        ensure(&db).unwrap();
        assert_eq!(header(), Some(latest_version()));
        db.execute("PRAGMA user_version = 0", &[]).unwrap();
        ensure(&db).unwrap();
        assert_eq!(header(), Some(latest_version()));
        let versions = db
            .query("SELECT COUNT(*) FROM schema_migrations", &[])
            .unwrap();
        assert_eq!(versions.scalar_i64(), Some(MIGRATIONS.len() as i64));
    }

    /// Conditional GETs rely on it: every change a list can show moves the revision.
    #[test]
    fn the_catalog_revision_moves_with_every_change_a_list_can_show() {
        let db = SqliteDb::open_in_memory();
        ensure(&db).unwrap();
        let scalar = |sql: &str| db.query(sql, &[]).unwrap().scalar_i64().unwrap();
        let revision = || scalar("SELECT n FROM catalog_totals WHERE name = 'revision'");
        let images = scalar("SELECT n FROM catalog_totals WHERE name = 'images'");
        let x = "(SELECT id FROM images WHERE name = 'x:1')";
        let mut last = revision();
        for sql in [
            "INSERT INTO images (name, registry, repository, tag, created_at, updated_at) \
             VALUES ('x:1', 'r.io', 'a/x', '1', 't', 't')"
                .to_owned(),
            format!("UPDATE images SET description = 'd' WHERE id = {x}"),
            format!("INSERT INTO image_scopes (image_id, scope) VALUES ({x}, 's')"),
            format!("DELETE FROM image_scopes WHERE image_id = {x}"),
            format!("INSERT INTO image_facts (image_id, scan_severity) VALUES ({x}, 2)"),
            format!("UPDATE image_facts SET scan_severity = 3 WHERE image_id = {x}"),
            format!("DELETE FROM images WHERE id = {x}"),
        ] {
            db.execute(&sql, &[]).unwrap();
            let now = revision();
            assert!(now > last, "{sql}: {last} -> {now}");
            last = now;
        }
        // The folded statement still keeps the images total.
        assert_eq!(
            scalar("SELECT n FROM catalog_totals WHERE name = 'images'"),
            images
        );
        // What no list shows leaves it alone.
        db.execute("UPDATE image_facts SET cudnn_version = '9'", &[])
            .unwrap();
        assert_eq!(revision(), last);
    }

    #[test]
    fn statements_split_outside_quotes() {
        let sql = "-- Harbor's c\nCREATE TABLE a (x TEXT DEFAULT ';');\n\nINSERT INTO a VALUES ('1;2');\n";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE TABLE a (x TEXT DEFAULT ';')",
                "INSERT INTO a VALUES ('1;2')"
            ]
        );
    }

    #[test]
    fn every_migration_splits_into_whole_statements() {
        for m in MIGRATIONS {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                for statement in split_statements(m.sql(dialect)) {
                    let context = format!("{} ({dialect:?}): {statement}", m.name);
                    assert_eq!(statement.matches("$$").count() % 2, 0, "{context}");
                    if statement.starts_with("CREATE TRIGGER") && statement.contains("\nBEGIN") {
                        assert!(statement.ends_with("END"), "{context}");
                    }
                }
            }
        }
    }

    #[test]
    fn trigger_bodies_and_dollar_quotes_stay_whole() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (1);\n  UPDATE c SET n = n + 1;\nEND;\n\
                   CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  UPDATE c SET n = 'x;';\n  RETURN NULL;\nEND\n$$;\n\
                   CREATE TRIGGER p AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f();\nSELECT 1;";
        let statements = split_statements(sql);
        assert_eq!(statements.len(), 4, "{statements:#?}");
        assert!(statements[0].ends_with("UPDATE c SET n = n + 1;\nEND"));
        assert!(statements[1].ends_with("RETURN NULL;\nEND\n$$"));
        assert!(statements[2].ends_with("EXECUTE FUNCTION f()"));
        assert_eq!(statements[3], "SELECT 1");
    }

    #[test]
    fn two_connections_migrate_one_file_once() {
        let dir = std::env::temp_dir().join(format!("berth-mig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let conn = rusqlite::Connection::open(&path).unwrap();
                    conn.busy_timeout(std::time::Duration::from_secs(10))
                        .unwrap();
                    ensure(&SqliteDb(conn)).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let db = SqliteDb(rusqlite::Connection::open(&path).unwrap());
        let n = db.query("SELECT COUNT(*) FROM images", &[]).unwrap();
        assert_eq!(n.scalar_i64(), Some(4));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

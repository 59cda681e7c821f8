//! Versioned schema migrations, applied by the components themselves, once, in order.
//!
//! Each component calls [`ensure`] before it touches the database. The applied versions are
//! recorded in `schema_migrations`; pending ones run inside one write transaction that takes
//! the write lock first (SQLite `BEGIN IMMEDIATE`, PostgreSQL advisory lock), so two instances
//! starting together apply each migration exactly once.

use crate::db::{Db, DbError, Dialect, with_write_tx};

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
            sqlite: include_str!(concat!("../../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../../migrations/postgres/", $name, ".sql")),
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

/// Applies pending migrations. Cheap when the schema is current: one indexed query.
pub fn ensure(db: &dyn Db) -> Result<(), DbError> {
    if applied_version(db)? == Some(latest_version()) {
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
        Ok(())
    })
}

/// [`ensure`], then keeps the official images (seed 002) in the configured Harbor: they name
/// its registry host, which is a setting, not part of the schema. One query when the schema
/// is current and the images are already there.
pub fn ensure_for(ctx: &crate::config::Context<'_>) -> Result<(), DbError> {
    let Some(registry) = ctx.settings.registry_host().map(str::to_owned) else {
        return ensure(ctx.db);
    };
    let current = ctx.db.query(
        "SELECT (SELECT MAX(version) FROM schema_migrations), \
         (SELECT value FROM catalog_settings WHERE name = 'official_registry')",
        &[],
    );
    // Before the first migration neither table exists: that is the slow path below.
    if let Ok(rows) = current
        && let Some(row) = rows.rows.first()
        && row.first().and_then(crate::db::Value::as_i64) == Some(latest_version())
        && row.get(1) == Some(&crate::db::Value::Text(registry.clone()))
    {
        return Ok(());
    }
    ensure(ctx.db)?;
    with_write_tx(ctx.db, || {
        // An image an admin already registered at the new reference keeps it.
        ctx.db.execute(
            "UPDATE images SET registry = ? WHERE origin = 'seed' AND registry <> ? AND NOT EXISTS \
             (SELECT 1 FROM images o WHERE o.registry = ? AND o.repository = images.repository AND o.tag = images.tag)",
            &[registry.clone().into(), registry.clone().into(), registry.clone().into()],
        )?;
        ctx.db.execute(
            "INSERT INTO catalog_settings (name, value) VALUES ('official_registry', ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[registry.clone().into()],
        )?;
        Ok(())
    })
}

/// Splits a migration file into statements on `;`, outside quotes, `--` comments and
/// PostgreSQL `$$` bodies. A SQLite `CREATE TRIGGER ... BEGIN ... END;` is one statement: its
/// body's `;` do not split it (the body must not hold an `END;` of its own, e.g. `CASE ... END;`).
/// Spin's SQL interfaces run one statement per call.
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

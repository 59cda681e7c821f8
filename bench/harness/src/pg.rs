//! The PostgreSQL store for `berth bench --stores postgres`: a throwaway cluster (the e2e
//! suite's: `initdb` + `pg_ctl` on a loopback port, removed when the bench exits), one
//! database per size, holding the same catalog as SQLite's: berth's PostgreSQL migrations,
//! then every row of the seeded SQLite database copied in with `COPY` (so ids, and the
//! requests generated from them, are the same on both stores). Row triggers fire on `COPY`,
//! so the counts and trigram indexes are built as berth's own writes would build them.
//!
//! Rows go in batches, each its own transaction: the triggers update a few hot rows (the
//! totals) once per image, and within one transaction every update of a row lengthens the
//! chain of versions the next one walks (a single 100k-row COPY took ten minutes). A
//! `VACUUM ANALYZE` then leaves the database as a long-running one would be.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::types::ValueRef;

use berth_test_support::postgres::{self as pg_cluster, TestDatabase};

/// The tables a seed fills, parents first.
const TABLES: [&str; 4] = ["images", "image_scopes", "image_platforms", "imports"];
/// Rows per `COPY` (and so per transaction).
const BATCH: usize = 2_000;

/// A fresh database on the cluster (started on first use) holding the SQLite catalog at
/// `sqlite`; returns it and the time the copy took.
pub fn copy_catalog(sqlite: &Path) -> Result<(TestDatabase, Duration)> {
    let started = Instant::now();
    let db = pg_cluster::fresh_database();
    let pg = db.connect();
    berth_domain::migrations::ensure(&pg).map_err(|e| anyhow::anyhow!("migrations: {e}"))?;
    let mut client = pg.0.into_inner();
    let src =
        rusqlite::Connection::open_with_flags(sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", sqlite.display()))?;
    // The migrations' own rows (the official images) are in the SQLite copy too. DELETE,
    // not TRUNCATE: the row triggers take them out of the counts.
    for table in TABLES.iter().rev() {
        client.batch_execute(&format!("DELETE FROM {table}"))?;
    }
    for table in TABLES {
        copy_table(&src, &mut client, table).with_context(|| format!("copying {table}"))?;
    }
    for table in ["images", "imports"] {
        client.batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
        ))?;
    }
    client.batch_execute("VACUUM ANALYZE")?;
    Ok((db, started.elapsed()))
}

/// Copies the columns both schemas have, in text `COPY` format.
fn copy_table(src: &rusqlite::Connection, dst: &mut postgres::Client, table: &str) -> Result<()> {
    let pg_columns: Vec<String> = dst
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1",
            &[&table],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let columns: Vec<String> = src
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(|c| pg_columns.contains(c))
        .collect();
    let list = columns.join(", ");
    let copy = format!("COPY {table} ({list}) FROM STDIN");
    let mut stmt = src.prepare(&format!("SELECT {list} FROM {table} ORDER BY rowid"))?;
    let mut rows = stmt.query([])?;
    let mut writer = dst.copy_in(&copy)?;
    let mut in_batch = 0;
    let mut line = String::new();
    while let Some(row) = rows.next()? {
        if in_batch == BATCH {
            writer.finish()?;
            writer = dst.copy_in(&copy)?;
            in_batch = 0;
        }
        in_batch += 1;
        line.clear();
        for i in 0..columns.len() {
            if i > 0 {
                line.push('\t');
            }
            match row.get_ref(i)? {
                ValueRef::Null => line.push_str("\\N"),
                ValueRef::Integer(v) => line.push_str(&v.to_string()),
                ValueRef::Real(v) => line.push_str(&v.to_string()),
                ValueRef::Text(t) => escape_into(&mut line, &String::from_utf8_lossy(t)),
                ValueRef::Blob(_) => anyhow::bail!("{table}: unexpected blob"),
            }
        }
        line.push('\n');
        writer.write_all(line.as_bytes())?;
    }
    writer.finish()?;
    Ok(())
}

/// Text `COPY` escaping: backslash, tab, newline and carriage return.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_its_separators() {
        let mut s = String::new();
        escape_into(&mut s, "a\tb\nc\\d\re 训练");
        assert_eq!(s, "a\\tb\\nc\\\\d\\re 训练");
    }
}

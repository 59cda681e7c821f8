//! What berth's schema costs a fresh SQLite connection. Spin opens a new connection for
//! every instance (every request), and SQLite reads and parses the whole schema on a
//! connection's first statement: every table, index and trigger (a trigger's body is parsed
//! then too). This times "open, prepare a trivial statement, close" on a file holding the
//! current schema, then on copies each missing one object, and prints what each costs:
//!
//!     cargo run --release -p berth-domain --example schema_cost -- [iterations]
//!
//! Rounds alternate between the variants (the machine may be shared), and each variant's
//! figure is its median over every round.

use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_domain::db::native::SqliteDb;

/// One "fresh connection, first statement" in microseconds.
fn first_statement_us(path: &Path) -> f64 {
    let t = Instant::now();
    let conn = rusqlite::Connection::open(path).expect("open");
    // Any statement naming a table makes SQLite load the schema.
    conn.prepare("SELECT version FROM schema_migrations LIMIT 0")
        .expect("prepare");
    drop(conn);
    t.elapsed().as_secs_f64() * 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let dir = std::env::temp_dir().join(format!("berth-schema-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let full = dir.join("full.db");
    {
        let db = SqliteDb(rusqlite::Connection::open(&full).unwrap());
        berth_domain::migrations::ensure(&db).unwrap();
    }
    let objects: Vec<(String, String)> = {
        let conn = rusqlite::Connection::open(&full).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT type, name FROM sqlite_schema WHERE sql IS NOT NULL \
                 AND (type IN ('index', 'trigger') OR sql LIKE 'CREATE VIRTUAL TABLE%') \
                 ORDER BY type, name",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    // Variants: the full schema, the schema minus one object, and a file with one table
    // (what opening a connection costs without berth's schema).
    let mut variants: Vec<(String, PathBuf)> = vec![("full schema".into(), full.clone())];
    for (i, (kind, name)) in objects.iter().enumerate() {
        let path = dir.join(format!("without-{i}.db"));
        std::fs::copy(&full, &path).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let drop = if kind == "table" { "TABLE" } else { kind };
        conn.execute_batch(&format!("DROP {drop} \"{name}\""))
            .unwrap();
        variants.push((format!("{kind} {name}"), path));
    }
    let empty = dir.join("empty.db");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY)")
        .unwrap();
    variants.push(("one table only".into(), empty));

    let rounds = 5;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (i, (_, path)) in variants.iter().enumerate() {
            for _ in 0..iterations / rounds {
                times[i].push(first_statement_us(path));
            }
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    let full_us = medians[0];
    let floor = medians[medians.len() - 1];
    println!(
        "open + first statement + close, median of {iterations}: full schema {full_us:.0} µs, \
         one table {floor:.0} µs: the schema costs {:.0} µs\n",
        full_us - floor
    );
    println!("| object | µs it costs |\n|---|---:|");
    let mut costs: Vec<(&str, f64)> = variants[1..variants.len() - 1]
        .iter()
        .zip(&medians[1..medians.len() - 1])
        .map(|((name, _), us)| (name.as_str(), full_us - us))
        .collect();
    costs.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, us) in costs {
        println!("| {name} | {us:.0} |");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

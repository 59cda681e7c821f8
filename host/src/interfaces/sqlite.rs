//! `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0` on rusqlite with pooled WAL connections.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::fermyon::spin::sqlite as v2;
use crate::bindings::spin::sqlite::sqlite as v3;

/// Spin's limit on open connections per instance (its resource table capacity).
const MAX_CONNECTIONS_PER_INSTANCE: usize = 256;
/// Idle connections kept per database; enough for the concurrency 2 cores can serve.
const MAX_IDLE_CONNECTIONS: usize = 16;
/// How long a statement waits for another connection's write lock, at most.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Like Spin's MAX_HOST_BUFFERED_BYTES: a query result larger than this is an error.
const MAX_RESULT_BYTES: usize = 128 * 1024 * 1024;

/// A file-backed SQLite database with a small pool of reusable connections.
///
/// Opening a connection per request costs a file open plus schema parsing; reusing them
/// (with their prepared-statement caches) is what makes per-request instances cheap.
pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl Pool {
    pub fn new(path: PathBuf) -> Arc<Pool> {
        Arc::new(Pool {
            path,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open(&self.path)?;
        // Concurrent requests write from different connections: wait for the lock instead of
        // failing with SQLITE_BUSY.
        wait_when_busy(&conn)?;
        // WAL + synchronous=NORMAL: durable across process crashes, and no fsync per commit
        // (the default rollback journal fsyncs every request: ~59 vs ~1,300 req/s measured).
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
        // Statements stay prepared per connection: the list's variants (filters x sorts x
        // views) and the other components' statements outnumber rusqlite's default of 16.
        conn.set_prepared_statement_cache_capacity(256);
        Ok(conn)
    }

    /// Takes an idle connection, if there is one.
    pub fn take_idle(self: &Arc<Self>) -> Option<Pooled> {
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
        Some(Pooled {
            conn: Some(conn),
            pool: self.clone(),
        })
    }

    /// Takes an idle connection or opens a new one.
    pub fn get(self: &Arc<Self>) -> rusqlite::Result<Pooled> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => self.open()?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self.clone(),
        })
    }

    /// Opens (and so creates) the database file once at start-up, surfacing path errors early.
    pub fn warm_up(self: &Arc<Self>) -> rusqlite::Result<()> {
        self.get().map(drop)
    }
}

/// A connection checked out of a [`Pool`]; returned to it on drop.
pub struct Pooled {
    conn: Option<rusqlite::Connection>,
    pool: Arc<Pool>,
}

impl std::ops::Deref for Pooled {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // A guest may leave a transaction open (BEGIN without COMMIT, or a trap mid-way);
        // never hand that state to the next request.
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(conn);
        }
    }
}

/// The databases an app can use, by label. Like `spin up` without runtime config, only
/// `default` exists: `<state-dir>/sqlite_db.db`.
#[derive(Clone, Default)]
pub struct Databases {
    pools: HashMap<String, Arc<Pool>>,
}

impl Databases {
    pub fn new(state_dir: &Path) -> Databases {
        let mut pools = HashMap::new();
        pools.insert(
            "default".to_string(),
            Pool::new(state_dir.join("sqlite_db.db")),
        );
        Databases { pools }
    }

    pub fn is_defined(&self, label: &str) -> bool {
        self.pools.contains_key(label)
    }

    pub fn pool(&self, label: &str) -> Option<&Arc<Pool>> {
        self.pools.get(label)
    }
}

/// A guest's open connection: one pooled rusqlite connection held for the resource's lifetime,
/// so `last-insert-rowid` and `changes` refer to the guest's own statements.
pub struct Connection {
    conn: Pooled,
}

/// Per-instance host state.
pub struct SqliteState {
    allowed: Arc<HashSet<String>>,
    databases: Arc<Databases>,
    table: ResourceTable,
    open_connections: usize,
}

impl SqliteState {
    pub fn new(allowed: Arc<HashSet<String>>, databases: Arc<Databases>) -> SqliteState {
        SqliteState {
            allowed,
            databases,
            table: ResourceTable::new(),
            open_connections: 0,
        }
    }

    fn close(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        self.open_connections -= 1;
        Ok(())
    }
}

/// Errors in one shape for both interface versions.
enum DbError {
    NoSuchDatabase,
    AccessDenied,
    Io(String),
}

impl From<DbError> for v2::Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NoSuchDatabase => v2::Error::NoSuchDatabase,
            DbError::AccessDenied => v2::Error::AccessDenied,
            DbError::Io(m) => v2::Error::Io(m),
        }
    }
}

impl From<DbError> for v3::Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NoSuchDatabase => v3::Error::NoSuchDatabase,
            DbError::AccessDenied => v3::Error::AccessDenied,
            DbError::Io(m) => v3::Error::Io(m),
        }
    }
}

/// A query result: column names and rows.
type Rows = (Vec<String>, Vec<Vec<Value>>);

/// Runs blocking SQLite work without stalling the async worker thread (as Spin does).
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl SqliteState {
    fn open_impl(
        &mut self,
        database: &str,
    ) -> wasmtime::Result<Result<Resource<Connection>, DbError>> {
        // Permission is checked before existence, as Spin does.
        if !self.allowed.contains(database) {
            return Ok(Err(DbError::AccessDenied));
        }
        let Some(pool) = self.databases.pool(database) else {
            return Ok(Err(DbError::NoSuchDatabase));
        };
        if self.open_connections >= MAX_CONNECTIONS_PER_INSTANCE {
            return Ok(Err(DbError::Io("too many connections opened".into())));
        }
        // An idle connection is taken right here; only opening a new one may block.
        let conn = match pool.take_idle().map_or_else(|| blocking(|| pool.get()), Ok) {
            Ok(c) => c,
            Err(e) => return Ok(Err(DbError::Io(e.to_string()))),
        };
        self.open_connections += 1;
        Ok(Ok(self.table.push(Connection { conn })?))
    }

    fn execute_impl(
        &mut self,
        conn: &Resource<Connection>,
        statement: &str,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, DbError>> {
        let conn = &self.table.get(conn)?.conn;
        Ok(run_statement(conn, statement, params).map_err(DbError::Io))
    }
}

/// How long a read may run on the async worker thread before it is moved off it.
/// Generous, so that a short read preempted on a busy machine is rarely run twice.
const INLINE_READ_BUDGET: Duration = Duration::from_millis(10);

/// Runs a statement. Handing a worker thread's tasks over (`block_in_place`) costs more than
/// most of berth's reads take, so a read outside a transaction runs right here, with a budget:
/// one that would wait for a lock or outrun [`INLINE_READ_BUDGET`] is interrupted (a read has
/// no effects to undo) and run again through [`blocking`]. Writes and statements inside
/// transactions, which may wait for the write lock, always go through [`blocking`].
fn run_statement(
    conn: &rusqlite::Connection,
    statement: &str,
    params: Vec<Value>,
) -> Result<Rows, String> {
    let mut stmt = conn.prepare_cached(statement).map_err(|e| e.to_string())?;
    if conn.is_autocommit() && stmt.readonly() {
        match run_inline(conn, &mut stmt, params.clone()) {
            Err(Failure::Sqlite(e)) if is_interrupted_or_busy(&e) => {}
            done => return done.map_err(|e| e.to_string()),
        }
    }
    blocking(|| query_rows(&mut stmt, params)).map_err(|e| e.to_string())
}

fn run_inline(
    conn: &rusqlite::Connection,
    stmt: &mut rusqlite::Statement<'_>,
    params: Vec<Value>,
) -> Result<Rows, Failure> {
    let deadline = std::time::Instant::now() + INLINE_READ_BUDGET;
    conn.busy_timeout(Duration::ZERO)?;
    conn.progress_handler(1_000, Some(move || std::time::Instant::now() > deadline));
    let result = query_rows(stmt, params);
    conn.progress_handler(0, None::<fn() -> bool>);
    wait_when_busy(conn)?;
    result
}

/// Waits for a lock another connection holds, polling every 50 µs for the first 2 ms and
/// every 500 µs after, up to [`BUSY_TIMEOUT`]. SQLite's own `busy_timeout` sleeps 1, 2, 5,
/// 10, 15, 20 ms…: a write queued behind another (each holds the lock for well under a
/// millisecond) slept 20 ms at the 99th percentile of the progress benchmark.
fn wait_when_busy(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    const FAST_POLLS: i32 = 40;
    const FAST: Duration = Duration::from_micros(50);
    const SLOW: Duration = Duration::from_micros(500);
    fn wait(attempt: i32) -> bool {
        let waited =
            FAST * attempt.min(FAST_POLLS) as u32 + SLOW * (attempt - FAST_POLLS).max(0) as u32;
        if waited >= BUSY_TIMEOUT {
            return false;
        }
        std::thread::sleep(if attempt < FAST_POLLS { FAST } else { SLOW });
        true
    }
    conn.busy_handler(Some(wait))
}

fn is_interrupted_or_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::OperationInterrupted | rusqlite::ErrorCode::DatabaseBusy)
    )
}

/// Why a statement gave no rows.
#[derive(Debug)]
enum Failure {
    Sqlite(rusqlite::Error),
    TooLarge,
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Sqlite(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Sqlite(e) => e.fmt(f),
            Failure::TooLarge => {
                write!(f, "query result exceeds limit of {MAX_RESULT_BYTES} bytes")
            }
        }
    }
}

/// Runs a prepared statement and reads all its rows.
fn query_rows(stmt: &mut rusqlite::Statement<'_>, params: Vec<Value>) -> Result<Rows, Failure> {
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let ncols = columns.len();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(ncols);
        for i in 0..ncols {
            let v = match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => {
                    bytes += t.len();
                    Value::Text(String::from_utf8_lossy(t).into_owned())
                }
                ValueRef::Blob(b) => {
                    bytes += b.len();
                    Value::Blob(b.to_vec())
                }
            };
            bytes += std::mem::size_of::<Value>();
            values.push(v);
        }
        if bytes > MAX_RESULT_BYTES {
            return Err(Failure::TooLarge);
        }
        out.push(values);
    }
    Ok((columns, out))
}

// --- fermyon:spin/sqlite@2.0.0 ---

fn from_v2(v: v2::Value) -> Value {
    match v {
        v2::Value::Integer(i) => Value::Integer(i),
        v2::Value::Real(f) => Value::Real(f),
        v2::Value::Text(t) => Value::Text(t),
        v2::Value::Blob(b) => Value::Blob(b),
        v2::Value::Null => Value::Null,
    }
}

fn to_v2(v: Value) -> v2::Value {
    match v {
        Value::Integer(i) => v2::Value::Integer(i),
        Value::Real(f) => v2::Value::Real(f),
        Value::Text(t) => v2::Value::Text(t),
        Value::Blob(b) => v2::Value::Blob(b),
        Value::Null => v2::Value::Null,
    }
}

impl v2::Host for SqliteState {}

impl v2::HostConnection for SqliteState {
    fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v2::Error>> {
        Ok(self.open_impl(&database)?.map_err(Into::into))
    }

    fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let params = parameters.into_iter().map(from_v2).collect();
        Ok(self
            .execute_impl(&conn, &statement, params)?
            .map(|(columns, rows)| v2::QueryResult {
                columns,
                rows: rows
                    .into_iter()
                    .map(|r| v2::RowResult {
                        values: r.into_iter().map(to_v2).collect(),
                    })
                    .collect(),
            })
            .map_err(Into::into))
    }

    fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn)
    }
}

// --- spin:sqlite/sqlite@3.0.0 (same implementation, plus rowid/changes) ---

fn from_v3(v: v3::Value) -> Value {
    match v {
        v3::Value::Integer(i) => Value::Integer(i),
        v3::Value::Real(f) => Value::Real(f),
        v3::Value::Text(t) => Value::Text(t),
        v3::Value::Blob(b) => Value::Blob(b),
        v3::Value::Null => Value::Null,
    }
}

fn to_v3(v: Value) -> v3::Value {
    match v {
        Value::Integer(i) => v3::Value::Integer(i),
        Value::Real(f) => v3::Value::Real(f),
        Value::Text(t) => v3::Value::Text(t),
        Value::Blob(b) => v3::Value::Blob(b),
        Value::Null => v3::Value::Null,
    }
}

impl v3::Host for SqliteState {}

impl v3::HostConnection for SqliteState {
    fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        Ok(self.open_impl(&database)?.map_err(Into::into))
    }

    fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let params = parameters.into_iter().map(from_v3).collect();
        Ok(self
            .execute_impl(&conn, &statement, params)?
            .map(|(columns, rows)| v3::QueryResult {
                columns,
                rows: rows
                    .into_iter()
                    .map(|r| v3::RowResult {
                        values: r.into_iter().map(to_v3).collect(),
                    })
                    .collect(),
            })
            .map_err(Into::into))
    }

    fn last_insert_rowid(&mut self, conn: Resource<Connection>) -> wasmtime::Result<i64> {
        Ok(self.table.get(&conn)?.conn.last_insert_rowid())
    }

    fn changes(&mut self, conn: Resource<Connection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&conn)?.conn.changes())
    }

    fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_connections_and_uses_wal() {
        let dir = std::env::temp_dir().join(format!("berth-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = Pool::new(dir.join("t.db"));
        {
            let c = pool.get().unwrap();
            let mode: String = c
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            c.execute_batch("CREATE TABLE IF NOT EXISTS t (x); BEGIN; INSERT INTO t VALUES (1);")
                .unwrap();
            // dropped inside an open transaction: must be rolled back before reuse
        }
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        let c = pool.get().unwrap();
        assert!(c.is_autocommit());
        let (cols, rows) = run_statement(&c, "SELECT count(*) AS n FROM t", vec![]).unwrap();
        assert_eq!(cols, ["n"]);
        assert_eq!(rows, vec![vec![Value::Integer(0)]]);
        drop(c);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A read that outruns its inline budget is run again off the worker thread and still
    /// answers in full; a write waits for the lock; a write is never run twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_reads_move_off_the_worker_and_still_answer() {
        let dir = std::env::temp_dir().join(format!("berth-sqlite-inline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = Pool::new(dir.join("t.db"));
        let c = pool.get().unwrap();
        c.execute_batch("CREATE TABLE IF NOT EXISTS t (x)").unwrap();

        // Far past the budget: interrupted inline, then run to the end.
        let long = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) \
                    SELECT count(*) AS c FROM n";
        assert!(matches!(
            run_inline(&c, &mut c.prepare_cached(long).unwrap(), vec![]),
            Err(Failure::Sqlite(e)) if is_interrupted_or_busy(&e)
        ));
        let started = std::time::Instant::now();
        let (_, rows) = run_statement(&c, long, vec![]).unwrap();
        assert_eq!(rows, vec![vec![Value::Integer(3_000_000)]]);
        assert!(started.elapsed() > INLINE_READ_BUDGET);

        // A write waits for another connection's write lock, and gets it soon after release.
        let other = pool.get().unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            other.execute_batch("COMMIT").unwrap();
        });
        let started = std::time::Instant::now();
        run_statement(&c, "INSERT INTO t VALUES (0)", vec![]).unwrap();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(140), "{waited:?}");
        assert!(waited < Duration::from_millis(400), "{waited:?}");
        release.join().unwrap();
        run_statement(&c, "DELETE FROM t", vec![]).unwrap();

        // Writes run once.
        run_statement(&c, "INSERT INTO t VALUES (2)", vec![]).unwrap();
        let (_, rows) = run_statement(&c, "SELECT count(*) FROM t", vec![]).unwrap();
        assert_eq!(rows, vec![vec![Value::Integer(1)]]);
        drop(c);
        std::fs::remove_dir_all(&dir).ok();
    }
}

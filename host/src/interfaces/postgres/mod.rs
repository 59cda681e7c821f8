//! `spin:postgres/postgres@4.0.0` and `@3.0.0` on tokio-postgres, with Spin's permission rules.
//!
//! - The connection string (`postgres://…`, `postgresql://…` or `host=… port=…`) is parsed
//!   by tokio-postgres, as in Spin; each TCP host must be allowed by the component's
//!   `allowed_outbound_hosts` (`postgres://host:port`, names compared as text). Refusal:
//!   `connection-failed("address postgres://host:port is not permitted")` plus a log line
//!   naming the entry to add.
//! - Connections are pooled per connection string (at most [`POOL_SIZE`] each, like Spin's
//!   pool); a connection a guest leaves is rolled back and reset before it is reused.
//! - TLS as Spin: `sslmode=disable` connects in plain text; otherwise TLS is tried (and
//!   required by `sslmode=require`) and the server certificate must verify against the
//!   public web PKI roots, so a self-signed server fails unless TLS is disabled.
//! - Values are mapped as Spin maps them (`spin-factor-outbound-pg`): bool, int2/4/8,
//!   float4/8, text/varchar/bpchar, bytea, date, time, timestamp(tz), uuid, jsonb, numeric,
//!   int4/int8/numeric ranges, int4/int8/numeric/text arrays and interval; any other column
//!   type is `unsupported` with its raw binary value.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::BytesMut;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{NoTls, Socket, Statement};
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::spin::postgres3_0_0::postgres as v3;
use crate::bindings::spin::postgres4_0_0::postgres as v4;
use crate::interfaces::outbound_http::AllowedHosts;

/// Connections kept per connection string (Spin's CONNECTION_POOL_SIZE); override with
/// `BERTH_PG_POOL_SIZE`.
const POOL_SIZE: usize = 64;
/// Connection strings with a pool (Spin's CONNECTION_POOL_CACHE_CAPACITY).
const MAX_POOLS: usize = 16;
/// Open connections one instance may hold (Spin's resource-table limit).
const MAX_CONNECTIONS_PER_INSTANCE: usize = 256;
/// How long `open` waits for a free pooled connection before failing.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// Connect timeout when the connection string sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Like Spin's MAX_HOST_BUFFERED_BYTES: a query result larger than this is an error.
const MAX_RESULT_BYTES: usize = 128 * 1024 * 1024;
/// Prepared statements kept per pooled connection.
const MAX_CACHED_STATEMENTS: usize = 256;
/// Run on a connection a guest has finished with: nothing of its session leaks into the next.
const RESET_SQL: &str = "ROLLBACK; RESET ALL; SELECT pg_advisory_unlock_all()";

fn pool_size() -> usize {
    std::env::var("BERTH_PG_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(POOL_SIZE)
}

// --- pools ---

/// Every pool of the app, by connection string; shared by all instances.
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

impl Pools {
    fn get(&self, address: &str) -> Result<Arc<Pool>, String> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pools.get(address) {
            return Ok(p.clone());
        }
        let mut config: tokio_postgres::Config = address.parse().map_err(|e| format!("{e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if pools.len() >= MAX_POOLS {
            // Evict an arbitrary pool; its connections close when their last user drops them.
            if let Some(k) = pools.keys().next().cloned() {
                pools.remove(&k);
            }
        }
        let pool = Arc::new(Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(pool_size())),
        });
        pools.insert(address.to_string(), pool.clone());
        Ok(pool)
    }
}

/// Connections to one database.
struct Pool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// One PostgreSQL session and the statements prepared on it.
struct Client {
    client: tokio_postgres::Client,
    statements: HashMap<String, Statement>,
}

impl Pool {
    async fn checkout(self: &Arc<Self>) -> Result<Connection, String> {
        let permit = tokio::time::timeout(POOL_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| "timed out waiting for a free connection in the pool".to_string())?
            .map_err(|_| "the connection pool is closed".to_string())?;
        let idle = loop {
            let c = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match c {
                Some(c) if c.client.is_closed() => continue,
                other => break other,
            }
        };
        let client = match idle {
            Some(c) => c,
            None => self.connect().await?,
        };
        Ok(Connection {
            client: Some(client),
            pool: self.clone(),
            permit: Some(permit),
        })
    }

    async fn connect(&self) -> Result<Client, String> {
        let client = if self.config.get_ssl_mode() == SslMode::Disable {
            let (client, conn) = self.config.connect(NoTls).await.map_err(connect_error)?;
            tokio::spawn(drive(conn));
            client
        } else {
            let (client, conn) = self
                .config
                .connect(MakeRustls::new())
                .await
                .map_err(connect_error)?;
            tokio::spawn(drive(conn));
            client
        };
        Ok(Client {
            client,
            statements: HashMap::new(),
        })
    }
}

fn connect_error(e: tokio_postgres::Error) -> String {
    error_text(&e)
}

/// tokio-postgres's Display names the step ("error connecting to server: …"); add the cause
/// when it does not already show it.
fn error_text(e: &tokio_postgres::Error) -> String {
    match e.source() {
        Some(cause) if !e.to_string().contains(&cause.to_string()) => format!("{e}: {cause}"),
        _ => e.to_string(),
    }
}

async fn drive<F: Future<Output = Result<(), tokio_postgres::Error>>>(conn: F) {
    if let Err(e) = conn.await {
        tracing::debug!("PostgreSQL connection closed: {e}");
    }
}

/// A guest's open connection: one pooled session held for the resource's lifetime, so
/// transactions span calls.
pub struct Connection {
    client: Option<Client>,
    pool: Arc<Pool>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Connection {
    fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("client present until drop")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let (Some(client), Some(permit)) = (self.client.take(), self.permit.take()) else {
            return;
        };
        if client.client.is_closed() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        // Reset off the request path; the pool slot stays taken until the session is clean.
        rt.spawn(async move {
            let reset = client.client.batch_execute(RESET_SQL);
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(10), reset).await {
                pool.idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(client);
            }
            drop(permit);
        });
    }
}

impl Client {
    /// The prepared statement for `sql`, from this session's cache.
    async fn prepare(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.prepare(sql).await?;
        if self.statements.len() >= MAX_CACHED_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }

    /// A statement failed: its cached plan may be stale (schema change, DISCARD), so forget it.
    fn forget(&mut self, sql: &str) {
        self.statements.remove(sql);
    }
}

// --- per-instance state ---

pub struct PostgresState {
    component_id: String,
    allowed: Arc<AllowedHosts>,
    pools: Arc<Pools>,
    table: ResourceTable,
    open_connections: usize,
}

impl PostgresState {
    pub fn new(component_id: String, allowed: Arc<AllowedHosts>, pools: Arc<Pools>) -> Self {
        PostgresState {
            component_id,
            allowed,
            pools,
            table: ResourceTable::new(),
            open_connections: 0,
        }
    }

    /// Spin's `ensure_address_allowed`: every TCP host of the connection string must be allowed.
    fn ensure_allowed(&self, address: &str) -> Result<(), v4::Error> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e: tokio_postgres::Error| v4::Error::ConnectionFailed(e.to_string()))?;
        let ports = config.get_ports();
        for (i, host) in config.get_hosts().iter().enumerate() {
            let host = match host {
                Host::Tcp(h) => h,
                #[cfg(unix)]
                Host::Unix(_) => {
                    return Err(v4::Error::ConnectionFailed(
                        "Unix sockets are not supported on WebAssembly".into(),
                    ));
                }
            };
            // The port at the host's index, or the only port given.
            let port = ports
                .get(i)
                .or_else(|| (ports.len() == 1).then(|| &ports[0]));
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            let target = match port {
                Some(p) => format!("{host}:{p}"),
                None => host,
            };
            match self.allowed.check_url(&target, "postgres") {
                Ok(true) => {}
                Ok(false) => {
                    let pattern = format!("postgres://{target}");
                    tracing::error!(
                        "component {id}: Outbound network destination not allowed: {pattern}. To \
                         allow this connection, add 'allowed_outbound_hosts = [\"{pattern}\"]' to \
                         [component.{id}] in spin.toml",
                        id = self.component_id
                    );
                    return Err(v4::Error::ConnectionFailed(format!(
                        "address {pattern} is not permitted"
                    )));
                }
                Err(e) => return Err(v4::Error::Other(e.to_string())),
            }
        }
        Ok(())
    }

    async fn open_impl(
        &mut self,
        address: &str,
    ) -> wasmtime::Result<Result<Resource<Connection>, v4::Error>> {
        if let Err(e) = self.ensure_allowed(address) {
            return Ok(Err(e));
        }
        if self.open_connections >= MAX_CONNECTIONS_PER_INSTANCE {
            return Ok(Err(v4::Error::ConnectionFailed(
                "too many connections".into(),
            )));
        }
        let pool = match self.pools.get(address) {
            Ok(p) => p,
            Err(e) => return Ok(Err(v4::Error::ConnectionFailed(e))),
        };
        let conn = match pool.checkout().await {
            Ok(c) => c,
            Err(e) => return Ok(Err(v4::Error::ConnectionFailed(e))),
        };
        self.open_connections += 1;
        Ok(Ok(self.table.push(conn)?))
    }

    async fn query_impl(
        &mut self,
        conn: &Resource<Connection>,
        statement: &str,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<Result<v4::RowSet, v4::Error>> {
        let params = match to_sql_params(&params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let client = self.table.get_mut(conn)?.client();
        Ok(run_query(client, statement, &params).await)
    }

    async fn execute_impl(
        &mut self,
        conn: &Resource<Connection>,
        statement: &str,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v4::Error>> {
        let params = match to_sql_params(&params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let client = self.table.get_mut(conn)?.client();
        let refs = param_refs(&params);
        let result = match client.prepare(statement).await {
            Ok(stmt) => client.client.execute(&stmt, &refs).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            client.forget(statement);
        }
        Ok(result.map_err(query_failed))
    }

    fn close(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        self.open_connections -= 1;
        Ok(())
    }
}

type Param = Box<dyn ToSql + Send + Sync>;

fn param_refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

async fn run_query(
    client: &mut Client,
    statement: &str,
    params: &[Param],
) -> Result<v4::RowSet, v4::Error> {
    let refs = param_refs(params);
    let result = match client.prepare(statement).await {
        Ok(stmt) => client
            .client
            .query(&stmt, &refs)
            .await
            .map(|rows| (stmt, rows)),
        Err(e) => Err(e),
    };
    let (stmt, rows) = match result {
        Ok(r) => r,
        Err(e) => {
            client.forget(statement);
            return Err(query_failed(e));
        }
    };
    let columns = stmt
        .columns()
        .iter()
        .map(|c| v4::Column {
            name: c.name().to_string(),
            data_type: data_type(c.type_()),
        })
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut bytes = 0usize;
    for row in &rows {
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let v = db_value(row, i).map_err(|e| {
                v4::Error::QueryFailed(v4::QueryError::Text(format!(
                    "cannot convert column {:?}: {e}",
                    row.columns()[i].name()
                )))
            })?;
            bytes += value_size(&v);
            values.push(v);
        }
        if bytes > MAX_RESULT_BYTES {
            return Err(v4::Error::QueryFailed(v4::QueryError::Text(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            ))));
        }
        out.push(values);
    }
    Ok(v4::RowSet { columns, rows: out })
}

fn value_size(v: &v4::DbValue) -> usize {
    std::mem::size_of::<v4::DbValue>()
        + match v {
            v4::DbValue::Str(s) | v4::DbValue::Uuid(s) | v4::DbValue::Decimal(s) => s.len(),
            v4::DbValue::Binary(b) | v4::DbValue::Jsonb(b) | v4::DbValue::Unsupported(b) => b.len(),
            v4::DbValue::ArrayStr(a) => a.iter().flatten().map(String::len).sum(),
            v4::DbValue::ArrayInt32(a) => a.len() * 8,
            v4::DbValue::ArrayInt64(a) => a.len() * 16,
            v4::DbValue::ArrayDecimal(a) => a.iter().flatten().map(String::len).sum(),
            _ => 0,
        }
}

/// Spin's `query_failed`: structured details when PostgreSQL sent them.
fn query_failed(e: tokio_postgres::Error) -> v4::Error {
    let text = match e.as_db_error() {
        Some(db) => format!("db error: {db}"),
        None => error_text(&e),
    };
    let query_error = match e.as_db_error() {
        None => v4::QueryError::Text(text),
        Some(db) => {
            let mut extras = Vec::new();
            let mut extra = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    extras.push((k.to_string(), v));
                }
            };
            extra("column", db.column().map(str::to_owned));
            extra("constraint", db.constraint().map(str::to_owned));
            extra("routine", db.routine().map(str::to_owned));
            extra("hint", db.hint().map(str::to_owned));
            extra("table", db.table().map(str::to_owned));
            extra("datatype", db.datatype().map(str::to_owned));
            extra("schema", db.schema().map(str::to_owned));
            extra("file", db.file().map(str::to_owned));
            extra("line", db.line().map(|l| l.to_string()));
            extra("where_", db.where_().map(str::to_owned));
            v4::QueryError::DbError(v4::DbError {
                as_text: text,
                severity: db.severity().to_string(),
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_owned),
                extras,
            })
        }
    };
    v4::Error::QueryFailed(query_error)
}

// --- values: PostgreSQL -> WIT ---

fn data_type(t: &Type) -> v4::DbDataType {
    use v4::DbDataType as D;
    match *t {
        Type::BOOL => D::Boolean,
        Type::BYTEA => D::Binary,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => D::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => D::Datetime,
        Type::DATE => D::Date,
        Type::TIME => D::Time,
        Type::UUID => D::Uuid,
        Type::JSONB => D::Jsonb,
        Type::NUMERIC => D::Decimal,
        Type::INT4_RANGE => D::RangeInt32,
        Type::INT8_RANGE => D::RangeInt64,
        Type::NUM_RANGE => D::RangeDecimal,
        Type::INT4_ARRAY => D::ArrayInt32,
        Type::INT8_ARRAY => D::ArrayInt64,
        Type::NUMERIC_ARRAY => D::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => D::ArrayStr,
        Type::INTERVAL => D::Interval,
        _ => D::Other(t.name().to_string()),
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

fn get<'a, T: FromSql<'a>, W>(
    row: &'a tokio_postgres::Row,
    i: usize,
    f: impl FnOnce(T) -> Result<W, BoxError>,
    wrap: impl FnOnce(W) -> v4::DbValue,
) -> Result<v4::DbValue, BoxError> {
    Ok(match row.try_get::<_, Option<T>>(i)? {
        Some(v) => wrap(f(v)?),
        None => v4::DbValue::DbNull,
    })
}

fn db_value(row: &tokio_postgres::Row, i: usize) -> Result<v4::DbValue, BoxError> {
    use v4::DbValue as V;
    let t = row.columns()[i].type_().clone();
    match t {
        Type::BOOL => get(row, i, Ok, V::Boolean),
        Type::BYTEA => get(row, i, Ok, V::Binary),
        Type::FLOAT4 => get(row, i, Ok, V::Floating32),
        Type::FLOAT8 => get(row, i, Ok, V::Floating64),
        Type::INT2 => get(row, i, Ok, V::Int16),
        Type::INT4 => get(row, i, Ok, V::Int32),
        Type::INT8 => get(row, i, Ok, V::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(row, i, Ok, V::Str),
        Type::TIMESTAMP => get(
            row,
            i,
            |v: NaiveDateTime| Ok(datetime_to_wit(v)),
            V::Datetime,
        ),
        Type::TIMESTAMPTZ => get(
            row,
            i,
            |v: chrono::DateTime<chrono::Utc>| Ok(datetime_to_wit(v.naive_utc())),
            V::Datetime,
        ),
        Type::DATE => get(
            row,
            i,
            |d: NaiveDate| Ok((d.year(), d.month() as u8, d.day() as u8)),
            V::Date,
        ),
        Type::TIME => get(
            row,
            i,
            |t: NaiveTime| {
                Ok((
                    t.hour() as u8,
                    t.minute() as u8,
                    t.second() as u8,
                    t.nanosecond(),
                ))
            },
            V::Time,
        ),
        Type::UUID => get(row, i, |u: uuid::Uuid| Ok(u.to_string()), V::Uuid),
        Type::JSONB => get(
            row,
            i,
            |j: serde_json::Value| Ok(serde_json::to_vec(&j)?),
            V::Jsonb,
        ),
        Type::NUMERIC => get(
            row,
            i,
            |d: rust_decimal::Decimal| Ok(d.to_string()),
            V::Decimal,
        ),
        Type::INT4_RANGE => get(row, i, |r: Range<i32>| Ok(r.to_wit(|v| v)), V::RangeInt32),
        Type::INT8_RANGE => get(row, i, |r: Range<i64>| Ok(r.to_wit(|v| v)), V::RangeInt64),
        Type::NUM_RANGE => get(
            row,
            i,
            |r: Range<rust_decimal::Decimal>| Ok(r.to_wit(|d| d.to_string())),
            V::RangeDecimal,
        ),
        Type::INT4_ARRAY => get(row, i, Ok, V::ArrayInt32),
        Type::INT8_ARRAY => get(row, i, Ok, V::ArrayInt64),
        Type::NUMERIC_ARRAY => get(
            row,
            i,
            |a: Vec<Option<rust_decimal::Decimal>>| {
                Ok(a.into_iter().map(|d| d.map(|d| d.to_string())).collect())
            },
            V::ArrayDecimal,
        ),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => get(row, i, Ok, V::ArrayStr),
        Type::INTERVAL => get(row, i, |v: Interval| Ok(v.0), V::Interval),
        _ => get(row, i, |r: Raw| Ok(r.0), V::Unsupported),
    }
}

fn datetime_to_wit(v: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    (
        v.year(),
        v.month() as u8,
        v.day() as u8,
        v.hour() as u8,
        v.minute() as u8,
        v.second() as u8,
        v.nanosecond(),
    )
}

/// Any column's raw binary value (`unsupported`).
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// `interval`: microseconds, days, months (PostgreSQL's binary layout).
#[derive(Debug)]
struct Interval(v4::Interval);

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err("invalid interval length".into());
        }
        let micros = i64::from_be_bytes(raw[0..8].try_into()?);
        let days = i32::from_be_bytes(raw[8..12].try_into()?);
        let months = i32::from_be_bytes(raw[12..16].try_into()?);
        Ok(Interval(v4::Interval {
            micros,
            days,
            months,
        }))
    }
    fn accepts(t: &Type) -> bool {
        *t == Type::INTERVAL
    }
}

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&self.0.micros.to_be_bytes());
        out.extend_from_slice(&self.0.days.to_be_bytes());
        out.extend_from_slice(&self.0.months.to_be_bytes());
        Ok(IsNull::No)
    }
    fn accepts(t: &Type) -> bool {
        *t == Type::INTERVAL
    }
    to_sql_checked!();
}

/// A range value; `None` bounds are unbounded. An empty range has both bounds `None` and
/// `empty` set.
#[derive(Debug)]
struct Range<T> {
    lower: Option<(T, v4::RangeBoundKind)>,
    upper: Option<(T, v4::RangeBoundKind)>,
    empty: bool,
}

type WitRange<W> = (
    Option<(W, v4::RangeBoundKind)>,
    Option<(W, v4::RangeBoundKind)>,
);

impl<T> Range<T> {
    fn to_wit<W>(self, f: impl Fn(T) -> W) -> WitRange<W> {
        (
            self.lower.map(|(v, k)| (f(v), k)),
            self.upper.map(|(v, k)| (f(v), k)),
        )
    }

    fn from_wit<W>(
        r: &WitRange<W>,
        f: impl Fn(&W) -> Result<T, BoxError>,
    ) -> Result<Self, BoxError> {
        let conv = |b: &Option<(W, v4::RangeBoundKind)>| -> Result<_, BoxError> {
            b.as_ref().map(|(v, k)| Ok((f(v)?, *k))).transpose()
        };
        Ok(Range {
            lower: conv(&r.0)?,
            upper: conv(&r.1)?,
            empty: false,
        })
    }
}

fn range_element(t: &Type) -> Option<Type> {
    match *t {
        Type::INT4_RANGE => Some(Type::INT4),
        Type::INT8_RANGE => Some(Type::INT8),
        Type::NUM_RANGE => Some(Type::NUMERIC),
        _ => None,
    }
}

impl<'a, T: FromSql<'a>> FromSql<'a> for Range<T> {
    fn from_sql(t: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        use postgres_protocol::types::{Range as R, RangeBound as B, range_from_sql};
        let elem = range_element(t).ok_or("not a range type")?;
        let bound = |b: B<Option<&'a [u8]>>| -> Result<_, BoxError> {
            Ok(match b {
                B::Inclusive(Some(v)) => {
                    Some((T::from_sql(&elem, v)?, v4::RangeBoundKind::Inclusive))
                }
                B::Exclusive(Some(v)) => {
                    Some((T::from_sql(&elem, v)?, v4::RangeBoundKind::Exclusive))
                }
                _ => None,
            })
        };
        match range_from_sql(raw)? {
            R::Empty => Ok(Range {
                lower: None,
                upper: None,
                empty: true,
            }),
            R::Nonempty(lo, hi) => Ok(Range {
                lower: bound(lo)?,
                upper: bound(hi)?,
                empty: false,
            }),
        }
    }
    fn accepts(t: &Type) -> bool {
        range_element(t).is_some_and(|e| T::accepts(&e))
    }
}

impl<T: ToSql> ToSql for Range<T> {
    fn to_sql(&self, t: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        use postgres_protocol::types::{RangeBound as B, empty_range_to_sql, range_to_sql};
        if self.empty {
            empty_range_to_sql(out);
            return Ok(IsNull::No);
        }
        let elem = range_element(t).ok_or("not a range type")?;
        let write = |b: &Option<(T, v4::RangeBoundKind)>,
                     buf: &mut BytesMut|
         -> Result<B<postgres_protocol::IsNull>, BoxError> {
            let Some((v, kind)) = b else {
                return Ok(B::Unbounded);
            };
            let null = match v.to_sql(&elem, buf)? {
                IsNull::Yes => postgres_protocol::IsNull::Yes,
                IsNull::No => postgres_protocol::IsNull::No,
            };
            Ok(match kind {
                v4::RangeBoundKind::Inclusive => B::Inclusive(null),
                v4::RangeBoundKind::Exclusive => B::Exclusive(null),
            })
        };
        range_to_sql(
            |buf| write(&self.lower, buf),
            |buf| write(&self.upper, buf),
            out,
        )?;
        Ok(IsNull::No)
    }
    fn accepts(t: &Type) -> bool {
        range_element(t).is_some_and(|e| T::accepts(&e))
    }
    to_sql_checked!();
}

// --- values: WIT -> PostgreSQL ---

/// `db-null`: NULL of whatever type the statement expects.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

fn to_sql_params(params: &[v4::ParameterValue]) -> Result<Vec<Param>, v4::Error> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            to_sql(p).map_err(|e| v4::Error::BadParameter(format!("parameter {}: {e}", i + 1)))
        })
        .collect()
}

fn decimal(s: &str) -> Result<rust_decimal::Decimal, BoxError> {
    s.parse::<rust_decimal::Decimal>()
        .or_else(|_| rust_decimal::Decimal::from_scientific(s))
        .map_err(|e| format!("invalid decimal {s:?}: {e}").into())
}

fn to_sql(p: &v4::ParameterValue) -> Result<Param, BoxError> {
    use v4::ParameterValue as P;
    Ok(match p {
        P::Boolean(v) => Box::new(*v),
        P::Int8(v) => Box::new(*v),
        P::Int16(v) => Box::new(*v),
        P::Int32(v) => Box::new(*v),
        P::Int64(v) => Box::new(*v),
        P::Floating32(v) => Box::new(*v),
        P::Floating64(v) => Box::new(*v),
        P::Str(v) => Box::new(v.clone()),
        P::Binary(v) => Box::new(v.clone()),
        P::Date((y, m, d)) => {
            Box::new(NaiveDate::from_ymd_opt(*y, (*m).into(), (*d).into()).ok_or("invalid date")?)
        }
        P::Time((h, m, s, ns)) => Box::new(
            NaiveTime::from_hms_nano_opt((*h).into(), (*m).into(), (*s).into(), *ns)
                .ok_or("invalid time")?,
        ),
        P::Datetime((y, mo, d, h, mi, s, ns)) => {
            let date =
                NaiveDate::from_ymd_opt(*y, (*mo).into(), (*d).into()).ok_or("invalid date")?;
            let time = NaiveTime::from_hms_nano_opt((*h).into(), (*mi).into(), (*s).into(), *ns)
                .ok_or("invalid time")?;
            Box::new(NaiveDateTime::new(date, time))
        }
        P::Timestamp(v) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(*v, 0)
                .ok_or("timestamp out of range")?,
        ),
        P::Uuid(v) => Box::new(uuid::Uuid::parse_str(v)?),
        P::Jsonb(v) => Box::new(serde_json::from_slice::<serde_json::Value>(v)?),
        P::Decimal(v) => Box::new(decimal(v)?),
        P::RangeInt32(r) => Box::new(Range::from_wit(r, |v| Ok(*v))?),
        P::RangeInt64(r) => Box::new(Range::from_wit(r, |v| Ok(*v))?),
        P::RangeDecimal(r) => Box::new(Range::from_wit(r, |v| decimal(v))?),
        P::ArrayInt32(v) => Box::new(v.clone()),
        P::ArrayInt64(v) => Box::new(v.clone()),
        P::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(decimal).transpose())
                .collect::<Result<Vec<_>, _>>()?,
        ),
        P::ArrayStr(v) => Box::new(v.clone()),
        P::Interval(v) => Box::new(Interval(*v)),
        P::DbNull => Box::new(Null),
    })
}

// --- TLS (rustls, web PKI roots) ---

#[derive(Clone)]
struct MakeRustls {
    config: Arc<rustls::ClientConfig>,
}

impl MakeRustls {
    fn new() -> MakeRustls {
        static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
        let config = CONFIG
            .get_or_init(|| {
                let roots = rustls::RootCertStore::from_iter(
                    webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
                );
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                Arc::new(
                    rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()
                        .expect("ring supports the default protocol versions")
                        .with_root_certificates(roots)
                        .with_no_client_auth(),
                )
            })
            .clone();
        MakeRustls { config }
    }
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream<Socket>;
    type TlsConnect = RustlsConnect;
    type Error = BoxError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, BoxError> {
        let name = rustls::pki_types::ServerName::try_from(domain.to_string())?;
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
        })
    }
}

struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            self.connector
                .connect(self.name, stream)
                .await
                .map(RustlsStream)
        })
    }
}

struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

// --- spin:postgres/postgres@4.0.0 ---

impl v4::Host for PostgresState {}

impl v4::HostConnection for PostgresState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v4::Error>> {
        self.open_impl(&address).await
    }

    async fn query(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<Result<v4::RowSet, v4::Error>> {
        self.query_impl(&conn, &statement, params).await
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v4::Error>> {
        self.execute_impl(&conn, &statement, params).await
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn)
    }
}

// --- spin:postgres/postgres@3.0.0 (the same implementation, older types) ---

fn param_from_v3(p: v3::ParameterValue) -> v4::ParameterValue {
    use v3::ParameterValue as P3;
    use v4::ParameterValue as P;
    match p {
        P3::Boolean(v) => P::Boolean(v),
        P3::Int8(v) => P::Int8(v),
        P3::Int16(v) => P::Int16(v),
        P3::Int32(v) => P::Int32(v),
        P3::Int64(v) => P::Int64(v),
        P3::Floating32(v) => P::Floating32(v),
        P3::Floating64(v) => P::Floating64(v),
        P3::Str(v) => P::Str(v),
        P3::Binary(v) => P::Binary(v),
        P3::Date(v) => P::Date(v),
        P3::Time(v) => P::Time(v),
        P3::Datetime(v) => P::Datetime(v),
        P3::Timestamp(v) => P::Timestamp(v),
        P3::DbNull => P::DbNull,
    }
}

fn value_to_v3(v: v4::DbValue) -> v3::DbValue {
    use v3::DbValue as V3;
    use v4::DbValue as V;
    match v {
        V::Boolean(v) => V3::Boolean(v),
        V::Int8(v) => V3::Int8(v),
        V::Int16(v) => V3::Int16(v),
        V::Int32(v) => V3::Int32(v),
        V::Int64(v) => V3::Int64(v),
        V::Floating32(v) => V3::Floating32(v),
        V::Floating64(v) => V3::Floating64(v),
        V::Str(v) => V3::Str(v),
        V::Binary(v) => V3::Binary(v),
        V::Date(v) => V3::Date(v),
        V::Time(v) => V3::Time(v),
        V::Datetime(v) => V3::Datetime(v),
        V::Timestamp(v) => V3::Timestamp(v),
        V::DbNull => V3::DbNull,
        _ => V3::Unsupported,
    }
}

fn data_type_to_v3(t: v4::DbDataType) -> v3::DbDataType {
    use v3::DbDataType as D3;
    use v4::DbDataType as D;
    match t {
        D::Boolean => D3::Boolean,
        D::Int8 => D3::Int8,
        D::Int16 => D3::Int16,
        D::Int32 => D3::Int32,
        D::Int64 => D3::Int64,
        D::Floating32 => D3::Floating32,
        D::Floating64 => D3::Floating64,
        D::Str => D3::Str,
        D::Binary => D3::Binary,
        D::Date => D3::Date,
        D::Time => D3::Time,
        D::Datetime => D3::Datetime,
        D::Timestamp => D3::Timestamp,
        _ => D3::Other,
    }
}

fn error_to_v3(e: v4::Error) -> v3::Error {
    match e {
        v4::Error::ConnectionFailed(m) => v3::Error::ConnectionFailed(m),
        v4::Error::BadParameter(m) => v3::Error::BadParameter(m),
        v4::Error::QueryFailed(v4::QueryError::Text(m)) => v3::Error::QueryFailed(m),
        v4::Error::QueryFailed(v4::QueryError::DbError(d)) => v3::Error::QueryFailed(d.as_text),
        v4::Error::ValueConversionFailed(m) => v3::Error::ValueConversionFailed(m),
        v4::Error::Other(m) => v3::Error::Other(m),
    }
}

impl v3::Host for PostgresState {}

impl v3::HostConnection for PostgresState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        Ok(self.open_impl(&address).await?.map_err(error_to_v3))
    }

    async fn query(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<v3::RowSet, v3::Error>> {
        let params = params.into_iter().map(param_from_v3).collect();
        Ok(self
            .query_impl(&conn, &statement, params)
            .await?
            .map(|rs| v3::RowSet {
                columns: rs
                    .columns
                    .into_iter()
                    .map(|c| v3::Column {
                        name: c.name,
                        data_type: data_type_to_v3(c.data_type),
                    })
                    .collect(),
                rows: rs
                    .rows
                    .into_iter()
                    .map(|r| r.into_iter().map(value_to_v3).collect())
                    .collect(),
            })
            .map_err(error_to_v3))
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v3::Error>> {
        let params = params.into_iter().map(param_from_v3).collect();
        Ok(self
            .execute_impl(&conn, &statement, params)
            .await?
            .map_err(error_to_v3))
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(entries: &[&str]) -> PostgresState {
        let vars = crate::interfaces::variables::with_defaults(&[
            ("db_host", "127.0.0.1"),
            ("db_port", "55432"),
        ]);
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        let allowed = AllowedHosts::parse(&entries, &vars, &[]).unwrap();
        PostgresState::new("c".into(), Arc::new(allowed), Arc::default())
    }

    fn refusal(entries: &[&str], address: &str) -> Option<String> {
        match state(entries).ensure_allowed(address) {
            Ok(()) => None,
            Err(v4::Error::ConnectionFailed(m)) | Err(v4::Error::Other(m)) => Some(m),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    const ADDR: &str = "postgres://postgres@127.0.0.1:55432/db?sslmode=disable";

    /// SPIN-FACTS: the entries that allow a database at 127.0.0.1:55432, and those that don't.
    #[test]
    fn permissions_match_spin() {
        for ok in [
            &["postgres://127.0.0.1:55432"][..],
            &["postgres://{{ db_host }}:{{ db_port }}"],
            &["postgres://127.0.0.1:*"],
            &["postgres://*:*"],
        ] {
            assert_eq!(refusal(ok, ADDR), None, "{ok:?}");
        }
        for denied in [
            &[][..],
            &["postgres://127.0.0.1"],
            &["postgres://127.0.0.1:5432"],
            &["tcp://127.0.0.1:55432"],
            &["postgres://localhost:55432"],
        ] {
            assert_eq!(
                refusal(denied, ADDR).as_deref(),
                Some("address postgres://127.0.0.1:55432 is not permitted"),
                "{denied:?}"
            );
        }
        // Without a port the connection goes to 5432, which `postgres://host` allows.
        assert_eq!(
            refusal(&["postgres://127.0.0.1"], "postgres://u@127.0.0.1/db"),
            None
        );
        // An undefined variable fails the call, not start-up.
        let e = refusal(&["postgres://{{ nope }}:1"], ADDR).unwrap();
        assert!(e.contains("invalid variable name: nope"), "{e}");
    }

    #[test]
    fn every_connection_string_form_is_checked() {
        let allowed = &["postgres://127.0.0.1:55432"][..];
        for ok in [
            "postgresql://u:p@127.0.0.1:55432/db",
            "host=127.0.0.1 port=55432 user=u password=p dbname=db sslmode=disable",
        ] {
            assert_eq!(refusal(allowed, ok), None, "{ok}");
        }
        assert_eq!(
            refusal(allowed, "host=10.1.2.3 port=55432 user=u").as_deref(),
            Some("address postgres://10.1.2.3:55432 is not permitted")
        );
        // Every host of a multi-host string must be allowed.
        assert!(refusal(allowed, "host=127.0.0.1,10.1.2.3 port=55432 user=u").is_some());
        let unix = refusal(&["postgres://*:*"], "host=/var/run/postgresql user=u").unwrap();
        assert!(unix.contains("Unix sockets"), "{unix}");
        assert!(refusal(&["postgres://*:*"], "postgres://[bad").is_some());
    }

    #[test]
    fn parameters_convert_like_spin() {
        use v4::ParameterValue as P;
        let ok = [
            P::Int64(1),
            P::Str("x".into()),
            P::Date((2026, 2, 28)),
            P::Datetime((2026, 1, 20, 10, 0, 0, 0)),
            P::Timestamp(1_700_000_000),
            P::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            P::Jsonb(br#"{"a":[1,2]}"#.to_vec()),
            P::Decimal("12.345".into()),
            P::RangeInt32((Some((1, v4::RangeBoundKind::Inclusive)), None)),
            P::ArrayStr(vec![Some("a".into()), None]),
            P::Interval(v4::Interval {
                micros: 1,
                days: 2,
                months: 3,
            }),
            P::DbNull,
        ];
        assert!(to_sql_params(&ok).is_ok());
        for bad in [
            P::Date((2026, 2, 30)),
            P::Uuid("nope".into()),
            P::Jsonb(b"{".to_vec()),
            P::Decimal("1.2.3".into()),
        ] {
            assert!(
                matches!(to_sql_params(&[bad.clone()]), Err(v4::Error::BadParameter(m)) if m.starts_with("parameter 1:")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn interval_and_ranges_round_trip() {
        let i = Interval(v4::Interval {
            micros: -5,
            days: 7,
            months: 13,
        });
        let mut buf = BytesMut::new();
        i.to_sql(&Type::INTERVAL, &mut buf).unwrap();
        let back = Interval::from_sql(&Type::INTERVAL, &buf).unwrap().0;
        assert_eq!((back.micros, back.days, back.months), (-5, 7, 13));

        let r: Range<i64> = Range::from_wit(
            &(
                Some((3, v4::RangeBoundKind::Inclusive)),
                Some((9, v4::RangeBoundKind::Exclusive)),
            ),
            |v| Ok(*v),
        )
        .unwrap();
        let mut buf = BytesMut::new();
        r.to_sql(&Type::INT8_RANGE, &mut buf).unwrap();
        let back = Range::<i64>::from_sql(&Type::INT8_RANGE, &buf).unwrap();
        assert!(matches!(
            back.to_wit(|v| v),
            (
                Some((3, v4::RangeBoundKind::Inclusive)),
                Some((9, v4::RangeBoundKind::Exclusive))
            )
        ));
    }

    #[test]
    fn v3_sees_newer_types_as_unsupported() {
        assert!(matches!(
            value_to_v3(v4::DbValue::Uuid("u".into())),
            v3::DbValue::Unsupported
        ));
        assert!(matches!(
            data_type_to_v3(v4::DbDataType::Jsonb),
            v3::DbDataType::Other
        ));
        let e = error_to_v3(v4::Error::QueryFailed(v4::QueryError::DbError(
            v4::DbError {
                as_text: "db error: ERROR: boom".into(),
                severity: "ERROR".into(),
                code: "XX000".into(),
                message: "boom".into(),
                detail: None,
                extras: vec![],
            },
        )));
        assert!(matches!(e, v3::Error::QueryFailed(m) if m == "db error: ERROR: boom"));
        assert!(matches!(data_type(&Type::INT8), v4::DbDataType::Int64));
        assert!(matches!(data_type(&Type::NAME), v4::DbDataType::Other(n) if n == "name"));
    }
}

/// Against a real PostgreSQL (the e2e suite's throwaway cluster): values of every mapped
/// type round-trip, sessions are reset between guests, both interface versions work.
#[cfg(test)]
mod live {
    use super::*;

    use berth_test_support::postgres as cluster;

    fn state() -> PostgresState {
        let vars =
            crate::interfaces::variables::AppVariables::resolve(&Default::default(), |_| None)
                .unwrap();
        let allowed = AllowedHosts::parse(&["postgres://127.0.0.1:*".into()], &vars, &[]).unwrap();
        PostgresState::new("test".into(), Arc::new(allowed), Arc::default())
    }

    async fn open(s: &mut PostgresState, url: &str) -> Resource<Connection> {
        s.open_impl(url).await.unwrap().unwrap()
    }

    async fn query(
        s: &mut PostgresState,
        c: &Resource<Connection>,
        sql: &str,
        params: Vec<v4::ParameterValue>,
    ) -> v4::RowSet {
        match s.query_impl(c, sql, params).await.unwrap() {
            Ok(rows) => rows,
            Err(e) => panic!("{sql}: {e:?}"),
        }
    }

    fn debug(v: &v4::DbValue) -> String {
        let s = format!("{v:?}");
        s.strip_prefix("DbValue::").unwrap_or(&s).to_owned()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn values_round_trip_and_sessions_are_reset() {
        let db = tokio::task::spawn_blocking(cluster::fresh_database)
            .await
            .unwrap();
        let url = db.url();
        let mut s = state();
        let c = open(&mut s, &url).await;
        use v4::ParameterValue as P;
        query(
            &mut s,
            &c,
            "CREATE TABLE t (b BOOLEAN, i2 SMALLINT, i4 INT, i8 BIGINT, f4 REAL, f8 DOUBLE \
             PRECISION, s TEXT, v VARCHAR(10), by BYTEA, d DATE, tm TIME, ts TIMESTAMP, tz \
             TIMESTAMPTZ, u UUID, j JSONB, n NUMERIC, r4 INT4RANGE, r8 INT8RANGE, a4 INT[], \
             a8 BIGINT[], an NUMERIC[], at TEXT[], iv INTERVAL, x INET, nul TEXT)",
            vec![],
        )
        .await;
        let params = vec![
            P::Boolean(true),
            P::Int16(-2),
            P::Int32(40_000),
            P::Int64(1 << 40),
            P::Floating32(1.5),
            P::Floating64(-2.25),
            P::Str("héllo".into()),
            P::Str("v".into()),
            P::Binary(vec![0, 1, 255]),
            P::Date((2026, 2, 28)),
            P::Time((10, 20, 30, 500_000_000)),
            P::Datetime((2026, 1, 20, 10, 0, 0, 0)),
            P::Timestamp(1_700_000_000),
            P::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            P::Jsonb(br#"{"a": [1, 2]}"#.to_vec()),
            P::Decimal("12.345".into()),
            P::RangeInt32((
                Some((1, v4::RangeBoundKind::Inclusive)),
                Some((5, v4::RangeBoundKind::Exclusive)),
            )),
            P::RangeInt64((Some((7, v4::RangeBoundKind::Inclusive)), None)),
            P::ArrayInt32(vec![Some(1), None]),
            P::ArrayInt64(vec![Some(1 << 40)]),
            P::ArrayDecimal(vec![Some("0.5".into())]),
            P::ArrayStr(vec![Some("a".into()), None]),
            P::Interval(v4::Interval {
                micros: 1_000_000,
                days: 2,
                months: 3,
            }),
            P::DbNull,
            P::DbNull,
        ];
        let placeholders: Vec<String> = (1..=params.len()).map(|i| format!("${i}")).collect();
        let n = s
            .execute_impl(
                &c,
                &format!("INSERT INTO t VALUES ({})", placeholders.join(", ")),
                params,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
        let rows = query(&mut s, &c, "SELECT * FROM t", vec![]).await;
        let got: Vec<String> = rows.rows[0].iter().map(debug).collect();
        let want = [
            "Boolean(true)",
            "Int16(-2)",
            "Int32(40000)",
            "Int64(1099511627776)",
            "Floating32(1.5)",
            "Floating64(-2.25)",
            "Str(\"héllo\")",
            "Str(\"v\")",
            "Binary([0, 1, 255])",
            "Date((2026, 2, 28))",
            "Time((10, 20, 30, 500000000))",
            "Datetime((2026, 1, 20, 10, 0, 0, 0))",
            "Datetime((2023, 11, 14, 22, 13, 20, 0))",
            "Uuid(\"67e55044-10b1-426f-9247-bb680e5fe0c8\")",
            "Jsonb([123, 34, 97, 34, 58, 91, 49, 44, 50, 93, 125])",
            "Decimal(\"12.345\")",
            "RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((5, RangeBoundKind::Exclusive))))",
            "RangeInt64((Some((7, RangeBoundKind::Inclusive)), None))",
            "ArrayInt32([Some(1), None])",
            "ArrayInt64([Some(1099511627776)])",
            "ArrayDecimal([Some(\"0.5\")])",
            "ArrayStr([Some(\"a\"), None])",
            "Interval(Interval { micros: 1000000, days: 2, months: 3 })",
            "DbNull",
            "DbNull",
        ];
        assert_eq!(got, want);
        let types: Vec<String> = rows
            .columns
            .iter()
            .map(|c| format!("{}:{:?}", c.name, c.data_type))
            .collect();
        assert_eq!(types[0], "b:DbDataType::Boolean");
        assert_eq!(types[23], "x:DbDataType::Other(\"inet\")");
        // An unmapped type's value arrives as raw bytes.
        let inet = query(&mut s, &c, "SELECT '10.0.0.1'::inet AS x", vec![]).await;
        assert!(debug(&inet.rows[0][0]).starts_with("Unsupported("));
        // A mistyped parameter is refused as Spin refuses it (no silent conversion).
        let e = s
            .query_impl(&c, "SELECT i4 FROM t WHERE i4 = $1", vec![P::Int64(1)])
            .await
            .unwrap()
            .unwrap_err();
        assert!(format!("{e:?}").contains("int4"), "{e:?}");
        // Database errors carry PostgreSQL's structure.
        let e = s
            .query_impl(&c, "SELECT nope FROM t", vec![])
            .await
            .unwrap()
            .unwrap_err();
        match e {
            v4::Error::QueryFailed(v4::QueryError::DbError(d)) => {
                assert_eq!(d.code, "42703");
                assert!(
                    d.as_text.contains("column \"nope\" does not exist"),
                    "{}",
                    d.as_text
                );
            }
            other => panic!("{other:?}"),
        }

        // A guest that leaves a transaction open and changes a setting: the next guest's
        // session is clean.
        let c2 = open(&mut s, &url).await;
        query(&mut s, &c2, "BEGIN", vec![]).await;
        query(
            &mut s,
            &c2,
            "INSERT INTO t (s) VALUES ('uncommitted')",
            vec![],
        )
        .await;
        query(&mut s, &c2, "SET application_name = 'dirty'", vec![]).await;
        s.close(c2).unwrap();
        s.close(c).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut s = state();
        let c = open(&mut s, &url).await;
        let rows = query(
            &mut s,
            &c,
            "SELECT (SELECT COUNT(*) FROM t) AS n, current_setting('application_name') AS app",
            vec![],
        )
        .await;
        assert_eq!(debug(&rows.rows[0][0]), "Int64(1)");
        assert_eq!(debug(&rows.rows[0][1]), "Str(\"\")");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_v3_interface_reads_the_same_rows() {
        use v3::HostConnection as _;
        let db = tokio::task::spawn_blocking(cluster::fresh_database)
            .await
            .unwrap();
        let mut s = state();
        let c = v3::HostConnection::open(&mut s, db.url())
            .await
            .unwrap()
            .unwrap();
        let n = s
            .execute(
                Resource::new_borrow(c.rep()),
                "CREATE TABLE t (id BIGINT, u UUID)".into(),
                vec![],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
        s.execute(
            Resource::new_borrow(c.rep()),
            "INSERT INTO t VALUES ($1, gen_random_uuid())".into(),
            vec![v3::ParameterValue::Int64(7)],
        )
        .await
        .unwrap()
        .unwrap();
        let rows = s
            .query(
                Resource::new_borrow(c.rep()),
                "SELECT id, u FROM t".into(),
                vec![],
            )
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(rows.rows[0][0], v3::DbValue::Int64(7)));
        assert!(matches!(rows.rows[0][1], v3::DbValue::Unsupported));
        assert!(matches!(rows.columns[1].data_type, v3::DbDataType::Other));
        let e = s
            .query(Resource::new_borrow(c.rep()), "SELEC".into(), vec![])
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, v3::Error::QueryFailed(m) if m.contains("syntax error")));
        v3::HostConnection::drop(&mut s, c).await.unwrap();
    }
}

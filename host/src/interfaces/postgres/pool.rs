//! Sessions to PostgreSQL, pooled per connection string and shared by every instance of
//! the app: a guest's `open` checks one out for the resource's lifetime, and its `drop`
//! resets the session before another guest may use it.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::SslMode;
use tokio_postgres::{NoTls, Statement};

use super::tls::MakeRustls;

/// Connections kept per connection string (Spin's CONNECTION_POOL_SIZE); override with
/// `BERTH_PG_POOL_SIZE`.
const POOL_SIZE: usize = 64;
/// Connection strings with a pool (Spin's CONNECTION_POOL_CACHE_CAPACITY).
const MAX_POOLS: usize = 16;
/// How long `open` waits for a free pooled connection before failing.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// Connect timeout when the connection string sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
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

/// Every pool of the app, by connection string; shared by all instances.
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

impl Pools {
    pub(super) fn get(&self, address: &str) -> Result<Arc<Pool>, String> {
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
pub(super) struct Pool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// One PostgreSQL session and the statements prepared on it.
pub(super) struct Client {
    pub(super) client: tokio_postgres::Client,
    statements: HashMap<String, Statement>,
}

impl Pool {
    pub(super) async fn checkout(self: &Arc<Self>) -> Result<Connection, String> {
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
pub(super) fn error_text(e: &tokio_postgres::Error) -> String {
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
    pub(super) fn client(&mut self) -> &mut Client {
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
    pub(super) async fn prepare(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
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
    pub(super) fn forget(&mut self, sql: &str) {
        self.statements.remove(sql);
    }
}

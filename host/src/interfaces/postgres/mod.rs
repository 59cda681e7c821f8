//! `spin:postgres/postgres@4.0.0` and `@3.0.0` on tokio-postgres, with Spin's permission rules.
//!
//! - The connection string (`postgres://…`, `postgresql://…` or `host=… port=…`) is parsed
//!   by tokio-postgres, as in Spin; each TCP host must be allowed by the component's
//!   `allowed_outbound_hosts` (`postgres://host:port`, names compared as text). Refusal:
//!   `connection-failed("address postgres://host:port is not permitted")` plus a log line
//!   naming the entry to add.
//! - Connections are pooled per connection string (at most `pool::POOL_SIZE` each, like Spin's
//!   pool); a connection a guest leaves is rolled back and reset before it is reused.
//! - TLS as Spin: `sslmode=disable` connects in plain text; otherwise TLS is tried (and
//!   required by `sslmode=require`) and the server certificate must verify against the
//!   public web PKI roots, so a self-signed server fails unless TLS is disabled.
//! - Values are mapped as Spin maps them (`spin-factor-outbound-pg`): bool, int2/4/8,
//!   float4/8, text/varchar/bpchar, bytea, date, time, timestamp(tz), uuid, jsonb, numeric,
//!   int4/int8/numeric ranges, int4/int8/numeric/text arrays and interval; any other column
//!   type is `unsupported` with its raw binary value.
//!
//! One file per concern: `pool` (sessions, pooled per connection string), `query` (running a
//! statement, its errors), `values` (PostgreSQL <-> WIT values), `tls` (rustls for
//! tokio-postgres), `interface` (the two WIT versions' host traits); this file holds the
//! per-instance state and the permission check.

mod interface;
mod pool;
mod query;
mod tls;
mod values;

use std::error::Error as StdError;
use std::sync::Arc;

use tokio_postgres::config::Host;
use wasmtime::component::{Resource, ResourceTable};

use crate::allowed_hosts::AllowedHosts;
use crate::bindings::spin::postgres4_0_0::postgres as v4;

pub use pool::{Connection, Pools};
use query::{param_refs, query_failed, run_query};
use values::to_sql_params;

/// Open connections one instance may hold (Spin's resource-table limit).
const MAX_CONNECTIONS_PER_INSTANCE: usize = 256;

/// What a value conversion or the TLS glue fails with (tokio-postgres's error type).
type BoxError = Box<dyn StdError + Sync + Send>;

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

#[cfg(test)]
mod live_tests;

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
}

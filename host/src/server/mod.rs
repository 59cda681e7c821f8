//! The HTTP trigger: a hyper server that routes each request to a fresh component instance.
//!
//! One file per concern: `listen` (accepting connections, reading requests within the
//! limits), `dispatch` (which handler a request goes to, Spin's request headers),
//! `instance` (a fresh instance per request), `linking` (pre-linking components, stubbing
//! what berth does not implement), `responses` (the host's own answers). This file builds
//! the server: every routed component compiled and linked once, at start.

mod dispatch;
mod instance;
mod linking;
mod listen;
mod responses;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::allowed_hosts::AllowedHosts;
use crate::interfaces::key_value::Stores;
use crate::interfaces::postgres::Pools as PgPools;
use crate::interfaces::sqlite::Databases;
use crate::interfaces::variables::{AppVariables, ComponentVariables};
use crate::limits::{ConcurrencyLimits, OutboundLimits};
use crate::manifest::App;
use crate::routes::Router;
use crate::runtime::{self, InstanceState};
use linking::link;

/// One runnable component: compiled and pre-linked once, instantiated per request.
struct ComponentRuntime {
    id: String,
    description: String,
    pre: ProxyPre<InstanceState>,
    environment: Vec<(String, String)>,
    allowed_hosts: Arc<AllowedHosts>,
    sqlite_allowed: Arc<HashSet<String>>,
    kv_allowed: Arc<HashSet<String>>,
    variables: Arc<ComponentVariables>,
    /// One per request this component may run at once (ConcurrencyLimits).
    permits: Arc<Semaphore>,
}

pub struct Server {
    engine: Engine,
    router: Router,
    components: HashMap<String, Arc<ComponentRuntime>>,
    databases: Arc<Databases>,
    stores: Arc<Stores>,
    pg_pools: Arc<PgPools>,
    app_name: String,
    app_version: String,
    local_addr: OnceLock<SocketAddr>,
    outbound: OutboundLimits,
}

impl Server {
    /// Validates the app against the runtime, compiles every routed component and builds the router.
    #[cfg(test)]
    pub fn new(app: &App, state_dir: &Path) -> Result<Arc<Server>> {
        Server::with_variables(
            app,
            state_dir,
            AppVariables::from_environment(app)?,
            OutboundLimits::default(),
            ConcurrencyLimits {
                per_component: None,
            },
        )
    }

    /// [`Server::new`] with the application variables already resolved.
    pub fn with_variables(
        app: &App,
        state_dir: &Path,
        app_vars: AppVariables,
        outbound: OutboundLimits,
        concurrency: ConcurrencyLimits,
    ) -> Result<Arc<Server>> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
        let databases = Arc::new(Databases::new(state_dir));
        let stores = Arc::new(Stores::new(state_dir));

        // Only triggered components run (as in Spin); each is compiled once.
        let mut ids: Vec<&str> = app.triggers.iter().map(|t| t.component.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();

        // Like Spin without runtime config: only the "default" database and store exist
        // (checked for every component, as Spin does).
        for (id, c) in &app.components {
            if let Some(label) = c.sqlite_databases.iter().find(|l| !databases.is_defined(l)) {
                bail!(
                    "component {id:?} uses SQLite database {label:?}, which is not defined: \
                     berth provides only \"default\""
                );
            }
            if let Some(label) = c.key_value_stores.iter().find(|l| !stores.is_defined(l)) {
                bail!(
                    "unknown key_value_stores label {label:?} for component {id:?}: berth \
                     provides only \"default\""
                );
            }
        }
        if ids
            .iter()
            .any(|id| !app.components[*id].sqlite_databases.is_empty())
        {
            for (label, pool) in [("default", databases.pool("default"))] {
                if let Some(pool) = pool {
                    pool.warm_up().with_context(|| {
                        format!(
                            "cannot open SQLite database {label:?} at {}",
                            pool.path().display()
                        )
                    })?;
                }
            }
        }
        if ids
            .iter()
            .any(|id| !app.components[*id].key_value_stores.is_empty())
        {
            stores
                .init()
                .context("cannot open the key-value store database")?;
        }

        let engine = runtime::engine()?;
        let linker = runtime::linker(&engine)?;
        // BERTH_COMPILE_CACHE lets many short-lived hosts (tests) share one cache across
        // fresh state directories.
        let cache_dir = std::env::var_os("BERTH_COMPILE_CACHE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| state_dir.join("cache"));
        let all_ids: Vec<String> = app.components.keys().cloned().collect();

        // Validate every component's permissions before spending seconds compiling.
        let mut allowed = HashMap::new();
        for id in &ids {
            let c = &app.components[*id];
            let hosts = AllowedHosts::parse(&c.allowed_outbound_hosts, &app_vars, &all_ids)
                .with_context(|| format!("component {id:?}"))?;
            allowed.insert(*id, Arc::new(hosts));
        }

        let mut components = HashMap::new();
        for id in ids {
            let c = &app.components[id];
            let started = Instant::now();
            let component = runtime::load_component(&engine, &c.source, &cache_dir)
                .with_context(|| format!("component {id:?}"))?;
            let pre = link(&linker, &engine, &component, id)?;
            tracing::info!(
                "component {id} ready in {:.0?} ({})",
                started.elapsed(),
                c.source_display
            );
            components.insert(
                id.to_string(),
                Arc::new(ComponentRuntime {
                    id: id.to_string(),
                    description: c.description.clone(),
                    pre,
                    environment: c
                        .environment
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    allowed_hosts: allowed[id].clone(),
                    sqlite_allowed: Arc::new(c.sqlite_databases.iter().cloned().collect()),
                    kv_allowed: Arc::new(c.key_value_stores.iter().cloned().collect()),
                    variables: Arc::new(ComponentVariables::resolve(id, &c.variables, &app_vars)),
                    permits: Arc::new(Semaphore::new(concurrency.per_component())),
                }),
            );
        }

        Ok(Arc::new(Server {
            engine,
            router: Router::build(&app.triggers)?,
            components,
            databases,
            stores,
            pg_pools: Arc::new(PgPools::default()),
            app_name: app.name.clone(),
            app_version: app.version.clone(),
            local_addr: OnceLock::new(),
            outbound,
        }))
    }

    /// The host's ceilings on guests' outbound HTTP requests.
    pub fn outbound_limits(&self) -> OutboundLimits {
        self.outbound.clone()
    }

    /// The address `serve` listens on, once it does.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use http::{Request, StatusCode};
    use wasmtime_wasi_http::WasiBody;

    use super::responses::empty;

    /// A component whose handler executes `unreachable`, plus an import of an interface
    /// berth does not implement.
    const TRAP_WAT: &str = r#"(component
      (import "spin:mysql/mysql@3.0.0" (instance $my (export "ping" (func (result u32)))))
      (import "wasi:http/types@0.2.0" (instance $types
        (export "incoming-request" (type (sub resource)))
        (export "response-outparam" (type (sub resource)))))
      (alias export $types "incoming-request" (type $req))
      (alias export $types "response-outparam" (type $out))
      (core module $m (func (export "handle") (param i32 i32) unreachable))
      (core instance $i (instantiate $m))
      (func $handle (param "request" (own $req)) (param "response-out" (own $out))
        (canon lift (core func $i "handle")))
      (instance $export (export "handle" (func $handle)))
      (export "wasi:http/incoming-handler@0.2.0" (instance $export)))"#;

    fn request(path: &str) -> Request<WasiBody> {
        Request::builder()
            .uri(path)
            .header("host", "example.com")
            .body(empty())
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn trap_is_a_500_and_the_server_keeps_serving() {
        let dir = std::env::temp_dir().join(format!("berth-server-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trap.wat"), TRAP_WAT).unwrap();
        let manifest = r#"spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/trap/..."
component = "trap"
[component.trap]
source = "trap.wat"
"#;
        let app = crate::manifest::parse(manifest, &dir).unwrap();
        let server = Server::new(&app, &dir.join(".spin")).unwrap();
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..2 {
            let resp = server.handle(request("/trap/x"), addr).await;
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
        assert_eq!(
            server.handle(request("/nope"), addr).await.status(),
            StatusCode::NOT_FOUND
        );
        let health = server
            .handle(request("/.well-known/spin/health"), addr)
            .await;
        assert_eq!(health.status(), StatusCode::OK);
        // The compiled component was cached for the next start.
        if std::env::var_os("BERTH_COMPILE_CACHE").is_none() {
            let cached = std::fs::read_dir(dir.join(".spin/cache")).unwrap().count();
            assert_eq!(cached, 1);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

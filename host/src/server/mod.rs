//! The HTTP trigger: a hyper server that routes each request to a fresh component instance.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri, uri::Authority};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttpCtx, WasiHttpView};

use crate::allowed_hosts::{AllowedHosts, service_chaining_target};
use crate::interfaces::key_value::{KeyValueState, Stores};
use crate::interfaces::outbound_http::OutboundHttp;
use crate::interfaces::postgres::{Pools as PgPools, PostgresState};
use crate::interfaces::sqlite::{Databases, SqliteState};
use crate::interfaces::variables::{AppVariables, ComponentVariables, VariablesState};
use crate::limits::{ConcurrencyLimits, Limits, OutboundLimits, read_body};
use crate::manifest::App;
use crate::routes::{RouteMatch, Router};
use crate::runtime::{self, InstanceState};

/// Client address Spin reports for service-chaining requests.
const CHAINED_CLIENT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

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

fn empty() -> WasiBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn full(bytes: impl Into<Bytes>) -> WasiBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A component at its concurrency limit: the client may retry shortly.
fn busy() -> Response<WasiBody> {
    let mut r = Response::new(full(
        "server busy: too many requests in progress for this route; retry shortly\n",
    ));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = r.headers_mut();
    headers.insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(ConcurrencyLimits::RETRY_AFTER_SECONDS),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn status(code: StatusCode) -> Response<WasiBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
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

    /// Binds, prints Spin's start-up banner on stdout, then serves until the process ends.
    /// The address `serve` listens on, once it does.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr.get().copied()
    }

    pub async fn serve(self: Arc<Self>, listen: SocketAddr, limits: Limits) -> Result<()> {
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow!("{listen} is already in use")
            } else {
                anyhow!("Unable to listen on {listen}: {e}")
            }
        })?;
        let addr = listener.local_addr()?;
        let _ = self.local_addr.set(addr);
        self.print_banner(addr)?;

        let limits = Arc::new(limits);
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // hyper's header timer starts whenever the connection waits for a request head, so
        // it also closes idle keep-alive connections; `max_buf_size` bounds the head (431).
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes as usize);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes);
        let builder = Arc::new(builder);

        loop {
            let (stream, client_addr) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Transient (e.g. EMFILE): keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Responses leave in several writes (head, then body chunks as the guest streams
            // them): with Nagle's algorithm each later write waits for the client's delayed
            // ACK, ~40 ms per response on Linux.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY for {client_addr}: {e}");
            }
            let server = self.clone();
            let limits = limits.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                // hyper-util reads the first bytes (HTTP/2 preface or not) before hyper's
                // header timer starts, with no deadline of its own: a silent client would
                // hold the connection forever.
                if !first_bytes_arrive(&stream, limits.header_read_timeout).await {
                    tracing::debug!("closing {client_addr}: nothing received in time");
                    return;
                }
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let server = server.clone();
                    let limits = limits.clone();
                    async move {
                        Ok::<_, Infallible>(server.handle_incoming(req, client_addr, &limits).await)
                    }
                });
                if let Err(e) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!("error serving connection from {client_addr}: {e}");
                }
            });
        }
    }

    /// A request from the network: its body is read (within the limits) before any guest
    /// runs, so an oversized or stalled body costs at most `max_body_bytes` and no instance.
    async fn handle_incoming(
        self: &Arc<Self>,
        req: Request<Incoming>,
        client_addr: SocketAddr,
        limits: &Limits,
    ) -> Response<WasiBody> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        match read_body(body, limits.max_body_bytes, limits.body_read_timeout).await {
            Ok(bytes) => {
                self.handle(Request::from_parts(parts, full(bytes)), client_addr)
                    .await
            }
            Err(refused) => {
                let mut resp = Response::new(full(refused.reason(limits.max_body_bytes)));
                *resp.status_mut() = refused.status();
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                // The rest of the body is never read: the connection cannot be reused.
                resp.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                log_request(
                    &parts.method,
                    parts.uri.path(),
                    resp.status(),
                    None,
                    started,
                    None,
                );
                resp
            }
        }
    }

    fn print_banner(&self, addr: SocketAddr) -> Result<()> {
        let base = format!("http://{addr}");
        let mut out = std::io::stdout().lock();
        writeln!(out, "\nServing {base}")?;
        writeln!(out, "Available Routes:")?;
        for (component, path, wildcard) in self.router.routes() {
            let suffix = if wildcard { " (wildcard)" } else { "" };
            writeln!(out, "  {component}: {base}{path}{suffix}")?;
            if let Some(c) = self.components.get(component)
                && !c.description.is_empty()
            {
                writeln!(out, "    {}", c.description)?;
            }
        }
        // Scripts and tests wait for this line: make sure it leaves the process now.
        out.flush()?;
        Ok(())
    }

    /// Handles one inbound request end to end; never fails (errors become 500s).
    pub async fn handle(
        self: &Arc<Self>,
        mut req: Request<WasiBody>,
        client_addr: SocketAddr,
    ) -> Response<WasiBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let internal_host = strip_forbidden_headers(&mut req);

        let (resp, component) = if let Some(wk) = path.strip_prefix(WELL_KNOWN_PREFIX) {
            (self.well_known(wk), None)
        } else {
            match self.router.route(&path) {
                // Only the app's own components reach it under those names (service chaining).
                Some(_) if internal_host => (
                    bad_request(
                        "the Host header names an internal service (*.spin.internal), which \
                         only the app's own components can call",
                    ),
                    None,
                ),
                Some(m) => {
                    let resp = self.handle_route(req, &m, client_addr).await;
                    (resp, Some(m.component))
                }
                // Spin: unmatched paths get an empty 404.
                None => (status(StatusCode::NOT_FOUND), None),
            }
        };
        log_request(
            &method,
            &path,
            resp.status(),
            component.as_deref(),
            started,
            None,
        );
        resp
    }

    /// In-process service chaining: `http://<id>.spin.internal/...` from `caller`.
    pub async fn handle_chained(
        self: &Arc<Self>,
        caller: &str,
        target: &str,
        req: Request<WasiBody>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        if !self.components.contains_key(target) {
            tracing::error!(
                "component {caller} called http://{target}.spin.internal, but no routed component {target:?} exists"
            );
            return Err(HttpError::DestinationNotFound);
        }
        // Spin routes chained requests as if they matched the target's `/...` route.
        let m = RouteMatch::synthetic(target, &path);
        let resp = self.handle_route(req, &m, CHAINED_CLIENT_ADDR).await;
        log_request(
            &method,
            &path,
            resp.status(),
            Some(target),
            started,
            Some(caller),
        );
        Ok(resp)
    }

    /// A relative URL (or `self.alt`) from a component: served by this app, in-process.
    pub async fn handle_self_request(
        self: &Arc<Self>,
        mut req: Request<WasiBody>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let addr = self
            .local_addr
            .get()
            .copied()
            .ok_or(HttpError::HttpRequestUriInvalid)?;
        let host = HeaderValue::from_str(&addr.to_string())
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        *req.uri_mut() = Uri::builder()
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        req.headers_mut().insert(http::header::HOST, host);
        Ok(Box::pin(self.handle(req, addr)).await)
    }

    fn well_known(&self, path: &str) -> Response<WasiBody> {
        match path {
            "health" => Response::new(full("OK")),
            "info" => {
                let mut info = serde_json::json!({ "name": self.app_name });
                if !self.app_version.is_empty() {
                    info["version"] = self.app_version.clone().into();
                }
                let body = serde_json::to_vec_pretty(&info).unwrap_or_default();
                let mut r = Response::new(full(body));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            _ => status(StatusCode::NOT_FOUND),
        }
    }

    async fn handle_route(
        self: &Arc<Self>,
        mut req: Request<WasiBody>,
        m: &RouteMatch,
        client_addr: SocketAddr,
    ) -> Response<WasiBody> {
        let Some(component) = self.components.get(&m.component).cloned() else {
            tracing::error!("no runnable component {:?}", m.component);
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        if let Err(e) =
            set_req_uri(&mut req).and_then(|()| prepare_headers(&mut req, m, client_addr))
        {
            // No usable Host (e.g. an HTTP/1.0 request without one): the client's mistake.
            tracing::info!("component {}: bad request: {e:#}", component.id);
            return bad_request(&format!("{e:#}"));
        }
        let Ok(permit) = component.permits.clone().try_acquire_owned() else {
            tracing::warn!(
                "component {}: at its concurrency limit; answering 503",
                component.id
            );
            return busy();
        };
        match self.execute(&component, req, permit).await {
            Ok(resp) => resp,
            Err(e) => {
                // A trap or a guest that never answered: Spin's empty 500. The server goes on.
                // `{:#}` keeps the wasm backtrace but not a host (Rust) backtrace.
                tracing::error!(
                    "component {}: error processing request: {e:#}",
                    component.id
                );
                status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn new_store(self: &Arc<Self>, component: &ComponentRuntime) -> Store<InstanceState> {
        let wasi = WasiCtx::builder()
            .envs(&component.environment)
            .inherit_stdout()
            .inherit_stderr()
            .build();
        let state = InstanceState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: OutboundHttp {
                component_id: component.id.clone(),
                allowed: component.allowed_hosts.clone(),
                server: self.clone(),
            },
            sqlite: SqliteState::new(component.sqlite_allowed.clone(), self.databases.clone()),
            postgres: PostgresState::new(
                component.id.clone(),
                component.allowed_hosts.clone(),
                self.pg_pools.clone(),
            ),
            key_value: KeyValueState::new(component.kv_allowed.clone(), self.stores.clone()),
            variables: VariablesState {
                vars: component.variables.clone(),
            },
        };
        Store::new(&self.engine, state)
    }

    /// Runs the guest's `wasi:http/incoming-handler` in a fresh instance (as Spin's
    /// WasiHttpExecutor does): the response is returned as soon as the guest sets it, while
    /// the guest task keeps streaming the body.
    async fn execute(
        self: &Arc<Self>,
        component: &Arc<ComponentRuntime>,
        req: Request<WasiBody>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Response<WasiBody>> {
        let mut store = self.new_store(component);
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(anyhow::Error::from)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let response = store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(anyhow::Error::from)?;
        let pre = component.pre.clone();
        let task = tokio::spawn(async move {
            // Held until the guest is done, body streaming included.
            let _permit = permit;
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, response)
                .await
        });

        match rx.await {
            Ok(Ok(resp)) => {
                let id = component.id.clone();
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::error!(
                            "component {id}: error after the response started (body may be truncated): {e:#}"
                        ),
                        Err(e) => tracing::error!("component {id}: task failed: {e}"),
                    }
                });
                Ok(resp)
            }
            Ok(Err(code)) => Err(anyhow!("component returned an error response: {code:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(anyhow!(
                    "guest failed to produce a response prior to returning"
                )),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("guest invocation failed")),
                Err(e) => Err(anyhow!("guest invocation panicked: {e}")),
            },
        }
    }
}

/// Interfaces berth implements (any 0.2.x / listed version); anything else may be stubbed.
const IMPLEMENTED_PREFIXES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "wasi:http/",
    "fermyon:spin/sqlite@",
    "fermyon:spin/key-value@",
    "fermyon:spin/variables@",
    "spin:sqlite/sqlite@",
    "spin:postgres/postgres@3.0.0",
    "spin:postgres/postgres@4.0.0",
];

fn link(
    linker: &Linker<InstanceState>,
    engine: &Engine,
    component: &Component,
    id: &str,
) -> Result<ProxyPre<InstanceState>> {
    let mut linker = linker.clone();
    let mut stubbed: Vec<String> = Vec::new();
    let pre = loop {
        let err = match linker.instantiate_pre(component) {
            Ok(pre) => break pre,
            Err(e) => anyhow::Error::from(e),
        };
        // An import of an interface berth does not implement at all (e.g. spin:mysql or
        // spin:redis, which a component may link but only call on some paths) would make
        // the whole component unusable; define it with trapping functions instead, so only
        // an actual call fails. A mismatch on an implemented interface stays an error.
        let missing = missing_import(&err).filter(|name| {
            !stubbed.contains(name) && !IMPLEMENTED_PREFIXES.iter().any(|p| name.starts_with(p))
        });
        let Some(name) = missing else {
            return Err(err.context(format!("component {id:?} cannot be linked")));
        };
        stub_import(&mut linker, engine, component, &name)
            .with_context(|| format!("component {id:?}: cannot stub import `{name}`"))?;
        stubbed.push(name);
    };
    if !stubbed.is_empty() {
        tracing::warn!(
            "component {id} imports {}, which berth does not implement: calls to it will trap",
            stubbed.join(", ")
        );
    }
    ProxyPre::new(pre)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "component {id:?} does not export wasi:http/incoming-handler@0.2.x; berth runs \
             wasi-http components (spin-sdk 3+)"
            )
        })
}

/// The import named by wasmtime's "component imports ... `NAME`, but a matching
/// implementation was not found" error, if its cause is a missing (not mistyped) definition.
fn missing_import(err: &anyhow::Error) -> Option<String> {
    let root = err.root_cause().to_string();
    if !root.ends_with("implementation is missing") {
        return None;
    }
    err.chain().find_map(|e| {
        let msg = e.to_string();
        let rest = msg.strip_prefix("component imports ")?;
        let (_, after) = rest.split_once('`')?;
        let (name, _) = after.split_once('`')?;
        Some(name.to_string())
    })
}

/// Marker type for resources of interfaces berth does not implement.
struct Unimplemented;

fn stub_import(
    linker: &mut Linker<InstanceState>,
    engine: &Engine,
    component: &Component,
    name: &str,
) -> Result<()> {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;

    let ty = component.component_type();
    let import = ty
        .get_import(engine, name)
        .ok_or_else(|| anyhow!("no import named `{name}`"))?;
    let trap_fn = |qualified: String| {
        move |_: wasmtime::StoreContextMut<'_, InstanceState>,
              _: wasmtime::component::types::ComponentFunc,
              _: &[wasmtime::component::Val],
              _: &mut [wasmtime::component::Val]|
              -> wasmtime::Result<()> {
            wasmtime::bail!("`{qualified}` is not implemented by berth")
        }
    };
    match import.ty {
        ComponentItem::ComponentFunc(_) => {
            linker.root().func_new(name, trap_fn(name.to_string()))?;
        }
        ComponentItem::ComponentInstance(inst) => {
            let mut instance = linker.instance(name)?;
            for (export, item) in inst.exports(engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(_) => {
                        instance.func_new(export, trap_fn(format!("{name}#{export}")))?;
                    }
                    ComponentItem::Resource(_) => {
                        instance.resource(
                            export,
                            ResourceType::host::<Unimplemented>(),
                            |_, _| Ok(()),
                        )?;
                    }
                    _ => {}
                }
            }
        }
        other => bail!("cannot stub a {other:?} import"),
    }
    Ok(())
}

/// Spin's `strip_forbidden_headers`: a client's `Host` naming a component's internal host
/// (`<id>.spin.internal`) is removed. Returns whether it was.
fn strip_forbidden_headers(req: &mut Request<WasiBody>) -> bool {
    let headers = req.headers_mut();
    // Transport information for this hop only; guests forwarding it would break things.
    headers.remove(http::header::CONNECTION);
    let internal = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| service_chaining_target(host).is_some());
    if internal {
        headers.remove(http::header::HOST);
    }
    internal
}

/// A 400 for a request the host cannot hand to a component, saying why. (Spin closes the
/// connection without an answer.)
fn bad_request(reason: &str) -> Response<WasiBody> {
    let mut r = Response::new(full(format!("bad request: {reason}\n")));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    let headers = r.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Spin's `set_req_uri`: absolute URI from the `Host` header (or the URI's own authority).
fn set_req_uri(req: &mut Request<WasiBody>) -> Result<()> {
    let header_authority = req
        .headers()
        .get(http::header::HOST)
        .map(|h| -> Result<Authority> {
            let s = h.to_str().context("'Host' header is not valid UTF-8")?;
            s.parse()
                .context("'Host' header contains an invalid authority")
        })
        .transpose()?;
    let mut parts = req.uri().clone().into_parts();
    let authority = match (header_authority, parts.authority.take()) {
        (None, None) => bail!("no 'Host' header present in request"),
        (Some(a), None) | (None, Some(a)) => a,
        (Some(a1), Some(a2)) => {
            if a1 != a2 {
                bail!("authority in 'Host' header does not match authority in URI");
            }
            a1
        }
    };
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts)?;
    Ok(())
}

/// The `spin-*` request headers, computed exactly as Spin's `compute_default_headers`.
pub fn spin_headers(
    uri: &Uri,
    host: &str,
    m: &RouteMatch,
    client_addr: SocketAddr,
) -> Vec<(String, String)> {
    let abs_path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let scheme = uri.scheme_str().unwrap_or("http");
    let mut h = vec![
        ("spin-path-info".to_string(), m.path_info.clone()),
        (
            "spin-full-url".to_string(),
            format!("{scheme}://{host}{abs_path}"),
        ),
        ("spin-matched-route".to_string(), m.based_route.clone()),
        ("spin-base-path".to_string(), "/".to_string()),
        ("spin-raw-component-route".to_string(), m.raw_route.clone()),
        (
            "spin-component-route".to_string(),
            m.raw_route_or_prefix().to_string(),
        ),
        ("spin-client-addr".to_string(), client_addr.to_string()),
    ];
    for (name, value) in &m.params {
        // SPIN_PATH_MATCH_<NAME> becomes a header name with `_` -> `-`, lower-cased.
        let key = format!(
            "spin-path-match-{}",
            name.replace('_', "-").to_ascii_lowercase()
        );
        h.push((key, value.clone()));
    }
    h
}

fn prepare_headers(
    req: &mut Request<WasiBody>,
    m: &RouteMatch,
    client_addr: SocketAddr,
) -> Result<()> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .map(|h| h.to_str().map(str::to_string))
        .transpose()
        .context("'Host' header is not valid UTF-8")?
        .unwrap_or_else(|| "localhost".to_string());
    // Spin appends its headers to the client's (it does not replace same-named ones).
    for (name, value) in spin_headers(req.uri(), &host, m, client_addr) {
        let (Ok(name), Ok(value)) = (name.parse::<HeaderName>(), HeaderValue::from_str(&value))
        else {
            continue;
        };
        req.headers_mut().append(name, value);
    }
    Ok(())
}

/// HTTP/2's connection preface, which hyper-util looks for in a connection's first bytes.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits (at most `timeout`) until the connection's first bytes tell HTTP/1 from HTTP/2, as
/// hyper-util's version sniffing will: false if the client sent nothing (or closed) by then.
async fn first_bytes_arrive(stream: &tokio::net::TcpStream, timeout: std::time::Duration) -> bool {
    let sniff = async {
        let mut buf = [0u8; 24];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n == buf.len() || buf[..n] != H2_PREFACE[..n] => return true,
                // Part of the preface: peek would return the same bytes at once, so wait.
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    };
    tokio::time::timeout(timeout, sniff).await.unwrap_or(false)
}

fn log_request(
    method: &http::Method,
    path: &str,
    status: StatusCode,
    component: Option<&str>,
    started: Instant,
    chained_from: Option<&str>,
) {
    let component = component.unwrap_or("-");
    let elapsed = started.elapsed();
    match chained_from {
        Some(caller) => tracing::info!(
            target: "berth::request",
            "{method} {path} {} {component} (chained from {caller}) {:.1}ms",
            status.as_u16(),
            elapsed.as_secs_f64() * 1000.0
        ),
        None => tracing::info!(
            target: "berth::request",
            "{method} {path} {} {component} {:.1}ms",
            status.as_u16(),
            elapsed.as_secs_f64() * 1000.0
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn headers_for(route: &str, path: &str) -> HashMap<String, String> {
        let triggers = vec![crate::manifest::HttpTrigger {
            component: "c".into(),
            route: crate::manifest::Route::Path(route.into()),
        }];
        let router = Router::build(&triggers).unwrap();
        let m = router.route(path.split('?').next().unwrap()).unwrap();
        let uri: Uri = format!("http://example.com{path}").parse().unwrap();
        spin_headers(&uri, "example.com", &m, "127.0.0.1:8777".parse().unwrap())
            .into_iter()
            .collect()
    }

    #[test]
    fn spin_headers_for_wildcard_with_params() {
        let h = headers_for(
            "/base/:path_segment/:path_end/...",
            "/base/path/end/rest?key=value",
        );
        assert_eq!(
            h["spin-full-url"],
            "http://example.com/base/path/end/rest?key=value"
        );
        assert_eq!(h["spin-path-info"], "/rest");
        assert_eq!(h["spin-matched-route"], "/base/:path_segment/:path_end/...");
        assert_eq!(
            h["spin-raw-component-route"],
            "/base/:path_segment/:path_end/..."
        );
        assert_eq!(h["spin-component-route"], "/base/:path_segment/:path_end");
        assert_eq!(h["spin-base-path"], "/");
        assert_eq!(h["spin-client-addr"], "127.0.0.1:8777");
        assert_eq!(h["spin-path-match-path-segment"], "path");
        assert_eq!(h["spin-path-match-path-end"], "end");
        assert_eq!(h.len(), 9);
    }

    #[test]
    fn spin_headers_match_spin_facts_table() {
        let h = headers_for("/api/v1/images/...", "/api/v1/images");
        assert_eq!(h["spin-matched-route"], "/api/v1/images/...");
        assert_eq!(h["spin-path-info"], "");
        assert_eq!(h["spin-component-route"], "/api/v1/images");
        let h = headers_for("/api/v1/images:import", "/api/v1/images:import");
        assert_eq!(h["spin-matched-route"], "/api/v1/images:import");
        assert_eq!(h["spin-path-info"], "");
        assert_eq!(h["spin-component-route"], "/api/v1/images:import");
        let h = headers_for(
            "/api/v1/images:import/...",
            "/api/v1/images:import/bmdpbng/progress",
        );
        assert_eq!(h["spin-path-info"], "/bmdpbng/progress");
        assert_eq!(h["spin-component-route"], "/api/v1/images:import");

        // Service chaining to a private component.
        let m = RouteMatch::synthetic("admin", "/api/v1/images/7");
        let uri: Uri = "http://admin.spin.internal/api/v1/images/7"
            .parse()
            .unwrap();
        let h: HashMap<_, _> = spin_headers(&uri, "localhost", &m, CHAINED_CLIENT_ADDR)
            .into_iter()
            .collect();
        assert_eq!(h["spin-matched-route"], "/...");
        assert_eq!(h["spin-path-info"], "/api/v1/images/7");
        assert_eq!(h["spin-component-route"], "");
        assert_eq!(h["spin-full-url"], "http://localhost/api/v1/images/7");
    }
}

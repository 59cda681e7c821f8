//! berth's bindings to Spin: the domain's `Db` and `Variables` over spin-sdk, request and
//! response conversion, and local service chaining. Components stay a few lines each.

use berth_domain::config::{Context, Settings, Store, Variables};
use berth_domain::db::{Db, DbError, Dialect, Rows, Value};
use berth_domain::envelope::{Api, ApiError};
use berth_domain::http::{Request, Response};
use berth_domain::outbound::{HttpSender, OutboundRequest, OutboundResponse, SendError};
use spin_sdk::http::{self as spin_http, Method};
use spin_sdk::{pg4, sqlite};

/// Spin's SQLite database (`fermyon:spin/sqlite`).
pub struct SpinSqlite(sqlite::Connection);

impl Db for SpinSqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let params: Vec<sqlite::Value> = params.iter().map(to_sqlite).collect();
        let result = self
            .0
            .execute(sql, &params)
            .map_err(|e| DbError::from_message(format!("{e:?}")))?;
        Ok(Rows {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|r| r.values.into_iter().map(from_sqlite).collect())
                .collect(),
        })
    }
}

fn to_sqlite(v: &Value) -> sqlite::Value {
    match v {
        Value::Null => sqlite::Value::Null,
        Value::Integer(i) => sqlite::Value::Integer(*i),
        Value::Real(f) => sqlite::Value::Real(*f),
        Value::Text(s) => sqlite::Value::Text(s.clone()),
        Value::Blob(b) => sqlite::Value::Blob(b.clone()),
    }
}

fn from_sqlite(v: sqlite::Value) -> Value {
    match v {
        sqlite::Value::Null => Value::Null,
        sqlite::Value::Integer(i) => Value::Integer(i),
        sqlite::Value::Real(f) => Value::Real(f),
        sqlite::Value::Text(s) => Value::Text(s),
        sqlite::Value::Blob(b) => Value::Blob(b),
    }
}

/// PostgreSQL through Spin (`spin:postgres/postgres@4.0.0`), for replicas sharing one database.
pub struct SpinPostgres(pg4::Connection);

impl Db for SpinPostgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let sql = berth_domain::db::to_postgres_placeholders(sql);
        let params: Vec<pg4::ParameterValue> = params.iter().map(to_pg).collect();
        let result = self
            .0
            .query(&sql, &params)
            .map_err(|e| DbError::from_message(format!("{e:?}")))?;
        Ok(Rows {
            columns: result.columns.into_iter().map(|c| c.name).collect(),
            rows: result
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(from_pg).collect())
                .collect(),
        })
    }

    /// A statement whose rows are not wanted goes through `execute`: Spin 4.0.2's `query`
    /// never returns for a statement that sends no row description (`BEGIN`, `COMMIT`, ...).
    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        let sql = berth_domain::db::to_postgres_placeholders(sql);
        let params: Vec<pg4::ParameterValue> = params.iter().map(to_pg).collect();
        self.0
            .execute(&sql, &params)
            .map(drop)
            .map_err(|e| DbError::from_message(format!("{e:?}")))
    }
}

fn to_pg(v: &Value) -> pg4::ParameterValue {
    match v {
        Value::Null => pg4::ParameterValue::DbNull,
        Value::Integer(i) => pg4::ParameterValue::Int64(*i),
        Value::Real(f) => pg4::ParameterValue::Floating64(*f),
        Value::Text(s) => pg4::ParameterValue::Str(s.clone()),
        Value::Blob(b) => pg4::ParameterValue::Binary(b.clone()),
    }
}

fn from_pg(v: pg4::DbValue) -> Value {
    use pg4::DbValue as V;
    match v {
        V::DbNull => Value::Null,
        V::Boolean(b) => Value::Integer(b as i64),
        V::Int8(i) => Value::Integer(i as i64),
        V::Int16(i) => Value::Integer(i as i64),
        V::Int32(i) => Value::Integer(i as i64),
        V::Int64(i) => Value::Integer(i),
        V::Floating32(f) => Value::Real(f as f64),
        V::Floating64(f) => Value::Real(f),
        V::Str(s) => Value::Text(s),
        V::Binary(b) => Value::Blob(b),
        other => Value::Text(format!("{other:?}")),
    }
}

/// Spin variables (`fermyon:spin/variables`); names are the component's variables.
pub struct SpinVariables;

impl Variables for SpinVariables {
    fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }
}

/// Opens the store the `store` variable selects.
pub fn open_db() -> Result<Box<dyn Db>, ApiError> {
    let settings = Settings::new(&SpinVariables);
    match settings.store() {
        Store::Sqlite => sqlite::Connection::open_default()
            .map(|c| Box::new(SpinSqlite(c)) as Box<dyn Db>)
            .map_err(|e| ApiError::internal("opening the database", format!("{e:?}"))),
        Store::Postgres => pg4::Connection::open(settings.db_url().expose())
            .map(|c| Box::new(SpinPostgres(c)) as Box<dyn Db>)
            .map_err(|e| {
                ApiError::internal("connecting to PostgreSQL", trim_pg_error(&format!("{e:?}")))
            }),
        Store::Unknown(other) => Err(ApiError::internal(
            "opening the database",
            format!("unknown store '{other}'"),
        )),
    }
}

/// Spin's PostgreSQL errors carry a long `<unknown>` stack trace: keep the first line.
fn trim_pg_error(e: &str) -> String {
    e.lines().next().unwrap_or(e).to_owned()
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.to_ascii_uppercase(),
    }
}

fn method_from_name(m: &str) -> Method {
    match m {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    }
}

pub fn to_domain(req: spin_http::Request) -> Request {
    let headers = req
        .headers()
        .map(|(n, v)| {
            (
                n.to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Request {
        method: method_name(req.method()),
        path: req.path().to_owned(),
        query: req.query().to_owned(),
        headers,
        body: req.into_body(),
    }
}

pub fn from_domain(res: Response) -> spin_http::Response {
    let mut builder = spin_http::Response::builder();
    builder.status(res.status);
    for (name, value) in res.headers {
        builder.header(name, value);
    }
    builder.body(res.body).build()
}

/// The database for a request, or the error response to send.
pub fn open_db_for(req: &Request) -> Result<Box<dyn Db>, Response> {
    open_db().map_err(|e| e.into_response(Api::for_path(&req.path)))
}

/// The context a domain handler runs in: this request's database, variables and clock.
pub fn context(db: &dyn Db) -> Context<'_> {
    Context {
        db,
        settings: Settings::new(&SpinVariables),
        now: now_unix(),
    }
}

/// The current time, Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Forwards a request to another component of the app through Spin's local service
/// chaining (`http://<component>.spin.internal`), no network hop involved.
pub async fn forward(component: &str, req: &Request) -> Response {
    let mut url = format!("http://{component}.spin.internal{}", req.path);
    if !req.query.is_empty() {
        url.push('?');
        url.push_str(&req.query);
    }
    let Some(method) = write_method(&req.method) else {
        return ApiError::method_not_allowed(&req.method, "GET, POST, PUT, PATCH, DELETE")
            .into_response(Api::for_path(&req.path));
    };
    let mut outgoing = OutboundRequest::new(method, url);
    // Spin sets its own spin-* headers on the chained request; `host` names the target.
    for (name, value) in &req.headers {
        if !name.starts_with("spin-") && !name.eq_ignore_ascii_case("host") {
            outgoing.headers.push((name.clone(), value.clone()));
        }
    }
    outgoing.body = req.body.clone();
    match SpinHttp.send(outgoing).await {
        Ok(res) => Response {
            status: res.status,
            headers: res.headers,
            body: res.body,
        },
        Err(e) => ApiError::internal(&format!("forwarding to the {component} component"), e)
            .into_response(Api::for_path(&req.path)),
    }
}

/// The write methods that are forwarded.
pub fn write_method(method: &str) -> Option<&'static str> {
    ["POST", "PUT", "PATCH", "DELETE"]
        .into_iter()
        .find(|m| *m == method)
}

/// Outbound HTTP through Spin (`wasi:http`), limited by the component's `allowed_outbound_hosts`.
pub struct SpinHttp;

impl HttpSender for SpinHttp {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, SendError> {
        let mut builder = spin_http::Request::builder();
        builder
            .method(method_from_name(request.method))
            .uri(request.url.as_str());
        for (name, value) in &request.headers {
            builder.header(name.as_str(), value.as_str());
        }
        let outgoing = builder.body(request.body).build();
        let response: spin_http::Response = spin_http::send(outgoing)
            .await
            .map_err(|e| SendError(e.to_string()))?;
        Ok(OutboundResponse {
            status: *response.status(),
            headers: response
                .headers()
                .map(|(n, v)| {
                    (
                        n.to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: response.into_body(),
        })
    }
}

/// Defines a component's HTTP entry point that runs `$handler` (an async domain handler
/// taking the request, its context and an HTTP sender) on this request's database. With
/// `forward = $forward`, a request `$forward` names another component for is passed to that
/// component instead.
#[macro_export]
macro_rules! serve_with {
    ($handler:path) => {
        #[spin_sdk::http_component]
        async fn handle(req: spin_sdk::http::Request) -> spin_sdk::http::Response {
            let req = $crate::to_domain(req);
            let res = match $crate::open_db_for(&req) {
                Ok(db) => $handler(&req, &$crate::context(db.as_ref()), $crate::SpinHttp).await,
                Err(res) => res,
            };
            $crate::from_domain(res)
        }
    };
    ($handler:path, forward = $forward:path) => {
        #[spin_sdk::http_component]
        async fn handle(req: spin_sdk::http::Request) -> spin_sdk::http::Response {
            let req = $crate::to_domain(req);
            let res = match $forward(&req) {
                Some(component) => $crate::forward(component, &req).await,
                None => match $crate::open_db_for(&req) {
                    Ok(db) => $handler(&req, &$crate::context(db.as_ref()), $crate::SpinHttp).await,
                    Err(res) => res,
                },
            };
            $crate::from_domain(res)
        }
    };
}

//! Times the catalog's list handler natively (no wasm, no HTTP) on a benchmark database, for
//! `perf` and before/after comparisons of the domain's SQL and views:
//!
//!     cargo run --release -p berth-domain --example profile_list -- \
//!         target/bench/n100000/sqlite_db.db 'page_size=20&orderBy=created_at&order=desc' 2000
//!
//! With `TRACE=1` it prints each statement of one request, its parameters and its time.
//! A second argument starting with `/` is a path instead (e.g. `/api/v1/images/5`), and
//! `INM=<tag>` sends it as `If-None-Match`.

use berth_domain::auth::{Claims, Role, issue_token};
use berth_domain::config::{Context, Settings};
use berth_domain::db::native::SqliteDb;
use berth_domain::http::Request;
use berth_domain::outbound::{HttpSender, OutboundRequest, OutboundResponse, SendError};
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskCx, Poll, Waker};

struct NoSend;
impl HttpSender for NoSend {
    async fn send(&self, _r: OutboundRequest) -> Result<OutboundResponse, SendError> {
        Err(SendError("no".into()))
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = TaskCx::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let db_path = &args[1];
    let query = args
        .get(2)
        .cloned()
        .unwrap_or("page_size=20&orderBy=created_at&order=desc&page=1".into());
    let n: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(2000);
    let conn = rusqlite::Connection::open(db_path).unwrap();
    conn.set_prepared_statement_cache_capacity(256);
    let db = SqliteDb(conn);
    let mut vars = HashMap::new();
    // No Harbor: unset, harbor_url would be spin.toml's default.
    vars.insert("harbor_url", "");
    vars.insert("jwt_secret", "s3cret");
    let now = 1_800_000_000i64;
    let token = issue_token(
        "s3cret",
        &Claims {
            sub: "owner-7".into(),
            role: Role::User,
            exp: now + 3600,
        },
    );
    let (path, query) = match query.strip_prefix('/') {
        Some(_) => {
            let (p, q) = query.split_once('?').unwrap_or((&query, ""));
            (p.to_owned(), q.to_owned())
        }
        None => ("/api/v1/images".to_owned(), query),
    };
    let mut headers = vec![("authorization".into(), format!("Bearer {token}"))];
    if let Ok(tag) = std::env::var("INM") {
        headers.push(("if-none-match".into(), tag));
    }
    let req = Request {
        method: "GET".into(),
        path,
        query,
        headers,
        body: vec![],
    };
    if std::env::var("TRACE").is_ok() {
        let t = Tracing(&db);
        let ctx = Context {
            db: &t,
            settings: Settings::new(&vars),
            now,
        };
        block_on(berth_domain::api::catalog::handle(&req, &ctx, NoSend));
        let r = block_on(berth_domain::api::catalog::handle(&req, &ctx, NoSend));
        eprintln!("status {} etag {:?}", r.status, r.header("etag"));
        return;
    }
    let ctx = Context {
        db: &db,
        settings: Settings::new(&vars),
        now,
    };
    let r = block_on(berth_domain::api::catalog::handle(&req, &ctx, NoSend));
    eprintln!("status {} body {} bytes", r.status, r.body.len());
    let t = std::time::Instant::now();
    for _ in 0..n {
        let r = block_on(berth_domain::api::catalog::handle(&req, &ctx, NoSend));
        assert!(r.status == 200 || r.status == 304);
    }
    eprintln!(
        "{:.1} us/request",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

/// Logs every statement with its time.
pub struct Tracing<'a>(pub &'a dyn berth_domain::db::Db);
impl berth_domain::db::Db for Tracing<'_> {
    fn dialect(&self) -> berth_domain::db::Dialect {
        self.0.dialect()
    }
    fn query(
        &self,
        sql: &str,
        params: &[berth_domain::db::Value],
    ) -> Result<berth_domain::db::Rows, berth_domain::db::DbError> {
        let t = std::time::Instant::now();
        let r = self.0.query(sql, params);
        eprintln!(
            "--- {:?} rows={:?} {:.0}us\n{}\n{:?}",
            t.elapsed(),
            r.as_ref().map(|r| r.rows.len()).ok(),
            t.elapsed().as_secs_f64() * 1e6,
            sql,
            params
        );
        r
    }
}

//! In-process handler tests: each component's entry point over a fresh, migrated SQLite
//! database and the scripted fake Harbor (which also plays the build runner), without
//! building the `.wasm` files.
//!
//! The `call_*` helpers are the one place that names the components' entry points.

mod admin;
mod builds;
mod imports;
mod registries;

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use crate::auth::{Claims, Role, issue_token};
use crate::config::{Context, Settings, Variables};
use crate::db::native::SqliteDb;
use crate::db::{Db, Value as DbValue};
pub use crate::harbor::fake::{FakeHarbor, block_on, body_json, created, error, json, page};
use crate::http::{Request, Response};

pub const JWT_SECRET: &str = "test-jwt-secret";
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const WORKER_TOKEN: &str = "test-worker-token";
pub const RUNNER_URL: &str = "http://runner.test";
pub const RUNNER_SECRET: &str = "test-runner-secret";
pub const RUNNER_TOKEN: &str = "test-runner-token";
/// Harbor's registry host: `harbor_url`'s host.
pub const REGISTRY_HOST: &str = "harbor.test";

/// Variables a test may change between requests.
#[derive(Default)]
pub struct TestVariables(RefCell<HashMap<&'static str, String>>);

impl Variables for TestVariables {
    fn get(&self, name: &str) -> Option<String> {
        self.0.borrow().get(name).cloned()
    }
}

/// berth over an in-memory SQLite database, with the variables a deployment sets.
pub struct TestApp {
    pub db: SqliteDb,
    vars: TestVariables,
}

/// A handler's answer, its body parsed.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub response: Response,
}

impl Reply {
    fn from(response: Response) -> Reply {
        Reply {
            status: response.status,
            body: response.body_json(),
            response,
        }
    }

    /// The error (or success) message of either envelope.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

impl TestApp {
    pub fn new() -> TestApp {
        let app = TestApp {
            db: SqliteDb::open_in_memory(),
            vars: TestVariables::default(),
        };
        for (name, value) in [
            ("jwt_secret", JWT_SECRET),
            ("harbor_url", crate::harbor::fake::BASE_URL),
            ("harbor_username", "robot$catalog-svc"),
            ("harbor_password", crate::harbor::fake::PASSWORD),
            ("harbor_webhook_secret", WEBHOOK_SECRET),
            ("worker_token", WORKER_TOKEN),
            ("registry_secret_key", "test-registry-secret-key"),
            ("runner_url", RUNNER_URL),
            ("runner_secret", RUNNER_SECRET),
            ("runner_token", RUNNER_TOKEN),
            ("public_url", "http://berth.test"),
        ] {
            app.set(name, value);
        }
        crate::migrations::ensure_for(&app.context()).expect("migrations run");
        app
    }

    /// Sets a variable for the next requests.
    pub fn set(&self, name: &'static str, value: &str) {
        self.vars.0.borrow_mut().insert(name, value.to_owned());
    }

    /// A request's context: settings are read afresh, as in a component.
    pub fn context(&self) -> Context<'_> {
        Context {
            db: &self.db,
            settings: Settings::new(&self.vars),
            now: chrono::Utc::now().timestamp(),
        }
    }

    pub fn call_catalog(&self, req: Request, harbor: &FakeHarbor) -> Reply {
        Reply::from(block_on(crate::api::catalog::handle(
            &req,
            &self.context(),
            harbor,
        )))
    }

    pub fn call_admin(&self, req: Request, harbor: &FakeHarbor) -> Reply {
        Reply::from(block_on(crate::api::admin::handle(
            &req,
            &self.context(),
            harbor,
        )))
    }

    pub fn call_importer(&self, req: Request, harbor: &FakeHarbor) -> Reply {
        Reply::from(block_on(crate::api::importer::handle(
            &req,
            &self.context(),
            harbor,
        )))
    }

    pub fn call_progress(&self, req: Request, harbor: &FakeHarbor) -> Reply {
        Reply::from(block_on(crate::api::progress::handle(
            &req,
            &self.context(),
            harbor,
        )))
    }

    /// One text column of the first row of `sql`.
    pub fn text(&self, sql: &str, params: &[DbValue]) -> Option<String> {
        let rows = self.db.query(sql, params).expect("query runs");
        rows.rows.first().and_then(|r| match r.first() {
            Some(DbValue::Text(s)) => Some(s.clone()),
            Some(DbValue::Integer(i)) => Some(i.to_string()),
            _ => None,
        })
    }
}

/// A bearer token for `name`.
pub fn token(name: &str, role: Role) -> String {
    issue_token(
        JWT_SECRET,
        &Claims {
            sub: name.to_owned(),
            role,
            exp: chrono::Utc::now().timestamp() + 3600,
        },
    )
}

pub fn admin() -> String {
    token("root", Role::Admin)
}

pub fn user(name: &str) -> String {
    token(name, Role::User)
}

/// A request with a bearer token and, when given, a JSON body.
pub fn request(method: &str, path: &str, bearer: &str, body: Option<Value>) -> Request {
    let mut req =
        Request::new(method, path).with_header("authorization", &format!("Bearer {bearer}"));
    if let Some(body) = body {
        req = req
            .with_header("content-type", "application/json")
            .with_body(serde_json::to_vec(&body).unwrap());
    }
    req
}

/// A Harbor webhook delivery.
pub fn webhook(event: Value) -> Request {
    request("POST", "/api/v1/hooks/harbor", WEBHOOK_SECRET, Some(event))
}

/// `sha256:<c × 64>`.
pub fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// Harbor's answer for a single-platform artifact `repository:tag`.
pub fn artifact(repository: &str, tag: &str, digest: &str) -> Value {
    serde_json::json!({
        "id": 10, "type": "IMAGE", "digest": digest, "size": 71234567,
        "media_type": "application/vnd.oci.image.config.v1+json",
        "manifest_media_type": "application/vnd.oci.image.manifest.v1+json",
        "repository_name": repository,
        "push_time": "2025-01-10T08:01:40.000Z",
        "extra_attrs": {"architecture": "amd64", "os": "linux"},
        "tags": [{"id": 7, "name": tag, "push_time": "2025-01-10T08:01:40.000Z", "immutable": false}]
    })
}

/// The scripted answers to berth reading an artifact it will make ready: the artifact, then
/// its details and layers (not found: both optional).
pub fn artifact_read(harbor: FakeHarbor, repository: &str, tag: &str, digest: &str) -> FakeHarbor {
    harbor
        .then(json(200, artifact(repository, tag, digest)))
        .then(error(404, "NOT_FOUND", "no details"))
        .then(error(404, "NOT_FOUND", "no manifest"))
}

//! Settings: spin.toml's `[variables]`, typed and read in one place, and the context a
//! handler runs in.
//!
//! Spin reads each variable through a host call, so nothing is read before it is needed:
//! each variable at most once per [`Settings`] (one per request), and each group (Harbor,
//! the runner, tokens) parsed on first use. A catalog read that only authenticates its caller
//! reads four variables, not thirty.
//!
//! A new setting: its entry in spin.toml's `[variables]` (and in the `[component.*.variables]`
//! of the components that read it), the same name and default in [`VARIABLES`], and a
//! typed accessor on [`Settings`] (or a field of its group).

use std::cell::OnceCell;
use std::fmt;

use crate::auth::TokenPolicy;
use crate::db::Db;
use crate::envelope::ApiError;
use crate::harbor::{HarborClient, HarborConfig};
use crate::image_facts::severity_rank;
use crate::image_ref::ImageRef;
use crate::outbound::HttpSender;

/// Where settings come from: Spin variables in a component, a map in tests.
pub trait Variables {
    fn get(&self, name: &str) -> Option<String>;
}

impl Variables for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).map(|v| v.to_string())
    }
}

/// What a handler needs besides the request: the database, settings and the clock.
pub struct Context<'a> {
    pub db: &'a dyn Db,
    pub settings: Settings<'a>,
    /// Unix seconds.
    pub now: i64,
}

/// One of spin.toml's `[variables]`.
pub struct Variable {
    pub name: &'static str,
    /// What an unset variable is (a component sees only the variables it declares). A
    /// number that does not parse is this too.
    pub default: &'static str,
    /// Read only as a [`Secret`].
    pub secret: bool,
}

const fn var(name: &'static str, default: &'static str) -> Variable {
    Variable {
        name,
        default,
        secret: false,
    }
}

const fn secret(name: &'static str) -> Variable {
    Variable {
        name,
        default: "",
        secret: true,
    }
}

/// spin.toml's `[variables]`, with the same defaults (a unit test compares them).
pub const VARIABLES: &[Variable] = &[
    secret("jwt_secret"),
    var("jwt_max_lifetime_seconds", "2592000"),
    var("jwt_audience", ""),
    var("jwt_issuer", ""),
    var("harbor_url", "http://127.0.0.1:8099"),
    var("harbor_registry_host", ""),
    var("harbor_username", "admin"),
    secret("harbor_password"),
    var("harbor_project", "catalog"),
    secret("harbor_webhook_secret"),
    secret("worker_token"),
    secret("registry_secret_key"),
    var(
        "source_registries",
        "docker.io,nvcr.io,quay.io,ghcr.io,registry.k8s.io",
    ),
    var("import_deadline_seconds", "3600"),
    var("import_failure_confirm_seconds", "150"),
    var("import_require_clean_scan", "false"),
    var("import_reconcile_after_seconds", "5"),
    var("import_redrive_after_seconds", "30"),
    var("sweep_interval_seconds", "30"),
    var("runner_url", "http://127.0.0.1:8099"),
    secret("runner_secret"),
    secret("runner_token"),
    var("build_deadline_seconds", "3600"),
    var("public_url", "http://127.0.0.1:3000"),
    var("webhook_url", ""),
    var("allow_user_images", "false"),
    var("store", "sqlite"),
    // Not secret in spin.toml, but a PostgreSQL URL may carry a password.
    Variable {
        name: "db_url",
        default: "",
        secret: true,
    },
    var("db_host", "127.0.0.1"),
    var("db_port", "5432"),
    var("portal_demo_user", ""),
];

/// A secret setting. `Debug` shows that it is set, never its value: ask for it with
/// [`Secret::expose`] where it is used.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(unset)"
        } else {
            "Secret(*****)"
        })
    }
}

/// How callers' bearer tokens are checked (`jwt_*`).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub jwt_secret: Secret,
    pub token_policy: TokenPolicy,
}

/// Settings of everything that talks to Harbor (`harbor_*`, `import_*`, `source_registries`,
/// `webhook_url`).
#[derive(Debug, Clone)]
pub struct HarborSettings {
    pub harbor: HarborConfig,
    /// The registry host users pull imported images from (default: `harbor_url`'s host).
    pub registry_host: String,
    pub allowed_sources: Vec<String>,
    pub deadline_seconds: i64,
    /// How long a `Failed` execution must stay failed before berth believes it.
    pub confirm_failure_seconds: i64,
    /// A reader asks Harbor itself when nothing was heard for this long.
    pub reconcile_after_seconds: i64,
    /// An import claimed but never handed to Harbor (no execution id: the host stopped in
    /// between) is driven again after this long.
    pub redrive_after_seconds: i64,
    /// What a finished scan must show before an import is ready.
    pub require_clean_scan: ScanRequirement,
    /// Where Harbor should send webhooks (empty: don't manage the webhook policy).
    pub webhook_url: String,
    pub webhook_secret: Secret,
}

impl HarborSettings {
    pub fn client<S: HttpSender>(&self, sender: S) -> HarborClient<S> {
        HarborClient::new(sender, self.harbor.clone())
    }

    /// Where `source` lands: (registry host, repository with project, tag). The source
    /// registry is part of the path: `quay.io/x/y:1` and `docker.io/x/y:1` are different
    /// images.
    pub(crate) fn destination(&self, source: &ImageRef) -> (String, String, String) {
        (
            self.registry_host.clone(),
            format!("{}/{}", self.dest_namespace(source), source.repository),
            source.tag.clone(),
        )
    }

    /// The Harbor namespace an import of `source` replicates into: `catalog/docker.io`.
    pub(crate) fn dest_namespace(&self, source: &ImageRef) -> String {
        format!(
            "{}/{}",
            self.harbor.project,
            registry_path_component(&source.registry)
        )
    }

    /// Whether `reference` is in berth's own Harbor project (only imports and builds may
    /// be there).
    pub fn is_reserved(&self, reference: &ImageRef) -> bool {
        reference.registry.eq_ignore_ascii_case(&self.registry_host)
            && reference
                .repository
                .split('/')
                .next()
                .is_some_and(|p| p == self.harbor.project)
    }
}

/// A registry host as one repository path component, injectively: lowercase, and the port's
/// `:` as `_` (a host never has `_`). `registry.example.com:5000` → `registry.example.com_5000`.
pub fn registry_path_component(registry: &str) -> String {
    registry.to_ascii_lowercase().replace(':', "_")
}

/// Where builds go and how berth and the runner trust each other (`runner_*`, `public_url`,
/// `build_deadline_seconds`).
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Without a trailing slash; empty: no runner is configured.
    pub url: String,
    pub secret: Secret,
    pub token: Secret,
    /// berth's own URL, without a trailing slash, for the runner's callbacks.
    pub public_url: String,
    pub deadline_seconds: i64,
}

/// The `import_require_clean_scan` variable: `false` (default), `true` (no vulnerability
/// at all), or a severity (`medium`: nothing above it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanRequirement {
    None,
    AtMost(i64),
}

impl ScanRequirement {
    pub fn parse(value: &str) -> ScanRequirement {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "false" | "no" | "0" => ScanRequirement::None,
            "true" | "yes" | "1" => ScanRequirement::AtMost(0),
            other => ScanRequirement::AtMost(severity_rank(other).unwrap_or(0)),
        }
    }
}

/// Which database the components open (`store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
    Unknown(String),
}

/// The settings of one request, read from its [`Variables`] on first use.
pub struct Settings<'a> {
    vars: &'a dyn Variables,
    /// Each variable's value, by its index in [`VARIABLES`].
    values: [OnceCell<String>; VARIABLES.len()],
    auth: OnceCell<AuthSettings>,
    registry_host: OnceCell<Option<String>>,
    harbor: OnceCell<Option<HarborSettings>>,
    runner: OnceCell<RunnerSettings>,
}

impl<'a> Settings<'a> {
    pub fn new(vars: &'a dyn Variables) -> Settings<'a> {
        Settings {
            vars,
            values: [const { OnceCell::new() }; VARIABLES.len()],
            auth: OnceCell::new(),
            registry_host: OnceCell::new(),
            harbor: OnceCell::new(),
            runner: OnceCell::new(),
        }
    }

    /// A variable as given, or its default when unset.
    fn raw(&self, name: &str) -> &str {
        let Some(index) = VARIABLES.iter().position(|v| v.name == name) else {
            // A bug the unit tests catch (they run in the release profile too).
            if cfg!(test) {
                panic!("'{name}' is not one of spin.toml's [variables]");
            }
            return "";
        };
        self.values[index].get_or_init(|| {
            self.vars
                .get(name)
                .unwrap_or_else(|| VARIABLES[index].default.to_owned())
        })
    }

    fn default_of(name: &str) -> &'static str {
        VARIABLES
            .iter()
            .find(|v| v.name == name)
            .map_or("", |v| v.default)
    }

    /// A trimmed value.
    fn text(&self, name: &str) -> &str {
        assert!(!cfg!(test) || !is_secret(name), "read '{name}' as a secret");
        self.raw(name).trim()
    }

    /// A URL without surrounding blanks and trailing slashes.
    fn base_url(&self, name: &str) -> String {
        self.text(name).trim_end_matches('/').to_owned()
    }

    fn secret(&self, name: &str) -> Secret {
        assert!(!cfg!(test) || is_secret(name), "'{name}' is not a secret");
        Secret(self.raw(name).to_owned())
    }

    /// An integer; the default when it does not parse.
    fn integer(&self, name: &str) -> i64 {
        self.text(name)
            .parse()
            .or_else(|_| Self::default_of(name).parse())
            .unwrap_or_default()
    }

    /// `true` exactly; anything else is false.
    fn flag(&self, name: &str) -> bool {
        self.text(name) == "true"
    }

    /// `jwt_secret` and the token policy (`jwt_max_lifetime_seconds`, `jwt_audience`,
    /// `jwt_issuer`).
    pub fn auth(&self) -> &AuthSettings {
        self.auth.get_or_init(|| {
            let optional = |name: &str| Some(self.text(name).to_owned()).filter(|v| !v.is_empty());
            AuthSettings {
                jwt_secret: self.jwt_secret(),
                token_policy: TokenPolicy {
                    max_lifetime_seconds: self.integer("jwt_max_lifetime_seconds"),
                    audience: optional("jwt_audience"),
                    issuer: optional("jwt_issuer"),
                },
            }
        })
    }

    /// `jwt_secret` alone, for what signs tokens and checks none (the portal).
    pub fn jwt_secret(&self) -> Secret {
        self.secret("jwt_secret")
    }

    /// The registry host users pull Harbor's images from: `harbor_registry_host`, else
    /// `harbor_url`'s host; `None` when no Harbor is configured.
    pub fn registry_host(&self) -> Option<&str> {
        self.registry_host
            .get_or_init(|| {
                match self.text("harbor_registry_host") {
                    "" => {}
                    h => return Some(h.to_owned()),
                }
                let base_url = self.base_url("harbor_url");
                let host = base_url
                    .split("://")
                    .nth(1)
                    .unwrap_or(&base_url)
                    .split('/')
                    .next()
                    .unwrap_or_default();
                (!host.is_empty()).then(|| host.to_owned())
            })
            .as_deref()
    }

    /// Everything that talks to Harbor; 503 when no Harbor is configured.
    pub fn harbor(&self) -> Result<&HarborSettings, ApiError> {
        self.harbor
            .get_or_init(|| {
                let base_url = self.base_url("harbor_url");
                if base_url.is_empty() {
                    return None;
                }
                let project = match self.text("harbor_project") {
                    "" => Self::default_of("harbor_project"),
                    p => p,
                };
                Some(HarborSettings {
                    harbor: HarborConfig {
                        base_url,
                        // As given: a username or password may start or end with a blank.
                        username: self.raw("harbor_username").to_owned(),
                        password: self.secret("harbor_password").expose().to_owned(),
                        project: project.to_owned(),
                    },
                    registry_host: self.registry_host().unwrap_or_default().to_owned(),
                    allowed_sources: self.source_registries(),
                    deadline_seconds: self.integer("import_deadline_seconds").max(1),
                    confirm_failure_seconds: self.integer("import_failure_confirm_seconds").max(0),
                    reconcile_after_seconds: self.import_reconcile_after_seconds(),
                    redrive_after_seconds: self.integer("import_redrive_after_seconds").max(0),
                    require_clean_scan: ScanRequirement::parse(
                        self.text("import_require_clean_scan"),
                    ),
                    webhook_url: self.text("webhook_url").to_owned(),
                    webhook_secret: self.harbor_webhook_secret(),
                })
            })
            .as_ref()
            .ok_or_else(|| {
                ApiError::new(503, "no Harbor is configured (set the harbor_url variable)")
            })
    }

    /// `source_registries`: the registries imports (and builds' bases) may come from,
    /// lowercase.
    pub fn source_registries(&self) -> Vec<String> {
        self.text("source_registries")
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// A reader asks Harbor itself about an import or build when nothing was heard for this
    /// long (`import_reconcile_after_seconds`), with or without a Harbor configured.
    pub fn import_reconcile_after_seconds(&self) -> i64 {
        self.integer("import_reconcile_after_seconds").max(0)
    }

    /// Harbor's webhooks carry `Authorization: Bearer <harbor_webhook_secret>`.
    pub fn harbor_webhook_secret(&self) -> Secret {
        self.secret("harbor_webhook_secret")
    }

    fn runner_settings(&self) -> &RunnerSettings {
        self.runner.get_or_init(|| RunnerSettings {
            url: self.base_url("runner_url"),
            secret: self.secret("runner_secret"),
            token: self.secret("runner_token"),
            public_url: self.base_url("public_url"),
            deadline_seconds: self.integer("build_deadline_seconds").max(1),
        })
    }

    /// The build runner; 503 when none is configured.
    pub fn runner(&self) -> Result<&RunnerSettings, ApiError> {
        let runner = self.runner_settings();
        if runner.url.is_empty() {
            return Err(ApiError::new(
                503,
                "no build runner is configured (set the runner_url variable)",
            ));
        }
        Ok(runner)
    }

    /// The runner's status callbacks carry `Bearer <runner_token>` (a runner URL or not).
    pub fn runner_token(&self) -> &Secret {
        &self.runner_settings().token
    }

    /// The sync workers' callbacks and the sweep carry `Bearer <worker_token>`.
    pub fn worker_token(&self) -> Secret {
        self.secret("worker_token")
    }

    /// Seals source-registry passwords at rest.
    pub fn registry_secret_key(&self) -> Secret {
        self.secret("registry_secret_key")
    }

    /// Whether users (not only admins) may register their own private images.
    pub fn allow_user_images(&self) -> bool {
        self.flag("allow_user_images")
    }

    /// How often the sweep runs (the host's or a scheduler's timer, not a component's).
    pub fn sweep_interval_seconds(&self) -> u64 {
        let seconds = self.integer("sweep_interval_seconds");
        u64::try_from(seconds).unwrap_or_else(|_| {
            Self::default_of("sweep_interval_seconds")
                .parse()
                .unwrap_or_default()
        })
    }

    /// The user the portal signs in as by itself; empty: none.
    pub fn portal_demo_user(&self) -> &str {
        self.text("portal_demo_user")
    }

    /// The database the components open (read on every request: one variable).
    pub fn store(&self) -> Store {
        // As given: ` sqlite` is not a store.
        match self.raw("store") {
            "sqlite" | "" => Store::Sqlite,
            "postgres" => Store::Postgres,
            other => Store::Unknown(other.to_owned()),
        }
    }

    /// The PostgreSQL connection URL, with `store = postgres`.
    pub fn db_url(&self) -> Secret {
        self.secret("db_url")
    }

    /// The PostgreSQL server, for `allowed_outbound_hosts` (the components use `db_url`).
    pub fn db_host(&self) -> &str {
        self.text("db_host")
    }

    pub fn db_port(&self) -> u16 {
        let port = self.integer("db_port");
        u16::try_from(port)
            .unwrap_or_else(|_| Self::default_of("db_port").parse().unwrap_or_default())
    }
}

fn is_secret(name: &str) -> bool {
    VARIABLES.iter().any(|v| v.name == name && v.secret)
}

#[cfg(test)]
mod tests;

//! Settings, read in one place from Spin variables, and the context a handler runs in.

use crate::db::Db;
use crate::envelope::ApiError;
use crate::harbor::{HarborClient, HarborConfig};
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
    pub vars: &'a dyn Variables,
    /// Unix seconds.
    pub now: i64,
}

impl Context<'_> {
    /// A setting, empty when unset.
    pub fn var(&self, name: &str) -> String {
        self.vars.get(name).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// Harbor

/// Settings of everything that talks to Harbor, from the component's variables.
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
    /// Where Harbor should send webhooks (empty: don't manage the webhook policy).
    pub webhook_url: String,
    pub webhook_secret: String,
}

fn number(ctx: &Context<'_>, name: &str, default: i64) -> i64 {
    ctx.var(name).trim().parse().unwrap_or(default)
}

/// The registry host users pull Harbor's images from: `harbor_registry_host`, else
/// `harbor_url`'s host; `None` when no Harbor is configured.
pub fn registry_host(ctx: &Context<'_>) -> Option<String> {
    match ctx.var("harbor_registry_host").trim() {
        "" => {}
        h => return Some(h.to_owned()),
    }
    let base_url = ctx.var("harbor_url");
    let base_url = base_url.trim().trim_end_matches('/');
    let host = base_url
        .split("://")
        .nth(1)
        .unwrap_or(base_url)
        .split('/')
        .next()
        .unwrap_or_default();
    (!host.is_empty()).then(|| host.to_owned())
}

impl HarborSettings {
    /// 503 when no Harbor is configured.
    pub fn from_context(ctx: &Context<'_>) -> Result<HarborSettings, ApiError> {
        let base_url = ctx
            .var("harbor_url")
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if base_url.is_empty() {
            return Err(ApiError::new(
                503,
                "no Harbor is configured (set the harbor_url variable)",
            ));
        }
        let registry_host = registry_host(ctx).unwrap_or_default();
        let project = match ctx.var("harbor_project").trim() {
            "" => "catalog".to_owned(),
            p => p.to_owned(),
        };
        Ok(HarborSettings {
            harbor: HarborConfig {
                base_url,
                username: ctx.var("harbor_username"),
                password: ctx.var("harbor_password"),
                project,
            },
            registry_host,
            allowed_sources: ctx
                .var("source_registries")
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            deadline_seconds: number(ctx, "import_deadline_seconds", 3600).max(1),
            confirm_failure_seconds: number(ctx, "import_failure_confirm_seconds", 150).max(0),
            reconcile_after_seconds: number(ctx, "import_reconcile_after_seconds", 5).max(0),
            redrive_after_seconds: number(ctx, "import_redrive_after_seconds", 30).max(0),
            webhook_url: ctx.var("webhook_url").trim().to_owned(),
            webhook_secret: ctx.var("harbor_webhook_secret"),
        })
    }

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

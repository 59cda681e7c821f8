//! Source registries (`/api/v1/registries`): the registries imports pull from, with the
//! credentials an admin gives them (Docker Hub accounts against its pull limits, NGC API
//! keys, private registries). Each becomes a Harbor registry endpoint. Passwords are
//! stored for Harbor's sake only, sealed under `registry_secret_key` ([`crate::sealed`]),
//! opened only to be sent to Harbor: never returned, never logged. Usernames are shown to
//! admins only.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::config::Context;
use crate::db::{DbError, with_write_tx};
use crate::envelope::{Api, ApiError};
use crate::harbor::SourceRegistry;
use crate::http::{Request, Response};
use crate::image_ref::ImageRef;
use crate::outbound::HttpSender;
use crate::request::{json_body, parse_id};
use crate::sealed::{self, SealingKey};
use crate::store::registries::{self as store, RegistryFields, RegistryRow};
use crate::time;

/// Harbor adapter types berth lets admins use (CONTRACT §2.1).
const KINDS: &[&str] = &[
    "docker-hub",
    "docker-registry",
    "harbor",
    "quay",
    "github-ghcr",
    "google-gcr",
    "aws-ecr",
    "azure-acr",
    "gitlab",
    "jfrog-artifactory",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryBody {
    name: Option<String>,
    host: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// What the API shows of a registry, and the Harbor endpoint it becomes (the password
/// is opened only here).
trait Registry {
    fn view(&self, caller: &Caller) -> Value;
    fn source(&self, key: &SealingKey) -> Result<SourceRegistry, ApiError>;
}

impl Registry for RegistryRow {
    /// What the API shows: never the password; the credential's facts to admins only.
    fn view(&self, caller: &Caller) -> Value {
        let mut view = json!({
            "id": self.id,
            "name": self.name,
            "host": self.host,
            "type": self.kind,
            "url": self.url,
            "harbor_registry_id": self.harbor_registry_id,
            "created_at": time::to_seconds_precision(&self.created_at),
            "updated_at": time::to_seconds_precision(&self.updated_at),
        });
        if caller.is_admin() {
            view["username"] = json!(self.username);
            view["has_password"] = json!(self.password.as_deref().is_some_and(|p| !p.is_empty()));
        }
        view
    }

    /// The Harbor endpoint for this registry, its password opened: the one place it is.
    /// Credentials get a name of their own that changes with them, so a rotated secret makes
    /// a new endpoint rather than reusing one whose (masked) secret cannot be checked.
    fn source(&self, key: &SealingKey) -> Result<SourceRegistry, ApiError> {
        let base = SourceRegistry {
            kind: self.kind.clone(),
            url: self.url.clone(),
            name: self.host.clone(),
            credential: None,
        };
        let password = match &self.password {
            Some(stored) => Some(key.open(stored, &self.host).map_err(|e| {
                ApiError::internal(
                    &format!("opening the password of registry {}", self.host),
                    e,
                )
            })?),
            None => None,
        };
        Ok(match (&self.username, password) {
            (Some(user), Some(pass)) if !user.is_empty() => {
                use sha2::{Digest, Sha256};
                let hash = Sha256::new()
                    .chain_update(user.as_bytes())
                    .chain_update([0])
                    .chain_update(pass.as_bytes())
                    .finalize();
                let stamp: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();

                let name: String = format!(
                    "berth-{}-{}-{stamp}",
                    self.host.replace([':', '/'], "-"),
                    self.id
                )
                .chars()
                .take(64)
                .collect();
                SourceRegistry { name, ..base }.with_credential(user.clone(), pass)
            }
            _ => base,
        })
    }
}

/// The key registry passwords are sealed with.
fn sealing_key(ctx: &Context<'_>) -> Result<SealingKey, ApiError> {
    SealingKey::derive(
        ctx.settings.registry_secret_key().expose(),
        "source-registry passwords",
    )
    .map_err(|e| ApiError::internal("reading registry_secret_key", e))
}

/// A password as stored: sealed, bound to its registry's host (which never changes).
fn seal(key: &SealingKey, host: &str, password: &str) -> Result<String, ApiError> {
    key.seal(password, host)
        .map_err(|e| ApiError::internal("sealing a registry password", e))
}

/// Seals the passwords stored in plain text before sealing existed. Run on every call to
/// this API (a query that finds nothing once all are sealed; registries are few), so an
/// upgrade needs no step of its own and old rows are sealed the first time registries
/// are used again. Rows that stay plain until then still work: opening passes them on.
fn seal_plain_passwords(ctx: &Context<'_>, key: &SealingKey) -> Result<(), ApiError> {
    for (id, host, stored) in store::with_passwords(ctx.db)? {
        if stored.is_empty() || sealed::is_sealed(&stored) {
            continue;
        }
        // Only if still that plain value: a concurrent write wins.
        store::replace_password(ctx.db, id, &stored, &seal(key, &host, &stored)?)?;
    }
    Ok(())
}

/// What every registries route does first: the sealing key, and no plain password left.
fn sealed_key(ctx: &Context<'_>) -> Result<SealingKey, ApiError> {
    let key = sealing_key(ctx)?;
    seal_plain_passwords(ctx, &key)?;
    Ok(key)
}

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("only admins manage source registries"))
    }
}

/// `GET /api/v1/registries`.
pub fn list(ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    sealed_key(ctx)?;
    let items: Vec<Value> = store::list(ctx.db)?
        .iter()
        .map(|r| r.view(caller))
        .collect();
    Ok(Api::V1.ok(json!({"total": items.len(), "items": items})))
}

/// `GET /api/v1/registries/{id}`.
pub fn get(ctx: &Context<'_>, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    sealed_key(ctx)?;
    let id = parse_id(id)?;
    let r = store::load(ctx.db, id)?
        .ok_or_else(|| ApiError::not_found(format!("registry {id} not found")))?;
    Ok(Api::V1.ok(r.view(caller)))
}

/// `POST /api/v1/registries` (admins).
pub async fn create<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    let key = sealed_key(ctx)?;
    admin_only(caller)?;
    create_sealed(req, ctx, caller, &key, sender).await
}

/// `PUT` or `PATCH /api/v1/registries/{id}` (admins).
pub async fn update<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    id: &str,
    sender: S,
) -> Result<Response, ApiError> {
    let key = sealed_key(ctx)?;
    admin_only(caller)?;
    update_sealed(req, ctx, caller, parse_id(id)?, &key, sender).await
}

/// `DELETE /api/v1/registries/{id}` (admins).
pub fn delete(ctx: &Context<'_>, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    sealed_key(ctx)?;
    admin_only(caller)?;
    let id = parse_id(id)?;
    if !store::delete(ctx.db, id)? {
        return Err(ApiError::not_found(format!("registry {id} not found")));
    }
    Ok(Api::V1.ok(json!({"id": id})))
}

fn text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match v.map(|s| s.trim().to_owned()) {
        // Bidi controls too: a registry's name is shown to users as-is.
        Some(s)
            if s.is_empty()
                || s.len() > max
                || s.chars().any(char::is_control)
                || crate::query::forbidden_char(&s).is_some() =>
        {
            Err(ApiError::bad_param(
                field,
                format!("must be 1 to {max} printable characters"),
            ))
        }
        other => Ok(other),
    }
}

fn kind(v: Option<String>, host: &str) -> Result<String, ApiError> {
    match v {
        Some(k) if KINDS.contains(&k.as_str()) => Ok(k),
        Some(k) => Err(ApiError::bad_param(
            "type",
            format!("'{k}' is not one of {}", KINDS.join(", ")),
        )),
        None => Ok(SourceRegistry::for_host(host).kind),
    }
}

fn url(v: Option<String>, host: &str) -> Result<String, ApiError> {
    match v {
        Some(u)
            if (u.starts_with("https://") || u.starts_with("http://"))
                && !u.contains(char::is_whitespace) =>
        {
            Ok(u.trim_end_matches('/').to_owned())
        }
        Some(u) => Err(ApiError::bad_param(
            "url",
            format!("'{u}' is not an http(s) URL"),
        )),
        None => Ok(SourceRegistry::for_host(host).url),
    }
}

/// Creates or refreshes the registry's Harbor endpoint and records its id.
async fn sync_to_harbor<S: HttpSender>(
    ctx: &Context<'_>,
    stored: &RegistryRow,
    key: &SealingKey,
    sender: S,
) -> Result<i64, ApiError> {
    let settings = ctx.settings.harbor()?;
    let harbor_id = settings
        .client(&sender)
        .ensure_named_registry(&stored.source(key)?)
        .await
        .map_err(|e| {
            ApiError::new(
                502,
                format!("Harbor did not accept registry {}: {e}", stored.host),
            )
        })?;
    store::set_harbor_registry_id(ctx.db, stored.id, harbor_id)?;
    Ok(harbor_id)
}

async fn create_sealed<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    key: &SealingKey,
    sender: S,
) -> Result<Response, ApiError> {
    let b: RegistryBody = json_body(req)?;
    let host = text("host", b.host, 253)?
        .ok_or_else(|| ApiError::bad_param("host", "is required (e.g. docker.io, nvcr.io)"))?;
    let host = ImageRef::parse(&format!("{host}/x/y"))
        .ok()
        .filter(|r| r.repository == "x/y")
        .map(|r| r.registry)
        .ok_or_else(|| {
            ApiError::bad_param("host", format!("'{host}' is not a registry host[:port]"))
        })?;
    let name = text("name", b.name, 64)?.unwrap_or_else(|| host.clone());
    let kind = kind(b.kind, &host)?;
    let url = url(b.url, &host)?;
    let username = text("username", b.username, 256)?;
    let password = text("password", b.password, 4096)?;
    if password.is_some() && username.is_none() {
        return Err(ApiError::bad_param(
            "username",
            "is required with a password",
        ));
    }
    let password = password.map(|p| seal(key, &host, &p)).transpose()?;
    let now = time::now_rfc3339();
    let fields = RegistryFields {
        name: &name,
        kind: &kind,
        url: &url,
        username,
        password,
    };
    let id = with_write_tx(ctx.db, || {
        store::insert(ctx.db, &host, &fields, &caller.name, &now)
            .map_err(|e| match e {
                DbError::Conflict(_) => ApiError::conflict(format!(
                    "a registry named '{name}' or for host {host} already exists"
                )),
                other => other.into(),
            })?
            .ok_or_else(|| ApiError::internal("creating a registry", "no id returned"))
    })?;
    let stored = store::load(ctx.db, id)?
        .ok_or_else(|| ApiError::internal("creating a registry", "row vanished"))?;
    if let Err(e) = sync_to_harbor(ctx, &stored, key, sender).await {
        store::remove(ctx.db, id)?;
        return Err(e);
    }
    let stored = store::load(ctx.db, id)?
        .ok_or_else(|| ApiError::internal("creating a registry", "row vanished"))?;
    Ok(Api::V1
        .ok_with(201, stored.view(caller), None)
        .with_header("location", &format!("/api/v1/registries/{id}")))
}

async fn update_sealed<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    id: i64,
    key: &SealingKey,
    sender: S,
) -> Result<Response, ApiError> {
    let b: RegistryBody = json_body(req)?;
    let current = store::load(ctx.db, id)?
        .ok_or_else(|| ApiError::not_found(format!("registry {id} not found")))?;
    if b.host.as_ref().is_some_and(|h| *h != current.host) {
        return Err(ApiError::bad_param(
            "host",
            "cannot change; delete the registry and create another",
        ));
    }
    let name = text("name", b.name, 64)?.unwrap_or(current.name.clone());
    let kind = match b.kind {
        Some(k) => kind(Some(k), &current.host)?,
        None => current.kind.clone(),
    };
    let url = match b.url {
        Some(u) => url(Some(u), &current.host)?,
        None => current.url.clone(),
    };
    let username = text("username", b.username, 256)?.or(current.username.clone());
    // A new password is sealed; the stored one stays as it is (sealed on every call).
    let password = match text("password", b.password, 4096)? {
        Some(p) => Some(seal(key, &current.host, &p)?),
        None => current.password.clone(),
    };
    let fields = RegistryFields {
        name: &name,
        kind: &kind,
        url: &url,
        username,
        password,
    };
    store::update(ctx.db, id, &fields, &time::now_rfc3339()).map_err(|e| match e {
        DbError::Conflict(_) => ApiError::conflict("another registry already has that name"),
        other => other.into(),
    })?;
    let stored = store::load(ctx.db, id)?
        .ok_or_else(|| ApiError::not_found(format!("registry {id} not found")))?;
    sync_to_harbor(ctx, &stored, key, sender).await?;
    let stored = store::load(ctx.db, id)?
        .ok_or_else(|| ApiError::not_found(format!("registry {id} not found")))?;
    Ok(Api::V1.ok(stored.view(caller)))
}

//! Source registries (`/api/v1/registries`): the registries imports pull from, with the
//! credentials an admin gives them (Docker Hub accounts against its pull limits, NGC API
//! keys, private registries). Each becomes a Harbor registry endpoint. Passwords are
//! stored for Harbor's sake only, sealed under `registry_secret_key` ([`crate::sealed`]),
//! opened only to be sent to Harbor: never returned, never logged. Usernames are shown to
//! admins only.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::json_body;
use crate::auth::Caller;
use crate::catalog::parse_id;
use crate::config::Context;
use crate::db::{Db, DbError, Row, with_write_tx};
use crate::envelope::{Api, ApiError};
use crate::harbor::SourceRegistry;
use crate::http::{Request, Response};
use crate::image_ref::ImageRef;
use crate::outbound::HttpSender;
use crate::sealed::{self, SealingKey};
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

/// A registry as stored (the password stays inside this module, sealed).
struct Stored {
    id: i64,
    name: String,
    host: String,
    kind: String,
    url: String,
    username: Option<String>,
    password: Option<String>,
    harbor_registry_id: Option<i64>,
    created_at: String,
    updated_at: String,
}

const COLUMNS: &str =
    "id, name, host, kind, url, username, password, harbor_registry_id, created_at, updated_at";

impl Stored {
    fn from_row(r: &Row<'_>) -> Stored {
        Stored {
            id: r.i64("id"),
            name: r.str("name").to_owned(),
            host: r.str("host").to_owned(),
            kind: r.str("kind").to_owned(),
            url: r.str("url").to_owned(),
            username: r.opt_string("username"),
            password: r.opt_string("password"),
            harbor_registry_id: r.get("harbor_registry_id").as_i64(),
            created_at: r.str("created_at").to_owned(),
            updated_at: r.str("updated_at").to_owned(),
        }
    }

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
    let rows = ctx.db.query(
        "SELECT id, host, password FROM registries WHERE password IS NOT NULL",
        &[],
    )?;
    for r in rows.iter() {
        let stored = r.str("password");
        if stored.is_empty() || sealed::is_sealed(stored) {
            continue;
        }
        // Only if still that plain value: a concurrent write wins.
        ctx.db.execute(
            "UPDATE registries SET password = ? WHERE id = ? AND password = ?",
            &[
                seal(key, r.str("host"), stored)?.into(),
                r.i64("id").into(),
                stored.into(),
            ],
        )?;
    }
    Ok(())
}

fn load(db: &dyn Db, id: i64) -> Result<Option<Stored>, DbError> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM registries WHERE id = ?"),
        &[id.into()],
    )?;
    Ok(rows.first().map(|r| Stored::from_row(&r)))
}

/// The Harbor registry id an admin-managed registry for `host` has, if any.
pub fn harbor_registry_for(db: &dyn Db, host: &str) -> Result<Option<i64>, DbError> {
    let rows = db.query(
        "SELECT harbor_registry_id FROM registries WHERE host = ?",
        &[host.into()],
    )?;
    Ok(rows
        .first()
        .and_then(|r| r.get("harbor_registry_id").as_i64()))
}

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("only admins manage source registries"))
    }
}

/// Routes `/api/v1/registries[/{id}]`.
pub async fn handle<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    id: Option<&str>,
    sender: S,
) -> Result<Response, ApiError> {
    crate::migrations::ensure_for(ctx)?;
    let key = sealing_key(ctx)?;
    seal_plain_passwords(ctx, &key)?;
    match (req.method.as_str(), id) {
        ("GET", None) => {
            let rows = ctx.db.query(
                &format!("SELECT {COLUMNS} FROM registries ORDER BY id"),
                &[],
            )?;
            let items: Vec<Value> = rows
                .iter()
                .map(|r| Stored::from_row(&r).view(caller))
                .collect();
            Ok(Api::V1.ok(json!({"total": items.len(), "items": items})))
        }
        ("GET", Some(id)) => {
            let id = parse_id(id)?;
            let r = load(ctx.db, id)?
                .ok_or_else(|| ApiError::not_found(format!("registry {id} not found")))?;
            Ok(Api::V1.ok(r.view(caller)))
        }
        ("POST", None) => {
            admin_only(caller)?;
            create(req, ctx, caller, &key, sender).await
        }
        ("PUT" | "PATCH", Some(id)) => {
            admin_only(caller)?;
            update(req, ctx, caller, parse_id(id)?, &key, sender).await
        }
        ("DELETE", Some(id)) => {
            admin_only(caller)?;
            let id = parse_id(id)?;
            let gone = ctx.db.query(
                "DELETE FROM registries WHERE id = ? RETURNING id",
                &[id.into()],
            )?;
            if gone.is_empty() {
                return Err(ApiError::not_found(format!("registry {id} not found")));
            }
            Ok(Api::V1.ok(json!({"id": id})))
        }
        (method, None) => Err(ApiError::method_not_allowed(method, "GET, POST")),
        (method, Some(_)) => Err(ApiError::method_not_allowed(
            method,
            "GET, PUT, PATCH, DELETE",
        )),
    }
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
    stored: &Stored,
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
    ctx.db.execute(
        "UPDATE registries SET harbor_registry_id = ? WHERE id = ?",
        &[harbor_id.into(), stored.id.into()],
    )?;
    Ok(harbor_id)
}

async fn create<S: HttpSender>(
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
    let id = with_write_tx(ctx.db, || {
        ctx.db
            .query(
                "INSERT INTO registries (name, host, kind, url, username, password, created_by, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &[
                    name.clone().into(),
                    host.clone().into(),
                    kind.clone().into(),
                    url.clone().into(),
                    username.clone().into(),
                    password.clone().into(),
                    caller.name.clone().into(),
                    now.clone().into(),
                    now.clone().into(),
                ],
            )
            .map_err(|e| match e {
                DbError::Conflict(_) => ApiError::conflict(format!("a registry named '{name}' or for host {host} already exists")),
                other => other.into(),
            })?
            .scalar_i64()
            .ok_or_else(|| ApiError::internal("creating a registry", "no id returned"))
    })?;
    let stored = load(ctx.db, id)?
        .ok_or_else(|| ApiError::internal("creating a registry", "row vanished"))?;
    if let Err(e) = sync_to_harbor(ctx, &stored, key, sender).await {
        ctx.db
            .execute("DELETE FROM registries WHERE id = ?", &[id.into()])?;
        return Err(e);
    }
    let stored = load(ctx.db, id)?
        .ok_or_else(|| ApiError::internal("creating a registry", "row vanished"))?;
    Ok(Api::V1
        .ok_with(201, stored.view(caller), None)
        .with_header("location", &format!("/api/v1/registries/{id}")))
}

async fn update<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    id: i64,
    key: &SealingKey,
    sender: S,
) -> Result<Response, ApiError> {
    let b: RegistryBody = json_body(req)?;
    let current =
        load(ctx.db, id)?.ok_or_else(|| ApiError::not_found(format!("registry {id} not found")))?;
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
    ctx.db
        .execute(
            "UPDATE registries SET name = ?, kind = ?, url = ?, username = ?, password = ?, updated_at = ? WHERE id = ?",
            &[
                name.into(),
                kind.into(),
                url.into(),
                username.into(),
                password.into(),
                time::now_rfc3339().into(),
                id.into(),
            ],
        )
        .map_err(|e| match e {
            DbError::Conflict(_) => ApiError::conflict("another registry already has that name"),
            other => other.into(),
        })?;
    let stored =
        load(ctx.db, id)?.ok_or_else(|| ApiError::not_found(format!("registry {id} not found")))?;
    sync_to_harbor(ctx, &stored, key, sender).await?;
    let stored =
        load(ctx.db, id)?.ok_or_else(|| ApiError::not_found(format!("registry {id} not found")))?;
    Ok(Api::V1.ok(stored.view(caller)))
}

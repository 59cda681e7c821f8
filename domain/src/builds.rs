//! Custom image builds (seed 002): validated here, built by a runner, completed by Harbor.
//!
//! berth never runs a build. It checks the request (Dockerfile, bases the caller may use,
//! package names, a unique target), records a build, POSTs a signed job to the runner, and
//! learns the result from the runner's status callbacks and from Harbor's PUSH_ARTIFACT for
//! the target tag, which creates the image: ready, private to its owner.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::admin::json_body;
use crate::auth::Caller;
use crate::config::{Context, HarborSettings};
use crate::db::{Row, with_write_tx};
use crate::dockerfile;
use crate::envelope::{Api, ApiError};
use crate::http::{Request, Response};
use crate::image_ref::ImageRef;
use crate::imports::ArtifactFacts;
use crate::model::{IMAGE_COLUMNS, Image};
use crate::outbound::{HttpSender, OutboundRequest};
use crate::{store, time};

/// How a build request came in: seed 002's bare answer, or the v1 envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildApi {
    Console,
    V1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dockerfile,
    Packages,
    Environment,
}

impl Mode {
    fn parse(s: Option<&str>) -> Result<Mode, ApiError> {
        match s.unwrap_or("dockerfile") {
            "dockerfile" => Ok(Mode::Dockerfile),
            "packages" => Ok(Mode::Packages),
            "environment" => Ok(Mode::Environment),
            other => Err(ApiError::bad_param(
                "mode",
                format!("'{other}' is not dockerfile, packages or environment"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Mode::Dockerfile => "dockerfile",
            Mode::Packages => "packages",
            Mode::Environment => "environment",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Packages {
    #[serde(default)]
    pip: Vec<String>,
    #[serde(default)]
    apt: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildBody {
    name: String,
    base_image: Option<String>,
    dockerfile: Option<String>,
    description: Option<String>,
    mode: Option<String>,
    packages: Option<Packages>,
    environment_id: Option<String>,
}

/// `sha256=<hex>` HMAC of a job body, as the `X-Berth-Signature` header carries it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Whether `header` is [`signature`] of `body` (the runner's check of every job); the
/// comparison is `Mac::verify_slice`'s, which takes the same time wherever the bytes differ.
pub fn signature_matches(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let bytes: Option<Vec<u8>> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    let Some(bytes) = bytes else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

/// `[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?` with optional `[extras]` and a version specifier.
fn valid_pip(spec: &str) -> bool {
    let end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(spec.len());
    let (name, mut rest) = spec.split_at(end);
    let name_ok = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if let Some(extras) = rest.strip_prefix('[') {
        let Some(close) = extras.find(']') else {
            return false;
        };
        if !extras[..close].split(',').all(|e| {
            !e.trim().is_empty()
                && e.trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        }) {
            return false;
        }
        rest = &extras[close + 1..];
    }
    let spec_ok = rest.is_empty()
        || (rest.starts_with(['=', '<', '>', '!', '~'])
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "=<>!~.,*+-_ ".contains(c)));
    name_ok && spec_ok && spec.len() <= 200
}

/// Debian package names, optionally `=version`.
fn valid_apt(spec: &str) -> bool {
    let (name, version) = spec.split_once('=').unwrap_or((spec, ""));
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    let version_ok = !spec.contains('=')
        || (!version.is_empty()
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+:~-".contains(c)));
    name_ok && version_ok && spec.len() <= 200
}

/// Generates the Dockerfile of a packages build. The runner may pass index mirrors as
/// build arguments (`APT_MIRROR`, `PIP_INDEX_URL`: GPU clusters often have no internet);
/// unset, the base image's own sources are used. `set -x` logs the commands as run.
fn packages_dockerfile(base: &str, p: &Packages) -> String {
    let mut d = format!("FROM {base}\n");
    if !p.apt.is_empty() {
        d.push_str("ARG APT_MIRROR\n");
        d.push_str(&format!(
            "RUN set -x; if [ -n \"$APT_MIRROR\" ]; then for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do \
             [ -f \"$f\" ] && sed -i -E \"s#https?://[^ ]+#$APT_MIRROR#g\" \"$f\"; done; fi; \
             apt-get update && apt-get install -y --no-install-recommends {} && rm -rf /var/lib/apt/lists/*\n",
            p.apt.join(" ")
        ));
    }
    if !p.pip.is_empty() {
        d.push_str("ARG PIP_INDEX_URL\n");
        d.push_str(&format!(
            "RUN set -x; pip install --no-cache-dir {} ${{PIP_INDEX_URL:+--index-url \"$PIP_INDEX_URL\"}}\n",
            p.pip
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    d
}

/// The catalog rows a build may resolve a base to: official images, shared imports (both
/// changed by admins only) and the caller's own images. Anyone else's row, however named,
/// is never a base: a user cannot redirect another user's builds by naming an image.
const TRUSTED_BASE: &str =
    "(is_official = 1 OR (origin = 'import' AND owner IS NULL) OR owner = ?)";

/// A base image for `caller`: a ready catalog image they may use (by name or reference),
/// pinned to the digest berth knows, or a reference on an allowed registry.
fn resolve_base(
    ctx: &Context<'_>,
    caller: &Caller,
    reference: &str,
    field: &str,
) -> Result<(String, Option<Image>), ApiError> {
    // The caller's own row first, then official and shared ones.
    let trusted = |filter: &str, params: Vec<crate::db::Value>| {
        ctx.db.query(
            &format!(
                "SELECT {IMAGE_COLUMNS} FROM images WHERE {filter} AND {TRUSTED_BASE} \
                 ORDER BY CASE WHEN owner = ? THEN 0 ELSE 1 END, id LIMIT 1"
            ),
            &[
                params,
                vec![caller.name.clone().into(), caller.name.clone().into()],
            ]
            .concat(),
        )
    };
    let by_name = trusted("name = ?", vec![reference.into()])?;
    let parsed = ImageRef::parse(reference)
        .map_err(|e| ApiError::bad_param(field, format!("'{reference}': {e}")))?;
    let by_ref = if by_name.is_empty() {
        trusted(
            "registry = ? AND repository = ? AND tag = ?",
            vec![
                parsed.registry.clone().into(),
                parsed.repository.clone().into(),
                parsed.tag.clone().into(),
            ],
        )?
    } else {
        by_name
    };
    if let Some(row) = by_ref.first() {
        let image = Image::from_row(&row);
        if image.status != "ready" {
            return Err(ApiError::bad_param(
                field,
                format!("'{reference}' is {}, not ready", image.status),
            ));
        }
        // The caller's own rows point wherever they like: the allow-list applies to them.
        if image.owner.as_deref() == Some(caller.name.as_str())
            && !image.is_official
            && !base_registry_allowed(ctx, &image.registry)
        {
            return Err(ApiError::bad_param(
                field,
                format!(
                    "'{reference}' points at {}, which is not an allowed registry",
                    image.registry
                ),
            ));
        }
        // Pinned: a later change of the tag does not change what this build uses.
        let pinned = match &image.digest {
            Some(d) => format!("{}@{d}", image.registry_url()),
            None => image.registry_url(),
        };
        return Ok((pinned, Some(image)));
    }
    let allowed = ctx.settings.source_registries();
    if !allowed.contains(&parsed.registry) {
        return Err(ApiError::bad_param(
            field,
            format!(
                "'{reference}' is not a catalog image and {} is not an allowed registry",
                parsed.registry
            ),
        ));
    }
    Ok((parsed.tagged(), None))
}

/// Whether builds may pull from `registry`: an allowed import source or berth's Harbor.
fn base_registry_allowed(ctx: &Context<'_>, registry: &str) -> bool {
    let registry = registry.to_ascii_lowercase();
    ctx.settings.source_registries().contains(&registry)
        || ctx
            .settings
            .harbor()
            .is_ok_and(|h| h.registry_host == registry)
}

/// The Harbor path component of a user's builds, injective: a name that already is a plain
/// lowercase component is itself; any other (`Alice`, `bob smith`) is its readable form plus
/// `-x` and a hash of the exact name, so `Alice` and `alice` never share a path. A plain name
/// that looks like an escaped one is escaped too.
fn namespace(owner: &str) -> String {
    let plain = readable_namespace(owner);
    let looks_escaped = owner.rsplit_once("-x").is_some_and(|(_, h)| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if plain == owner && !looks_escaped {
        return plain;
    }
    let hash: String = Sha256::digest(owner.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{plain}-x{hash}")
}

/// A lowercase path component for a user name (`Alice.Smith` → `alice-smith`).
fn readable_namespace(owner: &str) -> String {
    let mut out: String = owner
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() {
        "user".to_owned()
    } else {
        out
    }
}

fn new_build_id(caller: &Caller, name: &str, body: &[u8]) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = Sha256::new()
        .chain_update(caller.name.as_bytes())
        .chain_update(name.as_bytes())
        .chain_update(nanos.to_le_bytes())
        .chain_update(body)
        .finalize();
    let hex: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("build-{hex}")
}

fn answer(
    api: BuildApi,
    status: u16,
    build_id: &str,
    state: &str,
    message: Option<&str>,
) -> Response {
    match api {
        BuildApi::Console if status < 400 => {
            let mut body = json!({"build_id": build_id, "status": state});
            if let Some(m) = message {
                body["message"] = json!(m);
            }
            Response::json(status, &body)
        }
        // A failure speaks the console's error envelope, like every other `/api/images` error.
        BuildApi::Console => Response::json(
            status,
            &json!({"success": false, "message": message.unwrap_or(state), "data": {"build_id": build_id, "status": state}}),
        ),
        BuildApi::V1 if status < 400 => {
            Api::V1.ok_with(status, json!({"build_id": build_id, "status": state}), None)
        }
        BuildApi::V1 => Response::json(
            status,
            &json!({"code": status, "message": message.unwrap_or(state), "data": {"build_id": build_id, "status": state}}),
        ),
    }
}

/// `POST /api/images/build` and `POST /api/v1/images:build`.
pub async fn start<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
    api: BuildApi,
) -> Result<Response, ApiError> {
    let body: BuildBody = json_body(req)?;
    let mode = Mode::parse(body.mode.as_deref())?;
    let target = ImageRef::parse(&format!("localhost/{}", body.name.trim())).map_err(|e| {
        ApiError::bad_param(
            "name",
            format!("'{}' is not a valid image name:tag: {e}", body.name),
        )
    })?;
    if body
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 4096)
    {
        return Err(ApiError::bad_param(
            "description",
            "is longer than 4096 characters",
        ));
    }
    crate::migrations::ensure_for(ctx)?;

    // What to build from, checked before anything is recorded or dispatched.
    let (dockerfile, base_ref, base_image) = match mode {
        Mode::Dockerfile => {
            let text = body.dockerfile.as_deref().ok_or_else(|| {
                ApiError::bad_param("dockerfile", "is required in dockerfile mode")
            })?;
            let instructions =
                dockerfile::parse(text).map_err(|e| ApiError::bad_param("dockerfile", e))?;
            let bases = dockerfile::bases(&instructions)
                .map_err(|e| ApiError::bad_param("dockerfile", e))?;
            let mut first: Option<(String, Option<Image>)> = None;
            // The runner gets exactly what was checked: every FROM names the resolved (for a
            // catalog image, digest-pinned) reference, whether written literally or by ARG.
            let mut dispatched = text.to_owned();
            for b in bases.iter().filter(|b| !b.internal) {
                let resolved = resolve_base(ctx, caller, &b.image, "dockerfile").map_err(|e| {
                    ApiError::bad_request(format!("{} (FROM at line {})", e.message, b.line))
                })?;
                dispatched = dockerfile::rewrite_from(&dispatched, b.line, &resolved.0);
                first.get_or_insert(resolved);
            }
            // Files copied or mounted from other images pass the same checks as bases.
            for source in dockerfile::copy_sources(&instructions) {
                let (reference, _) = resolve_base(ctx, caller, &source.image, "dockerfile")
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "{} (--from at line {})",
                            e.message, source.line
                        ))
                    })?;
                if reference != source.image {
                    dispatched =
                        dockerfile::rewrite_sources(&dispatched, &source.image, &reference);
                }
            }
            let (base_ref, base_image) = first.unwrap_or((String::from("scratch"), None));
            if let Some(given) = body.base_image.as_deref() {
                let (given_ref, _) = resolve_base(ctx, caller, given, "base_image")?;
                if given_ref != base_ref {
                    return Err(ApiError::bad_param(
                        "base_image",
                        format!("'{given}' is not the Dockerfile's first FROM"),
                    ));
                }
            }
            (Some(dispatched), Some(base_ref), base_image)
        }
        Mode::Packages => {
            let base = body
                .base_image
                .as_deref()
                .ok_or_else(|| ApiError::bad_param("base_image", "is required in packages mode"))?;
            let (base_ref, base_image) = resolve_base(ctx, caller, base, "base_image")?;
            let packages = body.packages.unwrap_or_default();
            if packages.pip.is_empty() && packages.apt.is_empty() {
                return Err(ApiError::bad_param(
                    "packages",
                    "name at least one pip or apt package",
                ));
            }
            if packages.pip.len() + packages.apt.len() > 200 {
                return Err(ApiError::bad_param("packages", "more than 200 packages"));
            }
            if let Some(bad) = packages.pip.iter().find(|p| !valid_pip(p)) {
                return Err(ApiError::bad_param(
                    "packages.pip",
                    format!("'{bad}' is not a package name[extras][version]"),
                ));
            }
            if let Some(bad) = packages.apt.iter().find(|p| !valid_apt(p)) {
                return Err(ApiError::bad_param(
                    "packages.apt",
                    format!("'{bad}' is not a Debian package name[=version]"),
                ));
            }
            (
                Some(packages_dockerfile(&base_ref, &packages)),
                Some(base_ref),
                base_image,
            )
        }
        Mode::Environment => {
            let env = body.environment_id.as_deref().unwrap_or_default();
            if env.is_empty()
                || env.len() > 128
                || !env
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(ApiError::bad_param(
                    "environment_id",
                    "is required in environment mode: 1 to 128 of letters, digits, _ . -",
                ));
            }
            (None, None, None)
        }
    };

    let harbor = ctx.settings.harbor()?;
    let runner = ctx.settings.runner()?;
    // The name as its owner gave it; the owner's namespace is in the Harbor path only.
    let name = format!("{}:{}", target.repository, target.tag);
    let repository = format!(
        "{}/users/{}/{}",
        harbor.harbor.project,
        namespace(&caller.name),
        target.repository
    );
    let target_ref = format!("{repository}:{}", target.tag);
    let build_id = new_build_id(caller, &name, &req.body);
    let now = time::now_rfc3339();
    let deadline =
        time::to_rfc3339(chrono::Utc::now() + chrono::Duration::seconds(runner.deadline_seconds));

    with_write_tx(ctx.db, || {
        if !ctx
            .db
            .query(
                "SELECT id FROM images WHERE owner = ? AND name = ?",
                &[caller.name.clone().into(), name.clone().into()],
            )?
            .is_empty()
        {
            return Err(ApiError::conflict(format!(
                "you already have an image named '{}'",
                body.name
            )));
        }
        // The target itself, before anything is dispatched: no image may already be there.
        if !ctx
            .db
            .query(
                "SELECT id FROM images WHERE registry = ? AND repository = ? AND tag = ?",
                &[
                    harbor.registry_host.clone().into(),
                    repository.clone().into(),
                    target.tag.clone().into(),
                ],
            )?
            .is_empty()
        {
            return Err(ApiError::conflict(format!(
                "an image is already at {}/{target_ref}; choose another name or tag",
                harbor.registry_host
            )));
        }
        if let Some(running) = ctx
            .db
            .query(
                "SELECT id FROM builds WHERE target = ? AND status IN ('building', 'running')",
                &[target_ref.clone().into()],
            )?
            .first()
        {
            return Err(ApiError::conflict(format!(
                "a build of '{}' is already running ({})",
                body.name,
                running.str("id")
            )));
        }
        ctx.db.execute(
            "INSERT INTO builds (id, owner, name, mode, base_image, base_image_id, dockerfile, description, status, \
             target, created_at, updated_at, deadline_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'building', ?, ?, ?, ?)",
            &[
                build_id.clone().into(),
                caller.name.clone().into(),
                name.clone().into(),
                mode.as_str().into(),
                base_ref.clone().into(),
                base_image.as_ref().map(|i| i.id).into(),
                dockerfile.clone().into(),
                body.description.clone().into(),
                target_ref.clone().into(),
                now.clone().into(),
                now.clone().into(),
                deadline.into(),
            ],
        )?;
        Ok(())
    })?;

    let job = json!({
        "build_id": build_id,
        "mode": mode.as_str(),
        "dockerfile": dockerfile,
        "base_image": base_ref,
        "environment_id": body.environment_id,
        "push": {"registry": harbor.registry_host, "repository": repository, "tag": target.tag},
        "callback": {"url": format!("{}/api/v1/builds/{build_id}/status", runner.public_url), "token": runner.token.expose()},
    });
    // Harbor must tell berth about the push that completes the build.
    if let Err(e) =
        crate::imports::ensure_project_and_webhooks(&harbor.client(&sender), harbor).await
    {
        let message = format!("Harbor is not ready for the build's push: {e}");
        finish(ctx, &build_id, "failed", Some(&message), None)?;
        return Ok(answer(api, 502, &build_id, "failed", Some(&message)));
    }
    let bytes = serde_json::to_vec(&job).expect("JSON values serialize");
    let mut request = OutboundRequest::new("POST", format!("{}/runner/jobs", runner.url))
        .header("content-type", "application/json")
        .header(
            "x-berth-signature",
            signature(runner.secret.expose(), &bytes),
        );
    request.body = bytes;
    let failure = match (&sender).send(request).await {
        Ok(r) if (200..300).contains(&r.status) => None,
        Ok(r) => Some(format!(
            "the build runner refused the job (HTTP {})",
            r.status
        )),
        Err(e) => Some(format!("the build runner is unreachable: {e}")),
    };
    match failure {
        None => Ok(answer(api, 202, &build_id, "building", None)),
        Some(message) => {
            finish(ctx, &build_id, "failed", Some(&message), None)?;
            Ok(answer(api, 502, &build_id, "failed", Some(&message)))
        }
    }
}

/// Moves a build to a final state, unless it already is in one.
fn finish(
    ctx: &Context<'_>,
    id: &str,
    status: &str,
    message: Option<&str>,
    image_id: Option<i64>,
) -> Result<bool, ApiError> {
    let changed = ctx.db.query(
        "UPDATE builds SET status = ?, message = COALESCE(?, message), image_id = COALESCE(?, image_id), updated_at = ? \
         WHERE id = ? AND status IN ('building', 'running') RETURNING id",
        &[status.into(), message.map(str::to_owned).into(), image_id.into(), time::now_rfc3339().into(), id.into()],
    )?;
    Ok(!changed.is_empty())
}

struct BuildRow {
    id: String,
    owner: String,
    name: String,
    mode: String,
    base_image: Option<String>,
    base_image_id: Option<i64>,
    description: Option<String>,
    status: String,
    message: Option<String>,
    log_tail: Option<String>,
    target: String,
    image_id: Option<i64>,
    created_at: String,
    updated_at: String,
    deadline_at: String,
}

const BUILD_COLUMNS: &str = "id, owner, name, mode, base_image, base_image_id, description, status, message, \
    log_tail, target, image_id, created_at, updated_at, deadline_at";

impl BuildRow {
    fn from_row(r: &Row<'_>) -> BuildRow {
        BuildRow {
            id: r.str("id").to_owned(),
            owner: r.str("owner").to_owned(),
            name: r.str("name").to_owned(),
            mode: r.str("mode").to_owned(),
            base_image: r.opt_string("base_image"),
            base_image_id: r.get("base_image_id").as_i64(),
            description: r.opt_string("description"),
            status: r.str("status").to_owned(),
            message: r.opt_string("message"),
            log_tail: r.opt_string("log_tail"),
            target: r.str("target").to_owned(),
            image_id: r.get("image_id").as_i64(),
            created_at: r.str("created_at").to_owned(),
            updated_at: r.str("updated_at").to_owned(),
            deadline_at: r.str("deadline_at").to_owned(),
        }
    }

    fn view(&self) -> Value {
        json!({
            "build_id": self.id,
            "name": self.name,
            "owner": self.owner,
            "mode": self.mode,
            "status": self.status,
            "message": self.message,
            "log_tail": self.log_tail,
            "base_image": self.base_image,
            "description": self.description,
            "target": self.target,
            "image_id": self.image_id,
            "created_at": time::to_seconds_precision(&self.created_at),
            "updated_at": time::to_seconds_precision(&self.updated_at),
        })
    }
}

fn load(ctx: &Context<'_>, id: &str) -> Result<Option<BuildRow>, ApiError> {
    let rows = ctx.db.query(
        &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?"),
        &[id.into()],
    )?;
    Ok(rows.first().map(|r| BuildRow::from_row(&r)))
}

/// Fails a build whose runner went quiet past its deadline (checked lazily, on read), and
/// tells the runner to stop it.
async fn expire<S: HttpSender>(
    ctx: &Context<'_>,
    sender: &S,
    build: &BuildRow,
) -> Result<bool, ApiError> {
    let overdue = time::parse(&build.deadline_at).is_some_and(|d| d.timestamp() < ctx.now);
    if overdue && matches!(build.status.as_str(), "building" | "running") {
        let message = "the build runner did not finish before the build's deadline";
        if finish(ctx, &build.id, "failed", Some(message), None)? {
            stop_in_runner(ctx, sender, &build.id, "the build's deadline passed").await;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Asks the runner to stop a build: `POST <runner_url>/runner/jobs/{id}/cancel`, signed
/// like a job. Best effort: the build is already final in berth, and a runner that does
/// not answer is asked again by nobody (its own timeout ends the build).
async fn stop_in_runner<S: HttpSender>(ctx: &Context<'_>, sender: &S, id: &str, reason: &str) {
    let Ok(runner) = ctx.settings.runner() else {
        return;
    };
    let bytes = serde_json::to_vec(&json!({"build_id": id, "reason": reason}))
        .expect("JSON values serialize");
    let mut request =
        OutboundRequest::new("POST", format!("{}/runner/jobs/{id}/cancel", runner.url))
            .header("content-type", "application/json")
            .header(
                "x-berth-signature",
                signature(runner.secret.expose(), &bytes),
            );
    request.body = bytes;
    let _ = sender.send(request).await;
}

/// The build, if `caller` owns it or is an admin; otherwise 404, as if it did not exist.
fn visible_build(ctx: &Context<'_>, id: &str, caller: &Caller) -> Result<BuildRow, ApiError> {
    load(ctx, id)?
        .filter(|b| caller.is_admin() || b.owner == caller.name)
        .ok_or_else(|| ApiError::not_found(format!("build {id} not found")))
}

/// `POST /api/v1/builds/{id}/cancel` (owner or admin): the build fails as cancelled and
/// the runner stops it. 409 once the build has ended.
pub async fn cancel<S: HttpSender>(
    id: &str,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    crate::migrations::ensure_for(ctx)?;
    let build = visible_build(ctx, id, caller)?;
    let message = format!("cancelled by {}", caller.name);
    if !finish(ctx, &build.id, "failed", Some(&message), None)? {
        return Err(ApiError::conflict(format!(
            "build {id} has already ended ({})",
            build.status
        )));
    }
    stop_in_runner(ctx, &sender, &build.id, &message).await;
    let build = visible_build(ctx, id, caller)?;
    Ok(Api::V1.ok(build.view()))
}

/// `GET /api/v1/builds/{id}`: the owner's or an admin's.
///
/// A build that has been quiet for a while is checked against Harbor: if its target was
/// pushed (and the webhook lost), the build completes here.
pub async fn get<S: HttpSender>(
    id: &str,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    crate::migrations::ensure_for(ctx)?;
    let build = visible_build(ctx, id, caller)?;
    let quiet = time::parse(&build.updated_at)
        .is_none_or(|t| ctx.now - t.timestamp() >= ctx.settings.import_reconcile_after_seconds());
    if quiet || pushed(ctx, &build.id)? {
        complete_if_in_harbor(ctx, &sender, &build).await?;
    }
    let build = visible_build(ctx, id, caller)?;
    let build = if expire(ctx, &sender, &build).await? {
        visible_build(ctx, id, caller)?
    } else {
        build
    };
    Ok(Api::V1.ok(build.view()))
}

/// Completes an unfinished build whose target Harbor holds (its webhook may be lost).
async fn complete_if_in_harbor<S: HttpSender>(
    ctx: &Context<'_>,
    sender: &S,
    build: &BuildRow,
) -> Result<(), ApiError> {
    if !matches!(build.status.as_str(), "building" | "running") {
        return Ok(());
    }
    let Ok(harbor) = ctx.settings.harbor() else {
        return Ok(());
    };
    let (repository, tag) = build
        .target
        .rsplit_once(':')
        .unwrap_or((build.target.as_str(), "latest"));
    let client = harbor.client(sender);
    if let Some(facts) = crate::imports::artifact_facts(&client, harbor, repository, tag).await {
        complete_from_push(ctx, harbor, &build.target, Some(&facts))?;
    }
    Ok(())
}

fn pushed_key(id: &str) -> String {
    format!("build_pushed_{id}")
}

/// Harbor's PUSH_ARTIFACT for `target` (`<repository>:<tag>`) arrived: the unfinished build
/// that pushes there is due for a read of the artifact (by the sweep or the next read).
/// Returns whether such a build exists. The webhook itself never calls Harbor.
pub fn note_push(ctx: &Context<'_>, target: &str) -> Result<bool, ApiError> {
    let rows = ctx.db.query(
        "SELECT id, deadline_at FROM builds WHERE target = ? AND status IN ('building', 'running') \
         ORDER BY created_at DESC LIMIT 1",
        &[target.into()],
    )?;
    let Some(row) = rows.first() else {
        return Ok(false);
    };
    ctx.db.execute(
        "INSERT INTO cached_values (key, value, expires_at) VALUES (?, '', ?) \
         ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at",
        &[
            pushed_key(row.str("id")).into(),
            row.str("deadline_at").to_owned().into(),
        ],
    )?;
    Ok(true)
}

/// Whether Harbor announced the push of build `id`'s target.
fn pushed(ctx: &Context<'_>, id: &str) -> Result<bool, ApiError> {
    let rows = ctx.db.query(
        "SELECT expires_at FROM cached_values WHERE key = ?",
        &[pushed_key(id).into()],
    )?;
    Ok(rows
        .first()
        .is_some_and(|r| time::parse(r.str("expires_at")).is_some_and(|t| t.timestamp() > ctx.now)))
}

/// The sweep's part for builds: the `batch` unfinished builds least recently updated are
/// checked in Harbor (completed when their target is there) and failed past their
/// deadline, each under a lease so concurrent sweepers never work the same build.
pub async fn sweep<S: HttpSender>(
    ctx: &Context<'_>,
    sender: &S,
    batch: usize,
    lease_seconds: i64,
) -> Result<Value, ApiError> {
    let rows = ctx.db.query(
        &format!(
            "SELECT {BUILD_COLUMNS} FROM builds WHERE status IN ('building', 'running') \
             ORDER BY updated_at ASC, id ASC LIMIT ?"
        ),
        &[(4 * batch as i64).into()],
    )?;
    let (mut reconciled, mut finished, mut skipped) = (0, 0, 0);
    for build in rows.iter().map(|r| BuildRow::from_row(&r)) {
        if reconciled >= batch {
            break;
        }
        let lease = format!("sweep_build_{}", build.id);
        if !crate::imports::claim_lease(ctx.db, &lease, lease_seconds)? {
            skipped += 1;
            continue;
        }
        reconciled += 1;
        let result = async {
            complete_if_in_harbor(ctx, sender, &build).await?;
            match load(ctx, &build.id)? {
                Some(latest) => expire(ctx, sender, &latest).await,
                None => Ok(false),
            }
        }
        .await;
        crate::imports::release_lease(ctx.db, &lease)?;
        if let Err(e) = result {
            eprintln!("warning: sweeping build {}: {}", build.id, e.message);
            continue;
        }
        if load(ctx, &build.id)?
            .is_some_and(|b| !matches!(b.status.as_str(), "building" | "running"))
        {
            finished += 1;
        }
    }
    Ok(json!({"reconciled": reconciled, "finished": finished, "skipped": skipped}))
}

/// `GET /api/v1/builds`: the caller's builds, newest first.
pub async fn list<S: HttpSender>(
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    crate::migrations::ensure_for(ctx)?;
    let rows = ctx.db.query(
        &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE owner = ? ORDER BY created_at DESC, id DESC LIMIT 100"),
        &[caller.name.clone().into()],
    )?;
    let mut builds = Vec::new();
    for r in rows.iter() {
        let b = BuildRow::from_row(&r);
        if expire(ctx, &sender, &b).await? {
            builds.push(load(ctx, &b.id)?.unwrap_or(b).view());
        } else {
            builds.push(b.view());
        }
    }
    Ok(Api::V1.ok(json!({"total": builds.len(), "builds": builds})))
}

/// `PUT /api/v1/builds/{id}/status` from the runner: `running` (with a log tail) or `failed`.
pub fn runner_status(id: &str, req: &Request, ctx: &Context<'_>) -> Result<Response, ApiError> {
    let token = req
        .header("authorization")
        .and_then(|h| h.trim().strip_prefix("Bearer "))
        .unwrap_or_default();
    if !crate::auth::secret_matches(ctx.settings.runner_token().expose(), token.trim()) {
        return Err(ApiError::unauthorized(
            "send 'Authorization: Bearer <runner_token>'",
        ));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StatusBody {
        status: String,
        message: Option<String>,
        log_tail: Option<String>,
    }
    let body: StatusBody = json_body(req)?;
    let log_tail = body.log_tail.map(|l| {
        l.chars()
            .rev()
            .take(4096)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
    });
    crate::migrations::ensure_for(ctx)?;
    let build =
        load(ctx, id)?.ok_or_else(|| ApiError::not_found(format!("build {id} not found")))?;
    let changed = match body.status.as_str() {
        "running" => !ctx
            .db
            .query(
                "UPDATE builds SET status = 'running', log_tail = COALESCE(?, log_tail), updated_at = ? \
                 WHERE id = ? AND status IN ('building', 'running') RETURNING id",
                &[log_tail.into(), time::now_rfc3339().into(), build.id.clone().into()],
            )?
            .is_empty(),
        "failed" => {
            if let Some(tail) = &log_tail {
                ctx.db.execute("UPDATE builds SET log_tail = ? WHERE id = ? AND status IN ('building', 'running')", &[tail.clone().into(), build.id.clone().into()])?;
            }
            let message = body.message.unwrap_or_else(|| "the build runner reported a failure".to_owned());
            finish(ctx, &build.id, "failed", Some(&message), None)?
        }
        other => return Err(ApiError::bad_param("status", format!("'{other}' is not running or failed"))),
    };
    Ok(Api::V1.ok(json!({"build_id": build.id, "changed": changed})))
}

/// Harbor's PUSH_ARTIFACT for a build's target completes it: the image is created ready,
/// private to the owner, with the base image's metadata and Harbor's facts.
pub fn complete_from_push(
    ctx: &Context<'_>,
    harbor: &HarborSettings,
    target: &str,
    facts: Option<&ArtifactFacts>,
) -> Result<Option<i64>, ApiError> {
    let rows = ctx.db.query(
        &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE target = ? AND status IN ('building', 'running') ORDER BY created_at DESC LIMIT 1"),
        &[target.into()],
    )?;
    let Some(build) = rows.first().map(|r| BuildRow::from_row(&r)) else {
        return Ok(None);
    };
    let (repository, tag) = target.rsplit_once(':').unwrap_or((target, "latest"));
    let base = match build.base_image_id {
        Some(id) => store::get(ctx.db, id)?,
        None => None,
    };
    let facts = facts.cloned().unwrap_or_default();
    let now = time::now_rfc3339();
    with_write_tx(ctx.db, || {
        let image_id = ctx
            .db
            .query(
                "INSERT INTO images (name, display_name, description, category, framework, framework_version, frameworks, \
                 cuda_version, preset_cuda, python_version, chip_type, applicable_scopes, registry, repository, tag, digest, \
                 size, arch, os, is_official, visibility, owner, status, publication, origin, created_by, updated_by, \
                 created_at, updated_at) \
                 VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'private', ?, 'ready', 'online', 'build', ?, ?, ?, ?) \
                 RETURNING id",
                &[
                    build.name.clone().into(),
                    build.description.clone().into(),
                    base.as_ref().and_then(|b| b.category.clone()).unwrap_or_else(|| "custom".into()).into(),
                    base.as_ref().and_then(|b| b.framework.clone()).into(),
                    base.as_ref().and_then(|b| b.framework_version.clone()).into(),
                    serde_json::to_string(&base.as_ref().map(|b| b.frameworks.clone()).unwrap_or_default()).expect("strings serialize").into(),
                    base.as_ref().and_then(|b| b.cuda_version.clone()).into(),
                    base.as_ref().is_some_and(|b| b.preset_cuda).into(),
                    base.as_ref().and_then(|b| b.python_version.clone()).into(),
                    base.as_ref().map_or("GPU".to_owned(), |b| b.chip_type.clone()).into(),
                    serde_json::to_string(&base.as_ref().map(|b| b.applicable_scopes.clone()).unwrap_or_default()).expect("strings serialize").into(),
                    harbor.registry_host.clone().into(),
                    repository.into(),
                    tag.into(),
                    Some(facts.digest.clone()).filter(|d| !d.is_empty()).into(),
                    facts.size.into(),
                    facts.arch.clone().into(),
                    facts.os.clone().into(),
                    build.owner.clone().into(),
                    build.owner.clone().into(),
                    build.owner.clone().into(),
                    now.clone().into(),
                    now.clone().into(),
                ],
            )
            .map_err(|e| match e {
                crate::db::DbError::Conflict(_) => ApiError::conflict(format!("image {} already exists", build.name)),
                other => other.into(),
            })?
            .scalar_i64()
            .ok_or_else(|| ApiError::internal("completing a build", "no id returned"))?;
        for scope in base
            .as_ref()
            .map(|b| b.applicable_scopes.clone())
            .unwrap_or_default()
        {
            ctx.db.execute(
                "INSERT INTO image_scopes (image_id, scope) VALUES (?, ?)",
                &[image_id.into(), scope.into()],
            )?;
        }
        finish(ctx, &build.id, "succeeded", None, Some(image_id))?;
        Ok(Some(image_id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_and_apt_names() {
        for ok in [
            "transformers",
            "peft==0.10.0",
            "torch>=2.0,<3",
            "uvicorn[standard]",
            "a",
            "jax[cuda12]~=0.4",
            "Flask_Login",
        ] {
            assert!(valid_pip(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "x-",
            "x; rm -rf /",
            "x==1 && curl",
            "$(id)",
            "x[",
            "x y",
        ] {
            assert!(!valid_pip(bad), "{bad}");
        }
        for ok in [
            "git",
            "libgl1",
            "g++",
            "python3.10-dev",
            "curl=7.68.0-1ubuntu2",
        ] {
            assert!(valid_apt(ok), "{ok}");
        }
        for bad in ["", "G", "Git", "git;ls", "x=", "a b", "-rf"] {
            assert!(!valid_apt(bad), "{bad}");
        }
    }

    #[test]
    fn generated_dockerfile() {
        let d = packages_dockerfile(
            "h.io/library/base:1",
            &Packages {
                pip: vec!["peft==0.10.0".into()],
                apt: vec!["git".into()],
            },
        );
        assert_eq!(
            d,
            "FROM h.io/library/base:1\nARG APT_MIRROR\nRUN set -x; if [ -n \"$APT_MIRROR\" ]; then for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do \
             [ -f \"$f\" ] && sed -i -E \"s#https?://[^ ]+#$APT_MIRROR#g\" \"$f\"; done; fi; apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*\n\
             ARG PIP_INDEX_URL\nRUN set -x; pip install --no-cache-dir 'peft==0.10.0' ${PIP_INDEX_URL:+--index-url \"$PIP_INDEX_URL\"}\n"
        );
        let parsed = dockerfile::bases(&dockerfile::parse(&d).unwrap()).unwrap();
        assert_eq!(parsed[0].image, "h.io/library/base:1");
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = signature("s", b"body");
        assert!(signature_matches("s", Some(&sig), b"body"));
        assert!(!signature_matches("s", Some(&sig), b"body2"));
        assert!(!signature_matches("t", Some(&sig), b"body"));
        assert!(!signature_matches("s", None, b"body"));
        assert!(!signature_matches("s", Some(&sig[7..]), b"body"));
        assert!(!signature_matches("s", Some("sha256=zz"), b"body"));
    }

    #[test]
    fn namespaces_are_path_components() {
        assert_eq!(readable_namespace("Alice.Smith"), "alice-smith");
        assert_eq!(namespace("bob"), "bob");
        assert_eq!(namespace("alice-smith"), "alice-smith");
        assert!(namespace("__").starts_with("user-x"));
        // Injective: case and escapes never collide.
        let alice = namespace("Alice");
        assert!(alice.starts_with("alice-x"), "{alice}");
        assert_ne!(alice, namespace("alice"));
        assert_ne!(namespace(&alice), alice);
        assert_ne!(namespace("Alice.Smith"), namespace("alice-smith"));
    }
}

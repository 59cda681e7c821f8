//! Custom image builds (seed 002): validated here, built by a runner, completed by Harbor.
//!
//! berth never runs a build. It checks the request (Dockerfile, bases the caller may use,
//! package names, a unique target), records a build, POSTs a signed job to the runner, and
//! learns the result from the runner's status callbacks and from Harbor's PUSH_ARTIFACT for
//! the target tag, which creates the image: ready, private to its owner.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, signature};
use crate::config::{Context, HarborSettings};
use crate::db::{DbError, with_write_tx};
use crate::dockerfile;
use crate::envelope::{Api, ApiError};
use crate::http::{Request, Response};
use crate::image_contents::ArtifactFacts;
use crate::image_ref::ImageRef;
use crate::model::Image;
use crate::outbound::{HttpSender, OutboundRequest};
use crate::request::json_body;
use crate::services::harbor_ops::{artifact_facts, ensure_project_and_webhooks};
use crate::store::builds::{self as store, BuildRow, NewBuild};
use crate::store::image_writes::{self, BuiltImage};
use crate::store::{self as shared, images};
use crate::time;

mod runner;
mod validation;
use runner::stop_in_runner;
use validation::{
    BuildBody, Mode, namespace, new_build_id, packages_dockerfile, resolve_base, valid_apt,
    valid_pip,
};

/// How a build request came in: seed 002's bare answer, or the v1 envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildApi {
    Console,
    V1,
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
        if images::owner_has_name(ctx.db, &caller.name, &name)? {
            return Err(ApiError::conflict(format!(
                "you already have an image named '{}'",
                body.name
            )));
        }
        // The target itself, before anything is dispatched: no image may already be there.
        if images::image_at(ctx.db, &harbor.registry_host, &repository, &target.tag)?.is_some() {
            return Err(ApiError::conflict(format!(
                "an image is already at {}/{target_ref}; choose another name or tag",
                harbor.registry_host
            )));
        }
        if let Some(running) = store::running_to_target(ctx.db, &target_ref)? {
            return Err(ApiError::conflict(format!(
                "a build of '{}' is already running ({running})",
                body.name
            )));
        }
        store::insert(
            ctx.db,
            &NewBuild {
                id: &build_id,
                owner: &caller.name,
                name: &name,
                mode: mode.as_str(),
                base_image: base_ref.clone(),
                base_image_id: base_image.as_ref().map(|i| i.id),
                dockerfile: dockerfile.clone(),
                description: body.description.clone(),
                target: &target_ref,
                now: &now,
                deadline_at: deadline,
            },
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
    if let Err(e) = ensure_project_and_webhooks(&harbor.client(&sender), &harbor).await {
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
    Ok(store::finish(ctx.db, id, status, message, image_id)?)
}

/// A build as the API shows it.
fn view(build: &BuildRow) -> Value {
    json!({
        "build_id": build.id,
        "name": build.name,
        "owner": build.owner,
        "mode": build.mode,
        "status": build.status,
        "message": build.message,
        "log_tail": build.log_tail,
        "base_image": build.base_image,
        "description": build.description,
        "target": build.target,
        "image_id": build.image_id,
        "created_at": time::to_seconds_precision(&build.created_at),
        "updated_at": time::to_seconds_precision(&build.updated_at),
    })
}

fn load(ctx: &Context<'_>, id: &str) -> Result<Option<BuildRow>, ApiError> {
    Ok(store::load(ctx.db, id)?)
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
    Ok(Api::V1.ok(view(&build)))
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
    Ok(Api::V1.ok(view(&build)))
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
    if let Some(facts) = artifact_facts(&client, &harbor, repository, tag).await {
        complete_from_push(ctx, &harbor, &build.target, Some(&facts))?;
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
    let Some(build) = store::unfinished_for_target(ctx.db, target)? else {
        return Ok(false);
    };
    shared::put_cached_value(ctx.db, &pushed_key(&build.id), "", &build.deadline_at)?;
    Ok(true)
}

/// Whether Harbor announced the push of build `id`'s target.
fn pushed(ctx: &Context<'_>, id: &str) -> Result<bool, ApiError> {
    Ok(
        shared::cached_value(ctx.db, &pushed_key(id))?.is_some_and(|(_, expires_at)| {
            time::parse(&expires_at).is_some_and(|t| t.timestamp() > ctx.now)
        }),
    )
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
    let rows = store::unfinished(ctx.db, 4 * batch as i64)?;
    let (mut reconciled, mut finished, mut skipped) = (0, 0, 0);
    for build in rows {
        if reconciled >= batch {
            break;
        }
        let lease = format!("sweep_build_{}", build.id);
        if !shared::claim_lease(ctx.db, &lease, lease_seconds)? {
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
        shared::release_lease(ctx.db, &lease)?;
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
    let rows = store::list_for_owner(ctx.db, &caller.name)?;
    let mut builds = Vec::new();
    for b in rows {
        if expire(ctx, &sender, &b).await? {
            builds.push(view(&load(ctx, &b.id)?.unwrap_or(b)));
        } else {
            builds.push(view(&b));
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
    let build =
        load(ctx, id)?.ok_or_else(|| ApiError::not_found(format!("build {id} not found")))?;
    let changed = match body.status.as_str() {
        "running" => store::set_running(ctx.db, &build.id, log_tail)?,
        "failed" => {
            if let Some(tail) = &log_tail {
                store::set_log_tail(ctx.db, &build.id, tail)?;
            }
            let message = body
                .message
                .unwrap_or_else(|| "the build runner reported a failure".to_owned());
            finish(ctx, &build.id, "failed", Some(&message), None)?
        }
        other => {
            return Err(ApiError::bad_param(
                "status",
                format!("'{other}' is not running or failed"),
            ));
        }
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
    let Some(build) = store::unfinished_for_target(ctx.db, target)? else {
        return Ok(None);
    };
    let (repository, tag) = target.rsplit_once(':').unwrap_or((target, "latest"));
    let base = match build.base_image_id {
        Some(id) => images::get(ctx.db, id)?,
        None => None,
    };
    let facts = facts.cloned().unwrap_or_default();
    let now = time::now_rfc3339();
    with_write_tx(ctx.db, || {
        let image_id = image_writes::insert_built(
            ctx.db,
            &BuiltImage {
                name: &build.name,
                description: build.description.clone(),
                base: base.as_ref(),
                registry: &harbor.registry_host,
                repository,
                tag,
                facts: &facts,
                owner: &build.owner,
                now: &now,
            },
        )
        .map_err(|e| match e {
            DbError::Conflict(_) => {
                ApiError::conflict(format!("image {} already exists", build.name))
            }
            other => other.into(),
        })?
        .ok_or_else(|| ApiError::internal("completing a build", "no id returned"))?;
        finish(ctx, &build.id, "succeeded", None, Some(image_id))?;
        Ok(Some(image_id))
    })
}

//! The importer's part: starting an import (`POST /api/v1/images:import`) and retrying a
//! failed one. A claim under the write lock decides which request owns an attempt; the
//! owner drives Harbor (registry, policy, execution).

use serde_json::json;

use crate::auth::Caller;
use crate::config::{Context, HarborSettings};
use crate::db::{DbError, with_write_tx};
use crate::envelope::{Api, ApiError};
use crate::harbor::{HarborError, PolicySpec, SourceRegistry};
use crate::http::{Request, Response};
use crate::image_ref::ImageRef;
use crate::import_state::Observation;
use crate::outbound::HttpSender;
use crate::request::json_body;
use crate::services::catalog::visible_image;
use crate::services::harbor_ops::{ensure_project_and_webhooks, policy_name};
use crate::store::imports::{self, NewImport};
use crate::store::{image_writes, images, registries};
use crate::time;

use super::observe;
use super::reconcile::stranded;

/// Seed 003's import answer, inside the v1 envelope.
fn import_answer(
    status: u16,
    state: i64,
    message: &str,
    already: i64,
    image_id: Option<i64>,
) -> Response {
    let data = json!({"state": state, "message": message, "alreadyImageId": already, "image_id": image_id});
    if status == 200 {
        Api::V1.ok_with(200, data, Some("success"))
    } else {
        Response::json(
            status,
            &json!({"code": status, "message": message, "data": data}),
        )
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImportBody {
    source: String,
    source_registry: Option<String>,
}

/// Docker Hub's names for itself.
fn same_registry(given: &str, parsed: &str) -> bool {
    let norm = |h: &str| {
        let h = h
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_ascii_lowercase();
        match h.as_str() {
            "index.docker.io"
            | "registry-1.docker.io"
            | "hub.docker.com"
            | "registry.hub.docker.com" => "docker.io".to_owned(),
            _ => h,
        }
    };
    norm(given) == norm(parsed)
}

/// How a request relates to what the catalog already has at the destination.
enum Claim {
    /// This request owns a new attempt.
    Start {
        image_id: i64,
        import_id: i64,
        /// A stranded attempt taken over: when it was claimed (Unix seconds). Harbor may
        /// already have run its execution since.
        redrive: Option<i64>,
    },
    Ready(i64),
    InProgress(i64),
}

/// `POST /api/v1/images:import`: imports `source` into berth's Harbor project, or answers
/// with the import already there.
pub async fn start<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    let body: ImportBody = json_body(req)?;
    let source =
        ImageRef::parse(body.source.trim()).map_err(|e| ApiError::bad_param("source", e))?;
    if let Some(given) = body
        .source_registry
        .as_deref()
        .filter(|g| !g.trim().is_empty())
    {
        if !same_registry(given, &source.registry) {
            return Err(ApiError::bad_param(
                "sourceRegistry",
                format!(
                    "'{given}' does not match the source's registry '{}'",
                    source.registry
                ),
            ));
        }
    }
    // Harbor replicates tags, never a bare digest: a pin names its tag too, and the copy
    // is accepted only if Harbor holds that digest.
    if source.digest.is_some() && !crate::image_ref::names_tag(body.source.trim()) {
        return Err(ApiError::bad_param(
            "source",
            format!(
                "'{}' pins a digest without a tag: Harbor replicates tags, so name the tag too \
                 (e.g. {}/{}:<tag>@<digest>); berth checks that the tag holds the digest",
                body.source.trim(),
                source.registry,
                source.repository
            ),
        ));
    }
    let settings = ctx.settings.harbor()?;
    if !settings
        .allowed_sources
        .iter()
        .any(|a| a == &source.registry)
    {
        return Err(ApiError::forbidden(format!(
            "{} is not an allowed import source; allowed: {}",
            source.registry,
            settings.allowed_sources.join(", ")
        )));
    }
    claim_and_run(ctx, &settings, sender, &source, caller).await
}

/// Claims the import of `source` and, when this request owns a new attempt, runs it;
/// otherwise answers with what is already there.
async fn claim_and_run<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    sender: S,
    source: &ImageRef,
    caller: &Caller,
) -> Result<Response, ApiError> {
    match claim(ctx, settings, source, caller)? {
        Claim::Ready(id) => Ok(import_answer(200, 2, "Image already exists", id, Some(id))),
        Claim::InProgress(id) => Ok(import_answer(
            200,
            1,
            "Image import already in progress",
            0,
            Some(id),
        )),
        Claim::Start {
            image_id,
            import_id,
            redrive,
        } => run_import(ctx, settings, sender, source, image_id, import_id, redrive).await,
    }
}

/// Decides, under the write lock, whether this request starts an attempt.
fn claim(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    source: &ImageRef,
    caller: &Caller,
) -> Result<Claim, ApiError> {
    let (registry, repository, tag) = settings.destination(source);
    let db = ctx.db;
    with_write_tx(db, || {
        let now = time::now_rfc3339();
        let image = images::image_at(db, &registry, &repository, &tag)?;
        // A copy the caller may not see (an admin made it private or took it offline) is
        // not theirs to re-import, and the answer names nothing of it: no id, no status.
        if image.as_ref().is_some_and(|i| !images::can_see(caller, i)) {
            return Err(ApiError::conflict(format!(
                "{} cannot be imported: berth's copy of it is withheld by an admin; ask an admin",
                source.tagged()
            )));
        }
        let image_id = match image {
            Some(i) if i.status == "ready" => {
                if let Some(pin) = &source.digest {
                    if i.digest.as_deref() != Some(pin.as_str()) {
                        return Err(ApiError::conflict(format!(
                            "berth's copy of {} holds {}, not the pinned {pin}",
                            source.tagged(),
                            i.digest.as_deref().unwrap_or("an unknown digest")
                        )));
                    }
                }
                return Ok(Claim::Ready(i.id));
            }
            Some(i) if i.status == "importing" => {
                let latest = imports::latest_import(db, i.id)?;
                if let Some(r) = latest.as_ref().filter(|r| stranded(r, settings, ctx.now)) {
                    imports::take_stranded(db, r.id)?;
                    return Ok(Claim::Start {
                        image_id: i.id,
                        import_id: r.id,
                        redrive: Some(time::unix_seconds(&r.started_at)),
                    });
                }
                let expired = latest.is_some_and(|r| {
                    time::parse(&r.deadline_at).is_some_and(|d| d.timestamp() < ctx.now)
                });
                if !expired {
                    return Ok(Claim::InProgress(i.id));
                }
                i.id
            }
            Some(i) if i.status == "failed" => i.id,
            Some(_) => {
                // No id: the row may be one the caller cannot see.
                return Err(ApiError::conflict(format!(
                    "{} is in the catalog, not as an import",
                    source.tagged()
                )));
            }
            None => {
                let name = source.tagged();
                image_writes::insert_imported(
                    db,
                    &name,
                    (&registry, &repository, &tag),
                    &caller.name,
                    &now,
                )
                // Another image (not at this destination) may already hold the name.
                .map_err(|e| match e {
                    DbError::Conflict(_) => ApiError::conflict(format!(
                        "an image named '{name}' already exists and is not this import; \
                         ask an admin to rename it, then import again"
                    )),
                    other => other.into(),
                })?
                .ok_or_else(|| ApiError::internal("recording an import", "no id returned"))?
            }
        };
        image_writes::mark_importing(db, image_id, &caller.name, &now)?;
        let attempt = imports::attempts(db, image_id)? + 1;
        let deadline = time::to_rfc3339(
            chrono::Utc::now() + chrono::Duration::seconds(settings.deadline_seconds),
        );
        let import_id = imports::insert_import(
            db,
            &NewImport {
                image_id,
                source: source.to_string(),
                source_registry: &source.registry,
                attempt,
                now: &now,
                deadline_at: deadline,
            },
        )?
        .ok_or_else(|| ApiError::internal("recording an import", "no id returned"))?;
        Ok(Claim::Start {
            image_id,
            import_id,
            redrive: None,
        })
    })
}

/// Drives Harbor for a claimed attempt: registry, policy, execution.
pub(super) async fn run_import<S: HttpSender>(
    ctx: &Context<'_>,
    settings: &HarborSettings,
    sender: S,
    source: &ImageRef,
    image_id: i64,
    import_id: i64,
    redrive: Option<i64>,
) -> Result<Response, ApiError> {
    let client = settings.client(&sender);
    // An admin-managed registry (with its credentials) for the source's host, else an
    // anonymous endpoint.
    let managed = registries::harbor_registry_for(ctx.db, &source.registry)?;
    let registry = SourceRegistry::for_image(source);
    let steps = async {
        ensure_project_and_webhooks(&client, settings).await?;
        let registry_id = match managed {
            Some(id) => id,
            None => client.ensure_registry(&registry).await?,
        };
        let mut policy = PolicySpec::new(
            policy_name(source),
            registry_id,
            source.repository.clone(),
            source.tag.clone(),
        )
        .with_replace_count(0)
        .with_dest_namespace(settings.dest_namespace(source));
        // Harbor before v2.13 names no execution in its REPLICATION events, only the
        // policy's description: it carries the policy name so berth can match them.
        policy.description = format!("Image import managed by berth ({})", policy.name);
        let policy_id = client.ensure_pull_policy(&policy).await?;
        // A re-drive adopts the execution the first run started before it stopped, if it
        // got that far: in progress, succeeded or failed, it is this attempt's copy.
        let adopted = match redrive {
            Some(claimed) => client.latest_execution_since(policy_id, claimed).await?,
            None => None,
        };
        let execution_id = match adopted {
            Some(id) => id,
            None => client.start_execution(policy_id).await?,
        };
        Ok::<_, HarborError>((registry_id, policy_id, execution_id))
    };
    match steps.await {
        Ok((registry_id, policy_id, execution_id)) => {
            imports::set_running(ctx.db, import_id, registry_id, policy_id, execution_id)?;
            Ok(import_answer(
                200,
                1,
                "Image import started",
                0,
                Some(image_id),
            ))
        }
        Err(e) => {
            let message = match &e {
                HarborError::Unreachable(_) => format!(
                    "Harbor is unreachable, the import of {} was not started: {e}",
                    source.tagged()
                ),
                _ => format!(
                    "Harbor refused to start the import of {}: {e}",
                    source.tagged()
                ),
            };
            observe(ctx.db, image_id, &Observation::Failed, Some(&message), None)?;
            Ok(import_answer(502, 0, &message, 0, Some(image_id)))
        }
    }
}

/// `PUT /api/v1/images/{id}/importing:retry`: imports a failed import's source again.
pub async fn retry<S: HttpSender>(
    id: i64,
    ctx: &Context<'_>,
    caller: &Caller,
    sender: S,
) -> Result<Response, ApiError> {
    let image = visible_image(id, ctx, caller)?;
    // Imports have no owner; the one who started it (or an admin) may retry it, as they
    // could by importing the same source again.
    if !caller.is_admin() && image.created_by.as_deref() != Some(caller.name.as_str()) {
        return Err(ApiError::forbidden(
            "only the user who started the import or an admin can retry it",
        ));
    }
    let row = imports::latest_import(ctx.db, id)?
        .ok_or_else(|| ApiError::conflict(format!("image {id} was not imported")))?;
    if image.status != "failed" {
        return Err(ApiError::conflict(format!(
            "image {id} is {}, only a failed import can be retried",
            image.status
        )));
    }
    let source =
        ImageRef::parse(&row.source).map_err(|e| ApiError::internal("reading an import", e))?;
    let settings = ctx.settings.harbor()?;
    claim_and_run(ctx, &settings, sender, &source, caller).await
}

//! Sync workers' progress callbacks (`PUT /api/v1/images:import/{name}/progress`).

use serde_json::{Value, json};

use crate::config::Context;
use crate::envelope::{Api, ApiError};
use crate::http::{Request, Response};
use crate::image_contents::ArtifactFacts;
use crate::image_ref::ImageRef;
use crate::import_state::Observation;
use crate::request::json_body;
use crate::store::{images, imports};

use super::{Applied, observe_state, require_worker_token};

/// `PUT /api/v1/images:import/{name}/progress` from a sync worker.
pub fn worker_progress(name: &str, req: &Request, ctx: &Context<'_>) -> Result<Response, ApiError> {
    require_worker_token(req, ctx)?;
    use base64::Engine;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(name.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad_param("name", "is not base64url of an image reference"))?;
    let reference = ImageRef::parse(&decoded).map_err(|e| ApiError::bad_param("name", e))?;
    let mut body: Value = json_body(req)?;
    let object = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let status = object.remove("status");
    let message = object
        .remove("message")
        .and_then(|m| m.as_str().map(str::to_owned));
    let mut facts = ArtifactFacts::default();
    let mut has_facts = false;
    if let Some(d) = object.remove("digest") {
        facts.digest = crate::image_ref::parse_digest(d.as_str().unwrap_or_default())
            .map_err(|e| ApiError::bad_param("digest", e))?;
        has_facts = true;
    }
    if let Some(s) = object.remove("size") {
        facts.size = s
            .as_i64()
            .filter(|s| *s >= 0)
            .ok_or_else(|| ApiError::bad_param("size", "must be a non-negative integer"))?;
    }
    facts.arch = object
        .remove("arch")
        .and_then(|v| v.as_str().map(str::to_owned));
    facts.os = object
        .remove("os")
        .and_then(|v| v.as_str().map(str::to_owned));
    let layers = crate::import_state::parse_layers(&Value::Object(object.clone()))
        .map_err(ApiError::bad_request)?;

    let image = images::image_at(
        ctx.db,
        &reference.registry,
        &reference.repository,
        &reference.tag,
    )?
    .ok_or_else(|| ApiError::not_found(format!("no import of {} is known", reference.tagged())))?;
    let not_imported = || ApiError::not_found(format!("{} was not imported", reference.tagged()));
    // Each observation is one write transaction that reads the import under the lock and
    // returns its state afterwards: the answer needs no further read.
    let mut observations = Vec::new();
    if !layers.is_empty() {
        observations.push((Observation::Layers(layers), None, None));
    }
    match status.as_ref().and_then(Value::as_str) {
        Some("completed" | "succeeded" | "ready") => {
            let facts = has_facts.then_some(&facts);
            observations.push((Observation::Succeeded, message, facts));
        }
        Some("failed") => {
            let message = message.unwrap_or_else(|| "the sync worker reported a failure".into());
            observations.push((Observation::Failed, Some(message), None));
        }
        Some(other) => {
            return Err(ApiError::bad_param(
                "status",
                format!("'{other}' is not completed or failed"),
            ));
        }
        None => {}
    }
    let mut changed = false;
    let mut state = None;
    for (observation, message, facts) in &observations {
        let (applied, after) =
            observe_state(ctx.db, image.id, observation, message.as_deref(), *facts)?
                .ok_or_else(not_imported)?;
        changed |= applied == Applied::Changed;
        state = Some(after);
    }
    let state = match state {
        Some(s) => s,
        None => {
            imports::latest_import(ctx.db, image.id)?
                .ok_or_else(not_imported)?
                .state
        }
    };
    Ok(Api::V1.ok(json!({
        "image_id": image.id,
        "changed": changed,
        "progress": state.progress,
        "layersDetail": state.layers,
        "importState": state.phase.as_str(),
    })))
}

/// The value a worker puts in the progress URL for an image.
pub fn progress_name(reference: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(reference)
}

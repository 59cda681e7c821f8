//! The Harbor operations imports, builds and admin share: berth's project and its
//! webhooks, where an image lives in the project, reading an artifact's facts, deleting one.

use crate::config::{Context, HarborSettings};
use crate::envelope::ApiError;
use crate::harbor::{DeleteOutcome, HarborClient, HarborError, WebhookSpec};
use crate::image_contents::{self, ArtifactFacts};
use crate::image_ref::ImageRef;
use crate::model::Image;
use crate::outbound::HttpSender;

/// Makes sure berth's Harbor project exists and sends berth its events (when berth knows
/// its own webhook address).
pub async fn ensure_project_and_webhooks<S: HttpSender>(
    client: &HarborClient<S>,
    settings: &HarborSettings,
) -> Result<(), HarborError> {
    client.ensure_project().await?;
    if !settings.webhook_url.is_empty() {
        client
            .ensure_webhook_spec(&WebhookSpec {
                name: "berth".into(),
                address: settings.webhook_url.clone(),
                auth_header: format!("Bearer {}", settings.webhook_secret.expose()),
                event_types: vec![
                    "REPLICATION".into(),
                    "PUSH_ARTIFACT".into(),
                    "DELETE_ARTIFACT".into(),
                    "SCANNING_COMPLETED".into(),
                    "SCANNING_FAILED".into(),
                ],
            })
            .await?;
    }
    Ok(())
}

/// One replication policy per source reference, named deterministically.
pub fn policy_name(source: &ImageRef) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(source.tagged().as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("berth-import-{hex}")
}

/// The repository path inside the project: `pytorch/pytorch` for `catalog/pytorch/pytorch`.
pub fn repository_in_project<'a>(settings: &HarborSettings, repository: &'a str) -> &'a str {
    repository
        .strip_prefix(settings.harbor.project.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(repository)
}

/// The facts of `repository:tag` as Harbor holds it (its platforms' sizes and contents
/// included); `None` while it cannot be read.
pub async fn artifact_facts<S: HttpSender>(
    client: &HarborClient<S>,
    settings: &HarborSettings,
    repository: &str,
    tag: &str,
) -> Option<ArtifactFacts> {
    let repo = repository_in_project(settings, repository);
    match client.artifact(repo, tag).await {
        Ok(mut artifact) => {
            // Also fills each platform's size.
            let contents = image_contents::read(client, repo, tag, &mut artifact).await;
            let mut facts: ArtifactFacts = artifact.into();
            facts.contents = Some(contents);
            Some(facts)
        }
        Err(e) => {
            eprintln!("warning: reading artifact {repo}:{tag}: {e}");
            None
        }
    }
}

/// Deletes the image's artifact in Harbor; an artifact already gone is fine.
pub async fn delete_in_harbor<S: HttpSender>(
    ctx: &Context<'_>,
    image: &Image,
    sender: S,
) -> Result<(), ApiError> {
    if !matches!(image.origin.as_str(), "import" | "build") || image.status == "failed" {
        return Ok(());
    }
    let settings = ctx.settings.harbor()?;
    if image.registry != settings.registry_host {
        return Ok(());
    }
    let repo = repository_in_project(&settings, &image.repository);
    match settings
        .client(&sender)
        .delete_artifact(repo, &image.tag)
        .await
    {
        Ok(DeleteOutcome::Deleted | DeleteOutcome::NotFound) => Ok(()),
        Err(e) => Err(ApiError::new(
            502,
            format!(
                "Harbor did not delete {}: {e}; the image was kept, try again",
                image.registry_url()
            ),
        )),
    }
}

//! Harbor v2 API client: the calls berth makes to import images through Harbor's pull
//! replication (CONTRACT §8), read what was imported, and receive webhooks.
//!
//! Generic over [`HttpSender`], so it runs over Spin's outbound HTTP in components and
//! over a scripted fake in tests. Every request carries basic auth; the password never
//! appears in `Debug` output or in an error.

mod encode;
mod error;
mod image;
mod policy;
mod source;
mod types;

#[cfg(test)]
mod contract_tests;
#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

use std::fmt;

use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use encode::repository as encode_repository;
pub use error::HarborError;
pub use image::{ArtifactDetails, ImageConfig, Layer, ScanSummary};
pub use policy::{PolicySpec, replace_namespace};
pub use source::{
    DOCKER_HUB_KIND, DOCKER_HUB_NAME, DOCKER_HUB_URL, DOCKER_REGISTRY_KIND, SourceRegistry,
    normalize_url,
};
pub use types::{
    Artifact, Execution, ExecutionOutcome, ExecutionStatus, Platform, Registry, RegistryCredential,
    ReplicationFilter, ReplicationPolicy, ReplicationTrigger, Statistics, SystemInfo, Task,
    WebhookPolicy, WebhookTarget,
};

use crate::outbound::{HttpSender, OutboundRequest, OutboundResponse};

/// Harbor's API root under the base URL.
pub const API_PREFIX: &str = "/api/v2.0";
/// Harbor's maximum page size (CONTRACT §0.4).
const PAGE_SIZE: usize = 100;
/// A bound on paging, against a server that keeps announcing a next page.
const MAX_PAGES: usize = 100;

/// Where Harbor is and who berth is there.
#[derive(Clone, PartialEq, Eq)]
pub struct HarborConfig {
    /// `http://127.0.0.1:8099` or `https://harbor.example.com`, without a trailing slash.
    pub base_url: String,
    /// A user or a robot (`robot$name`); imports need a system-level robot or an admin.
    pub username: String,
    pub password: String,
    /// The Harbor project images are imported into.
    pub project: String,
}

impl fmt::Debug for HarborConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HarborConfig")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"*****")
            .field("project", &self.project)
            .finish()
    }
}

/// What [`HarborClient::delete_artifact`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// Harbor answered 404: the artifact (or its repository) was already gone.
    NotFound,
}

/// The webhook policy berth keeps on its project (CONTRACT §7).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub name: String,
    /// Where Harbor POSTs events.
    pub address: String,
    /// Sent verbatim as `Authorization` (include the scheme: `Bearer …`).
    pub auth_header: String,
    /// e.g. `REPLICATION`, `PUSH_ARTIFACT`, `DELETE_ARTIFACT`.
    pub event_types: Vec<String>,
}

impl fmt::Debug for WebhookSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSpec")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("auth_header", &"*****")
            .field("event_types", &self.event_types)
            .finish()
    }
}

impl WebhookSpec {
    fn body(&self, creator: &str) -> Value {
        json!({
            "name": self.name,
            "description": "Harbor events for berth",
            "targets": [{
                "type": "http",
                "address": self.address,
                "auth_header": self.auth_header,
                "skip_cert_verify": false,
                "payload_format": "Default",
            }],
            "event_types": self.event_types,
            "enabled": true,
            "creator": creator,
        })
    }

    /// Whether Harbor's policy delivers what this spec asks for. Description and creator
    /// are informational; an empty `payload_format` is stored as `Default`.
    pub fn is_satisfied_by(&self, existing: &WebhookPolicy) -> bool {
        let target_ok = match existing.targets.as_slice() {
            [t] => {
                t.kind == "http"
                    && t.address == self.address
                    && t.auth_header == self.auth_header
                    && !t.skip_cert_verify
                    && matches!(t.payload_format.as_str(), "" | "Default")
            }
            _ => false,
        };
        let mut want = self.event_types.clone();
        let mut have = existing.event_types.clone();
        want.sort();
        want.dedup();
        have.sort();
        have.dedup();
        target_ok && want == have && existing.enabled
    }
}

/// The Harbor v2 client. Cheap to build; build one per inbound request if convenient.
pub struct HarborClient<S> {
    sender: S,
    config: HarborConfig,
    request_id: Option<String>,
}

impl<S> fmt::Debug for HarborClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HarborClient")
            .field("config", &self.config)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// One request to Harbor, before auth and the base URL are added.
struct Call {
    method: &'static str,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    /// `X-Is-Resource-Name: true`: the `{project_name_or_id}` segment is a name.
    resource_name: bool,
}

impl Call {
    fn new(method: &'static str, path: impl Into<String>) -> Call {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            resource_name: false,
        }
    }

    fn query(mut self, key: &'static str, value: impl Into<String>) -> Call {
        self.query.push((key, value.into()));
        self
    }

    fn json(mut self, body: Value) -> Call {
        self.body = Some(body);
        self
    }

    fn by_name(mut self) -> Call {
        self.resource_name = true;
        self
    }
}

fn is_success(r: &OutboundResponse) -> bool {
    (200..300).contains(&r.status)
}

impl<S: HttpSender> HarborClient<S> {
    pub fn new(sender: S, config: HarborConfig) -> HarborClient<S> {
        HarborClient {
            sender,
            config,
            request_id: None,
        }
    }

    /// Sends `X-Request-Id` on every request (Harbor echoes it as `X-Request-ID`).
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> HarborClient<S> {
        let id = request_id.into();
        self.request_id = Some(id).filter(|id| !id.is_empty());
        self
    }

    pub fn config(&self) -> &HarborConfig {
        &self.config
    }

    pub fn sender(&self) -> &S {
        &self.sender
    }

    fn url(&self, call: &Call) -> String {
        let mut url = format!(
            "{}{API_PREFIX}{}",
            self.config.base_url.trim_end_matches('/'),
            call.path
        );
        if !call.query.is_empty() {
            url.push('?');
            url.push_str(&encode::query_string(&call.query));
        }
        url
    }

    fn error(&self, e: HarborError) -> HarborError {
        e.redact(&self.config.password)
    }

    /// Sends one call; any HTTP answer is `Ok`.
    async fn send(&self, call: &Call) -> Result<OutboundResponse, HarborError> {
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.config.username, self.config.password));
        let mut request = OutboundRequest::new(call.method, self.url(call))
            .header("authorization", format!("Basic {credentials}"))
            .header("accept", "application/json");
        if let Some(id) = &self.request_id {
            request = request.header("x-request-id", id.as_str());
        }
        if call.resource_name {
            request = request.header("x-is-resource-name", "true");
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        self.sender
            .send(request)
            .await
            .map_err(|e| self.error(HarborError::Unreachable(e.0)))
    }

    /// Sends one call; a non-2xx answer is an error.
    async fn send_ok(&self, call: &Call) -> Result<OutboundResponse, HarborError> {
        let response = self.send(call).await?;
        if is_success(&response) {
            Ok(response)
        } else {
            Err(self.status_error(&response))
        }
    }

    fn status_error(&self, response: &OutboundResponse) -> HarborError {
        self.error(HarborError::from_response(response))
    }

    fn parse<T: DeserializeOwned>(
        &self,
        what: &str,
        r: &OutboundResponse,
    ) -> Result<T, HarborError> {
        serde_json::from_slice(&r.body).map_err(|e| {
            self.error(HarborError::Protocol(format!(
                "the {what} in Harbor's answer could not be read ({e})"
            )))
        })
    }

    /// The id in a 201's `Location` header.
    fn created_id(&self, what: &str, r: &OutboundResponse) -> Result<i64, HarborError> {
        r.header("location")
            .and_then(encode::id_from_location)
            .ok_or_else(|| {
                HarborError::Protocol(format!(
                    "Harbor created the {what} but sent no Location header with its id"
                ))
            })
    }

    /// Every page of a list endpoint (CONTRACT §0.4), `page_size` 100.
    async fn list_all<T: DeserializeOwned>(
        &self,
        what: &str,
        call: Call,
    ) -> Result<Vec<T>, HarborError> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut paged = Call {
                method: call.method,
                path: call.path.clone(),
                query: call.query.clone(),
                body: None,
                resource_name: call.resource_name,
            };
            paged.query.push(("page", page.to_string()));
            paged.query.push(("page_size", PAGE_SIZE.to_string()));
            let response = self.send_ok(&paged).await?;
            let batch: Vec<T> = self.parse(what, &response)?;
            let got = batch.len();
            items.extend(batch);
            let next_link = response.header("link").is_some_and(encode::has_next_link);
            let more_counted = response
                .header("x-total-count")
                .and_then(|t| t.trim().parse::<usize>().ok())
                .is_some_and(|total| items.len() < total);
            if got == 0 || !(next_link || more_counted) {
                break;
            }
        }
        Ok(items)
    }

    fn project_path(&self) -> String {
        format!("/projects/{}", encode::segment(&self.config.project))
    }

    fn artifact_path(&self, repository: &str, reference: &str) -> String {
        format!(
            "{}/repositories/{}/artifacts/{}",
            self.project_path(),
            encode::repository(repository),
            encode::segment(reference)
        )
    }

    /// Makes sure the project exists (CONTRACT §1): `HEAD`, then `POST` (private) on 404;
    /// a 409 from a concurrent create counts as success.
    pub async fn ensure_project(&self) -> Result<(), HarborError> {
        let head = Call::new("HEAD", "/projects").query("project_name", &self.config.project);
        let response = self.send(&head).await?;
        match response.status {
            200..=299 => return Ok(()),
            404 => {}
            _ => return Err(self.status_error(&response)),
        }
        let create = Call::new("POST", "/projects").json(json!({
            "project_name": self.config.project,
            "metadata": {"public": "false"},
        }));
        let response = self.send(&create).await?;
        match response.status {
            200..=299 | 409 => Ok(()),
            _ => Err(self.status_error(&response)),
        }
    }

    /// All registries of one adapter type (or all, for an empty `kind`).
    pub async fn registries(&self, kind: &str) -> Result<Vec<Registry>, HarborError> {
        let mut call = Call::new("GET", "/registries");
        if !kind.is_empty() {
            call = call.query("q", format!("type={kind}"));
        }
        self.list_all("registry list", call).await
    }

    /// The id of a Harbor registry for this source (CONTRACT §2): an existing one of the
    /// same type and normalized URL (preferring one with the same access key), or a new
    /// one. A 409 on the name means someone created it meanwhile: it is looked up by name
    /// and used if it points at the same endpoint. Credentials of an existing registry
    /// are not updated.
    pub async fn ensure_registry(&self, source: &SourceRegistry) -> Result<i64, HarborError> {
        let existing = self.registries(&source.kind).await?;
        let candidates: Vec<&Registry> = existing.iter().filter(|r| source.matches(r)).collect();
        self.reuse_or_create_registry(source, &candidates).await
    }

    /// The id of the registry endpoint named exactly `source.name` (same type and URL),
    /// created when missing. For credentials berth manages: Harbor masks secrets, so a
    /// rotated secret gets an endpoint of its own (a new name) instead of an old one.
    pub async fn ensure_named_registry(&self, source: &SourceRegistry) -> Result<i64, HarborError> {
        let existing = self.registries(&source.kind).await?;
        let candidates: Vec<&Registry> = existing
            .iter()
            .filter(|r| source.matches(r) && r.name == source.name)
            .collect();
        self.reuse_or_create_registry(source, &candidates).await
    }

    async fn reuse_or_create_registry(
        &self,
        source: &SourceRegistry,
        candidates: &[&Registry],
    ) -> Result<i64, HarborError> {
        if let Some(r) = candidates
            .iter()
            .find(|r| source.same_access_key(r))
            .or_else(|| candidates.first())
        {
            return Ok(r.id);
        }
        let create = Call::new("POST", "/registries").json(source.create_body());
        let response = self.send(&create).await?;
        if is_success(&response) {
            return self.created_id("registry", &response);
        }
        let error = self.status_error(&response);
        if !error.is_conflict() {
            return Err(error);
        }
        let by_name: Vec<Registry> = self
            .list_all(
                "registry list",
                Call::new("GET", "/registries").query("q", format!("name={}", source.name)),
            )
            .await?;
        match by_name.iter().find(|r| r.name == source.name) {
            Some(r) if source.matches(r) => Ok(r.id),
            Some(r) => Err(HarborError::Status {
                status: 409,
                code: "CONFLICT".to_owned(),
                message: format!(
                    "a registry named {} already exists for {} {}, not {} {}",
                    source.name, r.kind, r.url, source.kind, source.url
                ),
            }),
            None => Err(error),
        }
    }

    /// The policy named `name`, if any.
    pub async fn find_policy(&self, name: &str) -> Result<Option<ReplicationPolicy>, HarborError> {
        let call = Call::new("GET", "/replication/policies").query("q", format!("name={name}"));
        let policies: Vec<ReplicationPolicy> = self.list_all("policy list", call).await?;
        Ok(policies.into_iter().find(|p| p.name == name))
    }

    /// The id of the pull policy for this spec (CONTRACT §3, §8 step 4): created when
    /// missing, updated (`PUT`) when it differs, as is otherwise.
    pub async fn ensure_pull_policy(&self, spec: &PolicySpec) -> Result<i64, HarborError> {
        let project = self.config.project.as_str();
        if let Some(existing) = self.find_policy(&spec.name).await? {
            return self.update_policy_if_drifted(spec, &existing).await;
        }
        let create = Call::new("POST", "/replication/policies").json(spec.body(project));
        let response = self.send(&create).await?;
        if is_success(&response) {
            return self.created_id("replication policy", &response);
        }
        let error = self.status_error(&response);
        if !error.is_conflict() {
            return Err(error);
        }
        match self.find_policy(&spec.name).await? {
            Some(existing) => self.update_policy_if_drifted(spec, &existing).await,
            None => Err(error),
        }
    }

    async fn update_policy_if_drifted(
        &self,
        spec: &PolicySpec,
        existing: &ReplicationPolicy,
    ) -> Result<i64, HarborError> {
        let project = self.config.project.as_str();
        if !spec.drift(existing, project).is_empty() {
            let put = Call::new("PUT", format!("/replication/policies/{}", existing.id))
                .json(spec.body(project));
            self.send_ok(&put).await?;
        }
        Ok(existing.id)
    }

    /// Starts the policy (CONTRACT §4.1); the execution id comes from `Location`.
    pub async fn start_execution(&self, policy_id: i64) -> Result<i64, HarborError> {
        let call =
            Call::new("POST", "/replication/executions").json(json!({"policy_id": policy_id}));
        let response = self.send_ok(&call).await?;
        self.created_id("replication execution", &response)
    }

    /// The policy's latest execution started at or after `since` (Unix seconds; Harbor
    /// shows whole seconds), whatever its status: an import re-driven after a crash adopts
    /// the execution its first run may have started, in progress or finished, instead of
    /// copying the source a second time.
    pub async fn latest_execution_since(
        &self,
        policy_id: i64,
        since: i64,
    ) -> Result<Option<i64>, HarborError> {
        let call =
            Call::new("GET", "/replication/executions").query("policy_id", policy_id.to_string());
        let executions: Vec<types::RawExecution> =
            self.list_all("replication execution list", call).await?;
        Ok(executions
            .into_iter()
            .map(Execution::from)
            .filter(|e| e.policy_id == policy_id)
            .filter_map(|e| {
                let started = chrono::DateTime::parse_from_rfc3339(e.start_time.as_deref()?)
                    .ok()?
                    .timestamp();
                (started >= since).then_some((started, e.id))
            })
            .max()
            .map(|(_, id)| id))
    }

    /// Polls an execution (CONTRACT §4.2); see [`Execution::is_finished`] and
    /// [`Execution::outcome`].
    pub async fn execution(&self, execution_id: i64) -> Result<Execution, HarborError> {
        let call = Call::new("GET", format!("/replication/executions/{execution_id}"));
        let response = self.send_ok(&call).await?;
        let raw: types::RawExecution = self.parse("replication execution", &response)?;
        Ok(raw.into())
    }

    /// Stops an execution and its tasks (CONTRACT §4.4). The answer body is not read.
    pub async fn stop_execution(&self, execution_id: i64) -> Result<(), HarborError> {
        let call = Call::new("PUT", format!("/replication/executions/{execution_id}"));
        self.send_ok(&call).await.map(drop)
    }

    /// All tasks of an execution (CONTRACT §4.3), every page.
    pub async fn tasks(&self, execution_id: i64) -> Result<Vec<Task>, HarborError> {
        let call = Call::new(
            "GET",
            format!("/replication/executions/{execution_id}/tasks"),
        );
        let raw: Vec<types::RawTask> = self.list_all("replication task list", call).await?;
        Ok(raw.into_iter().map(Task::from).collect())
    }

    /// An artifact of the project (CONTRACT §5.1), with its tags. `repository` excludes
    /// the project (`nginx`, `nvidia/pytorch`); `reference` is a tag or a digest.
    pub async fn artifact(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Artifact, HarborError> {
        let call =
            Call::new("GET", self.artifact_path(repository, reference)).query("with_tag", "true");
        let response = self.send_ok(&call).await?;
        let raw: types::RawArtifact = self.parse("artifact", &response)?;
        Ok(raw.into())
    }

    /// Reads each platform child of an index by digest to fill [`Platform::size`].
    pub async fn fill_platform_sizes(
        &self,
        repository: &str,
        artifact: &mut Artifact,
    ) -> Result<(), HarborError> {
        for platform in &mut artifact.platforms {
            let call = Call::new("GET", self.artifact_path(repository, &platform.digest))
                .query("with_tag", "false");
            let response = self.send_ok(&call).await?;
            let raw: types::RawArtifact = self.parse("artifact", &response)?;
            platform.size = Some(raw.size());
        }
        Ok(())
    }

    /// Deletes an artifact with all its tags (CONTRACT §5.2). A 404 is reported as
    /// [`DeleteOutcome::NotFound`], not as an error.
    pub async fn delete_artifact(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<DeleteOutcome, HarborError> {
        let call = Call::new("DELETE", self.artifact_path(repository, reference));
        let response = self.send(&call).await?;
        match response.status {
            200..=299 => Ok(DeleteOutcome::Deleted),
            404 => Ok(DeleteOutcome::NotFound),
            _ => Err(self.status_error(&response)),
        }
    }

    /// Harbor's counts (CONTRACT §6).
    pub async fn statistics(&self) -> Result<Statistics, HarborError> {
        let response = self.send_ok(&Call::new("GET", "/statistics")).await?;
        self.parse("statistics", &response)
    }

    /// Harbor's system information (`GET /systeminfo`); `harbor_version` is only shown to
    /// an authenticated caller, which berth always is.
    pub async fn system_info(&self) -> Result<SystemInfo, HarborError> {
        let response = self.send_ok(&Call::new("GET", "/systeminfo")).await?;
        self.parse("system information", &response)
    }

    fn webhook_path(&self) -> String {
        format!("{}/webhook/policies", self.project_path())
    }

    /// The project's webhook policy named `spec.name`, if any.
    pub async fn find_webhook_policy(
        &self,
        name: &str,
    ) -> Result<Option<WebhookPolicy>, HarborError> {
        let call = Call::new("GET", self.webhook_path())
            .by_name()
            .query("q", format!("name={name}"));
        let policies: Vec<WebhookPolicy> = self.list_all("webhook policy list", call).await?;
        Ok(policies.into_iter().find(|p| p.name == name))
    }

    /// The id of the project's webhook policy `name` (CONTRACT §7.2), delivering
    /// `event_types` to `address` with `Authorization: <auth_header>`: created when
    /// missing (a 409 from a concurrent create is looked up again), updated when its
    /// target, event types or enabled flag differ.
    pub async fn ensure_webhook_policy(
        &self,
        name: &str,
        address: &str,
        auth_header: &str,
        event_types: &[&str],
    ) -> Result<i64, HarborError> {
        let spec = WebhookSpec {
            name: name.to_owned(),
            address: address.to_owned(),
            auth_header: auth_header.to_owned(),
            event_types: event_types.iter().map(|&e| e.to_owned()).collect(),
        };
        self.ensure_webhook_spec(&spec).await
    }

    /// [`ensure_webhook_policy`](Self::ensure_webhook_policy) from a [`WebhookSpec`].
    pub async fn ensure_webhook_spec(&self, spec: &WebhookSpec) -> Result<i64, HarborError> {
        if let Some(existing) = self.find_webhook_policy(&spec.name).await? {
            return self.update_webhook_if_drifted(spec, &existing).await;
        }
        let create = Call::new("POST", self.webhook_path())
            .by_name()
            .json(spec.body(&self.config.username));
        let response = self.send(&create).await?;
        if is_success(&response) {
            return self.created_id("webhook policy", &response);
        }
        let error = self.status_error(&response);
        if !error.is_conflict() {
            return Err(error);
        }
        match self.find_webhook_policy(&spec.name).await? {
            Some(existing) => self.update_webhook_if_drifted(spec, &existing).await,
            None => Err(error),
        }
    }

    async fn update_webhook_if_drifted(
        &self,
        spec: &WebhookSpec,
        existing: &WebhookPolicy,
    ) -> Result<i64, HarborError> {
        if !spec.is_satisfied_by(existing) {
            let put = Call::new("PUT", format!("{}/{}", self.webhook_path(), existing.id))
                .by_name()
                .json(spec.body(&self.config.username));
            self.send_ok(&put).await?;
        }
        Ok(existing.id)
    }
}

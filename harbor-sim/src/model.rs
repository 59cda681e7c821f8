//! The simulator's in-memory database and the REST renderings of its rows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::content::Manifest;
use crate::util::{Obj, fmt_time};
use crate::{Faults, ProjectSeed, RunnerControl, UpstreamImage};

pub type Time = DateTime<Utc>;

#[derive(Clone, Debug)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub public: bool,
    pub created: Time,
    pub updated: Time,
}

#[derive(Clone, Debug)]
pub struct Registry {
    pub id: i64,
    pub name: String,
    pub rtype: String,
    pub url: String,
    pub description: String,
    pub insecure: bool,
    pub cred_type: String,
    pub access_key: String,
    pub access_secret: String,
    pub ca_certificate: Option<String>,
    pub created: Time,
    pub updated: Time,
}

#[derive(Clone, Debug)]
pub struct Filter {
    pub ftype: String,
    pub value: Value,
    pub decoration: String,
}

#[derive(Clone, Debug)]
pub struct Trigger {
    pub ttype: String,
    pub cron: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub creator: String,
    pub src_registry_id: i64,
    pub dest_registry_id: i64,
    pub dest_namespace: String,
    pub replace_count: i8,
    pub filters: Vec<Filter>,
    pub trigger: Option<Trigger>,
    pub replicate_deletion: bool,
    pub override_: bool,
    pub enabled: bool,
    pub speed: i32,
    pub copy_by_chunk: bool,
    pub single_active: bool,
    pub created: Time,
    pub updated: Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecStatus {
    InProgress,
    Succeed,
    Failed,
    Stopped,
}

impl ExecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::InProgress => "InProgress",
            ExecStatus::Succeed => "Succeed",
            ExecStatus::Failed => "Failed",
            ExecStatus::Stopped => "Stopped",
        }
    }
    pub fn is_final(self) -> bool {
        self != ExecStatus::InProgress
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    Pending,
    Running,
    Succeed,
    Failed,
    Stopped,
}

impl TaskStatus {
    /// The REST rendering.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "Pending",
            TaskStatus::Running => "InProgress",
            TaskStatus::Succeed => "Succeed",
            TaskStatus::Failed => "Failed",
            TaskStatus::Stopped => "Stopped",
        }
    }
    /// The jobservice status used in REPLICATION webhooks.
    pub fn job_status(self) -> &'static str {
        match self {
            TaskStatus::Pending => "Pending",
            TaskStatus::Running => "Running",
            TaskStatus::Succeed => "Success",
            TaskStatus::Failed => "Error",
            TaskStatus::Stopped => "Stopped",
        }
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeed | TaskStatus::Failed | TaskStatus::Stopped
        )
    }
}

#[derive(Clone, Debug)]
pub struct Execution {
    pub id: i64,
    pub policy_id: i64,
    pub status: ExecStatus,
    pub trigger: String,
    pub status_text: String,
    pub start: Time,
    pub end: Option<Time>,
    pub operator: String,
    pub request_id: String,
    pub stopped: bool,
}

#[derive(Clone, Debug)]
pub struct Task {
    pub id: i64,
    pub execution_id: i64,
    pub status: TaskStatus,
    pub job_id: String,
    pub src_repo: String,
    pub dst_repo: String,
    pub tags: Vec<String>,
    pub start: Option<Time>,
    pub end: Option<Time>,
}

impl Task {
    pub fn src_resource(&self) -> String {
        format!("{} [{} item(s) in total]", self.src_repo, self.tags.len())
    }
    pub fn dst_resource(&self) -> String {
        format!("{} [{} item(s) in total]", self.dst_repo, self.tags.len())
    }
}

#[derive(Clone, Debug)]
pub struct Repository {
    pub id: i64,
    pub project_id: i64,
    /// Full name including the project, e.g. `catalog/nginx`.
    pub name: String,
    pub created: Time,
    pub updated: Time,
}

#[derive(Clone, Debug)]
pub struct Reference {
    pub child_id: i64,
    pub child_digest: String,
    pub platform: Value,
    pub annotations: Option<Value>,
}

#[derive(Clone, Debug)]
pub struct Artifact {
    pub id: i64,
    pub project_id: i64,
    pub repository_id: i64,
    pub repository_name: String,
    pub digest: String,
    pub media_type: String,
    pub manifest_media_type: String,
    pub artifact_type: String,
    pub size: i64,
    pub push_time: Time,
    pub extra_attrs: Option<Value>,
    pub annotations: Option<Value>,
    pub references: Vec<Reference>,
    pub blobs: Vec<(String, i64)>,
}

#[derive(Clone, Debug)]
pub struct Tag {
    pub id: i64,
    pub repository_id: i64,
    pub artifact_id: i64,
    pub name: String,
    pub push_time: Time,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Target {
    #[serde(rename = "type")]
    pub ttype: String,
    pub address: String,
    pub auth_header: String,
    pub skip_cert_verify: bool,
    pub payload_format: String,
}

#[derive(Clone, Debug)]
pub struct WebhookPolicy {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub project_id: i64,
    pub targets: Vec<Target>,
    pub event_types: Vec<String>,
    pub creator: String,
    pub enabled: bool,
    pub created: Time,
    pub updated: Time,
}

#[derive(Default, Debug)]
pub struct Ids {
    pub project: i64,
    pub registry: i64,
    pub policy: i64,
    pub execution: i64,
    pub task: i64,
    pub repository: i64,
    pub artifact: i64,
    pub tag: i64,
    pub webhook: i64,
    pub delivery: i64,
    pub runner_job: i64,
}

/// Everything the simulator knows.
#[derive(Default)]
pub struct State {
    pub ids: Ids,
    pub projects: Vec<Project>,
    pub registries: Vec<Registry>,
    pub policies: Vec<Policy>,
    pub executions: Vec<Execution>,
    pub tasks: Vec<Task>,
    pub repositories: Vec<Repository>,
    pub artifacts: Vec<Artifact>,
    pub tags: Vec<Tag>,
    pub webhook_policies: Vec<WebhookPolicy>,
    pub upstream: Vec<UpstreamImage>,
    pub faults: Faults,
    pub deliveries: Vec<DeliveryRecord>,
    pub requests: Vec<RequestRecord>,
    pub runner: RunnerControl,
    pub runner_jobs: Vec<RunnerJob>,
    /// Scan overviews by artifact id.
    pub scans: std::collections::HashMap<i64, Value>,
    /// What the next scans find.
    pub scan_spec: crate::contents::ScanSpec,
}

pub const MAX_LOG: usize = 10_000;

/// A pushed manifest, for PUSH_ARTIFACT events.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub project: String,
    pub repo_full_name: String,
    pub digest: String,
    pub tag: Option<String>,
}

impl State {
    pub fn new(seeds: &[ProjectSeed]) -> State {
        let mut st = State::default();
        for s in seeds {
            st.create_project(&s.name, s.public);
        }
        st
    }

    pub fn runner_job_mut(&mut self, id: i64) -> Option<&mut RunnerJob> {
        self.runner_jobs.iter_mut().find(|j| j.id == id)
    }

    pub fn define_upstream(&mut self, image: UpstreamImage) {
        self.upstream.retain(|u| {
            !(u.repository == image.repository
                && u.tag == image.tag
                && u.registry == image.registry)
        });
        self.upstream.push(image);
    }

    // ---- projects ----

    pub fn create_project(&mut self, name: &str, public: bool) -> i64 {
        self.ids.project += 1;
        let now = Utc::now();
        self.projects.push(Project {
            id: self.ids.project,
            name: name.to_string(),
            public,
            created: now,
            updated: now,
        });
        self.ids.project
    }

    pub fn project_by_name(&self, name: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.name == name)
    }

    pub fn project_by_id(&self, id: i64) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    /// `project_name_or_id` resolution (§1.3).
    pub fn project_by_name_or_id(&self, key: &str, is_name: bool) -> Option<&Project> {
        if !is_name && let Ok(id) = key.parse::<i64>() {
            return self.project_by_id(id);
        }
        self.project_by_name(key)
    }

    pub fn repo_count(&self, project_id: i64) -> i64 {
        self.repositories
            .iter()
            .filter(|r| r.project_id == project_id)
            .count() as i64
    }

    // ---- registries / policies ----

    pub fn registry(&self, id: i64) -> Option<&Registry> {
        self.registries.iter().find(|r| r.id == id)
    }

    pub fn policy(&self, id: i64) -> Option<&Policy> {
        self.policies.iter().find(|p| p.id == id)
    }

    pub fn execution(&self, id: i64) -> Option<&Execution> {
        self.executions.iter().find(|e| e.id == id)
    }

    pub fn execution_mut(&mut self, id: i64) -> Option<&mut Execution> {
        self.executions.iter_mut().find(|e| e.id == id)
    }

    pub fn task_mut(&mut self, id: i64) -> Option<&mut Task> {
        self.tasks.iter_mut().find(|t| t.id == id)
    }

    pub fn task(&self, id: i64) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// Live counters: (total, succeed, failed, in_progress, stopped).
    pub fn counters(&self, exec_id: i64) -> (i64, i64, i64, i64, i64) {
        let mut c = (0, 0, 0, 0, 0);
        for t in self.tasks.iter().filter(|t| t.execution_id == exec_id) {
            c.0 += 1;
            match t.status {
                TaskStatus::Succeed => c.1 += 1,
                TaskStatus::Failed => c.2 += 1,
                TaskStatus::Pending | TaskStatus::Running => c.3 += 1,
                TaskStatus::Stopped => c.4 += 1,
            }
        }
        c
    }

    /// The status the tasks imply (§4.2 precedence).
    pub fn implied_status(&self, exec_id: i64) -> ExecStatus {
        let (total, _succeed, failed, in_progress, stopped) = self.counters(exec_id);
        if total == 0 {
            return ExecStatus::InProgress;
        }
        if in_progress > 0 {
            ExecStatus::InProgress
        } else if failed > 0 {
            ExecStatus::Failed
        } else if stopped > 0 {
            ExecStatus::Stopped
        } else {
            ExecStatus::Succeed
        }
    }

    /// Refreshes the stored execution status from its tasks.
    pub fn refresh_execution(&mut self, exec_id: i64, allow_final: bool) {
        let implied = self.implied_status(exec_id);
        if let Some(e) = self.execution_mut(exec_id) {
            if e.stopped {
                return;
            }
            if implied.is_final() {
                if allow_final && e.status != implied {
                    e.status = implied;
                    e.end = Some(Utc::now());
                }
            } else {
                e.status = ExecStatus::InProgress;
                e.end = None;
            }
        }
    }

    // ---- repositories / artifacts ----

    pub fn repository_by_name(&self, full: &str) -> Option<&Repository> {
        self.repositories.iter().find(|r| r.name == full)
    }

    pub fn ensure_project(&mut self, name: &str) -> i64 {
        match self.project_by_name(name) {
            Some(p) => p.id,
            // the visibility of auto-created projects is unconfirmed; private here
            None => self.create_project(name, false),
        }
    }

    pub fn ensure_repository(&mut self, project_id: i64, full: &str) -> i64 {
        if let Some(r) = self.repository_by_name(full) {
            return r.id;
        }
        self.ids.repository += 1;
        let now = Utc::now();
        self.repositories.push(Repository {
            id: self.ids.repository,
            project_id,
            name: full.to_string(),
            created: now,
            updated: now,
        });
        self.ids.repository
    }

    pub fn artifact(&self, id: i64) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.id == id)
    }

    pub fn artifact_by_digest(&self, repo_id: i64, digest: &str) -> Option<&Artifact> {
        self.artifacts
            .iter()
            .find(|a| a.repository_id == repo_id && a.digest == digest)
    }

    pub fn tag_in_repo(&self, repo_id: i64, name: &str) -> Option<&Tag> {
        self.tags
            .iter()
            .find(|t| t.repository_id == repo_id && t.name == name)
    }

    pub fn tags_of(&self, artifact_id: i64) -> Vec<&Tag> {
        let mut v: Vec<&Tag> = self
            .tags
            .iter()
            .filter(|t| t.artifact_id == artifact_id)
            .collect();
        v.sort_by_key(|t| t.id);
        v
    }

    pub fn is_referenced(&self, artifact_id: i64) -> bool {
        self.artifacts
            .iter()
            .any(|a| a.references.iter().any(|r| r.child_id == artifact_id))
    }

    /// Copies `manifest` (children first, by digest, then the top by tag) into the
    /// repository. Returns the pushes in order; empty if nothing needed pushing.
    pub fn push_image(
        &mut self,
        project: &str,
        repo_full: &str,
        manifest: &Manifest,
        tag: &str,
        override_: bool,
    ) -> Vec<Pushed> {
        let project_id = self.ensure_project(project);
        let repo_id = self.ensure_repository(project_id, repo_full);
        if let Some(existing) = self.tag_in_repo(repo_id, tag) {
            let existing_digest = self
                .artifact(existing.artifact_id)
                .map(|a| a.digest.clone())
                .unwrap_or_default();
            if existing_digest == manifest.digest || !override_ {
                // §4.5: same digest → skip; different digest without override → skip
                return Vec::new();
            }
        }
        let mut pushed = Vec::new();
        let now = Utc::now();
        let mut refs = Vec::new();
        for child in &manifest.children {
            let child_id = match self.artifact_by_digest(repo_id, &child.manifest.digest) {
                Some(a) => a.id,
                None => {
                    let id =
                        self.insert_artifact(project_id, repo_id, repo_full, &child.manifest, now);
                    pushed.push(Pushed {
                        project: project.to_string(),
                        repo_full_name: repo_full.to_string(),
                        digest: child.manifest.digest.clone(),
                        tag: None,
                    });
                    id
                }
            };
            refs.push(Reference {
                child_id,
                child_digest: child.manifest.digest.clone(),
                platform: child.platform.clone(),
                annotations: child.annotations.clone(),
            });
        }
        let top_id = match self.artifact_by_digest(repo_id, &manifest.digest) {
            Some(a) => a.id,
            None => self.insert_artifact(project_id, repo_id, repo_full, manifest, now),
        };
        if let Some(a) = self.artifacts.iter_mut().find(|a| a.id == top_id) {
            a.references = refs;
            a.push_time = now;
        }
        // (re)point the tag
        self.tags
            .retain(|t| !(t.repository_id == repo_id && t.name == tag));
        self.ids.tag += 1;
        self.tags.push(Tag {
            id: self.ids.tag,
            repository_id: repo_id,
            artifact_id: top_id,
            name: tag.to_string(),
            push_time: now,
        });
        if let Some(r) = self.repositories.iter_mut().find(|r| r.id == repo_id) {
            r.updated = now;
        }
        pushed.push(Pushed {
            project: project.to_string(),
            repo_full_name: repo_full.to_string(),
            digest: manifest.digest.clone(),
            tag: Some(tag.to_string()),
        });
        pushed
    }

    fn insert_artifact(
        &mut self,
        project_id: i64,
        repo_id: i64,
        repo_full: &str,
        m: &Manifest,
        now: Time,
    ) -> i64 {
        self.ids.artifact += 1;
        self.artifacts.push(Artifact {
            id: self.ids.artifact,
            project_id,
            repository_id: repo_id,
            repository_name: repo_full.to_string(),
            digest: m.digest.clone(),
            media_type: m.media_type.clone(),
            manifest_media_type: m.manifest_media_type.clone(),
            artifact_type: m.artifact_type.clone(),
            size: m.size,
            push_time: now,
            extra_attrs: m.extra_attrs.clone(),
            annotations: m.annotations.clone(),
            references: Vec::new(),
            blobs: m.blobs.clone(),
        });
        self.ids.artifact
    }

    /// Deletes an artifact deeply (§5.2). Returns the first tag (or None) of the root.
    pub fn delete_artifact(&mut self, id: i64, is_root: bool) -> Option<Vec<String>> {
        let art = self.artifact(id)?.clone();
        let tags: Vec<String> = self.tags_of(id).iter().map(|t| t.name.clone()).collect();
        if !is_root && !tags.is_empty() {
            return None;
        }
        // drop references first so the children see no parent
        if let Some(a) = self.artifacts.iter_mut().find(|a| a.id == id) {
            a.references.clear();
        }
        for r in &art.references {
            if !self.is_referenced(r.child_id) {
                self.delete_artifact(r.child_id, false);
            }
        }
        self.tags.retain(|t| t.artifact_id != id);
        self.artifacts.retain(|a| a.id != id);
        Some(tags)
    }

    /// Root artifacts of a repository: not referenced by an index (or tagged).
    pub fn root_artifacts(&self, repo_id: i64) -> Vec<&Artifact> {
        self.artifacts
            .iter()
            .filter(|a| {
                a.repository_id == repo_id
                    && (!self.is_referenced(a.id) || !self.tags_of(a.id).is_empty())
            })
            .collect()
    }

    // ---- renderings ----

    pub fn render_registry(&self, r: &Registry) -> Value {
        let cred = Obj::new()
            .s("type", &r.cred_type)
            .s("access_key", &r.access_key)
            .s(
                "access_secret",
                if r.access_secret.is_empty() {
                    ""
                } else {
                    "*****"
                },
            )
            .build();
        let mut o = Obj::new()
            .always("id", r.id)
            .s("url", &r.url)
            .s("name", &r.name)
            .always("credential", cred)
            .s("type", &r.rtype)
            .b("insecure", r.insecure)
            .s("description", &r.description)
            .s("status", "healthy")
            .t("creation_time", Some(r.created))
            .t("update_time", Some(r.updated));
        if let Some(ca) = &r.ca_certificate {
            o = o.always("ca_certificate", ca.clone());
        }
        o.build()
    }

    pub fn render_local_registry(&self) -> Value {
        json!({
            "id": 0, "name": "Local", "type": "harbor", "url": "http://core:8080",
            "status": "healthy",
            "credential": {"type": "secret", "access_secret": "*****"},
            "insecure": true,
            "creation_time": crate::util::ZERO_TIME, "update_time": crate::util::ZERO_TIME
        })
    }

    fn render_registry_ref(&self, id: i64) -> Value {
        if id == 0 {
            return self.render_local_registry();
        }
        match self.registry(id) {
            Some(r) => self.render_registry(r),
            None => {
                json!({"id": id, "creation_time": crate::util::ZERO_TIME, "update_time": crate::util::ZERO_TIME})
            }
        }
    }

    pub fn render_policy(&self, p: &Policy) -> Value {
        let filters: Vec<Value> = p
            .filters
            .iter()
            .map(|f| {
                let mut o = serde_json::Map::new();
                o.insert("type".into(), Value::String(f.ftype.clone()));
                o.insert("value".into(), f.value.clone());
                if !f.decoration.is_empty() {
                    o.insert("decoration".into(), Value::String(f.decoration.clone()));
                }
                Value::Object(o)
            })
            .collect();
        let trigger = p.trigger.as_ref().map(|t| {
            let mut o = Obj::new().s("type", &t.ttype);
            if let Some(c) = &t.cron {
                o = o.always("trigger_settings", Obj::new().s("cron", c).build());
            }
            o.build()
        });
        Obj::new()
            .i("id", p.id)
            .s("name", &p.name)
            .s("description", &p.description)
            .always("src_registry", self.render_registry_ref(p.src_registry_id))
            .always(
                "dest_registry",
                self.render_registry_ref(p.dest_registry_id),
            )
            .s("dest_namespace", &p.dest_namespace)
            .always("dest_namespace_replace_count", p.replace_count)
            .v("trigger", trigger.unwrap_or(Value::Null))
            .v("filters", Value::Array(filters))
            .b("replicate_deletion", p.replicate_deletion)
            .b("deletion", p.replicate_deletion)
            .b("override", p.override_)
            .b("enabled", p.enabled)
            .t("creation_time", Some(p.created))
            .t("update_time", Some(p.updated))
            .always("speed", p.speed)
            .always("copy_by_chunk", p.copy_by_chunk)
            .always("single_active_replication", p.single_active)
            .build()
    }

    pub fn render_execution(&self, e: &Execution) -> Value {
        let (total, succeed, failed, in_progress, stopped) = self.counters(e.id);
        Obj::new()
            .i("id", e.id)
            .i("policy_id", e.policy_id)
            .s("status", e.status.as_str())
            .s("trigger", &e.trigger)
            .always("status_text", e.status_text.clone())
            .t("start_time", Some(e.start))
            .t("end_time", e.end)
            .always("total", total)
            .always("succeed", succeed)
            .always("failed", failed)
            .always("in_progress", in_progress)
            .always("stopped", stopped)
            .build()
    }

    pub fn render_task(&self, t: &Task) -> Value {
        Obj::new()
            .i("id", t.id)
            .i("execution_id", t.execution_id)
            .s("status", t.status.as_str())
            .s("job_id", &t.job_id)
            .s("operation", "copy")
            .s("resource_type", "image")
            .s("src_resource", &t.src_resource())
            .s("dst_resource", &t.dst_resource())
            .t("start_time", t.start)
            .t("end_time", t.end)
            .build()
    }

    pub fn render_project(&self, p: &Project, authenticated: bool, owner: &str) -> Value {
        let mut o = Obj::new()
            .i("project_id", p.id)
            .i("owner_id", 1)
            .s("name", &p.name)
            .t("creation_time", Some(p.created))
            .t("update_time", Some(p.updated))
            .s("owner_name", owner)
            .always("repo_count", self.repo_count(p.id))
            .always(
                "metadata",
                json!({"public": if p.public { "true" } else { "false" }}),
            )
            .always(
                "cve_allowlist",
                json!({"id": p.id, "project_id": p.id,
                       "creation_time": fmt_time(Some(p.created)), "update_time": fmt_time(Some(p.updated))}),
            );
        if authenticated {
            o = o
                .b("togglable", true)
                .i("current_user_role_id", 1)
                .always("current_user_role_ids", json!([1]));
        }
        o.build()
    }

    pub fn render_repository(&self, r: &Repository) -> Value {
        Obj::new()
            .i("id", r.id)
            .i("project_id", r.project_id)
            .s("name", &r.name)
            .always("artifact_count", self.root_artifacts(r.id).len() as i64)
            .always("pull_count", 0)
            .t("creation_time", Some(r.created))
            .t("update_time", Some(r.updated))
            .build()
    }

    pub fn render_artifact(&self, a: &Artifact, with_tag: bool, project: &str) -> Value {
        let refs: Vec<Value> = a
            .references
            .iter()
            .map(|r| {
                Obj::new()
                    .i("parent_id", a.id)
                    .i("child_id", r.child_id)
                    .s("child_digest", &r.child_digest)
                    .v("platform", r.platform.clone())
                    .v("annotations", r.annotations.clone().unwrap_or(Value::Null))
                    .build()
            })
            .collect();
        let tags: Vec<Value> = if with_tag {
            self.tags_of(a.id)
                .iter()
                .map(|t| {
                    Obj::new()
                        .i("id", t.id)
                        .i("repository_id", t.repository_id)
                        .i("artifact_id", t.artifact_id)
                        .s("name", &t.name)
                        .t("push_time", Some(t.push_time))
                        .t("pull_time", None)
                        .always("immutable", false)
                        .build()
                })
                .collect()
        } else {
            Vec::new()
        };
        let is_index = !a.references.is_empty()
            || a.manifest_media_type.contains("index")
            || a.manifest_media_type.contains("list");
        let addition_links = if is_index {
            Value::Null
        } else {
            let repo = a
                .repository_name
                .strip_prefix(&format!("{project}/"))
                .unwrap_or(&a.repository_name)
                .replace('/', "%252F");
            json!({"build_history": {"absolute": false,
                "href": format!("/api/v2.0/projects/{project}/repositories/{repo}/artifacts/{}/additions/build_history", a.digest)}})
        };
        Obj::new()
            .i("id", a.id)
            .s("type", "IMAGE")
            .s("media_type", &a.media_type)
            .s("manifest_media_type", &a.manifest_media_type)
            .s("artifact_type", &a.artifact_type)
            .i("project_id", a.project_id)
            .i("repository_id", a.repository_id)
            .s("repository_name", &a.repository_name)
            .s("digest", &a.digest)
            .i("size", a.size)
            .s(
                "icon",
                "sha256:0048162a053eef4d4ce3fe7518615bef084403614f8bca43b40ae2e762e11e06",
            )
            .t("push_time", Some(a.push_time))
            .t("pull_time", None)
            .v("extra_attrs", a.extra_attrs.clone().unwrap_or(Value::Null))
            .v("annotations", a.annotations.clone().unwrap_or(Value::Null))
            .v("references", Value::Array(refs))
            .v("tags", Value::Array(tags))
            .v("addition_links", addition_links)
            .build()
    }

    pub fn render_webhook_policy(&self, w: &WebhookPolicy) -> Value {
        let targets: Vec<Value> = w
            .targets
            .iter()
            .map(|t| {
                Obj::new()
                    .s("type", &t.ttype)
                    .s("address", &t.address)
                    .s("auth_header", &t.auth_header)
                    .b("skip_cert_verify", t.skip_cert_verify)
                    .s("payload_format", &t.payload_format)
                    .build()
            })
            .collect();
        Obj::new()
            .i("id", w.id)
            .s("name", &w.name)
            .s("description", &w.description)
            .i("project_id", w.project_id)
            .v("targets", Value::Array(targets))
            .v("event_types", json!(w.event_types))
            .s("creator", &w.creator)
            .t("creation_time", Some(w.created))
            .t("update_time", Some(w.updated))
            .always("enabled", w.enabled)
            .build()
    }

    /// Sum of the sizes of the distinct blobs of every artifact.
    pub fn storage_consumption(&self) -> i64 {
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        for a in &self.artifacts {
            for (d, s) in &a.blobs {
                if seen.insert(d.clone()) {
                    total += *s;
                }
            }
        }
        total
    }

    // ---- control-API snapshot ----

    pub fn snapshot(&self) -> SimState {
        let executions: Vec<ExecutionSummary> = self
            .executions
            .iter()
            .map(|e| {
                let (total, succeed, failed, in_progress, stopped) = self.counters(e.id);
                ExecutionSummary {
                    id: e.id,
                    policy_id: e.policy_id,
                    status: e.status.as_str().into(),
                    status_text: e.status_text.clone(),
                    total,
                    succeed,
                    failed,
                    in_progress,
                    stopped,
                }
            })
            .collect();
        let artifacts: Vec<ArtifactSummary> = self
            .artifacts
            .iter()
            .map(|a| ArtifactSummary {
                id: a.id,
                repository: a.repository_name.clone(),
                digest: a.digest.clone(),
                tags: self.tags_of(a.id).iter().map(|t| t.name.clone()).collect(),
                manifest_media_type: a.manifest_media_type.clone(),
                size: a.size,
                child: self.is_referenced(a.id),
            })
            .collect();
        SimState {
            counts: StateCounts {
                projects: self.projects.len(),
                registries: self.registries.len(),
                policies: self.policies.len(),
                executions: self.executions.len(),
                tasks: self.tasks.len(),
                repositories: self.repositories.len(),
                artifacts: self.artifacts.len(),
                webhook_policies: self.webhook_policies.len(),
                webhook_deliveries: self.deliveries.len(),
                requests: self.requests.len(),
                runner_jobs: self.runner_jobs.len(),
            },
            projects: self
                .projects
                .iter()
                .map(|p| ProjectSummary {
                    id: p.id,
                    name: p.name.clone(),
                    public: p.public,
                })
                .collect(),
            registries: self
                .registries
                .iter()
                .map(|r| RegistrySummary {
                    id: r.id,
                    name: r.name.clone(),
                    r#type: r.rtype.clone(),
                    url: r.url.clone(),
                })
                .collect(),
            policies: self
                .policies
                .iter()
                .map(|p| PolicySummary {
                    id: p.id,
                    name: p.name.clone(),
                    enabled: p.enabled,
                    src_registry_id: p.src_registry_id,
                    dest_namespace: p.dest_namespace.clone(),
                })
                .collect(),
            executions,
            tasks: self
                .tasks
                .iter()
                .map(|t| TaskSummary {
                    id: t.id,
                    execution_id: t.execution_id,
                    status: t.status.as_str().into(),
                    src_resource: t.src_resource(),
                    dst_resource: t.dst_resource(),
                })
                .collect(),
            artifacts,
            webhook_policies: self
                .webhook_policies
                .iter()
                .map(|w| WebhookPolicySummary {
                    id: w.id,
                    name: w.name.clone(),
                    project_id: w.project_id,
                    enabled: w.enabled,
                    event_types: w.event_types.clone(),
                    targets: w.targets.iter().map(|t| t.address.clone()).collect(),
                })
                .collect(),
            webhook_deliveries: self.deliveries.clone(),
            requests: self.requests.clone(),
            upstream: self.upstream.clone(),
            faults: self.faults.clone(),
            runner: self.runner.clone(),
            runner_jobs: self.runner_jobs.clone(),
        }
    }
}

// ---- public snapshot types (GET /_sim/state) ----

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StateCounts {
    pub projects: usize,
    pub registries: usize,
    pub policies: usize,
    pub executions: usize,
    pub tasks: usize,
    pub repositories: usize,
    pub artifacts: usize,
    pub webhook_policies: usize,
    pub webhook_deliveries: usize,
    pub requests: usize,
    #[serde(default)]
    pub runner_jobs: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProjectSummary {
    pub id: i64,
    pub name: String,
    pub public: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RegistrySummary {
    pub id: i64,
    pub name: String,
    pub r#type: String,
    pub url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PolicySummary {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub src_registry_id: i64,
    pub dest_namespace: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExecutionSummary {
    pub id: i64,
    pub policy_id: i64,
    pub status: String,
    pub status_text: String,
    pub total: i64,
    pub succeed: i64,
    pub failed: i64,
    pub in_progress: i64,
    pub stopped: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskSummary {
    pub id: i64,
    pub execution_id: i64,
    pub status: String,
    pub src_resource: String,
    pub dst_resource: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArtifactSummary {
    pub id: i64,
    /// Full repository name, e.g. `catalog/nginx`.
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub manifest_media_type: String,
    pub size: i64,
    /// Referenced by an index.
    pub child: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WebhookPolicySummary {
    pub id: i64,
    pub name: String,
    pub project_id: i64,
    pub enabled: bool,
    pub event_types: Vec<String>,
    pub targets: Vec<String>,
}

/// One webhook delivery attempt (or a dropped delivery).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeliveryRecord {
    /// Delivery id; the attempts and the duplicate of one delivery share it.
    pub id: i64,
    pub event_type: String,
    pub policy_id: i64,
    pub target: String,
    pub attempt: u32,
    /// HTTP status of the attempt; `None` for transport errors, timeouts and drops.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub dropped: bool,
    pub payload: Value,
    pub at: String,
}

/// One request as received (`/api/v2.0` and the runner's `/runner/jobs`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    pub method: String,
    /// Raw path, exactly as sent (percent-encoding intact).
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Response status; `None` when the connection was closed (`down`).
    pub status: Option<u16>,
    /// Authenticated username, `None` for anonymous.
    pub user: Option<String>,
    pub request_id: String,
    /// JSON request body, if any.
    pub body: Option<Value>,
    pub at: String,
}

/// Everything, for assertions (`GET /_sim/state`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SimState {
    pub counts: StateCounts,
    pub projects: Vec<ProjectSummary>,
    pub registries: Vec<RegistrySummary>,
    pub policies: Vec<PolicySummary>,
    pub executions: Vec<ExecutionSummary>,
    pub tasks: Vec<TaskSummary>,
    pub artifacts: Vec<ArtifactSummary>,
    pub webhook_policies: Vec<WebhookPolicySummary>,
    pub webhook_deliveries: Vec<DeliveryRecord>,
    pub requests: Vec<RequestRecord>,
    pub upstream: Vec<UpstreamImage>,
    pub faults: Faults,
    /// The build runner's control (`/_sim/runner`).
    #[serde(default)]
    pub runner: RunnerControl,
    /// Every job the build runner received, oldest first.
    #[serde(default)]
    pub runner_jobs: Vec<RunnerJob>,
}

/// Where a build-runner job stands.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RunnerOutcome {
    /// Answered `202`; the first callback is due.
    Accepted,
    /// Bad or missing signature (`401`) or an invalid job (`400`); see `error`.
    Rejected,
    /// The `running` callback was sent; the build or push is under way.
    Running,
    /// The image is in the simulated Harbor (PUSH_ARTIFACT fired); see `digest`.
    Pushed,
    /// The `failed` callback was sent; nothing was pushed.
    Failed,
    /// Accepted, and then never a callback nor a push.
    Silent,
}

/// One job received by the build runner (`POST /runner/jobs`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunnerJob {
    /// Record id (the order of arrival).
    pub id: i64,
    /// `build_id` of the body; empty if the body had none.
    pub build_id: String,
    /// `mode` of the body (`dockerfile`, `packages`, `environment`); empty if none.
    pub mode: String,
    pub signature_ok: bool,
    pub outcome: RunnerOutcome,
    /// Why the job was rejected (`bad signature`, or the 400 message).
    pub error: Option<String>,
    /// The body as received: JSON, or a string if it was not JSON.
    pub body: Value,
    /// How many times this job was POSTed while in flight (retries answer `202` again).
    pub submissions: u32,
    /// Every callback attempt, in order.
    pub callbacks: Vec<RunnerCallbackRecord>,
    /// Full repository and tag the image was pushed to, e.g. `catalog/users/alice/img:1.0`.
    pub pushed: Option<String>,
    /// Digest of the pushed manifest.
    pub digest: Option<String>,
    pub received_at: String,
}

/// One callback attempt (`PUT callback.url`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunnerCallbackRecord {
    /// The JSON body sent (`{"status":"running","log_tail":…}`).
    pub payload: Value,
    pub attempt: u32,
    /// HTTP status of the attempt; `None` for transport errors and timeouts.
    pub status: Option<u16>,
    /// Set unless the attempt got a 2xx.
    pub error: Option<String>,
    pub at: String,
}

//! The `/api/v2.0` handlers.

use std::sync::Arc;

use chrono::Utc;
use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine;
use crate::http::{ApiError, ApiResult, Resp};
use crate::lock;
use crate::model::{
    ExecStatus, Execution, Filter, Policy, Pushed, Registry, State, Target, TaskStatus, Trigger,
    WebhookPolicy,
};
use crate::notify;
use crate::server::{Inner, Req};
use crate::util::{
    Paging, filter_q, normalize_http_url, parse_q, sort_items, url_host, valid_component,
    valid_repository_name,
};

const REGISTRY_TYPES: &[&str] = &[
    "ali-acr",
    "aws-ecr",
    "azure-acr",
    "docker-hub",
    "docker-registry",
    "dtr",
    "github-ghcr",
    "gitlab",
    "google-gcr",
    "harbor",
    "huawei-SWR",
    "jfrog-artifactory",
    "quay",
    "tencent-tcr",
    "volcengine-cr",
];

const EVENT_TYPES: &[&str] = &[
    "PUSH_ARTIFACT",
    "PULL_ARTIFACT",
    "DELETE_ARTIFACT",
    "SCANNING_COMPLETED",
    "SCANNING_FAILED",
    "SCANNING_STOPPED",
    "QUOTA_EXCEED",
    "QUOTA_WARNING",
    "REPLICATION",
    "TAG_RETENTION",
];

fn not_allowed(m: &Method, allowed: &str) -> ApiResult {
    Err(ApiError::method_not_allowed(format!(
        "method {m} is not allowed, but [{allowed}] are"
    )))
}

fn path_id(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().map_err(|_| {
        ApiError::unprocessable(format!("{name} in path must be of type int64: \"{v}\""))
    })
}

/// The handler's second unescape of `repository_name` (§0.6).
fn unescape(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

/// Routes a request; `None` when no route matches.
pub fn dispatch(inner: &Arc<Inner>, req: &Req) -> Option<ApiResult> {
    let s: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let m = &req.method;
    let r = match s.as_slice() {
        ["projects"] => match *m {
            Method::HEAD => head_project(inner, req),
            Method::POST => create_project(inner, req),
            Method::GET => list_projects(inner, req),
            _ => not_allowed(m, "GET,HEAD,POST"),
        },
        ["projects", p] => match *m {
            Method::GET => get_project(inner, req, p),
            _ => not_allowed(m, "GET"),
        },
        ["projects", p, "repositories"] => match *m {
            Method::GET => list_repositories(inner, req, &unescape(p)),
            _ => not_allowed(m, "GET"),
        },
        ["projects", p, "repositories", r] => {
            let (p, r) = (unescape(p), unescape(r));
            match *m {
                Method::GET => get_repository(inner, req, &p, &r),
                Method::DELETE => delete_repository(inner, req, &p, &r),
                _ => not_allowed(m, "DELETE,GET"),
            }
        }
        ["projects", p, "repositories", r, "artifacts"] => match *m {
            Method::GET => list_artifacts(inner, req, &unescape(p), &unescape(r)),
            _ => not_allowed(m, "GET"),
        },
        ["projects", p, "repositories", r, "artifacts", reference] => {
            let (p, r) = (unescape(p), unescape(r));
            match *m {
                Method::GET => get_artifact(inner, req, &p, &r, reference),
                Method::DELETE => delete_artifact(inner, req, &p, &r, reference),
                _ => not_allowed(m, "DELETE,GET"),
            }
        }
        [
            "projects",
            p,
            "repositories",
            r,
            "artifacts",
            reference,
            "scan",
        ] => match *m {
            Method::POST => scan_artifact(inner, req, &unescape(p), &unescape(r), reference),
            _ => not_allowed(m, "POST"),
        },
        ["projects", p, "webhook", "policies"] => match *m {
            Method::GET => list_webhooks(inner, req, p),
            Method::POST => create_webhook(inner, req, p),
            _ => not_allowed(m, "GET,POST"),
        },
        ["projects", p, "webhook", "policies", id] => match *m {
            Method::GET => get_webhook(inner, req, p, id),
            Method::PUT => update_webhook(inner, req, p, id),
            Method::DELETE => delete_webhook(inner, req, p, id),
            _ => not_allowed(m, "DELETE,GET,PUT"),
        },
        ["registries"] => match *m {
            Method::GET => list_registries(inner, req),
            Method::POST => create_registry(inner, req),
            _ => not_allowed(m, "GET,POST"),
        },
        ["registries", id] => match *m {
            Method::GET => get_registry(inner, req, id),
            _ => not_allowed(m, "GET"),
        },
        ["replication", "adapters"] => match *m {
            Method::GET => list_adapters(req),
            _ => not_allowed(m, "GET"),
        },
        ["replication", "policies"] => match *m {
            Method::GET => list_policies(inner, req),
            Method::POST => create_policy(inner, req),
            _ => not_allowed(m, "GET,POST"),
        },
        ["replication", "policies", id] => match *m {
            Method::GET => get_policy(inner, req, id),
            Method::PUT => update_policy(inner, req, id),
            Method::DELETE => delete_policy(inner, req, id),
            _ => not_allowed(m, "DELETE,GET,PUT"),
        },
        ["replication", "executions"] => match *m {
            Method::GET => list_executions(inner, req),
            Method::POST => start_execution(inner, req),
            _ => not_allowed(m, "GET,POST"),
        },
        ["replication", "executions", id] => match *m {
            Method::GET => get_execution(inner, req, id),
            Method::PUT => stop_execution(inner, req, id),
            _ => not_allowed(m, "GET,PUT"),
        },
        ["replication", "executions", id, "tasks"] => match *m {
            Method::GET => list_tasks(inner, req, id),
            _ => not_allowed(m, "GET"),
        },
        ["health"] => match *m {
            Method::GET => Ok(Resp::json(
                200,
                &json!({"status": "healthy", "components": [
                    {"name": "core", "status": "healthy"},
                    {"name": "database", "status": "healthy"},
                    {"name": "jobservice", "status": "healthy"},
                    {"name": "registry", "status": "healthy"}
                ]}),
            )),
            _ => not_allowed(m, "GET"),
        },
        ["statistics"] => match *m {
            Method::GET => statistics(inner, req),
            _ => not_allowed(m, "GET"),
        },
        ["systeminfo"] => match *m {
            Method::GET => Ok(system_info(inner, req)),
            _ => not_allowed(m, "GET"),
        },
        _ => return None,
    };
    Some(r)
}

/// Sorts, filters and pages a list, producing the list response.
fn list_response<T>(
    req: &Req,
    paging: Paging,
    items: Vec<T>,
    terms: &[(String, crate::util::Term)],
    id: impl Fn(&T) -> i64,
    field: impl Fn(&T, &str) -> Option<String>,
    render: impl Fn(&T) -> Value,
) -> Resp {
    let mut items = filter_q(items, terms, &field);
    sort_items(&mut items, req.query.get("sort"), &id, &field);
    let total = items.len() as i64;
    let page = paging.apply(items);
    let link = paging.link(&req.raw_path, &req.query, total);
    Resp::list(page.iter().map(render).collect(), total, link)
}

// ---------------------------------------------------------------- projects

fn head_project(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    let Some(name) = req.query.get("project_name") else {
        return Err(ApiError::unprocessable("project_name in query is required"));
    };
    req.require_auth()?;
    let st = lock(&inner.state);
    match st.project_by_name(name) {
        Some(_) => Ok(Resp::ok()),
        None => Err(ApiError::not_found(format!("project {name} not found"))),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProjectReq {
    project_name: Option<String>,
    public: Option<bool>,
    metadata: Option<serde_json::Map<String, Value>>,
    storage_limit: Option<i64>,
    registry_id: Option<i64>,
}

fn create_project(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    let body: ProjectReq = req.json("project")?;
    let name = body.project_name.clone().unwrap_or_default();
    if name.chars().count() > 255 {
        return Err(ApiError::unprocessable(
            "project.project_name in body should be at most 255 chars long",
        ));
    }
    req.require_auth()?;
    if !valid_component(&name) {
        return Err(ApiError::bad_request(
            "project name is not in lower case or contains illegal characters",
        ));
    }
    let mut public = body.public.unwrap_or(false);
    if let Some(md) = &body.metadata
        && let Some(v) = md.get("public")
    {
        public = match v.as_str() {
            Some("true") => true,
            Some("false") => false,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid value of public: {}",
                    v.as_str().map(str::to_string).unwrap_or(v.to_string())
                )));
            }
        };
    }
    if let Some(limit) = body.storage_limit
        && (limit == 0 || limit < -1)
    {
        return Err(ApiError::bad_request(format!(
            "invalid storage limit {limit}"
        )));
    }
    let _ = body.registry_id;
    let mut st = lock(&inner.state);
    if st.project_by_name(&name).is_some() {
        return Err(ApiError::conflict(format!(
            "The project named {name} already exists"
        )));
    }
    let id = st.create_project(&name, public);
    let base = req.raw_path.trim_end_matches('/');
    let loc = if req.header_true("X-Resource-Name-In-Location") {
        format!("{base}/{name}")
    } else {
        format!("{base}/{id}")
    };
    Ok(Resp::created(loc))
}

fn get_project(inner: &Arc<Inner>, req: &Req, key: &str) -> ApiResult {
    let st = lock(&inner.state);
    let is_name = req.header_true("X-Is-Resource-Name");
    let p = st.project_by_name_or_id(key, is_name);
    match (p, &req.user) {
        (Some(p), Some(_)) => Ok(Resp::json(
            200,
            &st.render_project(p, true, &inner.opts.username),
        )),
        (Some(p), None) if p.public => Ok(Resp::json(
            200,
            &st.render_project(p, false, &inner.opts.username),
        )),
        (_, None) => Err(ApiError::unauthorized()),
        (None, Some(_)) => Err(ApiError::not_found(format!("project {key} not found"))),
    }
}

fn list_projects(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    let paging = Paging::from_query(&req.query)?;
    let public_filter = match req.query.get("public") {
        Some(_) => Some(req.query.bool_param("public", false)?),
        None => None,
    };
    let mut terms = parse_q(req.query.get("q"))?;
    if let Some(n) = req.query.get("name") {
        terms.push(("name".into(), crate::util::Term::Fuzzy(n.to_string())));
    }
    let st = lock(&inner.state);
    let authed = req.user.is_some();
    let items: Vec<_> = st
        .projects
        .iter()
        .filter(|p| (authed || p.public) && public_filter.is_none_or(|f| p.public == f))
        .cloned()
        .collect();
    Ok(list_response(
        req,
        paging,
        items,
        &terms,
        |p| p.id,
        |p, k| match k {
            "name" => Some(p.name.clone()),
            "project_id" | "id" => Some(p.id.to_string()),
            "public" => Some(p.public.to_string()),
            _ => None,
        },
        |p| st.render_project(p, authed, &inner.opts.username),
    ))
}

/// `GET /systeminfo`: like Harbor, the version and addresses only for a signed-in caller.
fn system_info(inner: &Arc<Inner>, req: &Req) -> Resp {
    let mut out = json!({
        "auth_mode": "db_auth",
        "primary_auth_mode": false,
        "self_registration": false,
        "banner_message": "",
    });
    if req.user.is_some() {
        let version = lock(&inner.state).faults.harbor_version().to_owned();
        out["harbor_version"] = json!(version);
        out["external_url"] = json!(inner.ext_endpoint());
        out["registry_url"] = json!(inner.opts.external_host);
        out["has_ca_root"] = json!(false);
        out["read_only"] = json!(false);
        out["notification_enable"] = json!(true);
        out["project_creation_restriction"] = json!("everyone");
        out["current_time"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    Resp::json(200, &out)
}

fn statistics(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    req.require_auth()?;
    let st = lock(&inner.state);
    let public_projects: Vec<i64> = st
        .projects
        .iter()
        .filter(|p| p.public)
        .map(|p| p.id)
        .collect();
    let public_repos = st
        .repositories
        .iter()
        .filter(|r| public_projects.contains(&r.project_id))
        .count() as i64;
    let mut out = json!({
        "private_project_count": 0, "private_repo_count": 0,
        "public_project_count": public_projects.len() as i64, "public_repo_count": public_repos,
        "total_project_count": 0, "total_repo_count": 0, "total_storage_consumption": 0
    });
    if !inner.opts.robot {
        let total_projects = st.projects.len() as i64;
        let total_repos = st.repositories.len() as i64;
        out["total_project_count"] = json!(total_projects);
        out["total_repo_count"] = json!(total_repos);
        out["private_project_count"] = json!(total_projects - public_projects.len() as i64);
        out["private_repo_count"] = json!(total_repos - public_repos);
        out["total_storage_consumption"] = json!(st.storage_consumption());
    }
    Ok(Resp::json(200, &out))
}

// ------------------------------------------------------ repositories/artifacts

/// Project-level read access: authenticated callers, or anyone on a public project.
fn read_access(st: &State, req: &Req, project: &str) -> Result<(), ApiError> {
    if req.user.is_some() {
        return Ok(());
    }
    match st.project_by_name(project) {
        Some(p) if p.public => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

fn is_digest(reference: &str) -> bool {
    let Some((alg, hex)) = reference.split_once(':') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Resolves `reference` to an artifact id (§5.1 messages).
fn resolve_artifact(st: &State, full: &str, reference: &str) -> Result<i64, ApiError> {
    let repo = st.repository_by_name(full);
    if is_digest(reference) {
        return repo
            .and_then(|r| st.artifact_by_digest(r.id, reference))
            .map(|a| a.id)
            .ok_or_else(|| ApiError::not_found(format!("artifact {full}@{reference} not found")));
    }
    let repo = repo.ok_or_else(|| ApiError::not_found(format!("repository {full} not found")))?;
    st.tag_in_repo(repo.id, reference)
        .map(|t| t.artifact_id)
        .ok_or_else(|| ApiError::not_found(format!("artifact {full}:{reference} not found")))
}

fn validate_artifact_flags(req: &Req) -> Result<bool, ApiError> {
    for k in [
        "with_label",
        "with_scan_overview",
        "with_sbom_overview",
        "with_accessory",
        "with_signature",
        "with_immutable_status",
    ] {
        req.query.bool_param(k, false)?;
    }
    req.query.bool_param("with_tag", true)
}

fn get_artifact(inner: &Arc<Inner>, req: &Req, p: &str, r: &str, reference: &str) -> ApiResult {
    let with_tag = validate_artifact_flags(req)?;
    let st = lock(&inner.state);
    read_access(&st, req, p)?;
    let full = format!("{p}/{r}");
    let id = resolve_artifact(&st, &full, reference)?;
    let a = st.artifact(id).expect("artifact");
    let mut body = st.render_artifact(a, with_tag, p);
    if req.query.bool_param("with_scan_overview", false)?
        && let Some(overview) = st.scans.get(&id)
    {
        body["scan_overview"] = overview.clone();
    }
    Ok(Resp::json(200, &body))
}

/// `POST …/artifacts/{reference}/scan`: 202, and the scan finishes one step later.
fn scan_artifact(inner: &Arc<Inner>, req: &Req, p: &str, r: &str, reference: &str) -> ApiResult {
    let id = {
        let st = lock(&inner.state);
        read_access(&st, req, p)?;
        resolve_artifact(&st, &format!("{p}/{r}"), reference)?
    };
    crate::contents::scan_later(inner, id);
    Ok(Resp::empty(202))
}

fn list_artifacts(inner: &Arc<Inner>, req: &Req, p: &str, r: &str) -> ApiResult {
    let paging = Paging::from_query(&req.query)?;
    let with_tag = validate_artifact_flags(req)?;
    let st = lock(&inner.state);
    read_access(&st, req, p)?;
    let full = format!("{p}/{r}");
    let repo = st
        .repository_by_name(&full)
        .ok_or_else(|| ApiError::not_found(format!("repository {full} not found")))?;
    let mut terms = parse_q(req.query.get("q"))?;
    let all = terms.iter().any(|(k, _)| k == "base");
    terms.retain(|(k, _)| k != "base");
    let items: Vec<_> = if all {
        st.artifacts
            .iter()
            .filter(|a| a.repository_id == repo.id)
            .cloned()
            .collect()
    } else {
        st.root_artifacts(repo.id).into_iter().cloned().collect()
    };
    Ok(list_response(
        req,
        paging,
        items,
        &terms,
        |a| a.id,
        |a, k| match k {
            "digest" => Some(a.digest.clone()),
            "media_type" => Some(a.media_type.clone()),
            "tags" => Some(
                st.tags_of(a.id)
                    .iter()
                    .map(|t| t.name.clone())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        },
        |a| st.render_artifact(a, with_tag, p),
    ))
}

fn delete_artifact(inner: &Arc<Inner>, req: &Req, p: &str, r: &str, reference: &str) -> ApiResult {
    let user = req.require_auth()?.to_string();
    let full = format!("{p}/{r}");
    let (digest, first_tag) = {
        let mut st = lock(&inner.state);
        let id = resolve_artifact(&st, &full, reference)?;
        if st.is_referenced(id) {
            return Err(ApiError::fk_violation(
                "the deleting artifact is referenced by others",
            ));
        }
        let digest = st
            .artifact(id)
            .map(|a| a.digest.clone())
            .unwrap_or_default();
        let tags = st.delete_artifact(id, true).unwrap_or_default();
        (digest, tags.first().cloned())
    };
    let payload = engine::artifact_payload(
        inner,
        "DELETE_ARTIFACT",
        &user,
        &Pushed {
            project: p.to_string(),
            repo_full_name: full.clone(),
            digest,
            tag: first_tag,
        },
        true,
    );
    notify::emit(inner, p, payload, &req.request_id);
    Ok(Resp::ok())
}

fn get_repository(inner: &Arc<Inner>, req: &Req, p: &str, r: &str) -> ApiResult {
    let st = lock(&inner.state);
    read_access(&st, req, p)?;
    let full = format!("{p}/{r}");
    let repo = st
        .repository_by_name(&full)
        .ok_or_else(|| ApiError::not_found(format!("repository {full} not found")))?;
    Ok(Resp::json(200, &st.render_repository(repo)))
}

fn list_repositories(inner: &Arc<Inner>, req: &Req, p: &str) -> ApiResult {
    let paging = Paging::from_query(&req.query)?;
    let st = lock(&inner.state);
    read_access(&st, req, p)?;
    let project = st
        .project_by_name(p)
        .ok_or_else(|| ApiError::not_found(format!("project {p} not found")))?;
    let terms = parse_q(req.query.get("q"))?;
    let items: Vec<_> = st
        .repositories
        .iter()
        .filter(|r| r.project_id == project.id)
        .cloned()
        .collect();
    Ok(list_response(
        req,
        paging,
        items,
        &terms,
        |r| r.id,
        |r, k| match k {
            "name" => Some(r.name.clone()),
            "id" => Some(r.id.to_string()),
            _ => None,
        },
        |r| st.render_repository(r),
    ))
}

fn delete_repository(inner: &Arc<Inner>, req: &Req, p: &str, r: &str) -> ApiResult {
    let user = req.require_auth()?.to_string();
    let full = format!("{p}/{r}");
    let deleted = {
        let mut st = lock(&inner.state);
        let repo = st
            .repository_by_name(&full)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("repository {full} not found")))?;
        let roots: Vec<(i64, String)> = st
            .root_artifacts(repo.id)
            .iter()
            .map(|a| (a.id, a.digest.clone()))
            .collect();
        let mut deleted = Vec::new();
        for (id, digest) in roots {
            if st.artifact(id).is_none() {
                continue;
            }
            let tags = st.delete_artifact(id, true).unwrap_or_default();
            deleted.push((digest, tags.first().cloned()));
        }
        // leftovers (children still referenced by nothing) go too
        st.artifacts.retain(|a| a.repository_id != repo.id);
        st.tags.retain(|t| t.repository_id != repo.id);
        st.repositories.retain(|x| x.id != repo.id);
        deleted
    };
    for (digest, tag) in deleted {
        let payload = engine::artifact_payload(
            inner,
            "DELETE_ARTIFACT",
            &user,
            &Pushed {
                project: p.to_string(),
                repo_full_name: full.clone(),
                digest,
                tag,
            },
            false,
        );
        notify::emit(inner, p, payload, &req.request_id);
    }
    Ok(Resp::ok())
}

// ---------------------------------------------------------------- registries

fn registry_field(r: &Registry, k: &str) -> Option<String> {
    match k {
        "id" => Some(r.id.to_string()),
        "name" => Some(r.name.clone()),
        "type" => Some(r.rtype.clone()),
        "url" => Some(r.url.clone()),
        "description" => Some(r.description.clone()),
        "insecure" => Some(r.insecure.to_string()),
        "status" => Some("healthy".into()),
        _ => None,
    }
}

fn list_registries(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    let paging = Paging::from_query(&req.query)?;
    req.require_auth()?;
    let mut terms = parse_q(req.query.get("q"))?;
    if let Some(n) = req.query.get("name") {
        terms.push(("name".into(), crate::util::Term::Fuzzy(n.to_string())));
    }
    let st = lock(&inner.state);
    Ok(list_response(
        req,
        paging,
        st.registries.clone(),
        &terms,
        |r| r.id,
        registry_field,
        |r| st.render_registry(r),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CredentialReq {
    #[serde(rename = "type")]
    ctype: Option<String>,
    access_key: Option<String>,
    access_secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RegistryReq {
    name: Option<String>,
    #[serde(rename = "type")]
    rtype: Option<String>,
    url: Option<String>,
    description: Option<String>,
    insecure: Option<bool>,
    credential: Option<CredentialReq>,
    ca_certificate: Option<String>,
}

fn create_registry(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    let body: RegistryReq = req.json("registry")?;
    req.require_auth()?;
    let name = body.name.unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::bad_request("name cannot be empty"));
    }
    if name.chars().count() > 64 {
        return Err(ApiError::bad_request("the max length of name is 64"));
    }
    let url = normalize_http_url(&body.url.unwrap_or_default())?;
    let rtype = body.rtype.unwrap_or_default();
    if !REGISTRY_TYPES.contains(&rtype.as_str()) {
        return Err(ApiError::internal(format!(
            "adapter factory for {rtype} not found"
        )));
    }
    // simulated health check: ping /v2/ on the remote
    if url_host(&url).contains("unreachable") {
        return Err(ApiError::bad_request("the registry is unhealthy"));
    }
    let cred = body.credential.unwrap_or_default();
    let mut st = lock(&inner.state);
    if st.registries.iter().any(|r| r.name == name) {
        return Err(ApiError::conflict(format!(
            "registry {name} already exists"
        )));
    }
    st.ids.registry += 1;
    let id = st.ids.registry;
    let now = Utc::now();
    st.registries.push(Registry {
        id,
        name,
        rtype,
        url,
        description: body.description.unwrap_or_default(),
        insecure: body.insecure.unwrap_or(false),
        cred_type: cred.ctype.unwrap_or_default(),
        access_key: cred.access_key.unwrap_or_default(),
        access_secret: cred.access_secret.unwrap_or_default(),
        ca_certificate: body.ca_certificate.filter(|c| !c.is_empty()),
        created: now,
        updated: now,
    });
    Ok(Resp::created(format!(
        "{}/{id}",
        req.raw_path.trim_end_matches('/')
    )))
}

fn get_registry(inner: &Arc<Inner>, req: &Req, id: &str) -> ApiResult {
    let id = path_id("id", id)?;
    req.require_auth()?;
    let st = lock(&inner.state);
    let r = st
        .registry(id)
        .ok_or_else(|| ApiError::not_found(format!("registry {id} not found")))?;
    Ok(Resp::json(200, &st.render_registry(r)))
}

fn list_adapters(req: &Req) -> ApiResult {
    req.require_auth()?;
    Ok(Resp::json(200, &json!(REGISTRY_TYPES)))
}

// ---------------------------------------------------------------- policies

#[derive(Deserialize, Default)]
#[serde(default)]
struct RegRef {
    id: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FilterReq {
    #[serde(rename = "type")]
    ftype: Option<String>,
    value: Option<Value>,
    decoration: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TriggerSettingsReq {
    cron: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TriggerReq {
    #[serde(rename = "type")]
    ttype: Option<String>,
    trigger_settings: Option<TriggerSettingsReq>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PolicyReq {
    name: Option<String>,
    description: Option<String>,
    src_registry: Option<RegRef>,
    dest_registry: Option<RegRef>,
    dest_namespace: Option<String>,
    dest_namespace_replace_count: Option<i8>,
    trigger: Option<TriggerReq>,
    filters: Option<Vec<FilterReq>>,
    replicate_deletion: Option<bool>,
    deletion: Option<bool>,
    #[serde(rename = "override")]
    override_: Option<bool>,
    enabled: Option<bool>,
    speed: Option<i32>,
    copy_by_chunk: Option<bool>,
    single_active_replication: Option<bool>,
}

/// Builds and validates a policy (Harbor's `Policy.Validate`, §3.1).
fn build_policy(st: &State, body: PolicyReq, id: i64, creator: &str) -> Result<Policy, ApiError> {
    let now = Utc::now();
    let policy = Policy {
        id,
        name: body.name.unwrap_or_default(),
        description: body.description.unwrap_or_default(),
        creator: creator.to_string(),
        src_registry_id: body.src_registry.and_then(|r| r.id).unwrap_or(0),
        dest_registry_id: body.dest_registry.and_then(|r| r.id).unwrap_or(0),
        dest_namespace: body.dest_namespace.unwrap_or_default(),
        replace_count: body.dest_namespace_replace_count.unwrap_or(-1),
        filters: body
            .filters
            .unwrap_or_default()
            .into_iter()
            .map(|f| Filter {
                ftype: f.ftype.unwrap_or_default(),
                value: f.value.unwrap_or(Value::Null),
                decoration: f.decoration.unwrap_or_default(),
            })
            .collect(),
        trigger: body.trigger.map(|t| Trigger {
            ttype: t.ttype.unwrap_or_default(),
            cron: t.trigger_settings.and_then(|s| s.cron),
        }),
        replicate_deletion: body.replicate_deletion.unwrap_or(false)
            || body.deletion.unwrap_or(false),
        override_: body.override_.unwrap_or(false),
        enabled: body.enabled.unwrap_or(false),
        speed: body.speed.unwrap_or(0).max(0),
        copy_by_chunk: body.copy_by_chunk.unwrap_or(false),
        single_active: body.single_active_replication.unwrap_or(false),
        created: now,
        updated: now,
    };
    if policy.name.is_empty() {
        return Err(ApiError::bad_request("empty name"));
    }
    if (policy.src_registry_id != 0) == (policy.dest_registry_id != 0) {
        return Err(ApiError::bad_request(
            "either src_registry or dest_registry should be empty and the other one shouldn't be empty",
        ));
    }
    for f in &policy.filters {
        validate_filter(f)?;
    }
    if !policy.dest_namespace.is_empty() && !valid_repository_name(&policy.dest_namespace) {
        return Err(ApiError::bad_request(format!(
            "invalid destination namespace: {}",
            policy.dest_namespace
        )));
    }
    if let Some(t) = &policy.trigger {
        match t.ttype.as_str() {
            "manual" | "event_based" => {}
            "scheduled" => {
                let cron = t.cron.clone().unwrap_or_default();
                if cron.is_empty() {
                    return Err(ApiError::bad_request(
                        "the cron string cannot be empty when the trigger type is scheduled",
                    ));
                }
                let fields: Vec<&str> = cron.split_whitespace().collect();
                if fields.len() != 6 {
                    return Err(ApiError::bad_request(format!(
                        "invalid cron string for scheduled trigger: {cron}"
                    )));
                }
            }
            _ => return Err(ApiError::bad_request("invalid trigger type")),
        }
        if policy.single_active && t.ttype == "event_based" {
            return Err(ApiError::bad_request(
                "single active replication is not supported for event_based trigger",
            ));
        }
    }
    for rid in [policy.src_registry_id, policy.dest_registry_id] {
        if rid != 0 && st.registry(rid).is_none() {
            return Err(ApiError::not_found(format!("registry {rid} not found")));
        }
    }
    Ok(policy)
}

fn validate_filter(f: &Filter) -> Result<(), ApiError> {
    match f.ftype.as_str() {
        "resource" | "name" | "tag" => {
            let Some(v) = f.value.as_str() else {
                return Err(ApiError::bad_request(
                    "the type of filter value isn't string",
                ));
            };
            if f.ftype == "resource" && v != "image" && v != "artifact" {
                return Err(ApiError::bad_request(format!(
                    "invalid resource filter: {v}"
                )));
            }
            if f.ftype != "tag" && !f.decoration.is_empty() {
                return Err(ApiError::bad_request(
                    "only tag and label filter support decoration",
                ));
            }
        }
        "label" => {
            let ok = f
                .value
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string));
            if !ok {
                return Err(ApiError::bad_request(
                    "the type of label filter value isn't string slice",
                ));
            }
        }
        _ => return Err(ApiError::bad_request("invalid filter type")),
    }
    if !f.decoration.is_empty() && f.decoration != "matches" && f.decoration != "excludes" {
        return Err(ApiError::bad_request(format!(
            "invalid filter decoration, :{}",
            f.decoration
        )));
    }
    Ok(())
}

fn policy_field(p: &Policy, k: &str) -> Option<String> {
    match k {
        "id" => Some(p.id.to_string()),
        "name" => Some(p.name.clone()),
        "enabled" => Some(p.enabled.to_string()),
        "src_registry_id" => Some(p.src_registry_id.to_string()),
        "dest_registry_id" => Some(p.dest_registry_id.to_string()),
        "dest_namespace" => Some(p.dest_namespace.clone()),
        "description" => Some(p.description.clone()),
        _ => None,
    }
}

fn list_policies(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    let paging = Paging::from_query(&req.query)?;
    req.require_auth()?;
    let mut terms = parse_q(req.query.get("q"))?;
    if let Some(n) = req.query.get("name") {
        terms.push(("name".into(), crate::util::Term::Fuzzy(n.to_string())));
    }
    let st = lock(&inner.state);
    Ok(list_response(
        req,
        paging,
        st.policies.clone(),
        &terms,
        |p| p.id,
        policy_field,
        |p| st.render_policy(p),
    ))
}

fn create_policy(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    let body: PolicyReq = req.json("policy")?;
    let user = req.require_auth()?.to_string();
    let mut st = lock(&inner.state);
    let policy = build_policy(&st, body, 0, &user)?;
    if st.policies.iter().any(|p| p.name == policy.name) {
        return Err(ApiError::conflict(format!(
            "replication policy {} already exists",
            policy.name
        )));
    }
    st.ids.policy += 1;
    let id = st.ids.policy;
    st.policies.push(Policy { id, ..policy });
    Ok(Resp::created(format!(
        "{}/{id}",
        req.raw_path.trim_end_matches('/')
    )))
}

fn get_policy(inner: &Arc<Inner>, req: &Req, id: &str) -> ApiResult {
    let id = path_id("id", id)?;
    req.require_auth()?;
    let st = lock(&inner.state);
    let p = st
        .policy(id)
        .ok_or_else(|| ApiError::not_found(format!("replication policy {id} not found")))?;
    Ok(Resp::json(200, &st.render_policy(p)))
}

fn update_policy(inner: &Arc<Inner>, req: &Req, id: &str) -> ApiResult {
    let id = path_id("id", id)?;
    let body: PolicyReq = req.json("policy")?;
    req.require_auth()?;
    let mut st = lock(&inner.state);
    let existing = st
        .policy(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("replication policy {id} not found")))?;
    let policy = build_policy(&st, body, id, &existing.creator)?;
    if st
        .policies
        .iter()
        .any(|p| p.id != id && p.name == policy.name)
    {
        return Err(ApiError::conflict(format!(
            "replication policy {} already exists",
            policy.name
        )));
    }
    let updated = Policy {
        created: existing.created,
        updated: Utc::now(),
        ..policy
    };
    if let Some(p) = st.policies.iter_mut().find(|p| p.id == id) {
        *p = updated;
    }
    Ok(Resp::ok())
}

fn delete_policy(inner: &Arc<Inner>, req: &Req, id: &str) -> ApiResult {
    let id = path_id("id", id)?;
    req.require_auth()?;
    let mut st = lock(&inner.state);
    if st.policy(id).is_none() {
        return Err(ApiError::not_found(format!(
            "replication policy {id} not found"
        )));
    }
    if engine::has_active(&st, id) {
        return Err(ApiError::precondition(
            "contains executions that aren't in final status, stop the execution first",
        ));
    }
    let exec_ids: Vec<i64> = st
        .executions
        .iter()
        .filter(|e| e.policy_id == id)
        .map(|e| e.id)
        .collect();
    st.tasks.retain(|t| !exec_ids.contains(&t.execution_id));
    st.executions.retain(|e| e.policy_id != id);
    st.policies.retain(|p| p.id != id);
    Ok(Resp::ok())
}

// -------------------------------------------------------------- executions

#[derive(Deserialize, Default)]
#[serde(default)]
struct StartReq {
    policy_id: Option<i64>,
}

fn start_execution(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    let body: StartReq = req.json("execution")?;
    let user = req.require_auth()?.to_string();
    let policy_id = body.policy_id.unwrap_or(0);
    let (exec_id, run) = {
        let mut st = lock(&inner.state);
        let policy = st.policy(policy_id).cloned().ok_or_else(|| {
            ApiError::not_found(format!("replication policy {policy_id} not found"))
        })?;
        if !policy.enabled {
            return Err(ApiError::precondition(format!(
                "the policy {policy_id} is disabled"
            )));
        }
        let skipped = policy.single_active && engine::has_active(&st, policy_id);
        let trigger = if req.query.get("trigger") == Some("scheduled") {
            "scheduled"
        } else {
            "manual"
        };
        st.ids.execution += 1;
        let id = st.ids.execution;
        let now = Utc::now();
        st.executions.push(Execution {
            id,
            policy_id,
            status: if skipped {
                ExecStatus::Failed
            } else {
                ExecStatus::InProgress
            },
            trigger: trigger.into(),
            status_text: if skipped {
                "Execution skipped: active replication still in progress.".into()
            } else {
                String::new()
            },
            start: now,
            end: if skipped { Some(now) } else { None },
            operator: user,
            request_id: req.request_id.clone(),
            stopped: false,
        });
        (id, !skipped)
    };
    if run {
        engine::spawn(inner, exec_id);
    }
    Ok(Resp::created(format!(
        "{}/{exec_id}",
        req.raw_path.trim_end_matches('/')
    )))
}

fn list_executions(inner: &Arc<Inner>, req: &Req) -> ApiResult {
    let paging = Paging::from_query(&req.query)?;
    let policy_id = req.query.int_param("policy_id")?;
    req.require_auth()?;
    let st = lock(&inner.state);
    let status = req.query.get("status").map(str::to_string);
    let trigger = req.query.get("trigger").map(str::to_string);
    let items: Vec<_> = st
        .executions
        .iter()
        .filter(|e| policy_id.is_none_or(|p| e.policy_id == p))
        .filter(|e| status.as_deref().is_none_or(|s| e.status.as_str() == s))
        .filter(|e| trigger.as_deref().is_none_or(|t| e.trigger == t))
        .cloned()
        .collect();
    Ok(list_response(
        req,
        paging,
        items,
        &[],
        |e| e.id,
        |e, k| match k {
            "status" => Some(e.status.as_str().into()),
            "policy_id" => Some(e.policy_id.to_string()),
            _ => None,
        },
        |e| st.render_execution(e),
    ))
}

fn get_execution(inner: &Arc<Inner>, req: &Req, id: &str) -> ApiResult {
    let id = path_id("id", id)?;
    req.require_auth()?;
    let st = lock(&inner.state);
    let e = st
        .execution(id)
        .ok_or_else(|| ApiError::not_found(format!("replication execution {id} not found")))?;
    Ok(Resp::json(200, &st.render_execution(e)))
}

fn stop_execution(inner: &Arc<Inner>, req: &Req, id: &str) -> ApiResult {
    let id = path_id("id", id)?;
    req.require_auth()?;
    if engine::stop(inner, id) {
        Ok(Resp::ok())
    } else {
        Err(ApiError::not_found(format!(
            "replication execution {id} not found"
        )))
    }
}

fn list_tasks(inner: &Arc<Inner>, req: &Req, id: &str) -> ApiResult {
    let id = path_id("id", id)?;
    let paging = Paging::from_query(&req.query)?;
    req.require_auth()?;
    let st = lock(&inner.state);
    if st.execution(id).is_none() {
        return Err(ApiError::not_found(format!(
            "replication execution {id} not found"
        )));
    }
    let status = req.query.get("status").map(str::to_string);
    let resource_type = req.query.get("resource_type").map(str::to_string);
    let items: Vec<_> = st
        .tasks
        .iter()
        .filter(|t| t.execution_id == id)
        .filter(|t| {
            status.as_deref().is_none_or(|s| {
                t.status.as_str() == s || (s == "Running" && t.status == TaskStatus::Running)
            })
        })
        .filter(|_| resource_type.as_deref().is_none_or(|r| r == "image"))
        .cloned()
        .collect();
    Ok(list_response(
        req,
        paging,
        items,
        &[],
        |t| t.id,
        |t, k| match k {
            "status" => Some(t.status.as_str().into()),
            _ => None,
        },
        |t| st.render_task(t),
    ))
}

// ---------------------------------------------------------------- webhooks

#[derive(Deserialize, Default)]
#[serde(default)]
struct TargetReq {
    #[serde(rename = "type")]
    ttype: Option<String>,
    address: Option<String>,
    auth_header: Option<String>,
    skip_cert_verify: Option<bool>,
    payload_format: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WebhookReq {
    name: Option<String>,
    description: Option<String>,
    targets: Option<Vec<TargetReq>>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
    creator: Option<String>,
}

/// Validates (§7.2) and converts the request; returns (name, description, targets,
/// event types, enabled, creator).
fn build_webhook(body: WebhookReq) -> Result<WebhookPolicy, ApiError> {
    let name = body.name.unwrap_or_default();
    let event_types = body.event_types.unwrap_or_default();
    if event_types.is_empty() {
        return Err(ApiError::bad_request("empty event type"));
    }
    for e in &event_types {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return Err(ApiError::bad_request(format!("unsupported event type {e}")));
        }
    }
    let targets = body.targets.unwrap_or_default();
    if targets.is_empty() {
        return Err(ApiError::bad_request(format!(
            "empty notification target with policy {name}"
        )));
    }
    let mut out = Vec::new();
    for t in targets {
        let address = t.address.unwrap_or_default();
        normalize_http_url(&address)?;
        let ttype = t.ttype.unwrap_or_default();
        if !matches!(ttype.as_str(), "http" | "slack" | "teams") {
            return Err(ApiError::bad_request(format!(
                "unsupported target type {ttype} with policy {name}"
            )));
        }
        let mut format = t.payload_format.unwrap_or_default();
        if !format.is_empty() && ttype != "http" {
            return Err(ApiError::bad_request(format!(
                "set payload format is not allowed for {ttype}"
            )));
        }
        if !format.is_empty() && format != "Default" && format != "CloudEvents" {
            return Err(ApiError::bad_request(format!(
                "unsupported payload format type: {format}"
            )));
        }
        if format.is_empty() && ttype == "http" {
            format = "Default".into();
        }
        out.push(Target {
            ttype,
            address,
            auth_header: t.auth_header.unwrap_or_default(),
            skip_cert_verify: t.skip_cert_verify.unwrap_or(false),
            payload_format: format,
        });
    }
    let now = Utc::now();
    Ok(WebhookPolicy {
        id: 0,
        name,
        description: body.description.unwrap_or_default(),
        project_id: 0,
        targets: out,
        event_types,
        creator: body.creator.unwrap_or_default(),
        enabled: body.enabled.unwrap_or(false),
        created: now,
        updated: now,
    })
}

fn webhook_project(st: &State, req: &Req, key: &str) -> Result<i64, ApiError> {
    st.project_by_name_or_id(key, req.header_true("X-Is-Resource-Name"))
        .map(|p| p.id)
        .ok_or_else(|| ApiError::not_found(format!("project {key} not found")))
}

fn webhook_in_project(st: &State, project_id: i64, id: i64) -> Result<WebhookPolicy, ApiError> {
    let w = st
        .webhook_policies
        .iter()
        .find(|w| w.id == id)
        .ok_or_else(|| ApiError::not_found(format!("notification policy {id} not found")))?;
    if w.project_id != project_id {
        return Err(ApiError::not_found(format!(
            "project id:{project_id}, webhook policy id: {id} not found"
        )));
    }
    Ok(w.clone())
}

fn list_webhooks(inner: &Arc<Inner>, req: &Req, key: &str) -> ApiResult {
    let paging = Paging::from_query(&req.query)?;
    req.require_auth()?;
    let st = lock(&inner.state);
    let project_id = webhook_project(&st, req, key)?;
    let terms = parse_q(req.query.get("q"))?;
    let items: Vec<_> = st
        .webhook_policies
        .iter()
        .filter(|w| w.project_id == project_id)
        .cloned()
        .collect();
    Ok(list_response(
        req,
        paging,
        items,
        &terms,
        |w| w.id,
        |w, k| match k {
            "id" => Some(w.id.to_string()),
            "name" => Some(w.name.clone()),
            "enabled" => Some(w.enabled.to_string()),
            "creator" => Some(w.creator.clone()),
            _ => None,
        },
        |w| st.render_webhook_policy(w),
    ))
}

fn create_webhook(inner: &Arc<Inner>, req: &Req, key: &str) -> ApiResult {
    let body: WebhookReq = req.json("policy")?;
    req.require_auth()?;
    let policy = build_webhook(body)?;
    let mut st = lock(&inner.state);
    let project_id = webhook_project(&st, req, key)?;
    if st
        .webhook_policies
        .iter()
        .any(|w| w.project_id == project_id && w.name == policy.name)
    {
        return Err(ApiError::conflict(format!(
            "notification policy named {} already exists",
            policy.name
        )));
    }
    st.ids.webhook += 1;
    let id = st.ids.webhook;
    st.webhook_policies.push(WebhookPolicy {
        id,
        project_id,
        ..policy
    });
    Ok(Resp::created(format!(
        "{}/{id}",
        req.raw_path.trim_end_matches('/')
    )))
}

fn get_webhook(inner: &Arc<Inner>, req: &Req, key: &str, id: &str) -> ApiResult {
    let id = path_id("webhook_policy_id", id)?;
    req.require_auth()?;
    let st = lock(&inner.state);
    let project_id = webhook_project(&st, req, key)?;
    let w = webhook_in_project(&st, project_id, id)?;
    Ok(Resp::json(200, &st.render_webhook_policy(&w)))
}

fn update_webhook(inner: &Arc<Inner>, req: &Req, key: &str, id: &str) -> ApiResult {
    let id = path_id("webhook_policy_id", id)?;
    let body: WebhookReq = req.json("policy")?;
    req.require_auth()?;
    let mut st = lock(&inner.state);
    let project_id = webhook_project(&st, req, key)?;
    let existing = webhook_in_project(&st, project_id, id)?;
    let policy = build_webhook(body)?;
    if st
        .webhook_policies
        .iter()
        .any(|w| w.project_id == project_id && w.id != id && w.name == policy.name)
    {
        return Err(ApiError::conflict(format!(
            "notification policy named {} already exists",
            policy.name
        )));
    }
    if let Some(w) = st.webhook_policies.iter_mut().find(|w| w.id == id) {
        *w = WebhookPolicy {
            id,
            project_id,
            created: existing.created,
            updated: Utc::now(),
            ..policy
        };
    }
    Ok(Resp::ok())
}

fn delete_webhook(inner: &Arc<Inner>, req: &Req, key: &str, id: &str) -> ApiResult {
    let id = path_id("webhook_policy_id", id)?;
    req.require_auth()?;
    let mut st = lock(&inner.state);
    let project_id = webhook_project(&st, req, key)?;
    webhook_in_project(&st, project_id, id)?;
    st.webhook_policies.retain(|w| w.id != id);
    Ok(Resp::ok())
}

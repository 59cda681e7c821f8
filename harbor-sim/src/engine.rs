//! Replication executions over simulated time (§4): the flow fetches the
//! matching upstream artifacts, creates one task per source repository, and each
//! task goes Pending → Running → Success/Error, each phase lasting `execution_step`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::UpstreamImage;
use crate::content;
use crate::lock;
use crate::model::{ExecStatus, Policy, Pushed, Registry, Task, TaskStatus};
use crate::notify::{
    self, ArtifactInfo, EventData, Payload, Replication, ReplicationResource, RepoInfo, Resource,
};
use crate::server::Inner;
use crate::util::{glob_match, is_pattern, random_u64, url_host};

pub const NOTHING_TO_REPLICATE: &str = "no resources need to be replicated";

/// One task to run: a source repository and the tags that matched.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskPlan {
    pub src_repo: String,
    pub dst_repo: String,
    pub tags: Vec<String>,
}

/// `replaceNamespace` (§3.2).
pub fn replace_namespace(src: &str, ns: &str, count: i8) -> Result<String, String> {
    if ns.is_empty() {
        return Ok(src.to_string());
    }
    let parts: Vec<&str> = src.split('/').collect();
    match count {
        c if c < 0 => Ok(format!("{ns}/{}", parts[parts.len() - 1])),
        0 => Ok(format!("{ns}/{src}")),
        c => {
            let c = c as usize;
            if c > parts.len() - 1 {
                return Err(format!(
                    "the source repository \"{src}\" contains only {} path components [{}] excepting the last one, but the destination namespace replace count is {c}",
                    parts.len() - 1,
                    parts[..parts.len() - 1].join(" ")
                ));
            }
            Ok(format!("{ns}/{}", parts[c..].join("/")))
        }
    }
}

fn same_registry(def: &Option<String>, reg: &Registry) -> bool {
    let Some(d) = def else { return true };
    let hub = |h: &str| {
        matches!(
            h,
            "docker.io" | "index.docker.io" | "registry-1.docker.io" | "hub.docker.com"
        )
    };
    let a = url_host(d);
    let b = url_host(&reg.url);
    a == b || (hub(&a) && (hub(&b) || reg.rtype == "docker-hub"))
}

fn tag_missing(tag: &str, def: Option<&UpstreamImage>) -> bool {
    if let Some(d) = def {
        return d.missing;
    }
    tag == "missing" || tag.starts_with("does-not-exist")
}

/// What the flow fetches from the source registry for `policy`.
pub fn plan(
    reg: &Registry,
    policy: &Policy,
    defs: &[UpstreamImage],
) -> Result<Vec<TaskPlan>, String> {
    let defs: Vec<&UpstreamImage> = defs
        .iter()
        .filter(|d| same_registry(&d.registry, reg))
        .collect();
    let docker_hub = reg.rtype == "docker-hub";
    let str_value = |f: &crate::model::Filter| f.value.as_str().unwrap_or_default().to_string();
    let names: Vec<String> = policy
        .filters
        .iter()
        .filter(|f| f.ftype == "name")
        .map(str_value)
        .collect();
    let tag_filters: Vec<(String, bool)> = policy
        .filters
        .iter()
        .filter(|f| f.ftype == "tag")
        .map(|f| (str_value(f), f.decoration != "excludes"))
        .collect();

    let mut repos: Vec<String> = Vec::new();
    match names.iter().find(|n| !n.is_empty() && !is_pattern(n)) {
        Some(literal) => {
            // Docker Hub: the name filter must include the namespace
            if !docker_hub || literal.contains('/') {
                repos.push(literal.clone());
            }
        }
        None => {
            for d in &defs {
                if !repos.contains(&d.repository) {
                    repos.push(d.repository.clone());
                }
            }
        }
    }
    repos.retain(|r| names.iter().all(|n| glob_match(n, r)));

    let mut plans = Vec::new();
    for repo in repos {
        let mut tags: Vec<String> = defs
            .iter()
            .filter(|d| d.repository == repo)
            .map(|d| d.tag.clone())
            .collect();
        for (value, matches) in &tag_filters {
            if *matches && !value.is_empty() && !is_pattern(value) && !tags.contains(value) {
                tags.push(value.clone());
            }
        }
        tags.retain(|t| {
            tag_filters
                .iter()
                .all(|(p, matches)| glob_match(p, t) == *matches)
        });
        tags.sort();
        tags.dedup();
        let def_of = |t: &str| {
            defs.iter()
                .find(|d| d.repository == repo && d.tag == t)
                .copied()
        };
        for t in &tags {
            if let Some(f) = def_of(t).and_then(|d| d.failure) {
                return Err(f.status_text().to_string());
            }
        }
        tags.retain(|t| !tag_missing(t, def_of(t)));
        if tags.is_empty() {
            continue;
        }
        let dst = replace_namespace(&repo, &policy.dest_namespace, policy.replace_count)?;
        plans.push(TaskPlan {
            src_repo: repo,
            dst_repo: dst,
            tags,
        });
    }
    Ok(plans)
}

/// Everything a running execution needs, captured at start.
#[derive(Clone)]
struct ExecCtx {
    exec_id: i64,
    policy: Policy,
    registry: Option<Registry>,
    operator: String,
    request_id: String,
    start_ts: i64,
}

pub fn spawn(inner: &Arc<Inner>, exec_id: i64) {
    let ctx = {
        let st = lock(&inner.state);
        let Some(e) = st.execution(exec_id) else {
            return;
        };
        let Some(p) = st.policy(e.policy_id) else {
            return;
        };
        ExecCtx {
            exec_id,
            policy: p.clone(),
            registry: st.registry(p.src_registry_id).cloned(),
            operator: e.operator.clone(),
            request_id: e.request_id.clone(),
            start_ts: e.start.timestamp(),
        }
    };
    let inner = inner.clone();
    tokio::spawn(async move { drive(inner, ctx).await });
}

fn step(inner: &Inner) -> Duration {
    inner.opts.execution_step
}

async fn drive(inner: Arc<Inner>, ctx: ExecCtx) {
    tokio::time::sleep(step(&inner)).await;
    let task_ids = {
        let mut st = lock(&inner.state);
        match st.execution(ctx.exec_id) {
            Some(e) if !e.status.is_final() => {}
            _ => return,
        }
        let result = match &ctx.registry {
            Some(reg) if ctx.policy.src_registry_id != 0 => plan(reg, &ctx.policy, &st.upstream),
            // push mode (local source) is not simulated: nothing to replicate
            _ => Ok(Vec::new()),
        };
        let plans = match result {
            Err(msg) => {
                if let Some(e) = st.execution_mut(ctx.exec_id) {
                    e.status = ExecStatus::Failed;
                    e.status_text = msg;
                    e.end = Some(Utc::now());
                }
                return;
            }
            Ok(p) if p.is_empty() => {
                if let Some(e) = st.execution_mut(ctx.exec_id) {
                    e.status = ExecStatus::Succeed;
                    e.status_text = NOTHING_TO_REPLICATE.into();
                    e.end = Some(Utc::now());
                }
                return;
            }
            Ok(p) => p,
        };
        let mut ids = Vec::new();
        for p in plans {
            st.ids.task += 1;
            let fail = if st.faults.fail_next_tasks > 0 {
                st.faults.fail_next_tasks -= 1;
                true
            } else {
                false
            };
            let flap = st.faults.flap_failed_before_succeed;
            let retries = Retries {
                failing_runs: st.faults.task_retries,
                time_scale: st.faults.retry_time_scale.unwrap_or(1.0),
            };
            let id = st.ids.task;
            st.tasks.push(Task {
                id,
                execution_id: ctx.exec_id,
                status: TaskStatus::Pending,
                job_id: format!("{:012x}{:012x}", random_u64() >> 16, random_u64() >> 16),
                src_repo: p.src_repo,
                dst_repo: p.dst_repo,
                tags: p.tags,
                start: None,
                end: None,
            });
            ids.push((id, fail, flap, retries));
        }
        ids
    };
    let mut set = tokio::task::JoinSet::new();
    for (id, fail, flap, retries) in task_ids {
        let inner = inner.clone();
        let ctx = ctx.clone();
        set.spawn(async move { run_task(inner, ctx, id, fail, flap, retries).await });
    }
    while set.join_next().await.is_some() {}
    if !inner.opts.status_refresh_delay.is_zero() {
        tokio::time::sleep(inner.opts.status_refresh_delay).await;
    }
    lock(&inner.state).refresh_execution(ctx.exec_id, true);
}

/// Sets a task status (unless it was stopped meanwhile); returns the task if set.
fn transition(
    inner: &Arc<Inner>,
    ctx: &ExecCtx,
    task_id: i64,
    to: TaskStatus,
    force_final: bool,
) -> Option<Task> {
    let mut st = lock(&inner.state);
    let t = st.task_mut(task_id)?;
    if t.status == TaskStatus::Stopped {
        return None;
    }
    let now = Utc::now();
    t.status = to;
    match to {
        TaskStatus::Running => {
            if t.start.is_none() {
                t.start = Some(now);
            }
            t.end = None;
        }
        s if s.is_final() => t.end = Some(now),
        _ => {}
    }
    let task = t.clone();
    let allow_final = force_final || inner.opts.status_refresh_delay.is_zero();
    st.refresh_execution(ctx.exec_id, allow_final);
    Some(task)
}

fn active(inner: &Arc<Inner>, task_id: i64) -> bool {
    lock(&inner.state)
        .task(task_id)
        .map(|t| !t.status.is_final())
        .unwrap_or(false)
}

/// Harbor's job service runs a replication job at most this often (`MaxFails`).
pub const MAX_RUNS: u32 = 3;

/// How a task's job fails and is retried (the `task_retries` fault).
#[derive(Clone, Copy, Debug)]
struct Retries {
    /// Runs that fail before one succeeds.
    failing_runs: u32,
    time_scale: f64,
}

/// gocraft/work's default back-off, which Harbor's job service uses: after the
/// `fails`-th failed run, `fails⁴ + 15 + rand(0..30)·(fails + 1)` seconds.
pub fn retry_backoff(fails: u32, time_scale: f64) -> Duration {
    let fails = u64::from(fails);
    let seconds = fails.pow(4) + 15 + (random_u64() % 30) * (fails + 1);
    Duration::from_secs_f64(seconds as f64 * time_scale)
}

async fn run_task(
    inner: Arc<Inner>,
    ctx: ExecCtx,
    task_id: i64,
    fail: bool,
    flap: bool,
    retries: Retries,
) {
    tokio::time::sleep(step(&inner)).await;
    let Some(task) = transition(&inner, &ctx, task_id, TaskStatus::Running, false) else {
        return;
    };
    replication_event(&inner, &ctx, &task);
    loop {
        let hang = lock(&inner.state).faults.hang_executions;
        if !hang || !active(&inner, task_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(step(&inner)).await;
    if !active(&inner, task_id) {
        return;
    }
    if fail {
        if let Some(task) = transition(&inner, &ctx, task_id, TaskStatus::Failed, false) {
            replication_event(&inner, &ctx, &task);
        }
        return;
    }
    // Failed runs: the task and the execution read Failed (with an end time) through the
    // back-off, then InProgress again when the job service retries.
    for run in 1..=retries.failing_runs.min(MAX_RUNS) {
        let Some(task) = transition(&inner, &ctx, task_id, TaskStatus::Failed, true) else {
            return;
        };
        replication_event(&inner, &ctx, &task);
        if run == MAX_RUNS {
            return;
        }
        tokio::time::sleep(retry_backoff(run, retries.time_scale)).await;
        let Some(task) = retry(&inner, &ctx, task_id) else {
            return;
        };
        replication_event(&inner, &ctx, &task);
        tokio::time::sleep(step(&inner)).await;
        if !active(&inner, task_id) {
            return;
        }
    }
    if flap {
        // the job errors once, jobservice retries it, and it succeeds
        let Some(task) = transition(&inner, &ctx, task_id, TaskStatus::Failed, true) else {
            return;
        };
        replication_event(&inner, &ctx, &task);
        tokio::time::sleep(step(&inner)).await;
        let Some(task) = retry(&inner, &ctx, task_id) else {
            return;
        };
        replication_event(&inner, &ctx, &task);
        tokio::time::sleep(step(&inner)).await;
        if !active(&inner, task_id) {
            return;
        }
    }
    // copy the artifacts, then report success
    let pushes = {
        let mut st = lock(&inner.state);
        let Some(task) = st.task(task_id).cloned() else {
            return;
        };
        if task.status.is_final() {
            return;
        }
        let (project, _) = task
            .dst_repo
            .split_once('/')
            .unwrap_or((&task.dst_repo, ""));
        let project = project.to_string();
        let (rtype, host) = ctx
            .registry
            .as_ref()
            .map(|r| (r.rtype.clone(), url_host(&r.url)))
            .unwrap_or_default();
        let mut pushes = Vec::new();
        for tag in &task.tags {
            let def = st
                .upstream
                .iter()
                .filter(|d| d.repository == task.src_repo && &d.tag == tag)
                .find(|d| match &ctx.registry {
                    Some(r) => same_registry(&d.registry, r),
                    None => true,
                })
                .cloned();
            let mut manifest = content::generate(&rtype, &host, &task.src_repo, tag, def.as_ref());
            if inner.opts.image_contents
                && let Some(config) = crate::contents::family_config(&host, &task.src_repo, tag)
            {
                crate::contents::apply_config(&mut manifest, &config);
            }
            pushes.extend(st.push_image(
                &project,
                &task.dst_repo,
                &manifest,
                tag,
                ctx.policy.override_,
            ));
        }
        pushes
    };
    push_events(&inner, &pushes, "harbor-jobservice", "");
    if let Some(task) = transition(&inner, &ctx, task_id, TaskStatus::Succeed, false) {
        replication_event(&inner, &ctx, &task);
    }
}

fn retry(inner: &Arc<Inner>, ctx: &ExecCtx, task_id: i64) -> Option<Task> {
    let mut st = lock(&inner.state);
    let e = st.execution(ctx.exec_id)?;
    if e.stopped {
        return None;
    }
    let t = st.task_mut(task_id)?;
    if t.status != TaskStatus::Failed {
        return None;
    }
    t.status = TaskStatus::Running;
    t.end = None;
    let task = t.clone();
    st.refresh_execution(ctx.exec_id, false);
    Some(task)
}

/// A REPLICATION event for a task status change (§7.5).
fn replication_event(inner: &Arc<Inner>, ctx: &ExecCtx, task: &Task) {
    let (dest_project, dst_rest) = task
        .dst_repo
        .split_once('/')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap_or((task.dst_repo.clone(), task.dst_repo.clone()));
    let info = ArtifactInfo {
        artifact_type: "image".into(),
        status: task.status.job_status().into(),
        name_tag: format!("{dst_rest} [{} item(s) in total]", task.tags.len()),
        references: task.tags.clone(),
    };
    let reg = ctx.registry.clone();
    let replication = Replication {
        harbor_hostname: inner.harbor_hostname(),
        job_status: task.status.job_status().into(),
        description: ctx.policy.description.clone(),
        artifact_type: "image".into(),
        authentication_type: reg
            .as_ref()
            .map(|r| r.cred_type.clone())
            .unwrap_or_default(),
        override_mode: ctx.policy.override_,
        trigger_type: "MANUAL".into(),
        policy_creator: ctx.policy.creator.clone(),
        execution_timestamp: ctx.start_ts,
        src_resource: reg.as_ref().map(|r| ReplicationResource {
            registry_name: r.name.clone(),
            registry_type: r.rtype.clone(),
            endpoint: r.url.clone(),
            namespace: task.src_repo.split('/').next().unwrap_or_default().into(),
        }),
        dest_resource: Some(ReplicationResource {
            registry_name: String::new(),
            registry_type: "harbor".into(),
            endpoint: inner.ext_endpoint(),
            namespace: dest_project.clone(),
        }),
        successful_artifact: if task.status == TaskStatus::Succeed {
            vec![info.clone()]
        } else {
            Vec::new()
        },
        failed_artifact: if task.status == TaskStatus::Failed {
            vec![info]
        } else {
            Vec::new()
        },
        execution_id: 0,
        task_id: 0,
    };
    // Harbor names the execution and task only from v2.13.0 on.
    let replication = if lock(&inner.state).faults.events_carry_execution_id() {
        Replication {
            execution_id: ctx.exec_id,
            task_id: task.id,
            ..replication
        }
    } else {
        replication
    };
    let payload = Payload {
        event_type: "REPLICATION".into(),
        occur_at: Utc::now().timestamp(),
        operator: ctx.operator.clone(),
        event_data: EventData {
            replication: Some(replication),
            ..Default::default()
        },
    };
    notify::emit(inner, &dest_project, payload, &ctx.request_id);
}

/// Builds the PUSH_ARTIFACT / DELETE_ARTIFACT payload (§7.6, §7.7).
pub fn artifact_payload(
    inner: &Arc<Inner>,
    event_type: &str,
    operator: &str,
    art: &Pushed,
    with_date_created: bool,
) -> Payload {
    let (project, repo_full, digest) = (
        art.project.as_str(),
        art.repo_full_name.as_str(),
        art.digest.as_str(),
    );
    let tag = art.tag.as_deref();
    let (date_created, repo_type) = {
        let st = lock(&inner.state);
        let created = if with_date_created {
            st.repository_by_name(repo_full)
                .map(|r| r.created.timestamp())
                .unwrap_or(0)
        } else {
            0
        };
        let public = st
            .project_by_name(project)
            .map(|p| p.public)
            .unwrap_or(false);
        (created, if public { "public" } else { "private" })
    };
    let host = &inner.opts.external_host;
    let (tag, url) = match tag {
        Some(t) => (t.to_string(), format!("{host}/{repo_full}:{t}")),
        None => (digest.to_string(), format!("{host}/{repo_full}@{digest}")),
    };
    Payload {
        event_type: event_type.into(),
        occur_at: Utc::now().timestamp(),
        operator: operator.into(),
        event_data: EventData {
            resources: vec![Resource {
                digest: digest.into(),
                tag,
                resource_url: url,
                scan_overview: None,
            }],
            repository: Some(RepoInfo {
                date_created,
                name: repo_full
                    .strip_prefix(&format!("{project}/"))
                    .unwrap_or(repo_full)
                    .into(),
                namespace: project.into(),
                repo_full_name: repo_full.into(),
                repo_type: repo_type.into(),
            }),
            replication: None,
        },
    }
}

/// One PUSH_ARTIFACT event per pushed manifest, in push order (§7.6). `operator`
/// is the pusher: `harbor-jobservice` for replication, the robot for a `docker push`.
pub fn push_events(inner: &Arc<Inner>, pushes: &[Pushed], operator: &str, request_id: &str) {
    for p in pushes {
        let payload = artifact_payload(inner, "PUSH_ARTIFACT", operator, p, true);
        notify::emit(inner, &p.project, payload, request_id);
    }
}

/// Stops an execution (§4.4). Returns false if it does not exist.
pub fn stop(inner: &Arc<Inner>, exec_id: i64) -> bool {
    let (stopped_tasks, ctx) = {
        let mut st = lock(&inner.state);
        let Some(e) = st.execution(exec_id).cloned() else {
            return false;
        };
        if e.status.is_final() {
            return true;
        }
        let now = Utc::now();
        let mut stopped = Vec::new();
        for t in st.tasks.iter_mut().filter(|t| t.execution_id == exec_id) {
            if !t.status.is_final() {
                let was_running = t.status == TaskStatus::Running;
                t.status = TaskStatus::Stopped;
                t.end = Some(now);
                stopped.push((t.clone(), was_running));
            }
        }
        let (_, _, failed, _, _) = st.counters(exec_id);
        let policy = st.policy(e.policy_id).cloned();
        let registry = policy
            .as_ref()
            .and_then(|p| st.registry(p.src_registry_id).cloned());
        if let Some(ex) = st.execution_mut(exec_id) {
            ex.status = if failed > 0 {
                ExecStatus::Failed
            } else {
                ExecStatus::Stopped
            };
            ex.end = Some(now);
            ex.stopped = true;
        }
        let ctx = policy.map(|policy| ExecCtx {
            exec_id,
            policy,
            registry,
            operator: e.operator.clone(),
            request_id: e.request_id.clone(),
            start_ts: e.start.timestamp(),
        });
        (stopped, ctx)
    };
    if let Some(ctx) = ctx {
        for (t, was_running) in stopped_tasks {
            if was_running {
                replication_event(inner, &ctx, &t);
            }
        }
    }
    true
}

/// `single_active_replication` (§4.1): is another execution of the policy running?
pub fn has_active(st: &crate::model::State, policy_id: i64) -> bool {
    st.executions
        .iter()
        .any(|e| e.policy_id == policy_id && !e.status.is_final())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        assert_eq!(
            replace_namespace("library/nginx", "catalog", -1).unwrap(),
            "catalog/nginx"
        );
        assert_eq!(
            replace_namespace("library/nginx", "catalog", 0).unwrap(),
            "catalog/library/nginx"
        );
        assert_eq!(
            replace_namespace("library/nginx", "catalog", 1).unwrap(),
            "catalog/nginx"
        );
        assert_eq!(
            replace_namespace("nvidia/pytorch", "catalog", -1).unwrap(),
            "catalog/pytorch"
        );
        assert_eq!(
            replace_namespace("nvidia/pytorch", "catalog", 0).unwrap(),
            "catalog/nvidia/pytorch"
        );
        assert_eq!(
            replace_namespace("a/b/c/img", "catalog", 2).unwrap(),
            "catalog/c/img"
        );
        assert!(replace_namespace("a/b/c/img", "catalog", 4).is_err());
        assert_eq!(
            replace_namespace("library/nginx", "", 1).unwrap(),
            "library/nginx"
        );
    }
}

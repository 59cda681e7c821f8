//! The simulated build runner (not part of Harbor). berth never builds images
//! itself: it POSTs a signed build job to `/runner/jobs`; the runner answers
//! `202`, reports progress to the job's callback (`PUT`, bearer token), "builds",
//! and pushes the image into the simulated Harbor, whose PUSH_ARTIFACT webhook
//! completes the build in berth. Each phase lasts `execution_step`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::http::Resp;
use crate::lock;
use crate::model::{MAX_LOG, RunnerCallbackRecord, RunnerJob, RunnerOutcome, State};
use crate::server::Inner;
use crate::util::{fmt_time, uuid_v4, valid_component, valid_repository_name};
use crate::{content, engine};

/// Where berth POSTs build jobs (on the simulator's own address).
pub const RUNNER_JOBS_PATH: &str = "/runner/jobs";
/// The pusher named in the PUSH_ARTIFACT events of built images.
pub const RUNNER_OPERATOR: &str = "robot$runner";
/// `message` of a `failed` callback unless told otherwise.
pub const DEFAULT_FAIL_MESSAGE: &str =
    "The command '/bin/sh -c pip install nonexistent-pkg' returned a non-zero code: 1";
/// `log_tail` of a `failed` callback unless told otherwise.
pub const DEFAULT_FAIL_LOG_TAIL: &str = "ERROR: No matching distribution found for nonexistent-pkg";
/// Size of every built image (1.5 GiB).
pub const BUILT_IMAGE_SIZE: u64 = 1_610_612_736;

/// Callback attempts per message: the first one and at most two retries.
const CALLBACK_ATTEMPTS: u32 = 3;

const MODES: [&str; 3] = ["dockerfile", "packages", "environment"];

type HmacSha256 = Hmac<Sha256>;

/// The `X-Berth-Signature` value for `body`: `sha256=<lowercase hex HMAC-SHA256>`.
pub fn runner_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn signature_ok(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    let Some(bytes) = bytes else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

#[derive(Deserialize, Clone, Debug)]
struct JobBody {
    build_id: String,
    mode: String,
    #[serde(default)]
    dockerfile: Option<String>,
    #[serde(default)]
    base_image: Option<String>,
    #[serde(default)]
    environment_id: Option<String>,
    push: PushSpec,
    callback: CallbackSpec,
}

#[derive(Deserialize, Clone, Debug)]
struct PushSpec {
    registry: String,
    repository: String,
    tag: String,
}

#[derive(Deserialize, Clone, Debug)]
struct CallbackSpec {
    url: String,
    token: String,
}

/// What happens to an accepted job.
#[derive(Clone, Debug, PartialEq)]
enum Fate {
    Build,
    Fail { message: String, log_tail: String },
    Silent,
}

fn error(status: u16, msg: impl Into<String>) -> Resp {
    Resp::json(status, &json!({ "error": msg.into() }))
}

/// `POST /runner/jobs`.
pub fn handle(inner: &Arc<Inner>, method: &Method, headers: &HeaderMap, body: &[u8]) -> Resp {
    if method != Method::POST {
        let mut r = error(405, "method not allowed");
        r.headers.push(("Allow".into(), "POST".into()));
        return r;
    }
    let raw: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let field = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or_default();
    let (build_id, mode) = (field("build_id").to_string(), field("mode").to_string());
    let sig = headers
        .get("X-Berth-Signature")
        .and_then(|v| v.to_str().ok());
    if !signature_ok(&inner.opts.runner_secret, sig, body) {
        let mut st = lock(&inner.state);
        record(&mut st, build_id, mode, false, RunnerOutcome::Rejected, raw).error =
            Some("bad signature".into());
        return error(401, "bad signature");
    }
    let job = match parse(body) {
        Ok(j) => j,
        Err(msg) => {
            let mut st = lock(&inner.state);
            record(&mut st, build_id, mode, true, RunnerOutcome::Rejected, raw).error =
                Some(msg.clone());
            return error(400, msg);
        }
    };
    let accepted = json!({"accepted": true, "job_id": job.build_id});
    let (id, fate) = {
        let mut st = lock(&inner.state);
        // a retried POST of a job still in flight is the same job
        if let Some(j) = st.runner_jobs.iter_mut().rev().find(|j| {
            j.build_id == job.build_id
                && matches!(
                    j.outcome,
                    RunnerOutcome::Accepted | RunnerOutcome::Running | RunnerOutcome::Silent
                )
        }) {
            j.submissions += 1;
            return Resp::json(202, &accepted);
        }
        let fate = decide(&mut st, &job);
        let outcome = if fate == Fate::Silent {
            RunnerOutcome::Silent
        } else {
            RunnerOutcome::Accepted
        };
        let id = record(
            &mut st,
            job.build_id.clone(),
            job.mode.clone(),
            true,
            outcome,
            raw,
        )
        .id;
        (id, fate)
    };
    if fate != Fate::Silent {
        let inner = inner.clone();
        tokio::spawn(async move { drive(inner, id, job, fate).await });
    }
    Resp::json(202, &accepted)
}

fn record(
    st: &mut State,
    build_id: String,
    mode: String,
    signature_ok: bool,
    outcome: RunnerOutcome,
    body: Value,
) -> &mut RunnerJob {
    if st.runner_jobs.len() >= MAX_LOG {
        st.runner_jobs.remove(0);
    }
    st.ids.runner_job += 1;
    st.runner_jobs.push(RunnerJob {
        id: st.ids.runner_job,
        build_id,
        mode,
        signature_ok,
        outcome,
        error: None,
        body,
        submissions: 1,
        callbacks: Vec::new(),
        pushed: None,
        digest: None,
        received_at: fmt_time(Some(Utc::now())),
    });
    st.runner_jobs.last_mut().expect("just pushed")
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn parse(body: &[u8]) -> Result<JobBody, String> {
    let job: JobBody = serde_json::from_slice(body).map_err(|e| format!("invalid job: {e}"))?;
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    if job.build_id.trim().is_empty() {
        return Err("build_id is required".into());
    }
    if !MODES.contains(&job.mode.as_str()) {
        return Err(format!(
            "invalid mode \"{}\": expected dockerfile, packages or environment",
            job.mode
        ));
    }
    if job.mode == "environment" {
        if !present(&job.environment_id) {
            return Err("environment_id is required in environment mode".into());
        }
    } else if !present(&job.dockerfile) {
        return Err(format!("dockerfile is required in {} mode", job.mode));
    }
    if job.push.registry.trim().is_empty() {
        return Err("push.registry is required".into());
    }
    match job.push.repository.split_once('/') {
        Some((project, rest)) if valid_component(project) && valid_repository_name(rest) => {}
        _ => {
            return Err(format!(
                "invalid push.repository \"{}\": expected <project>/<repository>",
                job.push.repository
            ));
        }
    }
    if !valid_tag(&job.push.tag) {
        return Err(format!("invalid push.tag \"{}\"", job.push.tag));
    }
    match job.callback.url.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
        _ => {
            return Err(format!(
                "invalid callback.url \"{}\": an http:// URL is required",
                job.callback.url
            ));
        }
    }
    if job.callback.token.is_empty() {
        return Err("callback.token is required".into());
    }
    Ok(job)
}

/// `# sim: fail` / `# sim: silent` markers first, then the control counters.
fn decide(st: &mut State, job: &JobBody) -> Fate {
    if let Some(fate) = job.dockerfile.as_deref().and_then(marker_fate) {
        return match fate {
            Fate::Fail { message, .. } => Fate::Fail {
                message,
                log_tail: fail_log_tail(st),
            },
            f => f,
        };
    }
    let c = &mut st.runner;
    if c.silent_next > 0 {
        c.silent_next -= 1;
        return Fate::Silent;
    }
    if c.fail_next > 0 {
        c.fail_next -= 1;
        let message = c
            .message
            .clone()
            .unwrap_or_else(|| DEFAULT_FAIL_MESSAGE.into());
        return Fate::Fail {
            message,
            log_tail: fail_log_tail(st),
        };
    }
    Fate::Build
}

fn fail_log_tail(st: &State) -> String {
    st.runner
        .log_tail
        .clone()
        .unwrap_or_else(|| DEFAULT_FAIL_LOG_TAIL.into())
}

/// The `sim:` directive of a comment (`# sim: fail`, `#sim:silent`), if any.
fn directive(line: &str) -> Option<(usize, &'static str)> {
    let mut from = 0;
    while let Some(i) = line[from..].find('#') {
        let pos = from + i;
        let compact: String = line[pos + 1..]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        for d in ["sim:fail", "sim:silent"] {
            if compact.starts_with(d) {
                return Some((pos, d));
            }
        }
        from = pos + 1;
    }
    None
}

/// How a Dockerfile's markers decide the job; the failure echoes the RUN
/// instruction on the marker line, or else the previous one.
fn marker_fate(dockerfile: &str) -> Option<Fate> {
    let mut last_run: Option<String> = None;
    let mut current: Vec<String> = Vec::new();
    for line in dockerfile.lines() {
        let marker = directive(line);
        let code = match marker {
            Some((pos, _)) => &line[..pos],
            None => line,
        };
        let trimmed = code.trim();
        let full_comment = marker.is_none() && trimmed.starts_with('#');
        if !full_comment && !trimmed.is_empty() {
            let continued = trimmed.ends_with('\\');
            current.push(trimmed.trim_end_matches('\\').trim().to_string());
            if !continued {
                if let Some(run) = run_command(&current.join(" ")) {
                    last_run = Some(run);
                }
                current.clear();
            }
        }
        match marker {
            Some((_, "sim:silent")) => return Some(Fate::Silent),
            Some(_) => {
                // the marker may sit in the middle of a continued RUN
                let pending = run_command(&current.join(" "));
                let message = match pending.or(last_run) {
                    Some(cmd) => format!("The command '{cmd}' returned a non-zero code: 1"),
                    None => DEFAULT_FAIL_MESSAGE.into(),
                };
                return Some(Fate::Fail {
                    message,
                    log_tail: DEFAULT_FAIL_LOG_TAIL.into(),
                });
            }
            None => {}
        }
    }
    None
}

/// `RUN <shell form>` → `/bin/sh -c <cmd>`; `RUN ["exec","form"]` → `exec form`.
fn run_command(instruction: &str) -> Option<String> {
    let (kw, rest) = instruction.split_once(char::is_whitespace)?;
    if !kw.eq_ignore_ascii_case("RUN") {
        return None;
    }
    let rest = rest.trim();
    if rest.is_empty() {
        return None;
    }
    if rest.starts_with('[')
        && let Ok(argv) = serde_json::from_str::<Vec<String>>(rest)
    {
        return Some(argv.join(" "));
    }
    Some(format!("/bin/sh -c {rest}"))
}

/// The image the build starts from: `base_image`, else the first `FROM`.
fn from_image(job: &JobBody) -> String {
    if let Some(b) = job.base_image.as_deref().filter(|b| !b.trim().is_empty()) {
        return b.trim().to_string();
    }
    job.dockerfile
        .as_deref()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .find_map(|l| {
            let (kw, rest) = l.split_once(char::is_whitespace)?;
            kw.eq_ignore_ascii_case("FROM")
                .then(|| rest.trim().to_string())
        })
        .unwrap_or_else(|| "scratch".into())
}

fn set_outcome(inner: &Inner, id: i64, outcome: RunnerOutcome) {
    if let Some(j) = lock(&inner.state).runner_job_mut(id) {
        j.outcome = outcome;
    }
}

/// `docker pull` of a base on this Harbor (with `runner_pulls_bases`): the failure when it
/// holds no such image. Bases on other registries are taken to exist (as upstream images do).
fn missing_base(inner: &Inner, base: &str) -> Option<String> {
    if !inner.opts.runner_pulls_bases {
        return None;
    }
    let (host, path) = base.split_once('/')?;
    if host != inner.opts.external_host && host != inner.addr.to_string() {
        return None;
    }
    // `repo[:tag][@digest]`: a digest names the content; a tag alone, whatever it points at.
    let (named, digest) = match path.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (path, None),
    };
    let (repo, tag) = match named.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((repo, tag)) => (repo, Some(tag)),
        None => (named, digest.is_none().then_some("latest")),
    };
    let st = lock(&inner.state);
    // With both, the tag is enough: the simulated official images carry digests of their
    // own, not the catalog's seeded ones.
    let found = st.repository_by_name(repo).is_some_and(|r| {
        tag.is_some_and(|t| st.tag_in_repo(r.id, t).is_some())
            || digest.is_some_and(|d| st.artifact_by_digest(r.id, d).is_some())
    });
    (!found).then(|| format!("pull access denied for {base}: manifest unknown"))
}

async fn drive(inner: Arc<Inner>, id: i64, job: JobBody, fate: Fate) {
    let fate = match (fate, missing_base(&inner, &from_image(&job))) {
        (Fate::Build, Some(message)) => Fate::Fail {
            log_tail: format!("ERROR: {message}"),
            message,
        },
        (fate, _) => fate,
    };
    let step = inner.opts.execution_step;
    tokio::time::sleep(step).await;
    set_outcome(&inner, id, RunnerOutcome::Running);
    let first = format!("Step 1/3 : FROM {}", from_image(&job));
    callback(
        &inner,
        id,
        &job.callback,
        json!({"status": "running", "log_tail": first}),
    )
    .await;
    tokio::time::sleep(step).await;
    match fate {
        Fate::Silent => {}
        Fate::Fail { message, log_tail } => {
            set_outcome(&inner, id, RunnerOutcome::Failed);
            callback(
                &inner,
                id,
                &job.callback,
                json!({"status": "failed", "message": message, "log_tail": log_tail}),
            )
            .await;
        }
        Fate::Build => {
            let PushSpec {
                registry,
                repository,
                tag,
            } = &job.push;
            callback(
                &inner,
                id,
                &job.callback,
                json!({"status": "running", "log_tail": format!("pushed {registry}/{repository}:{tag}")}),
            )
            .await;
            push(&inner, id, &job);
        }
    }
}

/// `docker push`: the manifest lands in the project (created private if missing)
/// and PUSH_ARTIFACT goes to the project's webhook policies.
fn push(inner: &Arc<Inner>, id: i64, job: &JobBody) {
    let repo_full = job.push.repository.as_str();
    let (project, rest) = repo_full.split_once('/').unwrap_or((repo_full, repo_full));
    let mut manifest = content::built_image(&job.build_id, rest, BUILT_IMAGE_SIZE);
    if let Some(Value::Object(attrs)) = manifest.extra_attrs.as_mut() {
        attrs.insert(
            "created".into(),
            Value::String(Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
    }
    let pushes = {
        let mut st = lock(&inner.state);
        let pushes = st.push_image(project, repo_full, &manifest, &job.push.tag, true);
        if let Some(j) = st.runner_job_mut(id) {
            j.outcome = RunnerOutcome::Pushed;
            j.pushed = Some(format!("{repo_full}:{}", job.push.tag));
            j.digest = Some(manifest.digest.clone());
        }
        pushes
    };
    engine::push_events(inner, &pushes, RUNNER_OPERATOR, &uuid_v4());
}

/// One callback message: up to [`CALLBACK_ATTEMPTS`] attempts (retrying transport
/// errors and 5xx), every attempt recorded on the job.
async fn callback(inner: &Arc<Inner>, id: i64, cb: &CallbackSpec, payload: Value) {
    let body = Bytes::from(serde_json::to_vec(&payload).unwrap_or_default());
    for attempt in 1..=CALLBACK_ATTEMPTS {
        let result = put_once(inner, cb, body.clone()).await;
        let (status, error) = match result {
            Ok(s) if (200..300).contains(&s) => (Some(s), None),
            Ok(s) => (Some(s), Some(format!("unexpected status code {s}"))),
            Err(e) => (None, Some(e)),
        };
        if let Some(j) = lock(&inner.state).runner_job_mut(id) {
            j.callbacks.push(RunnerCallbackRecord {
                payload: payload.clone(),
                attempt,
                status,
                error: error.clone(),
                at: fmt_time(Some(Utc::now())),
            });
        }
        let retry = error.is_some() && status.is_none_or(|s| s >= 500);
        if !retry {
            return;
        }
        if attempt < CALLBACK_ATTEMPTS {
            tokio::time::sleep(inner.opts.webhook_retry_delay).await;
        }
    }
}

async fn put_once(inner: &Arc<Inner>, cb: &CallbackSpec, body: Bytes) -> Result<u16, String> {
    let req = hyper::Request::put(cb.url.as_str())
        .header("Authorization", format!("Bearer {}", cb.token))
        .header("Content-Type", "application/json")
        .header("User-Agent", "berth-runner-sim/1.0")
        .body(Full::new(body))
        .map_err(|e| format!("Put \"{}\": {e}", cb.url))?;
    let fut = async {
        let resp = inner
            .client
            .request(req)
            .await
            .map_err(|e| format!("Put \"{}\": {e}", cb.url))?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        Ok::<u16, String>(status)
    };
    match tokio::time::timeout(timeout(inner), fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Put \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            cb.url
        )),
    }
}

fn timeout(inner: &Inner) -> Duration {
    inner.opts.webhook_timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let body = br#"{"build_id":"b"}"#;
        let sig = runner_signature("runner-secret", body);
        assert!(sig.starts_with("sha256=") && sig.len() == 71);
        assert!(signature_ok("runner-secret", Some(&sig), body));
        assert!(signature_ok(
            "runner-secret",
            Some(&sig.to_uppercase().replace("SHA256=", "sha256=")),
            body
        ));
        assert!(!signature_ok("other", Some(&sig), body));
        assert!(!signature_ok("runner-secret", Some(&sig), b"{}"));
        assert!(!signature_ok("runner-secret", None, body));
        assert!(!signature_ok("runner-secret", Some(&sig[7..]), body));
        // RFC 4231 test case 2
        assert_eq!(
            runner_signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn markers() {
        assert_eq!(marker_fate("FROM a\nRUN pip install x\n"), None);
        assert_eq!(
            marker_fate("FROM a\nRUN pip install nope\n# sim: fail\nRUN true"),
            Some(Fate::Fail {
                message: "The command '/bin/sh -c pip install nope' returned a non-zero code: 1"
                    .into(),
                log_tail: DEFAULT_FAIL_LOG_TAIL.into()
            })
        );
        let Some(Fate::Fail { message, .. }) =
            marker_fate("FROM a\nRUN apt-get update && \\\n    apt-get install -y x # sim: fail")
        else {
            panic!("no failure");
        };
        assert_eq!(
            message,
            "The command '/bin/sh -c apt-get update && apt-get install -y x' returned a non-zero code: 1"
        );
        let Some(Fate::Fail { message, .. }) = marker_fate("FROM a\n#sim:fail") else {
            panic!("no failure");
        };
        assert_eq!(message, DEFAULT_FAIL_MESSAGE);
        let Some(Fate::Fail { message, .. }) =
            marker_fate("FROM a\nRUN [\"pip\",\"install\",\"z\"]\n# sim: FAIL")
        else {
            panic!("no failure");
        };
        assert_eq!(
            message,
            "The command 'pip install z' returned a non-zero code: 1"
        );
        assert_eq!(
            marker_fate("FROM a\n# sim: silent\nRUN x # sim: fail"),
            Some(Fate::Silent)
        );
    }
}

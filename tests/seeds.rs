//! The four seeds, replayed: every example request each seed shows is sent as a client
//! written against that seed would send it, and each answer must carry the example
//! response's fields with the same JSON types (recursively; extra fields are allowed,
//! missing or differently typed ones fail). Then one test per promise a seed's client relies on.
//!
//! The seeds are kept verbatim in `tests/seeds/`; where the shared originals are at hand
//! (`../shared/seeds`), the copies must be identical.

use std::path::PathBuf;

use berth_tests::harbor::TestHarbor;
use berth_tests::{AppOptions, Reply, TestApp, WORKER_TOKEN, repo_root};
use harbor_sim::FaultsPatch;
use serde_json::{Value, json};

/// One example request of a seed, and the example answer if the seed shows one.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    response: Option<Value>,
}

impl Example {
    fn new(method: &str, path: &str) -> Example {
        Example {
            method: method.to_owned(),
            path: path.replace("&#58;", ":"),
            query: Vec::new(),
            body: None,
            response: None,
        }
    }

    fn has_example(&self) -> bool {
        self.body.is_some() || self.response.is_some()
    }

    fn label(&self) -> String {
        let query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, query.join("&"))
        }
    }
}

fn seed_dir() -> PathBuf {
    repo_root().join("tests").join("seeds")
}

fn seed_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(seed_dir())
        .expect("tests/seeds holds the seeds")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// `METHOD /api/...` anywhere in a line (a heading, a list item, a code line).
fn endpoint_in(line: &str) -> Option<Example> {
    let line = line.replace("&#58;", ":");
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let needle = format!("{method} /api/");
        let Some(i) = line.find(&needle) else {
            continue;
        };
        if i > 0 && line.as_bytes()[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let rest = &line[i + method.len() + 1..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '`' || c == '<')
            .unwrap_or(rest.len());
        return Some(Example::new(method, &rest[..end]));
    }
    None
}

/// The text between backticks after `marker` on a line (seed 000's `**接口路径**: `/x``).
fn backticked_after(line: &str, marker: &str) -> Option<String> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let start = rest.find('`')? + 1;
    let end = rest[start..].find('`')? + start;
    Some(rest[start..end].to_owned())
}

/// The JSON object starting at the first `{` after `marker` in `text`.
fn json_after(text: &str, marker: &str) -> Option<Value> {
    let from = text.find(marker)? + marker.len();
    let start = text[from..].find('{')? + from;
    let (mut depth, mut in_string, mut escaped) = (0, false, false);
    for (i, c) in text[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return serde_json::from_str(&text[start..=start + i]).ok();
                }
            }
            _ => {}
        }
    }
    None
}

/// The first scalar under `key` anywhere in `value`, as a query parameter value.
fn example_value(value: &Value, key: &str) -> Option<String> {
    match value {
        Value::Object(map) => map
            .get(key)
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Bool(_) | Value::Number(_) => Some(v.to_string()),
                _ => None,
            })
            .or_else(|| map.values().find_map(|v| example_value(v, key))),
        Value::Array(items) => items.iter().find_map(|v| example_value(v, key)),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Label {
    None,
    Request,
    Response,
}

/// Every example request of a seed, in document order. The seeds write them four ways:
/// `**接口路径**`/`**请求方法**` lines (000), `### METHOD /path` headings (001), `go` blocks
/// of `METHOD /path`, `Query:`, `Body:` and `Response:` (002), `**Endpoint**: `METHOD
/// /path`` (003); JSON examples follow a request or response label.
fn parse_seed(text: &str) -> Vec<Example> {
    let mut found: Vec<Example> = Vec::new();
    let mut current: Option<Example> = None;
    let mut pending_path: Option<String> = None;
    let mut label = Label::None;
    let mut block: Option<(String, Vec<&str>)> = None;
    let flush = |found: &mut Vec<Example>, e: Option<Example>| {
        if let Some(e) = e {
            // A list of routes names them before their sections do: the section wins.
            found.retain(|f| f.has_example() || f.method != e.method || f.path != e.path);
            if !found.contains(&e) {
                found.push(e);
            }
        }
    };
    for line in text.lines() {
        if let Some((lang, lines)) = &mut block {
            if line.trim_start().starts_with("```") {
                let content = lines.join("\n");
                if lang == "json" {
                    if let (Some(e), Ok(v)) = (current.as_mut(), serde_json::from_str(&content)) {
                        match label {
                            Label::Request => e.body = Some(v),
                            Label::Response => e.response = Some(v),
                            Label::None => {}
                        }
                    }
                } else if lang == "go"
                    && let Some(mut e) = content.lines().find_map(endpoint_in)
                {
                    e.body = json_after(&content, "Body:");
                    e.response = json_after(&content, "Response:");
                    if let Some(keys) = content
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("Query:"))
                    {
                        for key in keys.split(',').map(str::trim) {
                            if let Some(v) = e.response.as_ref().and_then(|r| example_value(r, key))
                            {
                                e.query.push((key.to_owned(), v));
                            }
                        }
                    }
                    flush(&mut found, current.take());
                    flush(&mut found, Some(e));
                }
                block = None;
            } else {
                lines.push(line);
            }
            continue;
        }
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            block = Some((lang.trim().to_owned(), Vec::new()));
            continue;
        }
        if let Some(path) = backticked_after(line, "接口路径**:") {
            pending_path = Some(path);
            continue;
        }
        if let Some(method) = backticked_after(line, "请求方法**:") {
            flush(&mut found, current.take());
            current = pending_path.take().map(|p| Example::new(&method, &p));
            label = Label::None;
            continue;
        }
        if let Some(e) = endpoint_in(line) {
            flush(&mut found, current.take());
            current = Some(e);
            label = Label::None;
            continue;
        }
        if ["请求示例", "请求参数", "请求体", "Request Example"]
            .iter()
            .any(|m| line.contains(m))
        {
            label = Label::Request;
        } else if ["响应示例", "成功响应", "Response Example"]
            .iter()
            .any(|m| line.contains(m))
        {
            label = Label::Response;
            // `Response Example (flat=true)`: the example of that query.
            for flat in ["flat=true", "flat=false"] {
                if line.contains(flat)
                    && let Some(e) = current.as_mut()
                {
                    let query = vec![("flat".to_owned(), flat[5..].to_owned())];
                    if e.response.is_some() {
                        let mut variant = e.clone();
                        variant.query = query;
                        variant.response = None;
                        flush(&mut found, current.replace(variant));
                    } else {
                        e.query = query;
                    }
                }
            }
        }
    }
    flush(&mut found, current);
    found
}

/// Fields an image may lack a value for: `null` answers them.
const OPTIONAL: &[&str] = &[
    "description",
    "category",
    "framework",
    "framework_version",
    "cuda_version",
    "python_version",
    "cudaVersion",
    "pythonVersion",
    "digest",
    "arch",
    "os",
];

/// Checks that `got` has every field of `want` with the same JSON type; returns the number
/// of fields checked. `null` in an example says nothing about the type. A list in an example
/// needs a non-empty answer, each element checked against the example's first. Seed 003's
/// `layersDetail` is a map from layer to detail: each answered layer is checked.
fn check_fields(at: &str, want: &Value, got: &Value, problems: &mut Vec<String>) -> usize {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if want.is_null() {
        return 0;
    }
    // Values an image may simply not have (no framework, not yet pulled from Harbor) read
    // as null; any other field must have the seed's type.
    let field = at.rsplit('.').next().unwrap_or_default();
    if got.is_null() && OPTIONAL.contains(&field) {
        return 0;
    }
    if kind(want) != kind(got) {
        problems.push(format!(
            "{at}: is {} ({got}), the seed shows {}",
            kind(got),
            kind(want)
        ));
        return 0;
    }
    match (want, got) {
        (Value::Object(w), Value::Object(g)) if at.ends_with("layersDetail") => {
            let sample = w.values().next().cloned().unwrap_or(Value::Null);
            if g.is_empty() && !w.is_empty() {
                problems.push(format!("{at}: is empty, nothing to check"));
            }
            g.iter()
                .map(|(k, v)| check_fields(&format!("{at}.{k}"), &sample, v, problems))
                .sum()
        }
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .map(|(k, wv)| match g.get(k) {
                None => {
                    problems.push(format!("{at}.{k}: missing"));
                    1
                }
                Some(gv) => 1 + check_fields(&format!("{at}.{k}"), wv, gv, problems),
            })
            .sum(),
        (Value::Array(w), Value::Array(g)) => match w.first() {
            None => 0,
            Some(first) if g.is_empty() && first.is_object() => {
                problems.push(format!("{at}: is empty, nothing to check"));
                0
            }
            Some(first) => g
                .iter()
                .enumerate()
                .map(|(i, gv)| check_fields(&format!("{at}[{i}]"), first, gv, problems))
                .sum(),
        },
        _ => 0,
    }
}

fn app_with_harbor(harbor: &TestHarbor, variables: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables: variables
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

fn created_id(r: &Reply) -> i64 {
    assert_eq!(r.status, 201, "{}", r.text);
    let data = &r.body["data"];
    data["image_id"]
        .as_i64()
        .or_else(|| data["id"].as_str().and_then(|s| s.parse().ok()))
        .unwrap()
}

/// An admin-created image for a seed's `:id` requests.
fn target_image(app: &TestApp, name: &str) -> i64 {
    created_id(&app.as_admin().send(
        "POST",
        "/api/v1/images",
        Some(&json!({
            "name": format!("{name}:1.0"),
            "display_name": format!("{name} image"),
            "description": "replayed seed target",
            "category": "pytorch",
            "framework": "pytorch",
            "frameworks": ["PyTorch"],
            "cuda_version": "11.8",
            "python_version": "3.10",
            "registry_url": format!("harbor.example.com/seeds/{name}:1.0"),
            "size": 1024,
            "digest": format!("sha256:{}", "ab".repeat(32)),
            "arch": "amd64",
            "os": "linux"
        })),
    ))
}

struct Replayer<'a> {
    app: &'a TestApp,
    /// The image the last import created, for seed 003's import routes.
    imported: Option<i64>,
    /// The image the seed's own create example made: its `:id` requests are about it.
    created: Option<i64>,
}

impl Replayer<'_> {
    /// Sends one example as its seed's client would; returns the answer and who sent it.
    fn send(&mut self, seed: &str, e: &Example, examples: &[Example]) -> (Reply, String) {
        let target = target_image(self.app, &format!("seed{seed}-{}", rand_suffix()));
        let id = if e.path.contains("importing") || e.path.contains(":name") {
            self.imported.expect("an import precedes its details")
        } else if e.method == "DELETE" {
            target
        } else {
            self.created.unwrap_or(target)
        };
        let mut path = e.path.clone();
        for placeholder in ["{image_id}", "{id}", ":id"] {
            path = path.replace(placeholder, &id.to_string());
        }
        if path.contains(":name") {
            let image = self.app.as_admin().get(&format!("/api/v1/images/{id}"));
            let reference = image.body["data"]["registry_url"]
                .as_str()
                .unwrap()
                .to_owned();
            path = path.replace(
                ":name",
                &berth_domain::services::imports::progress_name(&reference),
            );
        }
        if !e.query.is_empty() {
            let q: Vec<String> = e.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            path = format!("{path}?{}", q.join("&"));
        }
        // Seed 003's progress route shows no body: its sync worker reports the layers that
        // the seed's importing-details example shows.
        let body = e.body.clone().or_else(|| {
            path.ends_with("/progress").then(|| {
                examples
                    .iter()
                    .find_map(|x| x.response.as_ref()?.get("layersDetail").cloned())
                    .expect("seed 003 shows layersDetail")
            })
        });
        let is_image_write = e.method != "GET"
            && !path.contains("images:import")
            && !path.starts_with("/api/images/build");
        let (reply, who) = if path.ends_with("/progress") {
            let auth = format!("Bearer {WORKER_TOKEN}");
            let bytes = serde_json::to_vec(body.as_ref().unwrap()).unwrap();
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            (
                self.app.raw(&e.method, &path, None, &headers, &bytes),
                "the sync worker",
            )
        } else if is_image_write {
            (
                self.app.as_admin().send(&e.method, &path, body.as_ref()),
                "an admin",
            )
        } else {
            (
                self.app
                    .as_user("alice")
                    .send(&e.method, &path, body.as_ref()),
                "user alice",
            )
        };
        if e.method == "POST" && ["/api/v1/images", "/api/images"].contains(&path.as_str()) {
            self.created = reply.body["data"]["image_id"]
                .as_i64()
                .or_else(|| reply.body["data"]["id"].as_str()?.parse().ok());
        }
        if path.contains("images:import") && e.method == "POST" {
            self.imported = reply.body["data"]["image_id"].as_i64();
        }
        (reply, who.to_owned())
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

#[test]
fn the_repository_keeps_the_seeds_verbatim() {
    let files = seed_files();
    assert_eq!(files.len(), 4, "four seeds in tests/seeds");
    let shared = repo_root().join("..").join("shared").join("seeds");
    if shared.is_dir() {
        for (name, text) in &files {
            let original = std::fs::read_to_string(shared.join(name))
                .unwrap_or_else(|e| panic!("{}: {e}", shared.join(name).display()));
            assert_eq!(
                text, &original,
                "tests/seeds/{name} differs from the shared seed"
            );
        }
        println!("tests/seeds matches {}", shared.display());
    }
}

#[test]
fn every_example_request_of_every_seed_answers_with_the_seeds_fields() {
    let harbor = TestHarbor::start();
    // Imports stay running, so seed 003's progress and details routes see an import.
    harbor.faults(FaultsPatch {
        hang_executions: Some(true),
        ..Default::default()
    });
    let app = app_with_harbor(&harbor, &[]);
    let mut replayer = Replayer {
        app: &app,
        imported: None,
        created: None,
    };
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for (file, text) in seed_files() {
        let seed = &file[..3];
        let examples = parse_seed(&text);
        replayer.created = None;
        assert!(!examples.is_empty(), "{file}: no example requests found");
        let (mut replayed, mut fields) = (0, 0);
        for e in &examples {
            if matches!(e.method.as_str(), "POST" | "PUT" | "PATCH")
                && e.body.is_none()
                && !e.path.ends_with("/progress")
            {
                problems.push(format!("{file}: {} has no example body", e.label()));
                continue;
            }
            let (reply, who) = replayer.send(seed, e, &examples);
            replayed += 1;
            if !(200..300).contains(&reply.status) {
                problems.push(format!(
                    "{file}: {} as {who}: {} {}",
                    e.label(),
                    reply.status,
                    reply.text
                ));
                continue;
            }
            let Some(want) = &e.response else {
                continue;
            };
            // Seeds 000 and 001 show their envelope; seed 003 writes bare bodies, which
            // berth wraps in the v1 envelope's `data` (docs/api.md); seed 002's answers are bare.
            let enveloped = want.get("code").is_some() || want.get("success").is_some();
            let got = if !enveloped && e.path.starts_with("/api/v1") {
                &reply.body["data"]
            } else {
                &reply.body
            };
            let mut these = Vec::new();
            fields += check_fields("", want, got, &mut these);
            problems.extend(
                these
                    .into_iter()
                    .map(|p| format!("{file}: {} as {who}: {p}", e.label())),
            );
        }
        summary.push(format!(
            "seed {file}: {replayed} of {} example requests replayed, {fields} fields checked",
            examples.len()
        ));
    }
    println!("{}", summary.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The parser finds what each seed shows, so a seed whose examples went unread fails here.
#[test]
fn every_seed_example_is_found() {
    let labels = |file: &str| -> Vec<String> {
        let text = seed_files()
            .into_iter()
            .find(|(n, _)| n.starts_with(file))
            .unwrap()
            .1;
        parse_seed(&text).iter().map(Example::label).collect()
    };
    assert_eq!(
        labels("000"),
        [
            "GET /api/v1/images",
            "GET /api/v1/images/{image_id}",
            "POST /api/v1/images"
        ]
    );
    assert_eq!(
        labels("001"),
        [
            "GET /api/images",
            "POST /api/images",
            "GET /api/images/:id",
            "PUT /api/images/:id",
            "DELETE /api/images/:id",
            "PUT /api/images/:id/status",
            "GET /api/images/:id/versions",
            "POST /api/images/:id/versions"
        ]
    );
    assert_eq!(
        labels("002"),
        [
            "GET /api/images?category=pytorch&is_official=true",
            "POST /api/images/build"
        ]
    );
    assert_eq!(
        labels("003"),
        [
            "GET /api/v1/images?flat=true",
            "GET /api/v1/images?flat=false",
            "DELETE /api/v1/images/:id",
            "POST /api/v1/images:import",
            "PUT /api/v1/images:import/:name/progress",
            "GET /api/v1/images/:id/importing-details",
            "GET /api/v1/harbor/stats"
        ]
    );
}

fn plain_app() -> TestApp {
    TestApp::spawn()
}

fn official_id(app: &TestApp, name: &str) -> i64 {
    let r = app
        .as_admin()
        .get(&format!("/api/v1/images?name={name}&is_official=true"));
    r.body["data"]["items"][0]["image_id"].as_i64().unwrap()
}

/// Seed 001: `name` is the display name, `imageId` the identifier; both read back as written,
/// and so does `imageAddress`, while matching uses the normalized reference.
#[test]
fn console_images_read_back_as_written() {
    let app = plain_app();
    let admin = app.as_admin();
    let r = admin.send(
        "POST",
        "/api/images",
        Some(&json!({
            "name": "镜像名称",
            "imageId": "image-id",
            "frameworks": ["PyTorch"],
            "applicableScopes": ["开发机"],
            "chipType": "GPU",
            "presetCuda": true,
            "description": "镜像描述",
            "imageAddress": "registry/image:tag"
        })),
    );
    let id = created_id(&r);
    assert_eq!(r.body["data"]["name"], "镜像名称");
    let d = admin.get(&format!("/api/images/{id}")).body["data"].clone();
    assert_eq!(
        (&d["name"], &d["imageId"], &d["imageAddress"]),
        (
            &json!("镜像名称"),
            &json!("image-id"),
            &json!("registry/image:tag")
        )
    );
    let listed = admin.get("/api/images?name=image-id").body["data"]["list"][0].clone();
    assert_eq!(listed["imageAddress"], "registry/image:tag");
    // The v1 API shows the identifier and the normalized reference.
    let v1 = admin.get(&format!("/api/v1/images/{id}")).body["data"].clone();
    assert_eq!(v1["name"], "image-id");
    assert_eq!(v1["display_name"], "镜像名称");
    assert_eq!(v1["registry_url"], "docker.io/registry/image:tag");
    // The same image written the long way is the same reference.
    let again = admin.send(
        "POST",
        "/api/images",
        Some(&json!({"name": "other", "imageId": "other-id", "imageAddress": "docker.io/registry/image:tag"})),
    );
    assert_eq!(again.status, 409, "{}", again.text);
    // Seed 001's update renames what the console shows, and reads back so.
    let r = admin.send(
        "PUT",
        &format!("/api/images/{id}"),
        Some(&json!({"name": "更新后的名称", "imageAddress": "registry/image:v2"})),
    );
    assert_eq!(r.body["data"]["name"], "更新后的名称", "{}", r.text);
    let d = admin.get(&format!("/api/images/{id}")).body["data"].clone();
    assert_eq!(
        (&d["name"], &d["imageId"], &d["imageAddress"]),
        (
            &json!("更新后的名称"),
            &json!("image-id"),
            &json!("registry/image:v2")
        )
    );
    // A version written short reads back short.
    let r = admin.send(
        "POST",
        &format!("/api/images/{id}/versions"),
        Some(&json!({"version": "v3", "imageAddress": "registry/image:v3"})),
    );
    assert_eq!(
        r.body["data"]["imageAddress"], "registry/image:v3",
        "{}",
        r.text
    );
    let versions = admin.get(&format!("/api/images/{id}/versions")).body["data"]["list"].clone();
    assert!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["imageAddress"] == "registry/image:v3"),
        "{versions}"
    );
}

/// Seed 000 says `active`; the grouped view (seed 003) keeps `ready`.
#[test]
fn v1_items_speak_seed_000s_status() {
    let app = plain_app();
    let admin = app.as_admin();
    let id = official_id(&app, "ubuntu20-pytorch");
    let item = admin.get(&format!("/api/v1/images/{id}")).body["data"].clone();
    assert_eq!(
        (&item["status"], &item["availability"], &item["publication"]),
        (&json!("active"), &json!("ready"), &json!("online"))
    );
    let r = admin.send(
        "PUT",
        &format!("/api/images/{id}/status"),
        Some(&json!({"status": "offline"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let item = admin.get(&format!("/api/v1/images/{id}")).body["data"].clone();
    assert_eq!(item["status"], "offline");
    let active =
        admin.get("/api/v1/images?status=active&page_size=100").body["data"]["items"].clone();
    assert!(
        active
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "active" && i["image_id"] != id),
        "{active}"
    );
    let grouped =
        admin.get("/api/v1/images?flat=false&page_size=100").body["data"]["images"].clone();
    let statuses: Vec<&Value> = grouped
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["artifacts"].as_array().unwrap())
        .map(|a| &a["status"])
        .collect();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == "ready"),
        "{statuses:?}"
    );
}

/// Seed 001 lists several frameworks: the filter finds an image by any of them.
#[test]
fn the_framework_filter_matches_every_framework_of_an_image() {
    let app = plain_app();
    let admin = app.as_admin();
    let id = created_id(&admin.send(
        "POST",
        "/api/images",
        Some(&json!({"imageId": "multi-fw:1", "name": "两个框架", "frameworks": ["PyTorch", "TensorFlow"], "imageAddress": "registry/multi-fw:1"})),
    ));
    for (path, list) in [
        (
            "/api/images?framework=TensorFlow&pageSize=100",
            "/data/list",
        ),
        (
            "/api/v1/images?framework=tensorflow&page_size=100",
            "/data/items",
        ),
    ] {
        let r = admin.get(path);
        let items = r.body.pointer(list).unwrap().as_array().unwrap().clone();
        let ids: Vec<String> = items
            .iter()
            .map(|i| {
                i.get("image_id")
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| i["id"].as_str().unwrap().to_owned())
            })
            .collect();
        assert!(ids.contains(&id.to_string()), "{path}: {ids:?}");
        // The official TensorFlow image still matches by its own framework.
        assert!(items.len() >= 2, "{path}: {items:?}");
    }
    // Dropping a framework drops the match.
    let r = admin.send(
        "PUT",
        &format!("/api/images/{id}"),
        Some(&json!({"frameworks": ["PyTorch"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let total = admin.get("/api/images?framework=TensorFlow").body["data"]["total"].clone();
    assert_eq!(total, 1, "only the official TensorFlow image is left");
}

/// Seed 003's `tag` filter takes what its flat view shows as `tag`.
#[test]
fn the_tag_filter_takes_the_flat_views_tag() {
    let app = plain_app();
    let user = app.as_user("alice");
    let flat = user.get("/api/v1/images?flat=true&page_size=100").body["data"]["images"].clone();
    let first = flat[0].clone();
    let tag = first["tag"].as_str().unwrap();
    let found = user.get(&format!("/api/v1/images?flat=true&tag={tag}"));
    assert_eq!(found.body["data"]["totalCount"], 1, "{}", found.text);
    assert_eq!(found.body["data"]["images"][0]["id"], first["id"]);
    // A bare tag still matches images by their tag.
    let latest = user.get("/api/v1/images?flat=true&tag=latest").body["data"]["images"].clone();
    assert!(
        latest
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["tag"] == "ubuntu20-jupyter:latest"),
        "{latest}"
    );
}

/// Seed 003's grouped view orders repositories by `orderBy`, not only the tags inside them.
#[test]
fn the_grouped_view_orders_repositories_by_order_by() {
    let app = plain_app();
    let user = app.as_user("alice");
    let repos = |q: &str| -> Vec<String> {
        let r = user.get(&format!("/api/v1/images?flat=false&page_size=100&{q}"));
        r.body["data"]["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["repo"].as_str().unwrap().to_owned())
            .collect()
    };
    // The official images: sizes 8, 7, 5 and 6 GB.
    let by_size = repos("orderBy=size&order=desc");
    assert_eq!(
        by_size,
        [
            "library/ubuntu20-pytorch",
            "library/ubuntu20-tensorflow",
            "library/ubuntu20-jupyter",
            "library/ubuntu22-cuda"
        ]
    );
    let mut ascending = repos("orderBy=size&order=asc");
    ascending.reverse();
    assert_eq!(ascending, by_size);
    let newest = repos("orderBy=createdTime&order=desc");
    assert_eq!(newest[0], "library/ubuntu20-jupyter", "{newest:?}");
}

/// Seed 000: creating images is for admins, unless the platform lets users register their own.
#[test]
fn users_create_images_only_where_allowed() {
    let body = json!({"name": "alice-env:1", "registry_url": "harbor.example.com/alice/env:1"});
    let app = plain_app();
    for path in ["/api/v1/images", "/api/images"] {
        let body = if path == "/api/images" {
            json!({"imageId": "alice-env:1", "imageAddress": "harbor.example.com/alice/env:1"})
        } else {
            body.clone()
        };
        let r = app.as_user("alice").send("POST", path, Some(&body));
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert!(r.text.contains("allow_user_images"), "{}", r.text);
    }
    assert_eq!(
        app.as_admin()
            .send("POST", "/api/v1/images", Some(&body))
            .status,
        201
    );

    let allowed = TestApp::spawn_with(AppOptions {
        variables: vec![("allow_user_images".into(), "true".into())],
        ..Default::default()
    });
    let id = created_id(
        &allowed
            .as_user("alice")
            .send("POST", "/api/v1/images", Some(&body)),
    );
    let d = allowed
        .as_user("alice")
        .get(&format!("/api/v1/images/{id}"))
        .body["data"]
        .clone();
    assert_eq!(
        (&d["visibility"], &d["owner"]),
        (&json!("private"), &json!("alice"))
    );
}

/// `/api/images/build` is a console path: its errors use seed 001's envelope.
#[test]
fn build_errors_on_the_console_path_use_the_console_envelope() {
    let harbor = TestHarbor::start();
    let app = app_with_harbor(&harbor, &[]);
    let r = app.as_user("alice").send(
        "POST",
        "/api/images/build",
        Some(&json!({"name": "x:1", "dockerfile": "RUN true"})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["success"], false, "{}", r.text);
    assert!(
        r.body["message"].as_str().unwrap().contains("dockerfile"),
        "{}",
        r.text
    );
    assert!(r.body.get("code").is_none(), "{}", r.text);
    let v1 = app.as_user("alice").send(
        "POST",
        "/api/v1/images:build",
        Some(&json!({"name": "x:1", "dockerfile": "RUN true"})),
    );
    assert_eq!(
        (v1.status, &v1.body["code"]),
        (400, &json!(400)),
        "{}",
        v1.text
    );
}

/// Seed 002 TC-03: the "use" button gets what an environment needs.
#[test]
fn each_image_has_a_use_view() {
    let harbor = TestHarbor::start();
    harbor.faults(FaultsPatch {
        hang_executions: Some(true),
        ..Default::default()
    });
    let app = app_with_harbor(&harbor, &[]);
    let user = app.as_user("alice");
    let id = official_id(&app, "ubuntu20-pytorch");
    let image = user.get(&format!("/api/v1/images/{id}")).body["data"].clone();
    let r = user.get(&format!("/api/v1/images/{id}/use"));
    assert_eq!(r.status, 200, "{}", r.text);
    let u = r.body["data"].clone();
    let digest = image["digest"].as_str().unwrap();
    assert_eq!(u["pull_reference"], image["registry_url"]);
    assert_eq!(u["digest"], digest);
    assert_eq!(u["platforms"], json!(["linux/amd64"]));
    assert_eq!(u["min_driver"], "520.61.05", "CUDA 11.8");
    let pinned = format!(
        "{}/{}@{digest}",
        image["registry"].as_str().unwrap(),
        image["repository"].as_str().unwrap()
    );
    assert_eq!(
        u["environment"],
        json!({"image": pinned, "chip_type": "GPU", "platforms": ["linux/amd64"], "min_driver": "520.61.05"})
    );
    let console = user.get(&format!("/api/images/{id}/use"));
    assert_eq!(console.body["success"], true, "{}", console.text);
    assert_eq!(console.body["data"], u);

    // An image without CUDA or a known digest says so with nulls.
    let plain = created_id(&app.as_admin().send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "cpu-only:1", "registry_url": "harbor.example.com/x/cpu-only:1", "chip_type": "CPU"})),
    ));
    let u = user.get(&format!("/api/v1/images/{plain}/use")).body["data"].clone();
    assert_eq!(
        (&u["min_driver"], &u["digest"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(u["environment"]["image"], "harbor.example.com/x/cpu-only:1");

    // An image still importing cannot be used yet.
    let started = user.send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": "docker.io/team/slow:1"})),
    );
    let importing = started.body["data"]["image_id"].as_i64().unwrap();
    let r = user.get(&format!("/api/v1/images/{importing}/use"));
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("importing"), "{}", r.text);
    assert_eq!(user.get("/api/v1/images/999999/use").status, 404);
}

/// Seed 002's official images live in the configured Harbor (the demo one holds them), so a
/// build based on one pulls an image that exists; a missing base fails the build.
#[test]
fn official_images_name_the_configured_harbor_which_holds_them() {
    let harbor = TestHarbor::start_holding(harbor_sim::official_images());
    let app = app_with_harbor(&harbor, &[]);
    let registry = harbor.sim.addr().to_string();
    let user = app.as_user("alice");
    let official = user.get("/api/v1/images?is_official=true").body["data"]["items"].clone();
    let references: Vec<&str> = official
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["registry_url"].as_str().unwrap())
        .collect();
    assert_eq!(
        references,
        [
            "ubuntu20-pytorch:2.0",
            "ubuntu20-tensorflow:2.12",
            "ubuntu22-cuda:12.0",
            "ubuntu20-jupyter:latest"
        ]
        .map(|n| format!("{registry}/library/{n}"))
    );
    let held: Vec<String> = harbor
        .state()
        .artifacts
        .iter()
        .flat_map(|a| a.tags.iter().map(|t| format!("{}:{t}", a.repository)))
        .collect();
    for r in &references {
        let path = r.strip_prefix(&format!("{registry}/")).unwrap();
        assert!(held.iter().any(|h| h == path), "{path} not in {held:?}");
    }

    // A build from an official image pulls it from this Harbor and succeeds.
    let build = |name: &str, from: &str| -> String {
        let r = user.send(
            "POST",
            "/api/images/build",
            Some(&json!({"name": name, "dockerfile": format!("FROM {from}\nRUN true")})),
        );
        assert_eq!(r.status, 202, "{}", r.text);
        r.body["build_id"].as_str().unwrap().to_owned()
    };
    let wait = |id: &str| -> Value {
        let start = std::time::Instant::now();
        loop {
            let b = user.get(&format!("/api/v1/builds/{id}")).body["data"].clone();
            if !matches!(b["status"].as_str(), Some("building" | "running")) {
                return b;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(30), "{b}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let ok = wait(&build("from-official:1", "ubuntu20-pytorch:2.0"));
    assert_eq!(ok["status"], "succeeded", "{ok}");
    let job = harbor.sim.runner_jobs().into_iter().next().unwrap();
    // Pulled from this Harbor, pinned to the digest the catalog knows.
    let pulled = format!("Step 1/3 : FROM {registry}/library/ubuntu20-pytorch:2.0@sha256:");
    let log_tail = job.callbacks[0].payload["log_tail"]
        .as_str()
        .unwrap_or_default();
    assert!(log_tail.starts_with(&pulled), "{log_tail}: {:?}", job.body);
    // A catalog image this Harbor does not hold fails to pull: the runner really pulls.
    created_id(&app.as_admin().send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "nothing-here:1", "registry_url": format!("{registry}/library/nothing-here:1"), "is_official": true})),
    ));
    let missing = wait(&build("from-missing:1", "nothing-here:1"));
    assert_eq!(missing["status"], "failed", "{missing}");
}

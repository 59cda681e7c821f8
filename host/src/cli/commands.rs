//! The subcommands.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::output::{self, first, is_tty, size, table, text};
use super::{
    BuildArgs, BuildsCommand, Client, ClientCommand, Failure, ImagesCommand, ListArgs, Outcome,
    RegistriesCommand, config,
};

pub fn run(command: ClientCommand, mut app: clap::Command) -> Outcome {
    match command {
        ClientCommand::Login { url, token } => login(&url, &token),
        ClientCommand::Completions { shell } => {
            let name = app.get_name().to_owned();
            clap_complete::generate(shell, &mut app, name, &mut std::io::stdout());
            Ok(())
        }
        other => {
            let (url, token) = config::resolve()?;
            let c = Client::new(&url, &token)?;
            match other {
                ClientCommand::Images(ImagesCommand::Ls(a)) => images_ls(&c, &a),
                ClientCommand::Images(ImagesCommand::Show { id, json }) => {
                    images_show(&c, id, json)
                }
                ClientCommand::Import {
                    source,
                    registry,
                    watch,
                    json,
                } => import(&c, &source, registry.as_deref(), watch, json),
                ClientCommand::Builds(BuildsCommand::Ls { json }) => builds_ls(&c, json),
                ClientCommand::Stats { json } => stats(&c, json),
                ClientCommand::Registries(r) => registries(&c, r),
                ClientCommand::Login { .. } | ClientCommand::Completions { .. } => unreachable!(),
            }
        }
    }
}

fn login(url: &str, token: &str) -> Outcome {
    let c = Client::new(url, token)?;
    // Checked before it is saved: a wrong URL or token fails here, not on the next command.
    c.get("/api/v1/images?page_size=1")?;
    let path = config::save(&config::Config {
        url: Some(c.base().to_owned()),
        token: Some(token.trim().to_owned()),
    })?;
    println!("Logged in to {} (saved in {})", c.base(), path.display());
    Ok(())
}

fn query(pairs: &[(&str, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn images_ls(c: &Client, a: &ListArgs) -> Outcome {
    let mut q = vec![
        ("page", a.page.to_string()),
        ("page_size", a.page_size.to_string()),
    ];
    for (k, v) in [
        ("framework", &a.framework),
        ("chip_type", &a.chip_type),
        ("name", &a.name),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    if a.official {
        q.push(("is_official", "true".into()));
    }
    if a.custom {
        q.push(("is_official", "false".into()));
    }
    let mut data = c.get(&format!("/api/v1/images?{}", query(&q)))?;
    let on_page = data["items"].as_array().map_or(0, Vec::len);
    if let (Some(cuda), Some(items)) = (&a.cuda, data["items"].as_array_mut()) {
        items.retain(|i| text(i, "cuda_version").starts_with(cuda.as_str()));
    }
    if a.json {
        output::json(&data);
        return Ok(());
    }
    let items = data["items"].as_array().cloned().unwrap_or_default();
    let rows = items
        .iter()
        .map(|i| {
            vec![
                text(i, "image_id"),
                text(i, "name"),
                first(i, &["framework", "frameworks"]),
                text(i, "cuda_version"),
                text(i, "chip_type"),
                if i["is_official"] == true {
                    "official"
                } else {
                    "custom"
                }
                .into(),
                text(i, "status"),
                size(i["size"].as_i64().unwrap_or(0)),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "FRAMEWORK",
            "CUDA",
            "CHIP",
            "KIND",
            "STATUS",
            "SIZE",
        ],
        rows,
    );
    let p = &data["pagination"];
    println!(
        "page {} of {} ({} images)",
        text(p, "page"),
        text(p, "total_pages"),
        text(p, "total")
    );
    if let Some(cuda) = &a.cuda {
        println!(
            "{} of the {on_page} on this page have CUDA {cuda} (the API has no CUDA filter)",
            items.len()
        );
    }
    Ok(())
}

fn platforms(image: &Value) -> String {
    let list: Vec<String> = image["platforms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut s = format!("{}/{}", text(p, "os"), text(p, "architecture"));
            if !text(p, "variant").is_empty() {
                s = format!("{s}/{}", text(p, "variant"));
            }
            s
        })
        .collect();
    if !list.is_empty() {
        return list.join(", ");
    }
    match (text(image, "os"), text(image, "arch")) {
        (os, arch) if !os.is_empty() || !arch.is_empty() => format!("{os}/{arch}"),
        _ => "-".into(),
    }
}

fn images_show(c: &Client, id: i64, as_json: bool) -> Outcome {
    let i = c.get(&format!("/api/v1/images/{id}"))?;
    if as_json {
        output::json(&i);
        return Ok(());
    }
    let mut rows = Vec::new();
    for key in [
        "image_id",
        "name",
        "display_name",
        "description",
        "category",
        "framework",
        "framework_version",
        "cuda_version",
        "python_version",
        "chip_type",
        "applicable_scopes",
        "is_official",
        "status",
        "publication",
        "visibility",
        "owner",
        "registry_url",
        "digest",
        "origin",
        "created_at",
        "updated_at",
    ] {
        rows.push(vec![key.to_owned(), text(&i, key)]);
    }
    rows.push(vec!["size".into(), size(i["size"].as_i64().unwrap_or(0))]);
    rows.push(vec!["platforms".into(), platforms(&i)]);
    table(&["FIELD", "VALUE"], rows);
    Ok(())
}

/// Polling intervals: quick at first and after each change, then backing off to 2 s.
struct Backoff(Duration);

impl Backoff {
    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(2);
    fn new() -> Backoff {
        Backoff(Self::MIN)
    }
    fn reset(&mut self) {
        self.0 = Self::MIN;
    }
    fn wait(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 3 / 2).min(Self::MAX);
    }
}

/// Progress on a terminal (indicatif bars) or as plain lines (`progress 40%`).
enum Progress {
    Bars {
        multi: MultiProgress,
        overall: ProgressBar,
        layers: BTreeMap<String, ProgressBar>,
    },
    Lines {
        last: Option<i64>,
        layers: BTreeMap<String, (String, i64)>,
    },
}

impl Progress {
    fn new(label: &str) -> Progress {
        // indicatif draws on stderr; the results go to stdout: bars only when both are a
        // terminal, so a redirected stdout gets the plain lines it can keep.
        if is_tty() && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let multi = MultiProgress::new();
            let overall = multi.add(ProgressBar::new(100));
            overall.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{bar:40.cyan/blue}] {pos:>3}% {msg}")
                    .unwrap()
                    .progress_chars("=> "),
            );
            overall.set_prefix(label.to_owned());
            overall.enable_steady_tick(Duration::from_millis(120));
            Progress::Bars {
                multi,
                overall,
                layers: BTreeMap::new(),
            }
        } else {
            Progress::Lines {
                last: None,
                layers: BTreeMap::new(),
            }
        }
    }

    fn update(&mut self, progress: i64, status: &str, layers: &serde_json::Map<String, Value>) {
        let layer_of = |v: &Value| {
            let p = v["progress"].as_i64().unwrap_or(0).clamp(0, 100);
            (text(v, "status"), p)
        };
        match self {
            Progress::Bars {
                multi,
                overall,
                layers: bars,
            } => {
                overall.set_position(progress.clamp(0, 100) as u64);
                overall.set_message(status.to_owned());
                for (name, v) in layers {
                    let (st, p) = layer_of(v);
                    let bar = bars.entry(name.clone()).or_insert_with(|| {
                        let b = multi.add(ProgressBar::new(100));
                        b.set_style(
                            ProgressStyle::with_template(
                                "  {prefix:20} [{bar:30}] {pos:>3}% {msg}",
                            )
                            .unwrap()
                            .progress_chars("=> "),
                        );
                        b.set_prefix(short(name));
                        b
                    });
                    bar.set_position(p as u64);
                    bar.set_message(st);
                }
            }
            Progress::Lines { last, layers: seen } => {
                if *last != Some(progress) {
                    println!("progress {progress}%");
                    *last = Some(progress);
                }
                for (name, v) in layers {
                    let now = layer_of(v);
                    if seen.get(name) != Some(&now) {
                        println!("layer {} {} {}%", short(name), now.0, now.1);
                        seen.insert(name.clone(), now);
                    }
                }
            }
        }
    }

    fn finish(self) {
        if let Progress::Bars {
            multi,
            overall,
            layers,
        } = self
        {
            overall.disable_steady_tick();
            for b in layers.values() {
                b.finish();
            }
            overall.finish();
            drop((layers, overall, multi));
            // The bars end without a newline (they were redrawn in place).
            eprintln!();
        }
    }
}

/// A layer digest shortened for display.
fn short(name: &str) -> String {
    let s = name.strip_prefix("sha256:").unwrap_or(name);
    s.chars().take(20).collect()
}

fn import(c: &Client, source: &str, registry: Option<&str>, watch: bool, as_json: bool) -> Outcome {
    let mut body = json!({ "source": source });
    if let Some(r) = registry {
        body["sourceRegistry"] = json!(r);
    }
    let started = c.send("POST", "/api/v1/images:import", Some(&body))?;
    let id = match started["state"].as_i64() {
        Some(2) => started["alreadyImageId"].as_i64(),
        Some(1) => started["image_id"].as_i64(),
        _ => None,
    };
    let Some(id) = id else {
        return Err(Failure::Api(
            started["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the import did not start: {started}")),
        ));
    };
    if !watch {
        if as_json {
            output::json(&started);
        } else {
            println!("{} (image {id})", text(&started, "message"));
        }
        return Ok(());
    }
    if !as_json {
        println!("{} (image {id})", text(&started, "message"));
    }
    let mut bars = if as_json {
        None
    } else {
        Some(Progress::new("import"))
    };
    let mut backoff = Backoff::new();
    let mut last = Value::Null;
    let details = loop {
        let d = c.get(&format!("/api/v1/images/{id}/importing-details"))?;
        let status = text(&d, "status");
        let empty = serde_json::Map::new();
        if let Some(b) = &mut bars {
            b.update(
                d["progress"].as_i64().unwrap_or(0),
                &status,
                d["layersDetail"].as_object().unwrap_or(&empty),
            );
        }
        if status != "importing" {
            break d;
        }
        if d != last {
            backoff.reset();
            last = d;
        }
        backoff.wait();
    };
    if let Some(b) = bars {
        b.finish();
    }
    if text(&details, "status") == "failed" {
        let why = text(&details, "message");
        return Err(Failure::Api(if why.is_empty() {
            format!("the import of {source} failed")
        } else {
            why
        }));
    }
    let image = c.get(&format!("/api/v1/images/{id}"))?;
    if as_json {
        output::json(&image);
        return Ok(());
    }
    println!("ready: {} (image {id})", text(&image, "registry_url"));
    println!("size: {}", size(image["size"].as_i64().unwrap_or(0)));
    println!("platforms: {}", platforms(&image));
    println!("digest: {}", text(&image, "digest"));
    Ok(())
}

pub fn build_image(a: &BuildArgs) -> Outcome {
    let (url, token) = config::resolve()?;
    build(&Client::new(&url, &token)?, a)
}

fn build(c: &Client, a: &BuildArgs) -> Outcome {
    let (Some(file), Some(name)) = (&a.file, &a.name) else {
        return Err(Failure::Usage(
            "an image build needs -f Dockerfile and --name".into(),
        ));
    };
    let dockerfile = std::fs::read_to_string(file)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    let base = a.base.clone().or_else(|| {
        dockerfile
            .lines()
            .map(str::trim)
            .find(|l| l.len() > 5 && l[..5].eq_ignore_ascii_case("FROM "))
            .and_then(|l| l[5..].split_whitespace().next().map(str::to_owned))
    });
    let mut body = json!({"name": name, "dockerfile": dockerfile, "mode": "dockerfile"});
    if let Some(b) = base {
        body["base_image"] = json!(b);
    }
    if let Some(d) = &a.description {
        body["description"] = json!(d);
    }
    let started = c.send("POST", "/api/v1/images:build", Some(&body))?;
    let id = text(&started, "build_id");
    if !a.watch {
        if a.json {
            output::json(&started);
        } else {
            println!("build {id}: {}", text(&started, "status"));
        }
        return Ok(());
    }
    let mut backoff = Backoff::new();
    let (mut status, mut printed) = (String::new(), 0usize);
    let deadline = Instant::now() + Duration::from_secs(24 * 3600);
    let b = loop {
        let b = c.get(&format!("/api/v1/builds/{id}"))?;
        let now = text(&b, "status");
        let log = text(&b, "log_tail");
        let lines: Vec<&str> = log.lines().collect();
        if !a.json {
            if now != status {
                println!("build {id}: {now}");
                backoff.reset();
            }
            // The tail is a window: print the lines not printed yet.
            if lines.len() < printed {
                printed = 0;
            }
            for l in &lines[printed..] {
                println!("  | {l}");
                backoff.reset();
            }
        }
        printed = lines.len();
        status = now;
        if !matches!(status.as_str(), "building" | "running" | "queued")
            || Instant::now() > deadline
        {
            break b;
        }
        backoff.wait();
    };
    if a.json {
        output::json(&b);
    }
    if status == "failed" {
        let why = text(&b, "message");
        return Err(Failure::Api(if why.is_empty() {
            format!("build {id} failed")
        } else {
            why
        }));
    }
    if !a.json {
        println!("image {} ready", text(&b, "image_id"));
    }
    Ok(())
}

fn builds_ls(c: &Client, as_json: bool) -> Outcome {
    let d = c.get("/api/v1/builds")?;
    if as_json {
        output::json(&d);
        return Ok(());
    }
    let rows = d["builds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            vec![
                text(b, "build_id"),
                text(b, "name"),
                text(b, "status"),
                text(b, "image_id"),
                text(b, "updated_at"),
                text(b, "log_tail")
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "BUILD",
            "NAME",
            "STATUS",
            "IMAGE",
            "UPDATED",
            "LAST LOG LINE",
        ],
        rows,
    );
    Ok(())
}

fn stats(c: &Client, as_json: bool) -> Outcome {
    let d = c.get("/api/v1/harbor/stats")?;
    if as_json {
        output::json(&d);
        return Ok(());
    }
    table(
        &["PROJECTS", "REPOSITORIES", "STORAGE", "SCOPE"],
        vec![vec![
            text(&d, "totalProjects"),
            text(&d, "totalImages"),
            size(d["totalSize"].as_i64().unwrap_or(0)),
            text(&d, "scope"),
        ]],
    );
    Ok(())
}

fn registries(c: &Client, cmd: RegistriesCommand) -> Outcome {
    match cmd {
        RegistriesCommand::Ls { json } => {
            let d = c.get("/api/v1/registries")?;
            if json {
                output::json(&d);
                return Ok(());
            }
            let rows = d["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    vec![
                        text(r, "id"),
                        text(r, "name"),
                        text(r, "host"),
                        text(r, "type"),
                        text(r, "url"),
                        text(r, "username"),
                        // Credential facts are shown to admins only.
                        match r["has_password"].as_bool() {
                            Some(true) => "yes",
                            Some(false) => "no",
                            None => "-",
                        }
                        .into(),
                    ]
                })
                .collect();
            table(
                &["ID", "NAME", "HOST", "TYPE", "URL", "USER", "PASSWORD"],
                rows,
            );
            Ok(())
        }
        RegistriesCommand::Add {
            host,
            name,
            kind,
            url,
            username,
            password,
        } => {
            let mut body = json!({ "host": host });
            for (k, v) in [
                ("name", name),
                ("type", kind),
                ("url", url),
                ("username", username),
                ("password", password),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let d = c.send("POST", "/api/v1/registries", Some(&body))?;
            println!("registry {} added ({})", text(&d, "id"), text(&d, "host"));
            Ok(())
        }
        RegistriesCommand::Rm { id } => {
            c.send("DELETE", &format!("/api/v1/registries/{id}"), None)?;
            println!("registry {id} removed");
            Ok(())
        }
    }
}

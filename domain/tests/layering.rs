//! The domain's layering (docs/architecture.md), checked on its source: which top-level
//! modules of `domain/src` name which (`crate::<module>`), and which services name which
//! (`crate::services::<service>`).
//!
//! - `api` may use services and the lower layers; nothing uses `api`.
//! - services may use the store, Harbor and the lower layers, and other services without
//!   a cycle.
//! - the store may use the lower layers except Harbor's client, outbound HTTP and settings.
//! - the lower layers use neither `api`, services nor the store, and have no cycle.
//! - SQL is written in the store only (and in `db` and `migrations`, below it): no
//!   statement in `api` or a service.
//! - no file in `domain/src` is longer than [`MAX_LINES`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be, tests included (large test modules get files of their own).
const MAX_LINES: usize = 700;

/// How a SQL statement starts, as a string literal.
const STATEMENTS: &[&str] = &["\"SELECT ", "\"INSERT INTO", "\"UPDATE ", "\"DELETE FROM"];

/// What the store may not name: it knows the schema, not HTTP, settings or Harbor.
const NOT_FOR_THE_STORE: &[&str] = &["harbor", "outbound", "config"];

fn layer(module: &str) -> u8 {
    match module {
        "api" => 3,
        "services" => 2,
        "store" => 1,
        _ => 0,
    }
}

/// One source file: its path under `src` (with `/`) and its text.
struct Source {
    path: String,
    text: String,
}

/// The top-level module a file belongs to (`None` for the crate root), and for a file under
/// `services/`, its service.
fn owner(path: &str) -> (Option<String>, Option<String>) {
    let parts: Vec<&str> = path.split('/').collect();
    let strip = |p: &str| p.trim_end_matches(".rs").to_owned();
    match parts.as_slice() {
        ["lib.rs"] => (None, None),
        [file] => (Some(strip(file)), None),
        ["services", "mod.rs"] => (Some("services".into()), None),
        ["services", service, ..] => (Some("services".into()), Some(strip(service))),
        [dir, ..] => (Some((*dir).to_owned()), None),
        [] => (None, None),
    }
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The text of a `{...}` group that `s` starts inside of (after its `{`).
fn group(s: &str) -> &str {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    s
}

/// The items of a group, split at its own commas.
fn items(group: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(group[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(group[start..].trim());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// The (module, service) pairs a path after `crate::` names.
fn named(rest: &str) -> Vec<(String, Option<String>)> {
    if let Some(inner) = rest.strip_prefix('{') {
        return items(group(inner)).into_iter().flat_map(named).collect();
    }
    let top = ident(rest);
    if top.is_empty() || top == "self" {
        return Vec::new();
    }
    let after = &rest[top.len()..];
    let seconds: Vec<Option<String>> = match after.strip_prefix("::") {
        Some(sub) if sub.starts_with('{') => items(group(&sub[1..]))
            .into_iter()
            .map(|item| Some(ident(item).to_owned()).filter(|s| !s.is_empty() && s != "self"))
            .collect(),
        Some(sub) => vec![Some(ident(sub).to_owned()).filter(|s| !s.is_empty())],
        None => vec![None],
    };
    seconds
        .into_iter()
        .map(|second| (top.to_owned(), second.filter(|_| top == "services")))
        .collect()
}

/// Every `crate::` reference in `text`, outside comments.
fn references(text: &str) -> Vec<(String, Option<String>)> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    code.match_indices("crate::")
        .filter(|(i, _)| {
            // Not `berth_crate::` or the like.
            !code[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .flat_map(|(i, _)| named(&code[i + "crate::".len()..]))
        .collect()
}

/// A cycle in `edges`, as the modules along it, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(found) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

/// Everything the sources break of the rules above.
fn violations(sources: &[Source]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in sources {
        let lines = source.text.lines().count();
        if lines > MAX_LINES {
            problems.push(format!(
                "{} has {lines} lines (at most {MAX_LINES}: split it, or move its tests to a file)",
                source.path
            ));
        }
        let (Some(from), from_service) = owner(&source.path) else {
            continue;
        };
        // The in-process handler tests sit above every layer: they call the entry points.
        if from == "handler_tests" {
            continue;
        }
        if layer(&from) >= 2 && STATEMENTS.iter().any(|s| source.text.contains(s)) {
            problems.push(format!(
                "{} ({from}) writes SQL: statements belong in the store",
                source.path
            ));
        }
        for (to, to_service) in references(&source.text) {
            if to == "api" && from != "api" {
                problems.push(format!("{} uses crate::api: nothing may", source.path));
            }
            if to != from {
                let allowed = layer(&to) < layer(&from)
                    || (layer(&from) == 0 && layer(&to) == 0)
                    || (from == "services" && to != "api" && layer(&to) <= 1);
                if !allowed || (from == "api" && to == "store") {
                    problems.push(format!(
                        "{} ({from}) uses crate::{to}: {from} may not use {to}",
                        source.path
                    ));
                }
                if from == "store" && NOT_FOR_THE_STORE.contains(&to.as_str()) {
                    problems.push(format!(
                        "{} (store) uses crate::{to}: the store knows only the schema",
                        source.path
                    ));
                }
                modules.entry(from.clone()).or_default().insert(to.clone());
            }
            if let (Some(a), Some(b)) = (&from_service, &to_service) {
                if a != b {
                    services.entry(a.clone()).or_default().insert(b.clone());
                }
            }
        }
    }
    if let Some(found) = cycle(&modules) {
        problems.push(format!("modules form a cycle: {}", found.join(" -> ")));
    }
    if let Some(found) = cycle(&services) {
        problems.push(format!("services form a cycle: {}", found.join(" -> ")));
    }
    problems
}

fn read_sources(dir: &Path, root: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(Source {
                path: path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
                text: std::fs::read_to_string(&path).unwrap(),
            });
        }
    }
}

#[test]
fn the_domain_is_layered() {
    // At run time, not `env!`: a test binary reused from another checkout reads this one.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let src = Path::new(&manifest).join("src");
    let mut sources = Vec::new();
    read_sources(&src, &src, &mut sources);
    assert!(
        sources.iter().any(|s| s.path == "services/catalog.rs")
            && sources.iter().any(|s| s.path == "store/images.rs")
            && sources.iter().any(|s| s.path == "api/mod.rs"),
        "the layout this test knows is gone: update the test with it"
    );
    let problems = violations(&sources);
    assert!(
        problems.is_empty(),
        "domain/src breaks its layering (docs/architecture.md):\n  {}",
        problems.join("\n  ")
    );
}

fn source(path: &str, text: &str) -> Source {
    Source {
        path: path.into(),
        text: text.into(),
    }
}

#[test]
fn the_check_finds_what_it_forbids() {
    let ok = [
        source("api/catalog.rs", "use crate::services::{catalog, imports};"),
        source(
            "services/imports/start.rs",
            "use crate::services::catalog::visible_image;\nuse crate::store::{self, images};",
        ),
        source("store/images.rs", "use crate::{db::Db, model::Image};"),
        source("model.rs", "use crate::db::Row;"),
    ];
    assert_eq!(violations(&ok), Vec::<String>::new());

    let bad = |path: &str, text: &str| violations(&[source(path, text)]);
    assert!(
        bad("store/images.rs", "use crate::services::catalog;")[0]
            .contains("store may not use services")
    );
    assert!(
        bad("model.rs", "fn f() { crate::store::images::get(); }")[0].contains("may not use store")
    );
    assert!(bad("services/catalog.rs", "use crate::api::catalog;")[0].contains("nothing may"));
    assert!(bad("api/admin.rs", "use crate::store::images;")[0].contains("api may not use store"));
    assert!(
        bad("store/imports.rs", "use crate::harbor::Execution;")[0].contains("only the schema")
    );
    assert!(
        bad("http.rs", "use crate::{db::Db, services::catalog};")[0]
            .contains("may not use services")
    );
    // A comment names nothing.
    assert!(bad("model.rs", "/// See [`crate::services`].\nfn f() {}").is_empty());

    assert!(
        bad(
            "services/builds/mod.rs",
            "db.query(\"SELECT id FROM builds\", &[])"
        )[0]
        .contains("writes SQL")
    );
    assert!(
        bad(
            "store/builds.rs",
            "db.query(\"SELECT id FROM builds\", &[])"
        )
        .is_empty()
    );

    let long = "\n".repeat(MAX_LINES + 1);
    assert!(bad("views.rs", &long)[0].contains("views.rs has 701 lines"));

    let lower_cycle = violations(&[
        source("http.rs", "use crate::envelope::ApiError;"),
        source("envelope.rs", "use crate::http::Response;"),
    ]);
    assert_eq!(
        lower_cycle,
        vec!["modules form a cycle: envelope -> http -> envelope"]
    );
    let service_cycle = violations(&[
        source("services/imports/mod.rs", "use crate::services::builds;"),
        source(
            "services/builds/mod.rs",
            "use crate::services::{self, imports::observe};",
        ),
    ]);
    assert_eq!(
        service_cycle,
        vec!["services form a cycle: builds -> imports -> builds"]
    );
}

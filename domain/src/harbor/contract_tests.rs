//! Contract test: every request the client sends in the scenarios of `tests.rs` must be
//! one Harbor's swagger (`../shared/harbor/swagger.yaml` from the repository root)
//! declares: path template and method, query parameters, headers, and JSON body fields
//! of the referenced definition (with their types). Skipped, with a message, only when
//! the swagger file is absent.

use std::collections::BTreeSet;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::API_PREFIX;
use super::fake::BASE_URL;
use crate::outbound::OutboundRequest;

/// Headers every request carries that are not API parameters.
const TRANSPORT_HEADERS: [&str; 3] = ["authorization", "accept", "content-type"];

fn swagger_path() -> PathBuf {
    // Read at run time (cargo sets it for `cargo test`): a binary cargo reuses from another
    // checkout sharing the target dir would otherwise name that checkout.
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
    .join("..")
    .join("shared")
    .join("harbor")
    .join("swagger.yaml")
}

fn load_swagger() -> Option<Value> {
    let path = swagger_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    Some(serde_yaml::from_str(&text).expect("swagger.yaml is valid YAML"))
}

struct Swagger {
    doc: Value,
}

/// The operation a request matched.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Operation {
    method: String,
    template: String,
}

impl Swagger {
    /// Resolves `#/parameters/x` or `#/definitions/x`.
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("local $ref");
                self.resolve(
                    self.doc
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("dangling $ref {r}")),
                )
            }
            None => v,
        }
    }

    /// The path template matching the concrete path: same segment count, literal
    /// segments equal; the template with the most literal segments wins.
    fn match_path(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.doc["paths"].as_object().expect("paths");
        paths
            .keys()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literals = 0;
                for (t, s) in parts.iter().zip(&segments) {
                    if t.starts_with('{') && t.ends_with('}') {
                        if s.is_empty() {
                            return None;
                        }
                    } else if t == s {
                        literals += 1;
                    } else {
                        return None;
                    }
                }
                Some((literals, template.as_str()))
            })
            .max()
            .map(|(_, t)| t)
    }

    /// The operation's parameters, path-level ones included, resolved.
    fn parameters<'a>(&'a self, template: &str, method: &str) -> Vec<&'a Value> {
        let item = &self.doc["paths"][template];
        let mut out: Vec<&Value> = Vec::new();
        for list in [&item["parameters"], &item[method]["parameters"]] {
            if let Some(list) = list.as_array() {
                out.extend(list.iter().map(|p| self.resolve(p)));
            }
        }
        out
    }

    /// Checks one request; returns the matched operation or the violations.
    fn check(&self, request: &OutboundRequest) -> Result<Operation, Vec<String>> {
        let mut errors = Vec::new();
        let who = format!("{} {}", request.method, request.url);
        let Some(rest) = request
            .url
            .strip_prefix(BASE_URL)
            .and_then(|u| u.strip_prefix(API_PREFIX))
        else {
            return Err(vec![format!("{who}: not under {BASE_URL}{API_PREFIX}")]);
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let Some(template) = self.match_path(path) else {
            return Err(vec![format!(
                "{who}: no path template in the swagger matches {path}"
            )]);
        };
        let method = request.method.to_ascii_lowercase();
        let operation = &self.doc["paths"][template][method.as_str()];
        if operation.is_null() {
            return Err(vec![format!("{who}: {template} has no {method} operation")]);
        }
        let params = self.parameters(template, &method);
        let declared = |place: &str, name: &str| {
            params.iter().find(|p| {
                p["in"] == place
                    && p["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        };

        // Path parameters: integers parse; repository names are double-encoded.
        for (t, s) in template.split('/').zip(path.split('/')) {
            let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
                continue;
            };
            let Some(p) = declared("path", name) else {
                errors.push(format!("{who}: path parameter {name} is not declared"));
                continue;
            };
            if p["type"] == "integer" && s.parse::<i64>().is_err() {
                errors.push(format!(
                    "{who}: path parameter {name}={s} is not an integer"
                ));
            }
            let once = percent_decode_str(s).decode_utf8_lossy();
            if name == "repository_name" && once.contains('/') {
                errors.push(format!(
                    "{who}: repository_name {s} is not double-encoded (CONTRACT §0.6)"
                ));
            }
        }

        // Query parameters: declared, and booleans/integers well-formed.
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match declared("query", name) {
                None => errors.push(format!("{who}: query parameter {name} is not declared")),
                Some(p) => {
                    let ok = match p["type"].as_str() {
                        Some("boolean") => value == "true" || value == "false",
                        Some("integer") => value.parse::<i64>().is_ok(),
                        _ => true,
                    };
                    if !ok {
                        errors.push(format!("{who}: query {name}={value} has the wrong type"));
                    }
                    if let Some(max) = p["maximum"].as_i64()
                        && value.parse::<i64>().is_ok_and(|v| v > max)
                    {
                        errors.push(format!("{who}: query {name}={value} exceeds {max}"));
                    }
                }
            }
        }
        for p in &params {
            if p["in"] == "query"
                && p["required"] == true
                && !query
                    .split('&')
                    .any(|q| q.split('=').next() == p["name"].as_str())
            {
                errors.push(format!(
                    "{who}: required query parameter {} missing",
                    p["name"].as_str().unwrap_or_default()
                ));
            }
        }

        // Headers other than transport ones are declared header parameters.
        for (name, _) in &request.headers {
            let lower = name.to_ascii_lowercase();
            if !TRANSPORT_HEADERS.contains(&lower.as_str()) && declared("header", name).is_none() {
                errors.push(format!("{who}: header {name} is not declared"));
            }
        }

        // Body: only where the operation takes one, and only declared fields.
        let body_param = params.iter().find(|p| p["in"] == "body");
        match (request.body.is_empty(), body_param) {
            (true, Some(p)) if p["required"] == true => {
                errors.push(format!("{who}: the operation requires a body"));
            }
            (true, _) => {}
            (false, None) => errors.push(format!("{who}: the operation takes no body")),
            (false, Some(p)) => match serde_json::from_slice::<Value>(&request.body) {
                Ok(body) => {
                    self.check_value(&body, &p["schema"], &format!("{who}: body"), &mut errors)
                }
                Err(e) => errors.push(format!("{who}: body is not JSON: {e}")),
            },
        }

        if errors.is_empty() {
            Ok(Operation {
                method: request.method.to_owned(),
                template: template.to_owned(),
            })
        } else {
            Err(errors)
        }
    }

    /// A JSON value against a schema: types, and object keys among `properties`.
    fn check_value(&self, value: &Value, schema: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let kind = schema["type"]
            .as_str()
            .or_else(|| schema.get("properties").map(|_| "object"));
        let type_ok = match kind {
            None => true,
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            Some(other) => panic!("unhandled schema type {other}"),
        };
        if !type_ok {
            errors.push(format!(
                "{at}: {value} is not of type {}",
                kind.unwrap_or("?")
            ));
            return;
        }
        if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
            for (i, v) in list.iter().enumerate() {
                self.check_value(v, items, &format!("{at}[{i}]"), errors);
            }
        }
        if let Some(object) = value.as_object() {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, v) in object {
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) => self.check_value(v, s, &format!("{at}.{key}"), errors),
                    (None, Some(s)) if s.is_object() => {
                        self.check_value(v, s, &format!("{at}.{key}"), errors)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    _ => errors.push(format!("{at}: field {key} is not in the schema")),
                }
            }
        }
    }
}

fn swagger_or_skip() -> Option<Swagger> {
    match load_swagger() {
        Some(doc) => Some(Swagger { doc }),
        None => {
            eprintln!(
                "SKIPPED: Harbor contract test: {} is absent (it comes from the shared folder \
                 beside the repository)",
                swagger_path().display()
            );
            None
        }
    }
}

#[test]
fn every_request_the_client_sends_is_in_harbors_swagger() {
    let Some(swagger) = swagger_or_skip() else {
        return;
    };
    let mut errors = Vec::new();
    let mut covered = BTreeSet::new();
    let mut count = 0;
    for (name, scenario) in super::tests::ALL {
        for request in scenario() {
            count += 1;
            match swagger.check(&request) {
                Ok(op) => {
                    covered.insert((op.method, op.template));
                }
                Err(e) => errors.extend(e.into_iter().map(|e| format!("[{name}] {e}"))),
            }
        }
    }
    assert!(
        errors.is_empty(),
        "swagger violations:\n{}",
        errors.join("\n")
    );

    // Every endpoint the client uses is exercised (and so checked).
    let expected = [
        ("HEAD", "/projects"),
        ("POST", "/projects"),
        ("GET", "/registries"),
        ("POST", "/registries"),
        ("GET", "/replication/policies"),
        ("POST", "/replication/policies"),
        ("PUT", "/replication/policies/{id}"),
        ("POST", "/replication/executions"),
        ("GET", "/replication/executions/{id}"),
        ("PUT", "/replication/executions/{id}"),
        ("GET", "/replication/executions/{id}/tasks"),
        (
            "GET",
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}",
        ),
        (
            "DELETE",
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}",
        ),
        (
            "POST",
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/scan",
        ),
        ("GET", "/statistics"),
        ("GET", "/projects/{project_name_or_id}/webhook/policies"),
        ("POST", "/projects/{project_name_or_id}/webhook/policies"),
        (
            "PUT",
            "/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}",
        ),
    ];
    let expected: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(m, t)| ((*m).to_owned(), (*t).to_owned()))
        .collect();
    assert_eq!(covered, expected, "endpoints exercised by the scenarios");
    eprintln!(
        "Harbor contract: {count} requests over {} operations match {}",
        covered.len(),
        swagger_path().display()
    );
}

/// The checker itself catches what it is meant to catch.
#[test]
fn the_checker_rejects_off_contract_requests() {
    let Some(swagger) = swagger_or_skip() else {
        return;
    };
    let url = |p: &str| format!("{BASE_URL}{API_PREFIX}{p}");
    let bad = |req: OutboundRequest, needle: &str| {
        let errors = swagger.check(&req).expect_err("must be rejected");
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{needle} not in {errors:?}"
        );
    };
    bad(
        OutboundRequest::new("GET", url("/registrys")),
        "no path template",
    );
    bad(
        OutboundRequest::new("DELETE", url("/statistics")),
        "no delete operation",
    );
    bad(
        OutboundRequest::new("GET", url("/registries?type=docker-hub")),
        "query parameter type is not declared",
    );
    bad(
        OutboundRequest::new("GET", url("/registries?page_size=500")),
        "exceeds 100",
    );
    bad(
        OutboundRequest::new("GET", url("/replication/executions/abc")),
        "not an integer",
    );
    bad(
        OutboundRequest::new(
            "GET",
            url("/projects/catalog/repositories/nvidia%2Fpytorch/artifacts/1.0"),
        ),
        "not double-encoded",
    );
    bad(
        OutboundRequest::new("POST", url("/projects"))
            .json(&serde_json::json!({"project_name": "catalog", "public": "false"})),
        "body.public",
    );
    bad(
        OutboundRequest::new("POST", url("/projects"))
            .json(&serde_json::json!({"name": "catalog", "metadata": {"public": false}})),
        "field name is not in the schema",
    );
    bad(
        OutboundRequest::new("POST", url("/projects"))
            .json(&serde_json::json!({"project_name": "catalog", "metadata": {"public": false}})),
        "body.metadata.public: false is not of type string",
    );
    bad(
        OutboundRequest::new("POST", url("/replication/policies")).json(&serde_json::json!({
            "name": "p", "filters": [{"type": "tag", "value": "1", "decorations": "matches"}]
        })),
        "field decorations",
    );
    bad(
        OutboundRequest::new("GET", url("/statistics")).header("x-unknown", "1"),
        "header x-unknown",
    );
    bad(
        OutboundRequest::new("PUT", url("/replication/executions/1"))
            .json(&serde_json::json!({"status": "Stopped"})),
        "takes no body",
    );
    bad(
        OutboundRequest::new("HEAD", url("/projects")),
        "project_name missing",
    );
}

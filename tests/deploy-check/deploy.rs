//! The SpinKube manifests in deploy/ are valid SpinApps (spin-operator's CRD schema, with
//! unknown fields rejected as `kubectl apply`'s strict validation does) and agree with
//! spin.toml: every variable exists, secrets come from the Secret, the database host is the
//! one `allowed_outbound_hosts` lets through.

use std::collections::BTreeSet;
use std::path::PathBuf;

use berth_deploy_check::repo_root;
use serde_json::{Value, json};

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// Every YAML document of a file, as JSON.
fn documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Objects that list their properties accept no others (what `kubectl apply` reports as
/// unknown fields), unless the schema says otherwise.
fn strict(schema: &mut Value) {
    if let Some(obj) = schema.as_object_mut() {
        let preserves = obj
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if obj.contains_key("properties") && !obj.contains_key("additionalProperties") && !preserves
        {
            obj.insert("additionalProperties".into(), Value::Bool(false));
        }
        for v in obj.values_mut() {
            strict(v);
        }
    } else if let Some(items) = schema.as_array_mut() {
        items.iter_mut().for_each(strict);
    }
}

fn spinapp_validator() -> jsonschema::Validator {
    let crd = documents(&deploy_dir().join("crd/core.spinkube.dev_spinapps.yaml"));
    assert_eq!(crd.len(), 1);
    assert_eq!(crd[0]["spec"]["names"]["kind"], "SpinApp");
    let version = crd[0]["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha1")
        .expect("v1alpha1 in the CRD");
    let mut schema = version["schema"]["openAPIV3Schema"].clone();
    strict(&mut schema);
    // `metadata` is `type: object` in the CRD (the API server checks it); keep it open.
    schema["properties"]["metadata"] = json!({"type": "object"});
    jsonschema::validator_for(&schema).expect("the CRD schema compiles")
}

fn errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The SpinApp manifests: (file name, document).
fn spinapps() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(deploy_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for doc in documents(&path) {
            if doc["kind"] == "SpinApp" {
                out.push((
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    doc,
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn spin_variables() -> toml::Table {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_root().join("spin.toml")).unwrap()).unwrap();
    manifest["variables"].as_table().unwrap().clone()
}

fn variable<'a>(app: &'a Value, name: &str) -> &'a Value {
    app["spec"]["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variable {name}"))
}

#[test]
fn spinapps_match_the_operators_crd() {
    let validator = spinapp_validator();
    let apps = spinapps();
    let names: Vec<&str> = apps.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(names, ["spinapp-libsql.yaml", "spinapp-postgres.yaml"]);
    for (file, app) in &apps {
        let errs = errors(&validator, app);
        assert!(errs.is_empty(), "{file}: {errs:#?}");
        assert_eq!(app["apiVersion"], "core.spinkube.dev/v1alpha1", "{file}");
    }
}

#[test]
fn the_validation_catches_mistakes() {
    let validator = spinapp_validator();
    let (_, app) = spinapps().remove(0);
    let mut typo = app.clone();
    typo["spec"]["replica"] = json!(3);
    assert!(!errors(&validator, &typo).is_empty(), "unknown field");
    let mut missing = app.clone();
    missing["spec"].as_object_mut().unwrap().remove("image");
    assert!(!errors(&validator, &missing).is_empty(), "required field");
    let mut wrong = app;
    wrong["spec"]["replicas"] = json!("three");
    assert!(!errors(&validator, &wrong).is_empty(), "wrong type");
}

#[test]
fn spinapps_agree_with_spin_toml_and_the_secret() {
    let declared = spin_variables();
    let secret = documents(&deploy_dir().join("secrets.example.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Secret")
        .unwrap();
    let secret_name = secret["metadata"]["name"].as_str().unwrap();
    let secret_keys: BTreeSet<&str> = secret["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for (file, app) in spinapps() {
        for v in app["spec"]["variables"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            let decl = declared
                .get(name)
                .unwrap_or_else(|| panic!("{file}: {name} is not a variable of spin.toml"));
            let is_secret = decl.get("secret").and_then(|s| s.as_bool()) == Some(true);
            let from_secret = &v["valueFrom"]["secretKeyRef"];
            if is_secret || name == "db_url" {
                assert!(
                    v.get("value").is_none(),
                    "{file}: {name} is a secret: use valueFrom.secretKeyRef"
                );
            }
            if from_secret.is_object() {
                assert_eq!(from_secret["name"], secret_name, "{file}: {name}");
                let key = from_secret["key"].as_str().unwrap();
                assert!(
                    secret_keys.contains(key),
                    "{file}: no key {key} in the Secret"
                );
            }
        }
        for required in [
            "jwt_secret",
            "harbor_webhook_secret",
            "worker_token",
            "webhook_url",
        ] {
            variable(&app, required);
        }
        assert!(
            variable(&app, "webhook_url")["value"]
                .as_str()
                .unwrap()
                .ends_with("/api/v1/hooks/harbor"),
            "{file}"
        );
    }
}

#[test]
fn the_postgres_app_may_reach_its_database() {
    let apps = spinapps();
    let (_, app) = apps
        .iter()
        .find(|(f, _)| f == "spinapp-postgres.yaml")
        .unwrap();
    assert_eq!(variable(app, "store")["value"], "postgres");
    assert!(app["spec"]["replicas"].as_i64().unwrap() > 1);
    // spin.toml allows postgres://{{ db_host }}:{{ db_port }}: the example db_url must name
    // exactly that host and port (names are compared as text).
    let manifest = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    assert!(manifest.contains("\"postgres://{{ db_host }}:{{ db_port }}\""));
    let secret = documents(&deploy_dir().join("secrets.example.yaml")).remove(0);
    let url = url_host_port(secret["stringData"]["db_url"].as_str().unwrap());
    assert_eq!(
        url,
        (
            variable(app, "db_host")["value"]
                .as_str()
                .unwrap()
                .to_owned(),
            variable(app, "db_port")["value"]
                .as_str()
                .unwrap()
                .to_owned()
        )
    );
}

/// Host and port of a `postgres://user:pass@host:port/db?...` URL.
fn url_host_port(url: &str) -> (String, String) {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split(['/', '?']).next().unwrap();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    (host.to_owned(), port.to_owned())
}

#[test]
fn the_libsql_app_shares_one_remote_sqlite_database() {
    let apps = spinapps();
    let (_, app) = apps
        .iter()
        .find(|(f, _)| f == "spinapp-libsql.yaml")
        .unwrap();
    assert_eq!(variable(app, "store")["value"], "sqlite");
    let dbs = app["spec"]["runtimeConfig"]["sqliteDatabases"]
        .as_array()
        .unwrap();
    assert_eq!(dbs.len(), 1);
    assert_eq!(dbs[0]["name"], "default");
    assert_eq!(dbs[0]["type"], "libsql");
    let options: BTreeSet<&str> = dbs[0]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(options, BTreeSet::from(["token", "url"]));

    // The same for `spin up --runtime-config-file`.
    let rc: toml::Table = toml::from_str(
        &std::fs::read_to_string(deploy_dir().join("runtime-config.libsql.toml")).unwrap(),
    )
    .unwrap();
    let default = &rc["sqlite_database"]["default"];
    assert_eq!(default["type"].as_str(), Some("libsql"));
    assert!(default.get("url").is_some() && default.get("token").is_some());
}

/// deploy/runner.yaml: a rootless Deployment whose arguments and environment are ones
/// `berth-runner serve` accepts (its `--help`, from the built binary), secrets from the
/// Secret, probes on the runner's health route.
#[test]
fn runner_deployment_is_rootless_and_matches_the_binary() {
    let docs = documents(&deploy_dir().join("runner.yaml"));
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let secret = kind("Secret");
    let deployment = kind("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_ne!(container["securityContext"]["privileged"], true);
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        "/runner/health"
    );

    runner_container_matches_the_binary(container, secret);
    let secret_names: BTreeSet<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["valueFrom"]["secretKeyRef"]["key"].as_str())
        .collect();
    assert!(secret_names.contains("runner-secret") && secret_names.contains("registry-password"));
}

/// Every argument of a runner container is a flag of `berth-runner serve` (its `--help`,
/// from the built binary), every `BERTH_RUNNER_*` variable one it reads, every secret key
/// one the Secret has.
fn runner_container_matches_the_binary(container: &Value, secret: &Value) {
    let bin = repo_root().join("target/release/berth-runner");
    let help = std::process::Command::new(&bin)
        .args(["serve", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build --release builds it)", bin.display()));
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let args = container["args"].as_array().unwrap();
    assert_eq!(args[0], "serve");
    for arg in &args[1..] {
        let flag = arg.as_str().unwrap().split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag} <")),
            "berth-runner serve has no {flag}"
        );
    }
    for env in container["env"].as_array().unwrap() {
        let name = env["name"].as_str().unwrap();
        if name.starts_with("BERTH_RUNNER_") {
            assert!(
                help.contains(&format!("env: {name}")),
                "berth-runner reads no {name}"
            );
        }
        if let Some(key) = env["valueFrom"]["secretKeyRef"]["key"].as_str() {
            assert_eq!(
                env["valueFrom"]["secretKeyRef"]["name"],
                secret["metadata"]["name"]
            );
            assert!(
                secret["stringData"].get(key).is_some(),
                "the Secret has no {key}"
            );
        }
    }
}

/// deploy/runner-kubernetes-jobs.yaml: the runner with `--executor kubernetes`, as a
/// service account allowed exactly what the executor calls (Jobs, their Secrets, their
/// pods and logs), rootless, its flags ones the binary has.
#[test]
fn runner_kubernetes_jobs_mode_has_its_rbac_and_matches_the_binary() {
    let docs = documents(&deploy_dir().join("runner-kubernetes-jobs.yaml"));
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let (account, role, binding) = (kind("ServiceAccount"), kind("Role"), kind("RoleBinding"));
    let namespace = &account["metadata"]["namespace"];
    for doc in &docs {
        assert_eq!(&doc["metadata"]["namespace"], namespace, "{doc}");
    }
    // Each (group, resource, verb) the executor uses is granted.
    let granted = |group: &str, resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            let has = |field: &str, v: &str| r[field].as_array().unwrap().iter().any(|x| x == v);
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for (group, resource, verb) in [
        ("batch", "jobs", "create"),
        ("batch", "jobs", "get"),
        ("batch", "jobs", "delete"),
        ("", "secrets", "create"),
        ("", "pods", "list"),
        ("", "pods/log", "get"),
    ] {
        assert!(
            granted(group, resource, verb),
            "the Role does not grant {verb} on {group}/{resource}"
        );
    }
    // Nothing it does not use: no reading other Secrets, no wildcard.
    assert!(!granted("", "secrets", "get") && !granted("", "secrets", "list"));
    assert!(!role.to_string().contains("\"*\""), "{role}");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);

    let deployment = kind("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    let args = container["args"].as_array().unwrap();
    assert!(args.contains(&json!("--executor=kubernetes")), "{args:?}");
    assert!(
        args.iter()
            .any(|a| a.as_str().unwrap().starts_with("--kube-job-image=")),
        "{args:?}"
    );
    runner_container_matches_the_binary(container, kind("Secret"));
    let service = kind("Service");
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

/// deploy/sweep-cronjob.yaml: a CronJob that calls the sweep route spin.toml routes to the
/// progress component, on the Service of a SpinApp in deploy/, with the worker token from
/// the Secret, as often as `sweep_interval_seconds`' default, never two runs at once.
#[test]
fn sweep_cronjob_calls_the_sweep_route_like_a_scheduler() {
    let docs = documents(&deploy_dir().join("sweep-cronjob.yaml"));
    assert_eq!(docs.len(), 1);
    let cron = &docs[0];
    assert_eq!(cron["apiVersion"], "batch/v1");
    assert_eq!(cron["kind"], "CronJob");
    let spec = &cron["spec"];
    let fields: Vec<&str> = spec["schedule"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(fields.len(), 5, "a five-field cron schedule");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    let job = &spec["jobTemplate"]["spec"];
    let pod = &job["template"]["spec"];
    assert!(matches!(
        pod["restartPolicy"].as_str(),
        Some("Never" | "OnFailure")
    ));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    let env = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))
            .clone()
    };

    // The URL: a SpinApp's Service, the route spin.toml sends to the progress component.
    let url = env("SWEEP_URL")["value"].as_str().unwrap().to_owned();
    let (service, path) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .expect("http://<service>/<path>");
    let apps = spinapps();
    assert!(
        apps.iter()
            .any(|(_, app)| app["metadata"]["name"] == service),
        "{service} is no SpinApp's Service"
    );
    let path = format!("/{path}");
    assert_eq!(path, "/api/v1/internal/sweep");
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_root().join("spin.toml")).unwrap()).unwrap();
    let routed = manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| Some((t.get("route")?.as_str()?, t.get("component")?.as_str()?)))
        .find(|(route, _)| match route.strip_suffix("/...") {
            Some(prefix) => path.starts_with(&format!("{prefix}/")),
            None => *route == path,
        });
    assert_eq!(
        routed.map(|(_, c)| c),
        Some("progress"),
        "{path} reaches the progress component"
    );
    let served = std::fs::read_to_string(repo_root().join("domain/src/api/progress.rs")).unwrap();
    assert!(
        served.contains(r#"("POST", ["api", "v1", "internal", "sweep"])"#),
        "the progress router serves POST {path}"
    );

    // The token: the Secret's worker_token, which the route checks.
    let token = env("WORKER_TOKEN");
    let key = token["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap();
    assert_eq!(key, "worker_token");
    let secret = documents(&deploy_dir().join("secrets.example.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Secret")
        .unwrap();
    assert_eq!(
        token["valueFrom"]["secretKeyRef"]["name"],
        secret["metadata"]["name"]
    );
    assert!(
        secret["stringData"].get(key).is_some(),
        "the Secret has no {key}"
    );
    let script = container["args"][0].as_str().unwrap();
    assert!(script.contains("Bearer $WORKER_TOKEN") && script.contains("-X POST"));
    assert!(script.contains("$SWEEP_URL") && script.contains("--fail"));

    // Every minute, CALLS calls INTERVAL_SECONDS apart: the default sweep period.
    assert_eq!(fields[0], "*", "every minute");
    let default: u64 = spin_variables()["sweep_interval_seconds"]["default"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let interval: u64 = env("INTERVAL_SECONDS")["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let calls: u64 = env("CALLS")["value"].as_str().unwrap().parse().unwrap();
    assert_eq!(interval, default);
    assert_eq!(calls * interval, 60);
    // A run ends before the next one starts.
    assert!(job["activeDeadlineSeconds"].as_u64().unwrap() < 60);
}

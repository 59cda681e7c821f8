//! What berth learns from inside an imported image, end to end through the host and a
//! simulated Harbor: layers from the manifest, framework/CUDA/cuDNN from the image config,
//! the minimum driver and the `driver_version` filter, and Trivy scans (`max_severity`,
//! SCANNING_* webhooks, `import_require_clean_scan`).

use std::time::{Duration, Instant};

use berth_tests::harbor::{ScanSpec, TestHarbor};
use berth_tests::{AppOptions, TestApp};
use serde_json::{Value, json};

const PYTORCH: &str = "docker.io/pytorch/pytorch:2.0.0-cuda11.7-cudnn8-runtime";
const PYTORCH_REPO: &str = "catalog/docker.io/pytorch/pytorch";
const PYTORCH_TAG: &str = "2.0.0-cuda11.7-cudnn8-runtime";

fn app_with(harbor: &TestHarbor, extra: &[(&str, &str)]) -> TestApp {
    let mut variables = vec![("import_failure_confirm_seconds".to_owned(), "1".to_owned())];
    variables.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestApp::spawn_with(AppOptions {
        harbor: Some(harbor.variables()),
        variables,
        ..Default::default()
    })
}

fn start_import(app: &TestApp, source: &str) -> i64 {
    let r = app.as_user("alice").send(
        "POST",
        "/api/v1/images:import",
        Some(&json!({"source": source})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]["image_id"].as_i64().unwrap()
}

/// Polls importing-details until the import ends.
fn wait_for_end(app: &TestApp, id: i64) -> Value {
    let start = Instant::now();
    loop {
        let r = app
            .as_admin()
            .get(&format!("/api/v1/images/{id}/importing-details"));
        assert_eq!(r.status, 200, "{}", r.text);
        if r.body["data"]["status"] != "importing" {
            return r.body["data"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still importing: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ids(app: &TestApp, query: &str) -> Vec<i64> {
    let r = app.as_admin().get(&format!("/api/v1/images?{query}"));
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    r.body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image_id"].as_i64().unwrap())
        .collect()
}

fn detail(app: &TestApp, id: i64) -> Value {
    let r = app.as_admin().get(&format!("/api/v1/images/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].clone()
}

/// The layers of the manifest Harbor holds, read from the simulator's registry API.
fn manifest_layers(harbor: &TestHarbor, repo: &str, tag: &str) -> Vec<Value> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        berth_tests::harbor::USERNAME,
        berth_tests::harbor::PASSWORD
    ));
    let manifest: Value = ureq::get(&format!("{}/v2/{repo}/manifests/{tag}", harbor.url()))
        .set("Authorization", &format!("Basic {auth}"))
        .call()
        .expect("the simulator serves the manifest")
        .into_json()
        .unwrap();
    manifest["layers"].as_array().cloned().unwrap_or_default()
}

#[test]
fn pytorch_import_ends_ready_with_its_facts_layers_and_minimum_driver() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, &[]);
    let id = start_import(&app, PYTORCH);
    let details = wait_for_end(&app, id);
    assert_eq!(details["status"], "ready", "{details}");
    assert_eq!(details["progress"], 100);

    // One layersDetail entry per manifest layer, each completed at 100, with its facts.
    let layers = manifest_layers(&harbor, PYTORCH_REPO, PYTORCH_TAG);
    assert!(layers.len() >= 2, "{layers:?}");
    let detail_layers = details["layersDetail"].as_object().unwrap();
    assert_eq!(detail_layers.len(), layers.len(), "{details}");
    for layer in &layers {
        let digest = layer["digest"].as_str().unwrap();
        let entry = &detail_layers[digest];
        assert_eq!(entry["status"], "completed", "{entry}");
        assert_eq!(entry["progress"], 100, "{entry}");
        assert_eq!(entry["size"], layer["size"]);
        assert_eq!(entry["mediaType"], layer["mediaType"]);
        assert_eq!(entry["platform"], "linux/amd64");
    }

    let d = detail(&app, id);
    assert_eq!(d["framework"], "pytorch", "{d}");
    assert_eq!(d["framework_version"], "2.0.0", "{d}");
    assert_eq!(d["cuda_version"], "11.7", "{d}");
    assert_eq!(d["cudnn_version"], "8", "{d}");
    assert_eq!(d["min_driver_version"], "515.43.04", "{d}");
    let console = app.as_admin().get(&format!("/api/images/{id}"));
    assert_eq!(console.status, 200, "{}", console.text);
    assert_eq!(console.body["data"]["minDriverVersion"], "515.43.04");
    assert_eq!(console.body["data"]["cudnnVersion"], "8");

    assert!(ids(&app, "framework=pytorch").contains(&id));
    assert!(ids(&app, "driver_version=535.104.05").contains(&id));
    assert!(ids(&app, "driver_version=515.43.04").contains(&id));
    assert!(!ids(&app, "driver_version=470.42.01").contains(&id));
    // An image without a known CUDA is not listed by the driver filter.
    let r = app.as_admin().send(
        "POST",
        "/api/v1/images",
        Some(&json!({"name": "cpu-only:1", "registry_url": "registry.example.com/x/cpu-only:1"})),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let cpu_only = r.body["data"]["image_id"].as_i64().expect("an id");
    assert!(ids(&app, "name=cpu-only").contains(&cpu_only));
    assert!(!ids(&app, "name=cpu-only&driver_version=999.1").contains(&cpu_only));

    for bad in ["garbage", "535.x", "5", "1.2.3.4"] {
        let r = app
            .as_admin()
            .get(&format!("/api/v1/images?driver_version={bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.text.contains("driver_version"), "{}", r.text);
        assert!(r.text.contains("535.104.05"), "{}", r.text);
    }
}

#[test]
fn an_admins_values_survive_a_reimport_and_derived_ones_are_refreshed() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, &[]);
    let id = start_import(&app, PYTORCH);
    assert_eq!(wait_for_end(&app, id)["status"], "ready");
    let r = app.as_admin().send(
        "PATCH",
        &format!("/api/v1/images/{id}"),
        Some(&json!({"cuda_version": "11.8"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Harbor loses the artifact: berth marks the image gone; the import is retried.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        berth_tests::harbor::USERNAME,
        berth_tests::harbor::PASSWORD
    ));
    ureq::delete(&format!(
        "{}/api/v2.0/projects/catalog/repositories/docker.io%252Fpytorch%252Fpytorch/artifacts/{PYTORCH_TAG}",
        harbor.url()
    ))
    .set("Authorization", &format!("Basic {auth}"))
    .call()
    .expect("delete in Harbor");
    let start = Instant::now();
    while detail(&app, id)["availability"] != "failed" {
        assert!(start.elapsed() < Duration::from_secs(10), "not marked gone");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = app
        .as_user("alice")
        .send("PUT", &format!("/api/v1/images/{id}/importing:retry"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(wait_for_end(&app, id)["status"], "ready");

    let d = detail(&app, id);
    assert_eq!(d["cuda_version"], "11.8", "the admin's value stays: {d}");
    assert_eq!(d["min_driver_version"], "520.61.05", "{d}");
    assert_eq!(d["framework_version"], "2.0.0", "{d}");
    assert!(!ids(&app, "driver_version=515.43.04").contains(&id));
    assert!(ids(&app, "driver_version=520.61.05").contains(&id));
}

#[test]
fn scans_are_shown_filtered_and_updated_by_harbors_webhooks() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, &[]);
    let id = start_import(&app, PYTORCH);
    assert_eq!(wait_for_end(&app, id)["status"], "ready");
    // Not scanned yet: no summary, and no severity filter finds it.
    assert_eq!(detail(&app, id)["vulnerabilities"], Value::Null);
    assert!(!ids(&app, "max_severity=critical").contains(&id));

    // Harbor's scan finds a critical one: SCANNING_COMPLETED tells berth.
    let status = harbor.scan(ScanSpec {
        counts: Some(
            [("Critical".into(), 1), ("High".into(), 3)]
                .into_iter()
                .collect(),
        ),
        repository: Some(PYTORCH_REPO.into()),
        reference: Some(PYTORCH_TAG.into()),
        ..Default::default()
    });
    assert_eq!(status, 200);
    let start = Instant::now();
    while detail(&app, id)["vulnerabilities"].is_null() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no scan recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = detail(&app, id)["vulnerabilities"].clone();
    assert_eq!(v["status"], "Success", "{v}");
    assert_eq!(v["severity"], "Critical", "{v}");
    assert_eq!(
        (v["critical"].as_i64(), v["high"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(v["total"], 4);
    assert!(v["scannedAt"].as_str().is_some(), "{v}");
    assert!(ids(&app, "max_severity=critical").contains(&id));
    assert!(!ids(&app, "max_severity=high").contains(&id));

    // A later clean scan replaces it.
    harbor.scan(ScanSpec {
        counts: Some(Default::default()),
        repository: Some(PYTORCH_REPO.into()),
        reference: Some(PYTORCH_TAG.into()),
        ..Default::default()
    });
    let start = Instant::now();
    while detail(&app, id)["vulnerabilities"]["severity"] != "None" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "clean scan not recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ids(&app, "max_severity=none").contains(&id));

    // A failed scan (SCANNING_FAILED) is shown as such and leaves the filter.
    harbor.scan(ScanSpec {
        status: Some("Error".into()),
        repository: Some(PYTORCH_REPO.into()),
        reference: Some(PYTORCH_TAG.into()),
        ..Default::default()
    });
    let start = Instant::now();
    while detail(&app, id)["vulnerabilities"]["status"] != "Error" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "failed scan not recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!ids(&app, "max_severity=critical").contains(&id));
    let deliveries = harbor.state().webhook_deliveries;
    assert!(deliveries.iter().any(|d| d.event_type == "SCANNING_FAILED"));

    let r = app.as_admin().get("/api/v1/images?max_severity=terrible");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("max_severity"), "{}", r.text);
}

#[test]
fn a_required_clean_scan_holds_an_import_until_harbor_scanned_it() {
    let harbor = TestHarbor::start();
    // Scans Harbor runs find two high vulnerabilities.
    harbor.scan(ScanSpec {
        counts: Some([("High".into(), 2)].into_iter().collect()),
        ..Default::default()
    });
    let app = app_with(
        &harbor,
        &[
            ("import_require_clean_scan", "true"),
            ("import_reconcile_after_seconds", "0"),
        ],
    );
    let id = start_import(&app, PYTORCH);
    let details = wait_for_end(&app, id);
    assert_eq!(details["status"], "failed", "{details}");
    let message = details["message"].as_str().unwrap();
    assert!(message.contains("2 high"), "{message}");
    assert!(message.contains("import_require_clean_scan"), "{message}");
    // berth asked Harbor for the scan.
    assert!(
        harbor
            .state()
            .requests
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/scan"))
    );
    assert_eq!(detail(&app, id)["vulnerabilities"]["high"], 2);

    // With a clean scan the next import becomes ready.
    harbor.scan(ScanSpec {
        counts: Some(Default::default()),
        ..Default::default()
    });
    let other = start_import(
        &app,
        "docker.io/pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime",
    );
    let details = wait_for_end(&app, other);
    assert_eq!(details["status"], "ready", "{details}");
    let d = detail(&app, other);
    assert_eq!(d["vulnerabilities"]["severity"], "None", "{d}");
    assert_eq!(d["cuda_version"], "12.1", "{d}");
    assert_eq!(d["min_driver_version"], "530.30.02", "{d}");
}

#[test]
fn other_families_get_their_facts_from_the_image_config() {
    let harbor = TestHarbor::start();
    let app = app_with(&harbor, &[]);
    let ngc = start_import(&app, "nvcr.io/nvidia/pytorch:24.01-py3");
    let cuda = start_import(
        &app,
        "docker.io/nvidia/cuda:12.2.0-cudnn8-runtime-ubuntu22.04",
    );
    let vllm = start_import(&app, "docker.io/vllm/vllm-openai:v0.4.0");
    for id in [ngc, cuda, vllm] {
        assert_eq!(wait_for_end(&app, id)["status"], "ready");
    }
    let d = detail(&app, ngc);
    assert_eq!(
        (d["framework"].as_str(), d["framework_version"].as_str()),
        (Some("pytorch"), Some("2.2.0a0+81ea7a4")),
        "{d}"
    );
    assert_eq!(d["cuda_version"], "12.3.2");
    assert_eq!(d["python_version"], "3.10.12");
    assert_eq!(d["min_driver_version"], "545.23.06");
    let d = detail(&app, cuda);
    assert_eq!(d["framework"], Value::Null, "{d}");
    assert_eq!(d["cuda_version"], "12.2.0");
    assert_eq!(d["cudnn_version"], "8.9.4.25");
    let d = detail(&app, vllm);
    assert_eq!(
        (d["framework"].as_str(), d["framework_version"].as_str()),
        (Some("vllm"), Some("0.4.0")),
        "{d}"
    );
    // 535.104.05 runs CUDA 12.2 but not 12.3.
    let found = ids(&app, "driver_version=535.104.05&page_size=100");
    assert!(found.contains(&cuda) && found.contains(&vllm) && !found.contains(&ngc));
}

#[test]
fn without_configs_or_a_registry_api_an_import_still_ends_ready_from_its_tag() {
    let harbor = TestHarbor::start_without_image_contents();
    let app = app_with(&harbor, &[]);
    let id = start_import(&app, PYTORCH);
    let details = wait_for_end(&app, id);
    assert_eq!(details["status"], "ready", "{details}");
    // No manifest to read: no layers, and nothing pretends otherwise.
    assert_eq!(details["layersDetail"], json!({}), "{details}");
    // The tag still says what it is; the config's PYTORCH_VERSION is absent.
    let d = detail(&app, id);
    assert_eq!(d["framework"], "pytorch", "{d}");
    assert_eq!(d["framework_version"], "2.0.0", "{d}");
    assert_eq!(d["cuda_version"], "11.7", "{d}");
    assert_eq!(d["min_driver_version"], "515.43.04", "{d}");
}

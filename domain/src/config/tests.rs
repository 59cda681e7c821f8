use super::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// spin.toml's `[variables]`: name → (default, secret). Required variables have no
/// default: "" here.
fn spin_toml_variables() -> BTreeMap<String, (String, bool)> {
    let path =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../spin.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = BTreeMap::new();
    let mut in_variables = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_variables = line == "[variables]";
            continue;
        }
        if !in_variables || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, spec) = line.split_once('=').expect("name = { ... }");
        // `key = "quoted"` or `key = bare`.
        let field = |key: &str| {
            let rest = spec.split(&format!("{key} = ")).nth(1)?;
            match rest.strip_prefix('"') {
                Some(quoted) => Some(quoted.split('"').next()?.to_owned()),
                None => Some(rest.split([',', '}']).next()?.trim().to_owned()),
            }
        };
        let default = field("default").unwrap_or_default();
        let secret = field("secret").as_deref() == Some("true");
        out.insert(name.trim().to_owned(), (default, secret));
    }
    out
}

/// Variables that record what is asked of them.
#[derive(Default)]
struct Recording {
    values: HashMap<&'static str, &'static str>,
    asked: RefCell<Vec<String>>,
}

impl Variables for Recording {
    fn get(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().push(name.to_owned());
        self.values.get(name).map(|v| v.to_string())
    }
}

/// Every group and single setting.
fn read_everything(s: &Settings<'_>) {
    s.auth();
    s.registry_host();
    s.harbor().unwrap();
    s.runner().unwrap();
    s.worker_token();
    s.registry_secret_key();
    s.allow_user_images();
    s.sweep_interval_seconds();
    s.portal_demo_user();
    s.store();
    s.db_url();
    s.db_host();
    s.db_port();
}

#[test]
fn settings_mirror_spin_toml_variables() {
    let spin = spin_toml_variables();
    assert!(spin.len() > 20, "parsed too few variables: {spin:?}");
    let ours: BTreeMap<String, (String, bool)> = VARIABLES
        .iter()
        .map(|v| (v.name.to_owned(), (v.default.to_owned(), v.secret)))
        .collect();
    for (name, (default, secret)) in &spin {
        let Some((our_default, our_secret)) = ours.get(name) else {
            panic!("spin.toml's variable {name} has no setting");
        };
        assert_eq!(our_default, default, "default of {name}");
        // A setting may be more secret than spin.toml says (db_url), never less.
        assert!(!secret || *our_secret, "{name} is secret in spin.toml");
    }
    for name in ours.keys() {
        assert!(
            spin.contains_key(name),
            "setting {name} is not in spin.toml"
        );
    }

    // Every variable is read by some setting, each once, and nothing else is read.
    let vars = Recording::default();
    read_everything(&Settings::new(&vars));
    let asked = vars.asked.borrow();
    let asked_set: BTreeSet<&str> = asked.iter().map(String::as_str).collect();
    assert_eq!(
        asked_set.len(),
        asked.len(),
        "a variable read twice: {asked:?}"
    );
    let spin_names: BTreeSet<&str> = spin.keys().map(String::as_str).collect();
    assert_eq!(asked_set, spin_names);
}

#[test]
fn unset_variables_take_spin_toml_defaults() {
    let vars = HashMap::new();
    let s = Settings::new(&vars);
    let harbor = s.harbor().unwrap();
    assert_eq!(harbor.harbor.base_url, "http://127.0.0.1:8099");
    assert_eq!(harbor.registry_host, "127.0.0.1:8099");
    assert_eq!(harbor.harbor.username, "admin");
    assert_eq!(harbor.harbor.project, "catalog");
    assert_eq!(harbor.allowed_sources.len(), 5);
    assert_eq!(harbor.deadline_seconds, 3600);
    assert_eq!(harbor.confirm_failure_seconds, 150);
    assert_eq!(harbor.reconcile_after_seconds, 5);
    assert_eq!(harbor.redrive_after_seconds, 30);
    assert_eq!(harbor.require_clean_scan, ScanRequirement::None);
    assert_eq!(s.auth().token_policy.max_lifetime_seconds, 2_592_000);
    assert_eq!(s.runner().unwrap().public_url, "http://127.0.0.1:3000");
    assert_eq!(s.runner().unwrap().deadline_seconds, 3600);
    assert_eq!(s.sweep_interval_seconds(), 30);
    assert_eq!(s.store(), Store::Sqlite);
    assert_eq!(s.db_port(), 5432);
    assert!(!s.allow_user_images());
}

#[test]
fn bad_numbers_fall_back_to_the_default_and_empty_urls_mean_unconfigured() {
    let vars = HashMap::from([
        ("import_deadline_seconds", "soon"),
        ("import_failure_confirm_seconds", "-3"),
        ("jwt_max_lifetime_seconds", ""),
        ("harbor_url", " https://harbor.example.com/ "),
        ("harbor_project", " "),
        ("runner_url", ""),
        ("allow_user_images", " true "),
    ]);
    let s = Settings::new(&vars);
    let harbor = s.harbor().unwrap();
    assert_eq!(harbor.deadline_seconds, 3600);
    assert_eq!(harbor.confirm_failure_seconds, 0);
    assert_eq!(harbor.harbor.base_url, "https://harbor.example.com");
    assert_eq!(harbor.registry_host, "harbor.example.com");
    assert_eq!(harbor.harbor.project, "catalog");
    assert_eq!(s.auth().token_policy.max_lifetime_seconds, 2_592_000);
    assert_eq!(s.runner().unwrap_err().status, 503);
    assert!(s.allow_user_images());

    let no_harbor = HashMap::from([("harbor_url", "")]);
    let s = Settings::new(&no_harbor);
    assert_eq!(s.harbor().unwrap_err().status, 503);
    assert_eq!(s.registry_host(), None);
}

#[test]
fn secrets_do_not_show_in_debug() {
    let vars = HashMap::from([
        ("jwt_secret", "jwt-hunter2"),
        ("harbor_password", "harbor-hunter2"),
        ("harbor_webhook_secret", "hook-hunter2"),
        ("runner_secret", "runner-hunter2"),
        ("runner_token", "token-hunter2"),
        ("db_url", "postgres://u:db-hunter2@h/db"),
    ]);
    let s = Settings::new(&vars);
    let shown = format!(
        "{:?} {:?} {:?} {:?} {:?}",
        s.auth(),
        s.harbor().unwrap(),
        s.runner().unwrap(),
        s.db_url(),
        s.worker_token()
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("Secret(*****)"), "{shown}");
    assert_eq!(s.auth().jwt_secret.expose(), "jwt-hunter2");
    assert_eq!(s.runner_token().expose(), "token-hunter2");
}

//! Pull-mode replication policies as berth wants them (CONTRACT §3), and the comparison
//! with what Harbor has.

use serde_json::{Value, json};

use super::types::{ReplicationFilter, ReplicationPolicy};

/// What berth wants a pull policy to be. The destination namespace is the client's
/// project; the rest of the policy is fixed: manual trigger, override, enabled, no
/// deletion replication, unlimited speed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// Deterministic and unique per import source (the caller chooses it).
    pub name: String,
    pub description: String,
    /// The Harbor registry id of the source (from `ensure_registry`).
    pub src_registry_id: i64,
    /// Source repository path, e.g. `library/nginx` or `nvidia/pytorch` (the `name` filter).
    pub repository: String,
    /// Tag (the `tag` filter, decoration `matches`).
    pub tag: String,
    /// How many leading source path components `dest_namespace` replaces (CONTRACT §3.2):
    /// `1` turns `library/nginx` into `<project>/nginx`, `0` keeps the whole path.
    pub dest_namespace_replace_count: i8,
    /// Where in Harbor the copy lands: the client's project when `None`, else a path under
    /// it (e.g. `catalog/docker.io`, so that the source registry is part of the path).
    pub dest_namespace: Option<String>,
}

impl PolicySpec {
    /// A spec with replace count 1 and berth's description.
    pub fn new(
        name: impl Into<String>,
        src_registry_id: i64,
        repository: impl Into<String>,
        tag: impl Into<String>,
    ) -> PolicySpec {
        PolicySpec {
            name: name.into(),
            description: "Image import managed by berth".to_owned(),
            src_registry_id,
            repository: repository.into(),
            tag: tag.into(),
            dest_namespace_replace_count: 1,
            dest_namespace: None,
        }
    }

    pub fn with_dest_namespace(mut self, namespace: impl Into<String>) -> PolicySpec {
        self.dest_namespace = Some(namespace.into());
        self
    }

    fn namespace<'a>(&'a self, project: &'a str) -> &'a str {
        self.dest_namespace.as_deref().unwrap_or(project)
    }

    pub fn with_replace_count(mut self, count: i8) -> PolicySpec {
        self.dest_namespace_replace_count = count;
        self
    }

    /// The destination repository, without the project, that this policy writes to
    /// (CONTRACT §3.2); `None` when the replace count exceeds the path, which makes
    /// Harbor fail the execution.
    pub fn dest_repository(&self) -> Option<String> {
        replace_namespace(&self.repository, self.dest_namespace_replace_count)
    }

    fn filters(&self) -> Value {
        json!([
            {"type": "name", "value": self.repository},
            {"type": "tag", "value": self.tag, "decoration": "matches"},
        ])
    }

    /// The `POST`/`PUT /replication/policies` body (CONTRACT §3.4).
    pub(crate) fn body(&self, project: &str) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "src_registry": {"id": self.src_registry_id},
            "dest_namespace": self.namespace(project),
            "dest_namespace_replace_count": self.dest_namespace_replace_count,
            "filters": self.filters(),
            "trigger": {"type": "manual"},
            "override": true,
            "enabled": true,
            "replicate_deletion": false,
            "speed": 0,
        })
    }

    /// The fields in which Harbor's policy differs from this spec (empty: nothing to
    /// update). Missing keys are zero values (CONTRACT §0.5): a missing replace count is
    /// `-1`, a missing tag decoration is `matches`, any speed ≤ 0 is unlimited.
    pub fn drift(&self, existing: &ReplicationPolicy, project: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |field, same: bool| {
            if !same {
                out.push(field);
            }
        };
        check("name", existing.name == self.name);
        check("description", existing.description == self.description);
        check(
            "src_registry",
            existing.src_registry.as_ref().map(|r| r.id) == Some(self.src_registry_id),
        );
        check(
            "dest_registry",
            existing.dest_registry.as_ref().is_none_or(|r| r.id == 0),
        );
        check(
            "dest_namespace",
            existing.dest_namespace == self.namespace(project),
        );
        check(
            "dest_namespace_replace_count",
            existing.dest_namespace_replace_count.unwrap_or(-1)
                == self.dest_namespace_replace_count,
        );
        let wanted: Vec<ReplicationFilter> =
            serde_json::from_value(self.filters()).expect("filters parse");
        check(
            "filters",
            normalized_filters(&existing.filters) == normalized_filters(&wanted),
        );
        check(
            "trigger",
            existing
                .trigger
                .as_ref()
                .is_some_and(|t| t.kind == "manual"),
        );
        check("override", existing.override_);
        check("enabled", existing.enabled);
        check(
            "replicate_deletion",
            !existing.replicate_deletion && !existing.deletion,
        );
        check("speed", existing.speed.unwrap_or(0) <= 0);
        out
    }
}

fn normalized_filters(filters: &[ReplicationFilter]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = filters
        .iter()
        .map(|f| {
            let decoration = match (f.kind.as_str(), f.decoration.as_str()) {
                ("tag" | "label", "") => "matches".to_owned(),
                (_, d) => d.to_owned(),
            };
            (f.kind.clone(), f.value.to_string(), decoration)
        })
        .collect();
    out.sort();
    out
}

/// Harbor's `replaceNamespace` without the namespace (CONTRACT §3.2): `-1` keeps the last
/// component, `n ≥ 0` drops the first `n`; dropping all of them is an error.
pub fn replace_namespace(repository: &str, count: i8) -> Option<String> {
    let parts: Vec<&str> = repository.split('/').collect();
    match count {
        c if c < 0 => parts.last().map(|s| (*s).to_owned()),
        c if (c as usize) < parts.len() => Some(parts[c as usize..].join("/")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harbor::types::{Registry, ReplicationTrigger};

    /// CONTRACT §3.5's `GET /replication/policies/7`, as Harbor renders it.
    fn harbor_policy() -> ReplicationPolicy {
        serde_json::from_str(
            r#"{"id":7,"name":"import-docker.io-library-nginx-1.25","creation_time":"2025-01-10T07:59:00.000Z",
                "update_time":"2025-01-10T07:59:00.000Z",
                "description":"Image import managed by berth",
                "src_registry":{"id":3,"name":"dockerhub","type":"docker-hub","url":"https://hub.docker.com","credential":{},"status":"healthy"},
                "dest_registry":{"id":0,"name":"Local","type":"harbor","url":"http://core:8080","status":"healthy","credential":{"type":"secret","access_secret":"*****"},"insecure":true,"creation_time":"0001-01-01T00:00:00.000Z","update_time":"0001-01-01T00:00:00.000Z"},
                "dest_namespace":"catalog","dest_namespace_replace_count":1,
                "filters":[{"type":"name","value":"library/nginx"},{"type":"tag","value":"1.25","decoration":"matches"}],
                "trigger":{"type":"manual"},"override":true,"enabled":true,
                "speed":0,"copy_by_chunk":false,"single_active_replication":false}"#,
        )
        .unwrap()
    }

    fn spec() -> PolicySpec {
        PolicySpec::new(
            "import-docker.io-library-nginx-1.25",
            3,
            "library/nginx",
            "1.25",
        )
    }

    #[test]
    fn body_is_the_contracts_pull_policy() {
        let body = spec().body("catalog");
        assert_eq!(
            body,
            json!({
                "name": "import-docker.io-library-nginx-1.25",
                "description": "Image import managed by berth",
                "src_registry": {"id": 3},
                "dest_namespace": "catalog",
                "dest_namespace_replace_count": 1,
                "filters": [{"type": "name", "value": "library/nginx"},
                            {"type": "tag", "value": "1.25", "decoration": "matches"}],
                "trigger": {"type": "manual"},
                "override": true,
                "enabled": true,
                "replicate_deletion": false,
                "speed": 0
            })
        );
    }

    #[test]
    fn an_identical_policy_has_no_drift() {
        assert_eq!(
            spec().drift(&harbor_policy(), "catalog"),
            Vec::<&str>::new()
        );
        // Filter order and a missing tag decoration do not count.
        let mut p = harbor_policy();
        p.filters.reverse();
        p.filters[0].decoration.clear();
        assert!(spec().drift(&p, "catalog").is_empty());
        // Any speed ≤ 0 is unlimited.
        p.speed = Some(-1);
        assert!(spec().drift(&p, "catalog").is_empty());
    }

    #[test]
    fn zero_values_omitted_by_harbor_are_drift_when_berth_wants_them_set() {
        // A policy whose override/enabled were switched off comes back without those keys.
        let p: ReplicationPolicy = serde_json::from_str(
            r#"{"id":7,"name":"import-docker.io-library-nginx-1.25","description":"Image import managed by berth",
                "src_registry":{"id":3},"dest_namespace":"catalog",
                "filters":[{"type":"name","value":"library/nginx"},{"type":"tag","value":"1.25","decoration":"matches"}],
                "trigger":{"type":"manual"}}"#,
        )
        .unwrap();
        assert_eq!(
            spec().drift(&p, "catalog"),
            vec!["dest_namespace_replace_count", "override", "enabled"]
        );
    }

    #[test]
    fn reports_each_drifted_field() {
        let mut p = harbor_policy();
        p.src_registry = Some(Registry {
            id: 9,
            ..Registry::default()
        });
        p.dest_namespace = "other".into();
        p.filters[1].value = json!("1.26");
        p.trigger = Some(ReplicationTrigger {
            kind: "scheduled".into(),
            trigger_settings: None,
        });
        p.deletion = true;
        p.speed = Some(1024);
        p.description = "hand-edited".into();
        assert_eq!(
            spec().drift(&p, "catalog"),
            vec![
                "description",
                "src_registry",
                "dest_namespace",
                "filters",
                "trigger",
                "replicate_deletion",
                "speed"
            ]
        );
        let mut p = harbor_policy();
        p.dest_registry.as_mut().unwrap().id = 5;
        assert_eq!(spec().drift(&p, "catalog"), vec!["dest_registry"]);
        assert_eq!(
            spec()
                .with_replace_count(0)
                .drift(&harbor_policy(), "catalog"),
            vec!["dest_namespace_replace_count"]
        );
    }

    #[test]
    fn destination_names_follow_contract_3_2() {
        let cases = [
            ("library/nginx", -1, Some("nginx")),
            ("library/nginx", 0, Some("library/nginx")),
            ("library/nginx", 1, Some("nginx")),
            ("nvidia/pytorch", -1, Some("pytorch")),
            ("nvidia/pytorch", 1, Some("pytorch")),
            ("nvidia/pytorch", 0, Some("nvidia/pytorch")),
            ("a/b/c/img", 2, Some("c/img")),
            ("a/b/c/img", 4, None),
        ];
        for (src, count, want) in cases {
            assert_eq!(
                replace_namespace(src, count).as_deref(),
                want,
                "{src} {count}"
            );
        }
        assert_eq!(spec().dest_repository().as_deref(), Some("nginx"));
    }
}

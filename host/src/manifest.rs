//! Loads and validates a Spin manifest (`spin.toml`, `spin_manifest_version = 2`) like `spin up`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use crate::interfaces::variables::{self, Template};

/// A validated application: everything `berth up` needs, with paths made absolute.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub version: String,
    /// The directory holding the manifest; relative paths in it resolve against this.
    pub dir: PathBuf,
    pub variables: BTreeMap<String, Variable>,
    /// HTTP triggers in manifest order (Spin keeps this order for ties and for printing).
    pub triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, Component>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    pub route: Route,
    pub component: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A routable pattern, exactly as written in the manifest.
    Path(String),
    /// `route = { private = true }`: reachable only through service chaining.
    Private,
}

#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    /// Absolute path of the component's Wasm file.
    pub source: PathBuf,
    /// The source as written in the manifest (for messages).
    pub source_display: String,
    pub description: String,
    /// Component variables: name -> template over application variables.
    pub variables: BTreeMap<String, Template>,
    pub environment: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub build: Option<Build>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub command: String,
    #[serde(default)]
    pub workdir: Option<String>,
    /// Used by `spin watch`; accepted so manifests stay valid, unused by berth.
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for Spin compatibility")]
    pub watch: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

// --- raw TOML shape (mirrors spin-manifest's v2 schema, `deny_unknown_fields` where Spin has it) ---

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "fields Spin accepts but berth does not use")]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    targets: Vec<toml::Value>,
    #[serde(default)]
    trigger: BTreeMap<String, toml::Table>,
    #[serde(default)]
    tool: BTreeMap<String, toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "fields Spin accepts but berth does not use")]
struct RawVariable {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSource {
    Path(String),
    Other(#[allow(dead_code, reason = "only its presence matters")] toml::Table),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "fields Spin accepts but berth does not use")]
struct RawComponent {
    source: RawSource,
    #[serde(default)]
    description: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    targets: Option<Vec<toml::Value>>,
    #[serde(default)]
    build: Option<Build>,
    #[serde(default)]
    tool: BTreeMap<String, toml::Table>,
    #[serde(default)]
    dependencies_inherit_configuration: Option<bool>,
    #[serde(default)]
    dependencies: toml::Table,
    #[serde(default)]
    profile: toml::Table,
}

/// Reads and parses the manifest without checking that component sources exist
/// (`berth build` must work before anything is built).
pub fn parse_file(path: &Path) -> Result<App> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    let dir = path
        .canonicalize()
        .with_context(|| format!("cannot resolve manifest path {}", path.display()))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&text, &dir).with_context(|| format!("invalid manifest {}", path.display()))
}

/// Parses and validates manifest text; `dir` is the directory relative paths resolve against.
pub fn parse(text: &str, dir: &Path) -> Result<App> {
    let raw: RawManifest = toml::from_str(text).map_err(|e| anyhow!("invalid TOML: {e}"))?;

    match &raw.spin_manifest_version {
        toml::Value::Integer(2) => {}
        toml::Value::String(s) if s == "2" => {}
        toml::Value::String(s) if s == "1" => bail!(
            "spin_manifest_version \"1\" is not supported: berth runs version 2 manifests \
             (`spin_manifest_version = 2`); convert it with `spin doctor`"
        ),
        other => bail!("spin_manifest_version must be 2, found {other}"),
    }

    let mut variables = BTreeMap::new();
    for (name, v) in raw.variables {
        variables::validate_name(&name)
            .map_err(|reason| anyhow!("invalid application variable name {name:?}: {reason}"))?;
        // Spin's loader: "must be `required` OR have a `default`".
        if v.required == v.default.is_some() {
            bail!("variable {name:?} must be `required` OR have a `default`");
        }
        variables.insert(
            name,
            Variable {
                default: v.default,
                required: v.required,
                secret: v.secret,
            },
        );
    }

    let mut components = BTreeMap::new();
    for (id, c) in raw.component {
        validate_component_id(&id)?;
        let component = convert_component(&id, c, dir, &variables)
            .with_context(|| format!("component {id:?}"))?;
        components.insert(id, component);
    }

    let mut triggers = Vec::new();
    for (kind, entries) in raw.trigger {
        if kind != "http" {
            bail!(
                "trigger type {kind:?} is not supported: berth only runs `[[trigger.http]]` triggers"
            );
        }
        for (index, entry) in entries.into_iter().enumerate() {
            let trigger = convert_http_trigger(entry, &components)
                .with_context(|| format!("[[trigger.http]] #{}", index + 1))?;
            triggers.push(trigger);
        }
    }
    if triggers.is_empty() {
        bail!("the manifest has no `[[trigger.http]]` entries: there is nothing to serve");
    }
    check_duplicate_routes(&triggers)?;

    Ok(App {
        name: raw.application.name,
        version: raw.application.version,
        dir: dir.to_path_buf(),
        variables,
        triggers,
        components,
    })
}

/// `spin up` additionally requires every component's Wasm file to exist (Spin loads them all,
/// routed or not).
pub fn check_sources(app: &App) -> Result<()> {
    for c in app.components.values() {
        if !c.source.is_file() {
            bail!(
                "component {:?}: source file {:?} does not exist (looked for {}). \
                 Run `berth build` (or `berth up --build`) first",
                c.id,
                c.source_display,
                c.source.display()
            );
        }
    }
    Ok(())
}

fn convert_component(
    id: &str,
    c: RawComponent,
    dir: &Path,
    app_vars: &BTreeMap<String, Variable>,
) -> Result<Component> {
    let source_display = match c.source {
        RawSource::Path(p) => p,
        RawSource::Other(_) => bail!(
            "only local file sources (`source = \"path/to/file.wasm\"`) are supported; \
             berth cannot fetch `url`/registry sources"
        ),
    };
    let source = dir.join(&source_display);

    let mut variables = BTreeMap::new();
    for (name, value) in c.variables {
        variables::validate_name(&name)
            .map_err(|reason| anyhow!("invalid variable name {name:?}: {reason}"))?;
        let template = Template::parse(&value)
            .map_err(|e| anyhow!("variable {name:?}: invalid template {value:?}: {e}"))?;
        // Spin rejects templates that refer to undefined application variables at load time.
        for var in template.references() {
            if !app_vars.contains_key(var) {
                bail!(
                    "variable {name:?} refers to {{{{ {var} }}}}, which is not defined in the \
                     application's [variables]"
                );
            }
        }
        variables.insert(name, template);
    }

    if !c.files.is_empty() {
        tracing::warn!(
            component = id,
            "`files` is not supported by berth; the component gets no filesystem access"
        );
    }
    if !c.dependencies.is_empty() {
        bail!("component `dependencies` are not supported by berth");
    }
    if !c.allowed_http_hosts.is_empty() {
        bail!("`allowed_http_hosts` is deprecated and not supported: use `allowed_outbound_hosts`");
    }

    Ok(Component {
        id: id.to_string(),
        source,
        source_display,
        description: c.description,
        variables,
        environment: c.environment,
        allowed_outbound_hosts: c.allowed_outbound_hosts,
        key_value_stores: c.key_value_stores,
        sqlite_databases: c.sqlite_databases,
        build: c.build,
    })
}

fn convert_http_trigger(
    mut entry: toml::Table,
    components: &BTreeMap<String, Component>,
) -> Result<HttpTrigger> {
    let component = match entry.remove("component") {
        Some(toml::Value::String(id)) => id,
        Some(toml::Value::Table(_)) => {
            bail!("inline component tables are not supported; use `component = \"<id>\"`")
        }
        Some(other) => bail!("`component` must be a component id string, found {other}"),
        None if entry.contains_key("static_response") => {
            bail!("`static_response` triggers are not supported by berth")
        }
        None => bail!("missing `component`"),
    };
    if !components.contains_key(&component) {
        let known: Vec<&str> = components.keys().map(String::as_str).collect();
        bail!(
            "trigger refers to component {component:?}, which has no [component.{component}] \
             section (defined components: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let route = match entry.remove("route") {
        Some(toml::Value::String(r)) => Route::Path(r),
        Some(toml::Value::Table(t)) => match (t.get("private"), t.len()) {
            (Some(toml::Value::Boolean(true)), 1) => Route::Private,
            _ => bail!(
                "route must be a string pattern or '{{ private = true }}': '{component}' has {t}"
            ),
        },
        Some(other) => bail!("`route` must be a string or {{ private = true }}, found {other}"),
        None => bail!("missing `route` for component {component:?}"),
    };
    if let Some(executor) = entry.remove("executor") {
        let is_http = executor
            .as_table()
            .and_then(|t| t.get("type"))
            .and_then(toml::Value::as_str)
            == Some("http");
        if !is_http {
            bail!("only the default `http` executor is supported (component {component:?})");
        }
    }
    entry.remove("id");
    if let Some(key) = entry.keys().next() {
        bail!("unknown field `{key}` in [[trigger.http]] for component {component:?}");
    }
    Ok(HttpTrigger { route, component })
}

/// Spin only warns ("will never be used") about duplicate routes; berth refuses them because a
/// silently unreachable component is always a manifest mistake.
fn check_duplicate_routes(triggers: &[HttpTrigger]) -> Result<()> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for t in triggers {
        let Route::Path(route) = &t.route else {
            continue;
        };
        let key = crate::routes::normalize(route);
        if let Some(first) = seen.insert(key, &t.component) {
            bail!(
                "duplicate route {route:?}: both component {first:?} and component {:?} use it; \
                 the first would never be reached",
                t.component
            );
        }
    }
    Ok(())
}

/// Spin component ids are kebab-case (they also become `<id>.spin.internal` host names).
fn validate_component_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && !id.contains("--")
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "invalid component id {id:?}: ids must be kebab-case (lower-case letters, digits and \
             single hyphens, starting with a letter)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(extra: &str) -> String {
        format!(
            r#"spin_manifest_version = 2
[application]
name = "t"
[variables]
secret = {{ default = "s3cret", secret = true }}
[[trigger.http]]
route = "/a/..."
component = "a"
{extra}
[component.a]
source = "a.wasm"
[component.a.variables]
token = "x-{{{{ secret }}}}"
"#
        )
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text, Path::new("/nonexistent")).unwrap_err())
    }

    #[test]
    fn parses_valid_manifest() {
        let app = parse(&base(""), Path::new("/app")).unwrap();
        assert_eq!(app.name, "t");
        assert_eq!(app.triggers.len(), 1);
        assert_eq!(app.components["a"].source, Path::new("/app/a.wasm"));
        assert!(app.variables["secret"].secret);
    }

    #[test]
    fn invalid_toml_is_reported() {
        let e = err("spin_manifest_version = 2\n[application\nname = 1");
        assert!(e.contains("invalid TOML"), "{e}");
    }

    #[test]
    fn wrong_manifest_version_is_reported() {
        let e = err(&base("").replace("spin_manifest_version = 2", "spin_manifest_version = 3"));
        assert!(e.contains("spin_manifest_version must be 2"), "{e}");
        let e =
            err(&base("").replace("spin_manifest_version = 2", "spin_manifest_version = \"1\""));
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn unknown_component_in_trigger_is_reported() {
        let e = err(&base(
            "[[trigger.http]]\nroute = \"/b\"\ncomponent = \"nope\"\n",
        ));
        assert!(
            e.contains("\"nope\"") && e.contains("[component.nope]"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_route_is_reported() {
        let e = err(&base(
            "[[trigger.http]]\nroute = \"/a/...\"\ncomponent = \"a\"\n",
        ));
        assert!(e.contains("duplicate route \"/a/...\""), "{e}");
        // Trailing slashes do not make a route different (Spin strips one).
        let e = err(&base(
            "[[trigger.http]]\nroute = \"/x\"\ncomponent = \"a\"\n[[trigger.http]]\nroute = \"/x/\"\ncomponent = \"a\"\n",
        ));
        assert!(e.contains("duplicate route"), "{e}");
    }

    #[test]
    fn missing_source_is_reported_with_build_hint() {
        let app = parse(&base(""), Path::new("/nonexistent")).unwrap();
        let e = format!("{:#}", check_sources(&app).unwrap_err());
        assert!(
            e.contains("a.wasm") && e.contains("does not exist") && e.contains("berth build"),
            "{e}"
        );
    }

    #[test]
    fn template_with_unknown_variable_is_reported() {
        let e = err(&base("").replace("{{ secret }}", "{{ nope }}"));
        assert!(e.contains("nope") && e.contains("not defined"), "{e}");
    }

    #[test]
    fn private_route_and_bad_private() {
        let app = parse(
            &base("[[trigger.http]]\nroute = { private = true }\ncomponent = \"a\"\n"),
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(app.triggers[1].route, Route::Private);
        let e = err(&base(
            "[[trigger.http]]\nroute = { private = false }\ncomponent = \"a\"\n",
        ));
        assert!(e.contains("private = true"), "{e}");
    }

    #[test]
    fn variable_must_be_required_or_default() {
        let e = err(&base("").replace(
            "secret = { default = \"s3cret\", secret = true }",
            "secret = { secret = true }",
        ));
        assert!(e.contains("must be `required` OR have a `default`"), "{e}");
    }

    #[test]
    fn unknown_component_field_is_reported() {
        let e = err(&base("").replace("source = \"a.wasm\"", "source = \"a.wasm\"\nsqlite = []"));
        assert!(e.contains("unknown field `sqlite`"), "{e}");
    }
}

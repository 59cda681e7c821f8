//! Application variables, `{{ var }}` templates and `fermyon:spin/variables@2.0.0`, as Spin resolves them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};

use crate::bindings::fermyon::spin::variables as v2;
use crate::manifest::{App, Variable};

/// Spin's environment-variable provider prefix: `SPIN_VARIABLE_<UPPER_NAME>`.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// A parsed `{{ expr }}` template (spin-expressions' syntax: no escapes, `}}` closes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(expr_rest) = rest.strip_prefix("{{") {
                let Some((expr, after)) = expr_rest.split_once("}}") else {
                    return Err("unmatched '{{' in template".into());
                };
                let name = expr.trim();
                validate_name(name).map_err(|r| format!("invalid variable name {name:?}: {r}"))?;
                parts.push(Part::Var(name.to_string()));
                rest = after;
            } else {
                let end = rest.find("{{").unwrap_or(rest.len());
                parts.push(Part::Lit(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(Template { parts })
    }

    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// Names of the application variables the template uses.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }
}

/// Spin's variable-name rules (`spin_expressions::Key::validate`), reason text included.
pub fn validate_name(key: &str) -> Result<(), String> {
    if key.is_empty() {
        Err("must not be empty".to_string())
    } else if let Some(invalid) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        Err(format!(
            "invalid character {invalid:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ))
    } else if !key.as_bytes()[0].is_ascii_lowercase() {
        Err("must start with a lowercase ASCII letter".to_string())
    } else if !key.as_bytes()[key.len() - 1].is_ascii_alphanumeric() {
        Err("must end with a lowercase ASCII letter or digit".to_string())
    } else if key.contains("__") {
        Err("must not contain multiple consecutive underscores".to_string())
    } else {
        Ok(())
    }
}

/// Resolved application variables. Values of secret variables are never logged or displayed.
#[derive(Clone)]
pub struct AppVariables {
    values: BTreeMap<String, Option<String>>,
}

impl std::fmt::Debug for AppVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only names: values may be secrets.
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl AppVariables {
    /// Resolves each variable as Spin's default providers do: `SPIN_VARIABLE_<NAME>` from the
    /// process environment, then from `<app dir>/.env`, then the manifest default.
    /// A `required` variable with no value is a start-up error.
    pub fn resolve(
        vars: &BTreeMap<String, Variable>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AppVariables> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, var) in vars {
            let env_name = env_var_name(name);
            let value = env(&env_name).or_else(|| var.default.clone());
            if value.is_none() && var.required {
                missing.push(format!("{name} (set {env_name})"));
            }
            values.insert(name.clone(), value);
        }
        if !missing.is_empty() {
            bail!(
                "no provider resolved required variable(s): {}",
                missing.join(", ")
            );
        }
        Ok(AppVariables { values })
    }

    /// Resolves from the real environment plus the app's `.env` file.
    #[cfg(test)]
    pub fn from_environment(app: &App) -> Result<AppVariables> {
        AppVariables::from_environment_with(app, &BTreeMap::new())
    }

    /// [`from_environment`](Self::from_environment), with `fallbacks` (by variable name)
    /// used where neither the environment nor `.env` sets a variable, before its default.
    pub fn from_environment_with(
        app: &App,
        fallbacks: &BTreeMap<String, String>,
    ) -> Result<AppVariables> {
        AppVariables::resolve(&app.variables, environment_lookup(app, fallbacks))
    }

    /// One variable as [`from_environment_with`](Self::from_environment_with) resolves it,
    /// whether or not the others are set.
    pub fn lookup(app: &App, name: &str, fallbacks: &BTreeMap<String, String>) -> Option<String> {
        environment_lookup(app, fallbacks)(&env_var_name(name))
            .or_else(|| app.variables.get(name)?.default.clone())
    }

    /// Whether the environment or `.env` sets variable `name`.
    pub fn is_configured(app: &App, name: &str) -> bool {
        let env_name = env_var_name(name);
        std::env::var_os(&env_name).is_some()
            || read_dotenv(&app.dir.join(".env")).contains_key(&env_name)
    }

    pub fn get(&self, name: &str) -> Result<&str, ResolveError> {
        match self.values.get(name) {
            Some(Some(v)) => Ok(v),
            Some(None) => Err(ResolveError::Provider(format!(
                "no provider resolved required variable {name:?}"
            ))),
            None => Err(ResolveError::InvalidName(name.to_string())),
        }
    }

    pub fn render(&self, template: &Template) -> Result<String, ResolveError> {
        let mut out = String::new();
        for part in &template.parts {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Var(v) => out.push_str(self.get(v)?),
            }
        }
        Ok(out)
    }
}

/// Mirrors `spin_expressions::Error` (Display strings included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    InvalidName(String),
    Provider(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::InvalidName(n) => write!(f, "invalid variable name: {n}"),
            ResolveError::Provider(m) => write!(f, "provider error: {m}"),
        }
    }
}

/// `SPIN_VARIABLE_<NAME>` from the process environment, then `.env`, then `fallbacks`.
fn environment_lookup(
    app: &App,
    fallbacks: &BTreeMap<String, String>,
) -> impl Fn(&str) -> Option<String> {
    let dotenv = read_dotenv(&app.dir.join(".env"));
    let by_env_name: HashMap<String, String> = fallbacks
        .iter()
        .map(|(k, v)| (env_var_name(k), v.clone()))
        .collect();
    move |name| {
        std::env::var(name)
            .ok()
            .or_else(|| dotenv.get(name).cloned())
            .or_else(|| by_env_name.get(name).cloned())
    }
}

pub fn env_var_name(name: &str) -> String {
    format!("{ENV_PREFIX}{}", name.to_ascii_uppercase())
}

/// Minimal dotenv reader (`KEY=VALUE`, `#` comments, optional quotes), as Spin's env provider
/// also consults `.env` next to the manifest.
fn read_dotenv(path: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (k, v) = line.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// A component's variables, resolved once at start-up (the providers are static).
#[derive(Clone, Default)]
pub struct ComponentVariables {
    component_id: String,
    /// name -> resolved value, or the resolution error to report on `get`.
    values: HashMap<String, Result<String, ResolveError>>,
}

impl ComponentVariables {
    pub fn resolve(
        component_id: &str,
        templates: &BTreeMap<String, Template>,
        app_vars: &AppVariables,
    ) -> ComponentVariables {
        let values = templates
            .iter()
            .map(|(k, t)| (k.clone(), app_vars.render(t)))
            .collect();
        ComponentVariables {
            component_id: component_id.to_string(),
            values,
        }
    }

    /// `fermyon:spin/variables.get` semantics, error strings as Spin formats them.
    pub fn get(&self, key: &str) -> Result<String, v2::Error> {
        validate_name(key)
            .map_err(|reason| v2::Error::InvalidName(format!("{key:?}: {reason}")))?;
        match self.values.get(key) {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(ResolveError::InvalidName(n))) => Err(v2::Error::InvalidName(n.clone())),
            Some(Err(e @ ResolveError::Provider(_))) => Err(v2::Error::Provider(e.to_string())),
            None => Err(v2::Error::Undefined(format!(
                "no variable for {:?}.{key:?}",
                self.component_id
            ))),
        }
    }
}

/// Per-instance host state for the variables interface.
pub struct VariablesState {
    pub vars: Arc<ComponentVariables>,
}

impl v2::Host for VariablesState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v2::Error>> {
        Ok(self.vars.get(&name))
    }
}

/// App variables with these defaults, none required or secret (for tests).
#[cfg(test)]
pub fn with_defaults(pairs: &[(&str, &str)]) -> AppVariables {
    let vars: BTreeMap<String, Variable> = pairs
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Variable {
                    default: Some(v.to_string()),
                    required: false,
                    secret: false,
                },
            )
        })
        .collect();
    AppVariables::resolve(&vars, |_| None).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, Variable> {
        let mut m = BTreeMap::new();
        m.insert(
            "api_host".to_string(),
            Variable {
                default: Some("example.com".into()),
                required: false,
                secret: false,
            },
        );
        m.insert(
            "token".to_string(),
            Variable {
                default: None,
                required: true,
                secret: true,
            },
        );
        m
    }

    #[test]
    fn env_overrides_default_and_fills_required() {
        let env = |n: &str| match n {
            "SPIN_VARIABLE_API_HOST" => Some("override.dev".to_string()),
            "SPIN_VARIABLE_TOKEN" => Some("t0k".to_string()),
            _ => None,
        };
        let app = AppVariables::resolve(&vars(), env).unwrap();
        assert_eq!(app.get("api_host").unwrap(), "override.dev");
        assert_eq!(app.get("token").unwrap(), "t0k");
        let t = Template::parse("https://{{ api_host }}/x?t={{token}}").unwrap();
        assert_eq!(app.render(&t).unwrap(), "https://override.dev/x?t=t0k");
    }

    #[test]
    fn default_used_without_env() {
        let env = |n: &str| (n == "SPIN_VARIABLE_TOKEN").then(|| "x".to_string());
        let app = AppVariables::resolve(&vars(), env).unwrap();
        assert_eq!(app.get("api_host").unwrap(), "example.com");
    }

    #[test]
    fn required_missing_is_a_clear_error() {
        let e = AppVariables::resolve(&vars(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("required variable") && e.contains("token"),
            "{e}"
        );
        assert!(e.contains("SPIN_VARIABLE_TOKEN"), "{e}");
        // The Debug form never carries values.
        let app = AppVariables::resolve(&vars(), |_| Some("hunter2".into())).unwrap();
        assert!(!format!("{app:?}").contains("hunter2"));
    }

    #[test]
    fn component_get_semantics() {
        let app = AppVariables::resolve(&vars(), |_| Some("v".into())).unwrap();
        let mut t = BTreeMap::new();
        t.insert(
            "url".to_string(),
            Template::parse("a-{{ api_host }}").unwrap(),
        );
        let c = ComponentVariables::resolve("comp", &t, &app);
        assert_eq!(c.get("url").unwrap(), "a-v");
        assert!(
            matches!(c.get("nope"), Err(v2::Error::Undefined(m)) if m == "no variable for \"comp\".\"nope\"")
        );
        assert!(matches!(c.get("Bad"), Err(v2::Error::InvalidName(_))));
    }

    #[test]
    fn template_parsing() {
        assert!(Template::parse("plain").unwrap().is_literal());
        assert!(Template::parse("{{ unclosed").is_err());
        let t = Template::parse("{{a}}-{{ b_2 }}").unwrap();
        assert_eq!(t.references().collect::<Vec<_>>(), ["a", "b_2"]);
        assert!(validate_name("a__b").is_err());
        assert!(validate_name("1a").is_err());
        assert!(validate_name("a_").is_err());
    }
}

//! What a build request may ask for: its mode, the bases the caller may build on (pinned
//! to the digest berth knows), package names, and the Harbor path of the result.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::config::Context;
use crate::envelope::ApiError;
use crate::image_ref::ImageRef;
use crate::model::Image;
use crate::store::images;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dockerfile,
    Packages,
    Environment,
}

impl Mode {
    pub(super) fn parse(s: Option<&str>) -> Result<Mode, ApiError> {
        match s.unwrap_or("dockerfile") {
            "dockerfile" => Ok(Mode::Dockerfile),
            "packages" => Ok(Mode::Packages),
            "environment" => Ok(Mode::Environment),
            other => Err(ApiError::bad_param(
                "mode",
                format!("'{other}' is not dockerfile, packages or environment"),
            )),
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Mode::Dockerfile => "dockerfile",
            Mode::Packages => "packages",
            Mode::Environment => "environment",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Packages {
    #[serde(default)]
    pub(super) pip: Vec<String>,
    #[serde(default)]
    pub(super) apt: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BuildBody {
    pub(super) name: String,
    pub(super) base_image: Option<String>,
    pub(super) dockerfile: Option<String>,
    pub(super) description: Option<String>,
    pub(super) mode: Option<String>,
    pub(super) packages: Option<Packages>,
    pub(super) environment_id: Option<String>,
}

/// `[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?` with optional `[extras]` and a version specifier.
pub(super) fn valid_pip(spec: &str) -> bool {
    let end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .unwrap_or(spec.len());
    let (name, mut rest) = spec.split_at(end);
    let name_ok = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if let Some(extras) = rest.strip_prefix('[') {
        let Some(close) = extras.find(']') else {
            return false;
        };
        if !extras[..close].split(',').all(|e| {
            !e.trim().is_empty()
                && e.trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        }) {
            return false;
        }
        rest = &extras[close + 1..];
    }
    let spec_ok = rest.is_empty()
        || (rest.starts_with(['=', '<', '>', '!', '~'])
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "=<>!~.,*+-_ ".contains(c)));
    name_ok && spec_ok && spec.len() <= 200
}

/// Debian package names, optionally `=version`.
pub(super) fn valid_apt(spec: &str) -> bool {
    let (name, version) = spec.split_once('=').unwrap_or((spec, ""));
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    let version_ok = !spec.contains('=')
        || (!version.is_empty()
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+:~-".contains(c)));
    name_ok && version_ok && spec.len() <= 200
}

/// Generates the Dockerfile of a packages build. The runner may pass index mirrors as
/// build arguments (`APT_MIRROR`, `PIP_INDEX_URL`: GPU clusters often have no internet);
/// unset, the base image's own sources are used. `set -x` logs the commands as run.
pub(super) fn packages_dockerfile(base: &str, p: &Packages) -> String {
    let mut d = format!("FROM {base}\n");
    if !p.apt.is_empty() {
        d.push_str("ARG APT_MIRROR\n");
        d.push_str(&format!(
            "RUN set -x; if [ -n \"$APT_MIRROR\" ]; then for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do \
             [ -f \"$f\" ] && sed -i -E \"s#https?://[^ ]+#$APT_MIRROR#g\" \"$f\"; done; fi; \
             apt-get update && apt-get install -y --no-install-recommends {} && rm -rf /var/lib/apt/lists/*\n",
            p.apt.join(" ")
        ));
    }
    if !p.pip.is_empty() {
        d.push_str("ARG PIP_INDEX_URL\n");
        d.push_str(&format!(
            "RUN set -x; pip install --no-cache-dir {} ${{PIP_INDEX_URL:+--index-url \"$PIP_INDEX_URL\"}}\n",
            p.pip
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    d
}

/// A base image for `caller`: a ready catalog image they may use (by name or reference),
/// pinned to the digest berth knows, or a reference on an allowed registry.
pub(super) fn resolve_base(
    ctx: &Context<'_>,
    caller: &Caller,
    reference: &str,
    field: &str,
) -> Result<(String, Option<Image>), ApiError> {
    // The caller's own row first, then official and shared ones.
    let by_name = images::trusted_base_named(ctx.db, caller, reference)?;
    let parsed = ImageRef::parse(reference)
        .map_err(|e| ApiError::bad_param(field, format!("'{reference}': {e}")))?;
    let found = match by_name {
        Some(image) => Some(image),
        None => images::trusted_base_at(ctx.db, caller, &parsed)?,
    };
    if let Some(image) = found {
        if image.status != "ready" {
            return Err(ApiError::bad_param(
                field,
                format!("'{reference}' is {}, not ready", image.status),
            ));
        }
        // The caller's own rows point wherever they like: the allow-list applies to them.
        if image.owner.as_deref() == Some(caller.name.as_str())
            && !image.is_official
            && !base_registry_allowed(ctx, &image.registry)
        {
            return Err(ApiError::bad_param(
                field,
                format!(
                    "'{reference}' points at {}, which is not an allowed registry",
                    image.registry
                ),
            ));
        }
        // Pinned: a later change of the tag does not change what this build uses.
        let pinned = match &image.digest {
            Some(d) => format!("{}@{d}", image.registry_url()),
            None => image.registry_url(),
        };
        return Ok((pinned, Some(image)));
    }
    let allowed = ctx.settings.source_registries();
    if !allowed.contains(&parsed.registry) {
        return Err(ApiError::bad_param(
            field,
            format!(
                "'{reference}' is not a catalog image and {} is not an allowed registry",
                parsed.registry
            ),
        ));
    }
    Ok((parsed.tagged(), None))
}

/// Whether builds may pull from `registry`: an allowed import source or berth's Harbor.
fn base_registry_allowed(ctx: &Context<'_>, registry: &str) -> bool {
    let registry = registry.to_ascii_lowercase();
    ctx.settings.source_registries().contains(&registry)
        || ctx
            .settings
            .harbor()
            .is_ok_and(|h| h.registry_host == registry)
}

/// The Harbor path component of a user's builds, injective: a name that already is a plain
/// lowercase component is itself; any other (`Alice`, `bob smith`) is its readable form plus
/// `-x` and a hash of the exact name, so `Alice` and `alice` never share a path. A plain name
/// that looks like an escaped one is escaped too.
pub(super) fn namespace(owner: &str) -> String {
    let plain = readable_namespace(owner);
    let looks_escaped = owner.rsplit_once("-x").is_some_and(|(_, h)| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if plain == owner && !looks_escaped {
        return plain;
    }
    let hash: String = Sha256::digest(owner.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{plain}-x{hash}")
}

/// A lowercase path component for a user name (`Alice.Smith` → `alice-smith`).
fn readable_namespace(owner: &str) -> String {
    let mut out: String = owner
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() {
        "user".to_owned()
    } else {
        out
    }
}

pub(super) fn new_build_id(caller: &Caller, name: &str, body: &[u8]) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = Sha256::new()
        .chain_update(caller.name.as_bytes())
        .chain_update(name.as_bytes())
        .chain_update(nanos.to_le_bytes())
        .chain_update(body)
        .finalize();
    let hex: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("build-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile;

    #[test]
    fn pip_and_apt_names() {
        for ok in [
            "transformers",
            "peft==0.10.0",
            "torch>=2.0,<3",
            "uvicorn[standard]",
            "a",
            "jax[cuda12]~=0.4",
            "Flask_Login",
        ] {
            assert!(valid_pip(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "x-",
            "x; rm -rf /",
            "x==1 && curl",
            "$(id)",
            "x[",
            "x y",
        ] {
            assert!(!valid_pip(bad), "{bad}");
        }
        for ok in [
            "git",
            "libgl1",
            "g++",
            "python3.10-dev",
            "curl=7.68.0-1ubuntu2",
        ] {
            assert!(valid_apt(ok), "{ok}");
        }
        for bad in ["", "G", "Git", "git;ls", "x=", "a b", "-rf"] {
            assert!(!valid_apt(bad), "{bad}");
        }
    }

    #[test]
    fn generated_dockerfile() {
        let d = packages_dockerfile(
            "h.io/library/base:1",
            &Packages {
                pip: vec!["peft==0.10.0".into()],
                apt: vec!["git".into()],
            },
        );
        assert_eq!(
            d,
            "FROM h.io/library/base:1\nARG APT_MIRROR\nRUN set -x; if [ -n \"$APT_MIRROR\" ]; then for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do \
             [ -f \"$f\" ] && sed -i -E \"s#https?://[^ ]+#$APT_MIRROR#g\" \"$f\"; done; fi; apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*\n\
             ARG PIP_INDEX_URL\nRUN set -x; pip install --no-cache-dir 'peft==0.10.0' ${PIP_INDEX_URL:+--index-url \"$PIP_INDEX_URL\"}\n"
        );
        let parsed = dockerfile::bases(&dockerfile::parse(&d).unwrap()).unwrap();
        assert_eq!(parsed[0].image, "h.io/library/base:1");
    }

    #[test]
    fn namespaces_are_path_components() {
        assert_eq!(readable_namespace("Alice.Smith"), "alice-smith");
        assert_eq!(namespace("bob"), "bob");
        assert_eq!(namespace("alice-smith"), "alice-smith");
        assert!(namespace("__").starts_with("user-x"));
        // Injective: case and escapes never collide.
        let alice = namespace("Alice");
        assert!(alice.starts_with("alice-x"), "{alice}");
        assert_ne!(alice, namespace("alice"));
        assert_ne!(namespace(&alice), alice);
        assert_ne!(namespace("Alice.Smith"), namespace("alice-smith"));
    }
}

//! Import sources: which Harbor registry endpoint an image's host maps to (CONTRACT §2.1,
//! §8 step 2), and URL comparison the way Harbor normalizes URLs (§2.3).

use std::fmt;

use serde_json::{Value, json};

use super::types::Registry;
use crate::image_ref::{DOCKER_HUB, ImageRef};

pub const DOCKER_HUB_KIND: &str = "docker-hub";
pub const DOCKER_REGISTRY_KIND: &str = "docker-registry";
/// Harbor's fixed endpoint for the `docker-hub` adapter.
pub const DOCKER_HUB_URL: &str = "https://hub.docker.com";
/// The registry name berth gives Docker Hub (the CONTRACT's example name).
pub const DOCKER_HUB_NAME: &str = "dockerhub";
/// Harbor rejects longer registry names with 400.
const MAX_REGISTRY_NAME: usize = 64;

/// A registry endpoint Harbor pulls from.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceRegistry {
    /// Harbor adapter type: `docker-hub`, `docker-registry`, `quay`, `github-ghcr`, …
    pub kind: String,
    /// Endpoint URL, e.g. `https://hub.docker.com`, `https://nvcr.io`.
    pub url: String,
    /// Harbor registry name (unique, at most 64 characters).
    pub name: String,
    /// `(access_key, access_secret)` for basic auth, or anonymous.
    pub credential: Option<(String, String)>,
}

impl fmt::Debug for SourceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceRegistry")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("name", &self.name)
            .field(
                "credential",
                &self.credential.as_ref().map(|(key, _)| (key, "*****")),
            )
            .finish()
    }
}

fn is_docker_hub(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host.is_empty()
        || host == DOCKER_HUB
        || host == "index.docker.io"
        || host == "registry-1.docker.io"
}

impl SourceRegistry {
    /// CONTRACT §8 step 2: `docker.io`, `index.docker.io` or no host → `docker-hub` at
    /// `https://hub.docker.com`; any other host → `docker-registry` at `https://<host>`.
    /// Anonymous; add a credential with [`with_credential`](Self::with_credential).
    pub fn for_host(host: &str) -> SourceRegistry {
        let host = host.trim().trim_end_matches('/');
        if is_docker_hub(host) {
            return SourceRegistry {
                kind: DOCKER_HUB_KIND.to_owned(),
                url: DOCKER_HUB_URL.to_owned(),
                name: DOCKER_HUB_NAME.to_owned(),
                credential: None,
            };
        }
        let host = host.to_ascii_lowercase();
        SourceRegistry {
            kind: DOCKER_REGISTRY_KIND.to_owned(),
            url: format!("https://{host}"),
            name: host.chars().take(MAX_REGISTRY_NAME).collect(),
            credential: None,
        }
    }

    /// [`for_host`](Self::for_host) of the image's registry.
    pub fn for_image(image: &ImageRef) -> SourceRegistry {
        SourceRegistry::for_host(&image.registry)
    }

    pub fn with_credential(
        mut self,
        access_key: impl Into<String>,
        access_secret: impl Into<String>,
    ) -> SourceRegistry {
        self.credential = Some((access_key.into(), access_secret.into()));
        self
    }

    /// Same adapter type and same normalized URL.
    pub fn matches(&self, registry: &Registry) -> bool {
        registry.kind == self.kind && normalize_url(&registry.url) == normalize_url(&self.url)
    }

    /// Whether the registry's credential has this source's access key (anonymous matches
    /// anonymous). Secrets come back masked, so they cannot be compared.
    pub fn same_access_key(&self, registry: &Registry) -> bool {
        let mine = self.credential.as_ref().map_or("", |(k, _)| k.as_str());
        registry.credential.access_key == mine
    }

    /// `POST /registries` body (CONTRACT §2.3).
    pub(crate) fn create_body(&self) -> Value {
        let mut body = json!({
            "name": self.name,
            "type": self.kind,
            "url": self.url,
            "insecure": false,
            "description": "Import source managed by berth",
        });
        if let Some((key, secret)) = &self.credential {
            body["credential"] = json!({
                "type": "basic",
                "access_key": key,
                "access_secret": secret,
            });
        }
        body
    }
}

/// Harbor's URL normalization (CONTRACT §2.3), plus case-folding of scheme and host for
/// comparison: trimmed, trailing `/` removed, `http://` when there is no scheme, reduced
/// to `scheme://host/path`.
pub fn normalize_url(raw: &str) -> String {
    let raw = raw.trim().trim_end_matches('/');
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_owned(), raw),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!(
        "{scheme}://{}{}",
        host.to_ascii_lowercase(),
        path.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hosts_per_contract_section_8() {
        for host in [
            "docker.io",
            "index.docker.io",
            "",
            "Docker.IO",
            "registry-1.docker.io",
        ] {
            let s = SourceRegistry::for_host(host);
            assert_eq!(
                (s.kind.as_str(), s.url.as_str(), s.name.as_str()),
                ("docker-hub", "https://hub.docker.com", "dockerhub"),
                "{host}"
            );
        }
        let s = SourceRegistry::for_host("nvcr.io");
        assert_eq!(
            (s.kind.as_str(), s.url.as_str(), s.name.as_str()),
            ("docker-registry", "https://nvcr.io", "nvcr.io")
        );
        let s = SourceRegistry::for_host("localhost:5000");
        assert_eq!(s.url, "https://localhost:5000");
        let long = format!("{}.example.com", "a".repeat(80));
        assert_eq!(SourceRegistry::for_host(&long).name.len(), 64);
    }

    #[test]
    fn maps_parsed_references() {
        let image = ImageRef::parse("nginx:1.25").unwrap();
        assert_eq!(SourceRegistry::for_image(&image).kind, "docker-hub");
        let image = ImageRef::parse("nvcr.io/nvidia/pytorch:24.01-py3").unwrap();
        assert_eq!(SourceRegistry::for_image(&image).url, "https://nvcr.io");
    }

    #[test]
    fn normalizes_urls_like_harbor() {
        assert_eq!(normalize_url(" https://nvcr.io/ "), "https://nvcr.io");
        assert_eq!(normalize_url("nvcr.io"), "http://nvcr.io");
        assert_eq!(
            normalize_url("HTTPS://Hub.Docker.com"),
            "https://hub.docker.com"
        );
        assert_eq!(
            normalize_url("https://u@r.example.com:8443/v2/?x=1"),
            "https://r.example.com:8443/v2"
        );
    }

    #[test]
    fn matches_type_and_url() {
        let s = SourceRegistry::for_host("nvcr.io");
        let mut r = Registry {
            id: 4,
            kind: "docker-registry".into(),
            url: "https://nvcr.io/".into(),
            ..Registry::default()
        };
        assert!(s.matches(&r));
        r.kind = "harbor".into();
        assert!(!s.matches(&r));
        r.kind = "docker-registry".into();
        r.url = "http://nvcr.io".into();
        assert!(!s.matches(&r));
    }

    #[test]
    fn never_shows_the_secret() {
        let s = SourceRegistry::for_host("nvcr.io").with_credential("$oauthtoken", "nvapi-SECRET");
        let shown = format!("{s:?}");
        assert!(shown.contains("$oauthtoken"));
        assert!(!shown.contains("nvapi-SECRET"));
        let body = s.create_body();
        assert_eq!(body["credential"]["access_secret"], "nvapi-SECRET");
        assert!(
            SourceRegistry::for_host("docker.io")
                .create_body()
                .get("credential")
                .is_none()
        );
    }
}

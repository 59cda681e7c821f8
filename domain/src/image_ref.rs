//! Image references (`registry/repository:tag@digest`), parsed by the grammar of the
//! distribution project's `reference` package, and normalized the way Docker does.
//!
//! A small hand-written parser: the regex-based crates cost hundreds of KiB in a component.

use std::fmt;

pub const DOCKER_HUB: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (with port), e.g. `docker.io`, `nvcr.io`, `localhost:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/nginx`, `nvidia/pytorch`.
    pub repository: String,
    /// Tag; `latest` when the reference names neither tag nor digest.
    pub tag: String,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("the reference is empty")]
    Empty,
    #[error("the reference contains whitespace or control characters")]
    Whitespace,
    #[error("registry host '{0}' is not a valid host[:port]")]
    Registry(String),
    #[error(
        "repository path component '{0}' is invalid: use lowercase letters, digits and separators (. _ __ -), not at either end"
    )]
    PathComponent(String),
    #[error("the repository name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error("tag '{0}' is invalid: up to 128 of letters, digits, _ . -, not starting with . or -")]
    Tag(String),
    #[error(
        "digest '{0}' is invalid: expected algorithm:hex, e.g. sha256 followed by 64 lowercase hex digits"
    )]
    Digest(String),
}

impl ImageRef {
    /// Parses and normalizes: no registry means Docker Hub, `index.docker.io` is Docker Hub,
    /// a one-component Docker Hub name gets `library/`, no tag or digest means `latest`.
    pub fn parse(s: &str) -> Result<ImageRef, RefError> {
        if s.is_empty() {
            return Err(RefError::Empty);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RefError::Whitespace);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(parse_digest(d)?)),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                if !valid_tag(tag) {
                    return Err(RefError::Tag(tag.to_owned()));
                }
                (&rest[..last_slash + i], Some(tag))
            }
            None => (rest, None),
        };
        let (registry, path) = split_registry(name);
        let registry = match registry {
            Some(r) if r == "index.docker.io" || r == "registry-1.docker.io" => {
                DOCKER_HUB.to_owned()
            }
            Some(r) => {
                if !valid_host(r) {
                    return Err(RefError::Registry(r.to_owned()));
                }
                r.to_owned()
            }
            None => DOCKER_HUB.to_owned(),
        };
        if path.is_empty() {
            return Err(RefError::PathComponent(String::new()));
        }
        for component in path.split('/') {
            if !valid_path_component(component) {
                return Err(RefError::PathComponent(component.to_owned()));
            }
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(RefError::NameTooLong);
        }
        let tag = tag.unwrap_or("latest").to_owned();
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The last path component: `pytorch` for `nvidia/pytorch`.
    pub fn short_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    /// `registry/repository:tag`, without the digest.
    pub fn tagged(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.tagged())?;
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether reference text names a tag itself (`httpd:2.4@sha256:…`, not `httpd@sha256:…`,
/// which [`ImageRef::parse`] reads as `latest`).
pub fn names_tag(s: &str) -> bool {
    let name = s.split('@').next().unwrap_or_default();
    name[name.rfind('/').map_or(0, |i| i + 1)..].contains(':')
}

/// Splits off the registry: the first component is a host when it has a `.` or a `:`, or is
/// `localhost` (Docker's rule).
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(']') || host.starts_with('[') => (n, Some(p)),
        _ => (host, None),
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// `algorithm:hex`; sha256 needs 64 and sha512 128 lowercase hex digits.
pub fn parse_digest(d: &str) -> Result<String, RefError> {
    let bad = || RefError::Digest(d.to_owned());
    let (alg, hex) = d.split_once(':').ok_or_else(bad)?;
    let alg_ok = !alg.is_empty()
        && alg
            .split(['+', '.', '_', '-'])
            .all(|p| !p.is_empty() && p.bytes().all(is_alnum));
    let hex_ok = hex.len() >= 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let len_ok = match alg {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        _ => true,
    };
    if alg_ok && hex_ok && len_ok {
        Ok(d.to_owned())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const SHA: &str = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";

    #[test]
    fn normalizes_docker_hub_names() {
        assert_eq!(
            p("nginx"),
            ImageRef {
                registry: "docker.io".into(),
                repository: "library/nginx".into(),
                tag: "latest".into(),
                digest: None
            }
        );
        assert_eq!(p("nginx:1.25").tagged(), "docker.io/library/nginx:1.25");
        assert_eq!(
            p("docker.io/pytorch/pytorch:2.0.0-cuda11.7-cudnn8-runtime").tagged(),
            "docker.io/pytorch/pytorch:2.0.0-cuda11.7-cudnn8-runtime"
        );
        assert_eq!(
            p("index.docker.io/library/ubuntu:22.04").registry,
            "docker.io"
        );
        assert_eq!(p("docker.io/ubuntu").repository, "library/ubuntu");
    }

    #[test]
    fn keeps_other_registries_as_given() {
        let r = p("nvcr.io/nvidia/pytorch:24.01-py3");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("nvcr.io", "nvidia/pytorch", "24.01-py3")
        );
        assert_eq!(r.short_name(), "pytorch");
        let r = p("localhost:5000/team/app:v1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "team/app")
        );
        assert_eq!(
            p("harbor.remotegpu.com/library/ubuntu20-pytorch:2.0").repository,
            "library/ubuntu20-pytorch"
        );
        assert_eq!(
            p("registry/image:tag").tagged(),
            "docker.io/registry/image:tag",
            "no dot: a Docker Hub namespace"
        );
        assert_eq!(p("[::1]:5000/a/b:c").registry, "[::1]:5000");
        assert_eq!(p("ghcr.io/a/b/c/d").repository, "a/b/c/d");
    }

    #[test]
    fn digests() {
        let r = p(&format!("nginx:1.25@{SHA}"));
        assert_eq!(r.digest.as_deref(), Some(SHA));
        assert_eq!(r.tag, "1.25");
        assert_eq!(r.to_string(), format!("docker.io/library/nginx:1.25@{SHA}"));
        assert_eq!(p(&format!("nginx@{SHA}")).tag, "latest");
        assert!(matches!(
            ImageRef::parse("nginx@sha256:abc"),
            Err(RefError::Digest(_))
        ));
        assert!(matches!(
            ImageRef::parse(&format!("nginx@{}", SHA.to_uppercase())),
            Err(RefError::Digest(_))
        ));
    }

    #[test]
    fn rejects_bad_references() {
        for (s, want) in [
            ("", "empty"),
            ("nginx latest", "whitespace"),
            ("Nginx", "repository path"),
            ("library/-nginx", "repository path"),
            ("library//nginx", "repository path"),
            ("library/nginx-", "repository path"),
            ("a___b", "repository path"),
            ("nginx:", "tag"),
            ("nginx:.hidden", "tag"),
            ("nginx:-x", "tag"),
            ("nginx:a/b", "registry"),
            ("bad_host.com:99999999/a", "registry"),
            ("-bad.com/a", "registry"),
            ("example.com/", "repository path"),
            ("nginx;rm -rf", "whitespace"),
            ("nginx:$(id)", "tag"),
        ] {
            let e = ImageRef::parse(s).expect_err(s).to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
        let long = format!("example.com/{}", "a".repeat(250));
        assert_eq!(ImageRef::parse(&long), Err(RefError::NameTooLong));
        assert!(ImageRef::parse(&format!("nginx:{}", "t".repeat(129))).is_err());
        assert!(ImageRef::parse(&format!("nginx:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn path_components_follow_the_grammar() {
        for ok in ["a", "a.b", "a_b", "a__b", "a-b", "a---b", "a0.b1-c2__d3"] {
            assert!(valid_path_component(ok), "{ok}");
        }
        for bad in ["", "A", "a..b", "a._b", "_a", "a_", "a___b", "a/b", "ä"] {
            assert!(!valid_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn round_trips_its_own_output() {
        for s in [
            "nginx",
            "nvcr.io/nvidia/pytorch:24.01-py3",
            "localhost:5000/x/y:z",
            "quay.io/a/b@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa",
        ] {
            let once = p(s);
            assert_eq!(p(&once.to_string()), once, "{s}");
        }
    }
}

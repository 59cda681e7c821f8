//! Synthetic upstream content: real manifest / index JSON documents, derived
//! deterministically from the source reference, whose sha256 are the digests.

use serde_json::{Value, json};

use crate::UpstreamImage;
use crate::util::{seed_u64, sha256_digest};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// A manifest (or index) as it lands in Harbor.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub digest: String,
    pub manifest_media_type: String,
    /// Config media type for a manifest; the manifest media type for an index.
    pub media_type: String,
    /// Config media type for a manifest; empty for an index.
    pub artifact_type: String,
    pub size: i64,
    pub extra_attrs: Option<Value>,
    pub annotations: Option<Value>,
    pub children: Vec<Child>,
    /// (digest, size) of every blob, the manifest itself included.
    pub blobs: Vec<(String, i64)>,
}

#[derive(Clone, Debug)]
pub struct Child {
    pub manifest: Manifest,
    pub platform: Value,
    pub annotations: Option<Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Platform {
        let mut parts = s.split('/');
        let os = parts.next().unwrap_or("linux").to_string();
        let arch = parts.next().unwrap_or("amd64").to_string();
        let variant = parts.next().map(str::to_string);
        Platform { os, arch, variant }
    }
    fn to_value(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("architecture".into(), Value::String(self.arch.clone()));
        m.insert("os".into(), Value::String(self.os.clone()));
        if let Some(v) = &self.variant {
            m.insert("variant".into(), Value::String(v.clone()));
        }
        Value::Object(m)
    }
    fn label(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.arch, v),
            None => format!("{}/{}", self.os, self.arch),
        }
    }
}

/// What the source registry holds for `repo:tag`.
pub fn generate(
    registry_type: &str,
    registry_host: &str,
    repo: &str,
    tag: &str,
    def: Option<&UpstreamImage>,
) -> Manifest {
    let docker_hub = registry_type == "docker-hub";
    let platforms: Vec<String> = match def {
        Some(d) if !d.platforms.is_empty() => d.platforms.clone(),
        _ if docker_hub && repo.starts_with("library/") => {
            vec!["linux/amd64".into(), "linux/arm64/v8".into()]
        }
        _ => vec!["linux/amd64".into()],
    };
    let platforms: Vec<Platform> = platforms.iter().map(|p| Platform::parse(p)).collect();
    let size = def.and_then(|d| d.size);
    let revision = def.map(|d| d.revision).unwrap_or(0);
    let oci = docker_hub;
    let seed = format!(
        "{registry_host}/{repo}:{tag}#{revision}|{}|{}",
        platforms
            .iter()
            .map(Platform::label)
            .collect::<Vec<_>>()
            .join(","),
        size.map(|s| s.to_string()).unwrap_or_default()
    );
    if platforms.len() == 1 {
        return single(&seed, repo, &platforms[0], size, oci);
    }
    let attestation = def.and_then(|d| d.attestation).unwrap_or(docker_hub);
    let mut children: Vec<Child> = platforms
        .iter()
        .map(|p| Child {
            manifest: single(&seed, repo, p, size, oci),
            platform: p.to_value(),
            annotations: None,
        })
        .collect();
    if attestation {
        let subject = children[0].manifest.digest.clone();
        children.push(Child {
            manifest: attestation_manifest(&seed),
            platform: json!({"architecture": "unknown", "os": "unknown"}),
            annotations: Some(json!({
                "vnd.docker.reference.digest": subject,
                "vnd.docker.reference.type": "attestation-manifest"
            })),
        });
    }
    index(children, oci)
}

/// The image a build-runner job pushes: a single-arch `linux/amd64` Docker
/// schema-2 manifest of exactly `size` bytes, derived from `build_id` alone.
pub fn built_image(build_id: &str, repo: &str, size: u64) -> Manifest {
    let seed = format!("runner-build/{build_id}");
    single(
        &seed,
        repo,
        &Platform::parse("linux/amd64"),
        Some(size),
        false,
    )
}

fn index(children: Vec<Child>, oci: bool) -> Manifest {
    let media = if oci { OCI_INDEX } else { DOCKER_LIST };
    let entries: Vec<String> = children
        .iter()
        .map(|c| {
            let mut s = format!(
                "{{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":{}",
                c.manifest.manifest_media_type,
                c.manifest.digest,
                manifest_len(&c.manifest)
            );
            if let Some(a) = &c.annotations {
                s.push_str(&format!(",\"annotations\":{a}"));
            }
            s.push_str(&format!(",\"platform\":{}}}", c.platform));
            s
        })
        .collect();
    let doc = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{media}\",\"manifests\":[{}]}}",
        entries.join(",")
    );
    let digest = sha256_digest(doc.as_bytes());
    let len = doc.len() as i64;
    let size = len + children.iter().map(|c| c.manifest.size).sum::<i64>();
    Manifest {
        digest: digest.clone(),
        manifest_media_type: media.into(),
        media_type: media.into(),
        artifact_type: String::new(),
        size,
        extra_attrs: None,
        annotations: None,
        children,
        blobs: vec![(digest, len)],
    }
}

fn manifest_len(m: &Manifest) -> i64 {
    m.blobs.first().map(|b| b.1).unwrap_or(0)
}

pub(crate) fn layer_doc(
    media: &str,
    config_media: &str,
    config: &(String, i64),
    layers: &[(String, i64)],
    layer_media: &str,
) -> String {
    let ls: Vec<String> = layers
        .iter()
        .map(|(d, s)| {
            format!("{{\"mediaType\":\"{layer_media}\",\"digest\":\"{d}\",\"size\":{s}}}")
        })
        .collect();
    format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{media}\",\"config\":{{\"mediaType\":\"{config_media}\",\"digest\":\"{}\",\"size\":{}}},\"layers\":[{}]}}",
        config.0,
        config.1,
        ls.join(",")
    )
}

fn single(seed: &str, repo: &str, p: &Platform, target: Option<u64>, oci: bool) -> Manifest {
    let pseed = format!("{seed}|{}", p.label());
    let h = seed_u64(&pseed);
    let (media, config_media, layer_media) = if oci {
        (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
    } else {
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
    };
    let config_size = 1200 + (h % 6000) as i64;
    let config = (
        sha256_digest(format!("config|{pseed}").as_bytes()),
        config_size,
    );
    let n_layers = 2 + ((h >> 12) % 4) as usize;
    let total = target
        .map(|t| t as i64)
        .unwrap_or(8_000_000 + ((h >> 20) % 140_000_000) as i64);
    let weights: Vec<i64> = (0..n_layers)
        .map(|i| 1 + (seed_u64(&format!("w{i}|{pseed}")) % 9) as i64)
        .collect();
    let wsum: i64 = weights.iter().sum();
    let layer_digests: Vec<String> = (0..n_layers)
        .map(|i| sha256_digest(format!("layer{i}|{pseed}").as_bytes()))
        .collect();
    let mut mlen = 0i64;
    let mut doc = String::new();
    let mut layers = Vec::new();
    for _ in 0..8 {
        let remaining = (total - config_size - mlen).max(n_layers as i64);
        let mut sizes: Vec<i64> = weights.iter().map(|w| remaining * w / wsum).collect();
        let assigned: i64 = sizes[..n_layers - 1].iter().sum();
        sizes[n_layers - 1] = (remaining - assigned).max(1);
        for s in sizes.iter_mut() {
            *s = (*s).max(1);
        }
        layers = layer_digests.iter().cloned().zip(sizes).collect::<Vec<_>>();
        doc = layer_doc(media, config_media, &config, &layers, layer_media);
        let new_len = doc.len() as i64;
        if new_len == mlen {
            break;
        }
        mlen = new_len;
    }
    let mlen = doc.len() as i64;
    let digest = sha256_digest(doc.as_bytes());
    let size = mlen + config_size + layers.iter().map(|l| l.1).sum::<i64>();
    let days = (h >> 40) % 600;
    let secs = (h >> 8) % 86_400;
    let created =
        chrono::DateTime::from_timestamp(1_704_067_200 + (days * 86_400 + secs) as i64, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
    let name = repo.rsplit('/').next().unwrap_or(repo);
    let extra = json!({
        "architecture": p.arch,
        "os": p.os,
        "created": created,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.opencontainers.image.title": name}
        }
    });
    let mut blobs = vec![(digest.clone(), mlen), config];
    blobs.extend(layers);
    Manifest {
        digest,
        manifest_media_type: media.into(),
        media_type: config_media.into(),
        artifact_type: config_media.into(),
        size,
        extra_attrs: Some(extra),
        annotations: None,
        children: Vec::new(),
        blobs,
    }
}

fn attestation_manifest(seed: &str) -> Manifest {
    let aseed = format!("{seed}|attestation");
    let h = seed_u64(&aseed);
    let config = (sha256_digest(format!("config|{aseed}").as_bytes()), 167);
    let layers = vec![
        (
            sha256_digest(format!("sbom|{aseed}").as_bytes()),
            20_000 + (h % 60_000) as i64,
        ),
        (
            sha256_digest(format!("provenance|{aseed}").as_bytes()),
            1_000 + ((h >> 16) % 9_000) as i64,
        ),
    ];
    let doc = layer_doc(OCI_MANIFEST, OCI_CONFIG, &config, &layers, IN_TOTO);
    let mlen = doc.len() as i64;
    let digest = sha256_digest(doc.as_bytes());
    let size = mlen + config.1 + layers.iter().map(|l| l.1).sum::<i64>();
    let mut blobs = vec![(digest.clone(), mlen), config];
    blobs.extend(layers);
    Manifest {
        digest,
        manifest_media_type: OCI_MANIFEST.into(),
        media_type: OCI_CONFIG.into(),
        artifact_type: OCI_CONFIG.into(),
        size,
        extra_attrs: Some(json!({"architecture": "unknown", "os": "unknown", "config": {}})),
        annotations: None,
        children: Vec::new(),
        blobs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_size_and_determinism() {
        let def = UpstreamImage {
            repository: "nvidia/pytorch".into(),
            tag: "24.01".into(),
            size: Some(123_456_789),
            ..Default::default()
        };
        let a = generate(
            "docker-registry",
            "nvcr.io",
            "nvidia/pytorch",
            "24.01",
            Some(&def),
        );
        let b = generate(
            "docker-registry",
            "nvcr.io",
            "nvidia/pytorch",
            "24.01",
            Some(&def),
        );
        assert_eq!(a.size, 123_456_789);
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.manifest_media_type, DOCKER_MANIFEST);
        assert!(a.digest.starts_with("sha256:") && a.digest.len() == 71);
    }

    #[test]
    fn built_images_follow_the_build_id() {
        let a = built_image("build-1", "users/alice/img", 1 << 30);
        let b = built_image("build-1", "users/bob/other", 1 << 30);
        let c = built_image("build-2", "users/alice/img", 1 << 30);
        assert_eq!(a.size, 1 << 30);
        assert_eq!(a.manifest_media_type, DOCKER_MANIFEST);
        assert!(a.children.is_empty());
        assert_eq!(a.extra_attrs.as_ref().unwrap()["architecture"], "amd64");
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
    }

    #[test]
    fn library_is_multi_arch() {
        let m = generate(
            "docker-hub",
            "hub.docker.com",
            "library/nginx",
            "1.25",
            None,
        );
        assert_eq!(m.manifest_media_type, OCI_INDEX);
        assert_eq!(m.children.len(), 3);
        let sum: i64 = m.children.iter().map(|c| c.manifest.size).sum();
        assert_eq!(m.size, sum + m.blobs[0].1);
        assert_eq!(m.children[1].platform["variant"], "v8");
        assert_eq!(m.children[2].platform["os"], "unknown");
        let other = generate(
            "docker-hub",
            "hub.docker.com",
            "library/nginx",
            "1.26",
            None,
        );
        assert_ne!(m.digest, other.digest);
    }
}

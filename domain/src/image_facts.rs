//! What an image's own config says about it: framework and version, CUDA, cuDNN, Python,
//! and the oldest NVIDIA driver its CUDA runs on. Pure functions over the config's
//! environment and labels (as Harbor reads them into the artifact's `extra_attrs`), with the
//! tag as a fallback; no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Facts berth derived from an image. Kept apart from the image's columns, which an admin
/// may have set: a re-import replaces a column only while it still holds what was derived.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DerivedFacts {
    pub framework: Option<String>,
    pub framework_version: Option<String>,
    pub cuda_version: Option<String>,
    pub cudnn_version: Option<String>,
    pub python_version: Option<String>,
}

impl DerivedFacts {
    /// Fills what `self` lacks from `other` (a second platform of the same image).
    pub fn or(self, other: DerivedFacts) -> DerivedFacts {
        DerivedFacts {
            framework: self.framework.or(other.framework),
            framework_version: self.framework_version.or(other.framework_version),
            cuda_version: self.cuda_version.or(other.cuda_version),
            cudnn_version: self.cudnn_version.or(other.cudnn_version),
            python_version: self.python_version.or(other.python_version),
        }
    }
}

/// The families berth knows, by source repository (registry host included for NGC).
fn family(registry: &str, repository: &str) -> Option<&'static str> {
    let repo = repository.to_ascii_lowercase();
    let nvcr = registry.eq_ignore_ascii_case("nvcr.io");
    let last = repo.rsplit('/').next().unwrap_or(&repo);
    Some(match repo.as_str() {
        "pytorch/pytorch" => "pytorch",
        "nvidia/pytorch" if nvcr => "pytorch",
        "nvidia/tensorflow" if nvcr => "tensorflow",
        "nvidia/tritonserver" if nvcr => "tritonserver",
        "nvidia/cuda" => "cuda",
        "tensorflow/tensorflow" => "tensorflow",
        "vllm/vllm-openai" => "vllm",
        _ if (repo.starts_with("jupyter/") || repo.starts_with("jupyterhub/"))
            && last.ends_with("-notebook") =>
        {
            match last {
                "pytorch-notebook" => "pytorch",
                "tensorflow-notebook" => "tensorflow",
                _ => "jupyter",
            }
        }
        _ => return None,
    })
}

/// Derives the facts of one platform's image config. `env` is the config's `Env`
/// (`KEY=value` strings), `labels` its `Labels`.
pub fn derive(
    registry: &str,
    repository: &str,
    tag: &str,
    env: &[String],
    labels: &BTreeMap<String, String>,
) -> DerivedFacts {
    let vars: BTreeMap<&str, &str> = env.iter().filter_map(|e| e.split_once('=')).collect();
    let var = |k: &str| {
        vars.get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let tag_lower = tag.to_ascii_lowercase();
    let family = family(registry, repository);

    let framework = family.filter(|f| *f != "cuda").map(str::to_owned);
    let framework_version = match family {
        Some("pytorch") => var("PYTORCH_VERSION")
            .or_else(|| after_marker(&tag_lower, "pytorch-"))
            .or_else(|| leading_version(&tag_lower).filter(|_| !ngc(registry))),
        Some("tensorflow") => var("TENSORFLOW_VERSION")
            .or_else(|| var("TF_VERSION"))
            .or_else(|| after_marker(&tag_lower, "tensorflow-"))
            .or_else(|| leading_version(&tag_lower).filter(|_| !ngc(registry))),
        Some("tritonserver") => var("TRITON_SERVER_VERSION"),
        Some("vllm") => var("VLLM_VERSION").or_else(|| leading_version(&tag_lower)),
        Some("jupyter") => labels
            .get("org.jupyter.notebook.version")
            .map(|v| v.trim().to_owned()),
        _ => None,
    };

    let cuda_version = var("CUDA_VERSION")
        .and_then(|v| cuda_major_minor_patch(&v))
        .or_else(|| var("NVIDIA_REQUIRE_CUDA").and_then(|r| after_marker(&r, "cuda>=")))
        .or_else(|| after_marker(&tag_lower, "cuda"))
        .or_else(|| cu_tag(&tag_lower))
        .or_else(|| tensorflow_tested_build(family, framework_version.as_deref()).map(|b| b.0));
    let cudnn_version = var("NV_CUDNN_VERSION")
        .or_else(|| var("CUDNN_VERSION"))
        .or_else(|| after_marker(&tag_lower, "cudnn"))
        .or_else(|| tensorflow_tested_build(family, framework_version.as_deref()).map(|b| b.1))
        .map(|v| v.split('-').next().unwrap_or(&v).to_owned());
    let python_version = var("PYTHON_VERSION")
        .or_else(|| after_marker(&tag_lower, "python-"))
        .or_else(|| py_tag(&tag_lower));

    DerivedFacts {
        framework,
        framework_version,
        cuda_version,
        cudnn_version,
        python_version,
    }
}

fn ngc(registry: &str) -> bool {
    registry.eq_ignore_ascii_case("nvcr.io")
}

/// The dotted version right after `marker` (`cuda11.7-…` → `11.7`), if any.
fn after_marker(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    leading_version(&text[start..])
}

/// A version at the start of `text` (an optional `v`, digits and dots, and a PyTorch-style
/// local suffix such as `a0+81ea7a4` dropped): `2.0.0-cuda…` → `2.0.0`.
fn leading_version(text: &str) -> Option<String> {
    let text = text.strip_prefix('v').unwrap_or(text);
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let version = text[..end].trim_end_matches('.');
    (!version.is_empty() && version.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| version.to_owned())
}

/// `CUDA_VERSION` as NVIDIA writes it (`12.3.2.001`): at most major.minor.patch.
fn cuda_major_minor_patch(v: &str) -> Option<String> {
    let version = leading_version(v)?;
    Some(version.split('.').take(3).collect::<Vec<_>>().join("."))
}

/// PyTorch wheel tags: `cu121` → `12.1`, `cu118` → `11.8`.
fn cu_tag(tag: &str) -> Option<String> {
    tag.split(['-', '_']).find_map(|part| {
        let digits = part.strip_prefix("cu")?;
        if !(3..=4).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let (major, minor) = digits.split_at(digits.len() - 1);
        Some(format!("{major}.{minor}"))
    })
}

/// `py3` is no version; `py310` / `py3.10` are.
fn py_tag(tag: &str) -> Option<String> {
    tag.split(['-', '_']).find_map(|part| {
        let rest = part.strip_prefix("py")?;
        if rest.contains('.') {
            return leading_version(rest).filter(|v| v.contains('.'));
        }
        (rest.len() >= 3 && rest.chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("{}.{}", &rest[..1], &rest[1..]))
    })
}

/// TensorFlow's published tested GPU build configurations (tensorflow.org/install/source),
/// for `tensorflow/tensorflow:<version>-gpu`, whose config carries no CUDA variable.
fn tensorflow_tested_build(
    family: Option<&str>,
    version: Option<&str>,
) -> Option<(String, String)> {
    if family != Some("tensorflow") {
        return None;
    }
    let version = version?;
    let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let (cuda, cudnn) = match minor.as_str() {
        "2.17" | "2.16" => ("12.3", "8.9"),
        "2.15" => ("12.2", "8.9"),
        "2.14" => ("11.8", "8.7"),
        "2.13" | "2.12" => ("11.8", "8.6"),
        "2.11" | "2.10" | "2.9" | "2.8" | "2.7" | "2.6" | "2.5" => ("11.2", "8.1"),
        _ => return None,
    };
    Some((cuda.into(), cudnn.into()))
}

/// The minimum Linux x86_64 NVIDIA driver of each CUDA toolkit release (NVIDIA's CUDA
/// Toolkit release notes, table "CUDA Toolkit and Corresponding Driver Versions", the GA
/// release of each major.minor), oldest first.
const TOOLKIT_DRIVERS: &[(u32, u32, &str)] = &[
    (9, 0, "384.81"),
    (9, 1, "390.46"),
    (9, 2, "396.26"),
    (10, 0, "410.48"),
    (10, 1, "418.39"),
    (10, 2, "440.33"),
    (11, 0, "450.36.06"),
    (11, 1, "455.23"),
    (11, 2, "460.27.03"),
    (11, 3, "465.19.01"),
    (11, 4, "470.42.01"),
    (11, 5, "495.29.05"),
    (11, 6, "510.39.01"),
    (11, 7, "515.43.04"),
    (11, 8, "520.61.05"),
    (12, 0, "525.60.13"),
    (12, 1, "530.30.02"),
    (12, 2, "535.54.03"),
    (12, 3, "545.23.06"),
    (12, 4, "550.54.14"),
    (12, 5, "555.42.02"),
    (12, 6, "560.28.03"),
    (12, 8, "570.26"),
    (12, 9, "575.51.03"),
];

fn major_minor(cuda_version: &str) -> Option<(u32, u32)> {
    let mut parts = cuda_version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        Some(m) => m.parse().ok()?,
        None => 0,
    };
    Some((major, minor))
}

/// The minimum Linux driver a CUDA version needs; `None` for a version not in the table.
pub fn min_driver(cuda_version: &str) -> Option<&'static str> {
    let wanted = major_minor(cuda_version)?;
    TOOLKIT_DRIVERS
        .iter()
        .find(|(major, minor, _)| (*major, *minor) == wanted)
        .map(|(_, _, driver)| *driver)
}

/// An NVIDIA driver version such as `535.104.05`, comparable part by part.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DriverVersion(Vec<u32>);

impl DriverVersion {
    /// One to three dot-separated numbers, the first of 2 to 4 digits: `535`, `535.104.05`.
    pub fn parse(s: &str) -> Result<DriverVersion, String> {
        let bad = || format!("'{s}' is not an NVIDIA driver version such as 535.104.05");
        let s = s.trim();
        if s.is_empty() || s.len() > 20 {
            return Err(bad());
        }
        let parts: Vec<&str> = s.split('.').collect();
        let numeric =
            |p: &&str| !p.is_empty() && p.len() <= 4 && p.chars().all(|c| c.is_ascii_digit());
        if parts.len() > 3 || !parts.iter().all(numeric) || !(2..=4).contains(&parts[0].len()) {
            return Err(bad());
        }
        Ok(DriverVersion(
            parts.iter().map(|p| p.parse().unwrap_or(0)).collect(),
        ))
    }

    /// The CUDA major.minor releases (`"11.7"`) this driver runs, from the table.
    pub fn supported_cuda(&self) -> Vec<String> {
        TOOLKIT_DRIVERS
            .iter()
            .filter(|(_, _, min)| DriverVersion::parse(min).is_ok_and(|m| m <= *self))
            .map(|(major, minor, _)| format!("{major}.{minor}"))
            .collect()
    }
}

/// Harbor's vulnerability severities (Trivy's), lowest first.
pub const SEVERITIES: [&str; 6] = ["None", "Unknown", "Low", "Medium", "High", "Critical"];

/// The rank of a severity (`none` 0 … `critical` 5), case-insensitive.
pub fn severity_rank(severity: &str) -> Option<i64> {
    SEVERITIES
        .iter()
        .position(|s| s.eq_ignore_ascii_case(severity.trim()))
        .map(|p| p as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[&str]) -> Vec<String> {
        vars.iter().map(|s| s.to_string()).collect()
    }

    fn none() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn pytorch_runtime_from_its_env_and_tag() {
        let f = derive(
            "docker.io",
            "pytorch/pytorch",
            "2.0.0-cuda11.7-cudnn8-runtime",
            &env(&[
                "PATH=/opt/conda/bin:/usr/local/bin:/usr/bin:/bin",
                "NVIDIA_VISIBLE_DEVICES=all",
                "PYTORCH_VERSION=2.0.0",
            ]),
            &none(),
        );
        assert_eq!(f.framework.as_deref(), Some("pytorch"));
        assert_eq!(f.framework_version.as_deref(), Some("2.0.0"));
        assert_eq!(f.cuda_version.as_deref(), Some("11.7"));
        assert_eq!(f.cudnn_version.as_deref(), Some("8"));
        assert_eq!(
            min_driver(f.cuda_version.as_deref().unwrap()),
            Some("515.43.04")
        );
    }

    #[test]
    fn ngc_pytorch_from_env_not_from_its_release_tag() {
        let f = derive(
            "nvcr.io",
            "nvidia/pytorch",
            "24.01-py3",
            &env(&[
                "CUDA_VERSION=12.3.2.001",
                "CUDNN_VERSION=8.9.7.29+cuda12.2",
                "PYTORCH_VERSION=2.2.0a0+81ea7a4",
                "NVIDIA_PYTORCH_VERSION=24.01",
                "PYTHON_VERSION=3.10.12",
            ]),
            &none(),
        );
        assert_eq!(f.framework.as_deref(), Some("pytorch"));
        assert_eq!(f.framework_version.as_deref(), Some("2.2.0a0+81ea7a4"));
        assert_eq!(f.cuda_version.as_deref(), Some("12.3.2"));
        assert_eq!(f.cudnn_version.as_deref(), Some("8.9.7.29+cuda12.2"));
        assert_eq!(f.python_version.as_deref(), Some("3.10.12"));
        // Without the env, the NGC release (24.01) is not taken for PyTorch's version.
        let bare = derive("nvcr.io", "nvidia/pytorch", "24.01-py3", &[], &none());
        assert_eq!(bare.framework_version, None);
        assert_eq!(bare.python_version, None);
    }

    #[test]
    fn cuda_base_images_have_cuda_but_no_framework() {
        let f = derive(
            "docker.io",
            "nvidia/cuda",
            "12.2.0-cudnn8-runtime-ubuntu22.04",
            &env(&[
                "NVIDIA_REQUIRE_CUDA=cuda>=12.2 brand=tesla,driver>=470,driver<471",
                "NV_CUDNN_VERSION=8.9.4.25",
                "CUDA_VERSION=12.2.0",
            ]),
            &none(),
        );
        assert_eq!(f.framework, None);
        assert_eq!(f.cuda_version.as_deref(), Some("12.2.0"));
        assert_eq!(f.cudnn_version.as_deref(), Some("8.9.4.25"));
        let only_require = derive(
            "nvcr.io",
            "nvidia/cuda",
            "x",
            &env(&["NVIDIA_REQUIRE_CUDA=cuda>=11.8 brand=tesla"]),
            &none(),
        );
        assert_eq!(only_require.cuda_version.as_deref(), Some("11.8"));
    }

    #[test]
    fn tensorflow_vllm_triton_and_jupyter() {
        let tf = derive(
            "docker.io",
            "tensorflow/tensorflow",
            "2.15.0-gpu",
            &[],
            &none(),
        );
        assert_eq!(tf.framework.as_deref(), Some("tensorflow"));
        assert_eq!(tf.framework_version.as_deref(), Some("2.15.0"));
        assert_eq!(tf.cuda_version.as_deref(), Some("12.2"));
        let vllm = derive(
            "docker.io",
            "vllm/vllm-openai",
            "v0.4.0",
            &env(&["CUDA_VERSION=12.1.0"]),
            &none(),
        );
        assert_eq!(
            (vllm.framework.as_deref(), vllm.framework_version.as_deref()),
            (Some("vllm"), Some("0.4.0"))
        );
        assert_eq!(vllm.cuda_version.as_deref(), Some("12.1.0"));
        let triton = derive(
            "nvcr.io",
            "nvidia/tritonserver",
            "24.01-py3",
            &env(&["TRITON_SERVER_VERSION=2.42.0", "CUDA_VERSION=12.3.2.001"]),
            &none(),
        );
        assert_eq!(triton.framework.as_deref(), Some("tritonserver"));
        assert_eq!(triton.framework_version.as_deref(), Some("2.42.0"));
        let jupyter = derive(
            "quay.io",
            "jupyter/pytorch-notebook",
            "cuda12-python-3.11",
            &[],
            &none(),
        );
        assert_eq!(jupyter.framework.as_deref(), Some("pytorch"));
        assert_eq!(jupyter.cuda_version.as_deref(), Some("12"));
        assert_eq!(jupyter.python_version.as_deref(), Some("3.11"));
        let unknown = derive("docker.io", "library/nginx", "1.25", &[], &none());
        assert_eq!(unknown, DerivedFacts::default());
    }

    #[test]
    fn tag_helpers() {
        assert_eq!(cu_tag("2.1.0-cu121").as_deref(), Some("12.1"));
        assert_eq!(cu_tag("custom"), None);
        assert_eq!(py_tag("24.01-py3"), None);
        assert_eq!(py_tag("x-py310").as_deref(), Some("3.10"));
        assert_eq!(leading_version("v0.4.0").as_deref(), Some("0.4.0"));
        assert_eq!(leading_version("latest"), None);
    }

    #[test]
    fn drivers_parse_and_compare() {
        let d = DriverVersion::parse("535.104.05").unwrap();
        assert!(d > DriverVersion::parse("535.54.03").unwrap());
        assert!(d < DriverVersion::parse("545.23.06").unwrap());
        let supported = d.supported_cuda();
        assert!(supported.contains(&"12.2".to_string()));
        assert!(supported.contains(&"11.7".to_string()));
        assert!(!supported.contains(&"12.3".to_string()));
        assert!(
            DriverVersion::parse("470.42.01")
                .unwrap()
                .supported_cuda()
                .last()
                == Some(&"11.4".to_string())
        );
        for bad in [
            "",
            "abc",
            "535.",
            "5",
            "535.1.2.3",
            "535.x",
            "12345.1",
            "535 104",
        ] {
            assert!(DriverVersion::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(min_driver("12"), Some("525.60.13"));
        assert_eq!(min_driver("12.0.1"), Some("525.60.13"));
        assert_eq!(min_driver("7.5"), None);
        assert_eq!(min_driver("cuda"), None);
    }

    #[test]
    fn severities_rank() {
        assert_eq!(severity_rank("critical"), Some(5));
        assert_eq!(severity_rank("None"), Some(0));
        assert_eq!(severity_rank("nope"), None);
    }
}

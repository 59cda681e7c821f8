//! How an image is shown: the same record under each API's field names (API.md "One image, one row").
//!
//! Views borrow the image and serialize straight into the response body: a page of 20 items
//! builds no intermediate JSON tree.

use serde::Serialize;

use crate::model::{Image, Platform, human_size};
use crate::time;

/// `/api/v1` list item: seed 000's fields plus the catalog's others.
#[derive(Serialize)]
pub struct V1Item<'a> {
    image_id: i64,
    name: &'a str,
    display_name: &'a Option<String>,
    description: &'a Option<String>,
    category: &'a Option<String>,
    framework: &'a Option<String>,
    framework_version: &'a Option<String>,
    frameworks: &'a [String],
    cuda_version: &'a Option<String>,
    python_version: &'a Option<String>,
    chip_type: &'a str,
    applicable_scopes: &'a [String],
    is_official: bool,
    size: i64,
    status: &'a str,
    availability: &'a str,
    publication: &'a str,
    visibility: &'a str,
    owner: &'a Option<String>,
    registry_url: String,
    tag: &'a str,
    digest: &'a Option<String>,
    arch: &'a Option<String>,
    os: &'a Option<String>,
    created_at: String,
    updated_at: String,
}

pub fn v1_item(i: &Image) -> V1Item<'_> {
    V1Item {
        image_id: i.id,
        name: &i.name,
        display_name: &i.display_name,
        description: &i.description,
        category: &i.category,
        framework: &i.framework,
        framework_version: &i.framework_version,
        frameworks: framework_list(i),
        cuda_version: &i.cuda_version,
        python_version: &i.python_version,
        chip_type: &i.chip_type,
        applicable_scopes: &i.applicable_scopes,
        is_official: i.is_official,
        size: i.size,
        status: i.v1_status(),
        availability: &i.status,
        publication: &i.publication,
        visibility: &i.visibility,
        owner: &i.owner,
        registry_url: i.registry_url(),
        tag: &i.tag,
        digest: &i.digest,
        arch: &i.arch,
        os: &i.os,
        created_at: time::to_seconds_precision(&i.created_at),
        updated_at: time::to_seconds_precision(&i.updated_at),
    }
}

/// `frameworks`, or the single `framework` when the list is empty.
fn framework_list(i: &Image) -> &[String] {
    if i.frameworks.is_empty() {
        i.framework.as_slice()
    } else {
        &i.frameworks
    }
}

/// `/api/v1` detail: the list item plus platforms, provenance and revision.
#[derive(Serialize)]
pub struct V1Detail<'a> {
    #[serde(flatten)]
    item: V1Item<'a>,
    platforms: Vec<PlatformView<'a>>,
    registry: &'a str,
    repository: &'a str,
    origin: &'a str,
    revision: i64,
    created_by: &'a Option<String>,
    updated_by: &'a Option<String>,
}

pub fn v1_detail<'a>(i: &'a Image, platforms: &'a [Platform]) -> V1Detail<'a> {
    V1Detail {
        item: v1_item(i),
        platforms: platforms.iter().map(platform).collect(),
        registry: &i.registry,
        repository: &i.repository,
        origin: &i.origin,
        revision: i.revision,
        created_by: &i.created_by,
        updated_by: &i.updated_by,
    }
}

#[derive(Serialize)]
pub struct PlatformView<'a> {
    digest: &'a str,
    architecture: &'a str,
    os: &'a str,
    variant: &'a Option<String>,
    size: i64,
}

fn platform(p: &Platform) -> PlatformView<'_> {
    PlatformView {
        digest: &p.digest,
        architecture: &p.architecture,
        os: &p.os,
        variant: &p.variant,
        size: p.size,
    }
}

/// Seed 003's `flat=true` item.
#[derive(Serialize)]
pub struct FlatItem<'a> {
    id: i64,
    tag: &'a str,
    description: &'a Option<String>,
    created_at: i64,
    created_by: &'a Option<String>,
}

pub fn flat_item(i: &Image) -> FlatItem<'_> {
    FlatItem {
        id: i.id,
        tag: &i.name,
        description: &i.description,
        created_at: time::unix_seconds(&i.created_at),
        created_by: &i.created_by,
    }
}

/// Seed 003's `flat=false` group: one repository and its artifacts.
#[derive(Serialize)]
pub struct Group<'a> {
    #[serde(rename = "registryHost")]
    registry_host: &'a str,
    repo: &'a str,
    artifacts: Vec<Artifact<'a>>,
}

pub fn group<'a>(registry: &'a str, repository: &'a str, images: &'a [Image]) -> Group<'a> {
    Group {
        registry_host: registry,
        repo: repository,
        artifacts: images.iter().map(artifact).collect(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact<'a> {
    image_tag: &'a str,
    description: &'a Option<String>,
    created_time: Option<String>,
    user_name: Option<&'a String>,
    status: &'a str,
    id: i64,
    size: i64,
    arch: &'a Option<String>,
    os: &'a Option<String>,
    digest: &'a Option<String>,
    include_type: &'a str,
}

fn artifact(i: &Image) -> Artifact<'_> {
    Artifact {
        image_tag: &i.tag,
        description: &i.description,
        created_time: time::parse(&i.created_at).map(time::to_rfc3339),
        user_name: i.owner.as_ref().or(i.created_by.as_ref()),
        status: &i.status,
        id: i.id,
        size: i.size,
        arch: &i.arch,
        os: &i.os,
        digest: &i.digest,
        include_type: &i.include_type,
    }
}

/// Console list item (seed 001).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleItem<'a> {
    id: String,
    name: &'a str,
    image_id: &'a str,
    frameworks: &'a [String],
    chip_type: &'a str,
    status: &'a str,
    description: &'a Option<String>,
    applicable_scopes: &'a [String],
    preset_cuda: bool,
    image_address: String,
    category: &'a Option<String>,
    #[serde(rename = "is_official")]
    is_official: bool,
    size: i64,
}

pub fn console_item(i: &Image) -> ConsoleItem<'_> {
    ConsoleItem {
        id: i.id.to_string(),
        name: i.console_name(),
        image_id: &i.name,
        frameworks: framework_list(i),
        chip_type: &i.chip_type,
        status: &i.publication,
        description: &i.description,
        applicable_scopes: &i.applicable_scopes,
        preset_cuda: i.preset_cuda,
        image_address: i.console_address(),
        category: &i.category,
        is_official: i.is_official,
        size: i.size,
    }
}

/// Seed 002's list item (`GET /api/images` answers `images: [...]` beside the console's
/// envelope): the numeric id and the unique name.
#[derive(Serialize)]
pub struct PortalItem<'a> {
    id: i64,
    name: &'a str,
    description: &'a Option<String>,
    category: &'a Option<String>,
    size: i64,
    is_official: bool,
}

pub fn portal_item(i: &Image) -> PortalItem<'_> {
    PortalItem {
        id: i.id,
        name: &i.name,
        description: &i.description,
        category: &i.category,
        size: i.size,
        is_official: i.is_official,
    }
}

/// Console detail: the list item plus versions-relevant fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleDetail<'a> {
    #[serde(flatten)]
    item: ConsoleItem<'a>,
    display_name: &'a Option<String>,
    cuda_version: &'a Option<String>,
    python_version: &'a Option<String>,
    availability: &'a str,
    visibility: &'a str,
    create_time: String,
    update_time: String,
}

pub fn console_detail(i: &Image) -> ConsoleDetail<'_> {
    ConsoleDetail {
        item: console_item(i),
        display_name: &i.display_name,
        cuda_version: &i.cuda_version,
        python_version: &i.python_version,
        availability: &i.status,
        visibility: &i.visibility,
        create_time: time::to_seconds_precision(&i.created_at),
        update_time: time::to_seconds_precision(&i.updated_at),
    }
}

/// Console version item (seed 001): one tag of the repository.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleVersion<'a> {
    id: String,
    version: &'a str,
    image_address: String,
    size: String,
    python_version: &'a Option<String>,
    cuda_version: &'a Option<String>,
    description: &'a Option<String>,
    create_time: String,
}

pub fn console_version(i: &Image) -> ConsoleVersion<'_> {
    ConsoleVersion {
        id: i.id.to_string(),
        version: &i.tag,
        image_address: i.console_address(),
        size: human_size(i.size),
        python_version: &i.python_version,
        cuda_version: &i.cuda_version,
        description: &i.description,
        create_time: time::to_seconds_precision(&i.created_at),
    }
}

/// What a portal's "use" button needs to start an environment from an image (seed 002
/// TC-03): where to pull it, pinned by digest when known, its platforms, the minimum NVIDIA
/// driver its CUDA needs, and the spec to hand to the environment service.
#[derive(Serialize)]
pub struct UseView<'a> {
    image_id: i64,
    name: &'a str,
    pull_reference: String,
    digest: &'a Option<String>,
    platforms: Vec<String>,
    cuda_version: &'a Option<String>,
    min_driver: Option<&'static str>,
    environment: EnvironmentSpec<'a>,
}

/// The environment service's input: the image to run (by digest when known), the chip
/// it needs and what the node must offer.
#[derive(Serialize)]
pub struct EnvironmentSpec<'a> {
    image: String,
    chip_type: &'a str,
    platforms: Vec<String>,
    min_driver: Option<&'static str>,
}

pub fn use_view<'a>(i: &'a Image, platforms: &[Platform]) -> UseView<'a> {
    let mut list: Vec<String> = platforms
        .iter()
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    if list.is_empty()
        && let (Some(os), Some(arch)) = (&i.os, &i.arch)
        && arch != "multi"
    {
        list.push(format!("{os}/{arch}"));
    }
    let pinned = match &i.digest {
        Some(d) => format!("{}/{}@{d}", i.registry, i.repository),
        None => i.registry_url(),
    };
    let min_driver = i.cuda_version.as_deref().and_then(min_driver);
    UseView {
        image_id: i.id,
        name: &i.name,
        pull_reference: i.registry_url(),
        digest: &i.digest,
        platforms: list.clone(),
        cuda_version: &i.cuda_version,
        min_driver,
        environment: EnvironmentSpec {
            image: pinned,
            chip_type: &i.chip_type,
            platforms: list,
            min_driver,
        },
    }
}

/// A detail view with the facts kept beside the image row (cuDNN, minimum driver, scan).
#[derive(Serialize)]
pub struct WithFacts<V, F> {
    #[serde(flatten)]
    pub view: V,
    #[serde(flatten)]
    pub facts: F,
}

/// `/api/v1` names: `cudnn_version`, `min_driver_version`, `vulnerabilities`.
#[derive(Serialize)]
pub struct V1Facts(crate::image_contents::ExtraFacts);

impl From<crate::image_contents::ExtraFacts> for V1Facts {
    fn from(f: crate::image_contents::ExtraFacts) -> V1Facts {
        V1Facts(f)
    }
}

/// Console names: `cudnnVersion`, `minDriverVersion`, `vulnerabilities`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleFacts {
    cudnn_version: Option<String>,
    min_driver_version: Option<&'static str>,
    vulnerabilities: Option<serde_json::Value>,
}

impl From<crate::image_contents::ExtraFacts> for ConsoleFacts {
    fn from(f: crate::image_contents::ExtraFacts) -> ConsoleFacts {
        ConsoleFacts {
            cudnn_version: f.cudnn_version,
            min_driver_version: f.min_driver_version,
            vulnerabilities: f.vulnerabilities,
        }
    }
}

/// The minimum Linux NVIDIA driver of a CUDA toolkit release (see [`crate::image_facts`]).
pub fn min_driver(cuda_version: &str) -> Option<&'static str> {
    crate::image_facts::min_driver(cuda_version)
}

#[cfg(test)]
mod tests {
    use super::min_driver;

    #[test]
    fn minimum_drivers_of_known_cuda_releases() {
        assert_eq!(min_driver("11.8"), Some("520.61.05"));
        assert_eq!(min_driver("12.0.1"), Some("525.60.13"));
        assert_eq!(min_driver("12"), Some("525.60.13"));
        assert_eq!(min_driver("9.9"), None);
        assert_eq!(min_driver("cuda"), None);
    }
}

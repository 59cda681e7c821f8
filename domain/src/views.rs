//! How an image is shown: the same record under each API's field names (API.md "One image, one row").

use serde_json::{Value, json};

use crate::model::{Image, Platform, human_size};
use crate::time;

/// `/api/v1` list item: seed 000's fields plus the catalog's others.
pub fn v1_item(i: &Image) -> Value {
    json!({
        "image_id": i.id,
        "name": i.name,
        "display_name": i.display_name,
        "description": i.description,
        "category": i.category,
        "framework": i.framework,
        "framework_version": i.framework_version,
        "frameworks": i.framework_list(),
        "cuda_version": i.cuda_version,
        "python_version": i.python_version,
        "chip_type": i.chip_type,
        "applicable_scopes": i.applicable_scopes,
        "is_official": i.is_official,
        "size": i.size,
        "status": i.status,
        "publication": i.publication,
        "visibility": i.visibility,
        "owner": i.owner,
        "registry_url": i.registry_url(),
        "tag": i.tag,
        "digest": i.digest,
        "arch": i.arch,
        "os": i.os,
        "created_at": time::to_seconds_precision(&i.created_at),
        "updated_at": time::to_seconds_precision(&i.updated_at),
    })
}

/// `/api/v1` detail: the list item plus platforms, provenance and revision.
pub fn v1_detail(i: &Image, platforms: &[Platform]) -> Value {
    let mut v = v1_item(i);
    v["platforms"] = platforms.iter().map(platform).collect();
    v["registry"] = json!(i.registry);
    v["repository"] = json!(i.repository);
    v["origin"] = json!(i.origin);
    v["revision"] = json!(i.revision);
    v["created_by"] = json!(i.created_by);
    v["updated_by"] = json!(i.updated_by);
    v
}

fn platform(p: &Platform) -> Value {
    json!({
        "digest": p.digest,
        "architecture": p.architecture,
        "os": p.os,
        "variant": p.variant,
        "size": p.size,
    })
}

/// Seed 003's `flat=true` item.
pub fn flat_item(i: &Image) -> Value {
    json!({
        "id": i.id,
        "tag": i.name,
        "description": i.description,
        "created_at": time::unix_seconds(&i.created_at),
        "created_by": i.created_by,
    })
}

/// Seed 003's `flat=false` group: one repository and its artifacts.
pub fn group(registry: &str, repository: &str, images: &[Image]) -> Value {
    json!({
        "registryHost": registry,
        "repo": repository,
        "artifacts": images.iter().map(artifact).collect::<Vec<_>>(),
    })
}

fn artifact(i: &Image) -> Value {
    json!({
        "imageTag": i.tag,
        "description": i.description,
        "createdTime": time::parse(&i.created_at).map(time::to_rfc3339),
        "userName": i.owner.as_ref().or(i.created_by.as_ref()),
        "status": i.status,
        "id": i.id,
        "size": i.size,
        "arch": i.arch,
        "os": i.os,
        "digest": i.digest,
        "includeType": i.include_type,
    })
}

/// Console list item (seed 001).
pub fn console_item(i: &Image) -> Value {
    json!({
        "id": i.id.to_string(),
        "name": i.name,
        "imageId": i.name,
        "frameworks": i.framework_list(),
        "chipType": i.chip_type,
        "status": i.publication,
        "description": i.description,
        "applicableScopes": i.applicable_scopes,
        "presetCuda": i.preset_cuda,
        "imageAddress": i.registry_url(),
        "category": i.category,
        "is_official": i.is_official,
        "size": i.size,
    })
}

/// Console detail: the list item plus versions-relevant fields.
pub fn console_detail(i: &Image) -> Value {
    let mut v = console_item(i);
    v["displayName"] = json!(i.display_name);
    v["cudaVersion"] = json!(i.cuda_version);
    v["pythonVersion"] = json!(i.python_version);
    v["availability"] = json!(i.status);
    v["visibility"] = json!(i.visibility);
    v["createTime"] = json!(time::to_seconds_precision(&i.created_at));
    v["updateTime"] = json!(time::to_seconds_precision(&i.updated_at));
    v
}

/// Console version item (seed 001): one tag of the repository.
pub fn console_version(i: &Image) -> Value {
    json!({
        "id": i.id.to_string(),
        "version": i.tag,
        "imageAddress": i.registry_url(),
        "size": human_size(i.size),
        "pythonVersion": i.python_version,
        "cudaVersion": i.cuda_version,
        "description": i.description,
        "createTime": time::to_seconds_precision(&i.created_at),
    })
}

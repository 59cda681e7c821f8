//! What an image write may say: the bodies of both APIs, each field checked, as one set of
//! [`Changes`], and who may make them.

use serde::Deserialize;

use crate::auth::Caller;
use crate::db::Value;
use crate::envelope::{Api, ApiError};
use crate::http::Request;
use crate::image_ref::ImageRef;
use crate::model::{ChipType, Publication, parse_size};
use crate::request::json_body;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A size as bytes or as text like "2.5GB".
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum SizeInput {
    Bytes(i64),
    Text(String),
}

impl SizeInput {
    pub(super) fn bytes(&self, field: &str) -> Result<i64, ApiError> {
        match self {
            SizeInput::Bytes(n) if *n >= 0 => Ok(*n),
            SizeInput::Text(t) => parse_size(t).ok_or_else(|| {
                ApiError::bad_param(
                    field,
                    format!("'{t}' is not a size (bytes, or e.g. \"2.5GB\")"),
                )
            }),
            SizeInput::Bytes(n) => Err(ApiError::bad_param(field, format!("{n} is negative"))),
        }
    }
}

/// `/api/v1` image body (seed 000 names). Every field optional; create requires some.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct V1Body {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    category: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    framework: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    framework_version: Option<Option<String>>,
    frameworks: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    cuda_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    python_version: Option<Option<String>>,
    chip_type: Option<String>,
    applicable_scopes: Option<Vec<String>>,
    registry_url: Option<String>,
    is_official: Option<bool>,
    visibility: Option<String>,
    owner: Option<String>,
    publication: Option<String>,
    size: Option<SizeInput>,
    #[serde(default, deserialize_with = "nullable")]
    digest: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    arch: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    os: Option<Option<String>>,
}

/// Console image body (seed 001 names).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConsoleBody {
    name: Option<String>,
    image_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    category: Option<Option<String>>,
    frameworks: Option<Vec<String>>,
    applicable_scopes: Option<Vec<String>>,
    chip_type: Option<String>,
    preset_cuda: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    cuda_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    python_version: Option<Option<String>>,
    image_address: Option<String>,
    #[serde(rename = "is_official")]
    is_official: Option<bool>,
    visibility: Option<String>,
    status: Option<String>,
    size: Option<SizeInput>,
}

/// Validated changes to an image's writable fields, whichever API they came from.
#[derive(Default, Debug)]
pub(super) struct Changes {
    pub(super) name: Option<String>,
    pub(super) display_name: Option<Option<String>>,
    pub(super) description: Option<Option<String>>,
    pub(super) category: Option<Option<String>>,
    pub(super) framework: Option<Option<String>>,
    pub(super) framework_version: Option<Option<String>>,
    pub(super) frameworks: Option<Vec<String>>,
    pub(super) cuda_version: Option<Option<String>>,
    pub(super) preset_cuda: Option<bool>,
    pub(super) python_version: Option<Option<String>>,
    pub(super) chip_type: Option<ChipType>,
    pub(super) applicable_scopes: Option<Vec<String>>,
    pub(super) reference: Option<ImageRef>,
    /// The reference as the console wrote it (`Some(None)`: written through v1, so none).
    pub(super) written_address: Option<Option<String>>,
    pub(super) is_official: Option<bool>,
    pub(super) visibility: Option<&'static str>,
    pub(super) owner: Option<String>,
    pub(super) publication: Option<Publication>,
    pub(super) size: Option<i64>,
    pub(super) digest: Option<Option<String>>,
    pub(super) arch: Option<Option<String>>,
    pub(super) os: Option<Option<String>>,
}

/// Checks a text field: no control characters, at most `max` characters, not blank.
fn text(field: &str, value: String, max: usize) -> Result<String, ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_param(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::bad_param(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::bad_param(field, "contains control characters"));
    }
    Ok(value)
}

/// A name-like field (a name, tag, owner, list entry): also no tab, newline or bidi
/// control, so what is shown is what is matched.
pub(super) fn name_text(field: &str, value: String, max: usize) -> Result<String, ApiError> {
    no_forbidden_char(field, &value)?;
    text(field, value, max)
}

/// Refuses a name-like value with a character `query::forbidden_char` rejects.
fn no_forbidden_char(field: &str, value: &str) -> Result<(), ApiError> {
    match crate::query::forbidden_char(value) {
        Some(c) => Err(ApiError::bad_param(
            field,
            crate::query::forbidden_char_problem(c),
        )),
        None => Ok(()),
    }
}

/// An optional name-like field: `null` or `""` clears it.
fn opt_name_text(
    field: &str,
    value: Option<Option<String>>,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    if let Some(Some(v)) = &value {
        no_forbidden_char(field, v)?;
    }
    opt_text(field, value, max)
}

/// An optional text field: `null` or `""` clears it.
pub(super) fn opt_text(
    field: &str,
    value: Option<Option<String>>,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    match value {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(v)) if v.is_empty() => Ok(Some(None)),
        Some(Some(v)) => Ok(Some(Some(text(field, v, max)?))),
    }
}

fn text_list(field: &str, values: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(values) = values else {
        return Ok(None);
    };
    if values.len() > 20 {
        return Err(ApiError::bad_param(field, "has more than 20 entries"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        let v = name_text(field, v, 64)?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(Some(out))
}

fn chip(field: &str, v: Option<String>) -> Result<Option<ChipType>, ApiError> {
    v.map(|c| {
        ChipType::parse(&c)
            .ok_or_else(|| ApiError::bad_param(field, format!("'{c}' is not one of GPU, CPU, NPU")))
    })
    .transpose()
}

fn visibility(v: Option<String>) -> Result<Option<&'static str>, ApiError> {
    v.map(|v| match v.as_str() {
        "public" => Ok("public"),
        "private" => Ok("private"),
        _ => Err(ApiError::bad_param(
            "visibility",
            format!("'{v}' is not public or private"),
        )),
    })
    .transpose()
}

pub(super) fn publication(field: &str, v: Option<String>) -> Result<Option<Publication>, ApiError> {
    v.map(|p| {
        Publication::parse(&p).ok_or_else(|| {
            ApiError::bad_param(
                field,
                format!("'{p}' is not one of online, offline, pending"),
            )
        })
    })
    .transpose()
}

fn reference(field: &str, v: Option<String>) -> Result<Option<ImageRef>, ApiError> {
    v.map(|r| ImageRef::parse(&r).map_err(|e| ApiError::bad_param(field, e)))
        .transpose()
}

fn digest(v: Option<Option<String>>) -> Result<Option<Option<String>>, ApiError> {
    match v {
        Some(Some(d)) => crate::image_ref::parse_digest(&d)
            .map(|d| Some(Some(d)))
            .map_err(|e| ApiError::bad_param("digest", e)),
        other => Ok(other),
    }
}

impl Changes {
    fn from_v1(b: V1Body) -> Result<Changes, ApiError> {
        let mut c = Changes {
            name: b.name.map(|n| name_text("name", n, 256)).transpose()?,
            display_name: opt_name_text("display_name", b.display_name, 256)?,
            description: opt_text("description", b.description, 4096)?,
            category: opt_text("category", b.category, 64)?,
            framework: opt_text("framework", b.framework, 64)?,
            framework_version: opt_text("framework_version", b.framework_version, 32)?,
            frameworks: text_list("frameworks", b.frameworks)?,
            cuda_version: opt_text("cuda_version", b.cuda_version, 32)?,
            python_version: opt_text("python_version", b.python_version, 32)?,
            chip_type: chip("chip_type", b.chip_type)?,
            applicable_scopes: text_list("applicable_scopes", b.applicable_scopes)?,
            written_address: b.registry_url.as_ref().map(|_| None),
            reference: reference("registry_url", b.registry_url)?,
            is_official: b.is_official,
            visibility: visibility(b.visibility)?,
            owner: b.owner.map(|o| name_text("owner", o, 128)).transpose()?,
            publication: publication("publication", b.publication)?,
            size: b.size.map(|s| s.bytes("size")).transpose()?,
            digest: digest(b.digest)?,
            arch: opt_text("arch", b.arch, 32)?,
            os: opt_text("os", b.os, 32)?,
            ..Changes::default()
        };
        if let Some(cuda) = &c.cuda_version {
            c.preset_cuda = Some(cuda.is_some());
        }
        Ok(c)
    }

    fn from_console(b: ConsoleBody) -> Result<Changes, ApiError> {
        // Seed 001: `imageId` is the image's unique identifier and `name` its display name
        // (`displayName` is accepted too). A create without `imageId` is identified by `name`.
        let display_name = match (b.name, b.display_name) {
            (Some(shown), Some(Some(d))) if d != shown => {
                return Err(ApiError::bad_param(
                    "displayName",
                    "name is the display name: send one of name and displayName",
                ));
            }
            (Some(shown), _) => Some(Some(shown)),
            (None, d) => d,
        };
        let name = b.image_id;
        let frameworks = text_list("frameworks", b.frameworks)?;
        let cuda_version = opt_text("cudaVersion", b.cuda_version, 32)?;
        let preset_cuda = b.preset_cuda.or(cuda_version.as_ref().map(Option::is_some));
        Ok(Changes {
            name: name.map(|n| name_text("imageId", n, 256)).transpose()?,
            display_name: opt_name_text("name", display_name, 256)?,
            description: opt_text("description", b.description, 4096)?,
            category: opt_text("category", b.category, 64)?,
            // The console lists frameworks; the first is the primary one.
            framework: frameworks
                .as_ref()
                .map(|f| f.first().map(|s| s.to_lowercase())),
            frameworks,
            applicable_scopes: text_list("applicableScopes", b.applicable_scopes)?,
            chip_type: chip("chipType", b.chip_type)?,
            cuda_version,
            preset_cuda,
            python_version: opt_text("pythonVersion", b.python_version, 32)?,
            written_address: b.image_address.as_ref().map(|a| Some(a.trim().to_owned())),
            reference: reference("imageAddress", b.image_address)?,
            is_official: b.is_official,
            visibility: visibility(b.visibility)?,
            publication: publication("status", b.status)?,
            size: b.size.map(|s| s.bytes("size")).transpose()?,
            ..Changes::default()
        })
    }

    pub(super) fn parse(api: Api, req: &Request) -> Result<Changes, ApiError> {
        match api {
            Api::V1 => Changes::from_v1(json_body(req)?),
            Api::Console => Changes::from_console(json_body(req)?),
        }
    }

    /// Publishing and ownership changes need an admin.
    pub(super) fn authorize(&self, caller: &Caller) -> Result<(), ApiError> {
        if caller.is_admin() {
            return Ok(());
        }
        if self.is_official == Some(true) {
            return Err(ApiError::forbidden(
                "only admins can mark an image official",
            ));
        }
        if self.visibility == Some("public") {
            return Err(ApiError::forbidden(
                "only admins can publish an image as public",
            ));
        }
        if self.owner.as_ref().is_some_and(|o| *o != caller.name) {
            return Err(ApiError::forbidden(
                "only admins can give an image to another owner",
            ));
        }
        Ok(())
    }

    /// Column assignments for an `UPDATE`, in a fixed order.
    pub(super) fn assignments(&self) -> Vec<(&'static str, Value)> {
        let mut out: Vec<(&'static str, Value)> = Vec::new();
        let mut set = |col: &'static str, v: Option<Value>| {
            if let Some(v) = v {
                out.push((col, v));
            }
        };
        let json_list =
            |l: &Vec<String>| Value::Text(serde_json::to_string(l).expect("strings serialize"));
        set("name", self.name.clone().map(Value::from));
        set("display_name", self.display_name.clone().map(Value::from));
        set("description", self.description.clone().map(Value::from));
        set("category", self.category.clone().map(Value::from));
        set("framework", self.framework.clone().map(Value::from));
        set(
            "framework_version",
            self.framework_version.clone().map(Value::from),
        );
        set("frameworks", self.frameworks.as_ref().map(json_list));
        set("cuda_version", self.cuda_version.clone().map(Value::from));
        set("preset_cuda", self.preset_cuda.map(Value::from));
        set(
            "python_version",
            self.python_version.clone().map(Value::from),
        );
        set("chip_type", self.chip_type.map(|c| c.as_str().into()));
        set(
            "applicable_scopes",
            self.applicable_scopes.as_ref().map(json_list),
        );
        if let Some(r) = &self.reference {
            set("registry", Some(r.registry.clone().into()));
            set("repository", Some(r.repository.clone().into()));
            set("tag", Some(r.tag.clone().into()));
            if r.digest.is_some() && self.digest.is_none() {
                set("digest", Some(r.digest.clone().into()));
            }
        }
        set(
            "image_address",
            self.written_address.clone().map(Value::from),
        );
        set("digest", self.digest.clone().map(Value::from));
        set("is_official", self.is_official.map(Value::from));
        set("visibility", self.visibility.map(Value::from));
        set("owner", self.owner.clone().map(Value::from));
        set("publication", self.publication.map(|p| p.as_str().into()));
        set("size", self.size.map(Value::from));
        set("arch", self.arch.clone().map(Value::from));
        set("os", self.os.clone().map(Value::from));
        out
    }
}

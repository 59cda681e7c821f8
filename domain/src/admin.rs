//! The admin component's routes: every write to the catalog, for both APIs.
//!
//! Rules (API.md "Who may do what"): official images are written by admins only; custom
//! images by their owner or admins; publishing (official, or public visibility) is
//! admin-only. Bodies are JSON objects of writable fields only: any other field is a 400
//! naming it. PUT and PATCH both merge the fields given. `If-Match: "<revision>"` (the ETag
//! reads return) makes an update conditional: a stale revision gets 412, never a silent
//! overwrite; without it, each update changes only its own fields, in one statement.

use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::catalog::{caller, etag, parse_id};
use crate::config::Context;
use crate::db::{DbError, Value, with_write_tx};
use crate::envelope::{Api, ApiError, respond};
use crate::http::{Request, Response};
use crate::image_ref::ImageRef;
use crate::model::{ChipType, Image, Publication, parse_size};
use crate::outbound::HttpSender;
use crate::{migrations, store, time, views};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub async fn handle<S: HttpSender>(req: &Request, ctx: &Context<'_>, sender: S) -> Response {
    let api = Api::for_path(&req.path);
    respond(api, route(req, ctx, sender).await)
}

async fn route<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    sender: S,
) -> Result<Response, ApiError> {
    let caller = caller(req, ctx)?;
    let segments = req.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method.as_str();
    let write = |f: &dyn Fn() -> Result<Response, ApiError>| {
        migrations::ensure_for(ctx)?;
        f()
    };
    let w = Writer {
        req,
        ctx,
        caller: &caller,
    };
    match (method, segments.as_slice()) {
        ("POST", ["api", "v1", "images"]) => write(&|| w.create(Api::V1)),
        ("PUT" | "PATCH", ["api", "v1", "images", id]) => {
            write(&|| w.update(Api::V1, parse_id(id)?))
        }
        ("DELETE", ["api", "v1", "images", id]) => {
            migrations::ensure_for(ctx)?;
            w.delete(Api::V1, parse_id(id)?, sender).await
        }
        ("POST", ["api", "images"]) => write(&|| w.create(Api::Console)),
        ("PUT", ["api", "images", id]) => write(&|| w.update(Api::Console, parse_id(id)?)),
        ("DELETE", ["api", "images", id]) => {
            migrations::ensure_for(ctx)?;
            w.delete(Api::Console, parse_id(id)?, sender).await
        }
        ("PUT", ["api", "images", id, "status"]) => write(&|| w.set_status(parse_id(id)?)),
        ("POST", ["api", "images", id, "versions"]) => write(&|| w.add_version(parse_id(id)?)),
        (_, path) => match allowed_methods(path) {
            Some(allow) => Err(ApiError::method_not_allowed(method, allow)),
            None => Err(ApiError::no_route(method, &req.path)),
        },
    }
}

/// The methods each image path answers, across the catalog and admin components.
fn allowed_methods(path: &[&str]) -> Option<&'static str> {
    match path {
        ["api", "v1", "images"] | ["api", "images"] => Some("GET, POST"),
        ["api", "v1", "images", _] => Some("GET, PUT, PATCH, DELETE"),
        ["api", "images", "build"] => Some("POST"),
        ["api", "images", _] => Some("GET, PUT, DELETE"),
        ["api", "images", _, "status"] => Some("PUT"),
        ["api", "images", _, "versions"] => Some("GET, POST"),
        ["api", "v1", "images", _, "importing-details"] => Some("GET"),
        ["api", "v1", "images", _, "use"] | ["api", "images", _, "use"] => Some("GET"),
        _ => None,
    }
}

/// Reads a JSON body: 415 unless it is JSON, 413 when too large, 400 when malformed.
pub fn json_body<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, ApiError> {
    let content_type = req.header("content-type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            415,
            format!(
                "send the body as application/json (got '{}')",
                if content_type.is_empty() {
                    "nothing"
                } else {
                    content_type
                }
            ),
        ));
    }
    if req.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A size as bytes or as text like "2.5GB".
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeInput {
    Bytes(i64),
    Text(String),
}

impl SizeInput {
    fn bytes(&self, field: &str) -> Result<i64, ApiError> {
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
pub struct Changes {
    name: Option<String>,
    display_name: Option<Option<String>>,
    description: Option<Option<String>>,
    category: Option<Option<String>>,
    framework: Option<Option<String>>,
    framework_version: Option<Option<String>>,
    frameworks: Option<Vec<String>>,
    cuda_version: Option<Option<String>>,
    preset_cuda: Option<bool>,
    python_version: Option<Option<String>>,
    chip_type: Option<ChipType>,
    applicable_scopes: Option<Vec<String>>,
    reference: Option<ImageRef>,
    /// The reference as the console wrote it (`Some(None)`: written through v1, so none).
    written_address: Option<Option<String>>,
    is_official: Option<bool>,
    visibility: Option<&'static str>,
    owner: Option<String>,
    publication: Option<Publication>,
    size: Option<i64>,
    digest: Option<Option<String>>,
    arch: Option<Option<String>>,
    os: Option<Option<String>>,
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
fn name_text(field: &str, value: String, max: usize) -> Result<String, ApiError> {
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
fn opt_text(
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

fn publication(field: &str, v: Option<String>) -> Result<Option<Publication>, ApiError> {
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

    fn parse(api: Api, req: &Request) -> Result<Changes, ApiError> {
        match api {
            Api::V1 => Changes::from_v1(json_body(req)?),
            Api::Console => Changes::from_console(json_body(req)?),
        }
    }

    /// Publishing and ownership changes need an admin.
    fn authorize(&self, caller: &Caller) -> Result<(), ApiError> {
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
    fn assignments(&self) -> Vec<(&'static str, Value)> {
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

/// Replaces an image's scope index rows.
fn write_scopes(ctx: &Context<'_>, id: i64, scopes: &[String]) -> Result<(), DbError> {
    ctx.db
        .execute("DELETE FROM image_scopes WHERE image_id = ?", &[id.into()])?;
    for scope in scopes {
        ctx.db.execute(
            "INSERT INTO image_scopes (image_id, scope) VALUES (?, ?)",
            &[id.into(), scope.clone().into()],
        )?;
    }
    Ok(())
}

/// A uniqueness failure on insert or update, as a 409 that says which.
fn conflict(e: DbError, name: Option<&str>, reference: Option<&ImageRef>) -> ApiError {
    match e {
        DbError::Conflict(m) if m.contains("name") => ApiError::conflict(format!(
            "an image named '{}' already exists",
            name.unwrap_or_default()
        )),
        DbError::Conflict(_) => ApiError::conflict(format!(
            "image {} is already in the catalog",
            reference.map(ImageRef::tagged).unwrap_or_default()
        )),
        other => other.into(),
    }
}

/// Berth's Harbor project holds imports and builds only: a hand-made row there would answer
/// for (or block) an import or a build of the same path. Users may not point rows at
/// berth's Harbor at all.
fn check_not_reserved(
    ctx: &Context<'_>,
    caller: &Caller,
    reference: &ImageRef,
    field: &str,
) -> Result<(), ApiError> {
    let Ok(harbor) = ctx.settings.harbor() else {
        return Ok(());
    };
    if harbor.is_reserved(reference) {
        return Err(ApiError::forbidden(format!(
            "'{field}' {} is in berth's own Harbor project {}, which only imports and builds write to",
            reference.tagged(),
            harbor.harbor.project
        )));
    }
    if !caller.is_admin()
        && reference
            .registry
            .eq_ignore_ascii_case(&harbor.registry_host)
    {
        return Err(ApiError::forbidden(format!(
            "'{field}' {} is on berth's Harbor, where only admins may register images",
            reference.tagged()
        )));
    }
    Ok(())
}

struct Writer<'a> {
    req: &'a Request,
    ctx: &'a Context<'a>,
    caller: &'a Caller,
}

impl Writer<'_> {
    /// The image, if the caller may see it (404 otherwise) and change it (403 otherwise).
    fn modifiable(&self, id: i64) -> Result<Image, ApiError> {
        let image = crate::catalog::visible_image(id, self.ctx, self.caller)?;
        if self.caller.is_admin() {
            return Ok(image);
        }
        if image.is_official {
            return Err(ApiError::forbidden(
                "only admins can change official images",
            ));
        }
        // Public and imported rows are shared copies everyone uses (an import's Harbor
        // artifact too): the importer is only recorded in created_by, never their owner.
        if image.origin == "import" {
            return Err(ApiError::forbidden(format!(
                "image {id} is an imported, shared image: only admins can change or delete it"
            )));
        }
        if image.visibility == "public" {
            return Err(ApiError::forbidden(format!(
                "image {id} is public: only admins can change or delete it"
            )));
        }
        if image.owner.as_deref() != Some(self.caller.name.as_str()) {
            return Err(ApiError::forbidden(
                "only the image's owner or an admin can change it",
            ));
        }
        Ok(image)
    }

    fn create(&self, api: Api) -> Result<Response, ApiError> {
        // Seed 000: creating images is for admins. Users register their own private images
        // only where the platform allows it.
        if !self.caller.is_admin() && !self.ctx.settings.allow_user_images() {
            return Err(ApiError::forbidden(
                "only admins can create images (user images are not enabled: allow_user_images)",
            ));
        }
        let mut c = Changes::parse(api, self.req)?;
        c.authorize(self.caller)?;
        let address_field = if api == Api::V1 {
            "registry_url"
        } else {
            "imageAddress"
        };
        let name = c
            .name
            .take()
            .or_else(|| {
                (api == Api::Console)
                    .then(|| c.display_name.clone().flatten())
                    .flatten()
            })
            .ok_or_else(|| ApiError::bad_param("name", "is required"))?;
        let reference = c
            .reference
            .take()
            .ok_or_else(|| ApiError::bad_param(address_field, "is required"))?;
        check_not_reserved(self.ctx, self.caller, &reference, address_field)?;
        let admin = self.caller.is_admin();
        let now = time::now_rfc3339();
        let frameworks = c
            .frameworks
            .take()
            .unwrap_or_else(|| c.framework.clone().flatten().into_iter().collect());
        let scopes = c.applicable_scopes.take().unwrap_or_default();
        let owner = c.owner.take().unwrap_or_else(|| self.caller.name.clone());
        let visibility = c
            .visibility
            .unwrap_or(if admin { "public" } else { "private" });
        let id = with_write_tx(self.ctx.db, || {
            let id = self
                .ctx
                .db
                .query(
                    "INSERT INTO images (name, display_name, description, category, framework, framework_version, \
                     frameworks, cuda_version, preset_cuda, python_version, chip_type, applicable_scopes, registry, \
                     repository, tag, digest, size, arch, os, is_official, visibility, owner, status, publication, \
                     origin, image_address, created_by, updated_by, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ready', ?, 'manual', ?, ?, ?, ?, ?) \
                     RETURNING id",
                    &[
                        name.clone().into(),
                        c.display_name.clone().flatten().into(),
                        c.description.clone().flatten().into(),
                        c.category.clone().flatten().into(),
                        c.framework.clone().flatten().or_else(|| frameworks.first().map(|f| f.to_lowercase())).into(),
                        c.framework_version.clone().flatten().into(),
                        serde_json::to_string(&frameworks).expect("strings serialize").into(),
                        c.cuda_version.clone().flatten().into(),
                        c.preset_cuda.unwrap_or(false).into(),
                        c.python_version.clone().flatten().into(),
                        c.chip_type.unwrap_or(ChipType::Gpu).as_str().into(),
                        serde_json::to_string(&scopes).expect("strings serialize").into(),
                        reference.registry.clone().into(),
                        reference.repository.clone().into(),
                        reference.tag.clone().into(),
                        c.digest.clone().flatten().or(reference.digest.clone()).into(),
                        c.size.unwrap_or(0).into(),
                        c.arch.clone().flatten().into(),
                        c.os.clone().flatten().into(),
                        c.is_official.unwrap_or(false).into(),
                        visibility.into(),
                        owner.clone().into(),
                        c.publication.unwrap_or(Publication::Online).as_str().into(),
                        c.written_address.clone().flatten().into(),
                        self.caller.name.clone().into(),
                        self.caller.name.clone().into(),
                        now.clone().into(),
                        now.clone().into(),
                    ],
                )
                .map_err(|e| conflict(e, Some(&name), Some(&reference)))?
                .scalar_i64()
                .ok_or_else(|| ApiError::internal("creating an image", "no id returned"))?;
            write_scopes(self.ctx, id, &scopes)?;
            Ok::<_, ApiError>(id)
        })?;
        let location = match api {
            Api::V1 => format!("/api/v1/images/{id}"),
            Api::Console => format!("/api/images/{id}"),
        };
        let response = match api {
            Api::V1 => api.ok_with(
                201,
                json!({"image_id": id, "name": name}),
                Some("镜像创建成功"),
            ),
            Api::Console => api.ok_with(
                201,
                json!({"id": id.to_string(), "name": c.display_name.clone().flatten().unwrap_or(name)}),
                Some("创建镜像成功"),
            ),
        };
        Ok(response
            .with_header("location", &location)
            .with_header("etag", "\"1\""))
    }

    /// The revision an `If-Match` header demands, if any.
    fn expected_revision(&self) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.req.header("if-match") else {
            return Ok(None);
        };
        let v = value.trim();
        if v == "*" {
            return Ok(None);
        }
        let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
        v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "If-Match '{value}' is not an ETag this API issued (e.g. \"3\")"
            ))
        })
    }

    /// Applies `changes` to image `id` in one statement, optionally only at `expected` revision.
    fn apply(&self, id: i64, changes: &Changes, expected: Option<i64>) -> Result<Image, ApiError> {
        let assignments = changes.assignments();
        with_write_tx(self.ctx.db, || {
            let mut sql = String::from("UPDATE images SET ");
            let mut params: Vec<Value> = Vec::new();
            for (col, value) in &assignments {
                sql.push_str(col);
                sql.push_str(" = ?, ");
                params.push(value.clone());
            }
            sql.push_str("revision = revision + 1, updated_by = ?, updated_at = ? WHERE id = ?");
            params.extend([
                self.caller.name.clone().into(),
                time::now_rfc3339().into(),
                id.into(),
            ]);
            if let Some(rev) = expected {
                sql.push_str(" AND revision = ?");
                params.push(rev.into());
            }
            sql.push_str(" RETURNING id");
            let updated =
                self.ctx.db.query(&sql, &params).map_err(|e| {
                    conflict(e, changes.name.as_deref(), changes.reference.as_ref())
                })?;
            if updated.is_empty() {
                let now = store::get(self.ctx.db, id)?
                    .ok_or_else(|| ApiError::not_found(format!("image {id} not found")))?;
                return Err(ApiError::new(
                    412,
                    format!(
                        "image {id} changed since revision {} (it is at revision {}): reload it and retry",
                        expected.unwrap_or_default(),
                        now.revision
                    ),
                ));
            }
            if let Some(scopes) = &changes.applicable_scopes {
                write_scopes(self.ctx, id, scopes)?;
            }
            store::get(self.ctx.db, id)?
                .ok_or_else(|| ApiError::not_found(format!("image {id} not found")))
        })
    }

    fn update(&self, api: Api, id: i64) -> Result<Response, ApiError> {
        let changes = Changes::parse(api, self.req)?;
        let expected = self.expected_revision()?;
        self.modifiable(id)?;
        changes.authorize(self.caller)?;
        if let Some(reference) = &changes.reference {
            let field = if api == Api::V1 {
                "registry_url"
            } else {
                "imageAddress"
            };
            check_not_reserved(self.ctx, self.caller, reference, field)?;
        }
        let image = self.apply(id, &changes, expected)?;
        let response = match api {
            Api::V1 => api.ok(views::v1_detail(
                &image,
                &store::platforms(self.ctx.db, id)?,
            )),
            Api::Console => api.ok_with(
                200,
                json!({"id": id.to_string(), "name": image.console_name()}),
                Some("更新镜像成功"),
            ),
        };
        Ok(response.with_header("etag", &etag(&image)))
    }

    fn set_status(&self, id: i64) -> Result<Response, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct StatusBody {
            status: String,
        }
        let body: StatusBody = json_body(self.req)?;
        let status = publication("status", Some(body.status))?;
        let expected = self.expected_revision()?;
        self.modifiable(id)?;
        let image = self.apply(
            id,
            &Changes {
                publication: status,
                ..Changes::default()
            },
            expected,
        )?;
        Ok(Api::Console
            .ok_with(
                200,
                json!({"id": id.to_string(), "status": image.publication}),
                Some("状态更新成功"),
            )
            .with_header("etag", &etag(&image)))
    }

    async fn delete<S: HttpSender>(
        &self,
        api: Api,
        id: i64,
        sender: S,
    ) -> Result<Response, ApiError> {
        let image = self.modifiable(id)?;
        // Imported and built images live in Harbor too: delete there first, so a refusal
        // keeps the catalog row and the user can try again.
        crate::imports::delete_in_harbor(self.ctx, &image, sender).await?;
        with_write_tx(self.ctx.db, || {
            let building = self.ctx.db.query(
                "SELECT id FROM builds WHERE base_image_id = ? AND status IN ('building', 'running') LIMIT 1",
                &[id.into()],
            )?;
            if let Some(build) = building.first() {
                return Err(ApiError::conflict(format!(
                    "image {id} is the base of build {} which is still running; delete it after the build ends",
                    build.str("id")
                )));
            }
            for sql in [
                "DELETE FROM image_platforms WHERE image_id = ?",
                "DELETE FROM image_scopes WHERE image_id = ?",
                "DELETE FROM imports WHERE image_id = ?",
                "UPDATE builds SET base_image_id = NULL WHERE base_image_id = ?",
                "UPDATE builds SET image_id = NULL WHERE image_id = ?",
                "DELETE FROM images WHERE id = ?",
            ] {
                self.ctx.db.execute(sql, &[id.into()])?;
            }
            Ok(())
        })?;
        Ok(match api {
            Api::V1 => api.ok(json!({"image_id": id})),
            Api::Console => api.ok_with(200, serde_json::Value::Null, Some("删除镜像成功")),
        })
    }

    /// Console `POST /api/images/{id}/versions`: another tag of the same repository, with the
    /// parent's metadata.
    fn add_version(&self, id: i64) -> Result<Response, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct VersionBody {
            version: String,
            image_address: Option<String>,
            size: Option<SizeInput>,
            python_version: Option<String>,
            cuda_version: Option<String>,
            description: Option<String>,
            /// Accepted for seed 001's clients; berth records its own creation time.
            #[allow(dead_code)]
            create_time: Option<String>,
        }
        let body: VersionBody = json_body(self.req)?;
        let parent = self.modifiable(id)?;
        let version = name_text("version", body.version, 128)?;
        let reference = ImageRef::parse(&format!(
            "{}/{}:{}",
            parent.registry, parent.repository, version
        ))
        .map_err(|e| ApiError::bad_param("version", e))?;
        if let Some(address) = &body.image_address {
            let given =
                ImageRef::parse(address).map_err(|e| ApiError::bad_param("imageAddress", e))?;
            if given.tagged() != reference.tagged() {
                return Err(ApiError::bad_param(
                    "imageAddress",
                    format!(
                        "a version of {} must be {}",
                        parent.registry_url(),
                        reference.tagged()
                    ),
                ));
            }
        }
        let written = body.image_address.as_ref().map(|a| a.trim().to_owned());
        let size = body.size.map(|s| s.bytes("size")).transpose()?.unwrap_or(0);
        let base = parent
            .name
            .rsplit_once(':')
            .map_or(parent.name.as_str(), |(b, _)| b);
        let name = format!("{base}:{version}");
        let now = time::now_rfc3339();
        let opt = |field: &str, v: Option<String>, max| {
            opt_text(field, v.map(Some), max).map(Option::flatten)
        };
        let python =
            opt("pythonVersion", body.python_version, 32)?.or(parent.python_version.clone());
        let cuda = opt("cudaVersion", body.cuda_version, 32)?.or(parent.cuda_version.clone());
        let description =
            opt("description", body.description, 4096)?.or(parent.description.clone());
        with_write_tx(self.ctx.db, || {
            let new_id = self
                .ctx
                .db
                .query(
                    "INSERT INTO images (name, display_name, description, category, framework, framework_version, \
                     frameworks, cuda_version, preset_cuda, python_version, chip_type, applicable_scopes, registry, \
                     repository, tag, size, is_official, visibility, owner, status, publication, origin, image_address, \
                     created_by, updated_by, created_at, updated_at) \
                     SELECT ?, display_name, ?, category, framework, framework_version, frameworks, ?, \
                     preset_cuda, ?, chip_type, applicable_scopes, registry, repository, ?, ?, is_official, \
                     visibility, owner, 'ready', publication, 'manual', ?, ?, ?, ?, ? FROM images WHERE id = ? \
                     RETURNING id",
                    &[
                        name.clone().into(),
                        description.clone().into(),
                        cuda.clone().into(),
                        python.clone().into(),
                        version.clone().into(),
                        size.into(),
                        written.clone().into(),
                        self.caller.name.clone().into(),
                        self.caller.name.clone().into(),
                        now.clone().into(),
                        now.clone().into(),
                        id.into(),
                    ],
                )
                .map_err(|e| conflict(e, Some(&name), Some(&reference)))?
                .scalar_i64()
                .ok_or_else(|| ApiError::internal("creating a version", "no id returned"))?;
            write_scopes(self.ctx, new_id, &parent.applicable_scopes)?;
            Ok::<_, ApiError>(())
        })?;
        Ok(Api::Console.ok_with(
            201,
            json!({"version": version, "imageAddress": written.unwrap_or_else(|| reference.tagged())}),
            Some("创建版本成功"),
        ))
    }
}

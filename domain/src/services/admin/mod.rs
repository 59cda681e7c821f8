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
use crate::config::Context;
use crate::db::{DbError, with_write_tx};
use crate::envelope::{Api, ApiError};
use crate::http::{Request, Response};
use crate::image_ref::ImageRef;
use crate::model::{ChipType, Image, Publication};
use crate::outbound::HttpSender;
use crate::request::json_body;
use crate::services::catalog::{etag, visible_image};
use crate::services::harbor_ops::delete_in_harbor;
use crate::store::image_writes::{self, ManualImage, NewVersion};
use crate::store::{builds, images};
use crate::{time, views};

mod validation;
use validation::{Changes, SizeInput, name_text, opt_text, publication};

/// `POST /api/v1/images` and `POST /api/images`.
pub fn create(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    api: Api,
) -> Result<Response, ApiError> {
    Writer { req, ctx, caller }.create(api)
}

/// `PUT`/`PATCH /api/v1/images/{id}` and `PUT /api/images/{id}`.
pub fn update(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    api: Api,
    id: i64,
) -> Result<Response, ApiError> {
    Writer { req, ctx, caller }.update(api, id)
}

/// `DELETE /api/v1/images/{id}` and `DELETE /api/images/{id}`.
pub async fn delete<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    api: Api,
    id: i64,
    sender: S,
) -> Result<Response, ApiError> {
    Writer { req, ctx, caller }.delete(api, id, sender).await
}

/// `PUT /api/images/{id}/status`.
pub fn set_status(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    id: i64,
) -> Result<Response, ApiError> {
    Writer { req, ctx, caller }.set_status(id)
}

/// `POST /api/images/{id}/versions`.
pub fn add_version(
    req: &Request,
    ctx: &Context<'_>,
    caller: &Caller,
    id: i64,
) -> Result<Response, ApiError> {
    Writer { req, ctx, caller }.add_version(id)
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
        let image = visible_image(id, self.ctx, self.caller)?;
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
            let framework = c
                .framework
                .clone()
                .flatten()
                .or_else(|| frameworks.first().map(|f| f.to_lowercase()));
            let id = image_writes::insert_manual(
                self.ctx.db,
                &ManualImage {
                    name: &name,
                    display_name: c.display_name.clone().flatten(),
                    description: c.description.clone().flatten(),
                    category: c.category.clone().flatten(),
                    framework,
                    framework_version: c.framework_version.clone().flatten(),
                    frameworks: &frameworks,
                    cuda_version: c.cuda_version.clone().flatten(),
                    preset_cuda: c.preset_cuda.unwrap_or(false),
                    python_version: c.python_version.clone().flatten(),
                    chip_type: c.chip_type.unwrap_or(ChipType::Gpu),
                    applicable_scopes: &scopes,
                    reference: &reference,
                    digest: c.digest.clone().flatten().or(reference.digest.clone()),
                    size: c.size.unwrap_or(0),
                    arch: c.arch.clone().flatten(),
                    os: c.os.clone().flatten(),
                    is_official: c.is_official.unwrap_or(false),
                    visibility,
                    owner: &owner,
                    publication: c.publication.unwrap_or(Publication::Online),
                    image_address: c.written_address.clone().flatten(),
                    by: &self.caller.name,
                    now: &now,
                },
            )
            .map_err(|e| conflict(e, Some(&name), Some(&reference)))?
            .ok_or_else(|| ApiError::internal("creating an image", "no id returned"))?;
            image_writes::write_scopes(self.ctx.db, id, &scopes)?;
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
            let updated = image_writes::update_columns(
                self.ctx.db,
                id,
                &assignments,
                &self.caller.name,
                &time::now_rfc3339(),
                expected,
            )
            .map_err(|e| conflict(e, changes.name.as_deref(), changes.reference.as_ref()))?;
            if !updated {
                let now = images::get(self.ctx.db, id)?
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
                image_writes::write_scopes(self.ctx.db, id, scopes)?;
            }
            images::get(self.ctx.db, id)?
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
                &images::platforms(self.ctx.db, id)?,
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
        delete_in_harbor(self.ctx, &image, sender).await?;
        with_write_tx(self.ctx.db, || {
            if let Some(build) = builds::running_on_base(self.ctx.db, id)? {
                return Err(ApiError::conflict(format!(
                    "image {id} is the base of build {build} which is still running; delete it after the build ends"
                )));
            }
            image_writes::delete_image(self.ctx.db, id)?;
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
            let new_id = image_writes::insert_version(
                self.ctx.db,
                &NewVersion {
                    parent: id,
                    name: &name,
                    description: description.clone(),
                    cuda_version: cuda.clone(),
                    python_version: python.clone(),
                    tag: &version,
                    size,
                    image_address: written.clone(),
                    by: &self.caller.name,
                    now: &now,
                },
            )
            .map_err(|e| conflict(e, Some(&name), Some(&reference)))?
            .ok_or_else(|| ApiError::internal("creating a version", "no id returned"))?;
            image_writes::write_scopes(self.ctx.db, new_id, &parent.applicable_scopes)?;
            Ok::<_, ApiError>(())
        })?;
        Ok(Api::Console.ok_with(
            201,
            json!({"version": version, "imageAddress": written.unwrap_or_else(|| reference.tagged())}),
            Some("创建版本成功"),
        ))
    }
}

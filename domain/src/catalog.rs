//! The catalog component's routes: every read of both APIs. Writes on the same paths are
//! forwarded to other components (see [`forward_target`]).

use serde_json::json;

use crate::auth::{self, Caller};
use crate::config::Context;
use crate::envelope::{Api, ApiError, respond};
use crate::http::{Request, Response};
use crate::outbound::HttpSender;
use crate::query::{ListQuery, View};
use crate::{imports, migrations, store, views};

/// The component a request on catalog's paths belongs to, when it is not catalog's: import
/// retries go to the importer, other writes (POST, PUT, PATCH, DELETE) on the shared image
/// paths to admin.
pub fn forward_target(req: &Request) -> Option<&'static str> {
    if !matches!(req.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        return None;
    }
    if is_under(&req.path, "/api/v1/images") && req.path.ends_with("/importing:retry") {
        return Some("importer");
    }
    if req.path == "/api/images/build" {
        return Some("importer");
    }
    if is_under(&req.path, "/api/v1/builds") && req.path.ends_with("/status") {
        return Some("progress");
    }

    (is_under(&req.path, "/api/v1/images") || is_under(&req.path, "/api/images")).then_some("admin")
}

fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub async fn handle<S: HttpSender>(req: &Request, ctx: &Context<'_>, sender: S) -> Response {
    let api = Api::for_path(&req.path);
    respond(api, route(req, ctx, sender).await)
}

/// Authenticates the caller from the `Authorization` header.
pub fn caller(req: &Request, ctx: &Context<'_>) -> Result<Caller, ApiError> {
    let settings = ctx.settings.auth();
    auth::authenticate_with(
        req.header("authorization"),
        settings.jwt_secret.expose(),
        ctx.now,
        &settings.token_policy,
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))
}

/// Parses an `{id}` path segment.
pub fn parse_id(segment: &str) -> Result<i64, ApiError> {
    match segment.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::bad_param(
            "id",
            format!("'{segment}' is not a positive integer image id"),
        )),
    }
}

async fn route<S: HttpSender>(
    req: &Request,
    ctx: &Context<'_>,
    sender: S,
) -> Result<Response, ApiError> {
    let caller = caller(req, ctx)?;
    let segments = req.segments();
    // The reads that may ask Harbor.
    match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["api", "v1", "images", id, "importing-details"] => {
            get_only(req)?;
            let id = parse_id(id)?;
            migrations::ensure_for(ctx)?;
            return imports::importing_details(id, ctx, &caller, sender).await;
        }
        ["api", "v1", "builds", id] => {
            get_only(req)?;
            return crate::builds::get(id, ctx, &caller, sender).await;
        }
        ["api", "v1", "builds"] => {
            get_only(req)?;
            return crate::builds::list(ctx, &caller, sender).await;
        }
        ["api", "v1", "builds", id, "cancel"] => {
            if req.method != "POST" {
                return Err(ApiError::method_not_allowed(&req.method, "POST"));
            }
            return crate::builds::cancel(id, ctx, &caller, sender).await;
        }
        ["api", "v1", "harbor", "stats"] => {
            get_only(req)?;
            migrations::ensure_for(ctx)?;
            return imports::harbor_stats(ctx, sender).await;
        }
        _ => {}
    }
    route_local(req, ctx, &caller)
}

fn get_only(req: &Request) -> Result<(), ApiError> {
    if req.method == "GET" {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(&req.method, "GET"))
    }
}

fn route_local(req: &Request, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let segments = req.segments();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let read = |f: &dyn Fn() -> Result<Response, ApiError>| {
        get_only(req)?;
        migrations::ensure_for(ctx)?;
        f()
    };
    match segments.as_slice() {
        ["api", "v1", "images"] => read(&|| list_v1(req, ctx, caller)),
        ["api", "v1", "images", id] => read(&|| detail_v1(parse_id(id)?, ctx, caller)),
        ["api", "images"] => read(&|| list_console(req, ctx, caller)),
        ["api", "images", id] => read(&|| detail_console(parse_id(id)?, ctx, caller)),
        ["api", "images", id, "versions"] => read(&|| versions_console(parse_id(id)?, ctx, caller)),
        ["api", "v1", "images", id, "use"] => {
            read(&|| use_image(Api::V1, parse_id(id)?, ctx, caller))
        }
        ["api", "images", id, "use"] => {
            read(&|| use_image(Api::Console, parse_id(id)?, ctx, caller))
        }

        ["api", "v1", "openapi.json"] => {
            read(&|| Ok(Response::json(200, &crate::openapi::document())))
        }
        _ => Err(ApiError::no_route(&req.method, &req.path)),
    }
}

/// A visible image, or 404 (an invisible image is not revealed to exist).
pub fn visible_image(
    id: i64,
    ctx: &Context<'_>,
    caller: &Caller,
) -> Result<crate::model::Image, ApiError> {
    store::get(ctx.db, id)?
        .filter(|i| store::can_see(caller, i))
        .ok_or_else(|| ApiError::not_found(format!("image {id} not found")))
}

fn list_v1(req: &Request, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let q = ListQuery::from_v1(&req.query_pairs())?;
    Ok(match q.view {
        View::Default => {
            let (images, total) = store::list(ctx.db, &q, caller)?;
            Api::V1.ok(V1Page {
                pagination: Pagination {
                    page: q.page.number,
                    page_size: q.page.size,
                    total: total.count,
                    total_pages: q.page.total_pages(total.count),
                    total_capped: capped(total),
                },
                items: images.iter().map(views::v1_item).collect(),
            })
        }
        View::Flat => {
            let (images, total) = store::list(ctx.db, &q, caller)?;
            Api::V1.ok(ImagesPage {
                total_count: total.count,
                total_count_capped: capped(total),
                images: images.iter().map(views::flat_item).collect(),
            })
        }
        View::Grouped => {
            let (groups, total) = store::list_grouped(ctx.db, &q, caller)?;
            Api::V1.ok(ImagesPage {
                total_count: total.count,
                total_count_capped: capped(total),
                images: groups
                    .iter()
                    .map(|(reg, repo, imgs)| views::group(reg, repo, imgs))
                    .collect(),
            })
        }
    })
}

/// A page of `/api/v1/images`.
#[derive(serde::Serialize)]
struct V1Page<'a> {
    pagination: Pagination,
    items: Vec<views::V1Item<'a>>,
}

/// `/api/v1/images`' pagination.
#[derive(serde::Serialize)]
struct Pagination {
    page: u32,
    page_size: u32,
    total: i64,
    total_pages: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_capped: Option<bool>,
}

/// Seed 003's page of images (flat or grouped).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ImagesPage<T> {
    total_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_count_capped: Option<bool>,
    images: Vec<T>,
}

/// A name search's total stopped at [`store::NAME_SEARCH_COUNT_CAP`] says so with `true`;
/// the flag is absent when the total is exact.
fn capped(total: store::Total) -> Option<bool> {
    total.capped.then_some(true)
}

fn detail_v1(id: i64, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let image = visible_image(id, ctx, caller)?;
    let platforms = store::platforms(ctx.db, id)?;
    let facts = crate::image_contents::extra_facts(ctx.db, &image)?;
    Ok(Api::V1
        .ok(views::WithFacts {
            view: views::v1_detail(&image, &platforms),
            facts: views::V1Facts::from(facts),
        })
        .with_header("etag", &etag(&image)))
}

/// The image's revision as an entity tag, for `If-Match` on writes.
pub fn etag(image: &crate::model::Image) -> String {
    format!("\"{}\"", image.revision)
}

fn list_console(req: &Request, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let q = ListQuery::from_console(&req.query_pairs())?;
    let (images, total) = store::list(ctx.db, &q, caller)?;
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ConsolePage<'a> {
        total: i64,
        page_no: u32,
        page_size: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        total_capped: Option<bool>,
        list: Vec<views::ConsoleItem<'a>>,
    }
    /// Seed 001's envelope, with seed 002's `images` beside it: a portal written against
    /// either reads its own field.
    #[derive(serde::Serialize)]
    struct ConsoleList<'a> {
        success: bool,
        data: ConsolePage<'a>,
        images: Vec<views::PortalItem<'a>>,
    }
    let body = ConsoleList {
        success: true,
        data: ConsolePage {
            total: total.count,
            page_no: q.page.number,
            page_size: q.page.size,
            total_capped: capped(total),
            list: images.iter().map(views::console_item).collect(),
        },
        images: images.iter().map(views::portal_item).collect(),
    };
    Ok(Response::json_bytes(
        200,
        serde_json::to_vec(&body).expect("response bodies serialize"),
    ))
}

fn detail_console(id: i64, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let image = visible_image(id, ctx, caller)?;
    let facts = crate::image_contents::extra_facts(ctx.db, &image)?;
    Ok(Api::Console
        .ok(views::WithFacts {
            view: views::console_detail(&image),
            facts: views::ConsoleFacts::from(facts),
        })
        .with_header("etag", &etag(&image)))
}

fn versions_console(id: i64, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let image = visible_image(id, ctx, caller)?;
    let versions = store::versions(ctx.db, &image, caller)?;
    Ok(Api::Console.ok(json!({
        "list": versions.iter().map(views::console_version).collect::<Vec<_>>(),
        "total": versions.len(),
    })))
}

/// `GET …/images/{id}/use`: what starting an environment from the image needs; 409 until the
/// image is ready.
fn use_image(api: Api, id: i64, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let image = visible_image(id, ctx, caller)?;
    if image.status != "ready" {
        return Err(ApiError::conflict(format!(
            "image {id} is {}: it can be used once it is ready",
            image.status
        )));
    }
    let platforms = store::platforms(ctx.db, id)?;
    Ok(api.ok(views::use_view(&image, &platforms)))
}

//! Catalog reads, for both APIs: lists, details, versions, what using an image needs.

use serde_json::json;

use crate::auth::Caller;
use crate::config::Context;
use crate::envelope::{Api, ApiError};
use crate::http::Response;
use crate::query::{ListQuery, View};
use crate::store::image_detail::{self, Detail};
use crate::store::images as store;
use crate::views;

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

/// A visible image with its platforms and facts (one statement), or 404: an invisible
/// image is not revealed to exist.
fn visible_detail(id: i64, ctx: &Context<'_>, caller: &Caller) -> Result<Detail, ApiError> {
    image_detail::read(ctx.db, id)?
        .filter(|d| store::can_see(caller, &d.image))
        .ok_or_else(|| ApiError::not_found(format!("image {id} not found")))
}

/// The catalog's revision, which a list's entity tag names (conditional GETs).
pub fn revision(ctx: &Context<'_>) -> Result<i64, ApiError> {
    Ok(store::catalog_revision(ctx.db)?)
}

/// A `/api/v1/images` page for a query already parsed (`ListQuery::from_v1`).
pub fn list_v1(q: &ListQuery, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
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

pub fn detail_v1(id: i64, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let d = visible_detail(id, ctx, caller)?;
    Ok(Api::V1
        .ok(views::WithFacts {
            view: views::v1_detail(&d.image, &d.platforms),
            facts: views::V1Facts::from(d.facts),
        })
        .with_header("etag", &etag(&d.image)))
}

/// The image's revision as an entity tag, for `If-Match` on writes.
pub fn etag(image: &crate::model::Image) -> String {
    format!("\"{}\"", image.revision)
}

/// An `/api/images` page for a query already parsed (`ListQuery::from_console`).
pub fn list_console(
    q: &ListQuery,
    ctx: &Context<'_>,
    caller: &Caller,
) -> Result<Response, ApiError> {
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

pub fn detail_console(id: i64, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let d = visible_detail(id, ctx, caller)?;
    Ok(Api::Console
        .ok(views::WithFacts {
            view: views::console_detail(&d.image),
            facts: views::ConsoleFacts::from(d.facts),
        })
        .with_header("etag", &etag(&d.image)))
}

pub fn versions_console(id: i64, ctx: &Context<'_>, caller: &Caller) -> Result<Response, ApiError> {
    let image = visible_image(id, ctx, caller)?;
    let versions = store::versions(ctx.db, &image, caller)?;
    Ok(Api::Console.ok(json!({
        "list": versions.iter().map(views::console_version).collect::<Vec<_>>(),
        "total": versions.len(),
    })))
}

/// `GET …/images/{id}/use`: what starting an environment from the image needs; 409 until the
/// image is ready.
pub fn use_image(
    api: Api,
    id: i64,
    ctx: &Context<'_>,
    caller: &Caller,
) -> Result<Response, ApiError> {
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

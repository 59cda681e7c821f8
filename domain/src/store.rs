//! Image queries: every read of the `images` table goes through here.

use crate::auth::Caller;
use crate::db::{Db, DbError, Value, like_contains};
use crate::model::{IMAGE_COLUMNS, Image, Platform};
use crate::query::{Filters, ListQuery, StatusFilter};

/// A `WHERE` clause under construction: SQL fragments and their parameters, in order.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    fn push(&mut self, clause: impl Into<String>, params: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.into());
        self.params.extend(params);
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// Who sees what: admins everything; users public online images and their own.
fn visible_to(w: &mut Where, caller: &Caller) {
    if !caller.is_admin() {
        w.push(
            "((visibility = 'public' AND publication = 'online') OR owner = ?)",
            [caller.name.clone().into()],
        );
    }
}

pub fn can_see(caller: &Caller, image: &Image) -> bool {
    caller.is_admin()
        || (image.visibility == "public" && image.publication == "online")
        || image.owner.as_deref() == Some(caller.name.as_str())
}

fn filtered(db: &dyn Db, f: &Filters, caller: &Caller) -> Where {
    let d = db.dialect();
    let mut w = Where::default();
    visible_to(&mut w, caller);
    if let Some(v) = &f.category {
        w.push(d.ieq("category"), [v.clone().into()]);
    }
    if let Some(v) = &f.framework {
        w.push(d.ieq("framework"), [v.clone().into()]);
    }
    if let Some(v) = f.is_official {
        w.push("is_official = ?", [v.into()]);
    }
    if let Some(v) = f.chip_type {
        w.push("chip_type = ?", [v.as_str().into()]);
    }
    if let Some(v) = &f.applicable_scope {
        w.push(
            "id IN (SELECT image_id FROM image_scopes WHERE scope = ?)",
            [v.clone().into()],
        );
    }
    if let Some(v) = &f.name {
        let pattern = like_contains(v);
        w.push(
            format!("({} OR {})", d.ilike("name"), d.ilike("display_name")),
            [pattern.clone().into(), pattern.into()],
        );
    }
    if let Some(v) = &f.text {
        let pattern = like_contains(v);
        let columns = ["name", "display_name", "description", "framework"];
        let clause = columns.map(|c| d.ilike(c)).join(" OR ");
        w.push(
            format!("({clause})"),
            columns.map(|_| pattern.clone().into()),
        );
    }
    if let Some(v) = &f.tag {
        w.push("tag = ?", [v.clone().into()]);
    }
    match f.ready {
        Some(true) => w.push("status = 'ready'", []),
        Some(false) => w.push("status <> 'ready'", []),
        None => {}
    }
    if let Some(v) = &f.owner {
        w.push("owner = ?", [v.clone().into()]);
    }
    match f.status {
        Some(StatusFilter::Active) => w.push("status = 'ready' AND publication = 'online'", []),
        Some(StatusFilter::Is(a)) => w.push("status = ?", [a.as_str().into()]),
        None => {}
    }
    if let Some(p) = f.publication {
        w.push("publication = ?", [p.as_str().into()]);
    }
    w
}

fn order_by(q: &ListQuery) -> String {
    let dir = if q.sort.descending { "DESC" } else { "ASC" };
    // NULLs sort as SQLite sorts them, first ascending and last descending, on both stores
    // (PostgreSQL's default is the opposite). Only nullable columns say so, so that
    // PostgreSQL can still read the others in index order.
    let nulls = match (q.sort.key.nullable(), q.sort.descending) {
        (false, _) => "",
        (true, false) => " NULLS FIRST",
        (true, true) => " NULLS LAST",
    };
    format!(
        " ORDER BY {col} {dir}{nulls}, id {dir}",
        col = q.sort.key.column()
    )
}

fn images(db: &dyn Db, sql: &str, params: &[Value]) -> Result<Vec<Image>, DbError> {
    Ok(db
        .query(sql, params)?
        .iter()
        .map(|r| Image::from_row(&r))
        .collect())
}

/// One page of matching images and the total number of matches.
pub fn list(db: &dyn Db, q: &ListQuery, caller: &Caller) -> Result<(Vec<Image>, i64), DbError> {
    let w = filtered(db, &q.filters, caller);
    let total = db
        .query(
            &format!("SELECT COUNT(*) FROM images{}", w.sql()),
            &w.params,
        )?
        .scalar_i64()
        .unwrap_or(0);
    if q.page.offset() >= total {
        return Ok((Vec::new(), total));
    }
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM images{}{} LIMIT ? OFFSET ?",
        w.sql(),
        order_by(q)
    );
    let mut params = w.params;
    params.extend([
        Value::Integer(q.page.size as i64),
        Value::Integer(q.page.offset()),
    ]);
    Ok((images(db, &sql, &params)?, total))
}

/// Images grouped by `registry/repository`: one page of groups, each with its matching
/// images, and the total number of groups.
pub fn list_grouped(
    db: &dyn Db,
    q: &ListQuery,
    caller: &Caller,
) -> Result<(Vec<(String, String, Vec<Image>)>, i64), DbError> {
    let w = filtered(db, &q.filters, caller);
    let total = db
        .query(
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM images{} GROUP BY registry, repository) g",
                w.sql()
            ),
            &w.params,
        )?
        .scalar_i64()
        .unwrap_or(0);
    if q.page.offset() >= total {
        return Ok((Vec::new(), total));
    }
    let mut params = w.params.clone();
    params.extend([
        Value::Integer(q.page.size as i64),
        Value::Integer(q.page.offset()),
    ]);
    let groups = db.query(
        &format!(
            "SELECT registry, repository FROM images{} GROUP BY registry, repository \
             ORDER BY registry, repository LIMIT ? OFFSET ?",
            w.sql()
        ),
        &params,
    )?;
    let mut out = Vec::new();
    for g in groups.iter() {
        let (registry, repository) = (g.str("registry").to_owned(), g.str("repository").to_owned());
        let mut gw = filtered(db, &q.filters, caller);
        gw.push(
            "registry = ? AND repository = ?",
            [registry.clone().into(), repository.clone().into()],
        );
        let sql = format!(
            "SELECT {IMAGE_COLUMNS} FROM images{}{}",
            gw.sql(),
            order_by(q)
        );
        out.push((registry, repository, images(db, &sql, &gw.params)?));
    }
    Ok((out, total))
}

pub fn get(db: &dyn Db, id: i64) -> Result<Option<Image>, DbError> {
    let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?");
    Ok(images(db, &sql, &[id.into()])?.into_iter().next())
}

/// The versions of an image: the visible images of the same repository, newest first.
pub fn versions(db: &dyn Db, image: &Image, caller: &Caller) -> Result<Vec<Image>, DbError> {
    let mut w = Where::default();
    w.push(
        "registry = ? AND repository = ?",
        [
            image.registry.clone().into(),
            image.repository.clone().into(),
        ],
    );
    visible_to(&mut w, caller);
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM images{} ORDER BY created_at DESC, id DESC",
        w.sql()
    );
    images(db, &sql, &w.params)
}

pub fn platforms(db: &dyn Db, image_id: i64) -> Result<Vec<Platform>, DbError> {
    let rows = db.query(
        "SELECT digest, architecture, os, variant, size FROM image_platforms \
         WHERE image_id = ? ORDER BY architecture, variant NULLS FIRST",
        &[image_id.into()],
    )?;
    Ok(rows
        .iter()
        .map(|r| Platform {
            digest: r.str("digest").to_owned(),
            architecture: r.str("architecture").to_owned(),
            os: r.str("os").to_owned(),
            variant: r.opt_string("variant"),
            size: r.i64("size"),
        })
        .collect())
}

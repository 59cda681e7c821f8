//! Image reads: every read of the `images` table (and its platforms and facts) goes through
//! here; the writes are in [`super::image_writes`].

use crate::auth::Caller;
use crate::db::{Db, DbError, Dialect, Value, like_contains};
use crate::image_contents::ExtraFacts;
use crate::model::{IMAGE_COLUMNS, Image, Platform};
use crate::query::{Filters, ListQuery, SortKey, StatusFilter};

mod filters;
use filters::{Condition, Conditions, NameSearch, filtered};

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

/// Public, online images: what every user sees.
const LISTED: &str = "visibility = 'public' AND publication = 'online'";
/// [`LISTED`] without the use of publication's index (SQLite's unary `+`).
const LISTED_WALKED: &str = "visibility = 'public' AND +publication = 'online'";

/// A part of what a caller sees; a caller's parts are disjoint, so their counts add up and
/// their pages merge. Each part is one ordered index walk: the listed images in sort order,
/// the caller's own unlisted ones through the owner index.
enum Arm<'a> {
    /// Everything (admins).
    All,
    Listed,
    /// The caller's own images that are not listed.
    OwnUnlisted(&'a str),
}

fn arms(caller: &Caller) -> Vec<Arm<'_>> {
    if caller.is_admin() {
        vec![Arm::All]
    } else {
        vec![Arm::Listed, Arm::OwnUnlisted(&caller.name)]
    }
}

impl Arm<'_> {
    fn clause(&self, listed: &str) -> Option<(String, Vec<Value>)> {
        match self {
            Arm::All => None,
            Arm::Listed => Some((listed.to_owned(), Vec::new())),
            Arm::OwnUnlisted(owner) => Some((
                format!("owner = ? AND NOT ({LISTED})"),
                vec![(*owner).into()],
            )),
        }
    }
}

/// ` WHERE a AND b ...` over `clauses`, appending their parameters to `params`.
fn where_sql<'a>(
    clauses: impl IntoIterator<Item = (&'a str, &'a [Value])>,
    params: &mut Vec<Value>,
) -> String {
    let mut parts = Vec::new();
    for (sql, p) in clauses {
        parts.push(sql);
        params.extend_from_slice(p);
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", parts.join(" AND "))
    }
}

/// The arm's filters on `images`, appending parameters.
fn arm_where(arm: &Arm<'_>, c: &Conditions, params: &mut Vec<Value>) -> String {
    let own = arm.clause(c.listed);
    let own = own.as_ref().map(|(sql, p)| (sql.as_str(), p.as_slice()));
    match arm {
        Arm::OwnUnlisted(_) => where_sql(own.into_iter().chain(c.among_few()), params),
        Arm::All | Arm::Listed => where_sql(own.into_iter().chain(c.on_images()), params),
    }
}

/// `SELECT <count>` of matching images in one arm: summed from `image_counts` when every
/// filter is one of its columns, else counted through the most selective index.
fn arm_count(arm: &Arm<'_>, c: &Conditions, params: &mut Vec<Value>) -> String {
    match (arm, c.on_counts()) {
        // No filter at all: one row of the totals the triggers keep.
        (Arm::All, Some(counts)) if counts.is_empty() => {
            "SELECT n FROM catalog_totals WHERE name = 'images'".into()
        }
        (Arm::Listed, Some(counts)) if counts.is_empty() => {
            "SELECT n FROM catalog_totals WHERE name = 'listed_images'".into()
        }
        (Arm::All | Arm::Listed, Some(counts)) => {
            let listed = matches!(arm, Arm::Listed).then_some((LISTED, &[][..]));
            format!(
                "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM image_counts{}",
                where_sql(listed.into_iter().chain(counts), params)
            )
        }
        _ => format!("SELECT COUNT(*) FROM images{}", arm_where(arm, c, params)),
    }
}

/// How many images (or repositories) a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    /// A name search matching more than [`NAME_SEARCH_COUNT_CAP`] listed images stops
    /// counting there: `count` is then a lower bound.
    pub capped: bool,
}

impl Total {
    fn exact(count: i64) -> Total {
        Total {
            count,
            capped: false,
        }
    }
}

/// Matches a name search counts exactly; beyond, its total says "at least this many".
/// Counting every match of a common substring (a third of a million-image catalog) would
/// cost hundreds of milliseconds per page; a thousand take a few (docs/api.md).
pub const NAME_SEARCH_COUNT_CAP: i64 = 1_000;

/// The number of images the caller sees that match `c`: one statement.
fn count(db: &dyn Db, c: &Conditions, caller: &Caller) -> Result<Total, DbError> {
    let mut params = Vec::new();
    let Some(search) = &c.name_search else {
        let parts: Vec<String> = arms(caller)
            .iter()
            .map(|arm| format!("({})", arm_count(arm, c, &mut params)))
            .collect();
        let sql = format!("SELECT {}", parts.join(" + "));
        return Ok(Total::exact(
            db.query(&sql, &params)?.scalar_i64().unwrap_or(0),
        ));
    };
    // A name search: the catalog-wide arm is counted by walking the trigram index's
    // matches, up to the cap; the caller's own images exactly, through the owner index.
    let parts: Vec<String> = arms(caller)
        .iter()
        .map(|arm| match arm {
            Arm::OwnUnlisted(_) => format!("({})", arm_count(arm, c, &mut params)),
            Arm::All | Arm::Listed => {
                let from = match search {
                    NameSearch::Fts(phrase) => {
                        params.push(phrase.clone().into());
                        "(SELECT rowid AS matched FROM images_name_fts WHERE images_name_fts MATCH ?) m \
                         JOIN images ON images.id = m.matched"
                    }
                    NameSearch::Trigram => "images",
                };
                let own = arm.clause(c.listed);
                let own = own.as_ref().map(|(sql, p)| (sql.as_str(), p.as_slice()));
                let w = where_sql(own.into_iter().chain(c.among_few()), &mut params);
                format!(
                    "(SELECT COUNT(*) FROM (SELECT 1 FROM {from}{w} LIMIT {}) capped)",
                    NAME_SEARCH_COUNT_CAP + 1
                )
            }
        })
        .collect();
    let rows = db.query(&format!("SELECT {}", parts.join(", ")), &params)?;
    let values = rows.rows.first().cloned().unwrap_or_default();
    let (mut count, mut capped) = (0, false);
    for (arm, v) in arms(caller).iter().zip(values) {
        let n = v.as_i64().unwrap_or(0);
        match arm {
            Arm::OwnUnlisted(_) => count += n,
            Arm::All | Arm::Listed => {
                capped = n > NAME_SEARCH_COUNT_CAP;
                count += n.min(NAME_SEARCH_COUNT_CAP);
            }
        }
    }
    Ok(Total { count, capped })
}

/// The number of repositories holding an image the caller sees that matches `c`. Without
/// filters it is read from the totals the triggers keep (plus, for a user, their own
/// repositories that have no listed image); with filters the groups are counted.
fn group_count(db: &dyn Db, c: &Conditions, caller: &Caller) -> Result<Total, DbError> {
    let mut limit = String::new();
    let mut capped_search = false;
    if c.name_search.is_some() && count(db, c, caller)?.capped {
        // Too many matches to group them all: count repositories up to the cap, walking
        // them in order and testing the name on the way.
        capped_search = true;
        limit = format!(" LIMIT {}", NAME_SEARCH_COUNT_CAP + 1);
    }
    let (sql, params): (String, Vec<Value>) = match (c.filters.is_empty(), caller.is_admin()) {
        (true, true) => (
            "SELECT n FROM catalog_totals WHERE name = 'repositories'".into(),
            Vec::new(),
        ),
        (true, false) => (
            "SELECT (SELECT n FROM catalog_totals WHERE name = 'listed_repositories') + \
             (SELECT COUNT(*) FROM (SELECT DISTINCT registry, repository FROM images WHERE owner = ?) o \
             JOIN repositories r ON r.registry = o.registry AND r.repository = o.repository \
             WHERE r.listed = 0)"
                .into(),
            vec![caller.name.clone().into()],
        ),
        (false, _) => {
            let mut visible = Conditions::default();
            visible_conditions(&mut visible, caller);
            let mut params = Vec::new();
            let filters = if capped_search {
                where_sql(visible.on_images().chain(c.among_few()), &mut params)
            } else {
                where_sql(visible.on_images().chain(c.on_images()), &mut params)
            };
            (
                format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM images{filters} GROUP BY registry, repository{limit}) g"
                ),
                params,
            )
        }
    };
    let n = db.query(&sql, &params)?.scalar_i64().unwrap_or(0);
    Ok(Total {
        count: if capped_search {
            n.min(NAME_SEARCH_COUNT_CAP)
        } else {
            n
        },
        capped: capped_search && n > NAME_SEARCH_COUNT_CAP,
    })
}

/// The single-statement visibility filter, for queries that group.
fn visible_conditions(c: &mut Conditions, caller: &Caller) {
    if !caller.is_admin() {
        c.filters.insert(
            0,
            Condition {
                images: format!("(({LISTED}) OR owner = ?)"),
                counts: None,
                params: vec![caller.name.clone().into()],
                ..Default::default()
            },
        );
    }
}

fn order_by(d: Dialect, q: &ListQuery) -> String {
    let dir = if q.sort.descending { "DESC" } else { "ASC" };
    let col = q.sort.key.column();
    if q.sort.key == SortKey::Id {
        return format!(" ORDER BY id {dir}");
    }
    match d {
        // SQLite sorts NULLs first ascending and last descending by itself. Category and
        // framework are indexed (and filtered) case-insensitively: sorting them the same way
        // reads them in index order instead of sorting the catalog.
        Dialect::Sqlite => {
            let collate = match q.sort.key {
                SortKey::Category | SortKey::Framework => " COLLATE NOCASE",
                _ => "",
            };
            format!(" ORDER BY {col}{collate} {dir}, id {dir}")
        }
        // NULLs sort as SQLite sorts them, first ascending and last descending, on both stores
        // (PostgreSQL's default is the opposite). Only nullable columns say so, so that
        // PostgreSQL can still read the others in index order.
        Dialect::Postgres => {
            let nulls = match (q.sort.key.nullable(), q.sort.descending) {
                (false, _) => "",
                (true, false) => " NULLS FIRST",
                (true, true) => " NULLS LAST",
            };
            format!(" ORDER BY {col} {dir}{nulls}, id {dir}")
        }
    }
}

/// How the grouped view orders repositories: by registry and repository name, or, when a
/// sort is requested, by each repository's first image in that order (its smallest value
/// ascending, its largest descending). Returns the ORDER BY of the groups and the rank column
/// it needs (`, MIN(col) AS group_rank`).
fn group_order(d: Dialect, q: &ListQuery) -> (String, String) {
    if !q.sort_requested {
        return ("registry, repository".into(), String::new());
    }
    let (aggregate, dir) = if q.sort.descending {
        ("MAX", "DESC")
    } else {
        ("MIN", "ASC")
    };
    let col = q.sort.key.column();
    let (collate, nulls) = match d {
        Dialect::Sqlite if matches!(q.sort.key, SortKey::Category | SortKey::Framework) => {
            (" COLLATE NOCASE", "")
        }
        Dialect::Sqlite => ("", ""),
        // NULLs as SQLite sorts them (see [`order_by`]).
        Dialect::Postgres if q.sort.key.nullable() && q.sort.descending => ("", " NULLS LAST"),
        Dialect::Postgres if q.sort.key.nullable() => ("", " NULLS FIRST"),
        Dialect::Postgres => ("", ""),
    };
    (
        format!("group_rank {dir}{nulls}, registry {dir}, repository {dir}"),
        format!(", {aggregate}({col}{collate}) AS group_rank"),
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
pub fn list(db: &dyn Db, q: &ListQuery, caller: &Caller) -> Result<(Vec<Image>, Total), DbError> {
    let mut c = filtered(db, &q.filters, q.sort.key != SortKey::Id);
    let total = count(db, &c, caller)?;
    if q.page.offset() >= total.count && !total.capped {
        return Ok((Vec::new(), total));
    }
    if total.capped {
        c.walk_name();
    }
    // The page's ids first: each arm reads (id, sort key) in sort order, a compound ORDER BY
    // ... LIMIT merges them and stops early, and only what is sorted or skipped is narrow.
    // Then the page's rows, by id. LIMIT and OFFSET are written as numbers (validated page
    // numbers and sizes): with a bound LIMIT, SQLite re-prepared the statement on every run,
    // which cost more than running it.
    let key = match q.sort.key {
        SortKey::Id => "id".to_owned(),
        other => format!("id, {}", other.column()),
    };
    let order = order_by(db.dialect(), q);
    let mut params = Vec::new();
    let selects: Vec<String> = arms(caller)
        .iter()
        .map(|arm| {
            format!(
                "SELECT {key} FROM images{}",
                arm_where(arm, &c, &mut params)
            )
        })
        .collect();
    let (size, offset) = (q.page.size, q.page.offset());
    let page = match db.dialect() {
        Dialect::Sqlite => format!(
            "SELECT id FROM ({}{order} LIMIT {size} OFFSET {offset}) page",
            selects.join(" UNION ALL ")
        ),
        // PostgreSQL reads every arm of a compound ORDER BY ... LIMIT, then sorts: each arm
        // gets its own LIMIT, so it is read in index order and stops (a Merge Append).
        Dialect::Postgres => {
            let reach = offset + size as i64;
            let arms: Vec<String> = selects
                .iter()
                .map(|s| format!("({s}{order} LIMIT {reach})"))
                .collect();
            format!(
                "SELECT id FROM ({}) page{order} LIMIT {size} OFFSET {offset}",
                arms.join(" UNION ALL ")
            )
        }
    };
    let sql = format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id IN ({page}){order}");
    Ok((images(db, &sql, &params)?, total))
}

/// Images grouped by `registry/repository`: one page of groups, each with its matching
/// images, and the total number of groups.
pub fn list_grouped(
    db: &dyn Db,
    q: &ListQuery,
    caller: &Caller,
) -> Result<(Vec<(String, String, Vec<Image>)>, Total), DbError> {
    let mut c = filtered(db, &q.filters, true);
    let total = group_count(db, &c, caller)?;
    if q.page.offset() >= total.count && !total.capped {
        return Ok((Vec::new(), total));
    }
    if total.capped {
        c.walk_name();
    }
    visible_conditions(&mut c, caller);
    let mut params = Vec::new();
    let w = where_sql(c.on_images(), &mut params);
    // One statement: the page's repositories, then every matching image in them, in
    // repository order and the list's order within each.
    let mut rows_params = params;
    let outer = where_sql(c.on_images(), &mut rows_params);
    let order = order_by(db.dialect(), q);
    let within = order.trim_start().trim_start_matches("ORDER BY ");
    let (limit, offset) = (q.page.size, q.page.offset());
    let (groups, rank) = group_order(db.dialect(), q);
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM (SELECT registry AS page_registry, repository AS page_repository{rank} \
         FROM images{w} GROUP BY registry, repository ORDER BY {groups} LIMIT {limit} OFFSET {offset}) page \
         JOIN images ON images.registry = page.page_registry AND images.repository = page.page_repository\
         {outer} ORDER BY {}, {within}",
        groups
            .replace("registry", "page_registry")
            .replace("repository", "page_repository")
    );
    let mut out: Vec<(String, String, Vec<Image>)> = Vec::new();
    for image in images(db, &sql, &rows_params)? {
        match out.last_mut() {
            Some((reg, repo, imgs)) if *reg == image.registry && *repo == image.repository => {
                imgs.push(image)
            }
            _ => out.push((
                image.registry.clone(),
                image.repository.clone(),
                vec![image],
            )),
        }
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

/// The image at `registry/repository:tag`, if any.
pub fn image_at(
    db: &dyn Db,
    registry: &str,
    repository: &str,
    tag: &str,
) -> Result<Option<Image>, DbError> {
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE registry = ? AND repository = ? AND tag = ?"
    );
    Ok(
        images(db, &sql, &[registry.into(), repository.into(), tag.into()])?
            .into_iter()
            .next(),
    )
}

/// An image of `registry/repository` by its digest.
pub fn image_with_digest(
    db: &dyn Db,
    registry: &str,
    repository: &str,
    digest: &str,
) -> Result<Option<Image>, DbError> {
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE registry = ? AND repository = ? AND digest = ?"
    );
    Ok(images(
        db,
        &sql,
        &[registry.into(), repository.into(), digest.into()],
    )?
    .into_iter()
    .next())
}

/// Whether `owner` has an image named `name`.
pub fn owner_has_name(db: &dyn Db, owner: &str, name: &str) -> Result<bool, DbError> {
    Ok(!db
        .query(
            "SELECT id FROM images WHERE owner = ? AND name = ?",
            &[owner.into(), name.into()],
        )?
        .is_empty())
}

/// The catalog rows a build may resolve a base to: official images, shared imports (both
/// changed by admins only) and the caller's own images. Anyone else's row, however named,
/// is never a base: a user cannot redirect another user's builds by naming an image.
const TRUSTED_BASE: &str =
    "(is_official = 1 OR (origin = 'import' AND owner IS NULL) OR owner = ?)";

/// The image named `name` that `caller` may build on: the caller's own row first, then
/// official and shared ones.
pub fn trusted_base_named(
    db: &dyn Db,
    caller: &Caller,
    name: &str,
) -> Result<Option<Image>, DbError> {
    trusted_base(db, caller, "name = ?", vec![name.into()])
}

/// The image at `reference` that `caller` may build on, as [`trusted_base_named`].
pub fn trusted_base_at(
    db: &dyn Db,
    caller: &Caller,
    reference: &crate::image_ref::ImageRef,
) -> Result<Option<Image>, DbError> {
    trusted_base(
        db,
        caller,
        "registry = ? AND repository = ? AND tag = ?",
        vec![
            reference.registry.clone().into(),
            reference.repository.clone().into(),
            reference.tag.clone().into(),
        ],
    )
}

fn trusted_base(
    db: &dyn Db,
    caller: &Caller,
    filter: &str,
    params: Vec<Value>,
) -> Result<Option<Image>, DbError> {
    let sql = format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE {filter} AND {TRUSTED_BASE} \
         ORDER BY CASE WHEN owner = ? THEN 0 ELSE 1 END, id LIMIT 1"
    );
    let params = [
        params,
        vec![caller.name.clone().into(), caller.name.clone().into()],
    ]
    .concat();
    Ok(images(db, &sql, &params)?.into_iter().next())
}

/// What is ready in a Harbor project, counted from berth's own rows (imports and builds):
/// (images, repositories, bytes).
pub fn ready_in_project(
    db: &dyn Db,
    registry: &str,
    project: &str,
) -> Result<(i64, i64, i64), DbError> {
    let rows = db.query(
        &format!(
            "SELECT COUNT(*) AS images, COUNT(DISTINCT repository) AS repositories, \
             CAST(COALESCE(SUM(size), 0) AS BIGINT) AS size FROM images WHERE registry = ? \
             AND substr(repository, 1, {}) = ? AND status = 'ready' AND origin IN ('import', 'build')",
            project.chars().count() + 1
        ),
        &[registry.into(), format!("{project}/").into()],
    )?;
    let row = rows.first();
    let count = |column: &str| {
        row.as_ref()
            .and_then(|r| r.get(column).as_i64())
            .unwrap_or(0)
    };
    Ok((count("images"), count("repositories"), count("size")))
}

/// The facts of an image beyond its columns, for detail views.
pub fn extra_facts(db: &dyn Db, image: &Image) -> Result<ExtraFacts, DbError> {
    let rows = db.query(
        "SELECT cudnn_version, scan FROM image_facts WHERE image_id = ?",
        &[image.id.into()],
    )?;
    let row = rows.first();
    Ok(crate::image_contents::extra_facts_from(
        image,
        row.and_then(|r| r.opt_string("cudnn_version")),
        row.and_then(|r| r.opt_str("scan")),
    ))
}

/// The catalog's revision: triggers move it with every change a list can show (migration
/// 0011), so a list's entity tag can name it.
pub fn catalog_revision(db: &dyn Db) -> Result<i64, DbError> {
    let rows = db.query("SELECT n FROM catalog_totals WHERE name = 'revision'", &[])?;
    Ok(rows.scalar_i64().unwrap_or(0))
}

/// Query plans of the list statements berth generates, on the real schema with the
/// migrations' planner statistics: every filter and sort is served by an index.
#[cfg(all(test, feature = "rusqlite"))]
mod plan_tests;

/// Totals from `image_counts` / `catalog_totals` and name search through the trigram index
/// give exactly what counting and LIKE give, also after updates and deletes.
#[cfg(all(test, feature = "rusqlite"))]
mod equivalence_tests;

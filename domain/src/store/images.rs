//! Image queries: every read of the `images` table goes through here.

use crate::auth::Caller;
use crate::db::{Db, DbError, Dialect, Value, like_contains};
use crate::model::{IMAGE_COLUMNS, Image, Platform};
use crate::query::{Filters, ListQuery, SortKey, StatusFilter};

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

/// One list filter: its SQL on `images` and, when it reads only columns that `image_counts`
/// keeps, its SQL there (the same text, except for the scope filter).
#[derive(Default)]
struct Condition {
    images: String,
    counts: Option<String>,
    params: Vec<Value>,
    /// The filter where the rows are already few (a caller's own images), if it is cheaper
    /// written differently there, with the same parameters.
    among_few: Option<String>,
}

/// A list's filters, without the caller's visibility (see [`Arm`]).
struct Conditions {
    filters: Vec<Condition>,
    /// How the listed arm says "public and online" (see [`filtered`]).
    listed: &'static str,
    /// How the `name` filter finds its matches through a trigram index, if it does.
    name_search: Option<NameSearch>,
}

/// A name search through a trigram index: its total is counted up to
/// [`NAME_SEARCH_COUNT_CAP`], and past that its pages walk the sort order instead.
enum NameSearch {
    /// SQLite: the FTS5 phrase looked up in `images_name_fts`.
    Fts(String),
    /// PostgreSQL: the ILIKE itself, served by the pg_trgm indexes.
    Trigram,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions {
            filters: Vec::new(),
            listed: LISTED,
            name_search: None,
        }
    }
}

impl Conditions {
    /// A filter on columns `image_counts` keeps, written the same on both tables.
    fn dimension(&mut self, sql: impl Into<String>, params: impl IntoIterator<Item = Value>) {
        let sql = sql.into();
        self.filters.push(Condition {
            counts: Some(sql.clone()),
            images: sql,
            params: params.into_iter().collect(),
            ..Default::default()
        });
    }

    /// A filter only `images` can answer.
    fn other(&mut self, sql: impl Into<String>, params: impl IntoIterator<Item = Value>) {
        self.filters.push(Condition {
            images: sql.into(),
            counts: None,
            params: params.into_iter().collect(),
            ..Default::default()
        });
    }

    fn on_images(&self) -> impl Iterator<Item = (&str, &[Value])> {
        self.filters
            .iter()
            .map(|c| (c.images.as_str(), c.params.as_slice()))
    }

    /// The filters on `images` rows already narrowed down to a few.
    fn among_few(&self) -> impl Iterator<Item = (&str, &[Value])> {
        self.filters.iter().map(|c| {
            let sql = c.among_few.as_deref().unwrap_or(&c.images);
            (sql, c.params.as_slice())
        })
    }

    /// A name search matched too many images to use its index for the page: test the name on
    /// the rows the page walk reads instead (they match densely).
    fn walk_name(&mut self) {
        for c in &mut self.filters {
            if let Some(few) = c.among_few.take() {
                c.images = few;
            }
        }
        self.name_search = None;
    }

    /// The filters on `image_counts`, if all of them can be answered there.
    fn on_counts(&self) -> Option<Vec<(&str, &[Value])>> {
        self.filters
            .iter()
            .map(|c| Some((c.counts.as_deref()?, c.params.as_slice())))
            .collect()
    }
}

/// The images whose `cuda_version` is one of `releases` (`"11.7"` matches `11.7`,
/// `11.7.1`; `"12.0"` also matches `12`). The releases come from berth's own table, never
/// from the request, so they are written into the statement.
fn cuda_supported_by(releases: &[String]) -> String {
    if releases.is_empty() {
        return "1 = 0".into();
    }
    let mut exact: Vec<String> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    for r in releases {
        exact.push(format!("'{r}'"));
        if let Some(major) = r.strip_suffix(".0") {
            exact.push(format!("'{major}'"));
        }
        prefixes.push(format!("cuda_version LIKE '{r}.%'"));
    }
    format!(
        "(cuda_version IN ({}) OR {})",
        exact.join(", "),
        prefixes.join(" OR ")
    )
}

/// The list filters. With `walk_sort_order`, a page is read by walking the sort order's
/// index and stopping at LIMIT, so on SQLite the low-cardinality filters are written so that
/// their own indexes are not used (unary `+`, SQLite's documented way): a third of the
/// catalog found through `framework = 'pytorch'` would otherwise be read and sorted for
/// every page. Selective filters (owner, tag, name) keep their indexes.
fn filtered(db: &dyn Db, f: &Filters, walk_sort_order: bool) -> Conditions {
    let d = db.dialect();
    let col = |name: &str| match (d, walk_sort_order) {
        (Dialect::Sqlite, true) => format!("+{name}"),
        _ => name.to_owned(),
    };
    let mut c = Conditions {
        // The listed images are found by walking the sort order too: on SQLite,
        // publication's own index (ordered by id) must then not be used.
        listed: match (d, walk_sort_order) {
            (Dialect::Sqlite, true) => LISTED_WALKED,
            _ => LISTED,
        },
        ..Conditions::default()
    };
    if let Some(v) = &f.category {
        c.dimension(d.ieq(&col("category")), [v.clone().into()]);
    }
    if let Some(v) = &f.framework {
        // Any of the image's frameworks (seed 001 lists several), through their index.
        c.other(
            "id IN (SELECT image_id FROM image_frameworks WHERE framework = lower(?))",
            [v.clone().into()],
        );
    }
    if let Some(driver) = &f.driver_version {
        c.other(cuda_supported_by(&driver.supported_cuda()), []);
    }
    if let Some(rank) = f.max_severity {
        c.other(
            "id IN (SELECT image_id FROM image_facts WHERE scan_severity <= ?)",
            [rank.into()],
        );
    }
    if let Some(v) = f.is_official {
        c.dimension(format!("{} = ?", col("is_official")), [v.into()]);
    }
    if let Some(v) = f.chip_type {
        c.dimension(format!("{} = ?", col("chip_type")), [v.as_str().into()]);
    }
    if let Some(v) = &f.applicable_scope {
        // A per-row probe of (scope, image_id), whichever order the page is read in.
        c.filters.push(Condition {
            images:
                "EXISTS (SELECT 1 FROM image_scopes s WHERE s.scope = ? AND s.image_id = images.id)"
                    .into(),
            counts: Some(d.json_array_contains("applicable_scopes")),
            params: vec![v.clone().into()],
            ..Default::default()
        });
    }
    if let Some(v) = &f.name {
        let pattern = like_contains(v);
        // Shorter terms have no trigram: the LIKE alone.
        let indexed = v.chars().count() >= 3;
        match d {
            // The trigram index finds the candidates, the LIKE keeps the exact meaning.
            Dialect::Sqlite if indexed => {
                let like = format!("({} OR {})", d.ilike("name"), d.ilike("display_name"));
                let matching =
                    "id IN (SELECT rowid FROM images_name_fts WHERE images_name_fts MATCH ?)";
                c.name_search = Some(NameSearch::Fts(fts_phrase(v)));
                c.filters.push(Condition {
                    images: format!("{matching} AND {like}"),
                    params: vec![fts_phrase(v).into(), pattern.clone().into(), pattern.into()],
                    // A caller's own images are read through the owner index: test those few
                    // with LIKE rather than searching the whole catalog's index.
                    among_few: Some(format!("? IS NOT NULL AND {like}")),
                    ..Default::default()
                });
            }
            // pg_trgm's indexes serve the ILIKE. The term is written into the statement: a
            // prepared statement's generic plan cannot know how rare a pattern is, and read
            // the whole catalog in sort order for a term that matches a few images.
            Dialect::Postgres if indexed => {
                let term = format!("'{}'", pattern.replace('\'', "''"));
                c.name_search = Some(NameSearch::Trigram);
                c.other(
                    format!(
                        "(name ILIKE {term} ESCAPE '\\' OR display_name ILIKE {term} ESCAPE '\\')"
                    ),
                    [],
                );
            }
            _ => {
                let like = format!("({} OR {})", d.ilike("name"), d.ilike("display_name"));
                c.other(like, [pattern.clone().into(), pattern.into()]);
            }
        }
    }
    if let Some(v) = &f.text {
        let pattern = like_contains(v);
        let columns = ["name", "display_name", "description", "framework"];
        let clause = columns.map(|c| d.ilike(c)).join(" OR ");
        c.other(
            format!("({clause})"),
            columns.map(|_| pattern.clone().into()),
        );
    }
    if let Some(v) = &f.tag {
        // A Docker tag has no ':'. A value with one is what seed 003's flat view shows as
        // `tag` (the image's name, `repo:tag`): it matches that.
        if v.contains(':') {
            c.other("name = ?", [v.clone().into()]);
        } else {
            c.other("tag = ?", [v.clone().into()]);
        }
    }
    let (status, publication) = (col("status"), col("publication"));
    match f.ready {
        Some(true) => c.dimension(format!("{status} = 'ready'"), []),
        Some(false) => c.dimension(format!("{status} <> 'ready'"), []),
        None => {}
    }
    if let Some(v) = &f.owner {
        c.other("owner = ?", [v.clone().into()]);
    }
    match f.status {
        Some(StatusFilter::Active) => c.dimension(
            format!("{status} = 'ready' AND {publication} = 'online'"),
            [],
        ),
        Some(StatusFilter::Is(a)) => c.dimension(format!("{status} = ?"), [a.as_str().into()]),
        None => {}
    }
    if let Some(p) = f.publication {
        c.dimension(format!("{publication} = ?"), [p.as_str().into()]);
    }
    c
}

/// An FTS5 phrase matching `text` literally (trigram tokenizer: a substring).
fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
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

/// Query plans of the list statements berth generates, on the real schema with the
/// migrations' planner statistics: every filter and sort is served by an index.
#[cfg(all(test, feature = "rusqlite"))]
mod plan_tests {
    use std::cell::RefCell;

    use super::*;
    use crate::auth::Role;
    use crate::db::Rows;
    use crate::db::native::SqliteDb;
    use crate::http::parse_query;

    /// Records each statement's `EXPLAIN QUERY PLAN`, and answers every total with a
    /// million so that the page and group statements are issued too.
    struct Planner {
        db: SqliteDb,
        plans: RefCell<Vec<(String, Vec<Step>)>>,
    }

    /// One line of a query plan: its id, its parent's id, what it does.
    #[derive(Debug, Clone)]
    struct Step {
        id: i64,
        parent: i64,
        detail: String,
    }

    impl Db for Planner {
        fn dialect(&self) -> Dialect {
            Dialect::Sqlite
        }

        fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
            let plan = self
                .db
                .query(&format!("EXPLAIN QUERY PLAN {sql}"), params)?;
            let steps = plan
                .iter()
                .map(|r| Step {
                    id: r.i64("id"),
                    parent: r.i64("parent"),
                    detail: r.str("detail").to_owned(),
                })
                .collect();
            self.plans.borrow_mut().push((sql.to_owned(), steps));
            if sql.starts_with("SELECT (")
                || sql.starts_with("SELECT COUNT(*) FROM (")
                || sql.contains("catalog_totals")
            {
                return Ok(Rows {
                    columns: vec!["n".into()],
                    rows: vec![vec![Value::Integer(1_000_000)]],
                });
            }
            self.db.query(sql, params)
        }
    }

    fn caller(role: Role) -> Caller {
        Caller {
            name: "alice".into(),
            role,
        }
    }

    /// Access paths that bound the rows they read (an owner's images, one tag, one
    /// repository, a name search's matches, a page's ids): sorting what they return is cheap.
    const SELECTIVE: &[&str] = &[
        "images_owner",
        "images_tag",
        "images_reference (",
        "images_name_fts",
        "INTEGER PRIMARY KEY (rowid=?)",
    ];

    /// What is wrong with one statement's plan, if anything.
    fn plan_problems(sql: &str, steps: &[Step]) -> Vec<String> {
        let mut problems = Vec::new();
        // Rule 1: `images` is read through an index. The one exception is the rowid b-tree
        // (the primary key) walked in id order to find a page: it stops at LIMIT.
        let id_page = sql.contains(" ORDER BY id ") && sql.contains(" LIMIT ");
        for s in steps {
            let d = &s.detail;
            let bare =
                d == "SCAN images" || (d.starts_with("SCAN images ") && !d.contains(" INDEX "));
            if bare && !id_page {
                problems.push(format!("reads images without an index: {d}"));
            }
        }
        // Rule 2: no sort or grouping of rows found through a non-selective path: that
        // reads and sorts a large part of the catalog for every page. The rows sorted are
        // those of the sort step's siblings.
        for sort in steps.iter().filter(|s| {
            s.detail.starts_with("USE TEMP B-TREE FOR ORDER BY")
                || s.detail.starts_with("USE TEMP B-TREE FOR GROUP BY")
        }) {
            let bounded = steps
                .iter()
                .filter(|s| s.parent == sort.parent && s.id != sort.id)
                .any(|s| SELECTIVE.iter().any(|x| s.detail.contains(x)));
            if !bounded {
                problems.push(format!("sorts an unbounded read: {}", sort.detail));
            }
        }
        // Rule 3: a flat list's total never reads images beyond the caller's own ones or a
        // selective filter's matches: dimension filters are summed from image_counts.
        // Documented: a framework filter matches any of an image's frameworks, which
        // image_counts cannot sum; its total counts the matches.
        if sql.starts_with("SELECT (") && !sql.contains("image_frameworks") {
            for s in steps {
                let d = &s.detail;
                if (d.contains(" images ") || d.ends_with(" images"))
                    && !SELECTIVE.iter().any(|x| d.contains(x))
                {
                    problems.push(format!("total reads images: {d}"));
                }
            }
        }
        problems
    }

    fn plans_for(query: &str, role: Role) -> Vec<(String, Vec<Step>)> {
        let db = Planner {
            db: SqliteDb::open_in_memory(),
            plans: RefCell::new(Vec::new()),
        };
        crate::migrations::ensure(&db.db).unwrap();
        let q = ListQuery::from_v1(&parse_query(query)).unwrap();
        let caller = caller(role);
        match q.view {
            crate::query::View::Grouped => {
                list_grouped(&db, &q, &caller).unwrap();
            }
            _ => {
                list(&db, &q, &caller).unwrap();
            }
        }
        db.plans.into_inner()
    }

    /// Every list query shape: each filter, each sort, both directions, the portal's
    /// combinations, paging and both views.
    fn queries() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "page=3&page_size=20",
            "category=pytorch",
            "framework=PyTorch",
            "is_official=true",
            "is_official=false",
            "chip_type=NPU",
            "applicable_scope=%E8%AE%AD%E7%BB%83",
            "name=torch",
            "name=100%25_x",
            "tag=2.0",
            "ready=true",
            "ready=false",
            "userName=bob",
            "status=active",
            "status=importing",
            "framework=pytorch&chip_type=GPU&applicable_scope=%E8%AE%AD%E7%BB%83",
            "framework=pytorch&chip_type=GPU&is_official=false&page_size=20",
            "category=llm&status=active&orderBy=created_at&order=desc",
            "name=cuda12&framework=pytorch&orderBy=size&order=desc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (name, _) in crate::query::SortKey::NAMES {
            for order in ["asc", "desc"] {
                out.push(format!("orderBy={name}&order={order}&page_size=20"));
                out.push(format!(
                    "orderBy={name}&order={order}&framework=pytorch&chip_type=GPU"
                ));
            }
        }
        let flat: Vec<String> = out.iter().map(|q| format!("{q}&flat=true")).collect();
        let grouped: Vec<String> = out.iter().map(|q| format!("{q}&flat=false")).collect();
        out.extend(flat);
        out.extend(grouped);
        out
    }

    #[test]
    #[ignore = "prints every plan: cargo test -p berth-domain print_plans -- --ignored --nocapture"]
    fn print_plans() {
        for query in queries() {
            for role in [Role::User, Role::Admin] {
                for (sql, steps) in plans_for(&query, role) {
                    let sql = sql.replace(IMAGE_COLUMNS, "*");
                    let details: Vec<&str> = steps.iter().map(|s| s.detail.as_str()).collect();
                    println!("?{query} {role:?}\n  {sql}\n  {details:?}");
                }
            }
        }
    }

    #[test]
    fn list_queries_never_scan_images_without_an_index() {
        let mut failures = Vec::new();
        for query in queries() {
            for role in [Role::User, Role::Admin] {
                for (sql, steps) in plans_for(&query, role) {
                    // Documented: a grouped view with filters counts its groups by reading
                    // the matching images (docs/api.md).
                    if query.contains("flat=false")
                        && sql.starts_with("SELECT COUNT(*) FROM (SELECT 1")
                    {
                        continue;
                    }
                    // Documented: a grouped view sorted by `orderBy` ranks every matching
                    // repository, so it reads the matching images.
                    if sql.contains("AS group_rank") {
                        continue;
                    }
                    for problem in plan_problems(&sql, &steps) {
                        let sql = sql.replace(IMAGE_COLUMNS, "*");
                        failures.push(format!("?{query} as {role:?}: {problem}\n  {sql}"));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} problems:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn the_rules_catch_what_they_should() {
        let steps = |lines: &[(i64, i64, &str)]| -> Vec<Step> {
            lines
                .iter()
                .map(|(id, parent, d)| Step {
                    id: *id,
                    parent: *parent,
                    detail: d.to_string(),
                })
                .collect()
        };
        let scan = steps(&[(2, 0, "SCAN images")]);
        assert_eq!(plan_problems("SELECT COUNT(*) FROM images", &scan).len(), 1);
        assert!(
            plan_problems(
                "SELECT * FROM images ORDER BY id ASC LIMIT ? OFFSET ?",
                &scan
            )
            .is_empty()
        );
        let sort = steps(&[
            (
                2,
                0,
                "SEARCH images USING INDEX images_framework (framework=?)",
            ),
            (3, 0, "USE TEMP B-TREE FOR ORDER BY"),
        ]);
        assert_eq!(plan_problems("SELECT * FROM images", &sort).len(), 1);
        let total = steps(&[(
            2,
            0,
            "SEARCH images USING INDEX images_framework (framework=?)",
        )]);
        assert_eq!(
            plan_problems("SELECT (SELECT COUNT(*) FROM images)", &total).len(),
            1
        );
    }
}

/// Totals from `image_counts` / `catalog_totals` and name search through the trigram index
/// give exactly what counting and LIKE give, also after updates and deletes.
#[cfg(all(test, feature = "rusqlite"))]
mod equivalence_tests {
    use super::*;
    use crate::auth::Role;
    use crate::db::native::SqliteDb;
    use crate::http::parse_query;
    use crate::query::View;

    const NAMES: &[&str] = &[
        "PyTorch-train",
        "pytorch_50%",
        "tensor\"flow",
        "vLLM-serving",
        "Éclair-ÄBC",
        "jax",
        "cuda12.4-py3.11",
        "notebook",
    ];

    fn seed(db: &SqliteDb) {
        crate::migrations::ensure(db).unwrap();
        let owners = ["alice", "bob", "carol"];
        let frameworks = [Some("pytorch"), Some("PyTorch"), Some("jax"), None];
        let scopes = ["[]", "[\"训练\"]", "[\"训练\",\"推理\"]", "[\"开发机\"]"];
        for i in 0..80usize {
            let scope_json = scopes[i % 4];
            db.execute(
                "INSERT INTO images (name, display_name, category, framework, chip_type, applicable_scopes, \
                 registry, repository, tag, is_official, visibility, owner, status, publication, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'r.io', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    format!("{}-{i}:t", NAMES[i % NAMES.len()]).into(),
                    (i % 3 != 0).then(|| format!("{} build {i}", NAMES[(i + 3) % NAMES.len()])).into(),
                    frameworks[i % 4].map(|f| f.to_lowercase()).into(),
                    frameworks[(i / 2) % 4].into(),
                    ["GPU", "CPU", "NPU"][i % 3].into(),
                    scope_json.into(),
                    format!("team/repo{}", i / 3).into(),
                    format!("v{i}").into(),
                    (i % 7 == 0).into(),
                    if i % 5 == 0 { "private" } else { "public" }.into(),
                    owners[i % 3].into(),
                    ["ready", "ready", "importing", "failed"][i % 4].into(),
                    ["online", "online", "offline", "pending"][(i / 3) % 4].into(),
                    format!("2026-01-{:02}T00:00:00.000Z", 1 + i % 28).into(),
                    "2026-02-01T00:00:00.000Z".into(),
                ],
            )
            .unwrap();
            let id = db
                .query("SELECT MAX(id) FROM images", &[])
                .unwrap()
                .scalar_i64()
                .unwrap();
            let list: Vec<String> = serde_json::from_str(scope_json).unwrap();
            for s in list {
                db.execute(
                    "INSERT INTO image_scopes (image_id, scope) VALUES (?, ?)",
                    &[id.into(), s.into()],
                )
                .unwrap();
            }
        }
    }

    /// What a list should return, by reading every row and filtering in Rust.
    fn expected(db: &SqliteDb, q: &ListQuery, caller: &Caller) -> (Vec<i64>, i64) {
        let all = images(
            db,
            &format!("SELECT {IMAGE_COLUMNS} FROM images ORDER BY id"),
            &[],
        )
        .unwrap();
        let f = &q.filters;
        let ieq = |a: &Option<String>, b: &Option<String>| match b {
            None => true,
            Some(b) => a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b)),
        };
        let contains = |hay: &str, needle: &str| {
            hay.to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase())
        };
        let matching: Vec<&Image> = all
            .iter()
            .filter(|i| can_see(caller, i))
            .filter(|i| {
                ieq(&i.category, &f.category)
                    && (ieq(&i.framework, &f.framework)
                        || f.framework.as_ref().is_none_or(|want| {
                            i.frameworks.iter().any(|g| g.eq_ignore_ascii_case(want))
                        }))
            })
            .filter(|i| f.is_official.is_none_or(|v| i.is_official == v))
            .filter(|i| f.chip_type.is_none_or(|c| i.chip_type == c.as_str()))
            .filter(|i| {
                f.applicable_scope
                    .as_ref()
                    .is_none_or(|s| i.applicable_scopes.contains(s))
            })
            .filter(|i| {
                f.name.as_ref().is_none_or(|n| {
                    contains(&i.name, n)
                        || i.display_name.as_deref().is_some_and(|d| contains(d, n))
                })
            })
            .filter(|i| f.ready.is_none_or(|r| (i.status == "ready") == r))
            .filter(|i| match f.status {
                Some(StatusFilter::Active) => i.is_active(),
                Some(StatusFilter::Is(a)) => i.status == a.as_str(),
                None => true,
            })
            .collect();
        let total = match q.view {
            View::Grouped => {
                let mut repos: Vec<(&str, &str)> = matching
                    .iter()
                    .map(|i| (i.registry.as_str(), i.repository.as_str()))
                    .collect();
                repos.sort();
                repos.dedup();
                repos.len() as i64
            }
            _ => matching.len() as i64,
        };
        let mut ids: Vec<i64> = matching.iter().map(|i| i.id).collect();
        ids.sort();
        (ids, total)
    }

    fn actual(db: &SqliteDb, q: &ListQuery, caller: &Caller) -> (Vec<i64>, i64) {
        let (mut ids, total) = match q.view {
            View::Grouped => {
                let (groups, total) = list_grouped(db, q, caller).unwrap();
                (
                    groups
                        .iter()
                        .flat_map(|(_, _, imgs)| imgs.iter().map(|i| i.id))
                        .collect::<Vec<_>>(),
                    total,
                )
            }
            _ => {
                let (imgs, total) = list(db, q, caller).unwrap();
                (imgs.iter().map(|i| i.id).collect(), total)
            }
        };
        ids.sort();
        assert!(!total.capped);
        (ids, total.count)
    }

    fn check_all(db: &SqliteDb) {
        let mut queries = vec![
            String::new(),
            "framework=pytorch".into(),
            "category=PYTORCH&chip_type=GPU".into(),
            "applicable_scope=%E8%AE%AD%E7%BB%83".into(),
            "framework=pytorch&chip_type=GPU&applicable_scope=%E8%AE%AD%E7%BB%83".into(),
            "is_official=true".into(),
            "ready=false".into(),
            "status=active".into(),
            "status=importing&orderBy=created_at&order=desc".into(),
            "name=py".into(),
            "name=%25".into(),
            "name=_".into(),
            "name=50%25".into(),
            "name=h_50".into(),
            "name=tensor%22flow".into(),
            "name=%C3%A9clair".into(),
            "name=%C3%89CLAIR".into(),
            "name=%C3%84bc".into(),
            "name=BUILD%201".into(),
            "name=TORCH&framework=jax".into(),
            "name=cuda12.4-py3.11&orderBy=name".into(),
        ];
        for q in queries.clone() {
            queries.push(format!("{q}&flat=false"));
        }
        let mut non_empty = 0;
        for q in &queries {
            let q = ListQuery::from_v1(&parse_query(&format!("{q}&page_size=100"))).unwrap();
            for caller in [
                Caller {
                    name: "alice".into(),
                    role: Role::User,
                },
                Caller {
                    name: "dave".into(),
                    role: Role::User,
                },
                Caller {
                    name: "root".into(),
                    role: Role::Admin,
                },
            ] {
                let want = expected(db, &q, &caller);
                assert_eq!(actual(db, &q, &caller), want, "{q:?} as {caller:?}");
                non_empty += usize::from(want.1 > 0);
            }
        }
        // The cases are not vacuous: most of them find something.
        assert!(non_empty > queries.len() * 3 / 2, "{non_empty}");
    }

    #[test]
    fn name_search_totals_stop_at_the_cap_and_pages_stay_right() {
        let db = SqliteDb::open_in_memory();
        crate::migrations::ensure(&db).unwrap();
        for i in 0..1_300 {
            db.execute(
                "INSERT INTO images (name, registry, repository, tag, visibility, owner, created_at, updated_at) \
                 VALUES (?, 'r.io', ?, 't', ?, ?, 'x', 'x')",
                &[
                    format!("common-{i:04}").into(),
                    format!("team/repo{i:04}").into(),
                    if i % 10 == 0 { "private" } else { "public" }.into(),
                    if i % 20 == 0 { "alice" } else { "bob" }.into(),
                ],
            )
            .unwrap();
        }
        let alice = Caller {
            name: "alice".into(),
            role: Role::User,
        };
        let q = |s: &str| ListQuery::from_v1(&parse_query(s)).unwrap();
        // common-0xxx: 900 listed matches and alice's 50 private ones, counted exactly.
        let (_, total) = list(&db, &q("name=common-0"), &alice).unwrap();
        assert_eq!(
            total,
            Total {
                count: 950,
                capped: false
            }
        );
        // All 1,170 listed matches exceed the cap: "at least 1,000", plus her 65 exactly.
        let (page, total) = list(&db, &q("name=COMMON&page=3&page_size=5"), &alice).unwrap();
        assert!(total.capped);
        assert_eq!(total.count, NAME_SEARCH_COUNT_CAP + 65);
        let ids: Vec<i64> = page.iter().map(|i| i.id).collect();
        let all = expected(&db, &q("name=COMMON&page_size=100"), &alice).0;
        assert_eq!(ids, all[10..15].to_vec());
        // Past the capped total there are still pages.
        let (far, _) = list(&db, &q("name=common&page=300&page_size=4"), &alice).unwrap();
        assert_eq!(far.len(), 4);
        let (groups, total) =
            list_grouped(&db, &q("name=common&flat=false&page_size=3"), &alice).unwrap();
        assert!(total.capped);
        assert_eq!(groups.len(), 3);
    }

    #[test]
    fn totals_and_name_search_match_counting_and_like() {
        let db = SqliteDb::open_in_memory();
        seed(&db);
        check_all(&db);
        // Writes keep the counts exact: every tracked column changes, rows go away.
        db.execute(
            "UPDATE images SET visibility = 'private' WHERE id % 4 = 0",
            &[],
        )
        .unwrap();
        db.execute(
            "UPDATE images SET publication = 'online', framework = NULL WHERE id % 6 = 1",
            &[],
        )
        .unwrap();
        db.execute("UPDATE images SET category = 'JAX', status = 'ready', is_official = 1 WHERE id % 9 = 2", &[]).unwrap();
        db.execute(
            "UPDATE images SET applicable_scopes = '[\"训练\"]' WHERE id % 5 = 3",
            &[],
        )
        .unwrap();
        db.execute("INSERT INTO image_scopes (image_id, scope) SELECT id, '训练' FROM images WHERE id % 5 = 3 ON CONFLICT DO NOTHING", &[]).unwrap();
        db.execute(
            "DELETE FROM image_scopes WHERE image_id % 5 = 3 AND scope <> '训练'",
            &[],
        )
        .unwrap();
        db.execute("UPDATE images SET name = 'renamed-' || id || ':x', display_name = NULL WHERE id % 8 = 5", &[]).unwrap();
        db.execute(
            "UPDATE images SET repository = 'team/moved' WHERE id % 10 = 7",
            &[],
        )
        .unwrap();
        db.execute("DELETE FROM images WHERE id % 11 = 4", &[])
            .unwrap();
        check_all(&db);
        let stored: i64 = db
            .query("SELECT SUM(n) FROM image_counts", &[])
            .unwrap()
            .scalar_i64()
            .unwrap();
        let counted = db
            .query("SELECT COUNT(*) FROM images", &[])
            .unwrap()
            .scalar_i64()
            .unwrap();
        assert_eq!(stored, counted);
        let totals = db
            .query(
                "SELECT (SELECT n FROM catalog_totals WHERE name = 'images') - (SELECT COUNT(*) FROM images), \
                 (SELECT n FROM catalog_totals WHERE name = 'listed_images') - \
                 (SELECT COUNT(*) FROM images WHERE visibility = 'public' AND publication = 'online')",
                &[],
            )
            .unwrap();
        assert_eq!(totals.rows[0], vec![Value::Integer(0), Value::Integer(0)]);
    }
}

//! The list filters as SQL: each [`Filters`] field becomes a condition on `images` and, where
//! it reads only columns `image_counts` keeps, on that table too.

use super::*;

/// One list filter: its SQL on `images` and, when it reads only columns that `image_counts`
/// keeps, its SQL there (the same text, except for the scope filter).
#[derive(Default)]
pub(super) struct Condition {
    pub(super) images: String,
    pub(super) counts: Option<String>,
    pub(super) params: Vec<Value>,
    /// The filter where the rows are already few (a caller's own images), if it is cheaper
    /// written differently there, with the same parameters.
    pub(super) among_few: Option<String>,
}

/// A list's filters, without the caller's visibility (see [`Arm`]).
pub(super) struct Conditions {
    pub(super) filters: Vec<Condition>,
    /// How the listed arm says "public and online" (see [`filtered`]).
    pub(super) listed: &'static str,
    /// How the `name` filter finds its matches through a trigram index, if it does.
    pub(super) name_search: Option<NameSearch>,
}

/// A name search through a trigram index: its total is counted up to
/// [`NAME_SEARCH_COUNT_CAP`], and past that its pages walk the sort order instead.
pub(super) enum NameSearch {
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
    pub(super) fn dimension(
        &mut self,
        sql: impl Into<String>,
        params: impl IntoIterator<Item = Value>,
    ) {
        let sql = sql.into();
        self.filters.push(Condition {
            counts: Some(sql.clone()),
            images: sql,
            params: params.into_iter().collect(),
            ..Default::default()
        });
    }

    /// A filter only `images` can answer.
    pub(super) fn other(
        &mut self,
        sql: impl Into<String>,
        params: impl IntoIterator<Item = Value>,
    ) {
        self.filters.push(Condition {
            images: sql.into(),
            counts: None,
            params: params.into_iter().collect(),
            ..Default::default()
        });
    }

    pub(super) fn on_images(&self) -> impl Iterator<Item = (&str, &[Value])> {
        self.filters
            .iter()
            .map(|c| (c.images.as_str(), c.params.as_slice()))
    }

    /// The filters on `images` rows already narrowed down to a few.
    pub(super) fn among_few(&self) -> impl Iterator<Item = (&str, &[Value])> {
        self.filters.iter().map(|c| {
            let sql = c.among_few.as_deref().unwrap_or(&c.images);
            (sql, c.params.as_slice())
        })
    }

    /// A name search matched too many images to use its index for the page: test the name on
    /// the rows the page walk reads instead (they match densely).
    pub(super) fn walk_name(&mut self) {
        for c in &mut self.filters {
            if let Some(few) = c.among_few.take() {
                c.images = few;
            }
        }
        self.name_search = None;
    }

    /// The filters on `image_counts`, if all of them can be answered there.
    pub(super) fn on_counts(&self) -> Option<Vec<(&str, &[Value])>> {
        self.filters
            .iter()
            .map(|c| Some((c.counts.as_deref()?, c.params.as_slice())))
            .collect()
    }
}

/// The images whose `cuda_version` is one of `releases` (`"11.7"` matches `11.7`,
/// `11.7.1`; `"12.0"` also matches `12`). The releases come from berth's own table, never
/// from the request, so they are written into the statement.
pub(super) fn cuda_supported_by(releases: &[String]) -> String {
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
pub(super) fn filtered(db: &dyn Db, f: &Filters, walk_sort_order: bool) -> Conditions {
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
pub(super) fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

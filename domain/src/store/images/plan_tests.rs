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
        let bare = d == "SCAN images" || (d.starts_with("SCAN images ") && !d.contains(" INDEX "));
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
                if query.contains("flat=false") && sql.starts_with("SELECT COUNT(*) FROM (SELECT 1")
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

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
                contains(&i.name, n) || i.display_name.as_deref().is_some_and(|d| contains(d, n))
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
    db.execute(
        "UPDATE images SET category = 'JAX', status = 'ready', is_official = 1 WHERE id % 9 = 2",
        &[],
    )
    .unwrap();
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
    db.execute(
        "UPDATE images SET name = 'renamed-' || id || ':x', display_name = NULL WHERE id % 8 = 5",
        &[],
    )
    .unwrap();
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

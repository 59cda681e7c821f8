//! Catalog fixtures written straight into the app's database (SQLite or PostgreSQL) before
//! the host starts, with the components' own migrations and SQL.

use berth_domain::db::Db;
use berth_domain::migrations;

/// A custom image row; unset fields take the schema defaults.
pub struct ImageRow {
    pub name: &'static str,
    pub category: &'static str,
    pub framework: Option<&'static str>,
    pub chip_type: &'static str,
    pub scopes: &'static [&'static str],
    pub repository: &'static str,
    pub tag: &'static str,
    pub size: i64,
    pub visibility: &'static str,
    pub owner: &'static str,
    pub status: &'static str,
    pub publication: &'static str,
    pub created_at: &'static str,
    pub description: &'static str,
}

impl Default for ImageRow {
    fn default() -> Self {
        ImageRow {
            name: "",
            category: "custom",
            framework: None,
            chip_type: "GPU",
            scopes: &[],
            repository: "",
            tag: "latest",
            size: 1 << 30,
            visibility: "public",
            owner: "admin",
            status: "ready",
            publication: "online",
            created_at: "2026-02-01T00:00:00.000Z",
            description: "",
        }
    }
}

/// Applies the migrations (which seed the four official images) and inserts `rows`.
pub fn insert(db: &dyn Db, rows: &[ImageRow]) {
    migrations::ensure(db).unwrap();
    for r in rows {
        let frameworks = serde_json::to_string(&r.framework.iter().collect::<Vec<_>>()).unwrap();
        let scopes = serde_json::to_string(r.scopes).unwrap();
        let id = db
            .query(
                "INSERT INTO images (name, description, category, framework, frameworks, chip_type, \
                 applicable_scopes, registry, repository, tag, size, visibility, owner, status, \
                 publication, origin, created_by, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 'harbor.remotegpu.com', ?, ?, ?, ?, ?, ?, ?, 'manual', ?, ?, ?) \
                 RETURNING id",
                &[
                    r.name.into(),
                    r.description.into(),
                    r.category.into(),
                    r.framework.into(),
                    frameworks.into(),
                    r.chip_type.into(),
                    scopes.into(),
                    r.repository.into(),
                    r.tag.into(),
                    r.size.into(),
                    r.visibility.into(),
                    r.owner.into(),
                    r.status.into(),
                    r.publication.into(),
                    r.owner.into(),
                    r.created_at.into(),
                    r.created_at.into(),
                ],
            )
            .unwrap()
            .scalar_i64()
            .unwrap();
        for scope in r.scopes {
            db.execute(
                "INSERT INTO image_scopes (image_id, scope) VALUES (?, ?)",
                &[id.into(), (*scope).into()],
            )
            .unwrap();
        }
    }
}

/// A varied catalog for the read tests: 4 official images plus these 8.
pub fn catalog() -> Vec<ImageRow> {
    vec![
        ImageRow {
            name: "alice-nlp:1.0",
            framework: Some("pytorch"),
            repository: "users/alice-nlp",
            tag: "1.0",
            visibility: "private",
            owner: "alice",
            scopes: &["训练"],
            created_at: "2026-02-01T00:00:00.000Z",
            description: "Alice's NLP image",
            ..Default::default()
        },
        ImageRow {
            name: "alice-nlp:1.1",
            framework: Some("pytorch"),
            repository: "users/alice-nlp",
            tag: "1.1",
            visibility: "private",
            owner: "alice",
            created_at: "2026-02-02T00:00:00.000Z",
            size: 3 << 30,
            ..Default::default()
        },
        ImageRow {
            name: "bob-secret:1.0",
            repository: "users/bob-secret",
            tag: "1.0",
            visibility: "private",
            owner: "bob",
            created_at: "2026-02-03T00:00:00.000Z",
            ..Default::default()
        },
        ImageRow {
            name: "ascend-mindspore:2.2",
            category: "mindspore",
            framework: Some("mindspore"),
            chip_type: "NPU",
            scopes: &["训练", "推理"],
            repository: "library/ascend-mindspore",
            tag: "2.2",
            created_at: "2026-02-04T00:00:00.000Z",
            size: 9 << 30,
            ..Default::default()
        },
        ImageRow {
            name: "cpu-sklearn:1.3",
            category: "sklearn",
            framework: Some("scikit-learn"),
            chip_type: "CPU",
            scopes: &["开发机"],
            repository: "library/cpu-sklearn",
            tag: "1.3",
            created_at: "2026-02-05T00:00:00.000Z",
            size: 2 << 30,
            ..Default::default()
        },
        ImageRow {
            name: "retired-caffe:1.0",
            category: "caffe",
            framework: Some("caffe"),
            repository: "library/retired-caffe",
            tag: "1.0",
            publication: "offline",
            created_at: "2026-02-06T00:00:00.000Z",
            ..Default::default()
        },
        ImageRow {
            name: "vllm-importing:0.4",
            category: "inference",
            framework: Some("vllm"),
            repository: "imports/vllm",
            tag: "0.4",
            status: "importing",
            owner: "carol",
            visibility: "private",
            created_at: "2026-02-07T00:00:00.000Z",
            ..Default::default()
        },
        ImageRow {
            name: "50%_off\\special'quote:1",
            category: "custom",
            repository: "library/special",
            tag: "1",
            created_at: "2026-02-08T00:00:00.000Z",
            ..Default::default()
        },
    ]
}

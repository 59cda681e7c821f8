//! Every write to `images` and the tables that hang off it (`image_scopes`,
//! `image_platforms`, `image_facts`): hand-made images and their versions (admin), imported
//! rows (imports), built images (builds), and what Harbor's facts fill in.

use crate::db::{Db, DbError, Value};
use crate::image_contents::{ArtifactFacts, Contents, ScanRecord};
use crate::image_facts::DerivedFacts;
use crate::image_ref::ImageRef;
use crate::model::{ChipType, Image, Publication};

/// Replaces an image's scope index rows.
pub fn write_scopes(db: &dyn Db, id: i64, scopes: &[String]) -> Result<(), DbError> {
    db.execute("DELETE FROM image_scopes WHERE image_id = ?", &[id.into()])?;
    for scope in scopes {
        db.execute(
            "INSERT INTO image_scopes (image_id, scope) VALUES (?, ?)",
            &[id.into(), scope.clone().into()],
        )?;
    }
    Ok(())
}

fn json_list(list: &[String]) -> Value {
    Value::Text(serde_json::to_string(list).expect("strings serialize"))
}

/// A hand-made image (admin create), every column decided.
pub struct ManualImage<'a> {
    pub name: &'a str,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub framework: Option<String>,
    pub framework_version: Option<String>,
    pub frameworks: &'a [String],
    pub cuda_version: Option<String>,
    pub preset_cuda: bool,
    pub python_version: Option<String>,
    pub chip_type: ChipType,
    pub applicable_scopes: &'a [String],
    pub reference: &'a ImageRef,
    pub digest: Option<String>,
    pub size: i64,
    pub arch: Option<String>,
    pub os: Option<String>,
    pub is_official: bool,
    pub visibility: &'static str,
    pub owner: &'a str,
    pub publication: Publication,
    /// The reference as the console wrote it.
    pub image_address: Option<String>,
    pub by: &'a str,
    pub now: &'a str,
}

/// Inserts a hand-made image, ready; its id. Its scopes are written by [`write_scopes`].
pub fn insert_manual(db: &dyn Db, i: &ManualImage<'_>) -> Result<Option<i64>, DbError> {
    Ok(db
        .query(
            "INSERT INTO images (name, display_name, description, category, framework, framework_version, \
             frameworks, cuda_version, preset_cuda, python_version, chip_type, applicable_scopes, registry, \
             repository, tag, digest, size, arch, os, is_official, visibility, owner, status, publication, \
             origin, image_address, created_by, updated_by, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ready', ?, 'manual', ?, ?, ?, ?, ?) \
             RETURNING id",
            &[
                i.name.into(),
                i.display_name.clone().into(),
                i.description.clone().into(),
                i.category.clone().into(),
                i.framework.clone().into(),
                i.framework_version.clone().into(),
                json_list(i.frameworks),
                i.cuda_version.clone().into(),
                i.preset_cuda.into(),
                i.python_version.clone().into(),
                i.chip_type.as_str().into(),
                json_list(i.applicable_scopes),
                i.reference.registry.clone().into(),
                i.reference.repository.clone().into(),
                i.reference.tag.clone().into(),
                i.digest.clone().into(),
                i.size.into(),
                i.arch.clone().into(),
                i.os.clone().into(),
                i.is_official.into(),
                i.visibility.into(),
                i.owner.into(),
                i.publication.as_str().into(),
                i.image_address.clone().into(),
                i.by.into(),
                i.by.into(),
                i.now.into(),
                i.now.into(),
            ],
        )?
        .scalar_i64())
}

/// Sets `assignments` (column, value) on image `id` and moves its revision on, in one
/// statement; with `expected`, only while the image is at that revision. Whether a row
/// changed.
pub fn update_columns(
    db: &dyn Db,
    id: i64,
    assignments: &[(&'static str, Value)],
    by: &str,
    now: &str,
    expected: Option<i64>,
) -> Result<bool, DbError> {
    let mut sql = String::from("UPDATE images SET ");
    let mut params: Vec<Value> = Vec::new();
    for (col, value) in assignments {
        sql.push_str(col);
        sql.push_str(" = ?, ");
        params.push(value.clone());
    }
    sql.push_str("revision = revision + 1, updated_by = ?, updated_at = ? WHERE id = ?");
    params.extend([by.into(), now.into(), id.into()]);
    if let Some(rev) = expected {
        sql.push_str(" AND revision = ?");
        params.push(rev.into());
    }
    sql.push_str(" RETURNING id");
    Ok(!db.query(&sql, &params)?.is_empty())
}

/// Deletes an image and what hangs off it; builds that used it keep their history.
pub fn delete_image(db: &dyn Db, id: i64) -> Result<(), DbError> {
    for sql in [
        "DELETE FROM image_platforms WHERE image_id = ?",
        "DELETE FROM image_scopes WHERE image_id = ?",
        "DELETE FROM imports WHERE image_id = ?",
        "UPDATE builds SET base_image_id = NULL WHERE base_image_id = ?",
        "UPDATE builds SET image_id = NULL WHERE image_id = ?",
        "DELETE FROM images WHERE id = ?",
    ] {
        db.execute(sql, &[id.into()])?;
    }
    Ok(())
}

/// Another tag of the same repository as image `parent`, with the parent's metadata.
pub struct NewVersion<'a> {
    pub parent: i64,
    pub name: &'a str,
    pub description: Option<String>,
    pub cuda_version: Option<String>,
    pub python_version: Option<String>,
    pub tag: &'a str,
    pub size: i64,
    pub image_address: Option<String>,
    pub by: &'a str,
    pub now: &'a str,
}

pub fn insert_version(db: &dyn Db, v: &NewVersion<'_>) -> Result<Option<i64>, DbError> {
    Ok(db
        .query(
            "INSERT INTO images (name, display_name, description, category, framework, framework_version, \
             frameworks, cuda_version, preset_cuda, python_version, chip_type, applicable_scopes, registry, \
             repository, tag, size, is_official, visibility, owner, status, publication, origin, image_address, \
             created_by, updated_by, created_at, updated_at) \
             SELECT ?, display_name, ?, category, framework, framework_version, frameworks, ?, \
             preset_cuda, ?, chip_type, applicable_scopes, registry, repository, ?, ?, is_official, \
             visibility, owner, 'ready', publication, 'manual', ?, ?, ?, ?, ? FROM images WHERE id = ? \
             RETURNING id",
            &[
                v.name.into(),
                v.description.clone().into(),
                v.cuda_version.clone().into(),
                v.python_version.clone().into(),
                v.tag.into(),
                v.size.into(),
                v.image_address.clone().into(),
                v.by.into(),
                v.by.into(),
                v.now.into(),
                v.now.into(),
                v.parent.into(),
            ],
        )?
        .scalar_i64())
}

/// The row of a first import of `name` at its destination: importing, public, with no
/// owner (a shared copy; the importer is `created_by`); its id.
pub fn insert_imported(
    db: &dyn Db,
    name: &str,
    destination: (&str, &str, &str),
    by: &str,
    now: &str,
) -> Result<Option<i64>, DbError> {
    let (registry, repository, tag) = destination;
    Ok(db
        .query(
            "INSERT INTO images (name, description, category, framework, registry, repository, tag, \
             visibility, owner, status, publication, origin, created_by, updated_by, created_at, updated_at) \
             VALUES (?, ?, 'imported', NULL, ?, ?, ?, 'public', NULL, 'importing', 'online', 'import', ?, ?, ?, ?) \
             RETURNING id",
            &[
                name.into(),
                format!("Imported from {name}").into(),
                registry.into(),
                repository.into(),
                tag.into(),
                by.into(),
                by.into(),
                now.into(),
                now.into(),
            ],
        )?
        .scalar_i64())
}

/// An import attempt starts on the image.
pub fn mark_importing(db: &dyn Db, id: i64, by: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE images SET status = 'importing', updated_by = ?, updated_at = ?, revision = revision + 1 WHERE id = ?",
        &[by.into(), now.into(), id.into()],
    )
}

/// Sets the image's status (`failed`, `importing`) and moves its revision on.
pub fn set_status(db: &dyn Db, id: i64, status: &str, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE images SET status = ?, revision = revision + 1, updated_at = ? WHERE id = ?",
        &[status.into(), now.into(), id.into()],
    )
}

/// The import succeeded: the image is ready, with the facts read from Harbor (its
/// platforms and contents replaced). Without facts, [`set_status`] `ready`.
pub fn mark_ready(db: &dyn Db, image_id: i64, f: &ArtifactFacts, now: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE images SET status = 'ready', digest = ?, size = ?, arch = ?, os = ?, revision = revision + 1, \
         updated_at = ? WHERE id = ?",
        &[
            f.digest.clone().into(),
            f.size.into(),
            f.arch.clone().into(),
            f.os.clone().into(),
            now.into(),
            image_id.into(),
        ],
    )?;
    db.execute(
        "DELETE FROM image_platforms WHERE image_id = ?",
        &[image_id.into()],
    )?;
    for p in &f.platforms {
        db.execute(
            "INSERT INTO image_platforms (image_id, digest, architecture, os, variant, size) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
            &[
                image_id.into(),
                p.digest.clone().into(),
                p.architecture.clone().into(),
                p.os.clone().into(),
                p.variant.clone().into(),
                p.size.into(),
            ],
        )?;
    }
    if let Some(contents) = &f.contents {
        record(db, image_id, contents)?;
    }
    Ok(())
}

/// A build's image: ready, private to its owner, with its base's metadata.
pub struct BuiltImage<'a> {
    pub name: &'a str,
    pub description: Option<String>,
    pub base: Option<&'a Image>,
    pub registry: &'a str,
    pub repository: &'a str,
    pub tag: &'a str,
    pub facts: &'a ArtifactFacts,
    pub owner: &'a str,
    pub now: &'a str,
}

/// Inserts a built image and its base's scopes; its id.
pub fn insert_built(db: &dyn Db, b: &BuiltImage<'_>) -> Result<Option<i64>, DbError> {
    let base = b.base;
    let facts = b.facts;
    let Some(image_id) = db
        .query(
            "INSERT INTO images (name, display_name, description, category, framework, framework_version, frameworks, \
             cuda_version, preset_cuda, python_version, chip_type, applicable_scopes, registry, repository, tag, digest, \
             size, arch, os, is_official, visibility, owner, status, publication, origin, created_by, updated_by, \
             created_at, updated_at) \
             VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'private', ?, 'ready', 'online', 'build', ?, ?, ?, ?) \
             RETURNING id",
            &[
                b.name.into(),
                b.description.clone().into(),
                base.and_then(|b| b.category.clone()).unwrap_or_else(|| "custom".into()).into(),
                base.and_then(|b| b.framework.clone()).into(),
                base.and_then(|b| b.framework_version.clone()).into(),
                serde_json::to_string(&base.map(|b| b.frameworks.clone()).unwrap_or_default()).expect("strings serialize").into(),
                base.and_then(|b| b.cuda_version.clone()).into(),
                base.is_some_and(|b| b.preset_cuda).into(),
                base.and_then(|b| b.python_version.clone()).into(),
                base.map_or("GPU".to_owned(), |b| b.chip_type.clone()).into(),
                serde_json::to_string(&base.map(|b| b.applicable_scopes.clone()).unwrap_or_default()).expect("strings serialize").into(),
                b.registry.into(),
                b.repository.into(),
                b.tag.into(),
                Some(facts.digest.clone()).filter(|d| !d.is_empty()).into(),
                facts.size.into(),
                facts.arch.clone().into(),
                facts.os.clone().into(),
                b.owner.into(),
                b.owner.into(),
                b.owner.into(),
                b.now.into(),
                b.now.into(),
            ],
        )?
        .scalar_i64()
    else {
        return Ok(None);
    };
    for scope in base
        .map(|b| b.applicable_scopes.clone())
        .unwrap_or_default()
    {
        db.execute(
            "INSERT INTO image_scopes (image_id, scope) VALUES (?, ?)",
            &[image_id.into(), scope.into()],
        )?;
    }
    Ok(Some(image_id))
}

fn upsert_sql(columns: &str, updates: &str) -> String {
    format!(
        "INSERT INTO image_facts (image_id, {columns}) VALUES (?, {}) \
         ON CONFLICT (image_id) DO UPDATE SET {updates}",
        vec!["?"; columns.split(',').count()].join(", ")
    )
}

/// Records a scan of an image: its summary, and the severity rank the `max_severity`
/// filter reads (only for a scan that succeeded).
pub fn record_scan(db: &dyn Db, image_id: i64, scan: &ScanRecord) -> Result<(), DbError> {
    db.execute(
        &upsert_sql(
            "scan, scan_severity, scanned_at",
            "scan = excluded.scan, scan_severity = excluded.scan_severity, scanned_at = excluded.scanned_at",
        ),
        &[
            image_id.into(),
            scan.view.to_string().into(),
            scan.rank.into(),
            scan.scanned_at.clone().into(),
        ],
    )?;
    // The detail shows the scan, and its entity tag is the image's revision.
    db.execute(
        "UPDATE images SET revision = revision + 1 WHERE id = ?",
        &[image_id.into()],
    )
}

/// Records what was derived and applies it to the image's columns, except where an admin
/// changed a column since: a column is replaced only while it is empty or still holds the
/// value berth derived before.
pub fn record(db: &dyn Db, image_id: i64, contents: &Contents) -> Result<(), DbError> {
    let before = db.query(
        "SELECT derived FROM image_facts WHERE image_id = ?",
        &[image_id.into()],
    )?;
    let old: DerivedFacts = before
        .first()
        .and_then(|r| serde_json::from_str(r.str("derived")).ok())
        .unwrap_or_default();
    let new = &contents.derived;
    let columns = [
        ("framework", &old.framework, &new.framework),
        (
            "framework_version",
            &old.framework_version,
            &new.framework_version,
        ),
        ("cuda_version", &old.cuda_version, &new.cuda_version),
        ("python_version", &old.python_version, &new.python_version),
    ];
    for (column, old, new) in columns {
        if new.is_none() {
            continue;
        }
        db.execute(
            &format!(
                "UPDATE images SET {column} = ? WHERE id = ? AND ({column} IS NULL OR {column} = ?)"
            ),
            &[new.clone().into(), image_id.into(), old.clone().into()],
        )?;
    }
    if old.cuda_version.is_none() && new.cuda_version.is_some() {
        // Ships with CUDA; set once, when CUDA is first found, so an admin's choice stays.
        db.execute(
            "UPDATE images SET preset_cuda = ? WHERE id = ?",
            &[true.into(), image_id.into()],
        )?;
    }
    db.execute(
        &upsert_sql(
            "derived, cudnn_version",
            "derived = excluded.derived, cudnn_version = excluded.cudnn_version",
        ),
        &[
            image_id.into(),
            serde_json::to_string(new).unwrap_or_default().into(),
            new.cudnn_version.clone().into(),
        ],
    )?;
    if let Some(scan) = &contents.scan {
        record_scan(db, image_id, &ScanRecord::from(scan))?;
    }
    Ok(())
}

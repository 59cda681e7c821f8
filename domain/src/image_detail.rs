//! An image's detail read in one statement: the image, its facts and its platforms (one row
//! per platform, the image's columns repeated). On Spin every statement of a request costs a
//! round through the host on a fresh connection; three reads were three rounds.

use crate::auth::Caller;
use crate::config::Context;
use crate::db::{Db, DbError, Rows, Value};
use crate::envelope::ApiError;
use crate::image_contents::ExtraFacts;
use crate::migrations::SchemaCheck;
use crate::model::{IMAGE_COLUMNS, Image, Platform};

pub struct Detail {
    pub image: Image,
    pub platforms: Vec<Platform>,
    pub facts: ExtraFacts,
}

/// The image with its platforms and facts, or `None` when there is no such image.
pub fn read(db: &dyn Db, id: i64) -> Result<Option<Detail>, DbError> {
    let rows = db.query(&detail_sql(""), &[id.into()])?;
    Ok(from_rows(&rows))
}

/// [`read`], with the per-request schema check in the same statement: one statement per
/// detail when the schema is current.
pub fn read_checked(ctx: &Context<'_>, id: i64) -> Result<Option<Detail>, DbError> {
    let check = SchemaCheck::new(ctx);
    let sql = detail_sql(&check.columns(ctx.db.dialect()));
    // On an old schema the statement may fail: migrated below, then read again.
    if let Ok(rows) = ctx.db.query(&sql, &[id.into()])
        && rows.first().is_some_and(|row| check.passed(&row))
    {
        return Ok(from_rows(&rows));
    }
    check.migrate(ctx.db)?;
    read(ctx.db, id)
}

/// The detail's statement; `check` columns, if any, come first. It always returns a row (a
/// one-row table joined to the image), so that the check is read when there is no image.
fn detail_sql(check: &str) -> String {
    let image_columns: Vec<String> = IMAGE_COLUMNS
        .split(',')
        .map(|c| format!("images.{0} AS {0}", c.trim()))
        .collect();
    let check = if check.is_empty() {
        String::new()
    } else {
        format!("{check}, ")
    };
    format!(
        "SELECT {check}{}, f.cudnn_version AS facts_cudnn_version, f.scan AS facts_scan, \
         p.digest AS platform_digest, p.architecture AS platform_architecture, p.os AS platform_os, \
         p.variant AS platform_variant, p.size AS platform_size \
         FROM (SELECT 1 AS one) one_row LEFT JOIN images ON images.id = ? \
         LEFT JOIN image_facts f ON f.image_id = images.id \
         LEFT JOIN image_platforms p ON p.image_id = images.id \
         ORDER BY p.architecture, p.variant NULLS FIRST",
        image_columns.join(", ")
    )
}

fn from_rows(rows: &Rows) -> Option<Detail> {
    let first = rows.first()?;
    if matches!(first.get("id"), Value::Null) {
        return None;
    }
    let image = Image::from_row(&first);
    let facts = crate::image_contents::extra_facts_from(
        &image,
        first.opt_string("facts_cudnn_version"),
        first.opt_str("facts_scan"),
    );
    let platforms = rows
        .iter()
        .filter(|r| !matches!(r.get("platform_digest"), Value::Null))
        .map(|r| Platform {
            digest: r.str("platform_digest").to_owned(),
            architecture: r.str("platform_architecture").to_owned(),
            os: r.str("platform_os").to_owned(),
            variant: r.opt_string("platform_variant"),
            size: r.i64("platform_size"),
        })
        .collect();
    Some(Detail {
        image,
        platforms,
        facts,
    })
}

/// A visible image's detail, or 404 (an invisible image is not revealed to exist).
pub fn visible(ctx: &Context<'_>, id: i64, caller: &Caller) -> Result<Detail, ApiError> {
    read_checked(ctx, id)?
        .filter(|d| crate::store::can_see(caller, &d.image))
        .ok_or_else(|| ApiError::not_found(format!("image {id} not found")))
}

#[cfg(all(test, feature = "rusqlite"))]
mod tests {
    use super::*;
    use crate::db::native::SqliteDb;

    /// The same image, platforms and facts as the separate reads.
    #[test]
    fn one_statement_reads_what_three_did() {
        let db = SqliteDb::open_in_memory();
        crate::migrations::ensure(&db).unwrap();
        assert!(read(&db, 999).unwrap().is_none());
        let plain = read(&db, 1).unwrap().unwrap();
        assert_eq!(plain.image, crate::store::get(&db, 1).unwrap().unwrap());
        assert!(plain.platforms.is_empty());
        for (arch, variant) in [("arm64", Some("v8")), ("amd64", None), ("arm64", None)] {
            db.execute(
                "INSERT INTO image_platforms (image_id, digest, architecture, os, variant, size) \
                 VALUES (1, ?, ?, 'linux', ?, 7)",
                &[
                    format!("sha256:{arch}{variant:?}").into(),
                    arch.into(),
                    variant.into(),
                ],
            )
            .unwrap();
        }
        db.execute(
            "INSERT INTO image_facts (image_id, cudnn_version, scan) VALUES (1, '8', '{\"severity\": \"High\"}')",
            &[],
        )
        .unwrap();
        let d = read(&db, 1).unwrap().unwrap();
        let image = crate::store::get(&db, 1).unwrap().unwrap();
        assert_eq!(d.image, image);
        assert_eq!(d.platforms, crate::store::platforms(&db, 1).unwrap());
        assert_eq!(d.platforms.len(), 3);
        let facts = crate::image_contents::extra_facts(&db, &image).unwrap();
        assert_eq!(
            serde_json::to_value(&d.facts).unwrap(),
            serde_json::to_value(&facts).unwrap()
        );
        assert_eq!(d.facts.cudnn_version.as_deref(), Some("8"));

        // With the schema check in the statement: the same, also on a file that needs a
        // migration first (its header says version 0).
        let vars = std::collections::HashMap::new();
        let ctx = Context {
            db: &db,
            vars: &vars,
            now: 0,
        };
        let checked = read_checked(&ctx, 1).unwrap().unwrap();
        assert_eq!(
            (checked.image, checked.platforms),
            (d.image.clone(), d.platforms.clone())
        );
        assert!(read_checked(&ctx, 999).unwrap().is_none());
        db.execute("PRAGMA user_version = 0", &[]).unwrap();
        let again = read_checked(&ctx, 1).unwrap().unwrap();
        assert_eq!(again.image, d.image);
        let header = db.query("PRAGMA user_version", &[]).unwrap().scalar_i64();
        assert_eq!(header, Some(crate::migrations::latest_version()));
    }
}

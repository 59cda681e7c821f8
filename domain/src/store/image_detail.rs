//! An image's detail read in one statement: the image, its facts and its platforms (one row
//! per platform, the image's columns repeated). On Spin every statement of a request costs a
//! round through the host on a fresh connection; three reads were three rounds.

use crate::db::{Db, DbError, Rows, Value};
use crate::image_contents::ExtraFacts;
use crate::model::{IMAGE_COLUMNS, Image, Platform};

pub struct Detail {
    pub image: Image,
    pub platforms: Vec<Platform>,
    pub facts: ExtraFacts,
}

/// The image with its platforms and facts, or `None` when there is no such image.
pub fn read(db: &dyn Db, id: i64) -> Result<Option<Detail>, DbError> {
    let rows = db.query(&detail_sql(), &[id.into()])?;
    Ok(from_rows(&rows))
}

/// The detail's statement. It always returns a row (a one-row table joined to the image),
/// so that "no such image" is a row of NULLs.
fn detail_sql() -> String {
    let image_columns: Vec<String> = IMAGE_COLUMNS
        .split(',')
        .map(|c| format!("images.{0} AS {0}", c.trim()))
        .collect();
    format!(
        "SELECT {}, f.cudnn_version AS facts_cudnn_version, f.scan AS facts_scan, \
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
        assert_eq!(
            plain.image,
            crate::store::images::get(&db, 1).unwrap().unwrap()
        );
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
        let image = crate::store::images::get(&db, 1).unwrap().unwrap();
        assert_eq!(d.image, image);
        assert_eq!(
            d.platforms,
            crate::store::images::platforms(&db, 1).unwrap()
        );
        assert_eq!(d.platforms.len(), 3);
        let facts = crate::store::images::extra_facts(&db, &image).unwrap();
        assert_eq!(
            serde_json::to_value(&d.facts).unwrap(),
            serde_json::to_value(&facts).unwrap()
        );
        assert_eq!(d.facts.cudnn_version.as_deref(), Some("8"));
    }
}

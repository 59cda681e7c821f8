//! Conditional GETs (RFC 9110 §13). A list's entity tag names the catalog's revision, the
//! caller and the query: a repeated list is answered `304 Not Modified` after one statement
//! (the revision, read together with the schema check) and no page read. An image's detail
//! keeps its tag (the image's revision, which `If-Match` checks on writes) and answers
//! `If-None-Match` with 304 too.

use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::envelope::ApiError;
use crate::http::{Request, Response};
use crate::migrations;
use crate::query::ListQuery;

/// What a caller sees depends on who they are: a cache may keep a response for that caller
/// only, and must ask again before reusing it, which the tag makes cheap. Every catalog read
/// is authenticated, so no response is ever stored by a shared cache.
const CACHE_CONTROL: &str = "private, no-cache";

/// How a list route parses its query (`ListQuery::from_v1`, `ListQuery::from_console`).
pub type ParseQuery = fn(&[(String, String)]) -> Result<ListQuery, ApiError>;

/// A list page (`/api/v1/images`, `/api/images`): 304 when `If-None-Match` names the tag
/// the same caller got for the same query at the current revision; otherwise `page`'s
/// response for the parsed query, with the tag. The query is parsed first, so an invalid
/// one is still a 400.
pub fn list(
    req: &Request,
    caller: &Caller,
    parse: ParseQuery,
    revision: impl FnOnce() -> Result<i64, ApiError>,
    page: impl FnOnce(&ListQuery) -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    let pairs = req.query_pairs();
    let query = parse(&pairs)?;
    let revision = revision()?;
    let tag = list_tag(revision, &req.path, caller, &pairs);
    if none_match_fails(req.header("if-none-match"), &tag) {
        return Ok(not_modified(&tag));
    }
    Ok(with_validators(page(&query)?, &tag))
}

/// An image's detail, already read: 304 when `If-None-Match` names its tag.
pub fn detail(req: &Request, res: Response) -> Response {
    if res.status != 200 {
        return res;
    }
    let Some(tag) = res.header("etag").map(str::to_owned) else {
        return res;
    };
    if none_match_fails(req.header("if-none-match"), &tag) {
        return not_modified(&tag);
    }
    with_caching(res)
}

/// A weak tag: two pages with the same tag are the same list, not necessarily the same
/// bytes (a setting or a new build may render a field differently). Opaque: a hash of the
/// revision, the path, the caller's name and role, the query's parameters in key order (so
/// `a=1&b=2` and `b=2&a=1` share it; a repeated key keeps its values' order, which the
/// parser may depend on), and the build.
fn list_tag(revision: i64, path: &str, caller: &Caller, query: &[(String, String)]) -> String {
    let (schema, revision) = (
        migrations::latest_version().to_string(),
        revision.to_string(),
    );
    let mut query: Vec<&(String, String)> = query.iter().collect();
    query.sort_by(|a, b| a.0.cmp(&b.0));
    let head: [&str; 6] = [
        env!("CARGO_PKG_VERSION"),
        &schema,
        &revision,
        path,
        caller.role.as_str(),
        &caller.name,
    ];
    let parameters = query.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]);
    let mut h = Sha256::new();
    for part in head.into_iter().chain(parameters) {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

/// Whether an `If-None-Match` condition is false for a resource whose current tag is `tag`
/// (RFC 9110 §13.1.2): `*`, or any listed tag equal to it by weak comparison (`W/` ignored).
fn none_match_fails(header: Option<&str>, tag: &str) -> bool {
    let Some(header) = header else {
        return false;
    };
    if header.trim() == "*" {
        return true;
    }
    let current = opaque(tag);
    entity_tags(header).any(|t| Some(t) == current)
}

/// The opaque part of an entity tag (`"x"` of `W/"x"`), quotes included.
fn opaque(tag: &str) -> Option<&str> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    (tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')).then_some(tag)
}

/// The opaque tags of a comma-separated list of entity tags; malformed members are skipped.
fn entity_tags(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = list;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return None;
            }
            let tag = rest.strip_prefix("W/").unwrap_or(rest);
            if let Some(inner) = tag.strip_prefix('"')
                && let Some(end) = inner.find('"')
            {
                rest = &inner[end + 1..];
                return Some(&tag[..end + 2]);
            }
            // Not an entity tag: skip to the next member.
            rest = rest.find(',').map_or("", |i| &rest[i..]);
        }
    })
}

/// 304 with what a 200 would have said about caching (RFC 9110 §15.4.5), and no body.
fn not_modified(tag: &str) -> Response {
    with_validators(
        Response {
            status: 304,
            headers: Vec::new(),
            body: Vec::new(),
        },
        tag,
    )
}

fn with_validators(res: Response, tag: &str) -> Response {
    with_caching(res.with_header("etag", tag))
}

fn with_caching(res: Response) -> Response {
    res.with_header("cache-control", CACHE_CONTROL)
        .with_header("vary", "Authorization")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let tag = "W/\"abc\"";
        for (header, fails) in [
            ("W/\"abc\"", true),
            ("\"abc\"", true),
            ("*", true),
            ("\"x\", W/\"abc\"", true),
            ("\"x,y\",W/\"abc\"", true),
            ("\"abcd\"", false),
            ("abc", false),
            ("W/\"ab\"", false),
            ("", false),
        ] {
            assert_eq!(none_match_fails(Some(header), tag), fails, "{header}");
        }
        assert!(!none_match_fails(None, tag));
        assert!(none_match_fails(Some("W/\"7\""), "\"7\""));
        assert!(!none_match_fails(Some("\"8\""), "\"7\""));
    }

    #[test]
    fn list_tags_differ_by_revision_caller_role_query_and_path() {
        let user = |name: &str, role| Caller {
            name: name.into(),
            role,
        };
        let q = |s: &str| crate::http::parse_query(s);
        let base = list_tag(
            1,
            "/api/v1/images",
            &user("alice", Role::User),
            &q("page=1"),
        );
        assert!(base.starts_with("W/\"") && base.ends_with('"'), "{base}");
        for other in [
            list_tag(
                2,
                "/api/v1/images",
                &user("alice", Role::User),
                &q("page=1"),
            ),
            list_tag(1, "/api/images", &user("alice", Role::User), &q("page=1")),
            list_tag(1, "/api/v1/images", &user("bob", Role::User), &q("page=1")),
            list_tag(
                1,
                "/api/v1/images",
                &user("alice", Role::Admin),
                &q("page=1"),
            ),
            list_tag(
                1,
                "/api/v1/images",
                &user("alice", Role::User),
                &q("page=2"),
            ),
        ] {
            assert_ne!(base, other);
        }
        // The parameters' order does not matter, a repeated key's values' order does.
        assert_eq!(
            list_tag(1, "/p", &user("a", Role::User), &q("page=2&page_size=20")),
            list_tag(1, "/p", &user("a", Role::User), &q("page_size=20&page=2"))
        );
        assert_ne!(
            list_tag(1, "/p", &user("a", Role::User), &q("name=a&name=b")),
            list_tag(1, "/p", &user("a", Role::User), &q("name=b&name=a"))
        );
    }
}

//! URL pieces for Harbor's API: path segments, double-encoded repository names (CONTRACT
//! §0.6), query values, and the ids Harbor returns in `Location`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Escaped in one path segment: everything but RFC 3986 unreserved characters and `:`/`@`
/// (so `sha256:…` digests stay readable); `/` becomes `%2F`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// Escaped in a query value: everything but RFC 3986 unreserved characters, so `=` and `,`
/// inside `q` are sent as `%3D`/`%2C` (Harbor unescapes `q` once more, CONTRACT §0.4).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment: a project name, a tag or digest, an id.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A repository name (without the project) as Harbor's router wants it: encoded twice,
/// `nvidia/pytorch` → `nvidia%2Fpytorch` → `nvidia%252Fpytorch`.
pub fn repository(name: &str) -> String {
    segment(&segment(name))
}

/// A query value.
pub fn query_value(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// `k=v&k2=v2`, values encoded.
pub fn query_string(query: &[(&str, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{k}={}", query_value(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The numeric id at the end of a `Location` header: `/api/v2.0/registries/3` → 3. Accepts
/// an absolute URL too, and ignores a query or a trailing `/`.
pub fn id_from_location(location: &str) -> Option<i64> {
    let path = location.split(['?', '#']).next().unwrap_or_default();
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    percent_decode_str(last).decode_utf8().ok()?.parse().ok()
}

/// Whether a `Link` header (CONTRACT §0.4) announces a next page.
pub fn has_next_link(link: &str) -> bool {
    link.split(',').any(|part| {
        part.split(';')
            .skip(1)
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_encoded_twice() {
        assert_eq!(repository("nginx"), "nginx");
        assert_eq!(repository("nvidia/pytorch"), "nvidia%252Fpytorch");
        assert_eq!(repository("a/b/c"), "a%252Fb%252Fc");
        // Swagger's own example: a/b -> a%2Fb -> a%252Fb.
        assert_eq!(segment("a/b"), "a%2Fb");
        assert_eq!(segment(&segment("a/b")), "a%252Fb");
    }

    #[test]
    fn segments_keep_tags_and_digests_readable() {
        assert_eq!(segment("1.25-alpine_x"), "1.25-alpine_x");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(segment(&digest), digest);
        assert_eq!(segment("a b?c#"), "a%20b%3Fc%23");
    }

    #[test]
    fn query_values_escape_q_syntax() {
        assert_eq!(query_value("name=import-x.y_z"), "name%3Dimport-x.y_z");
        assert_eq!(
            query_string(&[("q", "type=docker-hub".into()), ("page", "2".into())]),
            "q=type%3Ddocker-hub&page=2"
        );
        assert_eq!(query_value("a&b+c,d"), "a%26b%2Bc%2Cd");
    }

    #[test]
    fn location_ids() {
        assert_eq!(id_from_location("/api/v2.0/registries/3"), Some(3));
        assert_eq!(
            id_from_location("https://harbor.example.com/api/v2.0/replication/executions/42/"),
            Some(42)
        );
        assert_eq!(id_from_location("/api/v2.0/projects/7?x=1"), Some(7));
        assert_eq!(id_from_location("/api/v2.0/projects/catalog"), None);
        assert_eq!(id_from_location(""), None);
    }

    #[test]
    fn next_links() {
        let both = "</api/v2.0/replication/policies?page=1&page_size=10>; rel=\"prev\" , \
                    </api/v2.0/replication/policies?page=3&page_size=10>; rel=\"next\"";
        assert!(has_next_link(both));
        assert!(!has_next_link(
            "</api/v2.0/registries?page=1&page_size=10>; rel=\"prev\""
        ));
        assert!(!has_next_link(""));
    }
}

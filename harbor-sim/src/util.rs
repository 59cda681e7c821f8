//! Small helpers shared by the handlers: JSON building with Harbor's zero-value
//! omission, timestamps, ids, paging, the `q` query language and glob matching.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::http::ApiError;

/// The rendering of a time that was never set (§0.5).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00.000Z";

/// RFC3339 with milliseconds, `Z` suffix; `None` renders as the Go zero time.
pub fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => ZERO_TIME.to_string(),
    }
}

pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// A random UUIDv4 string.
pub fn uuid_v4() -> String {
    let a = random_u64().to_be_bytes();
    let b = random_u64().to_be_bytes();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a);
    bytes[8..].copy_from_slice(&b);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// A deterministic number derived from a seed string.
pub fn seed_u64(seed: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    let out = h.finalize();
    u64::from_be_bytes(out[..8].try_into().expect("8 bytes"))
}

/// Builder for response objects that omits zero values (§0.5) unless told otherwise.
#[derive(Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    pub fn new() -> Self {
        Obj(Map::new())
    }
    /// String, omitted when empty.
    pub fn s(mut self, k: &str, v: &str) -> Self {
        if !v.is_empty() {
            self.0.insert(k.into(), Value::String(v.into()));
        }
        self
    }
    /// Integer, omitted when zero.
    pub fn i(mut self, k: &str, v: i64) -> Self {
        if v != 0 {
            self.0.insert(k.into(), Value::from(v));
        }
        self
    }
    /// Boolean, omitted when false.
    pub fn b(mut self, k: &str, v: bool) -> Self {
        if v {
            self.0.insert(k.into(), Value::Bool(true));
        }
        self
    }
    /// Date-time, always present.
    pub fn t(mut self, k: &str, v: Option<DateTime<Utc>>) -> Self {
        self.0.insert(k.into(), Value::String(fmt_time(v)));
        self
    }
    /// Always present.
    pub fn always(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.0.insert(k.into(), v.into());
        self
    }
    /// Arbitrary value, omitted when null, an empty array or an empty object.
    pub fn v(mut self, k: &str, v: Value) -> Self {
        let empty = match &v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        if !empty {
            self.0.insert(k.into(), v);
        }
        self
    }
    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// Decoded query parameters, in request order.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        match raw {
            Some(raw) => Query(
                url::form_urlencoded::parse(raw.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
            None => Query(Vec::new()),
        }
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    /// A go-swagger boolean query parameter.
    pub fn bool_param(&self, k: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(default),
            Some(v) => match v {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
                "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
                other => Err(ApiError::unprocessable(format!(
                    "{k} in query must be of type boolean: \"{other}\""
                ))),
            },
        }
    }
    pub fn int_param(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::unprocessable(format!("{k} in query must be of type int64: \"{v}\""))
            }),
        }
    }
}

/// `page` / `page_size` (§0.4).
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub page: i64,
    pub page_size: i64,
}

impl Paging {
    pub fn from_query(q: &Query) -> Result<Paging, ApiError> {
        let page = q.int_param("page")?.unwrap_or(1);
        let page_size = q.int_param("page_size")?.unwrap_or(10);
        if page_size > 100 {
            return Err(ApiError::unprocessable(
                "page_size in query should be less than or equal to 100".to_string(),
            ));
        }
        Ok(Paging {
            page: page.max(1),
            page_size,
        })
    }

    pub fn apply<T>(&self, items: Vec<T>) -> Vec<T> {
        if self.page_size <= 0 {
            return items;
        }
        let start = ((self.page - 1) * self.page_size) as usize;
        items
            .into_iter()
            .skip(start)
            .take(self.page_size as usize)
            .collect()
    }

    /// The `Link` header (§0.4), if a previous or next page exists.
    pub fn link(&self, path: &str, query: &Query, total: i64) -> Option<String> {
        if self.page_size <= 0 {
            return None;
        }
        let build = |page: i64| -> String {
            let mut pairs: Vec<(String, String)> = query
                .0
                .iter()
                .filter(|(k, _)| k != "page" && k != "page_size")
                .cloned()
                .collect();
            pairs.push(("page".into(), page.to_string()));
            pairs.push(("page_size".into(), self.page_size.to_string()));
            // Go's url.Values.Encode sorts by key (stable for repeated keys);
            // Harbor then unescapes the encoded query.
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{path}?{}", q.join("&"))
        };
        let mut links = Vec::new();
        if self.page > 1 && (self.page - 1) * self.page_size < total {
            links.push(format!("<{}>; rel=\"prev\"", build(self.page - 1)));
        }
        if self.page * self.page_size < total {
            links.push(format!("<{}>; rel=\"next\"", build(self.page + 1)));
        }
        if links.is_empty() {
            None
        } else {
            Some(links.join(" , "))
        }
    }
}

/// One term of the `q` query language.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Exact(String),
    Fuzzy(String),
    OrList(Vec<String>),
    Range(Option<String>, Option<String>),
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        v[1..v.len() - 1].to_string()
    } else {
        v.to_string()
    }
}

/// Parses `q` (already form-decoded once; Harbor unescapes it once more).
pub fn parse_q(raw: Option<&str>) -> Result<Vec<(String, Term)>, ApiError> {
    let raw = match raw {
        None => return Ok(Vec::new()),
        Some(r) if r.trim().is_empty() => return Ok(Vec::new()),
        Some(r) => r,
    };
    let unescaped = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request(format!("invalid query string: {raw}")))?
        .into_owned();
    // split on commas that are not inside brackets
    let mut terms = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in unescaped.chars() {
        match c {
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            terms.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    terms.push(cur);
    let mut out = Vec::new();
    for term in terms {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        let (k, v) = match term.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.is_empty() => (k.trim(), v),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid query string: the query string must contain \"=\" and the key/value cannot be empty: {term}"
                )));
            }
        };
        let t = if let Some(rest) = v.strip_prefix('~') {
            Term::Fuzzy(unquote(rest))
        } else if v.starts_with('{') && v.ends_with('}') {
            Term::OrList(v[1..v.len() - 1].split_whitespace().map(unquote).collect())
        } else if v.starts_with('[') && v.ends_with(']') && v.contains('~') {
            let inner = &v[1..v.len() - 1];
            let (a, b) = inner.split_once('~').unwrap_or((inner, ""));
            let a = unquote(a);
            let b = unquote(b);
            Term::Range(
                if a.is_empty() { None } else { Some(a) },
                if b.is_empty() { None } else { Some(b) },
            )
        } else {
            Term::Exact(unquote(v))
        };
        out.push((k.to_string(), t));
    }
    Ok(out)
}

impl Term {
    pub fn matches(&self, field: &str) -> bool {
        match self {
            Term::Exact(v) => field == v,
            Term::Fuzzy(v) => field.contains(v.as_str()),
            Term::OrList(vs) => vs.iter().any(|v| v == field),
            Term::Range(a, b) => {
                let ge = |x: &str, y: &str| match (x.parse::<i64>(), y.parse::<i64>()) {
                    (Ok(x), Ok(y)) => x >= y,
                    _ => x >= y,
                };
                a.as_deref().is_none_or(|a| ge(field, a))
                    && b.as_deref().is_none_or(|b| ge(b, field))
            }
        }
    }
}

/// Filters items by `q` terms. `field` returns `None` for keys the resource does not
/// support: Harbor ignores non-filterable keys.
pub fn filter_q<T>(
    items: Vec<T>,
    terms: &[(String, Term)],
    field: impl Fn(&T, &str) -> Option<String>,
) -> Vec<T> {
    items
        .into_iter()
        .filter(|it| {
            terms.iter().all(|(k, t)| match field(it, k) {
                Some(v) => t.matches(&v),
                None => true,
            })
        })
        .collect()
}

/// Sorts by `sort=field,-field2`; default (no `sort`) is newest first (id descending).
pub fn sort_items<T>(
    items: &mut [T],
    sort: Option<&str>,
    id: impl Fn(&T) -> i64,
    field: impl Fn(&T, &str) -> Option<String>,
) {
    let spec: Vec<(String, bool)> = sort
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix('-') {
            Some(rest) => (rest.to_string(), true),
            None => (s.to_string(), false),
        })
        .collect();
    if spec.is_empty() {
        items.sort_by_key(|b| std::cmp::Reverse(id(b)));
        return;
    }
    items.sort_by(|a, b| {
        for (k, desc) in &spec {
            let ord = if k == "id" || k == "creation_time" || k == "update_time" {
                id(a).cmp(&id(b))
            } else {
                let fa = field(a, k).unwrap_or_default();
                let fb = field(b, k).unwrap_or_default();
                match (fa.parse::<i64>(), fb.parse::<i64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => fa.cmp(&fb),
                }
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
}

/// `doublestar` glob matching: `*` does not cross `/`, `**` matches anything,
/// `?` one non-`/` character, `[...]` classes, `{a,b}` alternation. Empty matches all.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    expand_braces(pattern).iter().any(|p| {
        match_chars(
            &p.chars().collect::<Vec<_>>(),
            &name.chars().collect::<Vec<_>>(),
        )
    })
}

pub fn is_pattern(s: &str) -> bool {
    s.chars().any(|c| matches!(c, '*' | '?' | '[' | '{' | '\\'))
}

fn expand_braces(p: &str) -> Vec<String> {
    let chars: Vec<char> = p.chars().collect();
    let mut depth = 0;
    let mut start = None;
    for (i, c) in chars.iter().enumerate() {
        match c {
            '{' => {
                if depth == 0 {
                    start = Some(i);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let s = start.expect("brace start");
                    let prefix: String = chars[..s].iter().collect();
                    let suffix: String = chars[i + 1..].iter().collect();
                    let inner: Vec<char> = chars[s + 1..i].to_vec();
                    // split inner on top-level commas
                    let mut alts = Vec::new();
                    let mut d = 0;
                    let mut cur = String::new();
                    for c in inner {
                        match c {
                            '{' => d += 1,
                            '}' => d -= 1,
                            _ => {}
                        }
                        if c == ',' && d == 0 {
                            alts.push(std::mem::take(&mut cur));
                        } else {
                            cur.push(c);
                        }
                    }
                    alts.push(cur);
                    let mut out = Vec::new();
                    for alt in alts {
                        out.extend(expand_braces(&format!("{prefix}{alt}{suffix}")));
                    }
                    return out;
                }
            }
            _ => {}
        }
    }
    vec![p.to_string()]
}

fn match_chars(p: &[char], n: &[char]) -> bool {
    if p.is_empty() {
        return n.is_empty();
    }
    match p[0] {
        '*' => {
            if p.len() > 1 && p[1] == '*' {
                // `**` crosses separators
                let rest = &p[2..];
                // `**/` may also match zero directories
                if !rest.is_empty() && rest[0] == '/' && match_chars(&rest[1..], n) {
                    return true;
                }
                (0..=n.len()).any(|i| match_chars(rest, &n[i..]))
            } else {
                let rest = &p[1..];
                for i in 0..=n.len() {
                    if match_chars(rest, &n[i..]) {
                        return true;
                    }
                    if i < n.len() && n[i] == '/' {
                        break;
                    }
                }
                false
            }
        }
        '?' => !n.is_empty() && n[0] != '/' && match_chars(&p[1..], &n[1..]),
        '[' => {
            if n.is_empty() || n[0] == '/' {
                return false;
            }
            let Some(end) = p.iter().skip(1).position(|&c| c == ']').map(|e| e + 1) else {
                return p[0] == n[0] && match_chars(&p[1..], &n[1..]);
            };
            let class = &p[1..end];
            let (negate, class) = match class.first() {
                Some('!') | Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let c = n[0];
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    if class[i] <= c && c <= class[i + 2] {
                        hit = true;
                    }
                    i += 3;
                } else {
                    if class[i] == c {
                        hit = true;
                    }
                    i += 1;
                }
            }
            hit != negate && match_chars(&p[end + 1..], &n[1..])
        }
        '\\' if p.len() > 1 => !n.is_empty() && n[0] == p[1] && match_chars(&p[2..], &n[1..]),
        c => !n.is_empty() && n[0] == c && match_chars(&p[1..], &n[1..]),
    }
}

/// Harbor's project name rule: `^[a-z0-9]+(?:[._-][a-z0-9]+)*$`.
pub fn valid_component(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let bytes = s.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let sep = |b: u8| b == b'.' || b == b'_' || b == b'-';
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut prev_sep = false;
    for &b in bytes {
        if sep(b) {
            if prev_sep {
                return false;
            }
            prev_sep = true;
        } else if alnum(b) {
            prev_sep = false;
        } else {
            return false;
        }
    }
    true
}

/// The docker reference repository name rule (components joined by `/`).
pub fn valid_repository_name(s: &str) -> bool {
    !s.is_empty() && s.split('/').all(valid_component)
}

/// `utils.ParseEndpoint` / `lib.ValidateHTTPURL`: trim, drop trailing `/`, add
/// `http://` when there is no scheme, keep `scheme://host/path`.
pub fn normalize_http_url(raw: &str) -> Result<String, ApiError> {
    let s = raw.trim().trim_end_matches('/');
    if s.is_empty() {
        return Err(ApiError::bad_request("empty string".to_string()));
    }
    let s = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let u =
        url::Url::parse(&s).map_err(|_| ApiError::bad_request(format!("malformed URL: {s}")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(ApiError::bad_request(format!(
            "invalid HTTP scheme: {}",
            u.scheme()
        )));
    }
    let host = u.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err(ApiError::bad_request(format!("malformed URL: {s}")));
    }
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = u.path().trim_end_matches('/');
    Ok(format!("{}://{host}{port}{path}", u.scheme()))
}

pub fn url_host(raw: &str) -> String {
    let s = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    url::Url::parse(&s)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("library/nginx", "library/nginx"));
        assert!(glob_match("library/*", "library/nginx"));
        assert!(!glob_match("*", "library/nginx"));
        assert!(glob_match("**", "library/nginx"));
        assert!(glob_match("1.{25,26}", "1.26"));
        assert!(glob_match("1.2?", "1.25"));
        assert!(glob_match("v[0-9]*", "v1.0"));
        assert!(glob_match("", "anything"));
        assert!(!glob_match("1.25", "1.250"));
    }

    #[test]
    fn components() {
        assert!(valid_component("catalog"));
        assert!(valid_component("a.b-c_d"));
        assert!(!valid_component("Catalog"));
        assert!(!valid_component("a..b"));
        assert!(!valid_component("-a"));
        assert!(valid_repository_name("catalog/nvidia"));
        assert!(!valid_repository_name("catalog//x"));
    }

    #[test]
    fn urls() {
        assert_eq!(
            normalize_http_url(" https://nvcr.io/ ").unwrap(),
            "https://nvcr.io"
        );
        assert_eq!(normalize_http_url("nvcr.io").unwrap(), "http://nvcr.io");
        assert_eq!(
            normalize_http_url("https://h:5000/a/?x=1#f").unwrap(),
            "https://h:5000/a"
        );
        assert!(normalize_http_url("ftp://x").is_err());
    }

    #[test]
    fn q_language() {
        let t = parse_q(Some("name=foo,type=~dock")).unwrap();
        assert_eq!(t[0], ("name".into(), Term::Exact("foo".into())));
        assert_eq!(t[1], ("type".into(), Term::Fuzzy("dock".into())));
        let t = parse_q(Some("name%3Dfoo")).unwrap();
        assert_eq!(t[0], ("name".into(), Term::Exact("foo".into())));
        let t = parse_q(Some("url=https://nvcr.io")).unwrap();
        assert_eq!(t[0], ("url".into(), Term::Exact("https://nvcr.io".into())));
        assert!(parse_q(Some("garbage")).is_err());
    }

    #[test]
    fn links() {
        let p = Paging {
            page: 2,
            page_size: 10,
        };
        let q = Query::parse(Some("q=name%3Dx&page=2&page_size=10"));
        assert_eq!(
            p.link("/api/v2.0/replication/policies", &q, 35).unwrap(),
            "</api/v2.0/replication/policies?page=1&page_size=10&q=name=x>; rel=\"prev\" , </api/v2.0/replication/policies?page=3&page_size=10&q=name=x>; rel=\"next\""
        );
        assert!(p.link("/x", &q, 5).is_none());
    }

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}

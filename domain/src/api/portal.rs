//! The portal: serves the built single-page app (assets compiled into the component) and,
//! in demo mode, a session token so the page signs in by itself.

use serde_json::{Value, json};

use crate::auth::{Claims, Role, issue_token};
use crate::config::{Settings, Variables};
use crate::envelope::{Api, ApiError};
use crate::http::{Request, Response};

/// One file of the built app, as the component embeds it.
pub struct Asset {
    /// The URL path, e.g. `/index.html` or `/assets/index-3f2a9c.js`.
    pub path: &'static str,
    /// The file, gzip-compressed when `gzipped` (the front-end build compresses a file when
    /// that makes it smaller). Only one form is embedded: the portal's files are most of
    /// the component's size, and every browser accepts gzip.
    pub bytes: &'static [u8],
    pub gzipped: bool,
}

/// How long a demo session token lives: the portal asks for a new one when it expires.
pub const DEMO_TOKEN_TTL_SECONDS: i64 = 8 * 3600;

/// The demo user is an admin, so every part of the portal can be tried.
pub const DEMO_ROLE: Role = Role::Admin;

/// The portal's entry point: `GET /portal/session`, the app's files, and the app's page
/// for any other path outside `/api/` (the app routes on the client).
pub fn handle(req: &Request, assets: &[Asset], vars: &dyn Variables, now: i64) -> Response {
    if req.path.starts_with("/api/") || req.path == "/api" {
        return ApiError::no_route(&req.method, &req.path).into_response(Api::for_path(&req.path));
    }
    if req.method != "GET" && req.method != "HEAD" {
        return ApiError::method_not_allowed(&req.method, "GET, HEAD").into_response(Api::V1);
    }
    let mut res = if req.path == "/portal/session" {
        session(&Settings::new(vars), now)
    } else {
        serve_asset(req, assets)
    };
    if req.method == "HEAD" {
        res.body.clear();
    }
    res
}

/// A token for the demo user when `portal_demo_user` is set (`berth up` sets it in demo
/// mode, with the built-in Harbor simulator), else `data: null` (a 200, so the browser logs
/// no failed request): the portal then asks for a token.
fn session(settings: &Settings<'_>, now: i64) -> Response {
    let user = settings.portal_demo_user();
    let secret = settings.jwt_secret();
    let secret = secret.expose();
    if user.trim().is_empty() || secret.is_empty() {
        return Api::V1
            .ok_with(
                200,
                Value::Null,
                Some("no demo session: sign in with a token"),
            )
            .with_header("cache-control", "no-store");
    }
    let claims = Claims {
        sub: user.trim().to_owned(),
        role: DEMO_ROLE,
        exp: now + DEMO_TOKEN_TTL_SECONDS,
    };
    Api::V1
        .ok(json!({
            "token": issue_token(secret, &claims),
            "user": claims.sub,
            "role": claims.role.as_str(),
            "expires_at": claims.exp,
        }))
        .with_header("cache-control", "no-store")
}

fn serve_asset(req: &Request, assets: &[Asset]) -> Response {
    let path = if req.path.is_empty() || req.path == "/" {
        "/index.html"
    } else {
        req.path.as_str()
    };
    let asset = match assets.iter().find(|a| a.path == path) {
        Some(a) => a,
        // Hashed assets and other files that do not exist are real 404s; page paths get
        // the app, which routes on the client.
        None if path.starts_with("/assets/") || has_extension(path) => {
            return Response {
                status: 404,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: format!("{path} is not part of the portal\n").into_bytes(),
            };
        }
        None => match assets.iter().find(|a| a.path == "/index.html") {
            Some(index) => index,
            None => return ApiError::not_found("the portal is not built").into_response(Api::V1),
        },
    };
    let cache = if asset.path.starts_with("/assets/") {
        // Vite names these by content hash: a new build is a new name.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut headers = vec![
        (
            "content-type".to_owned(),
            content_type(asset.path).to_owned(),
        ),
        ("cache-control".to_owned(), cache.to_owned()),
        ("x-content-type-options".to_owned(), "nosniff".to_owned()),
    ];
    let body = if !asset.gzipped {
        asset.bytes.to_vec()
    } else {
        headers.push(("vary".into(), "Accept-Encoding".into()));
        if accepts_gzip(req.header("accept-encoding").unwrap_or("")) {
            headers.push(("content-encoding".into(), "gzip".into()));
            asset.bytes.to_vec()
        } else {
            match gunzip(asset.bytes) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let context = format!("inflating the portal's {}", asset.path);
                    return ApiError::internal(&context, e).into_response(Api::V1);
                }
            }
        }
    };
    Response {
        status: 200,
        headers,
        body,
    }
}

fn gunzip(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut out)?;
    Ok(out)
}

fn has_extension(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

/// Whether an `Accept-Encoding` value allows gzip (and does not refuse it with `q=0`).
fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|part| {
        let mut pieces = part.split(';').map(str::trim);
        let coding = pieces.next().unwrap_or("");
        let refused = pieces.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::verify_token;
    use std::collections::HashMap;

    /// `console.log(1)`, gzip-compressed.
    static SCRIPT_GZ: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, b"console.log(1)").unwrap();
        gz.finish().unwrap()
    });

    static ASSETS: std::sync::LazyLock<[Asset; 3]> = std::sync::LazyLock::new(|| {
        [
            Asset {
                path: "/index.html",
                bytes: b"<div id=app></div>",
                gzipped: false,
            },
            Asset {
                path: "/assets/index-abc123.js",
                bytes: &SCRIPT_GZ,
                gzipped: true,
            },
            Asset {
                path: "/assets/broken-1.js",
                bytes: b"\x1f\x8bnot gzip",
                gzipped: true,
            },
        ]
    });

    fn get(path: &str, accept: &str) -> Response {
        let req = Request::new("GET", path).with_header("accept-encoding", accept);
        handle(&req, &*ASSETS, &HashMap::new(), 0)
    }

    #[test]
    fn index_is_revalidated_and_hashed_assets_are_immutable() {
        let index = get("/", "");
        assert_eq!(index.status, 200);
        assert_eq!(index.header("cache-control"), Some("no-cache"));
        assert_eq!(
            index.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let js = get("/assets/index-abc123.js", "");
        assert_eq!(
            js.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            js.header("content-type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(js.body, b"console.log(1)");
        assert_eq!(js.header("content-encoding"), None);
    }

    #[test]
    fn gzip_only_when_accepted() {
        let js = get("/assets/index-abc123.js", "br, gzip, deflate");
        assert_eq!(js.header("content-encoding"), Some("gzip"));
        assert_eq!(js.body, *SCRIPT_GZ);
        assert_eq!(js.header("vary"), Some("Accept-Encoding"));
        let refused = get("/assets/index-abc123.js", "gzip;q=0, br");
        assert_eq!(refused.header("content-encoding"), None);
        assert_eq!(refused.body, b"console.log(1)", "inflated for the client");
        assert_eq!(refused.header("vary"), Some("Accept-Encoding"));
        // A corrupt embedded file is the build's fault: a 500 that names it, no panic.
        let broken = get("/assets/broken-1.js", "");
        assert_eq!(broken.status, 500);
    }

    #[test]
    fn page_paths_get_the_app_and_missing_files_404() {
        assert_eq!(get("/images/5", "").body, b"<div id=app></div>");
        assert_eq!(get("/assets/gone-1.js", "").status, 404);
        assert_eq!(get("/favicon.ico", "").status, 404);
        let api = get("/api/v2/whatever", "");
        assert_eq!(api.status, 404);
        assert_eq!(api.body_json()["code"], 404);
        let post = handle(&Request::new("POST", "/"), &*ASSETS, &HashMap::new(), 0);
        assert_eq!(post.status, 405);
    }

    #[test]
    fn demo_session_only_when_configured() {
        let none = get("/portal/session", "");
        assert_eq!(none.status, 200);
        assert_eq!(none.body_json()["data"], Value::Null);
        let vars = HashMap::from([("portal_demo_user", "demo"), ("jwt_secret", "s3cret")]);
        let res = handle(
            &Request::new("GET", "/portal/session"),
            &*ASSETS,
            &vars,
            1000,
        );
        assert_eq!(res.status, 200);
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let data = &res.body_json()["data"];
        let claims = verify_token("s3cret", data["token"].as_str().unwrap(), 1000).unwrap();
        assert_eq!(claims.sub, "demo");
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.exp, 1000 + DEMO_TOKEN_TTL_SECONDS);
    }
}

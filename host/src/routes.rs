//! HTTP route matching with Spin's exact precedence (same `routefinder` rules as spin-http-routes).

use anyhow::{Result, anyhow};

use crate::manifest::{HttpTrigger, Route};

/// The router built from `[[trigger.http]]` entries.
#[derive(Debug)]
pub struct Router {
    inner: routefinder::Router<Handler>,
}

#[derive(Debug, Clone)]
struct Handler {
    component: String,
    /// The route as written in the manifest (Spin's "raw route"; base is always `/`).
    raw_route: String,
    /// The route with one trailing slash removed, as Spin's `sanitize_with_base` produces.
    based_route: String,
    wildcard: bool,
}

/// Which component serves a request, and the `spin-*` header values derived from the match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    /// `spin-matched-route`: the route including a trailing `/...`.
    pub based_route: String,
    /// `spin-raw-component-route`.
    pub raw_route: String,
    /// Named `:param` captures, in route order.
    pub params: Vec<(String, String)>,
    /// `spin-path-info`: the part of the path matched by a trailing wildcard.
    pub path_info: String,
}

impl RouteMatch {
    /// A match as if `path` hit the component's `/...` route: how Spin dispatches service
    /// chaining requests, which is why private components can be reached this way.
    pub fn synthetic(component: &str, path: &str) -> RouteMatch {
        RouteMatch {
            component: component.to_string(),
            based_route: "/...".to_string(),
            raw_route: "/...".to_string(),
            params: Vec::new(),
            path_info: path.to_string(),
        }
    }

    /// `spin-component-route`: the raw route without its trailing `/...`.
    pub fn raw_route_or_prefix(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
    }
}

/// Route key used for duplicate detection: Spin keys routes by their sanitized form.
pub fn normalize(route: &str) -> String {
    let abs = if route.starts_with('/') {
        route.to_string()
    } else {
        format!("/{route}")
    };
    abs.strip_suffix('/').map(str::to_string).unwrap_or(abs)
}

impl Router {
    pub fn build(triggers: &[HttpTrigger]) -> Result<Router> {
        let mut inner = routefinder::Router::new();
        // Insertion order matters: routefinder breaks precedence ties by insertion order,
        // and Spin inserts in manifest order.
        for t in triggers {
            let Route::Path(raw) = &t.route else {
                continue;
            };
            let based = normalize(raw);
            let (spec, wildcard) = if let Some(prefix) = based.strip_suffix("/...") {
                (format!("{prefix}/*"), true)
            } else if based.ends_with("/*") {
                (based.clone(), true)
            } else {
                (based.clone(), false)
            };
            let handler = Handler {
                component: t.component.clone(),
                raw_route: raw.clone(),
                based_route: based.clone(),
                wildcard,
            };
            inner.add(spec.as_str(), handler).map_err(|e| {
                anyhow!(
                    "Error parsing route {based} associated with component {}: {e}",
                    t.component
                )
            })?;
        }
        Ok(Router { inner })
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let m = self.inner.best_match(path)?;
        let handler = m.handler();
        let captures = m.captures();
        let params = captures
            .params()
            .iter()
            .map(|c| (c.name().to_string(), c.value().to_string()))
            .collect();
        // Spin keeps trailing slashes in the wildcard capture, which routefinder drops.
        let path_info = captures
            .wildcard()
            .map(|s| match (s.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{s}"),
                (false, true) => format!("/{s}/"),
            })
            .unwrap_or_default();
        Some(RouteMatch {
            component: handler.component.clone(),
            based_route: handler.based_route.clone(),
            raw_route: handler.raw_route.clone(),
            params,
            path_info,
        })
    }

    /// Routes in precedence order, for the start-up listing: (component, path, is_wildcard).
    /// The path is printed as Spin does: without the `/...` and without a trailing slash
    /// (so `/` and `/...` print as the bare base URL).
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str, bool)> {
        self.inner.iter().map(|(_, h)| {
            let path = if h.wildcard {
                h.based_route
                    .strip_suffix("/...")
                    .or_else(|| h.based_route.strip_suffix("/*"))
                    .unwrap_or(&h.based_route)
            } else {
                &h.based_route
            };
            (h.component.as_str(), path, h.wildcard)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn params_map(m: &RouteMatch) -> HashMap<&str, &str> {
        m.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn router(routes: &[(&str, &str)]) -> Router {
        let triggers: Vec<HttpTrigger> = routes
            .iter()
            .map(|(c, r)| HttpTrigger {
                component: c.to_string(),
                route: Route::Path(r.to_string()),
            })
            .collect();
        Router::build(&triggers).unwrap()
    }

    fn component(r: &Router, path: &str) -> Option<String> {
        r.route(path).map(|m| m.component)
    }

    #[test]
    fn exact_routes() {
        let r = router(&[("foo", "/foo"), ("foobar", "/foo/bar")]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("foo"));
        assert_eq!(component(&r, "/foo/bar").as_deref(), Some("foobar"));
        assert_eq!(component(&r, "/foo/baz"), None);
        assert_eq!(component(&r, "/foox"), None);
        let m = r.route("/foo").unwrap();
        assert_eq!(m.path_info, "");
        assert_eq!(m.raw_route_or_prefix(), "/foo");
    }

    #[test]
    fn wildcard_matches_bare_prefix_and_below() {
        let r = router(&[("img", "/api/v1/images/...")]);
        for (path, info) in [
            ("/api/v1/images", ""),
            ("/api/v1/images/", "/"),
            ("/api/v1/images/5/importing-details", "/5/importing-details"),
            ("/api/v1/images/5/", "/5/"),
        ] {
            let m = r
                .route(path)
                .unwrap_or_else(|| panic!("{path} should match"));
            assert_eq!(m.component, "img");
            assert_eq!(m.path_info, info, "{path}");
            assert_eq!(m.based_route, "/api/v1/images/...");
            assert_eq!(m.raw_route_or_prefix(), "/api/v1/images");
        }
        assert_eq!(component(&r, "/api/v1/imagesx"), None);
        assert_eq!(component(&r, "/api/v1"), None);
    }

    #[test]
    fn colon_inside_a_segment_is_literal() {
        let r = router(&[
            ("catalog", "/api/v1/images/..."),
            ("importer", "/api/v1/images:import"),
            ("progress", "/api/v1/images:import/..."),
        ]);
        assert_eq!(component(&r, "/api/v1/images").as_deref(), Some("catalog"));
        assert_eq!(
            component(&r, "/api/v1/images:import").as_deref(),
            Some("importer")
        );
        let m = r.route("/api/v1/images:import/bmdpbng/progress").unwrap();
        assert_eq!(m.component, "progress");
        assert_eq!(m.path_info, "/bmdpbng/progress");
        assert_eq!(m.based_route, "/api/v1/images:import/...");
        assert_eq!(m.raw_route_or_prefix(), "/api/v1/images:import");
        assert!(m.params.is_empty());
        assert_eq!(component(&r, "/api/v1/images:export"), None);
    }

    #[test]
    fn most_specific_wins_regardless_of_order() {
        for routes in [
            [
                ("one", "/one/..."),
                ("two", "/one/two/..."),
                ("three", "/one/two/three/..."),
            ],
            [
                ("three", "/one/two/three/..."),
                ("two", "/one/two/..."),
                ("one", "/one/..."),
            ],
        ] {
            let r = router(&routes);
            assert_eq!(
                component(&r, "/one/two/three/four").as_deref(),
                Some("three")
            );
            assert_eq!(component(&r, "/one/two/x").as_deref(), Some("two"));
            assert_eq!(component(&r, "/one").as_deref(), Some("one"));
        }
        let r = router(&[("all", "/..."), ("exact", "/one"), ("param", "/:p")]);
        assert_eq!(component(&r, "/one").as_deref(), Some("exact"));
        assert_eq!(component(&r, "/other").as_deref(), Some("param"));
        assert_eq!(component(&r, "/a/b").as_deref(), Some("all"));
        assert_eq!(component(&r, "/").as_deref(), Some("all"));
    }

    #[test]
    fn named_params_are_captured() {
        let r = router(&[("rs", "/base/:path_segment/:path_end/...")]);
        let m = r.route("/base/path/end/rest").unwrap();
        let p = params_map(&m);
        assert_eq!(p["path_segment"], "path");
        assert_eq!(p["path_end"], "end");
        assert_eq!(m.path_info, "/rest");
        assert_eq!(m.raw_route_or_prefix(), "/base/:path_segment/:path_end");
        assert_eq!(component(&r, "/base/only"), None);
    }

    #[test]
    fn private_routes_are_not_routable_and_synthetic_match() {
        let triggers = vec![HttpTrigger {
            component: "admin".into(),
            route: Route::Private,
        }];
        let r = Router::build(&triggers).unwrap();
        assert_eq!(r.route("/anything"), None);
        let m = RouteMatch::synthetic("admin", "/api/v1/images/7");
        assert_eq!(m.based_route, "/...");
        assert_eq!(m.raw_route_or_prefix(), "");
        assert_eq!(m.path_info, "/api/v1/images/7");
    }

    #[test]
    fn route_listing() {
        let r = router(&[
            ("catalog", "/api/v1/images/..."),
            ("root", "/"),
            ("all", "/..."),
        ]);
        let listed: Vec<_> = r.routes().collect();
        assert!(listed.contains(&("catalog", "/api/v1/images", true)));
        assert!(listed.contains(&("root", "", false)));
        assert!(listed.contains(&("all", "", true)));
    }
}

//! The two response envelopes and the one error type that renders into both.
//!
//! `/api/v1`: `{"code":0,"message":"success","data":…}`; errors carry a non-zero `code`
//! (the HTTP status) and a human `message`. Console `/api/images`:
//! `{"success":true,"data":…,"message":…}`; errors `{"success":false,"data":null,"message":…}`.

use serde::Serialize;
use serde_json::json;

use crate::http::Response;

/// Which API a request belongs to, and so which envelope it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V1,
    Console,
}

impl Api {
    pub fn for_path(path: &str) -> Api {
        if path.starts_with("/api/images") {
            Api::Console
        } else {
            Api::V1
        }
    }

    /// A success body with the default message.
    pub fn ok(self, data: impl Serialize) -> Response {
        self.ok_with(200, data, None)
    }

    /// A success body with a status and an optional message (console messages as the seeds show).
    /// `data` is serialized once, straight into the body.
    pub fn ok_with(self, status: u16, data: impl Serialize, message: Option<&str>) -> Response {
        #[derive(Serialize)]
        struct V1<'a, T> {
            code: u16,
            message: &'a str,
            data: T,
        }
        #[derive(Serialize)]
        struct Console<'a, T> {
            success: bool,
            data: T,
            #[serde(skip_serializing_if = "Option::is_none")]
            message: Option<&'a str>,
        }
        let body = match self {
            Api::V1 => serde_json::to_vec(&V1 {
                code: 0,
                message: message.unwrap_or("success"),
                data,
            }),
            Api::Console => serde_json::to_vec(&Console {
                success: true,
                data,
                message,
            }),
        };
        Response::json_bytes(status, body.expect("response bodies serialize"))
    }
}

/// An error a handler returns: it knows its HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// For 405: the methods the resource allows.
    pub allow: Option<&'static str>,
    /// For 503: seconds after which the client may retry (`Retry-After`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            allow: None,
            retry_after: None,
        }
    }

    /// 503: a dependency is busy or being refreshed; retry after `seconds`.
    pub fn unavailable(message: impl Into<String>, seconds: u32) -> ApiError {
        ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(503, message)
        }
    }

    /// 400 naming the offending parameter.
    pub fn bad_param(param: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError::new(400, format!("invalid parameter '{param}': {problem}"))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, message)
    }

    pub fn no_route(method: &str, path: &str) -> ApiError {
        ApiError::new(404, format!("no route for {method} {path}"))
    }

    pub fn method_not_allowed(method: &str, allow: &'static str) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                405,
                format!("method {method} is not allowed here; allowed: {allow}"),
            )
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(409, message)
    }

    pub fn not_implemented(what: &str) -> ApiError {
        ApiError::new(501, format!("{what} is not implemented yet"))
    }

    /// A failure inside berth: the details go to the log, the caller gets a generic message.
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> ApiError {
        eprintln!("error: {context}: {detail}");
        ApiError::new(500, format!("internal error while {context}"))
    }

    pub fn into_response(self, api: Api) -> Response {
        let body = match api {
            Api::V1 => json!({"code": self.status, "message": self.message, "data": null}),
            Api::Console => json!({"success": false, "data": null, "message": self.message}),
        };
        let mut response = Response::json(self.status, &body);
        if let Some(allow) = self.allow {
            response = response.with_header("allow", allow);
        }
        if let Some(seconds) = self.retry_after {
            response = response.with_header("retry-after", &seconds.to_string());
        }
        response
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Busy(m) => {
                eprintln!("error: database busy: {m}");
                ApiError::unavailable("the database is busy; retry shortly", 1)
            }
            // Every write path funnels through here, so no UNIQUE violation is ever a 500;
            // callers that know which field collided map it themselves first.
            crate::db::DbError::Conflict(m) => {
                eprintln!("warning: uniqueness conflict: {m}");
                ApiError::conflict(format!(
                    "the change conflicts with a record that already exists ({})",
                    conflict_subject(&m)
                ))
            }
            other => ApiError::internal("querying the database", other),
        }
    }
}

/// The constraint a driver's uniqueness message names (e.g. `images.name`), without the
/// rest of the driver text.
fn conflict_subject(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if let Some(i) = lower.find("unique constraint failed:") {
        let rest = &message[i + "unique constraint failed:".len()..];
        return rest
            .split(['\n', '"', '\''])
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
    }
    if let Some(i) = lower.find("unique constraint \"") {
        let rest = &message[i + "unique constraint \"".len()..];
        return rest.split('"').next().unwrap_or("").to_owned();
    }
    "a unique field".to_owned()
}

/// Renders a handler's result in the envelope of its API.
pub fn respond(api: Api, result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| e.into_response(api))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_console_envelopes() {
        let ok = Api::V1.ok(json!({"a": 1}));
        assert_eq!(
            ok.body_json(),
            json!({"code": 0, "message": "success", "data": {"a": 1}})
        );
        let ok = Api::Console.ok_with(200, json!(1), Some("done"));
        assert_eq!(
            ok.body_json(),
            json!({"success": true, "data": 1, "message": "done"})
        );
        let err = ApiError::bad_param("page", "must be ≥ 1").into_response(Api::V1);
        assert_eq!(err.status, 400);
        assert_eq!(err.body_json()["code"], 400);
        assert!(
            err.body_json()["message"]
                .as_str()
                .unwrap()
                .contains("'page'")
        );
        let err = ApiError::method_not_allowed("PATCH", "GET").into_response(Api::Console);
        assert_eq!(err.header("allow"), Some("GET"));
        assert_eq!(err.body_json()["success"], false);
    }

    #[test]
    fn uniqueness_conflicts_are_409s_naming_the_constraint() {
        use crate::db::DbError;
        for (driver, subject) in [
            (
                "Io(\"UNIQUE constraint failed: images.name\")",
                "images.name",
            ),
            (
                "db error: ERROR: duplicate key value violates unique constraint \"registries_host_key\"",
                "registries_host_key",
            ),
            ("DbError { code: \"23505\" }", "a unique field"),
        ] {
            let e = ApiError::from(DbError::from_message(driver));
            assert_eq!(e.status, 409, "{driver}");
            assert!(e.message.contains(subject), "{driver}: {}", e.message);
        }
    }
}

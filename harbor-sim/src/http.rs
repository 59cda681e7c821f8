//! Response and error types (§0.3).

use bytes::Bytes;
use serde_json::Value;

/// An API error rendered as `{"errors":[{"code":..,"message":..}]}` + newline.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(400, "BAD_REQUEST", m)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "UNAUTHORIZED", "unauthorized")
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", m)
    }
    pub fn method_not_allowed(m: impl Into<String>) -> Self {
        Self::new(405, "METHOD_NOT_ALLOWED", m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(409, "CONFLICT", m)
    }
    pub fn precondition(m: impl Into<String>) -> Self {
        Self::new(412, "PRECONDITION", m)
    }
    pub fn fk_violation(m: impl Into<String>) -> Self {
        Self::new(412, "VIOLATE_FOREIGN_KEY_CONSTRAINT", m)
    }
    /// Swagger validation failures use the upper-cased status text (§0.3).
    pub fn unprocessable(m: impl Into<String>) -> Self {
        Self::new(422, "UNPROCESSABLE_ENTITY", m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(500, "UNKNOWN", m)
    }

    /// An error for an arbitrary status (fault injection), using Harbor's code table.
    pub fn for_status(status: u16, message: Option<String>) -> Self {
        let code = match status {
            400 => "BAD_REQUEST",
            401 => "UNAUTHORIZED",
            403 => "FORBIDDEN",
            404 => "NOT_FOUND",
            405 => "METHOD_NOT_ALLOWED",
            409 => "CONFLICT",
            412 => "PRECONDITION",
            422 => "UNPROCESSABLE_ENTITY",
            429 => "TOO_MANY_REQUEST",
            _ => "UNKNOWN",
        };
        let message = message.unwrap_or_else(|| match status {
            401 => "unauthorized".to_string(),
            429 => "too many requests".to_string(),
            _ => http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_lowercase(),
        });
        Self::new(status, code, message)
    }

    /// The body; every 5xx is rewritten to UNKNOWN / internal server error.
    pub fn body(&self) -> Bytes {
        let (code, message) = if self.status >= 500 {
            ("UNKNOWN", "internal server error")
        } else {
            (self.code.as_str(), self.message.as_str())
        };
        let v = serde_json::json!({"errors":[{"code":code,"message":message}]});
        let mut s = serde_json::to_string(&v).expect("json");
        s.push('\n');
        Bytes::from(s)
    }
}

/// A handler response before the common headers are added.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<(Bytes, &'static str)>,
}

impl Resp {
    pub fn empty(status: u16) -> Self {
        Resp {
            status,
            headers: Vec::new(),
            body: None,
        }
    }
    pub fn ok() -> Self {
        Self::empty(200)
    }
    pub fn json(status: u16, v: &Value) -> Self {
        let s = serde_json::to_vec(v).expect("json");
        Resp {
            status,
            headers: Vec::new(),
            body: Some((Bytes::from(s), "application/json")),
        }
    }
    /// `201` with `Location` and no body.
    pub fn created(location: String) -> Self {
        Resp {
            status: 201,
            headers: vec![("Location".into(), location)],
            body: None,
        }
    }
    /// A list page with `X-Total-Count` and optional `Link`.
    pub fn list(items: Vec<Value>, total: i64, link: Option<String>) -> Self {
        let mut r = Self::json(200, &Value::Array(items));
        r.headers.push(("X-Total-Count".into(), total.to_string()));
        if let Some(l) = link {
            r.headers.push(("Link".into(), l));
        }
        r
    }
    pub fn error(e: &ApiError) -> Self {
        Resp {
            status: e.status,
            headers: Vec::new(),
            body: Some((e.body(), "application/json; charset=utf-8")),
        }
    }
}

pub type ApiResult = Result<Resp, ApiError>;

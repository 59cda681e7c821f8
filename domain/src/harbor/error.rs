//! Errors from Harbor calls, worded for the portal user who will read them.

use std::fmt;

use serde::Deserialize;

use crate::outbound::OutboundResponse;

/// What went wrong talking to Harbor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarborError {
    /// No HTTP answer at all: refused, unreachable, timed out or not permitted.
    Unreachable(String),
    /// Harbor answered with an error status. `code` and `message` come from Harbor's
    /// `{"errors":[{"code","message"}]}` body, or from the status line when there is none.
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// Harbor answered, but not in the shape the contract says (bad JSON, no `Location`, …).
    Protocol(String),
}

impl HarborError {
    /// Builds a [`HarborError::Status`] from an error response.
    pub fn from_response(response: &OutboundResponse) -> HarborError {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Item {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let status = response.status;
        let items = serde_json::from_slice::<Body>(&response.body)
            .map(|b| b.errors)
            .unwrap_or_default();
        let code = items
            .iter()
            .map(|i| i.code.trim())
            .find(|c| !c.is_empty())
            .map_or_else(|| status_code_name(status), str::to_owned);
        let messages: Vec<&str> = items
            .iter()
            .map(|i| i.message.trim())
            .filter(|m| !m.is_empty())
            .collect();
        let message = if messages.is_empty() {
            reason_phrase(status).to_owned()
        } else {
            messages.join("; ")
        };
        HarborError::Status {
            status,
            code,
            message,
        }
    }

    /// The HTTP status, for [`HarborError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            HarborError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Harbor said 404: no such project, repository, artifact, policy or execution.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Harbor said 409: the name is taken.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// Whether the same request may succeed later: transport failures, 408, 429 and 5xx
    /// (Harbor rewrites every 5xx to `UNKNOWN`, so they cannot be told apart further).
    /// 4xx answers other than 408/429 and protocol errors will not change by retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            HarborError::Unreachable(_) => true,
            HarborError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            HarborError::Protocol(_) => false,
        }
    }

    /// Replaces every occurrence of `secret` in the text (a password must never reach a
    /// message). Secrets shorter than 4 characters are left alone: replacing them would
    /// garble ordinary words.
    pub(crate) fn redact(self, secret: &str) -> HarborError {
        if secret.chars().count() < 4 {
            return self;
        }
        let clean = |s: String| s.replace(secret, "*****");
        match self {
            HarborError::Unreachable(m) => HarborError::Unreachable(clean(m)),
            HarborError::Status {
                status,
                code,
                message,
            } => HarborError::Status {
                status,
                code,
                message: clean(message),
            },
            HarborError::Protocol(m) => HarborError::Protocol(clean(m)),
        }
    }
}

impl fmt::Display for HarborError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarborError::Unreachable(m) => write!(f, "Harbor could not be reached: {m}"),
            HarborError::Status {
                status,
                code,
                message,
            } => {
                let verb = if *status >= 500 {
                    "Harbor failed to handle the request"
                } else {
                    "Harbor refused the request"
                };
                write!(f, "{verb} ({status} {code})")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            HarborError::Protocol(m) => {
                write!(f, "Harbor sent a response berth does not understand: {m}")
            }
        }
    }
}

impl std::error::Error for HarborError {}

/// Harbor's code for a status when the body names none (`src/lib/http/error.go`, and the
/// upper-cased status text swagger validation uses).
fn status_code_name(status: u16) -> String {
    match status {
        403 => "FORBIDDEN".to_owned(),
        412 => "PRECONDITION".to_owned(),
        429 => "TOO_MANY_REQUEST".to_owned(),
        500 => "UNKNOWN".to_owned(),
        _ => reason_phrase(status)
            .to_uppercase()
            .replace([' ', '-'], "_"),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unexpected Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn parses_harbor_error_bodies() {
        let e = HarborError::from_response(&response(
            404,
            "{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"artifact catalog/nginx:1.26 not found\"}]}\n",
        ));
        assert_eq!(
            e,
            HarborError::Status {
                status: 404,
                code: "NOT_FOUND".into(),
                message: "artifact catalog/nginx:1.26 not found".into()
            }
        );
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "Harbor refused the request (404 NOT_FOUND): artifact catalog/nginx:1.26 not found"
        );
    }

    #[test]
    fn renders_the_briefs_example() {
        let e = HarborError::from_response(&response(
            403,
            r#"{"errors":[{"code":"FORBIDDEN","message":"robot$x"}]}"#,
        ));
        assert_eq!(
            e.to_string(),
            "Harbor refused the request (403 FORBIDDEN): robot$x"
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn falls_back_to_the_status_text() {
        // HEAD answers and proxies' HTML pages have no Harbor error body.
        let e = HarborError::from_response(&response(404, ""));
        assert_eq!(
            e.to_string(),
            "Harbor refused the request (404 NOT_FOUND): Not Found"
        );
        let e = HarborError::from_response(&response(502, "<html>bad gateway</html>"));
        assert_eq!(
            e.to_string(),
            "Harbor failed to handle the request (502 BAD_GATEWAY): Bad Gateway"
        );
        assert!(e.is_retryable());
        let e = HarborError::from_response(&response(422, r#"{"errors":[]}"#));
        assert_eq!(
            e,
            HarborError::Status {
                status: 422,
                code: "UNPROCESSABLE_ENTITY".into(),
                message: "Unprocessable Entity".into()
            }
        );
    }

    #[test]
    fn joins_several_errors() {
        let e = HarborError::from_response(&response(
            400,
            r#"{"errors":[{"code":"BAD_REQUEST","message":"a"},{"code":"BAD_REQUEST","message":"b"}]}"#,
        ));
        assert_eq!(
            e.to_string(),
            "Harbor refused the request (400 BAD_REQUEST): a; b"
        );
    }

    #[test]
    fn five_hundreds_and_transport_errors_are_retryable() {
        let e = HarborError::from_response(&response(
            500,
            r#"{"errors":[{"code":"UNKNOWN","message":"internal server error"}]}"#,
        ));
        assert_eq!(
            e.to_string(),
            "Harbor failed to handle the request (500 UNKNOWN): internal server error"
        );
        assert!(e.is_retryable());
        assert!(HarborError::from_response(&response(429, "")).is_retryable());
        assert!(HarborError::Unreachable("connection refused".into()).is_retryable());
        assert!(!HarborError::Protocol("x".into()).is_retryable());
        assert!(!HarborError::from_response(&response(409, "")).is_retryable());
        assert_eq!(
            HarborError::Unreachable("connection refused".into()).to_string(),
            "Harbor could not be reached: connection refused"
        );
        assert_eq!(
            HarborError::Protocol("no Location header".into()).to_string(),
            "Harbor sent a response berth does not understand: no Location header"
        );
    }

    #[test]
    fn redacts_secrets() {
        let e = HarborError::Unreachable("dial http://u:hunter22@h failed".into());
        assert_eq!(
            e.redact("hunter22").to_string(),
            "Harbor could not be reached: dial http://u:*****@h failed"
        );
        let e = HarborError::Protocol("ab".into());
        assert_eq!(e.clone().redact("ab"), e);
    }
}

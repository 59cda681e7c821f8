//! Bearer tokens: HS256 JWTs with `sub`, `role` and `exp`, and the shared-secret checks
//! used by callbacks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// What a caller may do: users read and manage their own images, admins curate everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// The claims berth issues and accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("the Authorization header must use the Bearer scheme")]
    NotBearer,
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("the bearer token uses algorithm '{0}'; only HS256 is accepted")]
    Algorithm(String),
    #[error("the bearer token's signature is invalid")]
    BadSignature,
    #[error("the bearer token has expired")]
    Expired,
    #[error("the server has no jwt_secret configured")]
    NoSecret,
}

const HEADER_HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn sign(secret: &[u8], signing_input: &str) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Issues a token for `claims`, signed with `secret`.
pub fn issue_token(secret: &str, claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(HEADER_HS256);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(sign(secret.as_bytes(), &signing_input));
    format!("{signing_input}.{signature}")
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

/// Verifies a token's signature (constant time) and expiry against `now` (Unix seconds).
pub fn verify_token(secret: &str, token: &str, now: i64) -> Result<Claims, AuthError> {
    if secret.is_empty() {
        return Err(AuthError::NoSecret);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let header: JwtHeader = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(AuthError::Malformed)?;
    if header.alg != "HS256" {
        return Err(AuthError::Algorithm(header.alg));
    }
    let given = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| AuthError::Malformed)?;
    let expected = sign(secret.as_bytes(), &token[..h.len() + 1 + p.len()]);
    if !bool::from(expected.ct_eq(&given)) {
        return Err(AuthError::BadSignature);
    }
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(AuthError::Malformed)?;
    if claims.exp <= now {
        return Err(AuthError::Expired);
    }
    Ok(claims)
}

/// Authenticates an `Authorization` header value.
pub fn authenticate(header: Option<&str>, secret: &str, now: i64) -> Result<Caller, AuthError> {
    let value = header
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::Missing)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::NotBearer)?;
    let claims = verify_token(secret, token.trim(), now)?;
    Ok(Caller {
        name: claims.sub,
        role: claims.role,
    })
}

/// Compares a presented shared secret with the configured one in constant time.
/// An unset (empty) configured secret never matches.
pub fn secret_matches(configured: &str, presented: &str) -> bool {
    !configured.is_empty() && bool::from(configured.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "alice".into(),
            role: Role::User,
            exp,
        }
    }

    #[test]
    fn issued_token_verifies() {
        let t = issue_token("s3cret", &claims(2_000));
        assert_eq!(verify_token("s3cret", &t, 1_000).unwrap(), claims(2_000));
    }

    #[test]
    fn expired_token_is_rejected() {
        let t = issue_token("s3cret", &claims(1_000));
        assert_eq!(verify_token("s3cret", &t, 1_000), Err(AuthError::Expired));
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let t = issue_token("s3cret", &claims(2_000));
        assert_eq!(
            verify_token("other", &t, 1_000),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let t = issue_token("s3cret", &claims(2_000));
        let admin = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","role":"admin","exp":2000}"#);
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], admin, parts[2]);
        assert_eq!(
            verify_token("s3cret", &forged, 1_000),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_rejected() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let p = URL_SAFE_NO_PAD.encode(r#"{"sub":"a","role":"admin","exp":9999999999}"#);
        assert_eq!(
            verify_token("s3cret", &format!("{h}.{p}."), 0),
            Err(AuthError::Algorithm("none".into()))
        );
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for t in ["", "a.b", "a.b.c.d", "!!.??.##"] {
            assert_eq!(verify_token("s", t, 0), Err(AuthError::Malformed), "{t}");
        }
    }

    #[test]
    fn header_parsing() {
        let t = issue_token("s", &claims(10));
        assert_eq!(authenticate(None, "s", 0), Err(AuthError::Missing));
        assert_eq!(
            authenticate(Some("Basic abc"), "s", 0),
            Err(AuthError::NotBearer)
        );
        let c = authenticate(Some(&format!("Bearer {t}")), "s", 0).unwrap();
        assert_eq!(
            c,
            Caller {
                name: "alice".into(),
                role: Role::User
            }
        );
    }

    #[test]
    fn shared_secret_comparison() {
        assert!(secret_matches("abc", "abc"));
        assert!(!secret_matches("abc", "abd"));
        assert!(!secret_matches("", ""));
    }
}

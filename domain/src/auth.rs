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
    #[error("the bearer token names no subject ('sub' is empty)")]
    NoSubject,
    #[error("the bearer token is not valid yet ('nbf' is in the future)")]
    NotYetValid,
    #[error("the bearer token lives longer than the {0} seconds this server accepts")]
    TooLong(i64),
    #[error("the bearer token's '{0}' is not the one this server expects")]
    WrongClaim(&'static str),
}

/// What a token must satisfy beyond its signature and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Longest accepted lifetime: `exp - iat`, or `exp - now` without `iat`.
    pub max_lifetime_seconds: i64,
    /// When set, `aud` (a string or a list) must contain it.
    pub audience: Option<String>,
    /// When set, `iss` must equal it.
    pub issuer: Option<String>,
}

/// 30 days: long enough for `berth token --ttl 30d`, short enough that a leaked token dies.
pub const DEFAULT_MAX_LIFETIME_SECONDS: i64 = 30 * 24 * 3600;

impl Default for TokenPolicy {
    fn default() -> TokenPolicy {
        TokenPolicy {
            max_lifetime_seconds: DEFAULT_MAX_LIFETIME_SECONDS,
            audience: None,
            issuer: None,
        }
    }
}

/// Tolerated clock skew for `nbf`.
const LEEWAY_SECONDS: i64 = 60;

/// The registered claims berth checks besides `exp`.
#[derive(Deserialize)]
struct OtherClaims {
    nbf: Option<i64>,
    iat: Option<i64>,
    iss: Option<String>,
    aud: Option<serde_json::Value>,
}

fn check_policy(
    claims: &Claims,
    other: &OtherClaims,
    policy: &TokenPolicy,
    now: i64,
) -> Result<(), AuthError> {
    if claims.sub.trim().is_empty() || claims.sub.chars().any(char::is_control) {
        return Err(AuthError::NoSubject);
    }
    if other.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
        return Err(AuthError::NotYetValid);
    }
    let issued = other.iat.unwrap_or(now).min(now);
    if claims.exp - issued > policy.max_lifetime_seconds {
        return Err(AuthError::TooLong(policy.max_lifetime_seconds));
    }
    if let Some(issuer) = &policy.issuer {
        if other.iss.as_deref() != Some(issuer.as_str()) {
            return Err(AuthError::WrongClaim("iss"));
        }
    }
    if let Some(audience) = &policy.audience {
        let matches = match &other.aud {
            Some(serde_json::Value::String(a)) => a == audience,
            Some(serde_json::Value::Array(list)) => {
                list.iter().any(|a| a.as_str() == Some(audience))
            }
            _ => false,
        };
        if !matches {
            return Err(AuthError::WrongClaim("aud"));
        }
    }
    Ok(())
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

/// Verifies a token's signature (constant time) and expiry against `now` (Unix seconds),
/// under the default [`TokenPolicy`].
pub fn verify_token(secret: &str, token: &str, now: i64) -> Result<Claims, AuthError> {
    verify_token_with(secret, token, now, &TokenPolicy::default())
}

/// [`verify_token`] under `policy`.
pub fn verify_token_with(
    secret: &str,
    token: &str,
    now: i64,
    policy: &TokenPolicy,
) -> Result<Claims, AuthError> {
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
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| AuthError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| AuthError::Malformed)?;
    let other: OtherClaims = serde_json::from_slice(&payload).map_err(|_| AuthError::Malformed)?;
    if claims.exp <= now {
        return Err(AuthError::Expired);
    }
    check_policy(&claims, &other, policy, now)?;
    Ok(claims)
}

/// Authenticates an `Authorization` header value under the default [`TokenPolicy`].
pub fn authenticate(header: Option<&str>, secret: &str, now: i64) -> Result<Caller, AuthError> {
    authenticate_with(header, secret, now, &TokenPolicy::default())
}

/// [`authenticate`] under `policy`.
pub fn authenticate_with(
    header: Option<&str>,
    secret: &str,
    now: i64,
    policy: &TokenPolicy,
) -> Result<Caller, AuthError> {
    let value = header
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::Missing)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::NotBearer)?;
    let claims = verify_token_with(secret, token.trim(), now, policy)?;
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

// ---------------------------------------------------------------------------------------
// Build jobs: berth signs each job it sends the build runner, the runner checks it.

/// `sha256=<hex>` HMAC of a job body, as the `X-Berth-Signature` header carries it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Whether `header` is [`signature`] of `body` (the runner's check of every job); the
/// comparison is `Mac::verify_slice`'s, which takes the same time wherever the bytes differ.
pub fn signature_matches(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let bytes: Option<Vec<u8>> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    let Some(bytes) = bytes else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
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

    /// Signs any JSON payload, as an attacker holding the key (or a buggy issuer) could.
    fn raw(payload: serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(HEADER_HS256);
        let body = URL_SAFE_NO_PAD.encode(payload.to_string());
        let input = format!("{header}.{body}");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sign(b"k", &input)))
    }

    #[test]
    fn subject_nbf_lifetime_audience_and_issuer_are_checked() {
        use serde_json::json;
        let now = 1_000_000;
        let ok = |p| verify_token("k", &raw(p), now);
        assert!(ok(json!({"sub": "a", "role": "user", "exp": now + 60})).is_ok());
        assert_eq!(
            ok(json!({"sub": "", "role": "user", "exp": now + 60})),
            Err(AuthError::NoSubject)
        );
        assert_eq!(
            ok(json!({"sub": " ", "role": "user", "exp": now + 60})),
            Err(AuthError::NoSubject)
        );
        assert_eq!(
            ok(json!({"sub": "a", "role": "user", "exp": now + 600, "nbf": now + 300})),
            Err(AuthError::NotYetValid)
        );
        assert!(ok(json!({"sub": "a", "role": "user", "exp": now + 600, "nbf": now + 30})).is_ok());
        assert_eq!(
            ok(json!({"sub": "a", "role": "user", "exp": now + 365 * 86400})),
            Err(AuthError::TooLong(DEFAULT_MAX_LIFETIME_SECONDS))
        );
        assert_eq!(
            ok(json!({"sub": "a", "role": "user", "exp": now + 60, "iat": now - 40 * 86400})),
            Err(AuthError::TooLong(DEFAULT_MAX_LIFETIME_SECONDS))
        );
        let strict = TokenPolicy {
            audience: Some("berth".into()),
            issuer: Some("https://id.example.com".into()),
            ..TokenPolicy::default()
        };
        let check = |p| verify_token_with("k", &raw(p), now, &strict);
        assert!(check(json!({"sub": "a", "role": "user", "exp": now + 60, "aud": ["x", "berth"], "iss": "https://id.example.com"})).is_ok());
        assert_eq!(
            check(
                json!({"sub": "a", "role": "user", "exp": now + 60, "aud": "other", "iss": "https://id.example.com"})
            ),
            Err(AuthError::WrongClaim("aud"))
        );
        assert_eq!(
            check(json!({"sub": "a", "role": "user", "exp": now + 60, "aud": "berth"})),
            Err(AuthError::WrongClaim("iss"))
        );
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

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = signature("s", b"body");
        assert!(signature_matches("s", Some(&sig), b"body"));
        assert!(!signature_matches("s", Some(&sig), b"body2"));
        assert!(!signature_matches("t", Some(&sig), b"body"));
        assert!(!signature_matches("s", None, b"body"));
        assert!(!signature_matches("s", Some(&sig[7..]), b"body"));
        assert!(!signature_matches("s", Some("sha256=zz"), b"body"));
    }
}

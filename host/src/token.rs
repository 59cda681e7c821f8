//! `berth token`: issues a bearer token signed with the app's `jwt_secret`, resolved as at runtime.

use anyhow::{Result, anyhow, bail};
use berth_domain::auth::{Claims, Role, issue_token};

use std::path::Path;

use crate::interfaces::variables::AppVariables;
use crate::manifest::App;

/// Parses `30s`, `15m`, `1h`, `7d` (a bare number is seconds) into seconds.
pub fn parse_ttl(ttl: &str) -> Result<i64> {
    let ttl = ttl.trim();
    let (digits, unit) = match ttl.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => ttl.split_at(i),
        None => (ttl, "s"),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| anyhow!("invalid ttl {ttl:?}: expected e.g. 30s, 15m, 1h or 7d"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("invalid ttl {ttl:?}: unit must be s, m, h or d"),
    };
    if n <= 0 {
        bail!("invalid ttl {ttl:?}: must be positive");
    }
    n.checked_mul(unit_secs)
        .ok_or_else(|| anyhow!("invalid ttl {ttl:?}: too large"))
}

/// Signs with `jwt_secret` as `berth up` resolves it: the environment, `.env`, then the
/// secret demo mode generated in `state_dir`.
pub fn issue(app: &App, sub: &str, role: &str, ttl: &str, state_dir: &Path) -> Result<String> {
    let role = Role::parse(role).ok_or_else(|| anyhow!("--role must be `user` or `admin`"))?;
    let ttl = parse_ttl(ttl)?;
    if !app.variables.contains_key("jwt_secret") {
        bail!("the manifest defines no `jwt_secret` variable");
    }
    let demo = crate::demo::saved_secrets(state_dir)?;
    let secret = AppVariables::lookup(app, "jwt_secret", &demo).ok_or_else(|| {
        anyhow!(
            "jwt_secret is not set: set SPIN_VARIABLE_JWT_SECRET, or start `berth up` in demo \
             mode once with --state-dir {} to generate it",
            state_dir.display()
        )
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let claims = Claims {
        sub: sub.to_string(),
        role,
        exp: now + ttl,
    };
    Ok(issue_token(&secret, &claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("30s").unwrap(), 30);
        assert_eq!(parse_ttl("15m").unwrap(), 900);
        assert_eq!(parse_ttl("1h").unwrap(), 3600);
        assert_eq!(parse_ttl("7d").unwrap(), 604_800);
        assert_eq!(parse_ttl("45").unwrap(), 45);
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("0s").is_err());
    }

    #[test]
    fn token_verifies_with_the_manifest_secret() {
        let app = crate::manifest::parse(
            r#"spin_manifest_version = 2
[application]
name = "t"
[variables]
jwt_secret = { default = "unit-test-secret", secret = true }
[[trigger.http]]
route = "/..."
component = "a"
[component.a]
source = "a.wasm"
"#,
            std::path::Path::new("/nonexistent"),
        )
        .unwrap();
        if std::env::var("SPIN_VARIABLE_JWT_SECRET").is_ok() {
            return; // the environment overrides the default; nothing to compare against
        }
        let token = issue(&app, "alice", "admin", "1h", &app.dir.join(".spin")).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims =
            berth_domain::auth::verify_token("unit-test-secret", &token, now).expect("valid token");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.role, Role::Admin);
        assert!(issue(&app, "alice", "root", "1h", &app.dir.join(".spin")).is_err());
    }
}

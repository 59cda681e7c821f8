//! A blocking client for berth's envelopes: `{code, message, data}` on `/api/v1`, errors
//! reported in the API's own words (the envelope's `message`).

use std::time::Duration;

use serde_json::Value;

use super::Failure;

pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(url: &str, token: &str) -> Result<Client, Failure> {
        let base = url.trim().trim_end_matches('/').to_owned();
        if base.starts_with("https://") {
            return Err(Failure::Usage(
                "this berth CLI speaks plain http:// only (no TLS stack is built in)".into(),
            ));
        }
        let base = if base.starts_with("http://") {
            base
        } else {
            format!("http://{base}")
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build();
        Ok(Client {
            base,
            token: token.trim().to_owned(),
            agent,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send("GET", path, None)
    }

    /// The envelope's `data` on success; the API's `message` otherwise.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let req = self
            .agent
            .request(method, &format!("{}{}", self.base, path))
            .set("authorization", &format!("Bearer {}", self.token))
            .set("accept", "application/json");
        let result = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        let (status, text) = match result {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
            Err(ureq::Error::Transport(t)) => {
                return Err(Failure::Auth(format!(
                    "cannot reach berth at {}: {t}",
                    self.base
                )));
            }
        };
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            // v1 envelope; a bare body (console shapes) is the data itself.
            return Ok(match body.get("data") {
                Some(d) if body.get("code").is_some() || body.get("success").is_some() => d.clone(),
                _ => body,
            });
        }
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let t = text.trim();
                if t.is_empty() {
                    format!("HTTP {status}")
                } else {
                    t.to_owned()
                }
            });
        Err(match status {
            401 | 403 => Failure::Auth(message),
            _ => Failure::Api(message),
        })
    }
}

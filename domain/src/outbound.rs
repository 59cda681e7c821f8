//! Outbound HTTP as the domain sees it: one small async trait, implemented over Spin's
//! `wasi:http` in components and over a native client in tests.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundRequest {
    pub fn new(method: &'static str, url: impl Into<String>) -> OutboundRequest {
        OutboundRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> OutboundRequest {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn json(mut self, body: &serde_json::Value) -> OutboundRequest {
        self.headers
            .push(("content-type".into(), "application/json".into()));
        self.body = serde_json::to_vec(body).expect("JSON values serialize");
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::find_header(&self.headers, name)
    }
}

/// The request never got an HTTP answer: refused, unreachable, timed out or not permitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError(pub String);

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SendError {}

/// Sends one HTTP request and reads the whole response.
#[allow(async_fn_in_trait)]
pub trait HttpSender {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, SendError>;
}

/// A borrowed sender sends the same way, so one sender serves several clients.
impl<T: HttpSender> HttpSender for &T {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, SendError> {
        (**self).send(request).await
    }
}

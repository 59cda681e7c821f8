//! A scripted `HttpSender` for tests: serves queued responses in order and records every
//! request.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use super::{HarborClient, HarborConfig};
use crate::outbound::{HttpSender, OutboundRequest, OutboundResponse, SendError};

pub const BASE_URL: &str = "http://harbor.test";
pub const PASSWORD: &str = "Harbor12345-secret";

#[derive(Default)]
pub struct FakeHarbor {
    script: RefCell<VecDeque<Result<OutboundResponse, SendError>>>,
    requests: RefCell<Vec<OutboundRequest>>,
}

impl HttpSender for FakeHarbor {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, SendError> {
        let described = format!("{} {}", request.method, request.url);
        self.requests.borrow_mut().push(request);
        self.script
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| panic!("no scripted response left for {described}"))
    }
}

impl FakeHarbor {
    pub fn then(self, response: OutboundResponse) -> FakeHarbor {
        self.script.borrow_mut().push_back(Ok(response));
        self
    }

    pub fn then_fail(self, message: &str) -> FakeHarbor {
        self.script
            .borrow_mut()
            .push_back(Err(SendError(message.to_owned())));
        self
    }

    pub fn requests(&self) -> Vec<OutboundRequest> {
        self.requests.borrow().clone()
    }

    /// `METHOD /path?query` of each request, without the base URL and API prefix.
    pub fn lines(&self) -> Vec<String> {
        self.requests
            .borrow()
            .iter()
            .map(|r| {
                let path = r
                    .url
                    .strip_prefix(BASE_URL)
                    .and_then(|u| u.strip_prefix(super::API_PREFIX))
                    .unwrap_or(&r.url);
                format!("{} {path}", r.method)
            })
            .collect()
    }

    pub fn assert_drained(&self) {
        assert!(
            self.script.borrow().is_empty(),
            "scripted responses left unused"
        );
    }
}

pub fn response(status: u16) -> OutboundResponse {
    OutboundResponse {
        status,
        headers: vec![(
            "X-Request-ID".into(),
            "3f1c0b5e-1d2b-4c55-9a0e-2f7d6d0b1a11".into(),
        )],
        body: Vec::new(),
    }
}

pub fn json(status: u16, body: Value) -> OutboundResponse {
    let mut r = response(status);
    r.headers
        .push(("Content-Type".into(), "application/json".into()));
    r.body = serde_json::to_vec(&body).unwrap();
    r
}

/// A list page with `X-Total-Count` and, when given, a `Link` header.
pub fn page(body: Value, total: usize, link: Option<&str>) -> OutboundResponse {
    let mut r = json(200, body);
    r.headers.push(("X-Total-Count".into(), total.to_string()));
    if let Some(link) = link {
        r.headers.push(("Link".into(), link.to_owned()));
    }
    r
}

pub fn created(location: &str) -> OutboundResponse {
    let mut r = response(201);
    r.headers.push(("Location".into(), location.to_owned()));
    r
}

/// Harbor's error body (CONTRACT §0.3).
pub fn error(status: u16, code: &str, message: &str) -> OutboundResponse {
    let mut r = json(
        status,
        serde_json::json!({"errors": [{"code": code, "message": message}]}),
    );
    r.body.push(b'\n');
    r
}

pub fn config() -> HarborConfig {
    HarborConfig {
        base_url: BASE_URL.to_owned(),
        username: "robot$catalog-svc".to_owned(),
        password: PASSWORD.to_owned(),
        project: "catalog".to_owned(),
    }
}

pub fn client(fake: FakeHarbor) -> HarborClient<FakeHarbor> {
    HarborClient::new(fake, config())
}

/// Runs a future that never waits (the fake answers at once).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the fake sender never suspends"),
    }
}

pub fn body_json(request: &OutboundRequest) -> Value {
    serde_json::from_slice(&request.body).expect("request body is JSON")
}

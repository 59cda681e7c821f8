//! The adversarial suites' counter: attacks tried, refused and the 5xx they drew.

use crate::Reply;

/// Attacks tried, how many were refused (4xx), and how many drew a server error.
#[derive(Default)]
pub struct Tally {
    name: &'static str,
    tried: u32,
    refused: u32,
    server_errors: u32,
}

impl Tally {
    pub fn new(name: &'static str) -> Tally {
        Tally {
            name,
            ..Tally::default()
        }
    }

    /// Records an attack and checks it got `status` with a message containing `says`.
    pub fn expect(&mut self, what: &str, r: Reply, status: u16, says: &str) -> Reply {
        self.tried += 1;
        if (400..500).contains(&r.status) {
            self.refused += 1;
        }
        if r.status >= 500 {
            self.server_errors += 1;
        }
        assert_eq!(r.status, status, "{what}: {}", r.text);
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{what}: message {message:?} does not say {says:?}"
        );
        r
    }

    /// Prints the figures and holds the line: no attack may draw a 5xx.
    pub fn finish(self) {
        println!(
            "adversarial/{}: {} attacks tried, {} refused, {} 5xx seen",
            self.name, self.tried, self.refused, self.server_errors
        );
        assert_eq!(self.server_errors, 0, "{} attacks drew a 5xx", self.name);
    }
}

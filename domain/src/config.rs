//! Settings, read in one place from Spin variables, and the context a handler runs in.

use crate::db::Db;

/// Where settings come from: Spin variables in a component, a map in tests.
pub trait Variables {
    fn get(&self, name: &str) -> Option<String>;
}

impl Variables for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).map(|v| v.to_string())
    }
}

/// What a handler needs besides the request: the database, settings and the clock.
pub struct Context<'a> {
    pub db: &'a dyn Db,
    pub vars: &'a dyn Variables,
    /// Unix seconds.
    pub now: i64,
}

impl Context<'_> {
    /// A setting, empty when unset.
    pub fn var(&self, name: &str) -> String {
        self.vars.get(name).unwrap_or_default()
    }
}

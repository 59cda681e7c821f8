//! berth's domain: everything the components do, as plain Rust behind small traits
//! (a SQL connection, variables, an HTTP sender), so it is tested natively.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]

pub mod admin;
pub mod auth;
pub mod builds;
pub mod catalog;
pub mod config;
pub mod db;
pub mod dockerfile;
pub mod envelope;
#[cfg(test)]
mod handler_tests;
pub mod harbor;
pub mod http;
pub mod image_contents;
pub mod image_facts;
pub mod image_ref;
pub mod import_state;
pub mod imports;
pub mod migrations;
pub mod model;
pub mod openapi;
pub mod outbound;
pub mod portal;
pub mod query;
pub mod registries;
pub mod sealed;
pub mod store;
pub mod time;
pub mod views;

//! berth's domain: everything the components do, as plain Rust behind small traits
//! (a SQL connection, variables, an HTTP sender), so it is tested natively.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]

#[path = "services/admin/mod.rs"]
pub mod admin;
pub mod auth;
#[path = "services/builds/mod.rs"]
pub mod builds;
#[path = "services/catalog.rs"]
pub mod catalog;
pub mod config;
pub mod db;
pub mod dockerfile;
pub mod envelope;
pub mod harbor;
pub mod http;
#[path = "services/image_contents.rs"]
pub mod image_contents;
pub mod image_facts;
pub mod image_ref;
pub mod import_state;
#[path = "services/imports/mod.rs"]
pub mod imports;
pub mod migrations;
pub mod model;
#[path = "api/openapi.rs"]
pub mod openapi;
pub mod outbound;
#[path = "api/portal.rs"]
pub mod portal;
pub mod query;
#[path = "services/registries.rs"]
pub mod registries;
pub mod sealed;
#[path = "store/images.rs"]
pub mod store;
pub mod time;
pub mod views;

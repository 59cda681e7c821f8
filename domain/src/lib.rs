//! berth's domain: everything the components do, as plain Rust behind small traits
//! (a SQL connection, variables, an HTTP sender), so it is tested natively.
//!
//! Layers, top to bottom (docs/architecture.md; `tests/layering.rs` enforces them): a
//! module imports only modules below it, and nothing imports `api`.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]

/// Each component's route table and the one request pipeline they all go through.
pub mod api;
#[cfg(test)]
mod handler_tests;
/// What berth does: catalog reads, admin writes, imports, builds, registries.
pub mod services;
/// Every SQL statement, by table.
pub mod store;

// The lower layers: types, parsing, rendering, settings, clients.
/// Bearer tokens, callers and roles; secret comparison; build-job signatures.
pub mod auth;
/// Conditional GETs: entity tags and `If-None-Match` on the catalog's reads.
pub mod conditional;
/// Settings from the component's variables, the handler's context, Harbor's settings.
pub mod config;
/// The SQL connection trait, rows, values and write transactions.
pub mod db;
/// Dockerfile parsing for builds.
pub mod dockerfile;
/// The two response envelopes and the one error type.
pub mod envelope;
/// Harbor's API client.
pub mod harbor;
/// The request and response types.
pub mod http;
/// What berth reads from inside an artifact Harbor holds (layers, facts, scan).
pub mod image_contents;
/// Facts derived from image configs (CUDA, Python, frameworks, drivers).
pub mod image_facts;
/// Image references (`registry/repository:tag@digest`).
pub mod image_ref;
/// An import's state and its one transition, `ImportState::advance`.
pub mod import_state;
/// The schema migrations.
pub mod migrations;
/// The catalog's rows as types.
pub mod model;
/// Outbound HTTP: the sender trait.
pub mod outbound;
/// List queries: filters, sort keys, pages.
pub mod query;
/// What every route reads from a request: caller, JSON body, ids, 405s.
pub mod request;
/// Secrets sealed at rest.
pub mod sealed;
/// Timestamps.
pub mod time;
/// The JSON views of images.
pub mod views;

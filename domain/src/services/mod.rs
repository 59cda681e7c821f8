//! What berth does, one module per concern: catalog reads, admin writes, imports, builds,
//! source registries, and the Harbor operations imports, builds and admin share. Services
//! call the store for every SQL statement and Harbor's client for everything in Harbor.

pub mod admin;
pub mod builds;
pub mod catalog;
pub mod harbor_ops;
pub mod imports;
pub mod registries;

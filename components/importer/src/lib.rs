//! importer: starts imports into Harbor and their retries, custom builds, and manages
//! source registries.

berth_spin::serve_with!(berth_domain::api::importer::handle);

//! admin: every write to the catalog. Private: no public route, reached only from the
//! catalog component through Spin's local service chaining.

berth_spin::serve_with!(berth_domain::api::admin::handle);

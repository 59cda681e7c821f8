//! catalog: every read of the image catalog. Writes on the same paths go to the private
//! admin component (import retries to the importer) through Spin's local service chaining.

berth_spin::serve_with!(
    berth_domain::api::catalog::handle,
    forward = berth_domain::api::catalog::forward_target
);

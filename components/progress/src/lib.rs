//! progress: Harbor's webhooks, sync workers' progress and build runners' status callbacks.

berth_spin::serve_with!(berth_domain::api::progress::handle);

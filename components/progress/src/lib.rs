//! progress: Harbor's webhooks and sync workers' progress callbacks.

use berth_spin::SpinHttp;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let req = berth_spin::to_domain(req);
    let res = match berth_spin::open_db_for(&req) {
        Ok(db) => {
            berth_domain::imports::handle_progress(
                &req,
                &berth_spin::context(db.as_ref()),
                SpinHttp,
            )
            .await
        }
        Err(res) => res,
    };
    berth_spin::from_domain(res)
}

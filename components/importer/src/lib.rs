//! importer: starts imports of external images into Harbor, and retries failed ones.

use berth_spin::SpinHttp;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let req = berth_spin::to_domain(req);
    let res = match berth_spin::open_db_for(&req) {
        Ok(db) => {
            berth_domain::imports::handle_importer(
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

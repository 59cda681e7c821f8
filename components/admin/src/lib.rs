//! admin: every write to the catalog. Private: no public route, reached only from the
//! catalog component through Spin's local service chaining.

use berth_spin::SpinHttp;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let req = berth_spin::to_domain(req);
    let res = match berth_spin::open_db_for(&req) {
        Ok(db) => {
            berth_domain::admin::handle(&req, &berth_spin::context(db.as_ref()), SpinHttp).await
        }
        Err(res) => res,
    };
    berth_spin::from_domain(res)
}

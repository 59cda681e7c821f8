//! catalog: every read of the image catalog. Writes on the same paths go to the private
//! admin component (import retries to the importer) through Spin's local service chaining.

use berth_spin::SpinHttp;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let req = berth_spin::to_domain(req);
    let res = match berth_domain::catalog::forward_target(&req) {
        Some(component) => berth_spin::forward(component, &req).await,
        None => match berth_spin::open_db_for(&req) {
            Ok(db) => {
                berth_domain::catalog::handle(&req, &berth_spin::context(db.as_ref()), SpinHttp)
                    .await
            }
            Err(res) => res,
        },
    };
    berth_spin::from_domain(res)
}

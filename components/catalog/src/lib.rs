//! catalog: every read of the image catalog. Writes on the same paths go to the private
//! admin component through Spin's local service chaining.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> Response {
    let req = berth_spin::to_domain(req);
    let res = if berth_domain::catalog::forwards_to_admin(&req) {
        berth_spin::forward("admin", &req).await
    } else {
        berth_spin::serve(&req, berth_domain::catalog::handle)
    };
    berth_spin::from_domain(res)
}

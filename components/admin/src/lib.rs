//! admin: every write to the catalog. Private: no public route, reached only from the
//! catalog component through Spin's local service chaining.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    let req = berth_spin::to_domain(req);
    berth_spin::from_domain(berth_spin::serve(&req, berth_domain::admin::handle))
}

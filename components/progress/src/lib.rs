//! progress: Harbor webhooks and import/build worker callbacks.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    let req = berth_spin::to_domain(req);
    berth_spin::from_domain(berth_domain::envelope::not_implemented(&req, "progress"))
}

//! The host side of the interfaces a Spin component imports, one module each: what a guest
//! calls when it opens a database, reads a variable or sends an HTTP request.

pub mod key_value;
pub mod outbound_http;
pub mod postgres;
pub mod sqlite;
pub mod variables;

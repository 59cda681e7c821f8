//! What berth's end-to-end tests and its benchmark share: a throwaway PostgreSQL cluster
//! (`initdb` + `pg_ctl` in a temp dir) and berth's `Db` over a native connection to it.
//! Its own crate so that the test suite and `berth bench` use the one copy.

pub mod postgres;

//! The PostgreSQL store end to end, through the host's `spin:postgres`: the connection-string
//! forms Spin accepts, its TLS modes and its permission rules (SPIN-FACTS). Always runs on
//! the test PostgreSQL, whatever `BERTH_TEST_STORE` says.

use std::time::{Duration, Instant};

use berth_domain::db::Db;
use berth_tests::postgres::{TestDatabase, fresh_database};
use berth_tests::{AppOptions, TestApp};

fn app_on(db_url: &str, db_host: &str, db_port: u16) -> TestApp {
    TestApp::spawn_with(AppOptions {
        variables: vec![
            ("store".into(), "postgres".into()),
            ("db_url".into(), db_url.into()),
            ("db_host".into(), db_host.into()),
            ("db_port".into(), db_port.to_string()),
        ],
        ..Default::default()
    })
}

fn total_images(app: &TestApp) -> i64 {
    let r = app.as_user("u").get("/api/v1/images");
    assert_eq!(r.status, 200, "{}\n{}", r.text, app.output());
    r.body["data"]["pagination"]["total"].as_i64().unwrap()
}

/// Waits for a line of the host's output containing `needle`.
fn wait_for_output(app: &TestApp, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let out = app.output();
        if out.contains(needle) {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no {needle:?} in the host's output:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn migrated(db: &TestDatabase) -> bool {
    db.connect()
        .query(
            "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'schema_migrations'",
            &[],
        )
        .unwrap()
        .scalar_i64()
        == Some(1)
}

#[test]
fn every_connection_string_form_reaches_the_database() {
    let db = fresh_database();
    for url in [
        db.url(),
        db.url().replace("postgres://", "postgresql://"),
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={} sslmode=disable",
            db.port, db.name
        ),
    ] {
        let app = app_on(&url, "127.0.0.1", db.port);
        // The seeded official images, migrated once by whichever app came first.
        assert_eq!(total_images(&app), 4, "{url}");
    }
}

#[test]
fn a_database_not_in_allowed_outbound_hosts_is_refused() {
    let db = fresh_database();
    // allowed_outbound_hosts says localhost, the connection string 127.0.0.1: names are
    // compared as text, not resolved, so Spin refuses this.
    let app = app_on(&db.url(), "localhost", db.port);
    let r = app.as_user("u").get("/api/v1/images");
    assert_eq!(r.status, 500, "{}", r.text);
    let out = wait_for_output(
        &app,
        &format!("address postgres://127.0.0.1:{} is not permitted", db.port),
    );
    assert!(
        out.contains(&format!(
            "allowed_outbound_hosts = [\"postgres://127.0.0.1:{}\"]",
            db.port
        )),
        "the log names the entry to add:\n{out}"
    );
    assert!(!migrated(&db), "nothing reached the database");

    // Another port than the allowed one is refused too.
    let app = app_on(&db.url(), "127.0.0.1", db.port.wrapping_add(1).max(1));
    assert_eq!(app.as_user("u").get("/api/v1/images").status, 500);
    wait_for_output(&app, "is not permitted");
    assert!(!migrated(&db));
}

#[test]
fn tls_is_used_only_when_the_server_offers_it() {
    // The test cluster has TLS off (as a fresh initdb cluster does).
    let db = fresh_database();
    let require = app_on(
        &db.url().replace("sslmode=disable", "sslmode=require"),
        "127.0.0.1",
        db.port,
    );
    assert_eq!(require.as_user("u").get("/api/v1/images").status, 500);
    wait_for_output(&require, "TLS");
    assert!(!migrated(&db));

    // The default mode (prefer) falls back to plain text.
    let prefer = app_on(
        &db.url().replace("?sslmode=disable", ""),
        "127.0.0.1",
        db.port,
    );
    assert_eq!(total_images(&prefer), 4);
}

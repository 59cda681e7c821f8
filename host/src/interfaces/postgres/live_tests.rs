//! Against a real PostgreSQL (the e2e suite's throwaway cluster): values of every mapped
//! type round-trip, sessions are reset between guests, both interface versions work.

use std::sync::Arc;
use std::time::Duration;

use berth_test_support::postgres as cluster;
use wasmtime::component::Resource;

use super::{Connection, PostgresState};
use crate::allowed_hosts::AllowedHosts;
use crate::bindings::spin::postgres3_0_0::postgres as v3;
use crate::bindings::spin::postgres4_0_0::postgres as v4;

fn state() -> PostgresState {
    let vars =
        crate::interfaces::variables::AppVariables::resolve(&Default::default(), |_| None).unwrap();
    let allowed = AllowedHosts::parse(&["postgres://127.0.0.1:*".into()], &vars, &[]).unwrap();
    PostgresState::new("test".into(), Arc::new(allowed), Arc::default())
}

async fn open(s: &mut PostgresState, url: &str) -> Resource<Connection> {
    s.open_impl(url).await.unwrap().unwrap()
}

async fn query(
    s: &mut PostgresState,
    c: &Resource<Connection>,
    sql: &str,
    params: Vec<v4::ParameterValue>,
) -> v4::RowSet {
    match s.query_impl(c, sql, params).await.unwrap() {
        Ok(rows) => rows,
        Err(e) => panic!("{sql}: {e:?}"),
    }
}

fn debug(v: &v4::DbValue) -> String {
    let s = format!("{v:?}");
    s.strip_prefix("DbValue::").unwrap_or(&s).to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn values_round_trip_and_sessions_are_reset() {
    let db = tokio::task::spawn_blocking(cluster::fresh_database)
        .await
        .unwrap();
    let url = db.url();
    let mut s = state();
    let c = open(&mut s, &url).await;
    use v4::ParameterValue as P;
    query(
        &mut s,
        &c,
        "CREATE TABLE t (b BOOLEAN, i2 SMALLINT, i4 INT, i8 BIGINT, f4 REAL, f8 DOUBLE \
         PRECISION, s TEXT, v VARCHAR(10), by BYTEA, d DATE, tm TIME, ts TIMESTAMP, tz \
         TIMESTAMPTZ, u UUID, j JSONB, n NUMERIC, r4 INT4RANGE, r8 INT8RANGE, a4 INT[], \
         a8 BIGINT[], an NUMERIC[], at TEXT[], iv INTERVAL, x INET, nul TEXT)",
        vec![],
    )
    .await;
    let params = vec![
        P::Boolean(true),
        P::Int16(-2),
        P::Int32(40_000),
        P::Int64(1 << 40),
        P::Floating32(1.5),
        P::Floating64(-2.25),
        P::Str("héllo".into()),
        P::Str("v".into()),
        P::Binary(vec![0, 1, 255]),
        P::Date((2026, 2, 28)),
        P::Time((10, 20, 30, 500_000_000)),
        P::Datetime((2026, 1, 20, 10, 0, 0, 0)),
        P::Timestamp(1_700_000_000),
        P::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        P::Jsonb(br#"{"a": [1, 2]}"#.to_vec()),
        P::Decimal("12.345".into()),
        P::RangeInt32((
            Some((1, v4::RangeBoundKind::Inclusive)),
            Some((5, v4::RangeBoundKind::Exclusive)),
        )),
        P::RangeInt64((Some((7, v4::RangeBoundKind::Inclusive)), None)),
        P::ArrayInt32(vec![Some(1), None]),
        P::ArrayInt64(vec![Some(1 << 40)]),
        P::ArrayDecimal(vec![Some("0.5".into())]),
        P::ArrayStr(vec![Some("a".into()), None]),
        P::Interval(v4::Interval {
            micros: 1_000_000,
            days: 2,
            months: 3,
        }),
        P::DbNull,
        P::DbNull,
    ];
    let placeholders: Vec<String> = (1..=params.len()).map(|i| format!("${i}")).collect();
    let n = s
        .execute_impl(
            &c,
            &format!("INSERT INTO t VALUES ({})", placeholders.join(", ")),
            params,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
    let rows = query(&mut s, &c, "SELECT * FROM t", vec![]).await;
    let got: Vec<String> = rows.rows[0].iter().map(debug).collect();
    let want = [
        "Boolean(true)",
        "Int16(-2)",
        "Int32(40000)",
        "Int64(1099511627776)",
        "Floating32(1.5)",
        "Floating64(-2.25)",
        "Str(\"héllo\")",
        "Str(\"v\")",
        "Binary([0, 1, 255])",
        "Date((2026, 2, 28))",
        "Time((10, 20, 30, 500000000))",
        "Datetime((2026, 1, 20, 10, 0, 0, 0))",
        "Datetime((2023, 11, 14, 22, 13, 20, 0))",
        "Uuid(\"67e55044-10b1-426f-9247-bb680e5fe0c8\")",
        "Jsonb([123, 34, 97, 34, 58, 91, 49, 44, 50, 93, 125])",
        "Decimal(\"12.345\")",
        "RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((5, RangeBoundKind::Exclusive))))",
        "RangeInt64((Some((7, RangeBoundKind::Inclusive)), None))",
        "ArrayInt32([Some(1), None])",
        "ArrayInt64([Some(1099511627776)])",
        "ArrayDecimal([Some(\"0.5\")])",
        "ArrayStr([Some(\"a\"), None])",
        "Interval(Interval { micros: 1000000, days: 2, months: 3 })",
        "DbNull",
        "DbNull",
    ];
    assert_eq!(got, want);
    let types: Vec<String> = rows
        .columns
        .iter()
        .map(|c| format!("{}:{:?}", c.name, c.data_type))
        .collect();
    assert_eq!(types[0], "b:DbDataType::Boolean");
    assert_eq!(types[23], "x:DbDataType::Other(\"inet\")");
    // An unmapped type's value arrives as raw bytes.
    let inet = query(&mut s, &c, "SELECT '10.0.0.1'::inet AS x", vec![]).await;
    assert!(debug(&inet.rows[0][0]).starts_with("Unsupported("));
    // A mistyped parameter is refused as Spin refuses it (no silent conversion).
    let e = s
        .query_impl(&c, "SELECT i4 FROM t WHERE i4 = $1", vec![P::Int64(1)])
        .await
        .unwrap()
        .unwrap_err();
    assert!(format!("{e:?}").contains("int4"), "{e:?}");
    // Database errors carry PostgreSQL's structure.
    let e = s
        .query_impl(&c, "SELECT nope FROM t", vec![])
        .await
        .unwrap()
        .unwrap_err();
    match e {
        v4::Error::QueryFailed(v4::QueryError::DbError(d)) => {
            assert_eq!(d.code, "42703");
            assert!(
                d.as_text.contains("column \"nope\" does not exist"),
                "{}",
                d.as_text
            );
        }
        other => panic!("{other:?}"),
    }

    // A guest that leaves a transaction open and changes a setting: the next guest's
    // session is clean.
    let c2 = open(&mut s, &url).await;
    query(&mut s, &c2, "BEGIN", vec![]).await;
    query(
        &mut s,
        &c2,
        "INSERT INTO t (s) VALUES ('uncommitted')",
        vec![],
    )
    .await;
    query(&mut s, &c2, "SET application_name = 'dirty'", vec![]).await;
    s.close(c2).unwrap();
    s.close(c).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = state();
    let c = open(&mut s, &url).await;
    let rows = query(
        &mut s,
        &c,
        "SELECT (SELECT COUNT(*) FROM t) AS n, current_setting('application_name') AS app",
        vec![],
    )
    .await;
    assert_eq!(debug(&rows.rows[0][0]), "Int64(1)");
    assert_eq!(debug(&rows.rows[0][1]), "Str(\"\")");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_v3_interface_reads_the_same_rows() {
    use v3::HostConnection as _;
    let db = tokio::task::spawn_blocking(cluster::fresh_database)
        .await
        .unwrap();
    let mut s = state();
    let c = v3::HostConnection::open(&mut s, db.url())
        .await
        .unwrap()
        .unwrap();
    let n = s
        .execute(
            Resource::new_borrow(c.rep()),
            "CREATE TABLE t (id BIGINT, u UUID)".into(),
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
    s.execute(
        Resource::new_borrow(c.rep()),
        "INSERT INTO t VALUES ($1, gen_random_uuid())".into(),
        vec![v3::ParameterValue::Int64(7)],
    )
    .await
    .unwrap()
    .unwrap();
    let rows = s
        .query(
            Resource::new_borrow(c.rep()),
            "SELECT id, u FROM t".into(),
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(rows.rows[0][0], v3::DbValue::Int64(7)));
    assert!(matches!(rows.rows[0][1], v3::DbValue::Unsupported));
    assert!(matches!(rows.columns[1].data_type, v3::DbDataType::Other));
    let e = s
        .query(Resource::new_borrow(c.rep()), "SELEC".into(), vec![])
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, v3::Error::QueryFailed(m) if m.contains("syntax error")));
    v3::HostConnection::drop(&mut s, c).await.unwrap();
}

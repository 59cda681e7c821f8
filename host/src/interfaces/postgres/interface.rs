//! The host traits of `spin:postgres/postgres@4.0.0` and `@3.0.0`: both call the one
//! implementation in `PostgresState`; 3.0.0's older types are converted at the edge.

use wasmtime::component::Resource;

use super::{Connection, PostgresState};
use crate::bindings::spin::postgres3_0_0::postgres as v3;
use crate::bindings::spin::postgres4_0_0::postgres as v4;

// --- spin:postgres/postgres@4.0.0 ---

impl v4::Host for PostgresState {}

impl v4::HostConnection for PostgresState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v4::Error>> {
        self.open_impl(&address).await
    }

    async fn query(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<Result<v4::RowSet, v4::Error>> {
        self.query_impl(&conn, &statement, params).await
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v4::Error>> {
        self.execute_impl(&conn, &statement, params).await
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn)
    }
}

// --- spin:postgres/postgres@3.0.0 (the same implementation, older types) ---

fn param_from_v3(p: v3::ParameterValue) -> v4::ParameterValue {
    use v3::ParameterValue as P3;
    use v4::ParameterValue as P;
    match p {
        P3::Boolean(v) => P::Boolean(v),
        P3::Int8(v) => P::Int8(v),
        P3::Int16(v) => P::Int16(v),
        P3::Int32(v) => P::Int32(v),
        P3::Int64(v) => P::Int64(v),
        P3::Floating32(v) => P::Floating32(v),
        P3::Floating64(v) => P::Floating64(v),
        P3::Str(v) => P::Str(v),
        P3::Binary(v) => P::Binary(v),
        P3::Date(v) => P::Date(v),
        P3::Time(v) => P::Time(v),
        P3::Datetime(v) => P::Datetime(v),
        P3::Timestamp(v) => P::Timestamp(v),
        P3::DbNull => P::DbNull,
    }
}

fn value_to_v3(v: v4::DbValue) -> v3::DbValue {
    use v3::DbValue as V3;
    use v4::DbValue as V;
    match v {
        V::Boolean(v) => V3::Boolean(v),
        V::Int8(v) => V3::Int8(v),
        V::Int16(v) => V3::Int16(v),
        V::Int32(v) => V3::Int32(v),
        V::Int64(v) => V3::Int64(v),
        V::Floating32(v) => V3::Floating32(v),
        V::Floating64(v) => V3::Floating64(v),
        V::Str(v) => V3::Str(v),
        V::Binary(v) => V3::Binary(v),
        V::Date(v) => V3::Date(v),
        V::Time(v) => V3::Time(v),
        V::Datetime(v) => V3::Datetime(v),
        V::Timestamp(v) => V3::Timestamp(v),
        V::DbNull => V3::DbNull,
        _ => V3::Unsupported,
    }
}

fn data_type_to_v3(t: v4::DbDataType) -> v3::DbDataType {
    use v3::DbDataType as D3;
    use v4::DbDataType as D;
    match t {
        D::Boolean => D3::Boolean,
        D::Int8 => D3::Int8,
        D::Int16 => D3::Int16,
        D::Int32 => D3::Int32,
        D::Int64 => D3::Int64,
        D::Floating32 => D3::Floating32,
        D::Floating64 => D3::Floating64,
        D::Str => D3::Str,
        D::Binary => D3::Binary,
        D::Date => D3::Date,
        D::Time => D3::Time,
        D::Datetime => D3::Datetime,
        D::Timestamp => D3::Timestamp,
        _ => D3::Other,
    }
}

fn error_to_v3(e: v4::Error) -> v3::Error {
    match e {
        v4::Error::ConnectionFailed(m) => v3::Error::ConnectionFailed(m),
        v4::Error::BadParameter(m) => v3::Error::BadParameter(m),
        v4::Error::QueryFailed(v4::QueryError::Text(m)) => v3::Error::QueryFailed(m),
        v4::Error::QueryFailed(v4::QueryError::DbError(d)) => v3::Error::QueryFailed(d.as_text),
        v4::Error::ValueConversionFailed(m) => v3::Error::ValueConversionFailed(m),
        v4::Error::Other(m) => v3::Error::Other(m),
    }
}

impl v3::Host for PostgresState {}

impl v3::HostConnection for PostgresState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        Ok(self.open_impl(&address).await?.map_err(error_to_v3))
    }

    async fn query(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<v3::RowSet, v3::Error>> {
        let params = params.into_iter().map(param_from_v3).collect();
        Ok(self
            .query_impl(&conn, &statement, params)
            .await?
            .map(|rs| v3::RowSet {
                columns: rs
                    .columns
                    .into_iter()
                    .map(|c| v3::Column {
                        name: c.name,
                        data_type: data_type_to_v3(c.data_type),
                    })
                    .collect(),
                rows: rs
                    .rows
                    .into_iter()
                    .map(|r| r.into_iter().map(value_to_v3).collect())
                    .collect(),
            })
            .map_err(error_to_v3))
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v3::Error>> {
        let params = params.into_iter().map(param_from_v3).collect();
        Ok(self
            .execute_impl(&conn, &statement, params)
            .await?
            .map_err(error_to_v3))
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interfaces::postgres::values::data_type;
    use tokio_postgres::types::Type;

    #[test]
    fn v3_sees_newer_types_as_unsupported() {
        assert!(matches!(
            value_to_v3(v4::DbValue::Uuid("u".into())),
            v3::DbValue::Unsupported
        ));
        assert!(matches!(
            data_type_to_v3(v4::DbDataType::Jsonb),
            v3::DbDataType::Other
        ));
        let e = error_to_v3(v4::Error::QueryFailed(v4::QueryError::DbError(
            v4::DbError {
                as_text: "db error: ERROR: boom".into(),
                severity: "ERROR".into(),
                code: "XX000".into(),
                message: "boom".into(),
                detail: None,
                extras: vec![],
            },
        )));
        assert!(matches!(e, v3::Error::QueryFailed(m) if m == "db error: ERROR: boom"));
        assert!(matches!(data_type(&Type::INT8), v4::DbDataType::Int64));
        assert!(matches!(data_type(&Type::NAME), v4::DbDataType::Other(n) if n == "name"));
    }
}

//! Running a guest's statement on its session: prepared once per session, the result
//! converted and bounded in size, a failure turned into Spin's structured error.

use tokio_postgres::types::ToSql;

use super::pool::{Client, error_text};
use super::values::{Param, data_type, db_value};
use crate::bindings::spin::postgres4_0_0::postgres as v4;

/// Like Spin's MAX_HOST_BUFFERED_BYTES: a query result larger than this is an error.
const MAX_RESULT_BYTES: usize = 128 * 1024 * 1024;

pub(super) fn param_refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

pub(super) async fn run_query(
    client: &mut Client,
    statement: &str,
    params: &[Param],
) -> Result<v4::RowSet, v4::Error> {
    let refs = param_refs(params);
    let result = match client.prepare(statement).await {
        Ok(stmt) => client
            .client
            .query(&stmt, &refs)
            .await
            .map(|rows| (stmt, rows)),
        Err(e) => Err(e),
    };
    let (stmt, rows) = match result {
        Ok(r) => r,
        Err(e) => {
            client.forget(statement);
            return Err(query_failed(e));
        }
    };
    let columns = stmt
        .columns()
        .iter()
        .map(|c| v4::Column {
            name: c.name().to_string(),
            data_type: data_type(c.type_()),
        })
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut bytes = 0usize;
    for row in &rows {
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let v = db_value(row, i).map_err(|e| {
                v4::Error::QueryFailed(v4::QueryError::Text(format!(
                    "cannot convert column {:?}: {e}",
                    row.columns()[i].name()
                )))
            })?;
            bytes += value_size(&v);
            values.push(v);
        }
        if bytes > MAX_RESULT_BYTES {
            return Err(v4::Error::QueryFailed(v4::QueryError::Text(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            ))));
        }
        out.push(values);
    }
    Ok(v4::RowSet { columns, rows: out })
}

fn value_size(v: &v4::DbValue) -> usize {
    std::mem::size_of::<v4::DbValue>()
        + match v {
            v4::DbValue::Str(s) | v4::DbValue::Uuid(s) | v4::DbValue::Decimal(s) => s.len(),
            v4::DbValue::Binary(b) | v4::DbValue::Jsonb(b) | v4::DbValue::Unsupported(b) => b.len(),
            v4::DbValue::ArrayStr(a) => a.iter().flatten().map(String::len).sum(),
            v4::DbValue::ArrayInt32(a) => a.len() * 8,
            v4::DbValue::ArrayInt64(a) => a.len() * 16,
            v4::DbValue::ArrayDecimal(a) => a.iter().flatten().map(String::len).sum(),
            _ => 0,
        }
}

/// Spin's `query_failed`: structured details when PostgreSQL sent them.
pub(super) fn query_failed(e: tokio_postgres::Error) -> v4::Error {
    let text = match e.as_db_error() {
        Some(db) => format!("db error: {db}"),
        None => error_text(&e),
    };
    let query_error = match e.as_db_error() {
        None => v4::QueryError::Text(text),
        Some(db) => {
            let mut extras = Vec::new();
            let mut extra = |k: &str, v: Option<String>| {
                if let Some(v) = v {
                    extras.push((k.to_string(), v));
                }
            };
            extra("column", db.column().map(str::to_owned));
            extra("constraint", db.constraint().map(str::to_owned));
            extra("routine", db.routine().map(str::to_owned));
            extra("hint", db.hint().map(str::to_owned));
            extra("table", db.table().map(str::to_owned));
            extra("datatype", db.datatype().map(str::to_owned));
            extra("schema", db.schema().map(str::to_owned));
            extra("file", db.file().map(str::to_owned));
            extra("line", db.line().map(|l| l.to_string()));
            extra("where_", db.where_().map(str::to_owned));
            v4::QueryError::DbError(v4::DbError {
                as_text: text,
                severity: db.severity().to_string(),
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_owned),
                extras,
            })
        }
    };
    v4::Error::QueryFailed(query_error)
}

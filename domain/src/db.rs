//! The SQL connection berth's logic runs on: one small trait, two dialects (SQLite, PostgreSQL).
//!
//! SQL is written once with `?` placeholders and portable syntax (`RETURNING`,
//! `ON CONFLICT`); the few dialect differences go through [`Dialect`] helpers.

use std::fmt;

/// A SQL value, the common subset of Spin's SQLite and PostgreSQL value types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Integer(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The result of a statement: column names and rows of values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows as name-addressable views.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(move |values| Row {
            columns: &self.columns,
            values,
        })
    }

    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }

    /// The first column of the first row as an integer (for `COUNT(*)` and `RETURNING id`).
    pub fn scalar_i64(&self) -> Option<i64> {
        self.rows
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
    }
}

/// One row, addressed by column name.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    pub fn get(&self, column: &str) -> &'a Value {
        self.columns
            .iter()
            .position(|c| c == column)
            .map_or(&Value::Null, |i| &self.values[i])
    }

    pub fn i64(&self, column: &str) -> i64 {
        self.get(column).as_i64().unwrap_or(0)
    }

    pub fn bool(&self, column: &str) -> bool {
        self.i64(column) != 0
    }

    pub fn str(&self, column: &str) -> &'a str {
        self.opt_str(column).unwrap_or("")
    }

    pub fn opt_str(&self, column: &str) -> Option<&'a str> {
        match self.get(column) {
            Value::Text(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn opt_string(&self, column: &str) -> Option<String> {
        self.opt_str(column).map(str::to_owned)
    }
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            Value::Real(f) => Some(*f as i64),
            Value::Text(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Case-insensitive substring match of `column` against a `LIKE` pattern parameter.
    pub fn ilike(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{column} LIKE ? ESCAPE '\\'"),
            Dialect::Postgres => format!("{column} ILIKE ? ESCAPE '\\'"),
        }
    }

    /// Case-insensitive equality of `column` and a parameter, served by the column's index.
    pub fn ieq(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{column} = ? COLLATE NOCASE"),
            Dialect::Postgres => format!("lower({column}) = lower(?)"),
        }
    }

    /// Whether the JSON array of strings in text `column` holds the parameter.
    pub fn json_array_contains(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!("EXISTS (SELECT 1 FROM json_each({column}) WHERE value = ?)")
            }
            Dialect::Postgres => format!(
                "EXISTS (SELECT 1 FROM json_array_elements_text({column}::json) AS e (value) WHERE e.value = ?)"
            ),
        }
    }

    /// The statements that start a write transaction which takes the write lock at once.
    ///
    /// SQLite has one writer per file (`BEGIN IMMEDIATE`). PostgreSQL lets transactions
    /// interleave, which would let two replicas both see "no import yet" and both start one;
    /// a transaction-scoped advisory lock gives write transactions SQLite's semantics across
    /// every replica. Single-statement writes outside a transaction are not serialized.
    pub fn begin_write(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &["BEGIN IMMEDIATE"],
            Dialect::Postgres => &["BEGIN", PG_WRITE_LOCK_SQL],
        }
    }
}

/// Takes berth's write lock (advisory lock key "berthw") until the transaction ends.
const PG_WRITE_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(108187851450487)";

/// Escapes `%`, `_` and `\` so user text matches literally inside a `LIKE ... ESCAPE '\'` pattern.
pub fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Rewrites `?` placeholders as PostgreSQL's `$1, $2, …`, leaving quoted text alone.
pub fn to_postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (Some(q), _) if c == q => {
                quote = None;
                out.push(c);
            }
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// A uniqueness constraint failed (e.g. a duplicate image name).
    Conflict(String),
    /// The database is locked or busy; the operation may be retried.
    Busy(String),
    Other(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Conflict(m) | DbError::Busy(m) | DbError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DbError {}

impl DbError {
    /// Classifies a driver's error text, as both Spin interfaces only hand back strings.
    pub fn from_message(message: impl Into<String>) -> DbError {
        let m = message.into();
        let lower = m.to_ascii_lowercase();
        // SQLite says "UNIQUE constraint failed"; PostgreSQL "duplicate key value violates
        // unique constraint", with SQLSTATE 23505 when the driver passes the code along.
        if lower.contains("unique constraint")
            || lower.contains("duplicate key")
            || lower.contains("23505")
        {
            DbError::Conflict(m)
        } else if lower.contains("database is locked")
            || lower.contains("busy")
            || lower.contains("deadlock detected")
            || lower.contains("could not serialize access")
        {
            DbError::Busy(m)
        } else {
            DbError::Other(m)
        }
    }
}

/// A connection to berth's database.
pub trait Db {
    fn dialect(&self) -> Dialect;
    /// Runs one statement and returns its rows (empty for statements without `RETURNING`).
    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;

    /// Runs one statement, ignoring any rows.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        self.query(sql, params).map(drop)
    }
}

/// Runs `body` inside a write transaction: committed on `Ok`, rolled back on `Err`.
pub fn with_write_tx<T, E: From<DbError>>(
    db: &dyn Db,
    body: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let mut begin = db.dialect().begin_write().iter();
    db.execute(begin.next().expect("a BEGIN statement"), &[])?;
    for statement in begin {
        if let Err(e) = db.execute(statement, &[]) {
            let _ = db.execute("ROLLBACK", &[]);
            return Err(e.into());
        }
    }
    match body() {
        Ok(v) => {
            db.execute("COMMIT", &[])?;
            Ok(v)
        }
        Err(e) => {
            let _ = db.execute("ROLLBACK", &[]);
            Err(e)
        }
    }
}

/// `Db` over a native rusqlite connection: unit tests and the host's bulk tools.
#[cfg(feature = "rusqlite")]
pub mod native {
    use super::*;

    pub struct SqliteDb(pub rusqlite::Connection);

    impl SqliteDb {
        pub fn open_in_memory() -> SqliteDb {
            SqliteDb(rusqlite::Connection::open_in_memory().expect("in-memory sqlite"))
        }
    }

    fn to_sql(v: &Value) -> rusqlite::types::Value {
        use rusqlite::types::Value as V;
        match v {
            Value::Null => V::Null,
            Value::Integer(i) => V::Integer(*i),
            Value::Real(f) => V::Real(*f),
            Value::Text(s) => V::Text(s.clone()),
            Value::Blob(b) => V::Blob(b.clone()),
        }
    }

    fn from_sql(v: rusqlite::types::ValueRef<'_>) -> Value {
        use rusqlite::types::ValueRef as V;
        match v {
            V::Null => Value::Null,
            V::Integer(i) => Value::Integer(i),
            V::Real(f) => Value::Real(f),
            V::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            V::Blob(b) => Value::Blob(b.to_vec()),
        }
    }

    impl Db for SqliteDb {
        fn dialect(&self) -> Dialect {
            Dialect::Sqlite
        }

        fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
            let err = |e: rusqlite::Error| DbError::from_message(e.to_string());
            let mut stmt = self.0.prepare_cached(sql).map_err(err)?;
            let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
            let params: Vec<rusqlite::types::Value> = params.iter().map(to_sql).collect();
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(err)?;
            let mut out = Rows {
                columns,
                rows: Vec::new(),
            };
            while let Some(row) = rows.next().map_err(err)? {
                let values = (0..out.columns.len())
                    .map(|i| row.get_ref(i).map(from_sql))
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                out.rows.push(values);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_outside_quotes() {
        assert_eq!(
            to_postgres_placeholders("SELECT * FROM t WHERE a = ? AND b = '?' AND c IN (?, ?)"),
            "SELECT * FROM t WHERE a = $1 AND b = '?' AND c IN ($2, $3)"
        );
    }

    #[test]
    fn write_transactions_take_the_write_lock_first() {
        assert_eq!(Dialect::Sqlite.begin_write(), ["BEGIN IMMEDIATE"]);
        let pg = Dialect::Postgres.begin_write();
        assert_eq!(pg[0], "BEGIN");
        // "berthw": distinct from the migration lock ("berth\0").
        assert_eq!(
            pg[1],
            format!(
                "SELECT pg_advisory_xact_lock({})",
                i64::from_be_bytes(*b"\0\0berthw")
            )
        );
    }

    #[test]
    fn like_patterns_escape_metacharacters() {
        assert_eq!(like_contains("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(
            DbError::from_message("UNIQUE constraint failed: images.name"),
            DbError::Conflict(_)
        ));
        assert!(matches!(
            DbError::from_message("duplicate key value violates unique constraint"),
            DbError::Conflict(_)
        ));
        assert!(matches!(
            DbError::from_message("DbError { code: \"23505\", message: \"boom\" }"),
            DbError::Conflict(_)
        ));
        assert!(matches!(
            DbError::from_message("database is locked"),
            DbError::Busy(_)
        ));
        assert!(matches!(
            DbError::from_message("db error: ERROR: deadlock detected"),
            DbError::Busy(_)
        ));
    }
}

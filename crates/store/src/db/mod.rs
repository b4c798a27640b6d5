//! One connection type over the two database engines: SQLite (rusqlite,
//! the default) and PostgreSQL (the `postgres` client). The store's SQL
//! ([`crate::sql`]: accounts, mailboxes, the queue, the feed...) is
//! written once against [`Connection`] and runs on either.
//!
//! The surface is the part of rusqlite's that the store uses, with the
//! same names ([`Connection::prepare_cached`], [`Statement::query_row`],
//! [`params!`], [`OptionalExtension`]...), so that the SQL modules read as
//! plain rusqlite code. Values cross it as SQLite's five storage classes
//! ([`ValueRef`]): integers, reals, text, blobs and NULL; on PostgreSQL an
//! integer binds to whatever integer or boolean type the statement's
//! parameter has, and BIGINT, INTEGER, SMALLINT and BOOLEAN columns read
//! back as integers.
//!
//! SQL is written in the dialect both understand: `?N` parameters (turned
//! into `$N` for PostgreSQL), `ON CONFLICT`, `COALESCE`, `CASE`,
//! `RETURNING`, 1-based `substr` with a non-negative start, `CAST(SUM(x)
//! AS BIGINT)` (PostgreSQL's SUM of integers is NUMERIC). Engine-specific
//! work (pragmas, checkpoints, LISTEN) takes the engine's own connection
//! ([`Connection::as_sqlite`], [`Connection::as_postgres`]).

use std::fmt;

pub(crate) mod postgres;

pub(crate) use postgres::PgConnection;

/// A database connection of either engine.
pub(crate) enum Connection {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgConnection>),
}

/// Which engine a connection talks to, for the few statements written
/// twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// An error from either engine, or from turning a value into a Rust type.
#[derive(Debug)]
pub(crate) enum Error {
    Sqlite(rusqlite::Error),
    Postgres(::postgres::Error),
    /// `query_row` found no row ([`OptionalExtension::optional`] makes it
    /// `None`).
    QueryReturnedNoRows,
    /// A column's value does not fit the Rust type asked for.
    Conversion(String),
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(e) => e.fmt(f),
            Error::Postgres(e) => match e.as_db_error() {
                // The server's own message says more than the client's
                // "db error".
                Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
                // What went wrong below the client's own words ("error
                // performing TLS handshake": which certificate problem).
                None => match std::error::Error::source(e) {
                    Some(cause) => write!(f, "{e}: {cause}"),
                    None => e.fmt(f),
                },
            },
            Error::QueryReturnedNoRows => f.write_str("query returned no rows"),
            Error::Conversion(what) => write!(f, "conversion error: {what}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::QueryReturnedNoRows,
            e => Error::Sqlite(e),
        }
    }
}

impl From<::postgres::Error> for Error {
    fn from(e: ::postgres::Error) -> Self {
        Error::Postgres(e)
    }
}

impl Error {
    /// A UNIQUE or PRIMARY KEY violation.
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            Error::Sqlite(e) => matches!(
                e.sqlite_error().map(|e| e.extended_code),
                Some(
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                )
            ),
            Error::Postgres(e) => e.code() == Some(&::postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }

    /// The database has no room: SQLite's disk full (or `max_page_count`
    /// reached), PostgreSQL's `53100 disk_full` or `53xxx` resources.
    pub(crate) fn is_full(&self) -> bool {
        match self {
            Error::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            Error::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("53")),
            _ => false,
        }
    }

    /// The engine could not be reached or lost the connection: worth
    /// retrying later (PostgreSQL restarting, a network cut).
    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Error::Postgres(e) => {
                e.is_closed()
                    || e.as_db_error().is_none()
                    || e.code().is_some_and(|c| {
                        let c = c.code();
                        c.starts_with("08") || c.starts_with("57P")
                    })
            }
            _ => false,
        }
    }
}

/// `.optional()` on a `query_row` result, as rusqlite's.
pub(crate) trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

// ---- values ----

/// A value as SQLite stores it, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    /// The text, or a conversion error for anything else.
    pub(crate) fn as_str(&self) -> Result<&'a str> {
        match *self {
            ValueRef::Text(t) => Ok(t),
            other => Err(Error::Conversion(format!("{other:?} is not text"))),
        }
    }

    /// The bytes of a blob (or of text), or a conversion error.
    pub(crate) fn as_blob(&self) -> Result<&'a [u8]> {
        match *self {
            ValueRef::Blob(b) => Ok(b),
            ValueRef::Text(t) => Ok(t.as_bytes()),
            other => Err(Error::Conversion(format!("{other:?} is not a blob"))),
        }
    }
}

/// An owned [`ValueRef`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// What can be bound to a parameter.
pub(crate) trait ToSql {
    fn to_value(&self) -> Result<ValueRef<'_>>;
}

/// What a column can be read as.
pub(crate) trait FromSql: Sized {
    fn from_value(value: ValueRef<'_>) -> Result<Self>;
}

fn integer<T: TryFrom<i64>>(value: ValueRef<'_>, what: &str) -> Result<T> {
    match value {
        ValueRef::Integer(i) => {
            T::try_from(i).map_err(|_| Error::Conversion(format!("{i} does not fit {what}")))
        }
        // PostgreSQL's `meta.value` is TEXT (SQLite's is untyped): an
        // integer kept there reads back as its digits.
        ValueRef::Text(t) => t
            .parse::<i64>()
            .ok()
            .and_then(|i| T::try_from(i).ok())
            .ok_or_else(|| Error::Conversion(format!("{t:?} is not {what}"))),
        other => Err(Error::Conversion(format!("{other:?} is not {what}"))),
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_value(&self) -> Result<ValueRef<'_>> {
                i64::try_from(*self)
                    .map(ValueRef::Integer)
                    .map_err(|_| Error::Conversion(format!("{self} does not fit a 64-bit integer")))
            }
        }
        impl FromSql for $t {
            fn from_value(value: ValueRef<'_>) -> Result<Self> {
                integer(value, stringify!($t))
            }
        }
    )*};
}
integers!(i64, i32, i16, i8, u64, u32, u16, u8, usize, isize);

impl ToSql for bool {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Integer(i64::from(*self)))
    }
}

impl FromSql for bool {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        integer::<i64>(value, "bool").map(|i| i != 0)
    }
}

impl ToSql for f64 {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Real(*self))
    }
}

impl FromSql for f64 {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Real(r) => Ok(r),
            ValueRef::Integer(i) => Ok(i as f64),
            other => Err(Error::Conversion(format!("{other:?} is not a real"))),
        }
    }
}

impl ToSql for str {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Text(self))
    }
}

impl ToSql for String {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Text(self))
    }
}

impl FromSql for String {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Text(t) => Ok(t.to_owned()),
            other => Err(Error::Conversion(format!("{other:?} is not text"))),
        }
    }
}

impl ToSql for [u8] {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Blob(self))
    }
}

impl ToSql for Vec<u8> {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Blob(self))
    }
}

impl<const N: usize> ToSql for [u8; N] {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(ValueRef::Blob(self))
    }
}

impl FromSql for Vec<u8> {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            // SQLite hands back what was stored; a blob written as text
            // reads as its bytes.
            ValueRef::Text(t) => Ok(t.as_bytes().to_vec()),
            other => Err(Error::Conversion(format!("{other:?} is not a blob"))),
        }
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        match self {
            Some(v) => v.to_value(),
            None => Ok(ValueRef::Null),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        match value {
            ValueRef::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        (**self).to_value()
    }
}

impl<T: ToSql + ?Sized> ToSql for Box<T> {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        (**self).to_value()
    }
}

impl<T: ToSql + ?Sized> ToSql for std::sync::Arc<T> {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        (**self).to_value()
    }
}

impl ToSql for Value {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(t) => ValueRef::Text(t),
            Value::Blob(b) => ValueRef::Blob(b),
        })
    }
}

impl ToSql for ValueRef<'_> {
    fn to_value(&self) -> Result<ValueRef<'_>> {
        Ok(*self)
    }
}

impl FromSql for Value {
    fn from_value(value: ValueRef<'_>) -> Result<Self> {
        Ok(match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(r) => Value::Real(r),
            ValueRef::Text(t) => Value::Text(t.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}

impl rusqlite::ToSql for ValueRef<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ValueRef as V;
        Ok(rusqlite::types::ToSqlOutput::Borrowed(match *self {
            ValueRef::Null => V::Null,
            ValueRef::Integer(i) => V::Integer(i),
            ValueRef::Real(r) => V::Real(r),
            ValueRef::Text(t) => V::Text(t.as_bytes()),
            ValueRef::Blob(b) => V::Blob(b),
        }))
    }
}

fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<ValueRef<'_>> {
    use rusqlite::types::ValueRef as V;
    Ok(match value {
        V::Null => ValueRef::Null,
        V::Integer(i) => ValueRef::Integer(i),
        V::Real(r) => ValueRef::Real(r),
        V::Text(t) => ValueRef::Text(
            std::str::from_utf8(t).map_err(|e| Error::Conversion(format!("text: {e}")))?,
        ),
        V::Blob(b) => ValueRef::Blob(b),
    })
}

// ---- parameters ----

/// A statement's parameters: `params![a, b]`, an array of one type
/// (`[id]`), or `[]` for none.
pub(crate) trait Params {
    fn values(&self) -> Result<Vec<ValueRef<'_>>>;
}

impl Params for &[&dyn ToSql] {
    fn values(&self) -> Result<Vec<ValueRef<'_>>> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl Params for [&dyn ToSql; 0] {
    fn values(&self) -> Result<Vec<ValueRef<'_>>> {
        Ok(Vec::new())
    }
}

impl Params for &Vec<&dyn ToSql> {
    fn values(&self) -> Result<Vec<ValueRef<'_>>> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl Params for &[Value] {
    fn values(&self) -> Result<Vec<ValueRef<'_>>> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn values(&self) -> Result<Vec<ValueRef<'_>>> {
                self.iter().map(|p| p.to_value()).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8);

/// `params![a, b, c]`: parameters of mixed types, as rusqlite's.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::db::ToSql]
    };
    ($($param:expr),+ $(,)?) => {
        &[$(&$param as &dyn $crate::db::ToSql),+] as &[&dyn $crate::db::ToSql]
    };
}
pub(crate) use params;

// ---- rows ----

/// One result row.
pub(crate) enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r ::postgres::Row),
}

/// A column's position (from 0), as rusqlite's `RowIndex`.
pub(crate) trait RowIndex {
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row<'_> {
    /// The value of column `index` (from 0) as `T`.
    pub(crate) fn get<I: RowIndex, T: FromSql>(&self, index: I) -> Result<T> {
        T::from_value(self.get_ref(index)?)
    }

    /// The value of column `index` as stored, borrowed from the row.
    pub(crate) fn get_ref<I: RowIndex>(&self, index: I) -> Result<ValueRef<'_>> {
        let index = index.index();
        match self {
            Row::Sqlite(row) => from_sqlite(row.get_ref(index)?),
            Row::Postgres(row) => postgres::value_of(row, index),
        }
    }
}

/// Rows of a query, read one at a time.
pub(crate) enum Rows<'s> {
    Sqlite(rusqlite::Rows<'s>),
    Postgres {
        rows: std::vec::IntoIter<::postgres::Row>,
        current: Option<::postgres::Row>,
    },
}

impl Rows<'_> {
    pub(crate) fn next(&mut self) -> Result<Option<Row<'_>>> {
        match self {
            Rows::Sqlite(rows) => Ok(rows.next()?.map(Row::Sqlite)),
            Rows::Postgres { rows, current } => {
                *current = rows.next();
                Ok(current.as_ref().map(Row::Postgres))
            }
        }
    }
}

/// [`Statement::query_map`]'s rows, each mapped as it is read.
pub(crate) struct MappedRows<'s, F> {
    rows: Rows<'s>,
    map: F,
}

impl<T, F> Iterator for MappedRows<'_, F>
where
    F: FnMut(&Row<'_>) -> Result<T>,
{
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        match self.rows.next() {
            Ok(Some(row)) => Some((self.map)(&row)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

// ---- statements ----

/// A prepared statement, kept in its connection's cache.
pub(crate) enum Statement<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres(&'c PgConnection, postgres::PgStatement),
}

impl Statement<'_> {
    /// Runs the statement; the number of rows it changed.
    pub(crate) fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        let values = params.values()?;
        match self {
            Statement::Sqlite(stmt) => Ok(stmt.execute(rusqlite::params_from_iter(values))?),
            Statement::Postgres(conn, stmt) => conn.execute(stmt, &values),
        }
    }

    /// The rows of a query.
    pub(crate) fn query<P: Params>(&mut self, params: P) -> Result<Rows<'_>> {
        let values = params.values()?;
        match self {
            Statement::Sqlite(stmt) => Ok(Rows::Sqlite(
                stmt.query(rusqlite::params_from_iter(values))?,
            )),
            Statement::Postgres(conn, stmt) => Ok(Rows::Postgres {
                rows: conn.query(stmt, &values)?.into_iter(),
                current: None,
            }),
        }
    }

    /// The first row, mapped; [`Error::QueryReturnedNoRows`] if none.
    pub(crate) fn query_row<T, P, F>(&mut self, params: P, map: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(row) => map(&row),
            None => Err(Error::QueryReturnedNoRows),
        }
    }

    /// Every row, mapped as it is read.
    pub(crate) fn query_map<T, P, F>(&mut self, params: P, map: F) -> Result<MappedRows<'_, F>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        Ok(MappedRows {
            rows: self.query(params)?,
            map,
        })
    }
}

impl Connection {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Connection::Sqlite(_) => Dialect::Sqlite,
            Connection::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(crate) fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Connection::Sqlite(conn) => Some(conn),
            Connection::Postgres(_) => None,
        }
    }

    pub(crate) fn as_postgres(&self) -> Option<&PgConnection> {
        match self {
            Connection::Sqlite(_) => None,
            Connection::Postgres(conn) => Some(conn),
        }
    }

    /// A number that moves whenever data this connection reads may have
    /// changed since it last asked (what a cache of query results checks).
    /// SQLite: `PRAGMA data_version`, which moves with every other
    /// connection's commit. PostgreSQL has no such counter: every commit
    /// that changes messages writes the change feed (its newest id), and
    /// deleting a mailbox, feed and all, moves the mailbox epoch.
    pub(crate) fn data_version(&self) -> Result<i64> {
        match self {
            Connection::Sqlite(conn) => {
                Ok(conn.query_row("PRAGMA data_version", [], |row| row.get(0))?)
            }
            Connection::Postgres(_) => self.query_row(
                "SELECT (SELECT coalesce(max(id), 0) FROM changes)
                        + 4294967296 * (SELECT coalesce(CAST(value AS BIGINT), 0)
                                          FROM meta WHERE key = 'mailbox_epoch')",
                [],
                |row| row.get(0),
            ),
        }
    }

    /// A statement from the connection's cache, prepared on first use.
    pub(crate) fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        match self {
            Connection::Sqlite(conn) => Ok(Statement::Sqlite(conn.prepare_cached(sql)?)),
            Connection::Postgres(conn) => Ok(Statement::Postgres(conn, conn.prepare(sql)?)),
        }
    }

    /// A statement, as [`Connection::prepare_cached`]: PostgreSQL keeps
    /// every statement prepared; SQLite's cache is bounded anyway.
    pub(crate) fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare_cached(sql)
    }

    /// Runs one statement with parameters; the number of rows changed.
    pub(crate) fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// The first row of a query, mapped.
    pub(crate) fn query_row<T, P, F>(&self, sql: &str, params: P, map: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, map)
    }

    /// Runs statements separated by `;`, without parameters.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Connection::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Connection::Postgres(conn) => conn.batch_execute(sql),
        }
    }

    /// The id the last INSERT on this connection gave its row (on
    /// PostgreSQL, the last value a sequence handed out in this session:
    /// the same thing for tables whose id is an identity column).
    pub(crate) fn last_insert_rowid(&self) -> i64 {
        match self {
            Connection::Sqlite(conn) => conn.last_insert_rowid(),
            Connection::Postgres(conn) => conn.last_value().unwrap_or(0),
        }
    }

    /// Whether no transaction is open (SQLite rolls one back by itself
    /// after some errors, which the writer must notice).
    pub(crate) fn is_autocommit(&self) -> bool {
        match self {
            Connection::Sqlite(conn) => conn.is_autocommit(),
            Connection::Postgres(conn) => !conn.in_transaction(),
        }
    }
}

/// Maps database errors (either engine's) to the store's error type, so
/// no client library's type leaks.
pub(crate) trait SqlResult<T> {
    fn db(self) -> crate::Result<T>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn db(self) -> crate::Result<T> {
        self.map_err(db_error)
    }
}

impl<T> SqlResult<T> for Result<T> {
    fn db(self) -> crate::Result<T> {
        self.map_err(db_error)
    }
}

pub(crate) fn db_error(e: impl Into<Error>) -> crate::StoreError {
    let e = e.into();
    if e.is_full() {
        crate::StoreError::Full(e.to_string())
    } else if e.is_unavailable() {
        // Temporary, as every Database error: the daemons answer 4xx.
        crate::StoreError::Database(format!("the database is unavailable: {e}"))
    } else {
        crate::StoreError::Database(e.to_string())
    }
}

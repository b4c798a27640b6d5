//! The PostgreSQL side of [`super::Connection`]: a blocking `postgres`
//! client (run on the store's own threads, never on a tokio worker, like
//! SQLite's), a statement cache keyed by the SQL text, `?N` parameters
//! rewritten as `$N`, and values converted to and from SQLite's storage
//! classes.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;

use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, Row, Statement};

use super::{Error, Result, ValueRef};

/// One PostgreSQL session.
pub(crate) struct PgConnection {
    client: RefCell<Client>,
    /// Prepared statements by their SQL as the store wrote it.
    statements: RefCell<HashMap<String, PgStatement>>,
    /// Whether a transaction is open (`BEGIN` run, no `COMMIT` or
    /// `ROLLBACK` since).
    in_transaction: Cell<bool>,
}

impl PgConnection {
    /// Connects to the database `target` names, with TLS as its
    /// `sslmode` asks ([`crate::pg::Target`]).
    pub(crate) fn connect(target: &crate::pg::Target) -> Result<PgConnection> {
        let client = target.client()?;
        Ok(PgConnection {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            in_transaction: Cell::new(false),
        })
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction.get()
    }

    /// Whether the connection to the server is gone (it then only fails).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    pub(super) fn prepare(&self, sql: &str) -> Result<PgStatement> {
        if let Some(stmt) = self.statements.borrow().get(sql) {
            return Ok(stmt.clone());
        }
        let (text, used) = numbered(sql);
        // SQLite lets a statement skip a parameter number that is bound
        // anyway; PostgreSQL cannot infer the type of one never used, so
        // such gaps are declared TEXT (what is bound there is ignored).
        let last = used.iter().copied().max().unwrap_or(0);
        let statement = if (1..=last).all(|n| used.contains(&n)) {
            self.client.borrow_mut().prepare(&text)?
        } else {
            let types: Vec<Type> = (1..=last)
                .map(|n| {
                    if used.contains(&n) {
                        inferred()
                    } else {
                        Type::TEXT
                    }
                })
                .collect();
            self.client.borrow_mut().prepare_typed(&text, &types)?
        };
        let stmt = PgStatement {
            statement,
            transaction: transaction_effect(sql),
        };
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    pub(super) fn execute(&self, stmt: &PgStatement, values: &[ValueRef<'_>]) -> Result<usize> {
        let binds = binds(&values[..values.len().min(stmt.statement.params().len())]);
        let changed = self
            .client
            .borrow_mut()
            .execute(&stmt.statement, &refs(&binds))?;
        if let Some(open) = stmt.transaction {
            self.in_transaction.set(open);
        }
        Ok(changed as usize)
    }

    pub(super) fn query(&self, stmt: &PgStatement, values: &[ValueRef<'_>]) -> Result<Vec<Row>> {
        // Values past the statement's last parameter are ignored, as
        // SQLite ignores them.
        let binds = binds(&values[..values.len().min(stmt.statement.params().len())]);
        Ok(self
            .client
            .borrow_mut()
            .query(&stmt.statement, &refs(&binds))?)
    }

    pub(super) fn batch_execute(&self, sql: &str) -> Result<()> {
        let result = self.client.borrow_mut().batch_execute(sql);
        if result.is_ok() {
            if let Some(open) = transaction_effect(sql) {
                self.in_transaction.set(open);
            }
        }
        Ok(result?)
    }

    pub(super) fn last_value(&self) -> Result<i64> {
        // Prepared once: by its text, every call would be two round trips
        // (Parse, then Bind and Execute).
        let stmt = self.prepare("SELECT lastval()")?;
        let row = self.client.borrow_mut().query_one(&stmt.statement, &[])?;
        Ok(row.try_get(0)?)
    }

    /// Runs `f` with the client itself (LISTEN, notifications, COPY).
    pub(crate) fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> T) -> T {
        f(&mut self.client.borrow_mut())
    }
}

/// A prepared statement and what it does to the transaction.
#[derive(Clone)]
pub(crate) struct PgStatement {
    statement: Statement,
    /// `Some(true)` for `BEGIN`, `Some(false)` for `COMMIT` or `ROLLBACK`.
    transaction: Option<bool>,
}

/// Whether `sql` opens (`Some(true)`) or ends (`Some(false)`) a
/// transaction; for statements separated by `;`, the last of them that
/// does either (`BEGIN; SELECT ...` opens, `NOTIFY x; COMMIT` ends).
fn transaction_effect(sql: &str) -> Option<bool> {
    sql.split(';').filter_map(statement_effect).next_back()
}

/// [`transaction_effect`] of one statement.
fn statement_effect(sql: &str) -> Option<bool> {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    match words.first().map(String::as_str) {
        Some("BEGIN" | "START") => Some(true),
        Some("COMMIT" | "END") => Some(false),
        Some("ROLLBACK") if words.get(1).map(String::as_str) != Some("TO") => Some(false),
        _ => None,
    }
}

/// A parameter type PostgreSQL is to infer (OID 0 in the Parse message).
fn inferred() -> Type {
    Type::new(
        "unspecified".into(),
        0,
        postgres::types::Kind::Pseudo,
        "pg_catalog".into(),
    )
}

/// [`numbered_parameters`], and the parameter numbers used.
fn numbered(sql: &str) -> (String, std::collections::BTreeSet<usize>) {
    let text = numbered_parameters(sql);
    let mut used = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            if let Ok(n) = text[start..end].parse::<usize>() {
                used.insert(n);
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    (text, used)
}

/// SQLite's `?N` and `?` parameters as PostgreSQL's `$N`, leaving quoted
/// strings, quoted names and comments alone.
pub(crate) fn numbered_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next_anonymous = 1u32;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        // A doubled quote inside is read as close + open.
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        out.push(d);
                        chars.next();
                    }
                } else {
                    out.push_str(&next_anonymous.to_string());
                    next_anonymous += 1;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// A value bound to a parameter of whatever type PostgreSQL gave it.
#[derive(Debug)]
struct Bind<'a>(ValueRef<'a>);

fn binds<'a>(values: &'a [ValueRef<'a>]) -> Vec<Bind<'a>> {
    values.iter().map(|v| Bind(*v)).collect()
}

fn refs<'a>(binds: &'a [Bind<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect()
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match self.0 {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                Type::OID => u32::try_from(i)?.to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    i.to_string().as_str().to_sql(ty, out)
                }
                _ => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
            },
            ValueRef::Real(r) => match *ty {
                Type::FLOAT8 => r.to_sql(ty, out),
                Type::FLOAT4 => (r as f32).to_sql(ty, out),
                _ => Err(format!("a real cannot be bound to a {ty} parameter").into()),
            },
            ValueRef::Text(t) => match *ty {
                Type::BYTEA => t.as_bytes().to_sql(ty, out),
                _ => t.to_sql(ty, out),
            },
            ValueRef::Blob(b) => match *ty {
                Type::BYTEA => b.to_sql(ty, out),
                _ => std::str::from_utf8(b)?.to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Column `index` of a PostgreSQL row as one of SQLite's storage classes.
pub(super) fn value_of(row: &Row, index: usize) -> Result<ValueRef<'_>> {
    let column = row
        .columns()
        .get(index)
        .ok_or_else(|| Error::Conversion(format!("no column {index}")))?;
    let ty = column.type_().clone();
    let value = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(ValueRef::Integer),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)?
            .map(|i| ValueRef::Integer(i.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)?
            .map(|i| ValueRef::Integer(i.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)?
            .map(|b| ValueRef::Integer(b.into())),
        Type::OID => row
            .try_get::<_, Option<u32>>(index)?
            .map(|i| ValueRef::Integer(i.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(ValueRef::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)?
            .map(|r| ValueRef::Real(r.into())),
        Type::BYTEA => row.try_get::<_, Option<&[u8]>>(index)?.map(ValueRef::Blob),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            row.try_get::<_, Option<&str>>(index)?.map(ValueRef::Text)
        }
        // SUM of integers: an integer unless it has a fraction.
        Type::NUMERIC => row.try_get::<_, Option<Numeric>>(index)?.map(|n| n.0),
        other => {
            return Err(Error::Conversion(format!(
            "column {} has type {other}, which the store does not read (cast it to BIGINT or TEXT)",
            column.name()
        )))
        }
    };
    Ok(value.unwrap_or(ValueRef::Null))
}

/// A NUMERIC read from PostgreSQL's binary form (base-10,000 digits):
/// an integer when it has no fraction and fits, else a real.
struct Numeric(ValueRef<'static>);

impl<'a> postgres::types::FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let word = |i: usize| -> Result<i16, BoxError> {
            raw.get(i * 2..i * 2 + 2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "short NUMERIC".into())
        };
        let (ndigits, weight, sign) = (word(0)?, word(1)?, word(2)? as u16);
        if sign == 0xC000 {
            return Ok(Numeric(ValueRef::Real(f64::NAN)));
        }
        let mut integer: i128 = 0;
        let mut real = 0f64;
        let mut fraction = false;
        for i in 0..usize::try_from(ndigits).unwrap_or(0) {
            let digit = word(4 + i)?;
            let power = i32::from(weight) - i as i32;
            real += f64::from(digit) * 10000f64.powi(power);
            if power >= 0 {
                integer = integer.saturating_add(
                    i128::from(digit).saturating_mul(10000i128.saturating_pow(power as u32)),
                );
            } else if digit != 0 {
                fraction = true;
            }
        }
        if sign == 0x4000 {
            integer = -integer;
            real = -real;
        }
        Ok(Numeric(match i64::try_from(integer) {
            Ok(i) if !fraction => ValueRef::Integer(i),
            _ => ValueRef::Real(real),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_outside_quotes() {
        assert_eq!(
            numbered_parameters("SELECT ?1, ?12 FROM t WHERE a = '?' AND b = ?"),
            "SELECT $1, $12 FROM t WHERE a = '?' AND b = $1"
        );
        assert_eq!(
            numbered_parameters("SELECT \"x?\" -- what?\n, ?2"),
            "SELECT \"x?\" -- what?\n, $2"
        );
        assert_eq!(numbered_parameters("'it''s ?' || ?3"), "'it''s ?' || $3");
    }

    #[test]
    fn transaction_statements_are_recognised() {
        assert_eq!(transaction_effect("BEGIN"), Some(true));
        assert_eq!(
            transaction_effect("begin isolation level repeatable read"),
            Some(true)
        );
        assert_eq!(transaction_effect("COMMIT"), Some(false));
        assert_eq!(transaction_effect("ROLLBACK"), Some(false));
        assert_eq!(transaction_effect("ROLLBACK TO request"), None);
        assert_eq!(transaction_effect("SAVEPOINT request"), None);
        assert_eq!(
            transaction_effect("BEGIN; SELECT pg_advisory_xact_lock(1)"),
            Some(true)
        );
        assert_eq!(transaction_effect("NOTIFY x; COMMIT"), Some(false));
        assert_eq!(transaction_effect("ROLLBACK TO prune; RELEASE prune"), None);
    }
}

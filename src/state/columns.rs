//! Typed values in and out of the state database's text columns.
//!
//! Owns the SQL conversions of the enums and structs rows carry (job kind,
//! trigger, outcome, failure kind, a run's figures), so every reader gets
//! the type back, never a string to compare: a value this build does not
//! know is an error reading the row.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use super::runs::{FailureKind, RunFigures};
use super::{Outcome, Trigger};
use crate::config::JobKind;
use crate::config::values::ScalarValue;

/// `FromSql` and `ToSql` for a type stored as its name: `as_str` writes
/// it, `$parse` (text to `Option<Self>`) reads it back; an unknown name is
/// an error reading the row.
macro_rules! text_column {
    ($type:ty, $parse:expr) => {
        impl FromSql for $type {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                let parse: fn(&str) -> Option<$type> = $parse;
                parse(text)
                    .ok_or_else(|| FromSqlError::Other(format!("unknown value `{text}`").into()))
            }
        }

        impl ToSql for $type {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
    };
}

text_column!(JobKind, |text| JobKind::parse_scalar(text).ok());
text_column!(Trigger, Trigger::parse);
text_column!(Outcome, Outcome::parse);
text_column!(FailureKind, FailureKind::parse);

impl FromSql for RunFigures {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        serde_json::from_str(value.as_str()?).map_err(|e| FromSqlError::Other(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn values_round_trip_and_unknown_text_is_an_error() {
        let conn = Connection::open_in_memory().unwrap();
        let back: (JobKind, Trigger, Outcome, FailureKind) = conn
            .query_row(
                "SELECT ?1, ?2, ?3, ?4",
                rusqlite::params![
                    JobKind::Drill,
                    Trigger::Schedule,
                    Outcome::Failed,
                    FailureKind::DiskFull
                ],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            back,
            (
                JobKind::Drill,
                Trigger::Schedule,
                Outcome::Failed,
                FailureKind::DiskFull
            )
        );
        let figures: RunFigures = conn
            .query_row(
                r#"SELECT '{"bytes":5,"pages_reclaimed":null}'"#,
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(figures.bytes, Some(5));
        let unknown = conn.query_row("SELECT 'teleport'", [], |row| row.get::<_, JobKind>(0));
        assert!(unknown.is_err());
    }
}

//! Adding declared columns (`schema:` in `jobs.yaml`).
//!
//! Owns the only DDL litewarden generates itself: `ALTER TABLE ... ADD
//! COLUMN`, in a `BEGIN IMMEDIATE` transaction that waits `busy_timeout` for
//! the application's writer. It never drops, renames or rewrites anything,
//! and adding a column that already exists is a no-op.

use std::path::Path;

use rusqlite::Connection;

use super::{DbError, sqlite_error};
use crate::config::{ConnectionPragmas, DeclaredColumn};

fn has_column(
    conn: &Connection,
    path: &Path,
    table: &str,
    column: &str,
) -> Result<Option<bool>, DbError> {
    let mut statement = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(sqlite_error(path, "cannot read the schema"))?;
    let names: Vec<String> = statement
        .query_map([table], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .map_err(sqlite_error(path, "cannot read the schema"))?;
    if names.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        names.iter().any(|name| name.eq_ignore_ascii_case(column)),
    ))
}

/// Adds `column` unless it exists; returns whether it was added. A missing
/// table is left alone (`Ok(false)`).
pub fn add(
    path: &Path,
    column: &DeclaredColumn,
    pragmas: &ConnectionPragmas,
) -> Result<bool, DbError> {
    let conn = super::open(path, pragmas)?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(sqlite_error(path, "cannot take the write lock"))?;
    let result = (|| {
        if has_column(&conn, path, &column.table, &column.column)? != Some(false) {
            return Ok(false);
        }
        let sql = format!(
            "ALTER TABLE \"{}\" ADD COLUMN {}",
            column.table,
            column.definition()
        );
        conn.execute_batch(&sql).map_err(sqlite_error(
            path,
            format!("cannot add column {}.{}", column.table, column.column),
        ))?;
        Ok(true)
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn
        .execute_batch(end)
        .map_err(sqlite_error(path, "cannot commit"));
    let added = result?;
    ended?;
    Ok(added)
}

/// Adds every declared column that is missing from an existing table.
pub fn add_missing(
    path: &Path,
    columns: &[DeclaredColumn],
    pragmas: &ConnectionPragmas,
) -> Result<Vec<String>, DbError> {
    let mut added = Vec::new();
    for column in columns {
        if add(path, column, pragmas)? {
            added.push(format!("{}.{}", column.table, column.column));
        }
    }
    Ok(added)
}

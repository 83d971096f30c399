//! Adding declared columns (`schema:` in `jobs.yaml`).
//!
//! Owns the only DDL litewarden generates itself: `ALTER TABLE ... ADD
//! COLUMN`, in a `BEGIN IMMEDIATE` transaction that waits `busy_timeout` for
//! the application's writer. It never drops, renames or rewrites anything,
//! and adding a column that already exists is a no-op.
//!
//! A column definition given as text (the application's
//! `update_schema_safely`, [`add_definitions`]) is parsed by SQLite itself:
//! the `ALTER TABLE ... ADD COLUMN` runs first on an in-memory copy of the
//! table, and only a statement that adds exactly that one column there runs
//! on the database.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

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
    in_write_transaction(path, pragmas, |conn| {
        if has_column(conn, path, &column.table, &column.column)? != Some(false) {
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
    })
}

/// Runs `work` in one `BEGIN IMMEDIATE` transaction on a new connection:
/// committed when it returns `Ok`, rolled back otherwise.
fn in_write_transaction<T>(
    path: &Path,
    pragmas: &ConnectionPragmas,
    work: impl FnOnce(&Connection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let conn = super::open(path, pragmas)?;
    super::begin_immediate(&conn).map_err(sqlite_error(path, "cannot take the write lock"))?;
    let result = work(&conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn
        .execute_batch(end)
        .map_err(sqlite_error(path, "cannot commit"));
    let value = result?;
    ended?;
    Ok(value)
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

/// Adds each column definition (`name TYPE [DEFAULT x] [NOT NULL] ...`, as
/// after `ADD COLUMN`) to `table` unless a column of that name exists, all
/// in one `BEGIN IMMEDIATE` transaction; returns the names added. A missing
/// table, or a definition SQLite refuses on an in-memory copy of the table,
/// is an error and adds nothing.
pub fn add_definitions(
    path: &Path,
    table: &str,
    definitions: &[String],
    pragmas: &ConnectionPragmas,
) -> Result<Vec<String>, DbError> {
    let added = in_write_transaction(path, pragmas, |conn| {
        definitions
            .iter()
            .map(|definition| add_definition(conn, path, table, definition))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(added.into_iter().flatten().collect())
}

fn add_definition(
    conn: &Connection,
    path: &Path,
    table: &str,
    definition: &str,
) -> Result<Option<String>, DbError> {
    let bad = |detail: String| DbError::BadColumn {
        path: path.to_path_buf(),
        table: table.to_string(),
        definition: definition.to_string(),
        detail,
    };
    let read = sqlite_error(path, "cannot read the schema");
    let (name, create): (String, String) = conn
        .query_row(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [table],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(read)?
        .ok_or_else(|| bad(format!("there is no table `{table}`")))?;
    let alter = format!(
        "ALTER TABLE \"{}\" ADD COLUMN {definition}",
        name.replace('"', "\"\"")
    );
    let copy = Connection::open_in_memory().map_err(sqlite_error(path, "cannot open memory"))?;
    copy.execute_batch(&create)
        .map_err(|e| bad(format!("the table cannot be copied to check it: {e}")))?;
    let before = column_names(&copy).map_err(sqlite_error(path, "cannot read the copy"))?;
    match copy.execute(&alter, []) {
        Ok(_) => {}
        Err(e) if e.to_string().starts_with("duplicate column name") => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    }
    let after = column_names(&copy).map_err(sqlite_error(path, "cannot read the copy"))?;
    let added: Vec<&String> = after.iter().filter(|c| !before.contains(c)).collect();
    let [column] = added.as_slice() else {
        return Err(bad("it does not add exactly one column".into()));
    };
    conn.execute(&alter, []).map_err(|e| bad(e.to_string()))?;
    Ok(Some(format!("{name}.{column}")))
}

/// The columns of the only table of an in-memory copy.
fn column_names(copy: &Connection) -> rusqlite::Result<Vec<String>> {
    copy.prepare(
        "SELECT c.name FROM sqlite_schema s, pragma_table_info(s.name) c WHERE s.type = 'table'",
    )?
    .query_map([], |row| row.get(0))?
    .collect()
}

//! Running one migration file's SQL, statement by statement.
//!
//! Owns how a failure is described: the line of the failing statement in
//! the file (from SQLite's error offset for syntax errors, or from the
//! statement's position for runtime errors), a shortened statement and
//! SQLite's message. Statements that return rows (a `PRAGMA`, a `SELECT`)
//! run to completion like any other.

use std::path::Path;

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::{Batch, Connection};

use super::runner::{FailedMigration, MigrateError};
use crate::config::Database;

/// How one migration file failed.
#[derive(Debug)]
pub enum FileFailure {
    /// `BEGIN IMMEDIATE` timed out behind another writer.
    Busy,
    /// A statement failed.
    Statement {
        /// Its line in the file.
        line: usize,
        /// The statement, shortened.
        statement: String,
        /// SQLite's message.
        cause: String,
    },
}

impl FileFailure {
    pub(super) fn sqlite(error: rusqlite::Error) -> Self {
        FileFailure::Statement {
            line: 1,
            statement: "COMMIT".into(),
            cause: error.to_string(),
        }
    }

    pub(super) fn begin(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                FileFailure::Busy
            }
            _ => FileFailure::Statement {
                line: 1,
                statement: "BEGIN IMMEDIATE".into(),
                cause: error.to_string(),
            },
        }
    }

    /// The error for `database`'s file `file`, with what was applied before.
    pub fn into_error(
        self,
        database: &Database,
        file: &Path,
        applied: Vec<String>,
    ) -> MigrateError {
        match self {
            FileFailure::Busy => MigrateError::Busy {
                database: database.name.to_string(),
                waiting_for: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                timeout: database.pragmas.connection.busy_timeout,
                applied,
            },
            FileFailure::Statement {
                line,
                statement,
                cause,
            } => MigrateError::Failed(Box::new(FailedMigration {
                database: database.name.to_string(),
                file: file.to_path_buf(),
                line,
                statement,
                cause,
                applied,
            })),
        }
    }
}

/// Runs each statement of `sql` to completion, reporting the line of the
/// one that fails.
pub(super) fn run_statements(conn: &Connection, sql: &str) -> Result<(), FileFailure> {
    let mut batch = Batch::new(conn, sql);
    let mut cursor = 0;
    loop {
        match batch.next() {
            Ok(Some(mut statement)) => {
                let full = statement.expanded_sql().unwrap_or_default();
                let text = without_leading_comments(&full);
                let start = sql[cursor..].find(text).map_or(cursor, |i| cursor + i);
                cursor = (start + text.len()).min(sql.len());
                let mut rows = statement.raw_query();
                loop {
                    match rows.next() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(error) => {
                            return Err(FileFailure::Statement {
                                line: line_of(sql, start),
                                statement: shorten(text),
                                cause: error.to_string(),
                            });
                        }
                    }
                }
            }
            Ok(None) => return Ok(()),
            Err(rusqlite::Error::SqlInputError {
                msg,
                sql: tail,
                offset,
                ..
            }) => {
                let at = sql.len().saturating_sub(tail.len()) + offset.max(0) as usize;
                let statement = without_leading_comments(&tail)
                    .lines()
                    .next()
                    .unwrap_or_default();
                return Err(FileFailure::Statement {
                    line: line_of(sql, at),
                    statement: shorten(statement),
                    cause: msg,
                });
            }
            Err(error) => {
                let rest = without_leading_comments(&sql[cursor..]);
                let start = sql.len() - sql[cursor..].trim_start().len().max(rest.len());
                let statement = rest.lines().next().unwrap_or_default();
                return Err(FileFailure::Statement {
                    line: line_of(sql, start),
                    statement: shorten(statement),
                    cause: error.to_string(),
                });
            }
        }
    }
}

/// The statement without the comments and blank lines SQLite keeps in
/// front of it.
fn without_leading_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return text.trim_end();
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn shorten(statement: &str) -> String {
    let flat: String = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 80 {
        format!("{}...", flat.chars().take(77).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_is_reported_at_its_line() {
        let conn = Connection::open_in_memory().unwrap();
        let sql = "CREATE TABLE a(x);\n\nCREATE TABLE b(y;\n";
        match run_statements(&conn, sql) {
            Err(FileFailure::Statement {
                line, statement, ..
            }) => {
                assert_eq!(line, 3);
                assert!(statement.starts_with("CREATE TABLE b"), "{statement}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failing_statement_is_quoted_by_its_own_text_not_the_comment_above_it() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE crawled_pages (x);")
            .unwrap();
        let sql = "-- Pages fetched by the crawler\n\nCREATE TABLE crawled_pages (x);\n";
        match run_statements(&conn, sql) {
            Err(FileFailure::Statement {
                line,
                statement,
                cause,
            }) => {
                assert_eq!(statement, "CREATE TABLE crawled_pages (x);", "{cause}");
                assert_eq!(line, 3);
                assert!(cause.contains("already exists"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_runtime_error_names_the_failing_statement_and_line() {
        let conn = Connection::open_in_memory().unwrap();
        let sql = "CREATE TABLE a(x UNIQUE);\nINSERT INTO a VALUES (1);\n-- again\nINSERT INTO a VALUES (1);\n";
        match run_statements(&conn, sql) {
            Err(FileFailure::Statement {
                line,
                statement,
                cause,
            }) => {
                assert_eq!((line, statement.as_str()), (4, "INSERT INTO a VALUES (1);"));
                assert!(cause.contains("UNIQUE"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statements_that_return_rows_run_to_completion() {
        let conn = Connection::open_in_memory().unwrap();
        run_statements(
            &conn,
            "PRAGMA journal_mode; CREATE TABLE t(x); SELECT * FROM t;",
        )
        .unwrap();
    }
}

//! What can go wrong in the application's database access, each naming the
//! database and, for SQL, the statement.

use std::path::PathBuf;

/// Longest stretch of SQL an error quotes.
const QUOTED_SQL: usize = 200;

/// An error of [`super::Manager`].
///
/// ```no_run
/// use litewarden::live::{LiveError, Manager};
/// # let db = Manager::open("a.db", Default::default())?;
/// match db.execute("INSERT INTO nowhere VALUES (1)", []) {
///     Err(LiveError::Sql { sql, source, .. }) => eprintln!("{sql}: {source}"),
///     other => { other?; }
/// }
/// # Ok::<(), LiveError>(())
/// ```
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// SQLite refused a statement.
    #[error("{database}: {}", with_sql(source, sql))]
    Sql {
        /// The database.
        database: String,
        /// The statement (shortened).
        sql: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A row did not fit the type asked for.
    #[error("{database}: a row of `{sql}` does not fit: {source}")]
    Decode {
        /// The database.
        database: String,
        /// The statement (shortened).
        sql: String,
        /// What did not fit.
        #[source]
        source: serde_json::Error,
    },
    /// Every reader was checked out for longer than `connection_timeout`.
    #[error(
        "{database}: connection pool exhausted: all {size} connections are checked out ({in_use} in use) and none came back within {waited_ms} ms; raise pool_size or return connections sooner"
    )]
    PoolExhausted {
        /// The database.
        database: String,
        /// The pool's size.
        size: u32,
        /// Connections checked out when the wait ended.
        in_use: u32,
        /// How long the read waited.
        waited_ms: u64,
    },
    /// An open [`super::OwnedTransaction`] kept the writer past
    /// `busy_timeout`.
    #[error(
        "{database}: the writer is held by an open transaction and was not given back within {waited_ms} ms; commit or roll it back first (writing outside it from the same thread waits for itself)"
    )]
    WriterHeld {
        /// The database.
        database: String,
        /// How long the write waited.
        waited_ms: u64,
    },
    /// A statement run through [`super::Manager::execute`] opened a
    /// transaction (`BEGIN`, `SAVEPOINT`) that would outlive it on the shared
    /// writer; it was rolled back.
    #[error(
        "{database}: `{sql}` opened a transaction on the shared writer and was rolled back; use Manager::begin or Manager::transaction (Python: with db.transaction() as tx:, or db.execute(\"BEGIN\") ... db.execute(\"COMMIT\") from one thread)"
    )]
    TransactionLeftOpen {
        /// The database.
        database: String,
        /// The statement (shortened).
        sql: String,
    },
    /// The file cannot be used as a database.
    #[error("{}: {detail}", crate::paths::display(.path))]
    Open {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// `backup_to` could not write its copy.
    #[error("{}: {detail}", crate::paths::display(.path))]
    Copy {
        /// The copy's path.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// `from_config` named a database `jobs.yaml` does not declare.
    #[error("no database `{name}` in jobs.yaml (it declares: {})", .known.join(", "))]
    UnknownDatabase {
        /// The name asked for.
        name: String,
        /// The names declared.
        known: Vec<String>,
    },
    /// `run_pending_migrations` on a database without `migrations:`.
    #[error(
        "{database}: no migrations directory is configured (set migrations_dir, or migrations: in jobs.yaml)"
    )]
    NoMigrations {
        /// The database.
        database: String,
    },
    /// A column to add was not a plain identifier and type.
    #[error("{database}: cannot add column {table}.{column}: {detail}")]
    BadColumn {
        /// The database.
        database: String,
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// What is wrong.
        detail: String,
    },
    /// SQLite failed on a statement of the manager's own.
    #[error("{source}")]
    Sqlite {
        /// SQLite's error.
        #[from]
        source: rusqlite::Error,
    },
    /// The backup engine failed.
    #[error(transparent)]
    Backup(#[from] crate::jobs::backup::BackupError),
    /// The migration engine failed.
    #[error(transparent)]
    Migrate(#[from] crate::jobs::migrations::runner::MigrateError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Reading or changing the file failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// Another litewarden manages the file.
    #[error(transparent)]
    Lock(#[from] crate::db::lock::LockError),
    /// The configuration could not be built or used.
    #[error("{0}")]
    Config(String),
}

impl From<crate::jobs::run::RunError> for LiveError {
    fn from(error: crate::jobs::run::RunError) -> Self {
        use crate::jobs::run::RunError;
        match error {
            RunError::Backup(error) => LiveError::Backup(error),
            RunError::Optimize(error) => LiveError::Db(error),
            RunError::State(error) => LiveError::State(error),
            failed @ RunError::DrillFailed(_) => LiveError::Config(failed.to_string()),
            offsite @ RunError::Offsite(_) => LiveError::Config(offsite.to_string()),
        }
    }
}

/// SQLite's message, then the statement unless the message quotes it.
fn with_sql(source: &rusqlite::Error, sql: &str) -> String {
    let message = match source {
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    format!("{message} in `{sql}`")
}

/// `sql` on one line, at most [`QUOTED_SQL`] characters.
pub(super) fn quote(sql: &str) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > QUOTED_SQL {
        format!(
            "{}...",
            flat.chars().take(QUOTED_SQL - 3).collect::<String>()
        )
    } else {
        flat
    }
}

/// A SQLite value as JSON (blobs as arrays of bytes).
pub(super) fn json_value(value: rusqlite::types::Value) -> serde_json::Value {
    use rusqlite::types::Value;
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => i.into(),
        Value::Real(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Text(text) => text.into(),
        Value::Blob(bytes) => bytes.into(),
    }
}

//! Running migrations against a live database.
//!
//! Owns the tracking table `_litewarden_migrations` inside each managed
//! database and every write to it. Each migration file and its tracking row
//! commit in one `BEGIN IMMEDIATE` transaction, waiting up to the database's
//! `busy_timeout` for the application's writer; a failure rolls the whole
//! file back and stops the run, naming the file, the line and the statement.
//! Foreign keys are switched off before `BEGIN` (so table rebuilds work) and
//! `foreign_key_check` runs before `COMMIT`. A file starting with
//! `-- litewarden:no-transaction` runs outside a transaction. Two migrators
//! never interleave: an advisory lock file beside the database is held for
//! the whole run. It is an `flock` (what std's `File::try_lock` is on
//! Unix), which belongs to an open file description, so it excludes a
//! second migrator on another thread of the same process as well as one in
//! another process. `PRAGMA user_version` mirrors the newest version when it
//! fits SQLite's 32-bit field (sqlx's timestamp versions do not).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use super::files::{self, FilesError};
use super::statements::{FileFailure, run_statements};
use super::{AppliedMigration, MigrationFile, MigrationStatus, compare};
use crate::config::{Database, Migrations};

/// Name of the tracking table in each managed database.
pub const TRACKING_TABLE: &str = "_litewarden_migrations";

const CREATE_TRACKING: &str = "CREATE TABLE IF NOT EXISTS _litewarden_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    backup_path TEXT,
    lock_ms INTEGER,
    wal_growth INTEGER
)";

/// Why migrations did not run (completely).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The migrations directory is unusable.
    #[error("database `{database}`: {source}")]
    Files {
        /// The database.
        database: String,
        /// The cause.
        #[source]
        source: FilesError,
    },
    /// Applied files were edited or new files are out of order.
    #[error("database `{database}`: {}", .problems.join("; "))]
    Invalid {
        /// The database.
        database: String,
        /// Every problem.
        problems: Vec<String>,
    },
    /// SQLite failed outside a migration's own SQL.
    #[error("database `{database}`: {action}: {source}")]
    Sqlite {
        /// The database.
        database: String,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The application held the write lock longer than `busy_timeout`.
    #[error("database `{database}` is busy: another connection held the write lock longer than busy_timeout ({}) while {waiting_for} waited; it was not applied and runs again next time{}", humantime::format_duration(*.timeout), applied_note(.applied))]
    Busy {
        /// The database.
        database: String,
        /// What waited: a migration file or the tracking table.
        waiting_for: String,
        /// The wait.
        timeout: Duration,
        /// Migrations applied before in this run.
        applied: Vec<String>,
    },
    /// The database file does not exist yet.
    #[error("database `{database}`: {} does not exist; create it with `litewarden apply`", crate::paths::display(.path))]
    NoDatabase {
        /// The database.
        database: String,
        /// Its path.
        path: PathBuf,
    },
    /// Another migration of the same database is running.
    #[error("database `{database}`: another migration is running (lock {} held); try again when it finishes", crate::paths::display(.lock))]
    Locked {
        /// The database.
        database: String,
        /// The lock file.
        lock: PathBuf,
    },
    /// A migration's SQL failed; it was rolled back and later ones were not tried.
    #[error("database `{}`: {}:{}: {} (in `{}`); the migration was rolled back{}", .0.database, crate::paths::display(&.0.file), .0.line, .0.cause, .0.statement, applied_note(&.0.applied))]
    Failed(Box<FailedMigration>),
    /// A migration can not be reverted.
    #[error("database `{database}`: {file} has no .down.sql, so it cannot be reverted")]
    NoDown {
        /// The database.
        database: String,
        /// The migration.
        file: String,
    },
    /// The pre-migration backup failed, so nothing was migrated.
    #[error("no migration was run: {0}")]
    Backup(#[source] Box<crate::jobs::backup::BackupError>),
    /// The state database failed.
    #[error(transparent)]
    State(Box<crate::state::StateError>),
    /// The lock file could not be opened.
    #[error("database `{database}`: {}: {source}", crate::paths::display(.path))]
    Io {
        /// The database.
        database: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where and why a migration failed.
#[derive(Debug)]
pub struct FailedMigration {
    /// The database.
    pub database: String,
    /// The failing file.
    pub file: PathBuf,
    /// Line of the failing statement in the file.
    pub line: usize,
    /// The failing statement, shortened.
    pub statement: String,
    /// SQLite's message.
    pub cause: String,
    /// Migrations applied before the failure in this run.
    pub applied: Vec<String>,
}

fn applied_note(applied: &[String]) -> String {
    if applied.is_empty() {
        String::new()
    } else {
        format!(" (applied before it: {})", applied.join(", "))
    }
}

/// One migration this run applied.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// `0002_add_priority`.
    pub migration: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Time the write lock was held, in milliseconds.
    pub lock_ms: u64,
    /// Growth of the `-wal` file in bytes.
    pub wal_growth: i64,
}

/// A migration session on one database: holds the lock file and the
/// connection.
pub struct Session<'a> {
    database: &'a Database,
    conn: Connection,
    _lock: File,
}

/// Opens the database (creating nothing), takes the migration lock within
/// `busy_timeout`, and creates the tracking table (importing an existing
/// sqlx or refinery history the first time).
pub fn session(database: &Database) -> Result<Session<'_>, MigrateError> {
    let name = database.name.to_string();
    if !database.path.exists() {
        return Err(MigrateError::NoDatabase {
            database: name,
            path: database.path.clone(),
        });
    }
    let lock_path = crate::db::schema_lock::path(&database.path);
    let lock = match crate::db::schema_lock::take(
        &database.path,
        database.pragmas.connection.busy_timeout,
    ) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            return Err(MigrateError::Locked {
                database: name,
                lock: lock_path,
            });
        }
        Err(source) => {
            return Err(MigrateError::Io {
                database: name,
                path: lock_path,
                source,
            });
        }
    };
    let conn = crate::db::open(&database.path, &database.pragmas.connection).map_err(|e| {
        MigrateError::Sqlite {
            database: name.clone(),
            action: "cannot open",
            source: match e {
                crate::db::DbError::Sqlite { source, .. } => source,
                other => rusqlite::Error::InvalidPath(PathBuf::from(other.to_string())),
            },
        }
    })?;
    let session = Session {
        database,
        conn,
        _lock: lock,
    };
    session.ensure_tracking_table()?;
    Ok(session)
}

/// The applied migrations of `database` without changing anything (an
/// existing sqlx or refinery history counts as applied).
pub fn read_applied_read_only(path: &Path) -> Result<Vec<AppliedMigration>, rusqlite::Error> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    crate::db::observe::roll_back_hot_journal(path);
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    if table_exists(&conn, TRACKING_TABLE)? {
        read_tracking(&conn)
    } else {
        foreign_history(&conn)
    }
}

/// The migration files of `database`, in version order.
pub fn discover(
    database: &Database,
    migrations: &Migrations,
) -> Result<Vec<MigrationFile>, MigrateError> {
    files::discover(&migrations.dir).map_err(|source| MigrateError::Files {
        database: database.name.to_string(),
        source,
    })
}

/// Status of `database`'s migrations against its directory.
pub fn status(
    database: &Database,
    migrations: &Migrations,
) -> Result<MigrationStatus, MigrateError> {
    let name = database.name.to_string();
    let files = discover(database, migrations)?;
    let applied =
        read_applied_read_only(&database.path).map_err(|source| MigrateError::Sqlite {
            database: name,
            action: "cannot read the tracking table",
            source,
        })?;
    Ok(compare(&applied, &files, migrations.allow_out_of_order))
}

fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        params![table],
        |_| Ok(()),
    )
    .optional()
    .map(|row| row.is_some())
}

fn read_tracking(conn: &Connection) -> rusqlite::Result<Vec<AppliedMigration>> {
    let mut statement = conn.prepare(
        "SELECT version, name, checksum, applied_at, duration_ms, backup_path FROM _litewarden_migrations ORDER BY version",
    )?;
    statement
        .query_map([], |row| {
            Ok(AppliedMigration {
                version: row.get(0)?,
                name: row.get(1)?,
                checksum: row.get(2)?,
                applied_at: row.get(3)?,
                duration_ms: row.get(4)?,
                backup_path: row.get(5)?,
            })
        })?
        .collect()
}

/// Rows of an sqlx (`_sqlx_migrations`) or refinery
/// (`refinery_schema_history`) history; their checksums use other
/// algorithms, so they are marked `imported` and adopt the file's checksum
/// when imported.
fn foreign_history(conn: &Connection) -> rusqlite::Result<Vec<AppliedMigration>> {
    let query = if table_exists(conn, "_sqlx_migrations")? {
        "SELECT version, description, CAST(installed_on AS TEXT) FROM _sqlx_migrations WHERE success ORDER BY version"
    } else if table_exists(conn, "refinery_schema_history")? {
        "SELECT version, name, applied_on FROM refinery_schema_history ORDER BY version"
    } else {
        return Ok(Vec::new());
    };
    let mut statement = conn.prepare(query)?;
    statement
        .query_map([], |row| {
            Ok(AppliedMigration {
                version: row.get(0)?,
                name: row.get(1)?,
                checksum: super::IMPORTED_CHECKSUM.into(),
                applied_at: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                duration_ms: 0,
                backup_path: None,
            })
        })?
        .collect()
}

impl Session<'_> {
    fn name(&self) -> String {
        self.database.name.to_string()
    }

    fn sqlite(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> MigrateError + '_ {
        move |source| MigrateError::Sqlite {
            database: self.name(),
            action,
            source,
        }
    }

    fn ensure_tracking_table(&self) -> Result<(), MigrateError> {
        if table_exists(&self.conn, TRACKING_TABLE)
            .map_err(self.sqlite("cannot read the schema"))?
        {
            return Ok(());
        }
        let imported = foreign_history(&self.conn)
            .map_err(self.sqlite("cannot read an existing migration history"))?;
        let tx = self
            .conn
            .unchecked_transaction()
            .and_then(|tx| tx.execute_batch(CREATE_TRACKING).map(|()| tx))
            .map_err(|source| match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    MigrateError::Busy {
                        database: self.name(),
                        waiting_for: "the tracking table".into(),
                        timeout: self.database.pragmas.connection.busy_timeout,
                        applied: Vec::new(),
                    }
                }
                _ => MigrateError::Sqlite {
                    database: self.name(),
                    action: "cannot create the tracking table",
                    source,
                },
            })?;
        for row in &imported {
            tx.execute(
                "INSERT INTO _litewarden_migrations (version, name, checksum, applied_at, duration_ms) VALUES (?1, ?2, ?3, ?4, 0)",
                params![row.version, row.name, row.checksum, row.applied_at],
            )
            .map_err(self.sqlite("cannot import the existing migration history"))?;
        }
        tx.commit()
            .map_err(self.sqlite("cannot create the tracking table"))?;
        if !imported.is_empty() {
            tracing::info!(db = %self.database.name, rows = imported.len(), "imported an existing migration history");
        }
        Ok(())
    }

    /// Whether the database holds nothing but the tracking table (a new
    /// database: a backup before migrating it would be empty).
    pub fn is_empty(&self) -> Result<bool, MigrateError> {
        let objects: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name <> '_litewarden_migrations' AND name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(self.sqlite("cannot read the schema"))?;
        Ok(objects == 0)
    }

    /// The applied rows.
    pub fn applied(&self) -> Result<Vec<AppliedMigration>, MigrateError> {
        read_tracking(&self.conn).map_err(self.sqlite("cannot read the tracking table"))
    }

    /// Compares with `files`; imported rows adopt their file's checksum.
    pub fn status(
        &self,
        files: &[MigrationFile],
        allow_out_of_order: bool,
    ) -> Result<MigrationStatus, MigrateError> {
        for file in files {
            self.conn
                .execute(
                    "UPDATE _litewarden_migrations SET checksum = ?2 WHERE version = ?1 AND checksum = ?3",
                    params![file.version, file.checksum, super::IMPORTED_CHECKSUM],
                )
                .map_err(self.sqlite("cannot update the tracking table"))?;
        }
        Ok(compare(&self.applied()?, files, allow_out_of_order))
    }

    /// Applies `file`, recording `backup` on its row.
    pub fn apply(
        &self,
        file: &MigrationFile,
        backup: Option<&Path>,
        now: DateTime<Utc>,
    ) -> Result<Applied, FileFailure> {
        let started = Instant::now();
        let wal_before = wal_size(&self.database.path);
        let foreign_keys = self
            .database
            .pragmas
            .connection
            .foreign_keys
            .unwrap_or(false);
        let conn = &self.conn;
        conn.execute_batch("PRAGMA foreign_keys = OFF")
            .map_err(FileFailure::sqlite)?;
        let lock_start;
        if file.no_transaction {
            run_statements(conn, &file.sql)?;
            lock_start = Instant::now();
            crate::db::begin_immediate(conn).map_err(FileFailure::begin)?;
        } else {
            crate::db::begin_immediate(conn).map_err(FileFailure::begin)?;
            lock_start = Instant::now();
            if let Err(failure) = run_statements(conn, &file.sql) {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(failure);
            }
        }
        let result = (|| {
            let violations: i64 = conn
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .map_err(FileFailure::sqlite)?;
            if violations > 0 {
                return Err(FileFailure::Statement {
                    line: 1,
                    statement: "PRAGMA foreign_key_check".into(),
                    cause: format!("{violations} foreign key violation(s) after the migration"),
                });
            }
            let duration_ms = started.elapsed().as_millis() as i64;
            conn.execute(
                "INSERT INTO _litewarden_migrations (version, name, checksum, applied_at, duration_ms, backup_path, lock_ms, wal_growth)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (version) DO UPDATE SET name = excluded.name, checksum = excluded.checksum, applied_at = excluded.applied_at,
                   duration_ms = excluded.duration_ms, backup_path = excluded.backup_path",
                params![
                    file.version,
                    file.name,
                    file.checksum,
                    now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    duration_ms,
                    backup.map(|p| p.to_string_lossy().into_owned()),
                    lock_start.elapsed().as_millis() as i64,
                    wal_size(&self.database.path) as i64 - wal_before as i64,
                ],
            )
            .map_err(FileFailure::sqlite)?;
            self.mirror_user_version()?;
            conn.execute_batch("COMMIT").map_err(FileFailure::sqlite)
        })();
        if result.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let lock_ms = lock_start.elapsed().as_millis() as u64;
        let _ = conn.pragma_update(None, "foreign_keys", foreign_keys);
        result?;
        Ok(Applied {
            migration: file.to_string(),
            duration_ms: started.elapsed().as_millis() as u64,
            lock_ms,
            wal_growth: wal_size(&self.database.path) as i64 - wal_before as i64,
        })
    }

    /// Reverts `file` with its `.down.sql` and removes its row.
    pub fn revert(&self, file: &MigrationFile, down_sql: &str) -> Result<(), FileFailure> {
        let conn = &self.conn;
        conn.execute_batch("PRAGMA foreign_keys = OFF")
            .map_err(FileFailure::sqlite)?;
        crate::db::begin_immediate(conn).map_err(FileFailure::begin)?;
        let result = run_statements(conn, down_sql).and_then(|()| {
            conn.execute(
                "DELETE FROM _litewarden_migrations WHERE version = ?1",
                params![file.version],
            )
            .map_err(FileFailure::sqlite)?;
            self.mirror_user_version()?;
            conn.execute_batch("COMMIT").map_err(FileFailure::sqlite)
        });
        if result.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let _ = conn.pragma_update(
            None,
            "foreign_keys",
            self.database
                .pragmas
                .connection
                .foreign_keys
                .unwrap_or(false),
        );
        result
    }

    fn mirror_user_version(&self) -> Result<(), FileFailure> {
        let newest: Option<i64> = self
            .conn
            .query_row("SELECT max(version) FROM _litewarden_migrations", [], |r| {
                r.get(0)
            })
            .map_err(FileFailure::sqlite)?;
        let value = newest.unwrap_or(0);
        if let Ok(value) = i32::try_from(value) {
            self.conn
                .pragma_update(None, "user_version", value)
                .map_err(FileFailure::sqlite)?;
        }
        Ok(())
    }

    /// Accepts the current checksum of every modified file.
    pub fn repair(&self, files: &[MigrationFile]) -> Result<Vec<String>, MigrateError> {
        let mut repaired = Vec::new();
        for row in self.applied()? {
            if let Some(file) = files
                .iter()
                .find(|f| f.version == row.version && f.checksum != row.checksum)
            {
                self.conn
                    .execute(
                        "UPDATE _litewarden_migrations SET checksum = ?2 WHERE version = ?1",
                        params![row.version, file.checksum],
                    )
                    .map_err(self.sqlite("cannot update the tracking table"))?;
                repaired.push(format!("{file}: {} -> {}", row.checksum, file.checksum));
            }
        }
        Ok(repaired)
    }

    /// Records every file up to `version` as applied without running it.
    pub fn baseline(
        &self,
        files: &[MigrationFile],
        version: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, MigrateError> {
        let mut recorded = Vec::new();
        for file in files.iter().filter(|f| f.version <= version) {
            let inserted = self
                .conn
                .execute(
                    "INSERT OR IGNORE INTO _litewarden_migrations (version, name, checksum, applied_at, duration_ms) VALUES (?1, ?2, ?3, ?4, 0)",
                    params![file.version, file.name, file.checksum, now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)],
                )
                .map_err(self.sqlite("cannot update the tracking table"))?;
            if inserted > 0 {
                recorded.push(file.to_string());
            }
        }
        self.mirror_user_version()
            .map_err(|f| f.into_error(self.database, Path::new(""), Vec::new()))?;
        Ok(recorded)
    }
}

fn wal_size(path: &Path) -> u64 {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    std::fs::metadata(PathBuf::from(name))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    fn database(dir: &Path) -> Database {
        std::fs::create_dir(dir.join("migrations")).unwrap();
        Connection::open(dir.join("app.db")).unwrap();
        let text = "version: 1\ndatabases:\n  app: { path: app.db, pragmas: { busy_timeout: 200ms }, migrations: { dir: migrations } }\n";
        let environment = Environment::from_pairs(Vec::<(String, String)>::new());
        let (config, _, _) = crate::config::parse(
            text.as_bytes(),
            "jobs.yaml",
            &dir.join("jobs.yaml"),
            &environment,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        std::sync::Arc::unwrap_or_clone(config.databases.into_values().next().unwrap())
    }

    #[test]
    fn the_lock_also_excludes_a_second_migrator_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let database = database(dir.path());
        let first = session(&database).unwrap();
        let second = std::thread::scope(|scope| {
            scope
                .spawn(|| session(&database).err().map(|e| e.to_string()))
                .join()
                .unwrap()
        });
        let message = second.expect("the second session must not start");
        assert!(
            message.contains("another migration is running"),
            "{message}"
        );
        drop(first);
        assert!(session(&database).is_ok(), "free again once the first ends");
    }
}

//! `plan --rehearse`: pending migrations run on a scratch copy.
//!
//! Owns the rehearsal: copy the latest verified backup (decompressed) when
//! it holds the same applied migrations as the live file, else take a fresh
//! online copy through the backup API, into a temp directory (in WAL mode
//! when the live file is, so WAL growth is measured); run the pending migrations there with the real runner
//! (same transactions, same foreign-key check); report per file the
//! duration, the write-lock time, the WAL growth and any error. Nothing live
//! is touched: no lock on the live database, no catalog row, no job run.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::MigrationFile;
use super::runner::{self, MigrateError};
use crate::config::{BackupMethod, Database, Migrations};
use crate::jobs::copy::Source;
use crate::jobs::progress::Quiet;
use crate::jobs::verify;
use crate::state::StateDb;
use crate::store::Store;

/// What the scratch copy was made from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum RehearsalSource {
    /// The newest verified backup.
    Backup(PathBuf),
    /// An online copy of the live file.
    LiveCopy(PathBuf),
}

/// The outcome of one rehearsed migration.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsed {
    /// `0002_add_priority`.
    pub migration: String,
    /// Wall time, ms (None when it failed).
    pub duration_ms: Option<u64>,
    /// Write-lock time, ms.
    pub lock_ms: Option<u64>,
    /// WAL growth, bytes.
    pub wal_growth: Option<i64>,
    /// The error, if it failed (later files are not run).
    pub error: Option<String>,
}

/// A rehearsal of one database.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    /// The database.
    pub database: String,
    /// Where the scratch copy came from.
    pub source: RehearsalSource,
    /// Every pending migration that ran, in order.
    pub migrations: Vec<Rehearsed>,
}

impl Rehearsal {
    /// Whether every pending migration passed.
    pub fn passed(&self) -> bool {
        self.migrations.iter().all(|m| m.error.is_none())
    }
}

/// Rehearses the pending migrations of `database`; `None` when nothing is
/// pending or the database does not exist yet.
pub fn rehearse(
    database: &Database,
    migrations: &Migrations,
    state: Option<&StateDb>,
    store: &dyn Store,
    clock: &dyn crate::clock::Clock,
) -> Result<Option<Rehearsal>, MigrateError> {
    let name = database.name.to_string();
    let status = runner::status(database, migrations)?;
    if status.pending().is_empty() || !database.path.exists() {
        return Ok(None);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        let name = name.clone();
        move |source| MigrateError::Io {
            database: name,
            path,
            source,
        }
    };
    let scratch_dir = tempfile::tempdir().map_err(io(Path::new("temp dir")))?;
    let scratch_path = scratch_dir.path().join(format!("{name}.db"));
    let latest = match state {
        Some(state) => crate::jobs::manifest::latest_verified(state, store, &name)
            .map_err(|e| MigrateError::State(Box::new(e)))?,
        None => None,
    };
    let live_versions = applied_versions(&database.path, &name)?;
    let mut from_backup = None;
    if let Some(backup) = latest {
        let place = store.location(&backup.key);
        let unreadable = |detail: String| MigrateError::Io {
            database: name.clone(),
            path: place.clone(),
            source: std::io::Error::other(detail),
        };
        let fetched = store
            .fetch(&backup.key)
            .map_err(|e| unreadable(e.to_string()))?;
        let plain = verify::plain_copy(fetched.path(), scratch_dir.path(), &mut Quiet)
            .map_err(|e| unreadable(e.to_string()))?;
        if applied_versions(plain.path(), &name)? == live_versions {
            std::fs::copy(plain.path(), &scratch_path).map_err(io(&scratch_path))?;
            from_backup = Some(place);
        }
    }
    let source = match from_backup {
        Some(path) => RehearsalSource::Backup(path),
        None => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&scratch_path)
                .map_err(io(&scratch_path))?;
            Source::open(
                &database.path,
                BackupMethod::Api,
                &database.pragmas.connection,
            )
            .and_then(|source| source.copy_to(&file, &scratch_path, &mut Quiet))
            .map_err(|e| MigrateError::Io {
                database: name.clone(),
                path: database.path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            RehearsalSource::LiveCopy(database.path.clone())
        }
    };
    let live_is_wal = matches!(
        crate::db::observe::observe_file(&database.path),
        Ok(crate::plan::ObservedFile::Present(facts)) if facts.wal
    );
    if live_is_wal {
        rusqlite::Connection::open(&scratch_path)
            .and_then(|conn| conn.pragma_update(None, "journal_mode", "wal"))
            .map_err(|source| MigrateError::Sqlite {
                database: name.clone(),
                action: "cannot prepare the scratch copy",
                source,
            })?;
    }
    let mut scratch = database.clone();
    scratch.path = scratch_path;
    let files = runner::discover(database, migrations)?;
    let session = runner::session(&scratch)?;
    let pending: Vec<MigrationFile> = session
        .status(&files, migrations.allow_out_of_order)?
        .pending()
        .into_iter()
        .cloned()
        .collect();
    let mut results = Vec::new();
    for file in &pending {
        match session.apply(file, None, clock.now()) {
            Ok(applied) => results.push(Rehearsed {
                migration: applied.migration,
                duration_ms: Some(applied.duration_ms),
                lock_ms: Some(applied.lock_ms),
                wal_growth: Some(applied.wal_growth),
                error: None,
            }),
            Err(failure) => {
                let error = failure
                    .into_error(&scratch, &file.path, Vec::new())
                    .to_string();
                results.push(Rehearsed {
                    migration: file.to_string(),
                    duration_ms: None,
                    lock_ms: None,
                    wal_growth: None,
                    error: Some(error),
                });
                break;
            }
        }
    }
    Ok(Some(Rehearsal {
        database: name,
        source,
        migrations: results,
    }))
}

/// The applied versions recorded in the database at `path`.
fn applied_versions(path: &Path, database: &str) -> Result<Vec<i64>, MigrateError> {
    runner::read_applied_read_only(path)
        .map(|rows| rows.into_iter().map(|row| row.version).collect())
        .map_err(|source| MigrateError::Sqlite {
            database: database.to_string(),
            action: "cannot read the tracking table",
            source,
        })
}

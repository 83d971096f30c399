//! Migrations: versioned SQL files applied in order, each with its tracking
//! row in one transaction.
//!
//! Owns the migration types and [`compare`], the pure check of what is
//! applied against what is on disk (refinery's `verify_migrations`):
//! applied, pending, modified (checksum differs), missing (applied, file
//! gone) and out of order (a new file older than the newest applied one).
//! File discovery is in [`files`], execution in [`runner`].

pub mod detect;
pub mod files;
pub mod rehearse;
pub mod runner;
pub mod statements;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A migration file on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationFile {
    /// Leading integer of the file name.
    pub version: i64,
    /// Name part of the file name.
    pub name: String,
    /// The `.sql` (or `.up.sql`) file.
    pub path: PathBuf,
    /// The matching `.down.sql`, if any.
    pub down: Option<PathBuf>,
    /// SHA-256 of the file, CRLF normalised and BOM stripped.
    pub checksum: String,
    /// The SQL text.
    #[serde(skip)]
    pub sql: String,
    /// Starts with `-- litewarden:no-transaction`.
    pub no_transaction: bool,
}

/// The content of a migrations directory as one value (each file's version
/// and checksum, hashed): an operator hold lapses when it changes.
pub fn fingerprint(files: &[MigrationFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(format!("{}:{}\n", file.version, file.checksum));
    }
    format!("{:x}", hasher.finalize())
}

impl fmt::Display for MigrationFile {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:04}_{}", self.version, self.name)
    }
}

/// A row of the tracking table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedMigration {
    /// Version.
    pub version: i64,
    /// Name.
    pub name: String,
    /// Checksum recorded when applied.
    pub checksum: String,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// How long it ran.
    pub duration_ms: i64,
    /// The pre-migration backup taken before its run, if any.
    pub backup_path: Option<String>,
}

/// The state of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Entry {
    /// Applied, file unchanged.
    Applied {
        /// The file.
        file: MigrationFile,
        /// Its row.
        row: AppliedMigration,
    },
    /// Not applied yet.
    Pending {
        /// The file.
        file: MigrationFile,
    },
    /// Applied, but the file changed since (an error until `migrate repair`).
    Modified {
        /// The file.
        file: MigrationFile,
        /// Its row.
        row: AppliedMigration,
    },
    /// Applied, but the file is gone (a warning).
    Missing {
        /// Its row.
        row: AppliedMigration,
    },
    /// Not applied and older than the newest applied one (an error unless
    /// `allow_out_of_order`).
    OutOfOrder {
        /// The file.
        file: MigrationFile,
    },
}

impl Entry {
    /// The version.
    pub fn version(&self) -> i64 {
        match self {
            Entry::Applied { row, .. } | Entry::Modified { row, .. } | Entry::Missing { row } => {
                row.version
            }
            Entry::Pending { file } | Entry::OutOfOrder { file } => file.version,
        }
    }
}

/// Every version known from the tracking table or the directory, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    /// The entries, by version.
    pub entries: Vec<Entry>,
}

impl MigrationStatus {
    /// Files to apply, in order (including out-of-order ones when allowed).
    pub fn pending(&self) -> Vec<&MigrationFile> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Pending { file } => Some(file),
                _ => None,
            })
            .collect()
    }

    /// Problems that forbid running: modified and out-of-order files.
    pub fn errors(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Modified { file, row } => Some(format!(
                    "{}: checksum mismatch: applied as {}, the file is now {} (restore the file, or accept the edit with `litewarden migrate repair`)",
                    crate::paths::display(&file.path),
                    row.checksum,
                    file.checksum
                )),
                Entry::OutOfOrder { file } => Some(format!(
                    "{}: version {} is older than the newest applied migration (out of order; rename it with a newer version, or set migrations.allow_out_of_order: true)",
                    crate::paths::display(&file.path),
                    file.version
                )),
                _ => None,
            })
            .collect()
    }

    /// Applied rows whose file is gone.
    pub fn missing(&self) -> Vec<&AppliedMigration> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Missing { row } => Some(row),
                _ => None,
            })
            .collect()
    }
}

/// Checksum of rows imported from an sqlx or refinery history (their own
/// checksums use other algorithms); such a row matches its file and adopts
/// the file's checksum on the next run.
pub const IMPORTED_CHECKSUM: &str = "imported";

/// Compares the tracking rows with the files on disk.
pub fn compare(
    applied: &[AppliedMigration],
    files: &[MigrationFile],
    allow_out_of_order: bool,
) -> MigrationStatus {
    let newest_applied = applied.iter().map(|row| row.version).max();
    let mut entries: Vec<Entry> = files
        .iter()
        .map(
            |file| match applied.iter().find(|row| row.version == file.version) {
                Some(row) if row.checksum == file.checksum || row.checksum == IMPORTED_CHECKSUM => {
                    Entry::Applied {
                        file: file.clone(),
                        row: row.clone(),
                    }
                }
                Some(row) => Entry::Modified {
                    file: file.clone(),
                    row: row.clone(),
                },
                None if !allow_out_of_order
                    && newest_applied.is_some_and(|newest| file.version < newest) =>
                {
                    Entry::OutOfOrder { file: file.clone() }
                }
                None => Entry::Pending { file: file.clone() },
            },
        )
        .collect();
    entries.extend(
        applied
            .iter()
            .filter(|row| !files.iter().any(|file| file.version == row.version))
            .map(|row| Entry::Missing { row: row.clone() }),
    );
    entries.sort_by_key(Entry::version);
    MigrationStatus { entries }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: i64, checksum: &str) -> MigrationFile {
        MigrationFile {
            version,
            name: format!("m{version}"),
            path: PathBuf::from(format!("{version}_m{version}.sql")),
            down: None,
            checksum: checksum.into(),
            sql: String::new(),
            no_transaction: false,
        }
    }

    fn row(version: i64, checksum: &str) -> AppliedMigration {
        AppliedMigration {
            version,
            name: format!("m{version}"),
            checksum: checksum.into(),
            applied_at: "2026-11-29T00:00:00Z".into(),
            duration_ms: 1,
            backup_path: None,
        }
    }

    #[test]
    fn new_files_after_the_applied_ones_are_pending_in_order() {
        let status = compare(
            &[row(1, "a")],
            &[file(3, "c"), file(1, "a"), file(2, "b")],
            false,
        );
        assert_eq!(
            status
                .pending()
                .iter()
                .map(|f| f.version)
                .collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(status.errors().is_empty());
    }

    #[test]
    fn aborts_on_divergent_migration() {
        let status = compare(&[row(1, "a")], &[file(1, "edited")], false);
        assert_eq!(status.errors().len(), 1);
        assert!(
            status.errors()[0].contains("checksum mismatch: applied as a, the file is now edited")
        );
        assert!(status.pending().is_empty());
    }

    #[test]
    fn a_new_file_older_than_the_newest_applied_is_out_of_order_unless_allowed() {
        let applied = [row(1, "a"), row(3, "c")];
        let files = [file(1, "a"), file(2, "b"), file(3, "c")];
        assert!(compare(&applied, &files, false).errors()[0].contains("out of order"));
        let allowed = compare(&applied, &files, true);
        assert!(allowed.errors().is_empty());
        assert_eq!(allowed.pending().len(), 1);
    }

    #[test]
    fn applied_rows_without_a_file_are_missing_not_errors() {
        let status = compare(&[row(1, "a"), row(2, "b")], &[file(1, "a")], false);
        assert_eq!(status.missing().len(), 1);
        assert!(status.errors().is_empty());
    }
}

/// What a run of pending migrations did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpReport {
    /// The migrations applied, in order.
    pub applied: Vec<runner::Applied>,
    /// The pre-migration backup, if one was taken.
    pub backup: Option<PathBuf>,
    /// Applied versions whose file is gone (warnings).
    pub missing: Vec<String>,
}

/// Where and how to migrate one database.
#[derive(Debug, Clone, Copy)]
pub struct UpRequest<'a> {
    /// The database.
    pub database: &'a crate::config::Database,
    /// Its migrations settings.
    pub migrations: &'a crate::config::Migrations,
    /// `settings.backup_dir`, for the pre-migration backup.
    pub backup_dir: &'a std::path::Path,
    /// Apply only versions up to this one.
    pub to: Option<i64>,
    /// What started the run.
    pub trigger: crate::state::Trigger,
}

/// Applies the pending migrations of one database: lock, verify the history,
/// take a verified pre-migration backup (unless `before_migrations: false`),
/// then one transaction per file. The run is recorded in the state database
/// (a failed run is the `migration_failed` event alerts read).
pub fn up(
    request: UpRequest,
    state: &crate::state::StateDb,
    clock: &dyn crate::clock::Clock,
    progress: &mut dyn super::progress::Progress,
) -> Result<UpReport, runner::MigrateError> {
    let started_at = clock.now();
    let (request_name, trigger) = (request.database.name.to_string(), request.trigger);
    let result = run_up(request, state, clock, progress);
    let nothing_to_do = matches!(&result, Ok(report) if report.applied.is_empty());
    if !nothing_to_do {
        let outcome = match &result {
            Ok(report) => Ok(crate::jobs::outcome::JobSuccess::summary(format!(
                "{} applied",
                report.applied.len()
            ))),
            Err(e) => Err(crate::jobs::outcome::JobFailure::from_error(e)),
        };
        crate::jobs::run::record(
            state,
            crate::config::JobKind::Migrate,
            Some(request_name.as_str()),
            trigger,
            started_at,
            clock.now(),
            &outcome,
        )
        .map_err(|e| runner::MigrateError::State(Box::new(e)))?;
    }
    result
}

fn run_up(
    request: UpRequest,
    state: &crate::state::StateDb,
    clock: &dyn crate::clock::Clock,
    progress: &mut dyn super::progress::Progress,
) -> Result<UpReport, runner::MigrateError> {
    let database = request.database;
    let name = database.name.to_string();
    let files = runner::discover(database, request.migrations)?;
    let session = runner::session(database)?;
    let status = session.status(&files, request.migrations.allow_out_of_order)?;
    let problems = status.errors();
    if !problems.is_empty() {
        return Err(runner::MigrateError::Invalid {
            database: name,
            problems,
        });
    }
    let missing: Vec<String> = status
        .missing()
        .iter()
        .map(|row| format!("{:04}_{}", row.version, row.name))
        .collect();
    for row in &missing {
        tracing::warn!(db = %name, migration = %row, "an applied migration's file is gone");
    }
    let pending: Vec<&MigrationFile> = status
        .pending()
        .into_iter()
        .filter(|f| request.to.is_none_or(|to| f.version <= to))
        .collect();
    if pending.is_empty() {
        return Ok(UpReport {
            missing,
            ..UpReport::default()
        });
    }
    let backup = if database.backup.before_migrations && !session.is_empty()? {
        Some(pre_migration_backup(request, state, clock, progress)?)
    } else {
        None
    };
    let mut applied = Vec::new();
    for file in pending {
        match session.apply(file, backup.as_deref(), clock.now()) {
            Ok(done) => {
                tracing::info!(db = %name, migration = %done.migration, duration_ms = done.duration_ms, lock_ms = done.lock_ms, "migration applied");
                applied.push(done);
            }
            Err(failure) => {
                let before = applied
                    .iter()
                    .map(|a: &runner::Applied| a.migration.clone())
                    .collect();
                return Err(failure.into_error(database, &file.path, before));
            }
        }
    }
    Ok(UpReport {
        applied,
        backup,
        missing,
    })
}

/// Reverts applied migrations newer than `to`, newest first, with their
/// `.down.sql` files, after a verified backup. Returns the reverted names.
pub fn down(
    request: UpRequest,
    to: i64,
    state: &crate::state::StateDb,
    clock: &dyn crate::clock::Clock,
    progress: &mut dyn super::progress::Progress,
) -> Result<Vec<String>, runner::MigrateError> {
    let database = request.database;
    let name = database.name.to_string();
    let files = runner::discover(database, request.migrations)?;
    let session = runner::session(database)?;
    let applied = session.applied()?;
    let mut targets = Vec::new();
    for row in applied.iter().rev().filter(|row| row.version > to) {
        let file = files.iter().find(|f| f.version == row.version);
        match file.and_then(|f| f.down.as_ref().map(|down| (f, down))) {
            Some((file, down)) => {
                let sql = crate::regular::open_io(down)
                    .and_then(|mut file| {
                        let mut sql = String::new();
                        std::io::Read::read_to_string(&mut file, &mut sql).map(|_| sql)
                    })
                    .map_err(|source| runner::MigrateError::Io {
                        database: name.clone(),
                        path: down.clone(),
                        source,
                    })?;
                targets.push((file, down.clone(), sql));
            }
            None => {
                return Err(runner::MigrateError::NoDown {
                    database: name,
                    file: format!("{:04}_{}", row.version, row.name),
                });
            }
        }
    }
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    pre_migration_backup(request, state, clock, progress)?;
    let mut reverted = Vec::new();
    for (file, down, sql) in targets {
        session
            .revert(file, &sql)
            .map_err(|failure| failure.into_error(database, &down, reverted.clone()))?;
        reverted.push(file.to_string());
    }
    Ok(reverted)
}

/// Takes the verified `pre-migration` backup that precedes a run; returns
/// its path. If it fails, nothing may run.
fn pre_migration_backup(
    request: UpRequest,
    state: &crate::state::StateDb,
    clock: &dyn crate::clock::Clock,
    progress: &mut dyn super::progress::Progress,
) -> Result<PathBuf, runner::MigrateError> {
    let backup = super::backup::BackupRequest {
        database: request.database,
        backup_dir: request.backup_dir,
        trigger: crate::store::BackupTrigger::PreMigration,
        pin: false,
    };
    super::backup::take(backup, state, clock, progress)
        .map(|report| report.path)
        .map_err(|e| runner::MigrateError::Backup(Box::new(e)))
}

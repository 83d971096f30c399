//! Bringing a database back from a backup.
//!
//! Owns the restore sequence: pick the source (latest verified backup or a
//! named file), refuse a file that belongs to another database unless
//! forced, then in one pass read the source (hashing it), decode it and
//! write it into a temp file beside the target, bounded by its SQLite header.
//! A catalogued backup of this database that was verified when written and
//! whose SHA-256 still matches is restored on that proof, as restic restores
//! by hash; a point rebuilt from the replica, each commit of it checked
//! against the capture's checksum, gets a `quick_check`; any other file (or
//! `--verify full`) gets an `integrity_check` of the decoded temp first. Then the temp either becomes the new file
//! (`--to`, an atomic rename) or, after a safety copy of the current file
//! (an uncompressed, quick-checked `pre-restore` backup, the cost of one
//! plain snapshot), replaces the live content in one write transaction that
//! writes only the pages that differ ([`super::replace`]), so open readers
//! switch atomically and the WAL stays consistent. That same transaction
//! first brings the safety copy up to the content it replaces, so a write
//! committed after the copy was taken is kept there too; the copy's hash
//! and verification are then recorded again. Nothing is ever
//! written beside the backup (its directory may be read-only), and nothing
//! here ever runs unasked onto an existing file.

mod source;

pub use source::{Resolved, RestoreSource, older_remote, resolve};

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::backup::{self, BackupError, BackupRequest};
use super::progress::{Progress, Quiet};
use super::verify::{self, VerifyError};
use crate::clock::Clock;
use crate::config::{Compression, Database, VerifyLevel};
use crate::durable::PendingFile;
use crate::state::StateDb;
use crate::store::{BackupRecord, BackupTrigger, LocalDir, Store, StoreId};

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest<'a> {
    /// The database.
    pub database: &'a Database,
    /// `settings.backup_dir`.
    pub backup_dir: &'a Path,
    /// The source.
    pub from: RestoreSource,
    /// Write to this new file instead of replacing the live one.
    pub to: Option<PathBuf>,
    /// Accept a source that looks like another database.
    pub force: bool,
    /// Run `integrity_check` even on a backup proven by its hash.
    pub full_check: bool,
}

/// Why a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// No verified backup exists.
    #[error(
        "database `{0}` has no verified backup; take one with `litewarden backup {0}` or pass --from FILE"
    )]
    NoBackup(String),
    /// No verified backup is older than `--before`.
    #[error(
        "database `{database}` has no verified backup from before {before} (the oldest is {oldest}); see `litewarden backups {database}`"
    )]
    NoBackupBefore {
        /// The database.
        database: String,
        /// The time asked for, as shown.
        before: String,
        /// The oldest verified backup's time, or `none`.
        oldest: String,
    },
    /// No backup is recorded for that migration.
    #[error(
        "database `{database}`: no pre-migration backup is recorded for migration {version} (see `litewarden migrate status {database}`)"
    )]
    NoMigrationBackup {
        /// The database.
        database: String,
        /// The migration version.
        version: i64,
    },
    /// `--before-migration` names no applied migration.
    #[error(
        "database `{database}`: no applied migration is `{reference}` (applied: {applied}); a migration that failed left the database as it was before it, so there is nothing to restore for it (see `litewarden migrate status {database}`)"
    )]
    NotApplied {
        /// The database.
        database: String,
        /// What was asked for.
        reference: String,
        /// The applied migrations, `0001_init, …`.
        applied: String,
    },
    /// The source failed verification.
    #[error("refusing to restore `{database}`: {source}")]
    Verify {
        /// The database.
        database: String,
        /// The cause.
        #[source]
        source: VerifyError,
    },
    /// The source looks like another database.
    #[error("refusing to restore `{database}` from {}: {reason} (pass --force if this is intended)", crate::paths::display(.source_path))]
    Mismatch {
        /// The database.
        database: String,
        /// The source file.
        source_path: PathBuf,
        /// Why it looks foreign.
        reason: String,
    },
    /// `--to` names an existing file.
    #[error("refusing to overwrite {} with --to; pick a new path", crate::paths::display(.0))]
    TargetExists(PathBuf),
    /// Taking the safety copy failed, so nothing was restored.
    #[error("safety copy before restoring failed, nothing was restored: {0}")]
    SafetyCopy(#[source] BackupError),
    /// Writing the restored database failed.
    #[error("restoring `{database}` into {} failed: {detail}", crate::paths::display(.path))]
    Write {
        /// The database.
        database: String,
        /// The target.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A remote copy failed its check after the download.
    #[error("the remote copy {} failed its check after the download ({source}); {}", crate::paths::display(.copy), match .older { Some(older) => format!("an older remote copy would work: `litewarden restore {database} --from remote:{older}`"), None => "no older verified remote copy exists".to_string() })]
    RemoteCopy {
        /// The database.
        database: String,
        /// The remote copy.
        copy: PathBuf,
        /// Why the copy was refused.
        #[source]
        source: Box<RestoreError>,
        /// The next older verified remote copy's file name.
        older: Option<String>,
    },
    /// No remote copy has that name.
    #[error(
        "database `{database}`: the offsite store has no verified copy named `{name}`; see `litewarden backups {database} --remote`"
    )]
    NoRemoteCopy {
        /// The database.
        database: String,
        /// The name asked for.
        name: String,
    },
    /// The offsite store cannot be used.
    #[error(transparent)]
    Offsite(#[from] Box<super::offsite::OffsiteError>),
    /// The replica cannot be rebuilt at the point asked for.
    #[error(transparent)]
    Replica(#[from] crate::replicate::rebuild::RebuildError),
    /// The catalog could not be read.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// A finished restore.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The file restored from.
    pub source: PathBuf,
    /// The file written.
    pub target: PathBuf,
    /// The safety copy of the replaced file, if one was taken.
    pub safety_copy: Option<PathBuf>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Verifies `source` and restores it as `request` says.
pub fn restore(
    request: &RestoreRequest,
    resolved: &Resolved,
    state: &StateDb,
    clock: &dyn Clock,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, RestoreError> {
    let result = restore_resolved(request, resolved, state, clock, progress);
    match (result, &resolved.record) {
        (Err(failed @ RestoreError::Verify { .. }), Some(record))
            if record.store == StoreId::Offsite =>
        {
            let database = request.database.name.to_string();
            let older = older_remote(state, &database, record)?;
            Err(RestoreError::RemoteCopy {
                database,
                copy: resolved.shown.clone(),
                source: Box::new(failed),
                older,
            })
        }
        (result, _) => result,
    }
}

fn restore_resolved(
    request: &RestoreRequest,
    resolved: &Resolved,
    state: &StateDb,
    clock: &dyn Clock,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, RestoreError> {
    let source = resolved.path.as_path();
    let started = Instant::now();
    let database = request.database;
    let name = database.name.as_str();
    let verify_error = |source| RestoreError::Verify {
        database: name.to_string(),
        source,
    };
    verify::no_wal_beside(source).map_err(verify_error)?;
    let store = LocalDir::new(request.backup_dir);
    let record = match (&resolved.record, store.key_of(source)) {
        (Some(record), _) => Some(record.clone()),
        (None, Some(key)) => state.backup_by_key(store.id(), &key)?,
        (None, None) => None,
    };
    if let Some(record) = &record
        && record.database != name
        && !request.force
    {
        return Err(RestoreError::Mismatch {
            database: name.to_string(),
            source_path: source.to_path_buf(),
            reason: format!("it is a backup of `{}`", record.database),
        });
    }
    let expected = record.as_ref().and_then(|r| r.sha256.clone());
    let catalogued_here = record.as_ref().is_some_and(|r| r.database == name);
    let proven_by_hash = catalogued_here
        && expected.is_some()
        && record.as_ref().is_some_and(|r| r.verified())
        && !request.full_check;
    if let Some(to) = &request.to
        && to.exists()
    {
        return Err(RestoreError::TargetExists(to.clone()));
    }
    let target = request.to.clone().unwrap_or_else(|| database.path.clone());
    let write_error = |detail: String| RestoreError::Write {
        database: name.to_string(),
        path: target.clone(),
        detail,
    };
    let reading = ReadingGuard::new(state, source, clock);
    let proof = Proof {
        database: name,
        source,
        target: &target,
        expected: expected.as_deref(),
        proven_by_hash,
        unproven_check: if resolved.point.is_some() && !request.full_check {
            VerifyLevel::Quick
        } else {
            VerifyLevel::Full
        },
    };
    let in_place = request.to.is_none() && database.path.exists();
    let (decoded, safety) = if in_place {
        std::thread::scope(|scope| {
            let decoding = scope.spawn(|| proof.decode(&mut Quiet));
            let safety = safety_copy_of(request, state, clock, progress);
            let decoded = decoding
                .join()
                .unwrap_or_else(|_| Err(write_error("a helper thread panicked".into())));
            (decoded, Some(safety))
        })
    } else {
        (proof.decode(progress), None)
    };
    let safety = safety.transpose()?;
    let abandon = |error: RestoreError| {
        if let Some((copy, _)) = &safety {
            backup::discard(state, &store, copy);
        }
        error
    };
    let plain = decoded.map_err(abandon)?;
    if !catalogued_here
        && !request.force
        && database.path.exists()
        && let Some(reason) = foreign(plain.path(), &database.path)
    {
        return Err(abandon(RestoreError::Mismatch {
            database: name.to_string(),
            source_path: source.to_path_buf(),
            reason,
        }));
    }
    let safety_copy = safety.as_ref().map(|(copy, _)| store.path(&copy.key));
    if let Some((copy, readable)) = &safety {
        if *readable {
            let nothing_replaced = |detail: String| {
                backup::discard(state, &store, copy);
                write_error(detail)
            };
            let resized =
                matching_page_size(plain.path(), &database.path).map_err(nothing_replaced)?;
            let from = resized.as_ref().map_or(plain.path(), PendingFile::path);
            let replaced = super::replace::replace_live(
                from,
                &database.path,
                safety_copy.as_deref(),
                database.pragmas.connection.busy_timeout,
                progress,
            )
            .map_err(nothing_replaced)?;
            tracing::info!(
                db = name,
                pages = replaced.pages,
                written = replaced.written,
                safety_copy_topped_up = replaced.topped_up,
                "live content replaced"
            );
            if replaced.topped_up > 0 {
                backup::reprove(state, &store, copy, clock)?;
            }
            verify::check_database(&database.path, VerifyLevel::Quick).map_err(verify_error)?;
        } else {
            if let Err(e) =
                move_aside_journals(&database.path).and_then(|()| plain.commit_replacing())
            {
                backup::discard(state, &store, copy);
                return Err(write_error(e.to_string()));
            }
        }
    } else {
        move_aside_journals(&target)
            .and_then(|()| plain.commit())
            .map_err(|e| write_error(e.to_string()))?;
    }
    drop(reading);
    if request.to.is_none() {
        remember_restored(state, database, clock)?;
    }
    tracing::info!(db = name, source = %resolved.shown.display(), target = %target.display(), proven_by_hash, "restored");
    Ok(RestoreReport {
        source: resolved.shown.clone(),
        target,
        safety_copy,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// How a restore's source is decoded and proven.
struct Proof<'a> {
    database: &'a str,
    source: &'a Path,
    target: &'a Path,
    /// The catalogued SHA-256 of the stored file.
    expected: Option<&'a str>,
    /// A verified backup of this database: its hash suffices.
    proven_by_hash: bool,
    /// The check the decoded copy gets when its hash does not prove it:
    /// `quick_check` for a point rebuilt from the replica (each commit was
    /// checked against the capture's checksum), else `integrity_check`.
    unproven_check: VerifyLevel,
}

impl Proof<'_> {
    /// Decodes the source beside the target, compares its hash and, unless
    /// the hash proves it, runs `integrity_check` on the decoded copy.
    fn decode(&self, progress: &mut dyn Progress) -> Result<PendingFile, RestoreError> {
        let verify_error = |source| RestoreError::Verify {
            database: self.database.to_string(),
            source,
        };
        let (plain, read) =
            decode_beside(self.source, self.target, progress).map_err(|e| match e {
                Decoded::Write(e) => RestoreError::Write {
                    database: self.database.to_string(),
                    path: self.target.to_path_buf(),
                    detail: e.to_string(),
                },
                Decoded::Source(e) => verify_error(e),
            })?;
        if let Some(expected) = self.expected
            && expected != read.sha256
        {
            return Err(verify_error(verify::changed(
                self.source,
                &read.sha256,
                expected,
            )));
        }
        if !self.proven_by_hash {
            verify::check_database(plain.path(), self.unproven_check).map_err(|e| {
                verify_error(match e {
                    VerifyError::Damaged { detail, .. } => VerifyError::Damaged {
                        path: self.source.to_path_buf(),
                        detail,
                    },
                    other => other,
                })
            })?;
        }
        Ok(plain)
    }
}

/// Why decoding a restore's source failed: the source, or writing.
enum Decoded {
    Source(VerifyError),
    Write(io::Error),
}

/// Decodes `source` into a temp file beside `target` (named: SQLite opens
/// it; creating `target`'s directory when missing), after removing what
/// killed restores left there.
fn decode_beside(
    source: &Path,
    target: &Path,
    progress: &mut dyn Progress,
) -> Result<(PendingFile, verify::ReadBack), Decoded> {
    let dir = crate::durable::parent(target);
    crate::durable::create_private_dir(dir).map_err(Decoded::Write)?;
    backup::remove_restore_leftovers(dir);
    let plain = PendingFile::create_named(target).map_err(Decoded::Write)?;
    let read = verify::decode_into(
        source,
        verify::is_compressed(source),
        &mut io::BufWriter::with_capacity(1 << 20, plain.file()),
        progress,
    )
    .map_err(|e| match e {
        VerifyError::Io {
            action: "cannot write",
            source,
            ..
        } => Decoded::Write(source),
        other => Decoded::Source(other),
    })?;
    Ok((plain, read))
}

/// Takes the safety copy of the live file before it is replaced: a verified
/// `pre-restore` backup, or, when the live file is too damaged for one (the
/// case a restore exists for), a raw byte copy, marked unverified. Returns
/// the copy and whether the live file is readable as a database.
fn safety_copy_of(
    request: &RestoreRequest,
    state: &StateDb,
    clock: &dyn Clock,
    progress: &mut dyn Progress,
) -> Result<(BackupRecord, bool), RestoreError> {
    let mut plain = request.database.clone();
    plain.backup.compress = Compression::None;
    plain.backup.verify = VerifyLevel::Quick;
    let backup_request = BackupRequest {
        database: &plain,
        backup_dir: request.backup_dir,
        trigger: BackupTrigger::PreRestore,
        pin: false,
    };
    match backup::take(backup_request, state, clock, progress) {
        Ok(report) => Ok((report.record, true)),
        Err(error @ (BackupError::Io { .. } | BackupError::State(_))) => {
            Err(RestoreError::SafetyCopy(error))
        }
        Err(error) => {
            tracing::warn!(db = request.database.name.as_str(), error = %error, "the live file cannot be backed up as a database; keeping a raw copy of its bytes instead");
            let record =
                backup::raw_copy(backup_request, state, clock).map_err(RestoreError::SafetyCopy)?;
            let readable = crate::db::observe::read_identity(&request.database.path).is_ok()
                && verify::check_database(&request.database.path, VerifyLevel::Quick).is_ok();
            Ok((record, readable))
        }
    }
}

/// The restored database is what litewarden expects from now on: its
/// identity is remembered and open discontinuities are accepted (the
/// operator chose this content).
fn remember_restored(
    state: &StateDb,
    database: &Database,
    clock: &dyn Clock,
) -> Result<(), RestoreError> {
    let name = database.name.as_str();
    let identity =
        crate::db::observe::read_identity(&database.path).map_err(|e| RestoreError::Write {
            database: name.to_string(),
            path: database.path.clone(),
            detail: e.to_string(),
        })?;
    if let Some(identity) = identity {
        state.remember_identity(name, &database.path, &identity, clock.now())?;
    }
    if state.accept_discontinuities(name, clock.now())? > 0 {
        tracing::info!(db = name, "discontinuity resolved by the restore");
    }
    Ok(())
}

/// Marks the restore's source as being read, so no prune removes it, until
/// dropped.
struct ReadingGuard<'a> {
    state: &'a StateDb,
    path: PathBuf,
}

impl<'a> ReadingGuard<'a> {
    fn new(state: &'a StateDb, path: &Path, clock: &dyn Clock) -> Self {
        if let Err(e) = state.add_reader(path, std::process::id(), "restore", clock.now()) {
            tracing::warn!(error = %e, "cannot mark the backup as being read");
        }
        ReadingGuard {
            state,
            path: path.to_path_buf(),
        }
    }
}

impl Drop for ReadingGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.state.remove_reader(&self.path, std::process::id()) {
            tracing::warn!(error = %e, "cannot unmark the backup as being read");
        }
    }
}

/// A copy of `plain` with the live file's page size, when the two differ:
/// the backup API cannot change the page size of a WAL database, so the
/// source is rewritten (`VACUUM INTO`, a temp file beside the live one).
fn matching_page_size(plain: &Path, live: &Path) -> Result<Option<PendingFile>, String> {
    let page_size = |path: &Path| -> Result<i64, String> {
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.pragma_query_value(None, "page_size", |r| r.get(0)))
            .map_err(|e| format!("{}: {e}", crate::paths::display(path)))
    };
    let wanted = page_size(live)?;
    if page_size(plain)? == wanted {
        return Ok(None);
    }
    let resized =
        PendingFile::create_named(&live.with_extension("resize")).map_err(|e| e.to_string())?;
    let conn = Connection::open_with_flags(plain, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "page_size", wanted)
        .and_then(|()| {
            conn.execute(
                "VACUUM INTO ?1",
                [resized.path().to_string_lossy().as_ref()],
            )
        })
        .map_err(|e| format!("cannot convert the backup to page size {wanted}: {e}"))?;
    Ok(Some(resized))
}

/// Renames `<db>-wal`, `<db>-shm` and `<db>-journal` of a file about to be
/// written from scratch to `<name>.stale-<pid>`: a stale WAL beside a new
/// file would be replayed onto it.
fn move_aside_journals(db: &Path) -> io::Result<()> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        let journal = PathBuf::from(name);
        if journal.exists() {
            let mut aside = journal.as_os_str().to_os_string();
            aside.push(format!(".stale-{}", std::process::id()));
            std::fs::rename(&journal, &aside)?;
            tracing::warn!(file = %journal.display(), moved_to = %PathBuf::from(&aside).display(), "moved a stale journal aside before writing the database");
        }
    }
    Ok(())
}

/// Why `candidate` looks like a different database than `live`, if it does:
/// another application id, or no table in common.
fn foreign(candidate: &Path, live: &Path) -> Option<String> {
    let describe = |path: &Path| -> Option<(i64, BTreeSet<String>)> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        let id = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .ok()?;
        let mut statement = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .ok()?;
        let tables = statement
            .query_map([], |r| r.get(0))
            .ok()?
            .collect::<Result<_, _>>()
            .ok()?;
        Some((id, tables))
    };
    let (candidate_id, candidate_tables) = describe(candidate)?;
    let (live_id, live_tables) = describe(live)?;
    if candidate_id != live_id {
        return Some(format!(
            "its application_id is {candidate_id}, the database's is {live_id}"
        ));
    }
    if !candidate_tables.is_empty()
        && !live_tables.is_empty()
        && candidate_tables.is_disjoint(&live_tables)
    {
        return Some("it has no table in common with the database".to_string());
    }
    None
}

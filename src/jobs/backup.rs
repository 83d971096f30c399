//! Taking a verified backup of one database.
//!
//! Owns the sequence of a backup: consistent copy ([`super::copy`]) into a
//! temp file in `<backup_dir>/<db>/`, fsync, atomic rename, verification,
//! optional zstd compression, SHA-256, and the catalog row. Nothing is
//! catalogued that did not pass its verification, and every error path
//! removes what it wrote (temp files are dropped; a final file that fails
//! verification is deleted).
//!
//! Without compression, the fsync of the copy, its SHA-256 and its check run
//! at the same time on the temp file (the check is CPU and page-cache work,
//! the fsync waits on the disk), and the verified bytes are then renamed into
//! place. With compression, the plain copy is checked before it is compressed, and
//! the compressed file is decoded after its rename and compared by SHA-256
//! with the plain copy, so the stored artifact itself is proven.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use chrono::SubsecRound;
use serde::Serialize;

use super::copy::{self, CopyError, CopyMethod, CopyStats};
use super::identity;
use super::manifest::{self, Manifest};
use super::naming;
use super::progress::Progress;
use super::verify::{self, Hashing, VerifyError};
use crate::clock::Clock;
use crate::config::{Compression, Database, VerifyLevel};
use crate::db::observe::read_identity;
use crate::durable::{self, PendingFile};
use crate::plan::identity::Identity;
use crate::state::StateDb;
use crate::state::catalog::{BackupRecord, BackupTrigger, NewBackup};

/// Temp files older than this in a backup directory are leftovers of a
/// killed process.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(6 * 3600);

/// zstd level used for backups: fast, with most of the gain on SQLite pages.
pub const ZSTD_LEVEL: i32 = 1;

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database file does not exist.
    #[error("database `{database}`: {} does not exist; nothing was backed up and no backup was pruned (restore it with `litewarden restore {database}`)", crate::paths::display(.path))]
    SourceMissing {
        /// The database.
        database: String,
        /// Its path.
        path: PathBuf,
    },
    /// The source could not be read.
    #[error("database `{database}`: {source}")]
    Source {
        /// The database.
        database: String,
        /// The cause.
        #[source]
        source: Box<crate::db::DbError>,
    },
    /// Copying failed.
    #[error("backup of `{database}` failed: {source}")]
    Copy {
        /// The database.
        database: String,
        /// The cause.
        #[source]
        source: Box<CopyError>,
    },
    /// Writing or compressing the backup failed.
    #[error("backup of `{database}` failed: {}: {action}: {source}", crate::paths::display(.path))]
    Io {
        /// The database.
        database: String,
        /// The file concerned.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The backup did not pass verification and was deleted.
    #[error("backup of `{database}` failed verification and was removed: {source}")]
    Verify {
        /// The database.
        database: String,
        /// The cause.
        #[source]
        source: VerifyError,
    },
    /// The catalog could not be written.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

impl BackupError {
    /// Wraps an I/O error on `path` while backing up `database`.
    pub(crate) fn io(
        database: &str,
        path: &Path,
        action: &'static str,
    ) -> impl FnOnce(io::Error) -> Self + use<> {
        let (database, path) = (database.to_string(), path.to_path_buf());
        move |source| BackupError::Io {
            database,
            path,
            action,
            source,
        }
    }
}

/// What to back up and why.
#[derive(Debug, Clone, Copy)]
pub struct BackupRequest<'a> {
    /// The database, with its backup settings.
    pub database: &'a Database,
    /// `settings.backup_dir`.
    pub backup_dir: &'a Path,
    /// What caused it.
    pub trigger: BackupTrigger,
    /// Pin it (never pruned).
    pub pin: bool,
}

/// A finished backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The catalog row.
    pub record: BackupRecord,
    /// What the copy did.
    pub copy: CopyStats,
    /// Size of the database copy before compression.
    pub plain_bytes: u64,
    /// Wall time.
    #[serde(serialize_with = "serialize_ms")]
    pub duration: Duration,
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// The directory holding the backups of `database`.
pub fn database_dir(backup_dir: &Path, database: &str) -> PathBuf {
    backup_dir.join(database)
}

/// Copies `source` uncompressed into a temp file beside `target` in `dir`
/// (the file is not yet synced or committed).
fn plain_copy(
    name: &str,
    source: &copy::Source,
    dir: &Path,
    target: &Path,
    progress: &mut dyn Progress,
) -> Result<(PendingFile, CopyStats), BackupError> {
    let plain = PendingFile::create(&target.with_extension("copy")).map_err(BackupError::io(
        name,
        dir,
        "cannot create a temp file",
    ))?;
    let copy = source
        .copy_to(plain.file(), plain.path(), progress)
        .map_err(|source| BackupError::Copy {
            database: name.to_string(),
            source: Box::new(source),
        })?;
    Ok((plain, copy))
}

/// Takes, verifies and catalogues one backup.
pub fn take(
    request: BackupRequest,
    state: &StateDb,
    clock: &dyn Clock,
    progress: &mut dyn Progress,
) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let db = request.database;
    let name = db.name.as_str();
    let io = |path: &Path, action: &'static str| BackupError::io(name, path, action);
    let source_error = |source| BackupError::Source {
        database: name.to_string(),
        source: Box::new(source),
    };
    let Some(seen) = read_identity(&db.path).map_err(source_error)? else {
        return Err(BackupError::SourceMissing {
            database: name.to_string(),
            path: db.path.clone(),
        });
    };
    let dir = database_dir(request.backup_dir, name);
    durable::create_private_dir(&dir).map_err(io(&dir, "cannot create the directory"))?;
    let removed = durable::remove_stale_temps(&dir, STALE_TEMP_AGE, SystemTime::now())
        .map_err(io(&dir, "cannot clean up"))?;
    if removed > 0 {
        tracing::info!(
            db = name,
            removed,
            "removed leftovers of an interrupted backup"
        );
    }
    manifest::sync_catalog(state, name, request.backup_dir)?;
    identity::check(
        state,
        name,
        &db.path,
        request.backup_dir,
        &seen,
        clock.now(),
    )?;
    let created_at = clock.now().trunc_subsecs(0);
    let compressed = db.backup.compress == Compression::Zstd;
    let target = naming::free_path(&dir, name, created_at, compressed, |p| {
        p.exists() || state.backup_by_path(p).ok().flatten().is_some()
    });

    let copy_error = |source| BackupError::Copy {
        database: name.to_string(),
        source: Box::new(source),
    };
    let verify_error = |source| BackupError::Verify {
        database: name.to_string(),
        source,
    };
    let verify_level = db.backup.verify;
    let source = copy::Source::open(&db.path, db.backup.method, &db.pragmas.connection)
        .map_err(copy_error)?;

    let (pending, sha256, copy) = if compressed {
        let pending =
            PendingFile::create(&target).map_err(io(&dir, "cannot create a temp file"))?;
        let written = if source.method() == CopyMethod::Snapshot {
            compressed_write(name, &pending, |out| {
                source
                    .stream_snapshot(out, pending.path(), progress)
                    .map_err(copy_error)
            })
        } else {
            let (plain, copy) = plain_copy(name, &source, &dir, &target, progress)?;
            verify::check_database(plain.path(), verify_level).map_err(verify_error)?;
            compressed_write(name, &pending, |out| {
                let mut file = File::open(plain.path()).map_err(io(plain.path(), "cannot read"))?;
                io::copy(&mut file, out).map_err(io(pending.path(), "cannot write"))?;
                Ok(copy)
            })
        };
        let (copy, plain_sha, stored_sha) = written?;
        if verify_level != VerifyLevel::None {
            let (plain, decoded_sha) =
                verify::decompressed_copy(pending.path(), progress).map_err(verify_error)?;
            if decoded_sha != plain_sha {
                return Err(verify_error(VerifyError::Damaged {
                    path: target.clone(),
                    detail: "the compressed file does not decode to the copied database".into(),
                }));
            }
            verify::check_database(plain.path(), verify_level).map_err(verify_error)?;
        }
        (pending, stored_sha, copy)
    } else {
        let (plain, copy) = plain_copy(name, &source, &dir, &target, progress)?;
        let (synced, sha256, checked) = std::thread::scope(|scope| {
            let synced = scope.spawn(|| plain.file().sync_all());
            let sha256 = scope.spawn(|| verify::sha256_file(plain.path()));
            let checked = verify::check_database(plain.path(), verify_level);
            (synced.join(), sha256.join(), checked)
        });
        let panicked = || io::Error::other("a helper thread panicked");
        synced
            .unwrap_or_else(|_| Err(panicked()))
            .map_err(io(plain.path(), "cannot write"))?;
        checked.map_err(verify_error)?;
        let sha256 = sha256
            .unwrap_or_else(|_| {
                Err(VerifyError::Io {
                    path: plain.path().to_path_buf(),
                    action: "cannot hash",
                    source: panicked(),
                })
            })
            .map_err(verify_error)?;
        (plain, sha256, copy)
    };
    drop(source);

    let size = pending
        .file()
        .metadata()
        .map_err(io(pending.path(), "cannot stat"))?
        .len();
    let duration = started.elapsed();
    let verified_at = (verify_level != VerifyLevel::None).then(|| clock.now());
    let new = NewBackup {
        database: name,
        path: &target,
        created_at,
        size,
        sha256: Some(&sha256),
        verified_at,
        method: Some(copy.method.as_str()),
        trigger: request.trigger,
        pinned: request.pin,
        duration_ms: Some(duration.as_millis() as u64),
        seq: None,
    };
    let record = land(state, pending, new, Some(&seen))?;
    tracing::info!(db = name, path = %record.path.display(), bytes = size, duration_ms = duration.as_millis() as u64, method = copy.method.as_str(), "backup taken");
    Ok(BackupReport {
        record,
        copy,
        plain_bytes: copy.bytes(),
        duration,
    })
}

/// Copies the bytes of a database file that cannot be backed up as a
/// database (corrupt, not SQLite) into the backup directory: the safety
/// copy a restore keeps of a damaged file. Catalogued unverified, with the
/// raw method, so nothing ever restores it as "latest".
pub fn raw_copy(
    request: BackupRequest,
    state: &StateDb,
    clock: &dyn Clock,
) -> Result<BackupRecord, BackupError> {
    let db = request.database;
    let name = db.name.as_str();
    let io = |path: &Path, action: &'static str| BackupError::io(name, path, action);
    let dir = database_dir(request.backup_dir, name);
    durable::create_private_dir(&dir).map_err(io(&dir, "cannot create the directory"))?;
    let created_at = clock.now().trunc_subsecs(0);
    let target = naming::free_path(&dir, name, created_at, false, |p| {
        p.exists() || state.backup_by_path(p).ok().flatten().is_some()
    });
    let pending = PendingFile::create(&target).map_err(io(&dir, "cannot create a temp file"))?;
    let mut live = File::open(&db.path).map_err(io(&db.path, "cannot read"))?;
    let size =
        io::copy(&mut live, &mut pending.file()).map_err(io(pending.path(), "cannot write"))?;
    let sha256 = verify::sha256_file(pending.path()).map_err(|source| BackupError::Verify {
        database: name.to_string(),
        source,
    })?;
    let new = NewBackup {
        database: name,
        path: &target,
        created_at,
        size,
        sha256: Some(&sha256),
        verified_at: None,
        method: Some("raw"),
        trigger: request.trigger,
        pinned: request.pin,
        duration_ms: None,
        seq: None,
    };
    let record = land(state, pending, new, None)?;
    tracing::warn!(db = name, path = %record.path.display(), bytes = size, "raw copy of the damaged database kept (unverified)");
    Ok(record)
}

/// Lands a finished backup at `new.path`: its manifest first (with the
/// next sequence number and the source's identity), then the file renamed
/// into place, then its catalog row. A failure at any step removes what was
/// written, so a listed backup always has its manifest and its row.
fn land(
    state: &StateDb,
    pending: PendingFile,
    mut new: NewBackup,
    source: Option<&Identity>,
) -> Result<BackupRecord, BackupError> {
    let (name, target) = (new.database, new.path);
    let io = |action: &'static str| BackupError::io(name, target, action);
    let seq = state.next_backup_seq(name)?;
    new.seq = Some(seq);
    manifest::write(target, &Manifest::of(&new.record_at(seq), source))
        .map_err(io("cannot write the manifest"))?;
    let final_path = match pending.commit_to(target) {
        Ok(path) => path,
        Err(e) => {
            let _ = manifest::remove(target);
            return Err(io("cannot write")(e));
        }
    };
    if let Err(e) = state.insert_backup(&new) {
        return Err(remove_and_fail(&final_path, e.into()));
    }
    state.backup_by_path(&final_path)?.ok_or_else(|| {
        crate::state::StateError::Corrupt {
            path: final_path.clone(),
            detail: "a backup vanished from the catalog".into(),
        }
        .into()
    })
}

fn remove_and_fail(path: &Path, error: BackupError) -> BackupError {
    if let Err(e) = std::fs::remove_file(path).and_then(|()| manifest::remove(path)) {
        tracing::error!(path = %path.display(), error = %e, "cannot remove a failed backup");
    }
    error
}

/// Writes what `feed` produces, zstd-compressed (all cores), into
/// `pending`; returns `feed`'s value and the SHA-256 of the plain bytes fed
/// and of the compressed bytes stored.
fn compressed_write<T>(
    database: &str,
    pending: &PendingFile,
    feed: impl FnOnce(&mut dyn io::Write) -> Result<T, BackupError>,
) -> Result<(T, String, String), BackupError> {
    let failed = |action: &'static str| BackupError::io(database, pending.path(), action);
    let stored = Hashing::new(BufWriter::with_capacity(1 << 20, pending.file()));
    let mut encoder = zstd::Encoder::new(stored, ZSTD_LEVEL).map_err(failed("cannot compress"))?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    encoder
        .multithread(workers)
        .map_err(failed("cannot compress"))?;
    encoder
        .include_checksum(true)
        .map_err(failed("cannot compress"))?;
    let mut plain = Hashing::new(&mut encoder);
    let value = feed(&mut plain)?;
    let (plain_sha, _, _) = plain.finish();
    let stored = encoder.finish().map_err(failed("cannot write"))?;
    let (stored_sha, _, writer) = stored.finish();
    writer
        .into_inner()
        .map_err(|e| failed("cannot write")(e.into_error()))?;
    Ok((value, plain_sha, stored_sha))
}

/// The backup `--from latest` means: the newest (by the catalog's sequence)
/// verified one whose file exists, not counting the safety copies taken
/// before a restore (restoring "latest" twice must not undo the first
/// restore), and passing over backups of an emptied database when an older
/// one holds data (see [`manifest::prefer_data`]).
pub fn latest_verified(
    state: &StateDb,
    database: &str,
) -> Result<Option<BackupRecord>, crate::state::StateError> {
    let candidates: Vec<BackupRecord> = state
        .backups(database)?
        .into_iter()
        .filter(|b| b.verified() && b.trigger != BackupTrigger::PreRestore && b.path.is_file())
        .collect();
    let chosen = manifest::prefer_data(candidates.iter().map(|b| b.path.as_path()));
    if chosen > 0 {
        tracing::warn!(db = database, newest = %candidates[0].path.display(), chosen = %candidates[chosen].path.display(), "the newest backups are of an empty database; latest is the newest one with data (pass --from FILE for another)");
    }
    Ok(candidates.into_iter().nth(chosen))
}

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
use super::naming;
use super::progress::Progress;
use super::verify::{self, Hashing, VerifyError};
use crate::clock::Clock;
use crate::config::{Compression, Database, VerifyLevel};
use crate::db::observe::observe_file;
use crate::durable::{self, PendingFile};
use crate::plan::ObservedFile;
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
    #[error("database `{database}`: {} does not exist", crate::paths::display(.path))]
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
    match observe_file(&db.path).map_err(|source| BackupError::Source {
        database: name.to_string(),
        source: Box::new(source),
    })? {
        ObservedFile::Missing => {
            return Err(BackupError::SourceMissing {
                database: name.to_string(),
                path: db.path.clone(),
            });
        }
        ObservedFile::Present(_) => {}
    }
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

    let (final_path, sha256, copy) = if compressed {
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
        let final_path = pending.commit().map_err(io(&target, "cannot write"))?;
        (final_path, stored_sha, copy)
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
        let final_path = plain
            .commit_to(&target)
            .map_err(io(&target, "cannot write"))?;
        (final_path, sha256, copy)
    };
    drop(source);

    let size = std::fs::metadata(&final_path)
        .map_err(io(&final_path, "cannot stat"))?
        .len();
    let duration = started.elapsed();
    let verified_at = (verify_level != VerifyLevel::None).then(|| clock.now());
    let id = state.insert_backup(&NewBackup {
        database: name,
        path: &final_path,
        created_at,
        size,
        sha256: Some(&sha256),
        verified_at,
        method: Some(copy.method.as_str()),
        trigger: request.trigger,
        pinned: request.pin,
        duration_ms: Some(duration.as_millis() as u64),
    });
    let id = match id {
        Ok(id) => id,
        Err(e) => return Err(remove_and_fail(&final_path, e.into())),
    };
    let record =
        state
            .backup_by_path(&final_path)?
            .ok_or_else(|| crate::state::StateError::Corrupt {
                path: final_path.clone(),
                detail: format!("backup {id} vanished from the catalog"),
            })?;
    tracing::info!(db = name, path = %final_path.display(), bytes = size, duration_ms = duration.as_millis() as u64, method = copy.method.as_str(), "backup taken");
    Ok(BackupReport {
        record,
        copy,
        plain_bytes: copy.bytes(),
        duration,
    })
}

fn remove_and_fail(path: &Path, error: BackupError) -> BackupError {
    if let Err(e) = std::fs::remove_file(path) {
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

/// The backup `--from latest` means: the newest verified one whose file
/// exists, not counting the safety copies taken before a restore (restoring
/// "latest" twice must not undo the first restore).
pub fn latest_verified(
    state: &StateDb,
    database: &str,
) -> Result<Option<BackupRecord>, crate::state::StateError> {
    Ok(state
        .backups(database)?
        .into_iter()
        .find(|b| b.verified() && b.trigger != BackupTrigger::PreRestore && b.path.is_file()))
}

/// What [`sync_catalog`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatalogSync {
    /// Backup files found on disk and added, unverified.
    pub added: Vec<PathBuf>,
    /// Catalogued backups whose file is gone, removed from the catalog.
    pub missing: Vec<PathBuf>,
}

/// Brings the catalog of `database` in line with `<backup_dir>/<database>/`:
/// files named like backups but not catalogued (a lost state database) are
/// added as unverified; rows whose file is gone are dropped.
pub fn sync_catalog(
    state: &StateDb,
    database: &str,
    backup_dir: &Path,
) -> Result<CatalogSync, BackupError> {
    let dir = database_dir(backup_dir, database);
    let io = |action: &'static str| BackupError::io(database, &dir, action);
    let mut sync = CatalogSync::default();
    for record in state.backups(database)? {
        if !record.path.exists() {
            state.delete_backup(record.id)?;
            tracing::warn!(db = database, path = %record.path.display(), "catalogued backup is gone; removed from the catalog");
            sync.missing.push(record.path);
        }
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(sync),
        Err(e) => return Err(io("cannot list")(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("cannot list"))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(parsed) = naming::parse(database, &file_name) {
            found.push((entry.path(), parsed));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, parsed) in found {
        if state.backup_by_path(&path)?.is_some() {
            continue;
        }
        let size = std::fs::metadata(&path).map_err(io("cannot stat"))?.len();
        state.insert_backup(&NewBackup {
            database,
            path: &path,
            created_at: parsed.created_at,
            size,
            sha256: None,
            verified_at: None,
            method: None,
            trigger: BackupTrigger::Rebuilt,
            pinned: false,
            duration_ms: None,
        })?;
        tracing::info!(db = database, path = %path.display(), "backup file added to the catalog from its name (unverified)");
        sync.added.push(path);
    }
    Ok(sync)
}

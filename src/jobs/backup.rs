//! Taking a verified backup of one database.
//!
//! Owns the sequence of a backup: consistent copy ([`super::copy`]) into a
//! temp file in `<backup_dir>/<db>/`, verification, optional zstd
//! compression, SHA-256, fsync, atomic rename and the catalog row. Nothing
//! is catalogued that did not pass its verification, and every error path
//! removes what it wrote. Backups of one database are serialised by a lock
//! in its backup directory (a second run waits, then takes the next free
//! name); the holder removes the temps of killed runs (see
//! [`crate::durable`]: a pending file is anonymous where the file system
//! allows, so a killed run usually leaves nothing).
//!
//! What each `verify` level proves about the file on disk (the steps
//! that run beside each other below run one after the other for a source
//! under 32 MiB; they prove the same):
//!
//! - Plain (uncompressed) backups, every method: `quick` / `full` run
//!   `quick_check` / `integrity_check` on the written temp file itself,
//!   alongside its fsync and SHA-256, before it is renamed into place.
//! - Compressed backups by the snapshot method (the default): the page
//!   stream is compressed straight into the temp file, and a read-back of
//!   the written file follows it as it grows: it hashes the file (SHA-256,
//!   compared with the hash of the bytes written) and decodes it completely
//!   (zstd's content checksum, computed by the encoder over the bytes it was
//!   fed, is checked; the decoded size must be the header's page count ×
//!   page size). No decoded copy is written. Once the last byte is written,
//!   `quick` runs `quick_check` on the source inside the read transaction
//!   the stream was read from (so on exactly the snapshot copied) while the
//!   file is fsynced and the read-back finishes. That the streamed bytes are the
//!   snapshot rests on the snapshot method's argument ([`super::copy`]),
//!   which the live-writer tests prove. `full` decodes the written file into
//!   a scratch file and runs `integrity_check` on the artifact
//!   itself.
//! - Compressed backups by the `api` and `vacuum` methods: the plain copy is
//!   checked as a plain backup is, then compressed and read back as above.
//! - `none`: the copy is written, hashed and synced; nothing reads it back.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::SubsecRound;
use serde::Serialize;

use super::copy::{self, CopyError, CopyMethod, CopyStats};
use super::identity;
use super::manifest;
use super::progress::Progress;
use super::verify::{self, Hashing, VerifyError};
use crate::clock::Clock;
use crate::config::{Compression, Database, VerifyLevel};
use crate::db::observe::read_identity;
use crate::durable::{self, PendingFile};
use crate::state::StateDb;
use crate::store::{BackupRecord, BackupTrigger, Key, LocalDir, Store, StoreError, naming};

/// The lock file that serialises the backups of one database, in its
/// backup directory.
const BACKUP_LOCK: &str = ".litewarden-backup.lock";

/// zstd level used for backups: fast, with most of the gain on SQLite pages.
pub const ZSTD_LEVEL: i32 = 1;

/// From this size up a backup uses helper threads: zstd's workers (one
/// per core), the read-back following the file as it is written, the
/// fsync and SHA-256 beside the check. Smaller ones run the same steps one
/// after the other on the backup's own thread, where threads and their
/// buffers would cost more than they save (a host of thousands of small
/// databases backs up many of them at once).
const HELPER_THREADS_FROM: u64 = 32 << 20;

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
    /// The backup disk is full: named by its directory and free space.
    #[error("backup of `{database}` failed: the backup disk is full: {} has {} free ({source}); free space there or point settings.backup_dir at a larger disk (nothing partial was left, and the job is retried)", crate::paths::display(.dir), .free.map_or("no space".to_string(), |f| indicatif::HumanBytes(f).to_string()))]
    DiskFull {
        /// The database.
        database: String,
        /// The directory being written.
        dir: PathBuf,
        /// Free bytes there, when known.
        free: Option<u64>,
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
    /// Wraps a failed copy of `database`: a full disk under it becomes
    /// [`BackupError::DiskFull`], named by the directory it was writing.
    pub(crate) fn copy(database: &str, source: CopyError) -> Self {
        match source {
            CopyError::Io {
                path,
                action,
                source,
            } => BackupError::io(database, &path, action)(source),
            other => BackupError::Copy {
                database: database.to_string(),
                source: Box::new(other),
            },
        }
    }

    /// Wraps a failed store operation on a copy of `database`.
    pub(crate) fn store(database: &str) -> impl FnOnce(StoreError) -> Self + use<> {
        let database = database.to_string();
        move |e| BackupError::io(&database, &e.place, e.action)(e.source)
    }

    /// Wraps an I/O error on `path` while backing up `database`.
    pub(crate) fn io(
        database: &str,
        path: &Path,
        action: &'static str,
    ) -> impl FnOnce(io::Error) -> Self + use<> {
        let (database, path) = (database.to_string(), durable::shown(path));
        move |source| {
            if source.kind() == io::ErrorKind::StorageFull {
                let dir = if path.is_dir() {
                    path
                } else {
                    durable::parent(&path).to_path_buf()
                };
                return BackupError::DiskFull {
                    database,
                    free: crate::jobs::health::free_bytes(&dir),
                    dir,
                    source,
                };
            }
            BackupError::Io {
                database,
                path,
                action,
                source,
            }
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
    /// The copy's file in the backup directory.
    pub path: PathBuf,
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

/// Copies `source` uncompressed into a temp file beside `target` in `dir`
/// (the file is not yet synced or committed).
fn plain_copy(
    name: &str,
    source: &copy::Source,
    dir: &Path,
    target: &Path,
    progress: &mut dyn Progress,
) -> Result<(PendingFile, CopyStats), BackupError> {
    let plain = PendingFile::create_named(&target.with_extension("copy"))
        .map_err(BackupError::io(name, dir, "cannot create a temp file"))?;
    let copy = source
        .copy_to(plain.file(), plain.path(), progress)
        .map_err(|source| BackupError::copy(name, source))?;
    Ok((plain, copy))
}

/// Holds the backup lock of one database's backup directory, waiting for
/// another run to finish if one holds it, then removes what killed runs
/// left there. Released when the returned file is dropped.
fn lock_backups(name: &str, dir: &Path) -> Result<File, BackupError> {
    let path = dir.join(BACKUP_LOCK);
    let io = |action: &'static str| BackupError::io(name, &path, action);
    let file = crate::durable::open_lock_file(&path).map_err(io("cannot open the backup lock"))?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        tracing::info!(
            db = name,
            "another backup of this database is running; waiting for it to finish"
        );
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io("cannot take the backup lock")(e.into()))?;
    }
    let removed = durable::remove_unlocked_temps(dir).map_err(BackupError::io(
        name,
        dir,
        "cannot clean up",
    ))?;
    if removed > 0 {
        tracing::info!(
            db = name,
            removed,
            "removed the temp files of an interrupted backup"
        );
    }
    Ok(file)
}

/// Removes what killed restores left in `dir` (a database's directory:
/// their temps are named, as SQLite reads them); a failure only warns.
/// A directory sweep, not part of a backup: a directory may hold thousands
/// of databases, so one-shot commands sweep before they act and the daemon
/// sweeps each database directory at start and on its periodic pass.
pub(crate) fn remove_restore_leftovers(dir: &Path) {
    match durable::remove_unlocked_temps(dir) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(
            dir = %dir.display(),
            removed,
            "removed the temp files of an interrupted restore"
        ),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot look for the temp files of an interrupted restore")
        }
    }
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
    let store = LocalDir::new(request.backup_dir);
    let dir = store.database_dir(name);
    durable::create_private_dir(&dir).map_err(io(&dir, "cannot create the directory"))?;
    let _lock = lock_backups(name, &dir)?;
    manifest::sync_catalog(state, &store, name)?;
    identity::check(state, name, &db.path, &store, &seen, clock.now())?;
    let created_at = clock.now().trunc_subsecs(0);
    let compressed = db.backup.compress == Compression::Zstd;
    let key = free_key(state, &store, name, created_at, compressed);
    let target = store.path(&key);
    let source = copy::Source::open(&db.path, db.backup.method, &db.pragmas.connection)
        .map_err(|source| BackupError::copy(name, source))?;
    let written = Written {
        name,
        plain_bytes: seen.page_size * seen.page_count,
        source: &source,
        dir: &dir,
        target: &target,
        level: db.backup.verify,
    };
    let (pending, sha256, copy) = if compressed {
        written.compressed(progress)?
    } else {
        written.plain(progress)?
    };
    drop(source);

    let size = pending
        .file()
        .metadata()
        .map_err(io(pending.path(), "cannot stat"))?
        .len();
    let duration = started.elapsed();
    let verified_at = (db.backup.verify != VerifyLevel::None).then(|| clock.now());
    let new = BackupRecord {
        id: 0,
        database: name.to_string(),
        store: store.id(),
        key,
        created_at,
        size,
        sha256: Some(sha256),
        verified_at,
        method: Some(copy.method.as_str().to_string()),
        trigger: request.trigger,
        pinned: request.pin,
        duration_ms: Some(duration.as_millis() as u64),
        seq: 0,
        source: Some(seen),
    };
    let record = land(state, &store, pending, new)?;
    tracing::info!(db = name, path = %target.display(), bytes = size, duration_ms = duration.as_millis() as u64, method = copy.method.as_str(), "backup taken");
    Ok(BackupReport {
        record,
        path: target,
        copy,
        plain_bytes: copy.bytes(),
        duration,
    })
}

/// Writing one backup's temp file and proving it (see the module header).
struct Written<'a> {
    name: &'a str,
    /// The source's size (pages × page size) when the copy began.
    plain_bytes: u64,
    source: &'a copy::Source<'a>,
    dir: &'a Path,
    target: &'a Path,
    level: VerifyLevel,
}

/// A written, verified temp file, its SHA-256 and what the copy did.
type Proven = (PendingFile, String, CopyStats);

impl Written<'_> {
    fn verify_error(&self, source: VerifyError) -> BackupError {
        BackupError::Verify {
            database: self.name.to_string(),
            source,
        }
    }

    fn copy_error(&self, source: CopyError) -> BackupError {
        BackupError::copy(self.name, source)
    }

    /// Whether this backup is large enough for helper threads.
    fn helpers(&self) -> bool {
        self.plain_bytes >= HELPER_THREADS_FROM
    }

    /// An uncompressed backup: copy, then fsync, SHA-256 and the check of
    /// the temp file at the same time.
    fn plain(&self, progress: &mut dyn Progress) -> Result<Proven, BackupError> {
        let (plain, copy) = plain_copy(self.name, self.source, self.dir, self.target, progress)?;
        if !self.helpers() {
            self.sync_while(&plain, || verify::check_database(plain.path(), self.level))?;
            let sha256 = verify::sha256_file(plain.path()).map_err(|e| self.verify_error(e))?;
            return Ok((plain, sha256, copy));
        }
        let (synced, sha256, checked) = std::thread::scope(|scope| {
            let synced = scope.spawn(|| plain.file().sync_all());
            let sha256 = scope.spawn(|| verify::sha256_file(plain.path()));
            let checked = verify::check_database(plain.path(), self.level);
            (synced.join(), sha256.join(), checked)
        });
        synced
            .unwrap_or_else(|_| Err(panicked()))
            .map_err(BackupError::io(self.name, plain.path(), "cannot write"))?;
        checked.map_err(|e| self.verify_error(e))?;
        let sha256 = sha256
            .unwrap_or_else(|_| {
                Err(VerifyError::Io {
                    path: plain.path().to_path_buf(),
                    action: "cannot hash",
                    source: panicked(),
                })
            })
            .map_err(|e| self.verify_error(e))?;
        Ok((plain, sha256, copy))
    }

    /// A compressed backup: streamed (snapshot method) or compressed from a
    /// checked plain copy, read back while it is written, then proven as the
    /// module header says.
    fn compressed(&self, progress: &mut dyn Progress) -> Result<Proven, BackupError> {
        let pending = PendingFile::create(self.target).map_err(BackupError::io(
            self.name,
            self.dir,
            "cannot create a temp file",
        ))?;
        let writing = AtomicBool::new(true);
        let (copy, sha256, read) = std::thread::scope(|scope| {
            let follower = (self.level != VerifyLevel::None && self.helpers()).then(|| {
                let (path, writing) = (pending.path(), &writing);
                scope.spawn(move || verify::read_back_following(path, writing))
            });
            let written = {
                let _finished = Finished(&writing);
                self.write_compressed(&pending, &writing, progress)
            };
            let read = match follower {
                Some(follower) => Some(follower.join().unwrap_or_else(|_| {
                    Err(VerifyError::Io {
                        path: pending.path().to_path_buf(),
                        action: "cannot read back",
                        source: panicked(),
                    })
                })),
                None if self.level != VerifyLevel::None && written.is_ok() => {
                    Some(verify::read_back_following(pending.path(), &writing))
                }
                None => None,
            };
            written.map(|(copy, sha256)| (copy, sha256, read))
        })?;
        if let Some(read) = read {
            let read = read.map_err(|e| self.verify_error(e))?;
            if read.sha256 != sha256 || read.plain_bytes != copy.bytes() {
                return Err(self.verify_error(VerifyError::Damaged {
                    path: self.target.to_path_buf(),
                    detail: format!(
                        "the compressed file read back as {} bytes with SHA-256 {}, but {} bytes were written with SHA-256 {sha256}",
                        read.plain_bytes,
                        read.sha256,
                        copy.bytes()
                    ),
                }));
            }
        }
        if self.level == VerifyLevel::Full {
            let (plain, _) =
                verify::decoded_copy(pending.path(), true, self.dir, &mut super::progress::Quiet)
                    .map_err(|e| self.verify_error(e))?;
            verify::check_database(plain.path(), VerifyLevel::Full)
                .map_err(|e| self.verify_error(e))?;
        }
        Ok((pending, sha256, copy))
    }

    /// Writes the compressed file and turns `writing` off after its last
    /// byte; then fsyncs it while, for the snapshot method under `verify:
    /// quick`, `quick_check` runs in the read transaction the stream came
    /// from. Returns what the copy did and the stored file's SHA-256.
    fn write_compressed(
        &self,
        pending: &PendingFile,
        writing: &AtomicBool,
        progress: &mut dyn Progress,
    ) -> Result<(CopyStats, String), BackupError> {
        let written_all = || writing.store(false, Ordering::Release);
        if self.source.method() == CopyMethod::Snapshot {
            let proven = self.source.in_snapshot(|snapshot| {
                let written = compressed_write(self.name, self.helpers(), pending, |out| {
                    snapshot
                        .stream(out, pending.path(), progress)
                        .map_err(|e| self.copy_error(e))
                });
                written_all();
                let written = written?;
                let in_transaction = match self.level {
                    VerifyLevel::Quick => VerifyLevel::Quick,
                    _ => VerifyLevel::None,
                };
                self.sync_while(pending, || {
                    verify::check_connection(snapshot.connection(), snapshot.path(), in_transaction)
                })?;
                Ok(written)
            });
            return proven.map_err(|e| self.copy_error(e))?;
        }
        let (plain, copy) = plain_copy(self.name, self.source, self.dir, self.target, progress)?;
        verify::check_database(plain.path(), self.level).map_err(|e| self.verify_error(e))?;
        let written = compressed_write(self.name, self.helpers(), pending, |out| {
            let mut file = File::open(plain.path()).map_err(BackupError::io(
                self.name,
                plain.path(),
                "cannot read",
            ))?;
            io::copy(&mut file, out).map_err(BackupError::io(
                self.name,
                pending.path(),
                "cannot write",
            ))?;
            Ok(copy)
        });
        written_all();
        let written = written?;
        drop(plain);
        self.sync_while(pending, || Ok(()))?;
        Ok(written)
    }

    /// fsyncs `pending` while `check` runs on this thread.
    fn sync_while(
        &self,
        pending: &PendingFile,
        check: impl FnOnce() -> Result<(), VerifyError>,
    ) -> Result<(), BackupError> {
        if !self.helpers() {
            pending.file().sync_all().map_err(BackupError::io(
                self.name,
                pending.path(),
                "cannot write",
            ))?;
            return check().map_err(|e| self.verify_error(e));
        }
        let (synced, checked) = std::thread::scope(|scope| {
            let synced = scope.spawn(|| pending.file().sync_all());
            let checked = check();
            (synced.join(), checked)
        });
        synced
            .unwrap_or_else(|_| Err(panicked()))
            .map_err(BackupError::io(self.name, pending.path(), "cannot write"))?;
        checked.map_err(|e| self.verify_error(e))
    }
}

/// Turns a "still writing" flag off when dropped, so a reader following
/// the file always ends, whatever way the writing stopped.
struct Finished<'a>(&'a AtomicBool);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn panicked() -> io::Error {
    io::Error::other("a helper thread panicked")
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
    let store = LocalDir::new(request.backup_dir);
    let created_at = clock.now().trunc_subsecs(0);
    let key = free_key(state, &store, name, created_at, false);
    let pending = store.stage(&key).map_err(BackupError::store(name))?;
    let size = copy::copy_raw(&db.path, pending.file(), pending.path())
        .map_err(|source| BackupError::copy(name, source))?;
    let sha256 = verify::sha256_file(pending.path()).map_err(|source| BackupError::Verify {
        database: name.to_string(),
        source,
    })?;
    let new = BackupRecord {
        id: 0,
        database: name.to_string(),
        store: store.id(),
        key,
        created_at,
        size,
        sha256: Some(sha256),
        verified_at: None,
        method: Some("raw".to_string()),
        trigger: request.trigger,
        pinned: request.pin,
        duration_ms: None,
        seq: 0,
        source: None,
    };
    let record = land(state, &store, pending, new)?;
    tracing::warn!(db = name, path = %store.path(&record.key).display(), bytes = size, "raw copy of the damaged database kept (unverified)");
    Ok(record)
}

/// The first key for a copy of `database` taken at `at` that neither the
/// directory nor the catalog uses.
fn free_key(
    state: &StateDb,
    store: &LocalDir,
    database: &str,
    at: chrono::DateTime<chrono::Utc>,
    compressed: bool,
) -> Key {
    naming::free_key(database, at, compressed, |key| {
        store.path(key).exists()
            || state
                .backup_by_key(store.id(), key)
                .ok()
                .flatten()
                .is_some()
    })
}

/// Lands a finished copy under `new.key`: its manifest first (with the
/// next sequence number), then the copy put in place, then its catalog
/// row. A failure at any step removes what was written, so a listed copy
/// always has its manifest and its row.
fn land(
    state: &StateDb,
    store: &dyn Store,
    pending: PendingFile,
    mut new: BackupRecord,
) -> Result<BackupRecord, BackupError> {
    let name = new.database.clone();
    new.seq = state.next_backup_seq(&name)?;
    store
        .write_manifest(&new.key, &new)
        .map_err(BackupError::store(&name))?;
    if let Err(e) = store.put(&new.key, pending) {
        forget(store, &new.key);
        return Err(BackupError::store(&name)(e));
    }
    match state.insert_backup(&new) {
        Ok(id) => Ok(BackupRecord { id, ..new }),
        Err(e) => {
            forget(store, &new.key);
            Err(e.into())
        }
    }
}

/// Removes a copy that did not land; a failure is logged.
fn forget(store: &dyn Store, key: &Key) {
    if let Err(e) = store.delete(key) {
        tracing::error!(key = %key, error = %e, "cannot remove a failed backup");
    }
}

/// Writes what `feed` produces, zstd-compressed (with zstd's content
/// checksum; with `zstd_threads`, on all cores), into `pending`; returns
/// `feed`'s value and the SHA-256 of the compressed bytes stored.
fn compressed_write<T>(
    database: &str,
    zstd_threads: bool,
    pending: &PendingFile,
    feed: impl FnOnce(&mut dyn io::Write) -> Result<T, BackupError>,
) -> Result<(T, String), BackupError> {
    let failed = |action: &'static str| BackupError::io(database, pending.path(), action);
    let stored = Hashing::new(BufWriter::with_capacity(1 << 20, pending.file()));
    let mut encoder = zstd::Encoder::new(stored, ZSTD_LEVEL).map_err(failed("cannot compress"))?;
    if zstd_threads {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        encoder
            .multithread(workers)
            .map_err(failed("cannot compress"))?;
    }
    encoder
        .include_checksum(true)
        .map_err(failed("cannot compress"))?;
    let value = feed(&mut encoder)?;
    let stored = encoder.finish().map_err(failed("cannot write"))?;
    let (stored_sha, _, writer) = stored.finish();
    writer
        .into_inner()
        .map_err(|e| failed("cannot write")(e.into_error()))?;
    Ok((value, stored_sha))
}

/// Deletes one catalogued copy from its store (copy, manifest, durably),
/// then its catalog row.
pub fn remove(
    state: &StateDb,
    store: &dyn Store,
    backup: &BackupRecord,
) -> Result<(), BackupError> {
    store
        .delete(&backup.key)
        .map_err(BackupError::store(&backup.database))?;
    state.delete_backup(backup.id)?;
    Ok(())
}

/// Records a catalogued plain backup again after its content changed in
/// place (a restore's safety copy brought up to date): `quick_check`, then
/// its new size and SHA-256 in the catalog and the manifest.
pub fn reprove(
    state: &StateDb,
    store: &LocalDir,
    copy: &BackupRecord,
    clock: &dyn Clock,
) -> Result<(), BackupError> {
    let database = copy.database.as_str();
    let verify_error = |source| BackupError::Verify {
        database: database.to_string(),
        source,
    };
    let path = store.path(&copy.key);
    let verified = verify::check_database(&path, VerifyLevel::Quick).map_err(verify_error);
    let sha256 = verify::sha256_file(&path).map_err(verify_error)?;
    let size = std::fs::metadata(&path)
        .map_err(BackupError::io(database, &path, "cannot stat"))?
        .len();
    let verified_at = verified.is_ok().then(|| clock.now());
    state.set_backup_content(copy.id, size, &sha256, verified_at)?;
    manifest::refresh_from_catalog(state, store, &copy.key)?;
    verified
}

/// Removes the safety copy of a restore that then did not happen (its
/// source turned out damaged or foreign): nothing was replaced, so the copy
/// is only a duplicate. A failure is logged; the copy then stays.
pub fn discard(state: &StateDb, store: &dyn Store, copy: &BackupRecord) {
    let (database, place) = (copy.database.as_str(), store.location(&copy.key));
    match remove(state, store, copy) {
        Ok(()) => {
            tracing::info!(db = database, path = %place.display(), "the restore did not happen; its safety copy was removed")
        }
        Err(error) => {
            tracing::warn!(db = database, path = %place.display(), %error, "the restore did not happen; its safety copy stays")
        }
    }
}

//! The backup directory describes itself: one JSON manifest beside each
//! backup, and the catalog rebuilt from them.
//!
//! Owns `<backup>.json` files and [`sync_catalog`]. A manifest is written
//! with the crash-safe helper before its backup is renamed into place, and
//! rewritten atomically when the backup is pinned, unpinned or verified, so
//! the state database is only a cache: a lost or second state directory
//! rebuilds the same catalog (sequence, checksum, verification, pins,
//! trigger, source identity) from the directory. Backups without a manifest
//! (written before manifests existed) are added from their names, unverified.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::backup::{BackupError, database_dir};
use super::naming;
use crate::durable::PendingFile;
use crate::plan::identity::Identity;
use crate::state::StateDb;
use crate::state::catalog::{BackupRecord, BackupTrigger, NewBackup};

/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// What a backup file is, written beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The database it copies.
    pub database: String,
    /// The catalog's sequence number (higher is newer).
    pub seq: i64,
    /// When it was taken (the clock's time, as in its name).
    pub created_at: DateTime<Utc>,
    /// Size of the file in bytes.
    pub size: u64,
    /// SHA-256 of the file as stored.
    pub sha256: Option<String>,
    /// When it last passed verification.
    pub verified_at: Option<DateTime<Utc>>,
    /// How it was copied (`snapshot`, `api`, `vacuum`, `raw`).
    pub method: Option<String>,
    /// What caused it.
    pub trigger: BackupTrigger,
    /// Never pruned.
    pub pinned: bool,
    /// The source's `user_version` (migration version) when it was taken.
    pub migration_version: Option<i64>,
    /// What the source database looked like.
    pub source: Option<Identity>,
}

impl Manifest {
    /// The manifest of a catalogued backup.
    pub fn of(record: &BackupRecord, source: Option<&Identity>) -> Self {
        Manifest {
            format: FORMAT,
            database: record.database.clone(),
            seq: record.seq,
            created_at: record.created_at,
            size: record.size,
            sha256: record.sha256.clone(),
            verified_at: record.verified_at,
            method: record.method.clone(),
            trigger: record.trigger,
            pinned: record.pinned,
            migration_version: source.map(|s| s.user_version),
            source: source.cloned(),
        }
    }
}

/// The manifest path of the backup at `backup`.
pub fn path_of(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_os_string();
    name.push(".json");
    PathBuf::from(name)
}

/// Writes (or atomically replaces) the manifest of `backup`.
pub fn write(backup: &Path, manifest: &Manifest) -> io::Result<()> {
    let pending = PendingFile::create(&path_of(backup))?;
    let text = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
    (&mut pending.file()).write_all(&text)?;
    pending.commit_replacing()?;
    Ok(())
}

/// Reads the manifest of `backup`: `None` when it has none; an unreadable
/// one is logged and treated as none (the backup then counts as unverified).
pub fn read(backup: &Path) -> Option<Manifest> {
    let path = path_of(backup);
    let text = match crate::regular::open_io(&path).and_then(|mut file| {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut file, &mut bytes).map(|_| bytes)
    }) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read a backup manifest; the backup counts as unverified");
            return None;
        }
    };
    match serde_json::from_slice::<Manifest>(&text) {
        Ok(manifest) if manifest.format <= FORMAT => Some(manifest),
        Ok(manifest) => {
            tracing::warn!(path = %path.display(), format = manifest.format, "backup manifest from a newer litewarden; the backup counts as unverified");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "damaged backup manifest; the backup counts as unverified");
            None
        }
    }
}

/// Rewrites the manifest of a catalogued backup after its catalog row
/// changed (pinned, verified), keeping the source identity it recorded.
pub fn refresh(record: &BackupRecord) -> io::Result<()> {
    let source = read(&record.path).and_then(|m| m.source);
    write(&record.path, &Manifest::of(record, source.as_ref()))
}

/// Re-reads the catalog row of the backup at `path` and rewrites its
/// manifest from it (after a pin, unpin or verification).
pub fn refresh_from_catalog(state: &StateDb, path: &Path) -> Result<(), BackupError> {
    if let Some(record) = state.backup_by_path(path)? {
        refresh(&record).map_err(BackupError::io(
            &record.database,
            path,
            "cannot write the manifest",
        ))?;
    }
    Ok(())
}

/// Removes the manifest of a removed backup (a missing one is fine).
pub fn remove(backup: &Path) -> io::Result<()> {
    match std::fs::remove_file(path_of(backup)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The newest manifest (highest sequence) of `database` whose backup file
/// exists and that `wanted` selects; read from the directory alone, for
/// when the state database knows nothing.
pub fn newest(
    backup_dir: &Path,
    database: &str,
    wanted: impl Fn(&Manifest) -> bool,
) -> Option<(PathBuf, Manifest)> {
    backup_files(backup_dir, database)
        .ok()?
        .into_iter()
        .filter_map(|(path, _)| read(&path).map(|m| (path, m)))
        .filter(|(_, m)| m.database == database && wanted(m))
        .max_by_key(|(_, m)| m.seq)
}

/// Backup files of `database` in its directory, by name.
fn backup_files(
    backup_dir: &Path,
    database: &str,
) -> io::Result<Vec<(PathBuf, naming::ParsedName)>> {
    let dir = database_dir(backup_dir, database);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(parsed) = naming::parse(database, &file_name) {
            found.push((entry.path(), parsed));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Which of `backups` (newest first) to restore as "latest": the first
/// whose manifest says its source had tables. A database emptied by
/// accident goes on being backed up, and those backups must not become what
/// a restore brings back while an older one holds the data; when none says
/// so (no manifests, or every one empty), the newest. Returns its index.
pub fn prefer_data<'a>(backups: impl IntoIterator<Item = &'a Path>) -> usize {
    let mut first_unknown = None;
    for (i, path) in backups.into_iter().enumerate() {
        match read(path).and_then(|m| m.source) {
            Some(source) if !source.tables.is_empty() => return first_unknown.unwrap_or(i),
            Some(_) => {}
            None => {
                first_unknown.get_or_insert(i);
            }
        }
    }
    first_unknown.unwrap_or(0)
}

/// A backup file found in the directory, as the catalog or its manifest
/// describes it (read-only: nothing is catalogued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The file.
    pub path: PathBuf,
    /// Its sequence (catalog, manifest, or 0 when only its name is known).
    pub seq: i64,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Whether it passed verification.
    pub verified: bool,
    /// What caused it.
    pub trigger: BackupTrigger,
}

/// Every backup file of `database` in the directory, newest (by sequence,
/// then name time) first, described by the catalog when `state` knows it and
/// by its manifest otherwise. Changes nothing.
pub fn inventory(
    state: Option<&StateDb>,
    database: &str,
    backup_dir: &Path,
) -> Result<Vec<Found>, BackupError> {
    let dir = database_dir(backup_dir, database);
    let files = backup_files(backup_dir, database).map_err(BackupError::io(
        database,
        &dir,
        "cannot list",
    ))?;
    let mut found = Vec::with_capacity(files.len());
    for (path, parsed) in files {
        let record = match state {
            Some(state) => state.backup_by_path(&path)?,
            None => None,
        };
        let entry = match (record, read(&path).filter(|m| m.database == database)) {
            (Some(record), manifest) => Found {
                seq: record.seq,
                created_at: record.created_at,
                verified: record.verified() || manifest.is_some_and(|m| m.verified_at.is_some()),
                trigger: record.trigger,
                path,
            },
            (None, Some(manifest)) => Found {
                seq: manifest.seq,
                created_at: manifest.created_at,
                verified: manifest.verified_at.is_some(),
                trigger: manifest.trigger,
                path,
            },
            (None, None) => Found {
                seq: 0,
                created_at: parsed.created_at,
                verified: false,
                trigger: BackupTrigger::Rebuilt,
                path,
            },
        };
        found.push(entry);
    }
    found.sort_by(|a, b| b.seq.cmp(&a.seq).then(b.created_at.cmp(&a.created_at)));
    Ok(found)
}

/// What [`sync_catalog`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatalogSync {
    /// Backup files found on disk and added (from their manifest, or
    /// unverified from their name).
    pub added: Vec<PathBuf>,
    /// Catalogued backups whose file is gone, removed from the catalog.
    pub missing: Vec<PathBuf>,
}

/// Brings the catalog of `database` in line with `<backup_dir>/<database>/`:
/// files not catalogued (a lost or second state directory) are added from
/// their manifest, or from their name as unverified; pins and verifications
/// recorded in manifests (by another state directory) are taken over; rows
/// whose file is gone are dropped, but only once the directory could be
/// listed: a backup directory that is unreachable (an unmounted disk, a
/// directory replaced by a file) changes nothing in the catalog.
pub fn sync_catalog(
    state: &StateDb,
    database: &str,
    backup_dir: &Path,
) -> Result<CatalogSync, BackupError> {
    let dir = database_dir(backup_dir, database);
    let io = |action: &'static str| BackupError::io(database, &dir, action);
    let mut sync = CatalogSync::default();
    let found = backup_files(backup_dir, database).map_err(io("cannot list"))?;
    for record in state.backups(database)? {
        if !record.path.exists() {
            state.delete_backup(record.id)?;
            tracing::warn!(db = database, path = %record.path.display(), "catalogued backup is gone; removed from the catalog");
            sync.missing.push(record.path);
        }
    }
    let mut unnamed = Vec::new();
    for (path, parsed) in found {
        let manifest = read(&path).filter(|m| m.database == database);
        if let Some(record) = state.backup_by_path(&path)? {
            if let Some(manifest) = &manifest {
                take_over(state, &record, manifest)?;
            }
            continue;
        }
        match manifest {
            Some(manifest) => {
                state.insert_backup(&NewBackup {
                    database,
                    path: &path,
                    created_at: manifest.created_at,
                    size: manifest.size,
                    sha256: manifest.sha256.as_deref(),
                    verified_at: manifest.verified_at,
                    method: manifest.method.as_deref(),
                    trigger: manifest.trigger,
                    pinned: manifest.pinned,
                    duration_ms: None,
                    seq: Some(manifest.seq),
                })?;
                tracing::info!(db = database, path = %path.display(), "backup added to the catalog from its manifest");
                sync.added.push(path);
            }
            None => unnamed.push((path, parsed)),
        }
    }
    unnamed.sort_by_key(|(_, parsed)| parsed.created_at);
    for (path, parsed) in unnamed {
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
            seq: None,
        })?;
        tracing::info!(db = database, path = %path.display(), "backup file added to the catalog from its name (unverified; no manifest)");
        sync.added.push(path);
    }
    Ok(sync)
}

/// Takes over what a manifest says that the catalog row does not: a pin or
/// a verification recorded through another state directory.
fn take_over(
    state: &StateDb,
    record: &BackupRecord,
    manifest: &Manifest,
) -> Result<(), BackupError> {
    if manifest.pinned != record.pinned {
        state.set_pinned(record.id, manifest.pinned)?;
    }
    if let (Some(at), Some(sha)) = (manifest.verified_at, &manifest.sha256)
        && record.verified_at.is_none_or(|mine| mine < at)
    {
        state.mark_verified(record.id, sha, at)?;
    }
    Ok(())
}

//! Where a restore reads from: the newest verified copy, one taken
//! before a time or a migration, a named file, or a copy on the offsite
//! store (downloaded to a locked temp beside the backups first).
//!
//! Owns [`RestoreSource`] and its resolution to a local file
//! ([`resolve`], giving a [`Resolved`]); the restore itself is the parent
//! module's.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::{RestoreError, RestoreRequest};
use crate::jobs::backup::BackupError;
use crate::jobs::manifest::sync_catalog;
use crate::state::{StateDb, StateError};
use crate::store::{BackupRecord, BackupTrigger, Fetched, LocalDir, Store, StoreId};

/// Where to restore from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreSource {
    /// The newest verified backup in the catalog.
    Latest,
    /// A backup or database file.
    File(PathBuf),
    /// The pre-migration backup recorded on a migration's tracking row: the
    /// migration named by its version (`4`), file name (`0004_bad.sql`,
    /// `0004_bad`) or name (`bad`).
    BeforeMigration(String),
    /// The newest verified backup taken before this time (`--before`).
    Before(DateTime<Utc>),
    /// A copy on the database's offsite store: the newest verified one
    /// (`remote:latest`), or the one with this file name (`remote:NAME`).
    Remote(Option<String>),
    /// The database's replica at this point (`--at`), or at its newest.
    Replica(Option<DateTime<Utc>>),
}

impl RestoreSource {
    /// `--from` as given: `latest`, `replica`, `remote:latest`,
    /// `remote:NAME` or a file.
    pub fn parse_from(from: &str) -> Self {
        match from.strip_prefix("remote:") {
            Some("latest") | Some("") => RestoreSource::Remote(None),
            Some(name) => RestoreSource::Remote(Some(name.to_string())),
            None if from == "latest" => RestoreSource::Latest,
            None if from == "replica" => RestoreSource::Replica(None),
            None => RestoreSource::File(PathBuf::from(from)),
        }
    }
}

/// A restore's source, resolved to a local file: the copy (or a download
/// of it, removed when this is dropped) and its catalog record when it is
/// a catalogued copy.
#[derive(Debug)]
pub struct Resolved {
    /// The local file to restore from.
    pub path: PathBuf,
    /// What the catalog records of it.
    pub record: Option<BackupRecord>,
    /// Where it came from, for messages: the file, or the remote URL.
    pub shown: PathBuf,
    /// The replica's point it holds, when rebuilt from the replica.
    pub point: Option<crate::replicate::rebuild::Rebuilt>,
    _download: Option<Fetched>,
}

impl Resolved {
    /// A local file; its record is looked up by its place in the backup
    /// directory.
    pub fn local(path: PathBuf) -> Self {
        Resolved {
            shown: path.clone(),
            path,
            record: None,
            point: None,
            _download: None,
        }
    }
}

/// Downloads the remote copy `name` (the newest verified one when `None`)
/// of the database of `request`, the catalog first rebuilt from the
/// remote manifests.
fn resolve_remote(
    request: &RestoreRequest,
    state: &StateDb,
    name: Option<&str>,
) -> Result<Resolved, RestoreError> {
    let database = request.database.name.as_str();
    let remote =
        crate::jobs::offsite::open(request.database, request.backup_dir).map_err(Box::new)?;
    sync_catalog(state, &*remote, database)?;
    let chosen = match name {
        None => crate::jobs::manifest::latest_verified(state, &*remote, database)?
            .ok_or_else(|| RestoreError::NoBackup(database.to_string()))?,
        Some(wanted) => crate::jobs::manifest::restorable(state, &*remote, database)?
            .into_iter()
            .find(|b| b.key.file_name() == wanted || b.key.as_str() == wanted)
            .ok_or_else(|| RestoreError::NoRemoteCopy {
                database: database.to_string(),
                name: wanted.to_string(),
            })?,
    };
    let fetched = remote
        .fetch(&chosen.key)
        .map_err(BackupError::store(database))?;
    tracing::info!(db = database, key = %chosen.key, from = %remote.location(&chosen.key).display(), "remote copy downloaded");
    Ok(Resolved {
        path: fetched.path().to_path_buf(),
        shown: remote.location(&chosen.key),
        record: Some(chosen),
        point: None,
        _download: Some(fetched),
    })
}

/// Rebuilds the replica of the database of `request` at `at` (its newest
/// point when `None`) into a locked temp beside the restore's target (the
/// replica's disk may be the full one); from the
/// offsite store's copy of the replica (downloaded first) when the local
/// one does not reach the point and the database replicates there.
fn resolve_replica(
    request: &RestoreRequest,
    at: Option<DateTime<Utc>>,
) -> Result<Resolved, RestoreError> {
    let database = request.database.name.as_str();
    let local = crate::replicate::catalog::replica_dir(request.backup_dir, database);
    let target = request.to.as_deref().unwrap_or(&request.database.path);
    let beside = crate::durable::parent(target).to_path_buf();
    let write = |source: std::io::Error| RestoreError::Write {
        database: database.to_string(),
        path: beside.clone(),
        detail: format!("cannot create the rebuilt copy: {source}"),
    };
    crate::durable::create_private_dir(&beside).map_err(write)?;
    let covered = crate::replicate::catalog::generations(&local).is_ok_and(|generations| {
        generations
            .iter()
            .any(|g| at.is_none_or(|at| g.started <= at))
    });
    let offsite = request
        .database
        .replicate
        .as_ref()
        .is_some_and(|r| r.to == crate::config::ReplicateTo::Offsite);
    let download = if !covered && offsite {
        let dir = tempfile::Builder::new()
            .prefix(".lw-replica-download-")
            .tempdir_in(&beside)
            .map_err(write)?;
        let mirror = crate::replicate::mirror::open(request.database, request.backup_dir)
            .map_err(Box::new)?;
        mirror
            .download(at, dir.path())
            .map_err(BackupError::store(database))?;
        tracing::info!(db = database, "replica downloaded from the offsite store");
        Some(dir)
    } else {
        None
    };
    let replica = download.as_ref().map_or(local.as_path(), |dir| dir.path());
    let (file, temp) = crate::durable::locked_temp(&beside, ".db").map_err(write)?;
    let rebuilt = crate::replicate::rebuild::rebuild(database, replica, at, &file, &temp)?;
    tracing::info!(db = database, generation = rebuilt.generation, point = %rebuilt.point, commits = rebuilt.commits, "replica rebuilt");
    Ok(Resolved {
        path: temp.to_path_buf(),
        shown: local.join(&rebuilt.generation),
        record: None,
        point: Some(rebuilt),
        _download: Some(Fetched::temporary(file, temp)),
    })
}

/// The next older verified copy than `failed` on the offsite store.
pub fn older_remote(
    state: &StateDb,
    database: &str,
    failed: &BackupRecord,
) -> Result<Option<String>, StateError> {
    Ok(state
        .backups(database)?
        .into_iter()
        .filter(|b| {
            b.store == StoreId::Offsite
                && b.verified()
                && b.trigger != BackupTrigger::PreRestore
                && b.seq < failed.seq
        })
        .max_by_key(|b| b.seq)
        .map(|b| b.key.file_name().to_string()))
}

/// Resolves the source of a restore to a local file: a copy in the backup
/// directory, a named file, or a download of a remote copy.
pub fn resolve(request: &RestoreRequest, state: &StateDb) -> Result<Resolved, RestoreError> {
    let name = request.database.name.as_str();
    let store = LocalDir::new(request.backup_dir);
    match &request.from {
        RestoreSource::Remote(copy) => resolve_remote(request, state, copy.as_deref()),
        RestoreSource::Replica(at) => resolve_replica(request, *at),
        RestoreSource::Latest => {
            sync_catalog(state, &store, name)?;
            let latest = crate::jobs::manifest::latest_verified(state, &store, name)?
                .ok_or_else(|| RestoreError::NoBackup(name.to_string()))?;
            fetched(&store, &latest).map(Resolved::local)
        }
        RestoreSource::File(path) => Ok(Resolved::local(crate::paths::from_cwd(path))),
        RestoreSource::Before(before) => {
            sync_catalog(state, &store, name)?;
            let verified = crate::jobs::manifest::restorable(state, &store, name)?;
            let chosen = verified
                .iter()
                .filter(|b| b.created_at < *before)
                .max_by_key(|b| b.seq)
                .ok_or_else(|| RestoreError::NoBackupBefore {
                    database: name.to_string(),
                    before: before.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                    oldest: verified
                        .iter()
                        .min_by_key(|b| b.seq)
                        .map_or("none".into(), |b| {
                            b.created_at.format("%Y-%m-%d %H:%M:%SZ").to_string()
                        }),
                })?;
            fetched(&store, chosen).map(Resolved::local)
        }
        RestoreSource::BeforeMigration(reference) => {
            let applied =
                crate::jobs::migrations::runner::read_applied_read_only(&request.database.path)
                    .map_err(|source| RestoreError::Write {
                        database: name.to_string(),
                        path: request.database.path.clone(),
                        detail: source.to_string(),
                    })?;
            let Some(row) = applied.iter().find(|row| names_migration(reference, row)) else {
                return Err(RestoreError::NotApplied {
                    database: name.to_string(),
                    reference: reference.clone(),
                    applied: applied
                        .iter()
                        .map(|row| format!("{:04}_{}", row.version, row.name))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            row.backup_path
                .as_ref()
                .map(|path| Resolved::local(PathBuf::from(path)))
                .ok_or_else(|| RestoreError::NoMigrationBackup {
                    database: name.to_string(),
                    version: row.version,
                })
        }
    }
}

/// The local file holding the catalogued copy `backup`.
fn fetched(store: &dyn Store, backup: &BackupRecord) -> Result<PathBuf, RestoreError> {
    let fetched = store
        .fetch(&backup.key)
        .map_err(BackupError::store(&backup.database))?;
    Ok(fetched.path().to_path_buf())
}

/// Whether `reference` names the applied migration `row`: its version
/// (`4`, `0004`), file name (`0004_bad.sql`, `0004_bad`) or name (`bad`).
fn names_migration(reference: &str, row: &crate::jobs::migrations::AppliedMigration) -> bool {
    let reference = reference.trim();
    if let Ok(version) = reference.parse::<i64>() {
        return version == row.version;
    }
    let stem = reference
        .strip_suffix(".up.sql")
        .or_else(|| reference.strip_suffix(".sql"))
        .unwrap_or(reference);
    match crate::jobs::migrations::files::parse_name(&format!("{stem}.sql")) {
        Some((version, name, _)) => version == row.version && name == row.name,
        None => stem == row.name,
    }
}

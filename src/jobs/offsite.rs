//! The offsite job: every verified local copy that has not reached the
//! database's offsite store yet is uploaded, oldest first, then the remote
//! retention runs.
//!
//! Owns what is waiting ([`pending`]) and the upload of each copy. The
//! backlog is the catalog itself: a verified local copy newer than the
//! newest one that reached the remote, with no offsite row of its own, is
//! waiting (when nothing reached the remote yet, the newest verified copy
//! is). So a remote that is down for a day leaves the backlog in state.db,
//! and the next run uploads it in order. Each upload writes the manifest
//! first and the copy create-only after it (a crash leaves at most a
//! manifest without a copy, which no listing counts as a copy), hashes the
//! bytes it sends and compares them with the local copy's recorded hash,
//! and only then records the offsite row. Nothing here changes or removes
//! a local copy.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backup::BackupError;
use super::manifest::sync_listed;
use super::prune;
use crate::clock::Clock;
use crate::config::{Database, Offsite};
use crate::state::{StateDb, StateError};
use crate::store::{BackupRecord, Key, LocalDir, OpenError, Store, StoreError, StoreId};

/// Why an offsite run failed. The local copies are untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum OffsiteError {
    /// The database has no `offsite:`.
    #[error(
        "database `{0}` has no offsite store; add `offsite:` under settings or the database's backup"
    )]
    NotConfigured(String),
    /// This build has no offsite store (the Python package's).
    #[error(
        "database `{0}`: this build of litewarden has no offsite store (the Python package leaves it to the daemon); run `litewarden offsite {0}`"
    )]
    NotBuilt(String),
    /// The store cannot be opened (credentials, directory).
    #[error("database `{database}`: {source}")]
    Open {
        /// The database.
        database: String,
        /// The cause.
        #[source]
        source: OpenError,
    },
    /// A request to the store failed.
    #[error(
        "offsite copy of `{database}` failed: {source}; the local copies are kept and the upload is retried"
    )]
    Store {
        /// The database.
        database: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The bytes read while uploading are not those the copy was verified
    /// with: the local copy changed after its backup.
    #[error(
        "offsite copy of `{database}` refused: {key} hashes to {read} while uploading, but its backup recorded {recorded}; the local copy changed after it was verified (run `litewarden verify {database}`); the uploaded object was removed"
    )]
    Changed {
        /// The database.
        database: String,
        /// The copy.
        key: Key,
        /// The hash read.
        read: String,
        /// The hash recorded.
        recorded: String,
    },
    /// A remote copy failed its verification after the download.
    #[error("database `{database}`: the remote copy {} failed verification: {source}", crate::paths::display(.copy))]
    Refused {
        /// The database.
        database: String,
        /// The remote copy.
        copy: std::path::PathBuf,
        /// Why.
        #[source]
        source: super::verify::VerifyError,
    },
    /// No remote copy has that name.
    #[error(
        "no verified or unverified copy named `{name}` is on the offsite store of {databases}; see `litewarden backups DB --remote`"
    )]
    Unknown {
        /// The name asked for.
        name: String,
        /// The databases searched.
        databases: String,
    },
    /// The catalog could not be synced or pruned.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What an offsite run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The copies uploaded (their offsite records), oldest first.
    pub uploaded: Vec<BackupRecord>,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Remote copies the remote retention removed.
    pub pruned: Vec<BackupRecord>,
    /// The newest copy on the remote after the run, if any.
    pub newest: Option<DateTime<Utc>>,
}

/// Opens the offsite store of `database`, credentials from the process
/// environment, downloads under `backup_dir`.
#[cfg(feature = "offsite")]
pub fn open(database: &Database, backup_dir: &Path) -> Result<Box<dyn Store>, OffsiteError> {
    let name = database.name.as_str();
    let offsite = configured(database)?;
    crate::store::Remote::open(
        offsite,
        &|variable| std::env::var(variable).ok(),
        backup_dir,
    )
    .map(|remote| Box::new(remote) as Box<dyn Store>)
    .map_err(|source| OffsiteError::Open {
        database: name.to_string(),
        source,
    })
}

/// Without the `offsite` feature (the Python package) no store opens.
#[cfg(not(feature = "offsite"))]
pub fn open(database: &Database, _backup_dir: &Path) -> Result<Box<dyn Store>, OffsiteError> {
    configured(database)?;
    Err(OffsiteError::NotBuilt(database.name.to_string()))
}

/// The offsite settings of `database`.
pub fn configured(database: &Database) -> Result<&Offsite, OffsiteError> {
    database
        .backup
        .offsite
        .as_deref()
        .ok_or_else(|| OffsiteError::NotConfigured(database.name.to_string()))
}

/// The verified local copies of `database` waiting for their upload,
/// oldest first: those newer (by the catalog's sequence, which offsite
/// rows share with their local copy) than the newest verified copy on the
/// remote, or the newest one when none reached it yet. A remote object
/// known only by its name (no manifest: not uploaded by litewarden, or
/// from before manifests) is unverified and holds back nothing.
pub fn pending(state: &StateDb, database: &str) -> Result<Vec<BackupRecord>, StateError> {
    let backups = state.backups(database)?;
    let remote: HashSet<&Key> = backups
        .iter()
        .filter(|b| b.store == StoreId::Offsite)
        .map(|b| &b.key)
        .collect();
    let local: Vec<&BackupRecord> = backups
        .iter()
        .filter(|b| b.store == StoreId::Local && b.verified() && b.sha256.is_some())
        .collect();
    let reached = backups
        .iter()
        .filter(|b| b.store == StoreId::Offsite && b.verified())
        .map(|b| b.seq)
        .max();
    let mut waiting: Vec<BackupRecord> = match reached {
        Some(seq) => local
            .into_iter()
            .filter(|b| b.seq > seq && !remote.contains(&b.key))
            .cloned()
            .collect(),
        None => local.into_iter().take(1).cloned().collect(),
    };
    waiting.sort_by_key(|b| b.seq);
    Ok(waiting)
}

/// Uploads what is waiting for `database` to `remote`, then applies the
/// remote retention.
pub fn run(
    database: &Database,
    remote: &dyn Store,
    backup_dir: &Path,
    state: &StateDb,
    timezone: chrono_tz::Tz,
    clock: &dyn Clock,
) -> Result<Report, OffsiteError> {
    let name = database.name.as_str();
    let failed = |source| OffsiteError::Store {
        database: name.to_string(),
        source,
    };
    let listed = remote.list(name).map_err(failed)?;
    sync_listed(state, remote, name, &listed)?;
    let local = LocalDir::new(backup_dir);
    let mut report = Report::default();
    for copy in pending(state, name)? {
        let file = match local.fetch(&copy.key) {
            Ok(file) => file,
            Err(gone) if gone.is_not_found() => {
                tracing::warn!(db = name, key = %copy.key, "a copy waiting for its upload is gone from the backup directory; the catalog forgets it and the next one goes up");
                super::manifest::sync_catalog(state, &local, name)?;
                continue;
            }
            Err(e) => return Err(failed(e)),
        };
        let at = clock.now();
        let record = BackupRecord {
            id: 0,
            store: StoreId::Offsite,
            verified_at: Some(at),
            duration_ms: None,
            ..copy.clone()
        };
        remote.write_manifest(&copy.key, &record).map_err(failed)?;
        let written = remote.put_file(&copy.key, file.path()).map_err(failed)?;
        let recorded = copy.sha256.clone().unwrap_or_default();
        if written.sha256 != recorded || written.size != copy.size {
            let _ = remote.delete(&copy.key);
            return Err(OffsiteError::Changed {
                database: name.to_string(),
                key: copy.key,
                read: written.sha256,
                recorded,
            });
        }
        state.insert_backup(&record)?;
        tracing::info!(db = name, key = %copy.key, bytes = written.size, to = %remote.location(&copy.key).display(), "copy uploaded to the offsite store");
        report.bytes += written.size;
        report.uploaded.push(record);
    }
    let entries = prune::decide_catalogued(state, database, remote, timezone, clock.now())?;
    report.pruned = prune::remove(state, remote, &entries)?;
    report.newest = state
        .backups(name)?
        .into_iter()
        .filter(|b| b.store == StoreId::Offsite)
        .map(|b| b.created_at)
        .max();
    Ok(report)
}

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteVerified {
    /// The copy's record (verified now).
    pub record: BackupRecord,
    /// Where it is.
    pub copy: std::path::PathBuf,
    /// The SHA-256 of the object.
    pub sha256: String,
}

/// Downloads the remote copy `key` of `database` and verifies it in full
/// (hash against its manifest, then `integrity_check`); a pass is recorded
/// in the catalog and the remote manifest.
pub fn verify(
    database: &Database,
    key: &Key,
    backup_dir: &Path,
    state: &StateDb,
    clock: &dyn Clock,
    progress: &mut dyn super::progress::Progress,
) -> Result<RemoteVerified, OffsiteError> {
    let name = database.name.as_str();
    let remote = open(database, backup_dir)?;
    let failed = |source| OffsiteError::Store {
        database: name.to_string(),
        source,
    };
    let listed = remote.list(name).map_err(failed)?;
    sync_listed(state, &*remote, name, &listed)?;
    let record =
        state
            .backup_by_key(StoreId::Offsite, key)?
            .ok_or_else(|| OffsiteError::Unknown {
                name: key.to_string(),
                databases: name.to_string(),
            })?;
    let fetched = remote.fetch(key).map_err(failed)?;
    let copy = remote.location(key);
    let verified = super::verify::verify_file(
        fetched.path(),
        record.sha256.as_deref(),
        crate::config::VerifyLevel::Full,
        backup_dir,
        progress,
    )
    .map_err(|source| OffsiteError::Refused {
        database: name.to_string(),
        copy: copy.clone(),
        source,
    })?;
    state.mark_verified(record.id, &verified.sha256, clock.now())?;
    super::manifest::refresh_from_catalog(state, &*remote, key)?;
    let record = state
        .backup_by_key(StoreId::Offsite, key)?
        .unwrap_or(record);
    Ok(RemoteVerified {
        record,
        copy,
        sha256: verified.sha256,
    })
}

/// How far the offsite store is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Age of the newest remote copy, when one exists.
    pub newest_age: Option<chrono::TimeDelta>,
    /// Whether it is past `max_age_lag`: the newest remote copy is older,
    /// or (none reached the remote) the oldest copy waiting is.
    pub stale: bool,
}

/// The offsite lag of `database` at `now`, from the catalog alone (no
/// request to the store); `None` without `offsite:`.
pub fn lag(
    state: &StateDb,
    database: &Database,
    now: DateTime<Utc>,
) -> Result<Option<Lag>, StateError> {
    let Some(offsite) = database.backup.offsite.as_deref() else {
        return Ok(None);
    };
    let name = database.name.as_str();
    let newest = state
        .backups(name)?
        .into_iter()
        .filter(|b| b.store == StoreId::Offsite)
        .map(|b| b.created_at)
        .max();
    let reference = match newest {
        Some(at) => Some(at),
        None => pending(state, name)?.first().map(|b| b.created_at),
    };
    let limit = chrono::TimeDelta::from_std(offsite.max_age_lag).unwrap_or(chrono::TimeDelta::MAX);
    Ok(Some(Lag {
        newest_age: newest.map(|at| now - at),
        stale: reference.is_some_and(|at| now - at > limit),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BackupTrigger, naming};

    fn record(store: StoreId, seq: i64, verified: bool) -> BackupRecord {
        let at = DateTime::from_timestamp(1_800_000_000 + seq * 3600, 0).unwrap();
        BackupRecord {
            id: 0,
            database: "app".into(),
            store,
            key: Key::new("app", &naming::file_name("app", at, 0, true)),
            created_at: at,
            size: 1,
            sha256: Some("ab".into()),
            verified_at: verified.then_some(at),
            method: None,
            trigger: BackupTrigger::Schedule,
            pinned: false,
            duration_ms: None,
            seq,
            source: None,
        }
    }

    fn waiting(rows: &[BackupRecord]) -> Vec<i64> {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        for row in rows {
            state.insert_backup(row).unwrap();
        }
        pending(&state, "app")
            .unwrap()
            .iter()
            .map(|b| b.seq)
            .collect()
    }

    #[test]
    fn what_waits_is_every_verified_copy_newer_than_the_newest_verified_remote_one() {
        use StoreId::{Local, Offsite};
        assert_eq!(
            waiting(&[record(Local, 1, true), record(Local, 2, true)]),
            [2],
            "none reached it: the newest"
        );
        assert_eq!(
            waiting(&[
                record(Local, 2, true),
                record(Offsite, 1, true),
                record(Local, 3, false),
                record(Local, 4, true)
            ]),
            [2, 4],
            "oldest first, unverified local copies never"
        );
        let mut named_only = record(Offsite, 9, false);
        named_only.key = Key::new("app", "app-20261200T000000Z.db");
        assert_eq!(
            waiting(&[record(Local, 1, true), named_only]),
            [1],
            "a remote object known only by its name holds back nothing"
        );
    }
}

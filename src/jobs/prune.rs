//! Applying retention to the backups of one database.
//!
//! Owns deleting backup copies, through their store. Only catalogued copies
//! are candidates (the catalog lists only copies litewarden created), the
//! decision is the pure
//! [`retention::select`], and a dry run shows the same decisions without
//! deleting. Protected whatever the rules say: a backup a running restore
//! reads, the newest verified backups from before an unaccepted
//! discontinuity, a pre-migration backup until a migration run succeeds
//! after it, and a pre-restore safety copy for [`SAFETY_COPY_KEEP`] (safety
//! copies never take a rule's slot).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use serde::Serialize;

use super::backup::BackupError;
use super::manifest::sync_catalog;
use super::retention::{self, Candidate, KeepReason};
use crate::config::{Database, JobKind};
use crate::state::StateDb;
use crate::store::{BackupRecord, BackupTrigger, Key, Store, StoreId};

/// One backup and the verdict on it.
#[derive(Debug, Clone, Serialize)]
pub struct PruneEntry {
    /// The backup.
    pub backup: BackupRecord,
    /// Where its copy is (a file in the backup directory).
    pub path: PathBuf,
    /// Why it is kept; empty when it goes.
    pub reasons: Vec<KeepReason>,
    /// Its name's time is later than a newer backup's or than now (written
    /// under a clock that ran ahead).
    pub dated_in_future: bool,
}

impl PruneEntry {
    /// Whether it is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// How long a pre-restore safety copy is kept (it never counts toward the
/// retention rules).
pub const SAFETY_COPY_KEEP: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// How many verified backups from before an unaccepted discontinuity are
/// kept at least (more when `keep_last` is larger).
pub const KEEP_BEFORE_DISCONTINUITY: u32 = 3;

/// The verdict on every backup of `database`, newest first (the catalog is
/// synced with the directory first). `accept_discontinuity` decides as if
/// the open discontinuities were accepted (`prune --accept-discontinuity`).
pub fn decide(
    state: &StateDb,
    database: &Database,
    store: &dyn Store,
    timezone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<Vec<PruneEntry>, BackupError> {
    sync_catalog(state, store, database.name.as_str())?;
    decide_catalogued(state, database, store, timezone, now)
}

/// [`decide`] over the catalog as it is (the caller synced it). The
/// offsite store has its own retention (`offsite.retention`); in the local
/// store a copy waiting for its upload is kept, unless the backup disk has
/// less free space than `health.min_free_disk` (then it is logged).
pub fn decide_catalogued(
    state: &StateDb,
    database: &Database,
    store: &dyn Store,
    timezone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<Vec<PruneEntry>, BackupError> {
    let name = database.name.as_str();
    let mut backups = state.backups(name)?;
    backups.retain(|b| b.store == store.id());
    let retention = match (store.id(), &database.backup.offsite) {
        (StoreId::Offsite, Some(offsite)) => &offsite.retention,
        _ => &database.backup.retention,
    };
    let awaiting_upload = awaiting_upload(state, database, store)?;
    let last_migration = state.last_success(JobKind::Migrate, name)?;
    let readers: Vec<_> = state
        .readers()?
        .into_iter()
        .filter(|r| process_alive(r.pid))
        .collect();
    let mut before_discontinuity: BTreeMap<i64, String> = BTreeMap::new();
    for discontinuity in state.open_discontinuities(name)? {
        let why = format!(
            "before discontinuity {} (`litewarden accept {name}` releases it)",
            discontinuity.detected_at.format("%Y-%m-%d %H:%M:%SZ")
        );
        let keep = retention.keep_last.max(KEEP_BEFORE_DISCONTINUITY) as usize;
        for backup in backups
            .iter()
            .filter(|b| b.seq <= discontinuity.last_seq && b.verified() && counted(b))
            .take(keep)
        {
            before_discontinuity
                .entry(backup.id)
                .or_insert_with(|| why.clone());
        }
    }
    let candidates: Vec<Candidate> = backups
        .iter()
        .map(|b| {
            let reader = readers.iter().find(|r| r.path == store.location(&b.key));
            let protected = if let Some(reader) = reader {
                Some(format!(
                    "being read by {} (pid {})",
                    reader.reason, reader.pid
                ))
            } else if let Some(why) = before_discontinuity.get(&b.id) {
                Some(why.clone())
            } else if b.trigger == BackupTrigger::PreMigration
                && last_migration.is_none_or(|at| at <= b.created_at)
            {
                Some("pre-migration, until the next successful migration".to_string())
            } else if !counted(b) && now - b.created_at < SAFETY_COPY_KEEP {
                Some("safety copy before a restore, kept 7 days".to_string())
            } else if awaiting_upload.contains(&b.key) {
                Some("waiting for its upload to the offsite store".to_string())
            } else {
                None
            };
            Candidate {
                id: b.id,
                seq: b.seq,
                created_at: b.created_at,
                verified: b.verified(),
                pinned: b.pinned,
                protected,
                counted: counted(b),
            }
        })
        .collect();
    let decisions = retention::select(&candidates, retention, &timezone, now);
    Ok(decisions
        .into_iter()
        .filter_map(|decision| {
            let backup = backups.iter().find(|b| b.id == decision.id)?.clone();
            Some(PruneEntry {
                path: store.location(&backup.key),
                backup,
                reasons: decision.reasons,
                dated_in_future: decision.dated_in_future,
            })
        })
        .collect())
}

/// The local copies of `database` that retention keeps until they reach
/// the offsite store: none for another store, without `offsite:`, or when
/// the backup disk is under `health.min_free_disk` (logged: the copies may
/// then go before they are uploaded).
fn awaiting_upload(
    state: &StateDb,
    database: &Database,
    store: &dyn Store,
) -> Result<HashSet<Key>, BackupError> {
    if store.id() != StoreId::Local || database.backup.offsite.is_none() {
        return Ok(HashSet::new());
    }
    let name = database.name.as_str();
    let waiting: HashSet<Key> = super::offsite::pending(state, name)?
        .into_iter()
        .map(|b| b.key)
        .collect();
    let copy_dir = store.location(&Key::new(name, "x"));
    let dir = copy_dir.parent().unwrap_or(&copy_dir);
    let free = super::health::free_bytes(dir);
    if !waiting.is_empty() && free.is_some_and(|free| free < database.health.min_free_disk.0) {
        tracing::warn!(db = name, waiting = waiting.len(), dir = %dir.display(), "the backup disk is under min_free_disk: copies waiting for their offsite upload are pruned like the others");
        return Ok(HashSet::new());
    }
    Ok(waiting)
}

/// Whether a backup counts toward the retention rules: a pre-restore safety
/// copy does not.
fn counted(backup: &BackupRecord) -> bool {
    backup.trigger != BackupTrigger::PreRestore
}

/// Whether process `pid` still runs (a reader that died holds nothing).
fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Deletes the backups `entries` does not keep from `store`, then their
/// catalog rows. Returns the removed ones.
pub fn remove(
    state: &StateDb,
    store: &dyn Store,
    entries: &[PruneEntry],
) -> Result<Vec<BackupRecord>, BackupError> {
    let mut removed = Vec::new();
    for entry in entries.iter().filter(|e| !e.keep()) {
        crate::jobs::backup::remove(state, store, &entry.backup)?;
        tracing::info!(db = entry.backup.database.as_str(), path = %entry.path.display(), "backup pruned");
        removed.push(entry.backup.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Key, LocalDir, naming};

    fn config(dir: &Path) -> crate::config::Config {
        let text = "version: 1\ndatabases:\n  app: { path: app.db, backup: { retention: { keep_last: 1 } } }\n";
        let path = dir.join("jobs.yaml");
        std::fs::write(&path, text).unwrap();
        crate::config::load(&path, &crate::config::Environment::default())
            .unwrap()
            .config
    }

    #[test]
    fn a_backup_being_restored_and_a_pre_migration_one_are_protected_and_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let database = config.databases.values().next().unwrap();
        let state = StateDb::open(&config.settings.state_dir).unwrap();
        let store = LocalDir::new(&config.settings.backup_dir);
        std::fs::create_dir_all(store.database_dir("app")).unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut paths = Vec::new();
        for (i, trigger) in [
            BackupTrigger::Schedule,
            BackupTrigger::PreMigration,
            BackupTrigger::Schedule,
        ]
        .into_iter()
        .enumerate()
        {
            let at = t0 + chrono::TimeDelta::hours(i as i64);
            let key = Key::new("app", &naming::file_name("app", at, 0, false));
            let path = store.path(&key);
            std::fs::write(&path, b"x").unwrap();
            state
                .insert_backup(&BackupRecord {
                    id: 0,
                    database: "app".into(),
                    store: store.id(),
                    key,
                    created_at: at,
                    size: 1,
                    sha256: None,
                    verified_at: Some(at),
                    method: None,
                    trigger,
                    pinned: false,
                    duration_ms: None,
                    seq: i as i64 + 1,
                    source: None,
                })
                .unwrap();
            paths.push(path);
        }
        state
            .add_reader(&paths[0], std::process::id(), "restore", t0)
            .unwrap();
        let now = t0 + chrono::TimeDelta::days(1);
        let decide_now = || decide(&state, database, &store, chrono_tz::UTC, now).unwrap();
        let entries = decide_now();
        let reasons = |path: &Path| {
            entries
                .iter()
                .find(|e| e.path == path)
                .unwrap()
                .reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            reasons(&paths[0]),
            [format!(
                "being read by restore (pid {})",
                std::process::id()
            )]
        );
        assert_eq!(
            reasons(&paths[1]),
            ["pre-migration, until the next successful migration"]
        );
        assert_eq!(reasons(&paths[2]), ["last", "newest verified"]);
        state.remove_reader(&paths[0], std::process::id()).unwrap();
        let entries = decide_now();
        assert!(!entries.iter().find(|e| e.path == paths[0]).unwrap().keep());
    }
}

//! One status model: what litewarden knows of its databases and its daemon
//! at one moment, read from the state database.
//!
//! [`snapshot`] is the only source of `litewarden status`, `status --json`
//! and `/status`: the text, the JSON and the endpoint show the same facts.
//! Reads only (the state database is in WAL mode, so it works while the
//! daemon writes) and owns no state.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alert::notify::active_alerts;
use crate::alert::rules::Active;
use crate::config::Config;
use crate::state::daemon::{DaemonRow, JobRunRow, ScheduledJob};
use crate::state::expect::Hold;
use crate::state::health::Report as HealthReport;
use crate::state::replication::ReplicationRow;
use crate::state::{StateDb, StateError};
use crate::store::{Key, StoreId};

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The daemon's row, if a daemon ever ran.
    pub daemon: Option<DaemonRow>,
    /// Whether that daemon runs now (its process exists and holds the
    /// state directory's lock).
    pub daemon_running: bool,
    /// The schedule the daemon last wrote.
    pub jobs: Vec<ScheduledJob>,
    /// The latest run of every (job, database).
    pub runs: Vec<JobRunRow>,
    /// The operator's holds (paused backups, held migrations).
    pub holds: Vec<Hold>,
    /// Backups dated after now (written under a clock that ran ahead).
    pub dated_in_future: Vec<FutureBackup>,
    /// Each database's latest health.
    pub health: Vec<HealthReport>,
    /// Pending and firing alerts.
    pub alerts: Vec<Active>,
    /// Each database's copies off the machine, for the databases that have
    /// an offsite store (or copies on one).
    pub offsite: Vec<OffsiteState>,
    /// Each replicated database's capture.
    pub replication: Vec<ReplicationState>,
}

/// Where a replicated database's capture stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicationState {
    /// What the capture last reported.
    #[serde(flatten)]
    pub row: ReplicationRow,
    /// Seconds since the replica last held every commit (what a lost disk
    /// would take with it); `None` before the first report.
    pub lag_seconds: Option<f64>,
}

/// How far a database's offsite store has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffsiteState {
    /// The database.
    pub database: String,
    /// The newest copy that reached the store (its name's time).
    pub newest: Option<DateTime<Utc>>,
    /// When it reached the store (uploaded and checked).
    pub reached_at: Option<DateTime<Utc>>,
    /// Copies on the store.
    pub copies: usize,
    /// Verified local copies waiting for their upload, oldest first.
    pub waiting: Vec<Key>,
}

/// A backup dated after now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FutureBackup {
    /// Its database.
    pub database: String,
    /// Its name in the backup store.
    pub key: Key,
}

/// The status of the state database `state` in `state_dir` at `now`. The
/// databases checked for future-dated backups are `config`'s, or, without
/// one (the HTTP endpoint), the ones the state database records as managed.
pub fn snapshot(
    config: Option<&Config>,
    state: &StateDb,
    state_dir: &Path,
    now: DateTime<Utc>,
) -> Result<Status, StateError> {
    let databases: Vec<String> = match config {
        Some(config) => config.databases.keys().map(ToString::to_string).collect(),
        None => state
            .managed_databases()?
            .into_iter()
            .map(|managed| managed.name)
            .collect(),
    };
    let mut dated_in_future = Vec::new();
    let mut offsite = Vec::new();
    let with_copies: std::collections::HashSet<String> =
        state.databases_in(StoreId::Offsite)?.into_iter().collect();
    for database in &databases {
        let configured = config
            .and_then(|c| c.databases.get(database.as_str()))
            .is_some_and(|db| db.backup.offsite.is_some());
        if configured || with_copies.contains(database) {
            offsite.push(offsite_state(state, database)?);
        }
    }
    for database in databases {
        for key in state.backups_dated_after(&database, now)? {
            dated_in_future.push(FutureBackup {
                database: database.clone(),
                key,
            });
        }
    }
    let daemon = state.daemon()?;
    let daemon_running = daemon
        .as_ref()
        .is_some_and(|d| Path::new(&format!("/proc/{}", d.pid)).exists() && lock_held(state_dir));
    Ok(Status {
        daemon,
        daemon_running,
        jobs: state.schedule()?,
        runs: state.latest_runs()?,
        holds: state.holds()?,
        dated_in_future,
        health: state.all_health()?,
        alerts: active_alerts(state)?,
        offsite,
        replication: state
            .replication()?
            .into_iter()
            .map(|row| ReplicationState {
                lag_seconds: row
                    .caught_up_at
                    .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0),
                row,
            })
            .collect(),
    })
}

/// The offsite state of `database` from the catalog.
fn offsite_state(state: &StateDb, database: &str) -> Result<OffsiteState, StateError> {
    let remote: Vec<_> = state
        .backups(database)?
        .into_iter()
        .filter(|b| b.store == StoreId::Offsite)
        .collect();
    let newest = remote.iter().max_by_key(|b| b.seq);
    Ok(OffsiteState {
        database: database.to_string(),
        newest: newest.map(|b| b.created_at),
        reached_at: newest.and_then(|b| b.verified_at),
        copies: remote.len(),
        waiting: crate::jobs::offsite::pending(state, database)?
            .into_iter()
            .map(|b| b.key)
            .collect(),
    })
}

/// Why retention keeps each local backup of `database` now (by key; an
/// empty list: the next prune removes it), or `None` when `config` does not
/// declare it or the catalog cannot be read.
pub fn kept_because(
    state: &StateDb,
    config: &Config,
    database: &str,
    now: DateTime<Utc>,
) -> Option<std::collections::HashMap<Key, Vec<String>>> {
    let db = config.databases.get(database)?;
    let store = crate::store::LocalDir::new(&config.settings.backup_dir);
    let entries =
        crate::jobs::prune::decide_catalogued(state, db, &store, config.settings.timezone, now)
            .ok()?;
    Some(
        entries
            .into_iter()
            .map(|entry| {
                let reasons = entry.reasons.iter().map(ToString::to_string).collect();
                (entry.backup.key, reasons)
            })
            .collect(),
    )
}

/// The migrations of `db` not applied yet (`version_name`); none when it
/// has no migrations or they cannot be read.
pub fn pending_migrations(db: &crate::config::Database) -> Vec<String> {
    let Some(migrations) = &db.migrations else {
        return Vec::new();
    };
    crate::jobs::migrations::runner::status(db, migrations)
        .map(|status| {
            status
                .pending()
                .iter()
                .map(|file| format!("{}_{}", file.version, file.name))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether some process holds the daemon lock of `state_dir`.
fn lock_held(state_dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(state_dir.join("daemon.lock")) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BackupRecord, BackupTrigger};

    #[test]
    fn without_a_config_the_status_shows_the_databases_that_have_offsite_copies() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let copy = |store, database: &str| BackupRecord {
            id: 0,
            database: database.into(),
            store,
            key: Key::new(
                database,
                &crate::store::naming::file_name(database, at, 0, true),
            ),
            created_at: at,
            size: 1,
            sha256: Some("ab".into()),
            verified_at: Some(at),
            method: None,
            trigger: BackupTrigger::Schedule,
            pinned: false,
            duration_ms: None,
            seq: 1,
            source: None,
        };
        for record in [
            copy(StoreId::Local, "app"),
            copy(StoreId::Offsite, "app"),
            copy(StoreId::Local, "other"),
        ] {
            state.insert_backup(&record).unwrap();
        }
        for name in ["app", "other"] {
            let managed = crate::plan::ManagedDatabase {
                name: name.into(),
                path: format!("/data/{name}.db").into(),
            };
            state.record_managed(&managed, at).unwrap();
        }
        let status = snapshot(None, &state, dir.path(), at).unwrap();
        assert_eq!(status.offsite.len(), 1, "{:?}", status.offsite);
        let app = &status.offsite[0];
        assert_eq!(
            (app.database.as_str(), app.copies, app.newest),
            ("app", 1, Some(at))
        );
        assert!(app.waiting.is_empty());
    }
}

//! The status page: `GET /` on the daemon's listener, one server-rendered
//! HTML page, and `/api/status`, the same snapshot as JSON.
//!
//! Owns the page's model ([`Overview`], built by [`overview`] from the
//! state database and `jobs.yaml` read anew on each request), its markup
//! ([`page`], maud: every value escaped by construction) and its charts
//! ([`chart`], inline SVG drawn here). No JavaScript framework and no CDN:
//! the page works offline, and a few lines of script replace its body with
//! a fresh copy every few seconds.

pub mod chart;
pub mod page;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::advise::Advice;
use crate::alert::rules::{Active, Phase};
use crate::config::{Config, Environment, JobKind};
use crate::replicate::catalog::Summary as ReplicaSummary;
use crate::state::daemon::JobRunRow;
use crate::state::expect::Hold;
use crate::state::health::Report as HealthReport;
use crate::state::samples::SizeSample;
use crate::state::{StateDb, StateError};
use crate::status::{ReplicationState, Status};
use crate::store::StoreId;

/// At most this many slow statements are explained on the page.
const ADVICE_SHOWN: usize = 5;

/// At most this many backups are marked on a timeline.
const BACKUPS_SHOWN: usize = 200;

/// What the page shows, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// When it was read.
    pub generated_at: DateTime<Utc>,
    /// Why `jobs.yaml` cannot be read now, or the daemon's last reload
    /// error.
    pub config_error: Option<String>,
    /// Alerts firing now.
    pub alerts_firing: usize,
    /// The status every other view shows.
    pub status: Status,
    /// Each database.
    pub databases: Vec<DatabaseView>,
}

/// One database on the page.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseView {
    /// Its name.
    pub name: String,
    /// Its file, when the config is readable.
    pub path: Option<PathBuf>,
    /// Its latest health.
    pub health: Option<HealthReport>,
    /// Its sizes over the last day, oldest first.
    pub samples: Vec<SizeSample>,
    /// Its backups, oldest first.
    pub backups: Vec<BackupMark>,
    /// What its replica restores, when replicated.
    pub replica: Option<ReplicaSummary>,
    /// Its capture.
    pub replication: Option<ReplicationState>,
    /// Its last drill.
    pub last_drill: Option<JobRunRow>,
    /// Migrations waiting to be applied.
    pub pending_migrations: Vec<String>,
    /// The operator's holds on it.
    pub holds: Vec<Hold>,
    /// Its pending and firing alerts.
    pub alerts: Vec<Active>,
    /// The latest run of each of its jobs.
    pub runs: Vec<JobRunRow>,
    /// Index advice from its slow queries.
    pub advice: Vec<Advice>,
}

/// One backup on the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct BackupMark {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it was verified.
    pub verified: bool,
    /// Whether it is pinned.
    pub pinned: bool,
    /// Whether a copy reached the offsite store.
    pub offsite: bool,
    /// Why retention keeps it (empty: the next prune removes it; unknown
    /// without a readable config).
    pub kept_because: Vec<String>,
}

/// Reads the page's model: `jobs.yaml` at `config` (anew, so the page
/// shows the file as it is) and the state database `state` in
/// `state_dir`.
pub fn overview(
    state: &StateDb,
    state_dir: &Path,
    config: &Path,
    environment: &Environment,
    now: DateTime<Utc>,
) -> Result<Overview, StateError> {
    let (config, mut config_error) = match crate::config::load_reporting_faults(config, environment)
    {
        Ok(loaded) => (Some(loaded.config), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let status = crate::status::snapshot(config.as_ref(), state, state_dir, now)?;
    if let Some(daemon) = status.daemon.as_ref().filter(|d| !d.config_ok) {
        config_error = config_error.or_else(|| daemon.config_error.clone());
    }
    let names: Vec<String> = match &config {
        Some(config) => config.databases.keys().map(ToString::to_string).collect(),
        None => state
            .managed_databases()?
            .into_iter()
            .map(|m| m.name)
            .collect(),
    };
    let mut databases = Vec::new();
    for name in names {
        databases.push(database_view(state, &status, config.as_ref(), &name, now)?);
    }
    Ok(Overview {
        generated_at: now,
        config_error,
        alerts_firing: status
            .alerts
            .iter()
            .filter(|a| a.phase == Phase::Firing)
            .count(),
        status,
        databases,
    })
}

fn database_view(
    state: &StateDb,
    status: &Status,
    config: Option<&Config>,
    name: &str,
    now: DateTime<Utc>,
) -> Result<DatabaseView, StateError> {
    let db = config.and_then(|c| c.databases.get(name));
    let runs: Vec<JobRunRow> = status
        .runs
        .iter()
        .filter(|r| r.database.as_deref() == Some(name))
        .cloned()
        .collect();
    let (replica, pending_migrations, advice) = match (config, db) {
        (Some(config), Some(db)) => (
            db.replicate.as_ref().and_then(|_| {
                let dir = crate::replicate::catalog::replica_dir(&config.settings.backup_dir, name);
                crate::replicate::catalog::summary(&dir).ok().flatten()
            }),
            crate::status::pending_migrations(db),
            {
                let mut slow = state.slow_queries(name)?;
                slow.truncate(ADVICE_SHOWN);
                crate::advise::advise(&db.path, &slow).unwrap_or_default()
            },
        ),
        _ => (None, Vec::new(), Vec::new()),
    };
    Ok(DatabaseView {
        name: name.to_string(),
        path: db.map(|db| db.path.clone()),
        health: status.health.iter().find(|h| h.database == name).cloned(),
        samples: state.size_samples(name)?,
        backups: backup_marks(state, config, name, now)?,
        replica,
        replication: status
            .replication
            .iter()
            .find(|r| r.row.database == name)
            .cloned(),
        last_drill: runs.iter().find(|r| r.job == JobKind::Drill).cloned(),
        pending_migrations,
        holds: status
            .holds
            .iter()
            .filter(|h| h.database == name)
            .cloned()
            .collect(),
        alerts: status
            .alerts
            .iter()
            .filter(|a| a.key.database == name)
            .cloned()
            .collect(),
        runs,
        advice,
    })
}

/// The local backups of `name`, oldest first, with why retention keeps
/// each (with a readable config) and whether a copy is offsite.
fn backup_marks(
    state: &StateDb,
    config: Option<&Config>,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Vec<BackupMark>, StateError> {
    let all = state.backups(name)?;
    let offsite: std::collections::HashSet<_> = all
        .iter()
        .filter(|b| b.store == StoreId::Offsite)
        .map(|b| b.key.clone())
        .collect();
    let reasons = config
        .and_then(|config| crate::status::kept_because(state, config, name, now))
        .unwrap_or_default();
    let mut marks: Vec<BackupMark> = all
        .into_iter()
        .filter(|b| b.store == StoreId::Local)
        .map(|b| BackupMark {
            at: b.created_at,
            size: b.size,
            verified: b.verified_at.is_some(),
            pinned: b.pinned,
            offsite: offsite.contains(&b.key),
            kept_because: reasons.get(&b.key).cloned().unwrap_or_default(),
        })
        .collect();
    marks.sort_by_key(|m| m.at);
    let skip = marks.len().saturating_sub(BACKUPS_SHOWN);
    Ok(marks.split_off(skip))
}

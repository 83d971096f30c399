//! Applying retention to the backups of one database.
//!
//! Owns deleting backup files. Only catalogued files are candidates (the
//! catalog lists only files litewarden created), the decision is the pure
//! [`retention::select`], and a dry run shows the same decisions without
//! deleting. A pre-migration backup is protected until a migration run
//! succeeds after it.

use std::path::Path;

use serde::Serialize;

use super::backup::{BackupError, sync_catalog};
use super::retention::{self, Candidate, KeepReason};
use crate::config::{Database, JobKind};
use crate::state::StateDb;
use crate::state::catalog::{BackupRecord, BackupTrigger};

/// One backup and the verdict on it.
#[derive(Debug, Clone, Serialize)]
pub struct PruneEntry {
    /// The backup.
    pub backup: BackupRecord,
    /// Why it is kept; empty when it goes.
    pub reasons: Vec<KeepReason>,
}

impl PruneEntry {
    /// Whether it is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// The verdict on every backup of `database`, newest first (the catalog is
/// synced with the directory first).
pub fn decide(
    state: &StateDb,
    database: &Database,
    backup_dir: &Path,
    timezone: chrono_tz::Tz,
) -> Result<Vec<PruneEntry>, BackupError> {
    let name = database.name.as_str();
    sync_catalog(state, name, backup_dir)?;
    let backups = state.backups(name)?;
    let last_migration = state.last_success(JobKind::Migrate, name)?;
    let candidates: Vec<Candidate> = backups
        .iter()
        .map(|b| Candidate {
            id: b.id,
            created_at: b.created_at,
            verified: b.verified(),
            pinned: b.pinned,
            protected: (b.trigger == BackupTrigger::PreMigration
                && last_migration.is_none_or(|at| at <= b.created_at))
            .then(|| "pre-migration, until the next successful migration".to_string()),
        })
        .collect();
    let decisions = retention::select(&candidates, &database.backup.retention, &timezone);
    Ok(decisions
        .into_iter()
        .filter_map(|decision| {
            let backup = backups.iter().find(|b| b.id == decision.id)?.clone();
            Some(PruneEntry {
                backup,
                reasons: decision.reasons,
            })
        })
        .collect())
}

/// Deletes the backups `entries` does not keep: file, then directory fsync,
/// then catalog row. Returns the removed ones.
pub fn remove(
    state: &StateDb,
    database: &str,
    entries: &[PruneEntry],
) -> Result<Vec<BackupRecord>, BackupError> {
    let mut removed = Vec::new();
    for entry in entries.iter().filter(|e| !e.keep()) {
        let path = &entry.backup.path;
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BackupError::io(database, path, "cannot remove")(source)),
        }
        if let Some(dir) = path.parent() {
            crate::durable::sync_dir(dir).map_err(BackupError::io(database, dir, "cannot sync"))?;
        }
        state.delete_backup(entry.backup.id)?;
        tracing::info!(db = database, path = %path.display(), "backup pruned");
        removed.push(entry.backup.clone());
    }
    Ok(removed)
}

//! Changes the daemon holds back instead of retrying on every reload.
//!
//! Some changes are left to the operator: a VACUUM rewrite (`litewarden
//! apply --allow-vacuum`) and migrations of a database with
//! `migrations.apply: manual` (`litewarden migrate up`). The daemon never
//! runs them and reports each once, not on every 30 s poll.
//!
//! Every automatic migration run starts with a verified pre-migration
//! backup, and those are kept until the next successful run. Retrying a
//! failing migration on every reload and every 30 s poll would fill the
//! backup disk with them and repeat the same error. So after a failure the
//! daemon remembers the migrations directory's content (each file's version
//! and checksum) and does not run that database's migrations again until
//! the directory changes (a fixed or new file), a SIGHUP asks for a retry,
//! or the operator runs `litewarden migrate up`.

use std::collections::{BTreeMap, BTreeSet};

use crate::apply::{ApplyReport, ChangeStatus};
use crate::config::{Config, Database, MigrationApply};
use crate::jobs::migrations::runner;
use crate::plan::{Change, Plan};

/// The migration files of a database as (version, checksum) pairs.
type Fingerprint = Vec<(i64, String)>;

/// What the daemon holds back: failed automatic migrations (with the files
/// they failed on) and the operator's changes already reported.
#[derive(Debug, Default)]
pub struct HeldChanges {
    failed: BTreeMap<String, Fingerprint>,
    reported: BTreeSet<String>,
}

impl HeldChanges {
    /// Removes from `plan` the changes left to the operator; returns those
    /// not reported before (as plan lines), to be reported now.
    pub fn hold_back_operator_changes(&mut self, plan: &mut Plan) -> Vec<String> {
        let held: BTreeSet<String> = plan
            .changes
            .extract_if(.., |change| {
                matches!(
                    change,
                    Change::SetPragma {
                        needs_vacuum: true,
                        ..
                    } | Change::Migrate { manual: true, .. }
                )
            })
            .map(|change| change.to_string())
            .collect();
        let new = held.difference(&self.reported).cloned().collect();
        self.reported = held;
        new
    }

    /// Removes from `plan` the automatic migrations of databases that failed
    /// on the same files; a database whose files changed is released.
    /// Returns the databases held back.
    pub fn hold_back_migrations(&mut self, plan: &mut Plan, config: &Config) -> Vec<String> {
        let mut held = Vec::new();
        plan.changes.retain(|change| {
            let Change::Migrate {
                database,
                manual: false,
                ..
            } = change
            else {
                return true;
            };
            let Some(failed_on) = self.failed.get(database.as_str()) else {
                return true;
            };
            let current = config
                .databases
                .get(database)
                .and_then(|db| fingerprint(db));
            if current.as_ref() == Some(failed_on) {
                held.push(database.to_string());
                false
            } else {
                self.failed.remove(database.as_str());
                true
            }
        });
        held
    }

    /// Remembers the databases whose automatic migrations failed in
    /// `report` and forgets those whose migrations succeeded. Returns the
    /// databases newly held.
    pub fn record(&mut self, report: &ApplyReport, config: &Config) -> Vec<String> {
        let mut newly_held = Vec::new();
        for result in &report.results {
            let Change::Migrate { database, .. } = &result.change else {
                continue;
            };
            match &result.status {
                ChangeStatus::Failed(_) => {
                    let Some(files) = config
                        .databases
                        .get(database)
                        .and_then(|db| fingerprint(db))
                    else {
                        continue;
                    };
                    if self.failed.insert(database.to_string(), files).is_none() {
                        newly_held.push(database.to_string());
                    }
                }
                ChangeStatus::Done => {
                    self.failed.remove(database.as_str());
                }
                ChangeStatus::Skipped(_) => {}
            }
        }
        newly_held
    }

    /// Forgets every failure and report (SIGHUP: the operator asks for a
    /// retry).
    pub fn release_all(&mut self) {
        self.failed.clear();
        self.reported.clear();
    }
}

/// The (version, checksum) of each migration file of an automatically
/// migrated database; `None` when it has none or they cannot be read.
fn fingerprint(database: &Database) -> Option<Fingerprint> {
    let migrations = database.migrations.as_ref()?;
    if migrations.apply != MigrationApply::Auto {
        return None;
    }
    let files = runner::discover(database, migrations).ok()?;
    Some(
        files
            .into_iter()
            .map(|file| (file.version, file.checksum))
            .collect(),
    )
}

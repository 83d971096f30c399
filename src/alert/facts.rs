//! The alert conditions that hold now, read from the state database.
//!
//! Owns [`gather`]: each job's latest run (job_failed, job_stuck,
//! migration_failed, drill_failed), each database's latest health
//! (health_failed, backup_stale, disk_low, database_missing), its open
//! discontinuities (database_replaced) and the daemon's last reload
//! (config_invalid). Reads only.

use crate::config::{AlertCondition, Config, JobKind};
use crate::state::health::Status;
use crate::state::{FailureKind, Outcome, StateDb, StateError};

use super::rules::Fact;

/// The condition a failed run of `job` that failed as `failure` raises
/// (besides `job_failed`, which every failed run of a database raises):
/// what `status` names it by.
pub fn run_condition(job: JobKind, failure: Option<FailureKind>) -> AlertCondition {
    match (job, failure) {
        (_, Some(FailureKind::Stuck)) => AlertCondition::JobStuck,
        (_, Some(FailureKind::SourceMissing)) => AlertCondition::DatabaseMissing,
        (JobKind::Apply, Some(FailureKind::Config)) => AlertCondition::ConfigInvalid,
        (JobKind::Migrate, _) => AlertCondition::MigrationFailed,
        (JobKind::Drill, _) => AlertCondition::DrillFailed,
        _ => AlertCondition::JobFailed,
    }
}

/// Every condition that holds now for the databases of `config`.
pub fn gather(
    config: &Config,
    state: &StateDb,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Fact>, StateError> {
    let mut facts = Vec::new();
    let fact = |condition, database: &str, job, reason: String| Fact {
        condition,
        database: database.to_string(),
        job,
        reason,
    };
    for run in state.latest_runs()? {
        let Some(database) = run.database.as_deref() else {
            continue;
        };
        if run.outcome != Outcome::Failed || !config.databases.contains_key(database) {
            continue;
        }
        let reason = run.error.clone().unwrap_or_default();
        let kind = Some(run.job);
        match run_condition(run.job, run.failure) {
            AlertCondition::JobStuck => {
                facts.push(fact(AlertCondition::JobStuck, database, kind, reason));
                continue;
            }
            AlertCondition::DatabaseMissing => facts.push(fact(
                AlertCondition::DatabaseMissing,
                database,
                None,
                reason.clone(),
            )),
            _ => {}
        }
        facts.push(fact(
            AlertCondition::JobFailed,
            database,
            kind,
            reason.clone(),
        ));
        match run.job {
            JobKind::Migrate => facts.push(fact(
                AlertCondition::MigrationFailed,
                database,
                kind,
                reason,
            )),
            JobKind::Drill => facts.push(fact(AlertCondition::DrillFailed, database, kind, reason)),
            _ => {}
        }
    }
    for report in state.all_health()? {
        if !config.databases.contains_key(report.database.as_str()) {
            continue;
        }
        let failing = |names: &[&str]| {
            report
                .checks
                .iter()
                .filter(|c| c.status == Status::Unhealthy && names.contains(&c.name.as_str()))
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect::<Vec<_>>()
        };
        let database = report.database.as_str();
        if report.status == Status::Unhealthy {
            facts.push(fact(
                AlertCondition::HealthFailed,
                database,
                None,
                report.reasons().join("; "),
            ));
        }
        if report
            .checks
            .iter()
            .any(|c| c.name == "offsite_age" && c.status != Status::Healthy)
        {
            let reason = report
                .checks
                .iter()
                .filter(|c| c.name == "offsite_age")
                .map(|c| c.detail.clone())
                .collect::<Vec<_>>()
                .join("; ");
            facts.push(fact(AlertCondition::OffsiteStale, database, None, reason));
        }
        for (condition, names) in [
            (AlertCondition::BackupStale, &["backup_age"][..]),
            (
                AlertCondition::DiskLow,
                &["free_disk", "backup_free_disk"][..],
            ),
            (AlertCondition::DatabaseMissing, &["file"][..]),
        ] {
            let reasons = failing(names);
            if !reasons.is_empty() {
                facts.push(fact(condition, database, None, reasons.join("; ")));
            }
        }
    }
    for database in config.databases.values() {
        if let Some(first) = state.open_discontinuities(database.name.as_str())?.first() {
            facts.push(fact(
                AlertCondition::DatabaseReplaced,
                database.name.as_str(),
                None,
                first.reason.clone(),
            ));
        }
    }
    for row in state.replication()? {
        let Some(replicate) = config
            .databases
            .get(row.database.as_str())
            .and_then(|db| db.replicate.as_ref())
        else {
            continue;
        };
        if let Some(error) = &row.error {
            facts.push(fact(
                AlertCondition::ReplicationBroken,
                &row.database,
                None,
                error.clone(),
            ));
        }
        if let Some(at) = row.caught_up_at {
            let behind = (now - at).to_std().unwrap_or_default();
            if behind > replicate.max_lag {
                facts.push(fact(
                    AlertCondition::ReplicationLag,
                    &row.database,
                    None,
                    format!(
                        "the replica last held every commit {} ago (max_lag {})",
                        humantime::format_duration(std::time::Duration::from_secs(
                            behind.as_secs()
                        )),
                        humantime::format_duration(replicate.max_lag)
                    ),
                ));
            }
        }
    }
    if let Some(daemon) = state.daemon()?
        && !daemon.config_ok
    {
        facts.push(fact(
            AlertCondition::ConfigInvalid,
            "",
            None,
            daemon.config_error.unwrap_or_default(),
        ));
    }
    Ok(facts)
}

//! `health`, `optimize` and `drill`: the maintenance jobs, run now.
//!
//! Owns what those commands print; the work is in [`crate::jobs::health`],
//! [`crate::jobs::optimize`] and [`crate::jobs::drill`]. Each result is
//! recorded in the state database, as the daemon's runs are, so `status`,
//! `/status` and `/metrics` show it.

use std::io::Write;

use serde_json::json;

use super::{Cli, ExitStatus, print};
use crate::clock::Clock;
use crate::config::{Database, Environment, JobKind, VerifyLevel};
use crate::error::Error;
use crate::jobs::{drill, health, optimize};
use crate::state::{JobRun, Outcome, StateDb, Trigger};

/// What `health` was asked to do.
#[derive(Debug, Clone, Copy)]
pub(super) struct HealthArgs<'a> {
    pub database: Option<&'a str>,
    pub deep: bool,
    pub json: bool,
}

pub(super) fn health(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    args: HealthArgs,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let loaded = super::load_reading(cli, environment)?;
    let config = loaded.config;
    let state = StateDb::open(&config.settings.state_dir)?;
    let now = clock.now();
    let mut reports = Vec::new();
    for db in super::backups::selected(cli, &config, args.database, false)? {
        let deep = if args.deep {
            Some(VerifyLevel::Quick)
        } else {
            health::due_deep_check(&state, db, now)?
        };
        let request = health::Request {
            database: db,
            backup_dir: &config.settings.backup_dir,
            deep,
            now,
        };
        let report = health::run(request, Some(&state));
        state.record_health(&report)?;
        reports.push(report);
    }
    let worst = reports.iter().map(|r| r.status).max().unwrap_or_default();
    if args.json {
        print(
            out,
            json!({ "status": worst.as_str(), "databases": reports }),
        )?;
    } else {
        for report in &reports {
            print(
                out,
                format_args!(
                    "{}: {} ({} MiB, WAL {} MiB)",
                    report.database,
                    report.status.as_str(),
                    report.db_size_mb,
                    report.wal_size_mb
                ),
            )?;
            for check in &report.checks {
                let mark = match check.status {
                    health::Status::Healthy => "ok  ",
                    health::Status::Degraded => "WARN",
                    health::Status::Unhealthy => "FAIL",
                };
                print(
                    out,
                    format_args!("  {mark} {:<18} {}", check.name, check.detail),
                )?;
            }
        }
    }
    Ok(if worst == health::Status::Unhealthy {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

pub(super) fn optimize(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    (name, all): (Option<&str>, bool),
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let databases = super::backups::chosen(cli, &config, name, all, "optimize")?;
    let _locks = super::claim(&config, databases.iter().copied())?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let mut reports = Vec::new();
    for db in databases {
        let started_at = clock.now();
        let report = optimize::run(db)?;
        let success = crate::jobs::outcome::JobSuccess {
            summary: format!("{} pages reclaimed", report.pages_reclaimed),
            bytes: Some(report.bytes_reclaimed),
            pages_reclaimed: Some(report.pages_reclaimed),
            lock_ms: Some(report.lock_ms),
        };
        record(
            &state,
            JobKind::Optimize,
            db,
            started_at,
            clock,
            Ok(success),
        )?;
        if !json {
            print(
                out,
                format_args!(
                    "{}: checkpoint {}, {} pages ({} bytes) reclaimed, write lock held at most {} ms{}",
                    db.name,
                    serde_json::to_value(report.checkpoint)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    report.pages_reclaimed,
                    report.bytes_reclaimed,
                    report.lock_ms,
                    match (report.vacuumed, report.analyzed) {
                        (true, _) => ", VACUUM ran",
                        (false, false) => ", PRAGMA optimize skipped (the database stayed busy)",
                        (false, true) => "",
                    }
                ),
            )?;
        }
        reports.push(report);
    }
    if json {
        print(out, json!({ "ok": true, "optimize": reports }))?;
    }
    Ok(ExitStatus::Success)
}

pub(super) fn drill(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    (name, all): (Option<&str>, bool),
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let databases = super::backups::chosen(cli, &config, name, all, "drill")?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let mut passed = true;
    let mut reports = Vec::new();
    for db in databases {
        let report = drill_one(&config, db, &state, clock, json, out)?;
        passed &= report.passed;
        reports.push(report);
    }
    if json {
        match reports.as_slice() {
            [report] if !all => print(out, json!({ "ok": report.passed, "drill": report }))?,
            _ => print(out, json!({ "ok": passed, "drills": reports }))?,
        }
    }
    Ok(if passed {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// Runs and records one database's drill, printing its lines unless the
/// output is JSON.
fn drill_one(
    config: &crate::config::Config,
    db: &Database,
    state: &StateDb,
    clock: &dyn Clock,
    json: bool,
    out: &mut dyn Write,
) -> Result<drill::Report, Error> {
    let name = db.name.as_str();
    let started_at = clock.now();
    let report = drill::run(db, &config.settings.backup_dir, state, clock)?;
    let result = match &report.reason {
        None => Ok(crate::jobs::outcome::JobSuccess::summary("drill passed")),
        Some(reason) => {
            state.record_event(Some(name), "drill_failed", reason, clock.now())?;
            Err(crate::jobs::outcome::JobFailure::new(
                crate::jobs::outcome::FailureKind::Other,
                format!("drill_failed: {reason}"),
            ))
        }
    };
    record(state, JobKind::Drill, db, started_at, clock, result)?;
    if !json {
        let from = report
            .backup
            .as_deref()
            .map(crate::paths::display)
            .unwrap_or_else(|| "-".into());
        match &report.reason {
            None => print(
                out,
                format_args!("{name}: drill passed: {from} restores and passes integrity_check"),
            )?,
            Some(reason) => print(out, format_args!("{name}: DRILL FAILED ({from}): {reason}"))?,
        }
        if let Some(freshness) = &report.freshness {
            print(
                out,
                format_args!(
                    "{name}: freshness: restored {}, live {}{}",
                    freshness.restored,
                    freshness.live,
                    freshness
                        .lag_seconds
                        .map(|s| format!(" (behind by {s} s)"))
                        .unwrap_or_default()
                ),
            )?;
        }
    }
    Ok(report)
}

/// Records a manual run, as the daemon records its own (so its alerts
/// fire and resolve like a scheduled run's).
pub(super) fn record(
    state: &StateDb,
    job: JobKind,
    db: &Database,
    started_at: chrono::DateTime<chrono::Utc>,
    clock: &dyn Clock,
    result: crate::jobs::outcome::JobOutcome,
) -> Result<(), Error> {
    let failed = result.is_err();
    let (detail, error, failure, figures) = match result {
        Ok(success) => (
            Some(success.summary.clone()),
            None,
            None,
            success.figures_json(),
        ),
        Err(failure) => (None, Some(failure.message), Some(failure.kind), None),
    };
    state.record_run(&JobRun {
        job,
        database: Some(db.name.to_string()),
        trigger: Trigger::Manual,
        started_at,
        finished_at: clock.now(),
        outcome: if failed {
            Outcome::Failed
        } else {
            Outcome::Success
        },
        failure,
        error,
        detail,
        figures,
    })?;
    Ok(())
}

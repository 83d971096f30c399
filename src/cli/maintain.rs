//! `health`, `optimize` and `drill`: the maintenance jobs, run now.
//!
//! Owns what those commands print; the work is [`crate::jobs::run`], as
//! the daemon's. Each run is recorded in the state database as the
//! daemon's runs are, so `status`, `/status` and `/metrics` show it.

use std::io::Write;

use serde_json::json;

use super::{Cli, ExitStatus, print};
use crate::clock::Clock;
use crate::config::{Config, Database, Environment, VerifyLevel};
use crate::error::Error;
use crate::jobs::progress::{Progress, Quiet};
use crate::jobs::run::{self, Context, Done, Job, RunError};
use crate::jobs::{drill, health};
use crate::state::{StateDb, Trigger};

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
    let mut reports = Vec::new();
    let job = Job::Health {
        deep: args.deep.then_some(VerifyLevel::Quick),
    };
    for db in super::select::selected(cli, &config, args.database, false)? {
        if let Done::Health(report) = run_and_record(&config, db, &state, clock, job, &mut Quiet)? {
            reports.push(report);
        }
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
    let databases = super::select::chosen(cli, &config, name, all, "optimize")?;
    let _locks = super::claim(&config, databases.iter().copied())?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let mut reports = Vec::new();
    for db in databases {
        let Done::Optimize(report) =
            run_and_record(&config, db, &state, clock, Job::Optimize, &mut Quiet)?
        else {
            continue;
        };
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
    let databases = super::select::chosen(cli, &config, name, all, "drill")?;
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

/// Runs `job` on `db` as the daemon would, records the run (a manual
/// one), and returns what it did.
pub(super) fn run_and_record(
    config: &Config,
    db: &Database,
    state: &StateDb,
    clock: &dyn Clock,
    job: Job,
    progress: &mut dyn Progress,
) -> Result<Done, RunError> {
    let context = Context {
        state,
        backup_dir: &config.settings.backup_dir,
        timezone: config.settings.timezone,
        clock,
        trigger: Trigger::Manual,
    };
    let started_at = clock.now();
    let result = run::run(job, db, &context, progress);
    run::record(
        state,
        job.kind(),
        Some(db.name.as_str()),
        Trigger::Manual,
        started_at,
        clock.now(),
        &run::outcome(&result),
    )?;
    result
}

/// Runs and records one database's drill, printing its lines unless the
/// output is JSON.
fn drill_one(
    config: &Config,
    db: &Database,
    state: &StateDb,
    clock: &dyn Clock,
    json: bool,
    out: &mut dyn Write,
) -> Result<drill::Report, Error> {
    let name = db.name.as_str();
    let report = match run_and_record(config, db, state, clock, Job::Drill, &mut Quiet) {
        Ok(Done::Drill(report)) => report,
        Err(RunError::DrillFailed(report)) => *report,
        Ok(_) => return Err(Error::DrillFailed(format!("{name}: the drill did not run"))),
        Err(other) => return Err(other.into()),
    };
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

//! `status`: jobs, last and next runs, and the daemon's health.
//!
//! Owns what `status` prints. It only reads the state database (WAL mode, so
//! it works while the daemon writes), and works when no daemon runs.

use std::io::Write;

use serde_json::json;

use super::{Cli, ExitStatus, print, show_stored_time, show_time};
use crate::clock::Clock;
use crate::config::Environment;
use crate::error::Error;
use crate::state::StateDb;
use crate::state::expect::HoldKind;
use crate::status::Status;

pub(super) fn status(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let loaded = match super::load_reading(cli, environment) {
        Ok(loaded) => Some(loaded),
        Err(Error::Config(crate::config::LoadError::Invalid(errors))) => {
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!(
                "{}: invalid; showing the default state directory (a running daemon keeps its last good config)",
                cli.config.display()
            );
            None
        }
        Err(other) => return Err(other),
    };
    let config = loaded.as_ref().map(|loaded| &loaded.config);
    let state_dir = match config {
        Some(config) => config.settings.state_dir.clone(),
        None => {
            let dir = cli
                .config
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            crate::paths::resolve(dir, std::path::Path::new(crate::config::DEFAULT_STATE_DIR))
        }
    };
    let Some(state) = StateDb::open_read_only(&state_dir)? else {
        if json {
            print(out, json!({ "daemon": null, "jobs": [], "runs": [] }))?;
        } else {
            print(
                out,
                "nothing has run yet: start with `litewarden apply` or `litewarden run`",
            )?;
        }
        return Ok(ExitStatus::Success);
    };
    let status = crate::status::snapshot(config, &state, &state_dir, clock.now())?;
    if json {
        print(out, json!(status))?;
        return Ok(ExitStatus::Success);
    }
    show(&status, out)
}

/// `status` as text.
fn show(status: &Status, out: &mut dyn Write) -> Result<ExitStatus, Error> {
    let Status {
        daemon,
        daemon_running: running,
        jobs: schedule,
        runs,
        holds,
        dated_in_future,
        health,
        alerts,
        offsite,
        replication,
    } = status;
    let running = *running;
    match daemon {
        Some(d) if running => {
            let config = if d.config_ok {
                "config ok".to_string()
            } else {
                format!(
                    "CONFIG INVALID, last good config in use: {}",
                    d.config_error.as_deref().unwrap_or("")
                )
            };
            print(
                out,
                format_args!(
                    "daemon: running (pid {}, since {}), {config}",
                    d.pid,
                    show_stored_time(&d.started_at)
                ),
            )?;
        }
        Some(d) => print(
            out,
            format_args!(
                "daemon: not running (last seen {})",
                show_stored_time(&d.heartbeat_at)
            ),
        )?,
        None => print(out, "daemon: never started")?,
    }
    let width = schedule
        .iter()
        .map(|j| j.database.len())
        .chain(
            runs.iter()
                .filter_map(|r| r.database.as_ref().map(String::len)),
        )
        .max()
        .unwrap_or(0)
        .max("DATABASE".len());
    print(
        out,
        format_args!(
            "{:<width$} {:<9} {:<16} {:<20} {:<8} {:<20} {:<8} HEALTH",
            "DATABASE", "JOB", "SCHEDULE", "LAST RUN", "RESULT", "NEXT RUN", "SKIPPED"
        ),
    )?;
    for job in schedule {
        let last = runs
            .iter()
            .find(|r| r.job == job.job && r.database.as_deref() == Some(job.database.as_str()));
        let next = match (&job.running_since, &job.next_run) {
            (Some(since), _) => format!("running since {}", show_time(*since)),
            (None, Some(next)) if job.retry > 0 => {
                format!("{} (retry {})", show_time(*next), job.retry)
            }
            (None, Some(next)) => show_time(*next),
            (None, None) => "-".into(),
        };
        let db_health = health
            .iter()
            .find(|r| r.database == job.database)
            .map_or("-", |r| r.status.as_str());
        print(
            out,
            format_args!(
                "{:<width$} {:<9} {:<16} {:<20} {:<8} {:<20} {:<8} {}",
                job.database,
                job.job,
                job.schedule,
                last.map_or("-".to_string(), |r| show_time(r.started_at)),
                last.map_or("-", |r| r.outcome.as_str()),
                next,
                job.skipped,
                db_health
            ),
        )?;
    }
    for run in runs.iter().filter(|r| {
        !schedule
            .iter()
            .any(|j| j.job == r.job && Some(j.database.as_str()) == r.database.as_deref())
    }) {
        print(
            out,
            format_args!(
                "{:<width$} {:<9} {:<16} {:<20} {:<8}{}",
                run.database.as_deref().unwrap_or("-"),
                run.job,
                "-",
                show_time(run.started_at),
                run.outcome.as_str(),
                run.error
                    .as_deref()
                    .map(|e| format!(
                        " {}: {e}",
                        crate::alert::facts::run_condition(run.job, run.failure)
                    ))
                    .unwrap_or_default()
            ),
        )?;
    }
    for report in health
        .iter()
        .filter(|r| r.status != crate::state::health::Status::Healthy)
    {
        print(
            out,
            format_args!(
                "health: {}: {} at {}: {}",
                report.database,
                report.status.as_str(),
                super::show_time(report.checked_at),
                report.reasons().join("; ")
            ),
        )?;
    }
    if !alerts.is_empty() {
        print(out, "ALERTS")?;
        for alert in alerts {
            print(out, format_args!("  {}", super::alerts::line(alert)))?;
        }
    }
    for hold in holds {
        let since = super::show_time(hold.since);
        let what = match (hold.kind, hold.version) {
            (HoldKind::Migrations, Some(version)) => format!(
                "migrations held by operator at {version} since {since} (`litewarden migrate up {}` releases it)",
                hold.database
            ),
            _ => format!(
                "backups paused by operator since {since} (`litewarden resume {}`)",
                hold.database
            ),
        };
        print(out, format_args!("hold: {}: {what}", hold.database))?;
    }
    for store in offsite {
        let newest = match (store.newest, store.reached_at) {
            (Some(newest), Some(at)) => format!(
                "newest copy {} (reached {}), {} on the store",
                super::show_time(newest),
                super::show_time(at),
                store.copies
            ),
            _ => "no copy on the store yet".to_string(),
        };
        let waiting = match store.waiting.len() {
            0 => "nothing waiting".to_string(),
            n => format!(
                "{n} waiting for upload (`litewarden offsite {}`)",
                store.database
            ),
        };
        print(
            out,
            format_args!("offsite: {}: {newest}; {waiting}", store.database),
        )?;
    }
    for capture in replication {
        let row = &capture.row;
        let state = match (&row.error, capture.lag_seconds) {
            (Some(error), _) => format!("FAILING: {error}"),
            (None, Some(lag)) => format!("{lag:.1}s behind"),
            (None, None) => "starting".to_string(),
        };
        print(
            out,
            format_args!(
                "replication: {}: {state}; generation {}, {} segments, {} bytes",
                row.database,
                row.generation.as_deref().unwrap_or("none yet"),
                row.segments,
                row.bytes
            ),
        )?;
    }
    for backup in dated_in_future {
        print(
            out,
            format_args!(
                "warning: {}: backup {} is dated in the future (written under a clock that ran ahead); it is not taken for the latest",
                backup.database, backup.key
            ),
        )?;
    }
    Ok(ExitStatus::Success)
}

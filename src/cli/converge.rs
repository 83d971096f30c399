//! `check`, `plan` and `apply`: the config and convergence commands.
//!
//! Owns what those commands print; the work is in [`crate::config`],
//! [`crate::plan`] and [`crate::apply`].

use std::io::Write;

use serde_json::json;

use super::{Cli, ExitStatus, Faults, load, plural, print, print_warnings};
use crate::apply::{ApplyOptions, ChangeStatus};
use crate::clock::Clock;
use crate::config::Environment;
use crate::error::Error;
use crate::jobs::migrations::rehearse::{self, Rehearsal, RehearsalSource};
use crate::plan::{self, Desired};
use crate::state::StateDb;

pub(super) fn check(
    cli: &Cli,
    environment: &Environment,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let Some(loaded) = load(cli, environment, json, Faults::Refuse, out)? else {
        return Ok(ExitStatus::Failure);
    };
    let databases = loaded.config.databases.len();
    let offsite = super::offsite::summary(&loaded.config, environment);
    if json {
        print(
            out,
            json!({ "ok": true, "databases": databases, "errors": [], "warnings": loaded.warnings, "offsite": offsite, "replicate": replication(&loaded.config) }),
        )?;
    } else {
        for warning in &loaded.warnings {
            print(out, warning)?;
        }
        super::offsite::show_summary(&offsite, out)?;
        show_replication(&loaded.config, out)?;
        print(
            out,
            format_args!(
                "{}: ok ({databases} database{}, {} warning{})",
                cli.config.display(),
                plural(databases),
                loaded.warnings.len(),
                plural(loaded.warnings.len())
            ),
        )?;
    }
    Ok(ExitStatus::Success)
}

pub(super) fn plan(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    json: bool,
    rehearse: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let Some(loaded) = load(cli, environment, json, Faults::Report, out)? else {
        return Ok(ExitStatus::Failure);
    };
    let plan = observe_and_plan(&loaded.config, clock)?;
    let rehearsals = if rehearse {
        rehearse_all(&loaded.config, clock)?
    } else {
        Vec::new()
    };
    let rehearsal_failed = rehearsals.iter().any(|r| !r.passed());
    let offsite = super::offsite::summary(&loaded.config, environment);
    if json {
        print(
            out,
            json!({ "changes": plan.changes, "notes": plan.notes, "unreadable": plan.unreadable, "problems": plan.problems, "faults": loaded.faults, "rehearsals": rehearsals, "warnings": loaded.warnings, "offsite": offsite, "replicate": replication(&loaded.config) }),
        )?;
    } else {
        print_warnings(cli, &loaded.warnings);
        print_unreadable(&plan.unreadable);
        super::offsite::show_summary(&offsite, out)?;
        show_replication(&loaded.config, out)?;
        for change in &plan.changes {
            print(out, change)?;
        }
        for note in &plan.notes {
            print(out, format_args!("! {note}"))?;
        }
        for problem in &plan.problems {
            print(out, problem)?;
        }
        let readable = loaded.config.databases.len() - plan.unreadable.len() - plan.problems.len();
        let unreadable = plan.unreadable.len();
        if plan.is_empty() && readable > 0 && unreadable > 0 {
            print(
                out,
                format_args!(
                    "No changes for {readable} database{}; {unreadable} cannot be read ({}; see the error above), so the plan is incomplete.",
                    plural(readable),
                    plan.unreadable
                        .iter()
                        .map(|u| u.database.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )?;
        } else if plan.is_empty() && readable > 0 && !plan.problems.is_empty() {
            print(
                out,
                format_args!(
                    "No changes for {readable} database{}; {} left alone until the `!` line{} above {} done.",
                    plural(readable),
                    plan.problems.len(),
                    plural(plan.problems.len()),
                    if plan.problems.len() == 1 {
                        "is"
                    } else {
                        "are"
                    }
                ),
            )?;
        } else if plan.is_empty() && readable > 0 {
            print(
                out,
                format_args!(
                    "No changes: {readable} database{} match {}.",
                    plural(readable),
                    cli.config.display()
                ),
            )?;
        } else if !plan.is_empty() {
            print(out, format_args!("Plan: {}.", plan.counts()))?;
            if plan.changes.iter().any(|c| {
                matches!(
                    c,
                    plan::Change::SetPragma {
                        needs_vacuum: true,
                        ..
                    }
                )
            }) {
                print(
                    out,
                    "Changes that rewrite a file with VACUUM run only with `litewarden apply --allow-vacuum`.",
                )?;
            }
        }
    }
    if !json {
        for rehearsal in &rehearsals {
            print_rehearsal(rehearsal, out)?;
        }
    }
    Ok(
        if rehearsal_failed
            || !plan.unreadable.is_empty()
            || !plan.problems.is_empty()
            || !loaded.faults.is_empty()
        {
            ExitStatus::Failure
        } else if plan.is_empty() {
            ExitStatus::Success
        } else {
            ExitStatus::ChangesPending
        },
    )
}

pub(super) fn apply(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    json: bool,
    options: ApplyOptions,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let Some(loaded) = load(cli, environment, json, Faults::Refuse, out)? else {
        return Ok(ExitStatus::Failure);
    };
    let _locks = super::claim(
        &loaded.config,
        loaded.config.databases.values().map(|db| &**db),
    )?;
    let plan = observe_and_plan(&loaded.config, clock)?;
    let report = crate::apply::apply(&loaded.config, &plan, options, clock)?;
    if json {
        print(
            out,
            json!({ "ok": !report.failed(), "results": report.results, "unreadable": report.unreadable, "problems": report.problems, "summary": report.summary(), "warnings": loaded.warnings }),
        )?;
    } else {
        print_warnings(cli, &loaded.warnings);
        print_unreadable(&report.unreadable);
        for problem in &report.problems {
            print(out, problem)?;
        }
        for result in &report.results {
            match &result.status {
                ChangeStatus::Done => print(out, result.change.done_text())?,
                ChangeStatus::Skipped(reason) => {
                    print(out, format_args!("{} (skipped: {reason})", result.change))?
                }
                ChangeStatus::Failed(error) => {
                    print(out, format_args!("{} (failed: {error})", result.change))?
                }
            }
        }
        print(out, format_args!("Apply: {}.", report.summary()))?;
    }
    Ok(if report.failed() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// Prints, on stderr, each database that could not be read and why.
fn print_unreadable(unreadable: &[plan::Unreadable]) {
    for database in unreadable {
        eprintln!("error: {}", database.error);
    }
}

fn rehearse_all(
    config: &crate::config::Config,
    clock: &dyn Clock,
) -> Result<Vec<Rehearsal>, Error> {
    let state = StateDb::open_read_only(&config.settings.state_dir)?;
    let store = crate::store::LocalDir::new(&config.settings.backup_dir);
    let mut rehearsals = Vec::new();
    for database in config.databases.values() {
        if let Some(migrations) = &database.migrations
            && let Some(rehearsal) =
                rehearse::rehearse(database, migrations, state.as_ref(), &store, clock)?
        {
            rehearsals.push(rehearsal);
        }
    }
    Ok(rehearsals)
}

fn print_rehearsal(rehearsal: &Rehearsal, out: &mut dyn Write) -> Result<(), Error> {
    let source = match &rehearsal.source {
        RehearsalSource::Backup(path) => {
            format!("a copy of backup {}", crate::paths::display(path))
        }
        RehearsalSource::LiveCopy(path) => {
            format!("an online copy of {}", crate::paths::display(path))
        }
    };
    print(
        out,
        format_args!("rehearsal of {} on {source}:", rehearsal.database),
    )?;
    for migration in &rehearsal.migrations {
        match &migration.error {
            None => print(
                out,
                format_args!(
                    "  ok    {}  {} ms, write lock {} ms, WAL {:+} bytes",
                    migration.migration,
                    migration.duration_ms.unwrap_or(0),
                    migration.lock_ms.unwrap_or(0),
                    migration.wal_growth.unwrap_or(0)
                ),
            )?,
            Some(error) => print(
                out,
                format_args!("  FAIL  {}: {error}", migration.migration),
            )?,
        }
    }
    Ok(())
}

/// The plan for `config` against what is on disk now.
fn observe_and_plan(
    config: &crate::config::Config,
    clock: &dyn Clock,
) -> Result<plan::Plan, Error> {
    let observed = crate::observe::observe(config, clock.now())?;
    Ok(plan::diff(&observed, &Desired::from_config(config)))
}

/// Each replicated database: where its segments go, how often, how far
/// back a restore reaches.
fn replication(config: &crate::config::Config) -> Vec<serde_json::Value> {
    config
        .databases
        .values()
        .filter_map(|db| {
            let replicate = db.replicate.as_ref()?;
            Some(json!({
                "database": db.name.as_str(),
                "to": replicate.to,
                "dir": crate::replicate::catalog::replica_dir(&config.settings.backup_dir, db.name.as_str()),
                "sync_every_ms": replicate.sync_every.as_millis() as u64,
                "window_s": replicate.window.as_secs(),
            }))
        })
        .collect()
}

fn show_replication(config: &crate::config::Config, out: &mut dyn Write) -> Result<(), Error> {
    for db in config.databases.values() {
        let Some(replicate) = &db.replicate else {
            continue;
        };
        print(
            out,
            format_args!(
                "replicate: {} every {} to {} ({}), any point of the last {}",
                db.name,
                humantime::format_duration(replicate.sync_every),
                crate::paths::display(&crate::replicate::catalog::replica_dir(
                    &config.settings.backup_dir,
                    db.name.as_str()
                )),
                replicate.to,
                humantime::format_duration(replicate.window)
            ),
        )?;
    }
    Ok(())
}

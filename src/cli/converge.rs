//! `check`, `plan` and `apply`: the config and convergence commands.
//!
//! Owns what those commands print; the work is in [`crate::config`],
//! [`crate::plan`] and [`crate::apply`].

use std::io::Write;

use serde_json::json;

use super::{Cli, ExitStatus, load, plural, print, print_warnings};
use crate::apply::{ApplyOptions, ChangeStatus};
use crate::clock::Clock;
use crate::config::Environment;
use crate::error::Error;
use crate::plan::{self, Desired};

pub(super) fn check(
    cli: &Cli,
    environment: &Environment,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let Some(loaded) = load(cli, environment, json, out)? else {
        return Ok(ExitStatus::Failure);
    };
    let databases = loaded.config.databases.len();
    if json {
        print(
            out,
            json!({ "ok": true, "databases": databases, "errors": [], "warnings": loaded.warnings }),
        )?;
    } else {
        for warning in &loaded.warnings {
            print(out, warning)?;
        }
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
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let Some(loaded) = load(cli, environment, json, out)? else {
        return Ok(ExitStatus::Failure);
    };
    let observed = crate::db::observe::observe(&loaded.config)?;
    let plan = plan::diff(&observed, &Desired::from_config(&loaded.config));
    if json {
        print(
            out,
            json!({ "changes": plan.changes, "warnings": loaded.warnings }),
        )?;
    } else {
        print_warnings(&loaded.warnings);
        for change in &plan.changes {
            print(out, change)?;
        }
        if plan.is_empty() {
            print(
                out,
                format_args!(
                    "No changes: {} database{} match {}.",
                    loaded.config.databases.len(),
                    plural(loaded.config.databases.len()),
                    cli.config.display()
                ),
            )?;
        } else {
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
    Ok(if plan.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::ChangesPending
    })
}

pub(super) fn apply(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    json: bool,
    options: ApplyOptions,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let Some(loaded) = load(cli, environment, json, out)? else {
        return Ok(ExitStatus::Failure);
    };
    let observed = crate::db::observe::observe(&loaded.config)?;
    let plan = plan::diff(&observed, &Desired::from_config(&loaded.config));
    let report = crate::apply::apply(&loaded.config, &plan, options, clock)?;
    if json {
        print(
            out,
            json!({ "ok": !report.failed(), "results": report.results, "summary": report.summary(), "warnings": loaded.warnings }),
        )?;
    } else {
        print_warnings(&loaded.warnings);
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

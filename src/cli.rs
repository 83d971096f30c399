//! The command line: clap definitions and one function per command.
//!
//! Owns argument parsing and what each command prints (text, or JSON with
//! `--json`). It returns an [`ExitStatus`] or an [`Error`]; only `main`
//! turns those into a process exit code.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::apply::{ApplyOptions, ChangeStatus};
use crate::clock::Clock;
use crate::config::{self, Diagnostic, Environment, Loaded};
use crate::error::Error;
use crate::plan::{self, Desired};

/// Keeps the SQLite databases of a live application safe and fast.
#[derive(Debug, Parser)]
#[command(name = "litewarden", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(
        short,
        long,
        global = true,
        env = "LITEWARDEN_CONFIG",
        default_value = "jobs.yaml"
    )]
    pub config: PathBuf,
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config; print every error as file:line:col.
    Check {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what `apply` would change, changing nothing (exit 2 when changes are pending).
    Plan {
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Converge once: create missing databases and set stored pragmas.
    Apply {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Allow changes that rewrite a file with VACUUM (auto_vacuum, page_size).
        #[arg(long)]
        allow_vacuum: bool,
    },
    /// Print the JSON schema of jobs.yaml.
    Schema,
}

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything is fine (exit 0).
    Success,
    /// `plan` found changes to make (exit 2).
    ChangesPending,
    /// The command reported a failure itself (exit 1).
    Failure,
}

/// Runs one command, writing its output to `out`.
pub fn run(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    match &cli.command {
        Command::Check { json } => check(cli, environment, *json, out),
        Command::Plan { json } => plan(cli, environment, *json, out),
        Command::Apply { json, allow_vacuum } => apply(
            cli,
            environment,
            clock,
            *json,
            ApplyOptions {
                allow_vacuum: *allow_vacuum,
            },
            out,
        ),
        Command::Schema => {
            out.write_all(crate::schema::jobs_schema().as_bytes())
                .map_err(write_error)?;
            Ok(ExitStatus::Success)
        }
    }
}

fn write_error(source: std::io::Error) -> Error {
    Error::ConfigRead {
        path: PathBuf::from("<stdout>"),
        source,
    }
}

fn print(out: &mut dyn Write, text: impl std::fmt::Display) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(write_error)
}

/// Loads the config, printing JSON errors itself in JSON mode.
fn load(
    cli: &Cli,
    environment: &Environment,
    json: bool,
    out: &mut dyn Write,
) -> Result<Option<Loaded>, Error> {
    match config::load(&cli.config, environment) {
        Ok(loaded) => Ok(Some(loaded)),
        Err(Error::Config(errors)) if json => {
            print(
                out,
                json!({ "ok": false, "errors": errors, "warnings": [] }),
            )?;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn print_warnings(warnings: &[Diagnostic]) {
    for warning in warnings {
        eprintln!("{warning}");
    }
}

fn check(
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn plan(
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
        let (create, change, unmanage) = plan.counts();
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
            print(
                out,
                format_args!(
                    "Plan: {create} to create, {change} to change, {unmanage} to stop managing."
                ),
            )?;
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

fn apply(
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
                ChangeStatus::Done => print(out, &result.change)?,
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

//! `offsite`: upload what is waiting for the offsite store now.
//!
//! Owns what the command prints; the work is the `offsite` job of
//! [`crate::jobs::run`], recorded like the daemon's runs.

use std::io::Write;

use indicatif::HumanBytes;
use serde_json::json;

use super::progress_bar::Reporter;
use super::{Cli, ExitStatus, print};
use crate::clock::Clock;
use crate::config::Environment;
use crate::error::Error;
use crate::jobs::run::{Done, Job};
use crate::state::StateDb;

pub(super) fn upload(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    (name, all): (Option<&str>, bool),
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let databases: Vec<_> = super::select::chosen(cli, &config, name, all, "offsite")?
        .into_iter()
        .filter(|db| !all || db.backup.offsite.is_some())
        .collect();
    let _locks = super::claim(&config, databases.iter().copied())?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for db in databases {
        let _span = tracing::info_span!("job", db = %db.name, job = "offsite", trigger = "manual")
            .entered();
        let ran = super::maintain::run_and_record(
            &config,
            db,
            &state,
            clock,
            Job::Offsite,
            &mut Reporter::for_stderr(),
        );
        match ran {
            Ok(Done::Offsite(report)) => {
                if !json {
                    print(
                        out,
                        format_args!(
                            "{}: {} uploaded ({}), {} removed from the offsite store by its retention, newest offsite copy {}",
                            db.name,
                            report.uploaded.len(),
                            HumanBytes(report.bytes),
                            report.pruned.len(),
                            report.newest.map_or("none".to_string(), super::show_time)
                        ),
                    )?;
                }
                reports.push(json!({ "database": db.name.as_str(), "report": report }));
            }
            Ok(_) => {}
            Err(error) if all => {
                eprintln!("error: {error}");
                failures.push(error.to_string());
            }
            Err(error) => return Err(error.into()),
        }
    }
    if json {
        print(
            out,
            json!({ "ok": failures.is_empty(), "databases": reports, "errors": failures }),
        )?;
    }
    Ok(if failures.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

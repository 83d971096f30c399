//! `accept`, `pause` and `resume`: the operator telling litewarden what it
//! cannot know.
//!
//! Owns what those commands print; the records are kept by
//! [`crate::state::expect`]. `accept` says a discontinuity (an emptied or
//! replaced database) is intended, so the backups from before it may be
//! pruned again and the database as it is becomes the expectation; for a
//! missing database it forgets what was known, so `apply` may create it
//! again. `pause` stops the daemon's scheduled backups of a database until
//! `resume` (manual `backup` still works).

use std::io::Write;

use super::{Cli, ExitStatus, print};
use crate::clock::Clock;
use crate::config::Environment;
use crate::error::Error;
use crate::state::StateDb;
use crate::state::expect::{Hold, HoldKind};

/// Accepts the discontinuities of `db`: the backups from before them are
/// no longer protected, and the database as it is now is what litewarden
/// expects.
pub(super) fn accept_database(
    state: &StateDb,
    db: &crate::config::Database,
    clock: &dyn Clock,
    out: &mut dyn Write,
) -> Result<usize, Error> {
    let recorded = state.accept_discontinuities(db.name.as_str(), clock.now())?;
    let remembered = state
        .identity(db.name.as_str())?
        .map(|(identity, _)| identity);
    let mut accepted = recorded;
    match crate::db::observe::read_identity(&db.path)? {
        Some(identity) => {
            let unrecorded = remembered
                .as_ref()
                .and_then(|before| crate::plan::identity::discontinuity(before, &identity));
            if let (0, Some(reason)) = (recorded, unrecorded) {
                accepted = 1;
                print(
                    out,
                    format_args!("{}: accepted as it is now: {reason}", db.name),
                )?;
            }
            state.remember_identity(db.name.as_str(), &db.path, &identity, clock.now())?
        }
        None => {
            state.forget_identity(db.name.as_str())?;
            state.forget_managed(db.name.as_str())?;
            print(
                out,
                format_args!(
                    "{}: {} is missing; litewarden forgot it, so `litewarden apply` creates it empty",
                    db.name,
                    crate::paths::display(&db.path)
                ),
            )?;
        }
    }
    if accepted > 0 {
        state.record_event(
            Some(db.name.as_str()),
            "discontinuity_accepted",
            "accepted by the operator",
            clock.now(),
        )?;
    }
    print(
        out,
        format_args!(
            "{}: {accepted} discontinuit{} accepted; the database as it is now is what litewarden expects",
            db.name,
            if accepted == 1 { "y" } else { "ies" }
        ),
    )?;
    Ok(accepted)
}

pub(super) fn accept(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    (name, all): (Option<&str>, bool),
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let databases = super::select::chosen(cli, &config, name, all, "accept")?;
    let state = StateDb::open(&config.settings.state_dir)?;
    for db in databases {
        accept_database(&state, db, clock, out)?;
    }
    Ok(ExitStatus::Success)
}

pub(super) fn pause(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    (name, all): (Option<&str>, bool),
    paused: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let command = if paused { "pause" } else { "resume" };
    let databases = super::select::chosen(cli, &config, name, all, command)?;
    let state = StateDb::open(&config.settings.state_dir)?;
    for db in databases {
        let name = db.name.as_str();
        if paused {
            state.set_hold(&Hold {
                database: name.to_string(),
                kind: HoldKind::Backups,
                since: clock.now(),
                version: None,
                fingerprint: None,
            })?;
            print(
                out,
                format_args!(
                    "{name}: scheduled backups paused (manual `litewarden backup {name}` still works; `litewarden resume {name}` resumes)"
                ),
            )?;
        } else {
            let was = state.release_hold(name, HoldKind::Backups)?;
            print(
                out,
                format_args!(
                    "{name}: {}",
                    if was {
                        "scheduled backups resumed"
                    } else {
                        "backups were not paused"
                    }
                ),
            )?;
        }
    }
    Ok(ExitStatus::Success)
}

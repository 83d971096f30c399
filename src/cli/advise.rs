//! `advise`: index advice from the application's slow queries.
//!
//! Owns what the command prints and the migration file it writes with
//! `--write-migration`; the advice itself is [`crate::advise`]. Nothing is
//! created on the database: the operator applies the migration.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::{Cli, ExitStatus, print};
use crate::advise::{Advice, ProposedIndex};
use crate::config::Environment;
use crate::error::Error;
use crate::state::StateDb;

/// Prints the advice for `database`; with `write_migration`, writes each
/// proposed index as the next migration of the database.
pub(super) fn run(
    cli: &Cli,
    environment: &Environment,
    database: &str,
    write_migration: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let db = super::select::database(cli, &config, database)?;
    let slow = match StateDb::open_read_only(&config.settings.state_dir)? {
        Some(state) => state.slow_queries(db.name.as_str())?,
        None => Vec::new(),
    };
    let advice = crate::advise::advise(&db.path, &slow)?;
    let mut written = Vec::new();
    if write_migration {
        let Some(migrations) = &db.migrations else {
            return Err(Error::NoMigrations(db.name.to_string()));
        };
        for index in advice.iter().filter_map(|a| a.index.as_ref()) {
            let path = write(&migrations.dir, index)?;
            if !written.contains(&path) {
                written.push(path);
            }
        }
    }
    if json {
        print(
            out,
            json!({ "database": db.name, "advice": advice, "written": written }),
        )?;
        return Ok(ExitStatus::Success);
    }
    if advice.is_empty() {
        print(
            out,
            format_args!(
                "{}: no slow query recorded (the application's live::Manager records statements slower than its slow_query threshold)",
                db.name
            ),
        )?;
    }
    for one in &advice {
        show(out, one)?;
    }
    for path in &written {
        print(
            out,
            format_args!(
                "wrote {}: apply it with `litewarden migrate up {}`",
                crate::paths::display(path),
                db.name
            ),
        )?;
    }
    Ok(ExitStatus::Success)
}

fn show(out: &mut dyn Write, advice: &Advice) -> Result<(), Error> {
    print(
        out,
        format_args!(
            "{}\n  slow {} time{}, {:.1} ms on average",
            advice.sql,
            advice.count,
            super::plural(advice.count as usize),
            advice.mean_ms
        ),
    )?;
    if let Some(error) = &advice.error {
        return print(out, format_args!("  cannot explain it here: {error}"));
    }
    for step in &advice.plan {
        print(out, format_args!("  plan: {step}"))?;
    }
    for problem in &advice.problems {
        print(out, format_args!("  why slow: {problem}"))?;
    }
    match &advice.index {
        Some(index) => {
            print(out, format_args!("  advice: {};", index.create))?;
            for step in &index.plan {
                print(out, format_args!("  plan with it: {step}"))?;
            }
            print(
                out,
                "  (nothing was created: `--write-migration` writes it as a migration)",
            )
        }
        None if advice.problems.is_empty() => {
            print(out, "  advice: none, it already uses an index")
        }
        None => print(out, "  advice: no single index makes the planner use it"),
    }
}

/// Writes `index` as the next migration in `dir` (with its down
/// migration); the path of the up file.
fn write(dir: &std::path::Path, index: &ProposedIndex) -> Result<PathBuf, Error> {
    let failed = |e: std::io::Error| {
        Error::Usage(format!(
            "{}: cannot write a migration: {e}",
            crate::paths::display(dir)
        ))
    };
    let existing =
        crate::jobs::migrations::files::discover(dir).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(same) = existing.iter().find(|m| m.sql.contains(&index.create)) {
        return Ok(same.path.clone());
    }
    let version = existing.iter().map(|m| m.version).max().unwrap_or(0) + 1;
    let stem = format!("{version:04}_add_{}", index.name);
    std::fs::create_dir_all(dir).map_err(failed)?;
    let up = dir.join(format!("{stem}.sql"));
    let down = dir.join(format!("{stem}.down.sql"));
    let create = format!(
        "-- Proposed by `litewarden advise` for a slow query.\n{};\n",
        index.create
    );
    let drop = format!(
        "DROP INDEX IF EXISTS \"{}\";\n",
        index.name.replace('"', "\"\"")
    );
    for (path, text) in [(&down, drop), (&up, create)] {
        let pending = crate::durable::PendingFile::create(path).map_err(failed)?;
        pending.file().write_all(text.as_bytes()).map_err(failed)?;
        pending.commit().map_err(failed)?;
    }
    Ok(up)
}

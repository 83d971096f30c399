//! `migrate status|up|down|repair|baseline`.
//!
//! Owns what those commands print; the work is in
//! [`crate::jobs::migrations`].

use std::io::Write;

use serde_json::json;

use super::progress_bar::Reporter;
use super::{Cli, ExitStatus, MigrateCommand, print};
use crate::clock::Clock;
use crate::config::{self, Config, Database, Environment, MigrationApply, Migrations};
use crate::error::Error;
use crate::jobs::migrations::{self, Entry, UpRequest, runner};
use crate::state::expect::{Hold, HoldKind};
use crate::state::{StateDb, Trigger};

fn configured<'a>(
    cli: &Cli,
    config: &'a Config,
    name: &str,
) -> Result<(&'a Database, &'a Migrations), Error> {
    let database = super::select::database(cli, config, name)?;
    let migrations = database
        .migrations
        .as_ref()
        .ok_or_else(|| Error::NoMigrations(name.to_string()))?;
    Ok((database, migrations))
}

/// A migration run the operator asked for on `db`, up to `to`.
fn manual_request<'a>(
    config: &'a Config,
    db: &'a Database,
    migrations: &'a Migrations,
    to: Option<i64>,
) -> UpRequest<'a> {
    UpRequest {
        database: db,
        migrations,
        backup_dir: &config.settings.backup_dir,
        to,
        trigger: Trigger::Manual,
    }
}

/// The databases a migrate subcommand acts on: the one named, or with
/// `--all` every database that has `migrations:`.
fn with_migrations(
    cli: &Cli,
    config: &Config,
    name: &Option<String>,
    all: bool,
    command: &'static str,
) -> Result<Vec<String>, Error> {
    let chosen = super::select::chosen(cli, config, name.as_deref(), all, command)?;
    Ok(chosen
        .into_iter()
        .filter(|db| !all || db.migrations.is_some())
        .map(|db| db.name.to_string())
        .collect())
}

/// Runs one `migrate` subcommand.
pub(super) fn run(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    action: &MigrateCommand,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let loaded = config::load(&cli.config, environment)?;
    let config = &loaded.config;
    match action {
        MigrateCommand::Status {
            database,
            all,
            json,
        } => {
            let names: Vec<&str> = match database {
                Some(name) if !*all => vec![name.as_str()],
                None if !*all => {
                    super::select::chosen(cli, config, None, false, "migrate status")?;
                    Vec::new()
                }
                _ => config
                    .databases
                    .values()
                    .filter(|db| db.migrations.is_some())
                    .map(|db| db.name.as_str())
                    .collect(),
            };
            let mut problems = 0;
            let mut reports = Vec::new();
            for name in names {
                let (found, report) = status_of(cli, config, name, *json, out)?;
                problems += found;
                reports.extend(report);
            }
            if *json {
                match reports.as_slice() {
                    [report] if !*all => print(out, report)?,
                    _ => print(out, json!({ "databases": reports }))?,
                }
            }
            Ok(if problems == 0 {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            })
        }
        MigrateCommand::Up {
            database,
            all,
            to,
            json,
        } => {
            for database in &with_migrations(cli, config, database, *all, "migrate up")? {
                let (db, settings) = configured(cli, config, database)?;
                let state = StateDb::open(&config.settings.state_dir)?;
                let request = manual_request(config, db, settings, *to);
                let _lock = super::claim(config, [db])?;
                let report = migrations::up(request, &state, clock, &mut Reporter::for_stderr())?;
                if state.release_hold(database, HoldKind::Migrations)? {
                    eprintln!("{database}: the operator hold on migrations is released");
                }
                remember(db, &state, clock)?;
                if *json {
                    print(
                        out,
                        json!({ "ok": true, "database": database, "report": report }),
                    )?;
                } else {
                    if let Some(backup) = &report.backup {
                        print(
                            out,
                            format_args!(
                                "{database}: backup before migrating: {}",
                                crate::paths::display(backup)
                            ),
                        )?;
                    }
                    for applied in &report.applied {
                        print(
                            out,
                            format_args!(
                                "> {database}: applied {} in {} ms (write lock held {} ms)",
                                applied.migration, applied.duration_ms, applied.lock_ms
                            ),
                        )?;
                    }
                    for missing in &report.missing {
                        super::warn_line(
                            cli,
                            "migration file gone",
                            format_args!(
                                "warning: {database}: {missing} is applied but its file is gone"
                            ),
                        );
                    }
                    print(
                        out,
                        format_args!("{database}: {} migration(s) applied", report.applied.len()),
                    )?;
                }
            }
            Ok(ExitStatus::Success)
        }
        MigrateCommand::Down { database, all, to } => {
            for database in &with_migrations(cli, config, database, *all, "migrate down")? {
                let (db, settings) = configured(cli, config, database)?;
                let state = StateDb::open(&config.settings.state_dir)?;
                let request = manual_request(config, db, settings, None);
                let _lock = super::claim(config, [db])?;
                let reverted =
                    migrations::down(request, *to, &state, clock, &mut Reporter::for_stderr())?;
                if db
                    .migrations
                    .as_ref()
                    .is_some_and(|m| m.apply == MigrationApply::Auto)
                {
                    let files = runner::discover(db, settings)?;
                    state.set_hold(&Hold {
                        database: database.clone(),
                        kind: HoldKind::Migrations,
                        since: clock.now(),
                        version: Some(*to),
                        fingerprint: Some(migrations::fingerprint(&files)),
                    })?;
                    eprintln!(
                        "{database}: held at version {to}: the daemon applies nothing above it until `litewarden migrate up {database}` or the migration files change"
                    );
                }
                remember(db, &state, clock)?;
                for name in &reverted {
                    print(out, format_args!("< {database}: reverted {name}"))?;
                }
                print(
                    out,
                    format_args!("{database}: {} migration(s) reverted", reverted.len()),
                )?;
            }
            Ok(ExitStatus::Success)
        }
        MigrateCommand::Repair { database, all } => {
            for database in &with_migrations(cli, config, database, *all, "migrate repair")? {
                let (db, settings) = configured(cli, config, database)?;
                let files = runner::discover(db, settings)?;
                let repaired = runner::session(db)?.repair(&files)?;
                for line in &repaired {
                    print(out, format_args!("{database}: accepted {line}"))?;
                }
                print(
                    out,
                    format_args!("{database}: {} checksum(s) repaired", repaired.len()),
                )?;
            }
            Ok(ExitStatus::Success)
        }
        MigrateCommand::Baseline {
            database,
            all,
            version,
            detect,
        } => {
            let mut unmatched = false;
            for database in &with_migrations(cli, config, database, *all, "migrate baseline")? {
                let (db, settings) = configured(cli, config, database)?;
                let files = runner::discover(db, settings)?;
                let version = match version {
                    Some(version) => *version,
                    None => {
                        debug_assert!(*detect);
                        let found = crate::jobs::migrations::detect::detect(&db.path, &files)
                            .map_err(|detail| runner::MigrateError::Invalid {
                                database: database.clone(),
                                problems: vec![detail],
                            })?;
                        match (found.matched, found.closest) {
                            (Some(version), _) => {
                                print(
                                    out,
                                    format_args!(
                                        "{database}: its schema is what the migrations give at version {version}"
                                    ),
                                )?;
                                version
                            }
                            (None, closest) => {
                                match closest {
                                    Some(closest) => print(
                                        out,
                                        format_args!(
                                            "{database}: its schema matches no migration version; the closest is {closest}:"
                                        ),
                                    )?,
                                    None if found.conflicts.is_empty() => print(
                                        out,
                                        format_args!(
                                            "{database}: its schema matches no migration version, and no migration creates any of its tables"
                                        ),
                                    )?,
                                    None => print(
                                        out,
                                        format_args!(
                                            "{database}: its schema matches no migration version, and the migrations create objects it already has:"
                                        ),
                                    )?,
                                }
                                for conflict in &found.conflicts {
                                    print(out, format_args!("  {conflict}"))?;
                                }
                                for difference in &found.differences {
                                    print(out, format_args!("  {difference}"))?;
                                }
                                print(
                                    out,
                                    format_args!(
                                        "nothing recorded; once you know the version, `litewarden migrate baseline {database} --version V`"
                                    ),
                                )?;
                                unmatched = true;
                                continue;
                            }
                        }
                    }
                };
                let recorded = runner::session(db)?.baseline(&files, version, clock.now())?;
                for name in &recorded {
                    print(
                        out,
                        format_args!("{database}: recorded {name} as applied (not run)"),
                    )?;
                }
                print(
                    out,
                    format_args!(
                        "{database}: baseline at version {version}, {} recorded",
                        recorded.len()
                    ),
                )?;
            }
            Ok(if unmatched {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            })
        }
    }
}

/// Records what `db` looks like after a migration command, so its new
/// schema is what litewarden expects (a reverted table is no
/// discontinuity).
fn remember(db: &Database, state: &StateDb, clock: &dyn Clock) -> Result<(), Error> {
    if let Some(identity) = crate::db::observe::read_identity(&db.path)? {
        state.remember_identity(db.name.as_str(), &db.path, &identity, clock.now())?;
    }
    Ok(())
}

/// The migration status of one database: printed as lines, or returned as
/// JSON when `json`; with the number of problems it has.
fn status_of(
    cli: &Cli,
    config: &Config,
    database: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(usize, Option<serde_json::Value>), Error> {
    let (db, settings) = configured(cli, config, database)?;
    let status = runner::status(db, settings)?;
    let failed_run = match crate::state::StateDb::open_read_only(&config.settings.state_dir)? {
        Some(state) => state.failed_migration_run(database)?,
        None => None,
    };
    let problems = status.errors().len() + usize::from(failed_run.is_some());
    if json {
        return Ok((
            problems,
            Some(
                json!({ "database": database, "migrations": status.entries, "errors": status.errors(), "failed_run": failed_run.as_ref().map(|(at, error)| json!({ "started_at": at, "error": error })) }),
            ),
        ));
    } else {
        for entry in &status.entries {
            let line = match entry {
                Entry::Applied { file, row } => format!(
                    "applied   {file}  at {}  {} ms{}",
                    super::show_stored_time(&row.applied_at),
                    row.duration_ms,
                    row.backup_path
                        .as_deref()
                        .map(|b| format!(
                            "  backup {}",
                            crate::paths::display(std::path::Path::new(b))
                        ))
                        .unwrap_or_default()
                ),
                Entry::Pending { file } => format!("pending   {file}"),
                Entry::Modified { file, .. } => format!(
                    "MODIFIED  {file}  (checksum changed since it was applied; `litewarden migrate repair {database}` accepts it)"
                ),
                Entry::Missing { row } => format!(
                    "missing   {:04}_{}  (applied, file gone)",
                    row.version, row.name
                ),
                Entry::OutOfOrder { file } => {
                    format!("OUT OF ORDER  {file}  (older than the newest applied)")
                }
            };
            print(out, line)?;
        }
        if let Some((at, error)) = &failed_run {
            print(
                out,
                format_args!(
                    "FAILED    the last run, at {}: {error}",
                    super::show_time(*at)
                ),
            )?;
        }
        let pending = status.pending().len();
        print(
            out,
            format_args!(
                "{database}: {} applied, {pending} pending, {problems} problem{}",
                status
                    .entries
                    .iter()
                    .filter(|e| matches!(e, Entry::Applied { .. }))
                    .count(),
                super::plural(problems)
            ),
        )?;
    }
    Ok((problems, None))
}

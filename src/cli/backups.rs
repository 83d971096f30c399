//! `backup`, `backups`, `verify`, `restore`, `prune`, `pin` and `unpin`.
//!
//! Owns what those commands print and the confirmation prompt of `restore`;
//! the work is in [`crate::jobs`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use indicatif::HumanBytes;
use serde_json::json;

use super::progress_bar::Reporter;
use super::show_time;
use super::{Cli, ExitStatus, print};
use crate::clock::Clock;
use crate::config::{Config, Database, Environment, VerifyLevel};
use crate::error::Error;
use crate::jobs::backup::{self, BackupReport};
use crate::jobs::restore::{self, RestoreRequest, RestoreSource};
use crate::jobs::run::{Done, Job};
use crate::jobs::{prune as prune_job, verify as verify_job};
use crate::state::StateDb;
use crate::store::{BackupRecord, LocalDir, Store};

fn rate(bytes: u64, seconds: f64) -> String {
    if seconds <= 0.0 {
        return "-".into();
    }
    format!("{}/s", HumanBytes((bytes as f64 / seconds) as u64))
}

fn describe(report: &BackupReport) -> String {
    let record = &report.record;
    let seconds = report.duration.as_secs_f64();
    let verified = if record.verified() {
        "verified"
    } else {
        "not verified"
    };
    let size = if record.size == report.plain_bytes {
        HumanBytes(record.size).to_string()
    } else {
        format!(
            "{}, {} uncompressed",
            HumanBytes(record.size),
            HumanBytes(report.plain_bytes)
        )
    };
    format!(
        "{}: {} ({size}) in {seconds:.2}s at {}, {}, {verified}{}",
        record.database,
        crate::paths::display(&report.path),
        rate(report.plain_bytes, seconds),
        report.copy.method.as_str(),
        if record.pinned { ", pinned" } else { "" },
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn backup(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    name: Option<&str>,
    all: bool,
    pin: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let databases = super::select::chosen(cli, &config, name, all, "backup")?;
    let _locks = super::claim(&config, databases.iter().copied())?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for db in databases {
        let _span =
            tracing::info_span!("job", db = %db.name, job = "backup", trigger = "manual").entered();
        backup::remove_restore_leftovers(crate::durable::parent(&db.path));
        let job = Job::Backup { pin, prune: false };
        let taken = super::maintain::run_and_record(
            &config,
            db,
            &state,
            clock,
            job,
            &mut Reporter::for_stderr(),
        );
        match taken {
            Ok(Done::Backup { report, .. }) => {
                if !json {
                    print(out, describe(&report))?;
                }
                reports.push(report);
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
            json!({ "ok": failures.is_empty(), "backups": reports, "errors": failures }),
        )?;
    }
    Ok(if failures.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

pub(super) fn list(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    (name, all, remote): (Option<&str>, bool, bool),
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_reading(cli, environment)?.config;
    let databases = super::select::chosen(cli, &config, name, all, "backups")?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let mut listed = Vec::new();
    for db in databases {
        if remote && all && db.backup.offsite.is_none() {
            continue;
        }
        let entries = if remote {
            let store = crate::jobs::offsite::open(db, &config.settings.backup_dir)?;
            prune_job::decide(&state, db, &*store, config.settings.timezone, clock.now())?
        } else {
            retention(&state, &config, db, clock)?
        };
        let replica = match (remote, &db.replicate) {
            (false, Some(_)) => {
                crate::replicate::catalog::summary(&crate::replicate::catalog::replica_dir(
                    &config.settings.backup_dir,
                    db.name.as_str(),
                ))
                .map_err(|e| Error::Usage(format!("{}: cannot read its replica: {e}", db.name)))?
            }
            _ => None,
        };
        listed.push((
            db.name.as_str(),
            offsite_times(&state, db, entries)?,
            replica,
        ));
    }
    if json {
        let mut lists = listed.iter().map(|(name, entries, replica)| {
            json!({ "database": name, "backups": entries, "replica": replica })
        });
        if all {
            print(out, json!({ "databases": lists.collect::<Vec<_>>() }))?;
        } else if let Some(list) = lists.next() {
            print(out, list)?;
        }
        return Ok(ExitStatus::Success);
    }
    for (i, (name, entries, replica)) in listed.iter().enumerate() {
        if all {
            if i > 0 {
                print(out, "")?;
            }
            print(out, format_args!("{name}:"))?;
        }
        list_one(name, entries, out)?;
        if let Some(replica) = replica {
            print(
                out,
                format_args!(
                    "replica: any point from {} to {} (`litewarden restore {name} --at TIME`); {} generations, {} segments, {} bytes",
                    crate::replicate::rebuild::shown(replica.oldest),
                    crate::replicate::rebuild::shown(replica.newest),
                    replica.generations,
                    replica.segments,
                    replica.bytes
                ),
            )?;
        }
    }
    Ok(ExitStatus::Success)
}

/// What retention decides for each backup of `db` now.
fn retention(
    state: &StateDb,
    config: &Config,
    db: &Database,
    clock: &dyn Clock,
) -> Result<Vec<prune_job::PruneEntry>, Error> {
    Ok(prune_job::decide(
        state,
        db,
        &LocalDir::new(&config.settings.backup_dir),
        config.settings.timezone,
        clock.now(),
    )?)
}

/// A copy with its verdict, and when it reached the offsite store.
#[derive(Debug, serde::Serialize)]
struct Listed {
    #[serde(flatten)]
    entry: prune_job::PruneEntry,
    /// When the copy reached the offsite store (checked), if it has.
    offsite_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `entries` with the time each copy reached the offsite store.
fn offsite_times(
    state: &StateDb,
    db: &Database,
    entries: Vec<prune_job::PruneEntry>,
) -> Result<Vec<Listed>, Error> {
    let reached: std::collections::HashMap<_, _> = state
        .backups(db.name.as_str())?
        .into_iter()
        .filter(|b| b.store == crate::store::StoreId::Offsite)
        .map(|b| (b.key, b.verified_at))
        .collect();
    Ok(entries
        .into_iter()
        .map(|entry| Listed {
            offsite_at: reached.get(&entry.backup.key).copied().flatten(),
            entry,
        })
        .collect())
}

/// The catalog row of the backup file at `path`, when it is a copy in the
/// backup directory that the catalog knows.
fn catalogued(
    state: &StateDb,
    store: &LocalDir,
    path: &Path,
) -> Result<Option<BackupRecord>, Error> {
    Ok(match store.key_of(path) {
        Some(key) => state.backup_by_key(store.id(), &key)?,
        None => None,
    })
}

/// Prints the backups of one database as a table.
fn list_one(name: &str, entries: &[Listed], out: &mut dyn Write) -> Result<(), Error> {
    if entries.is_empty() {
        print(
            out,
            format_args!("{name}: no backups yet; take one with `litewarden backup {name}`"),
        )?;
        return Ok(());
    }
    print(
        out,
        format_args!(
            "{:<21} {:>10}  {:<8} {:<6} {:<13} {:<12}  {:<21} {:<28} FILE",
            "TIME", "SIZE", "VERIFIED", "PINNED", "TRIGGER", "SHA256", "OFFSITE", "KEPT BECAUSE"
        ),
    )?;
    for listed in entries {
        let entry = &listed.entry;
        let b = &entry.backup;
        let reasons: Vec<String> = entry.reasons.iter().map(ToString::to_string).collect();
        print(
            out,
            format_args!(
                "{:<21} {:>10}  {:<8} {:<6} {:<13} {:<12}  {:<21} {:<28} {}",
                show_time(b.created_at),
                HumanBytes(b.size).to_string(),
                if b.verified() { "yes" } else { "no" },
                if b.pinned { "yes" } else { "-" },
                b.trigger.as_str(),
                b.sha256.as_deref().map_or("-", |s| &s[..12.min(s.len())]),
                listed.offsite_at.map_or("-".to_string(), show_time),
                match (reasons.is_empty(), entry.dated_in_future) {
                    (true, false) => "(pruned next)".to_string(),
                    (true, true) => "(pruned next; dated in the future)".to_string(),
                    (false, false) => reasons.join(", "),
                    (false, true) => format!("{} (dated in the future)", reasons.join(", ")),
                },
                crate::paths::display(&entry.path)
            ),
        )?;
    }
    Ok(())
}

pub(super) fn verify(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    file: &Path,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let path = crate::paths::from_cwd(file);
    let (state, store) = if cli.config.exists() {
        let config = super::load_config(cli, environment)?;
        (
            StateDb::open_existing(&config.settings.state_dir)?,
            Some(LocalDir::new(&config.settings.backup_dir)),
        )
    } else {
        (None, None)
    };
    let scratch_dir = state
        .as_ref()
        .map_or_else(std::env::temp_dir, |s| s.scratch_dir().to_path_buf());
    let record = match (&state, &store) {
        (Some(state), Some(store)) => catalogued(state, store, &path)?,
        _ => None,
    };
    let expected = record.as_ref().and_then(|r| r.sha256.as_deref());
    let verified = verify_job::verify_file(
        &path,
        expected,
        VerifyLevel::Full,
        &scratch_dir,
        &mut Reporter::for_stderr(),
    )?;
    if let (Some(state), Some(store), Some(record)) = (&state, &store, &record) {
        state.mark_verified(record.id, &verified.sha256, clock.now())?;
        if let Err(error) = crate::jobs::manifest::refresh_from_catalog(state, store, &record.key) {
            tracing::warn!(%error, "the verification is recorded in the catalog, not in the backup's manifest (the backup directory is read-only?)");
        }
    }
    let checksum = match (&record, expected) {
        (Some(_), Some(_)) => "SHA-256 matches the catalog",
        (Some(_), None) => "SHA-256 recorded in the catalog now",
        (None, _) => "not in the catalog",
    };
    if json {
        print(
            out,
            json!({ "ok": true, "file": path, "sha256": verified.sha256, "catalogued": record.is_some(), "matches_catalog": verified.matches_catalog }),
        )?;
    } else {
        print(
            out,
            format_args!(
                "ok: {}: integrity_check ok, {checksum} ({})",
                crate::paths::display(&path),
                verified.sha256
            ),
        )?;
    }
    Ok(ExitStatus::Success)
}

/// The arguments of `restore`.
pub(super) struct RestoreArgs<'a> {
    pub database: &'a str,
    pub from: &'a str,
    pub to: Option<&'a Path>,
    pub yes: bool,
    pub before_migration: Option<&'a str>,
    pub before: Option<&'a str>,
    pub at: Option<&'a str>,
    pub force: bool,
    pub full_check: bool,
    pub json: bool,
}

/// Whether `db` is replicated and its replica holds a generation here or
/// is mirrored off the machine: then `restore` without a source goes to
/// its newest point.
fn has_replica(db: &crate::config::Database, backup_dir: &Path) -> bool {
    let Some(replicate) = &db.replicate else {
        return false;
    };
    replicate.to == crate::config::ReplicateTo::Offsite
        || crate::replicate::catalog::generations(&crate::replicate::catalog::replica_dir(
            backup_dir,
            db.name.as_str(),
        ))
        .is_ok_and(|generations| !generations.is_empty())
}

/// `--before` and `--at` (named by `flag`): an age (`10m`, `-10m`, `2h
/// ago`) or a time (RFC 3339, or `YYYY-MM-DD[ HH:MM[:SS]]` in `timezone`).
fn parse_time(
    flag: &str,
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
    timezone: chrono_tz::Tz,
) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    use chrono::TimeZone;
    let age = text.trim().trim_start_matches('-');
    let age = age.strip_suffix(" ago").unwrap_or(age).trim();
    if let Ok(age) = humantime::parse_duration(age)
        && let Ok(age) = chrono::TimeDelta::from_std(age)
    {
        return Ok(now - age);
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    let formats = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    let naive = formats
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text.trim(), f).ok())
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        });
    naive
        .and_then(|naive| timezone.from_local_datetime(&naive).earliest())
        .map(|time| time.with_timezone(&chrono::Utc))
        .ok_or_else(|| {
            Error::Usage(format!(
                "{flag} `{text}`: give an age (10m, -10m, \"2h ago\") or a time (2026-12-02 14:30 in settings.timezone, 2026-12-02T14:30:00Z)"
            ))
        })
}

/// What replacing `db` with `source` gives up: said before every in-place
/// restore, on a terminal or not.
fn what_is_replaced(
    db: &crate::config::Database,
    resolved: &restore::Resolved,
    store: &LocalDir,
    state: &StateDb,
    clock: &dyn Clock,
) -> Result<String, Error> {
    let source = resolved.shown.as_path();
    if let Some(rebuilt) = &resolved.point {
        return Ok(format!(
            "{}: replacing {} with its replica as of {} ({} commits after the generation's base): every change made to it since is replaced (and kept in the safety copy taken first)",
            db.name,
            crate::paths::display(&db.path),
            crate::replicate::rebuild::shown(rebuilt.point),
            rebuilt.commits
        ));
    }
    let record = match &resolved.record {
        Some(record) => Some(record.clone()),
        None => catalogued(state, store, source)?,
    };
    let copy = match record {
        Some(record) => {
            let age = (clock.now() - record.created_at)
                .to_std()
                .unwrap_or_default();
            format!(
                "the copy of {} ({} old)",
                super::show_time(record.created_at),
                humantime::format_duration(std::time::Duration::from_secs(age.as_secs()))
            )
        }
        None => format!(
            "{}, a file not in the catalog",
            crate::paths::display(source)
        ),
    };
    Ok(format!(
        "{}: replacing {} with {copy}: every change made to it since is replaced (and kept in the safety copy taken first)",
        db.name,
        crate::paths::display(&db.path)
    ))
}

pub(super) fn restore(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    args: RestoreArgs,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let db = super::select::database(cli, &config, args.database)?;
    let _lock = super::claim(&config, [db])?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let request = RestoreRequest {
        database: db,
        backup_dir: &config.settings.backup_dir,
        from: match (args.at, args.before, args.before_migration, args.from) {
            (Some(time), _, _, _) => RestoreSource::Replica(Some(parse_time(
                "--at",
                time,
                clock.now(),
                config.settings.timezone,
            )?)),
            (None, Some(time), _, _) => RestoreSource::Before(parse_time(
                "--before",
                time,
                clock.now(),
                config.settings.timezone,
            )?),
            (None, None, Some(migration), _) => {
                RestoreSource::BeforeMigration(migration.to_string())
            }
            (None, None, None, "latest") if has_replica(db, &config.settings.backup_dir) => {
                RestoreSource::Replica(None)
            }
            (None, None, None, from) => RestoreSource::parse_from(from),
        },
        to: args.to.map(crate::paths::from_cwd),
        force: args.force,
        full_check: args.full_check,
    };
    let source = restore::resolve(&request, &state)?;
    let target = request.to.clone().unwrap_or_else(|| db.path.clone());
    if request.to.is_none() && db.path.exists() {
        let store = LocalDir::new(&config.settings.backup_dir);
        eprintln!("{}", what_is_replaced(db, &source, &store, &state, clock)?);
    }
    if !args.yes && std::io::stdin().is_terminal() {
        let replacing = if request.to.is_none() && db.path.exists() {
            " (a safety copy of the current file is taken first)"
        } else {
            ""
        };
        eprint!(
            "restore `{}` into {} from {}{replacing}? [y/N] ",
            db.name,
            crate::paths::display(&target),
            crate::paths::display(&source.shown)
        );
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(Error::Output)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Error::Cancelled);
        }
    }
    let report = restore::restore(
        &request,
        &source,
        &state,
        clock,
        &mut Reporter::for_stderr(),
    )?;
    if args.json {
        print(out, json!({ "ok": true, "restore": report }))?;
    } else {
        print(
            out,
            format_args!(
                "{}: restored {} from {} in {:.2}s",
                db.name,
                crate::paths::display(&report.target),
                crate::paths::display(&report.source),
                report.duration_ms as f64 / 1000.0
            ),
        )?;
        if let Some(copy) = &report.safety_copy {
            print(
                out,
                format_args!(
                    "{}: the previous content is kept in {}",
                    db.name,
                    crate::paths::display(copy)
                ),
            )?;
        }
    }
    Ok(ExitStatus::Success)
}

/// What `prune` was asked to do.
#[derive(Debug, Clone, Copy)]
pub(super) struct PruneArgs<'a> {
    pub database: Option<&'a str>,
    pub all: bool,
    pub dry_run: bool,
    pub accept_discontinuity: bool,
    pub json: bool,
}

pub(super) fn prune(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    args: PruneArgs,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let PruneArgs {
        database: name,
        all,
        dry_run,
        accept_discontinuity,
        json,
    } = args;
    let config = super::load_config(cli, environment)?;
    let databases = super::select::chosen(cli, &config, name, all, "prune")?;
    let _locks = super::claim(&config, databases.iter().copied())?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let mut results = Vec::new();
    for db in databases {
        if accept_discontinuity && !dry_run {
            super::holds::accept_database(&state, db, clock, out)?;
        }
        let entries = retention(&state, &config, db, clock)?;
        let removed = if dry_run {
            Vec::new()
        } else {
            prune_job::remove(
                &state,
                &LocalDir::new(&config.settings.backup_dir),
                &entries,
            )?
        };
        if !json {
            for entry in &entries {
                let reasons: Vec<String> = entry.reasons.iter().map(ToString::to_string).collect();
                let verb = match (entry.keep(), dry_run) {
                    (true, _) => "keep  ",
                    (false, true) => "remove",
                    (false, false) => "removed",
                };
                let why = if entry.keep() {
                    format!("  ({})", reasons.join(", "))
                } else {
                    String::new()
                };
                let future = if entry.dated_in_future {
                    "  [dated in the future: written under a clock that ran ahead]"
                } else {
                    ""
                };
                print(
                    out,
                    format_args!(
                        "{verb} {}  {}{why}{future}",
                        show_time(entry.backup.created_at),
                        crate::paths::display(&entry.path)
                    ),
                )?;
            }
            let gone = entries.iter().filter(|e| !e.keep()).count();
            let kept = entries.len() - gone;
            let summary = if dry_run {
                format!("{kept} kept, {gone} would be removed (dry run)")
            } else {
                format!("{kept} kept, {} removed", removed.len())
            };
            print(out, format_args!("{}: {summary}", db.name))?;
        }
        results.push(json!({ "database": db.name, "dry_run": dry_run, "entries": entries, "removed": removed.len() }));
    }
    if json {
        print(out, json!({ "ok": true, "prune": results }))?;
    }
    Ok(ExitStatus::Success)
}

pub(super) fn pin(
    cli: &Cli,
    environment: &Environment,
    file: &Path,
    pinned: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let store = LocalDir::new(&config.settings.backup_dir);
    for db in config.databases.values() {
        crate::jobs::manifest::sync_catalog(&state, &store, db.name.as_str())?;
    }
    let path = crate::paths::from_cwd(file);
    let record =
        catalogued(&state, &store, &path)?.ok_or_else(|| Error::UnknownBackup(path.clone()))?;
    state.set_pinned(record.id, pinned)?;
    crate::jobs::manifest::refresh_from_catalog(&state, &store, &record.key)?;
    print(
        out,
        format_args!(
            "{} {}",
            if pinned { "pinned" } else { "unpinned" },
            crate::paths::display(&path)
        ),
    )?;
    Ok(ExitStatus::Success)
}

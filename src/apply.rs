//! Executing a [`Plan`]: `litewarden apply`, and later each reload of the
//! daemon.
//!
//! Owns the order and bookkeeping of a convergence run: each change is
//! executed, skipped (a rewrite without `--allow-vacuum`) or failed, one
//! database's failure does not stop the others, the managed-database list is
//! updated, and the run is recorded in the state database. It never deletes
//! a database file: "unmanage" only forgets the name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::clock::Clock;
use crate::config::{Config, Database, JobKind};
use crate::db::observe::observe_file;
use crate::db::pragmas;
use crate::jobs::migrations::UpRequest;
use crate::jobs::outcome::{FailureKind, JobFailure, JobSuccess};
use crate::jobs::progress::Quiet;
use crate::jobs::restore::{self, RestoreRequest, RestoreSource};
use crate::plan::identity::Identity;
use crate::plan::{
    self, Change, Desired, DesiredDatabase, Observed, ObservedFile, Plan, Problem, Unreadable,
};
use crate::state::{ManagedDatabase, StateDb, StateError, Trigger};

/// Options of one `apply`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Allow changes that rewrite a file with VACUUM.
    pub allow_vacuum: bool,
    /// Started by the daemon rather than typed by the operator.
    pub scheduled: bool,
}

impl ApplyOptions {
    fn trigger(self) -> Trigger {
        if self.scheduled {
            Trigger::Schedule
        } else {
            Trigger::Manual
        }
    }
}

/// A change and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeResult {
    /// The change.
    pub change: Change,
    /// Done, skipped or failed.
    pub status: ChangeStatus,
}

/// What became of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Executed.
    Done,
    /// Not executed, and why.
    Skipped(String),
    /// Tried and failed, and why (its kind and message).
    Failed(JobFailure),
}

/// The result of one `apply`.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// Every change of the plan, in order.
    pub results: Vec<ChangeResult>,
    /// Databases left alone because they could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Databases left alone because they do not fit what litewarden knew.
    pub problems: Vec<Problem>,
}

impl ApplyReport {
    /// Whether any change failed, or any database could not be read or
    /// was left alone.
    pub fn failed(&self) -> bool {
        !self.unreadable.is_empty()
            || !self.problems.is_empty()
            || self
                .results
                .iter()
                .any(|r| matches!(r.status, ChangeStatus::Failed(_)))
    }

    /// The kind of the first failed change (a database that could not be
    /// read, or was left alone, is `other`).
    pub fn failure_kind(&self) -> FailureKind {
        self.results
            .iter()
            .find_map(|r| match &r.status {
                ChangeStatus::Failed(failure) => Some(failure.kind),
                _ => None,
            })
            .unwrap_or(FailureKind::Other)
    }

    /// One line summing up the run.
    pub fn summary(&self) -> String {
        let count =
            |f: fn(&ChangeStatus) -> bool| self.results.iter().filter(|r| f(&r.status)).count();
        let done = count(|s| *s == ChangeStatus::Done);
        let skipped = count(|s| matches!(s, ChangeStatus::Skipped(_)));
        let failed = count(|s| matches!(s, ChangeStatus::Failed(_)));
        let unreadable = match (self.unreadable.len(), self.problems.len()) {
            (0, 0) => String::new(),
            (n, 0) => format!(", {n} could not be read"),
            (0, p) => format!(", {p} left alone (see the `!` lines)"),
            (n, p) => format!(", {n} could not be read, {p} left alone (see the `!` lines)"),
        };
        if self.results.is_empty() {
            return format!("no changes{unreadable}");
        }
        format!("{done} applied, {skipped} skipped, {failed} failed{unreadable}")
    }
}

/// Executes `plan` for `config`, records the run, and reports each change.
///
/// Errors only when the state database cannot be used; failures of single
/// changes are in the report.
pub fn apply(
    config: &Config,
    plan: &Plan,
    options: ApplyOptions,
    clock: &dyn Clock,
) -> Result<ApplyReport, StateError> {
    let started_at = clock.now();
    let state = StateDb::open(&config.settings.state_dir)?;
    let mut failed_databases = BTreeSet::new();
    let mut backed_up = BTreeSet::new();
    let mut results = Vec::with_capacity(plan.changes.len());
    for change in &plan.changes {
        let status = if failed_databases.contains(change.database()) {
            ChangeStatus::Skipped("an earlier change of this database failed".into())
        } else if let Err(error) =
            back_up_before_columns(config, &state, change, &mut backed_up, clock)
        {
            ChangeStatus::Failed(error)
        } else {
            execute(config, &state, change, options, clock)
        };
        let planned = change.to_string().replace('\n', "; ");
        match &status {
            ChangeStatus::Failed(error) => {
                tracing::error!(db = change.database(), change = %planned, error = %error, "change failed");
                failed_databases.insert(change.database().to_string());
            }
            ChangeStatus::Skipped(reason) => {
                tracing::warn!(db = change.database(), change = %planned, reason = %reason, "change skipped")
            }
            ChangeStatus::Done => {
                let done = change.done_text().replace('\n', "; ");
                tracing::info!(db = change.database(), change = %done, "change applied")
            }
        }
        results.push(ChangeResult {
            change: change.clone(),
            status,
        });
    }
    remember_databases(
        config,
        &state,
        clock,
        &|db| failed_databases.contains(db.name.as_str()),
        &BTreeMap::new(),
    )?;
    for problem in &plan.problems {
        tracing::error!(db = %problem.database(), event = problem.event(), problem = %problem, "left alone");
        if let Problem::Missing { .. } = problem {
            state.record_event(
                Some(problem.database().as_str()),
                problem.event(),
                &problem.to_string(),
                clock.now(),
            )?;
        }
    }
    let report = ApplyReport {
        results,
        unreadable: plan.unreadable.clone(),
        problems: plan.problems.clone(),
    };
    let errors: Vec<String> = report
        .unreadable
        .iter()
        .map(|u| format!("{}: {}", u.database, u.error))
        .chain(report.problems.iter().map(ToString::to_string))
        .chain(report.results.iter().filter_map(|r| match &r.status {
            ChangeStatus::Failed(error) => Some(format!("{}: {error}", r.change.database())),
            _ => None,
        }))
        .collect();
    let outcome = if errors.is_empty() {
        Ok(JobSuccess::summary(report.summary()))
    } else {
        Err(JobFailure::new(report.failure_kind(), errors.join("; ")))
    };
    crate::jobs::run::record(
        &state,
        JobKind::Apply,
        None,
        options.trigger(),
        started_at,
        clock.now(),
        &outcome,
    )?;
    Ok(report)
}

/// Records every database of `config` whose file exists (but those in
/// `skip`) as managed, even while its content cannot be read (a writer
/// holding it locked), and checks it against its remembered identity (the
/// one in `known` when the caller just read it, else read now): a
/// discontinuity is recorded (its backups from before are then kept) and
/// the identity seen now is remembered.
pub fn remember_databases(
    config: &Config,
    state: &StateDb,
    clock: &dyn Clock,
    skip: &dyn Fn(&Database) -> bool,
    known: &BTreeMap<PathBuf, Identity>,
) -> Result<(), StateError> {
    let managed = state.managed_databases()?;
    for database in config.databases.values() {
        if skip(database) {
            continue;
        }
        if !database.path.exists() {
            continue;
        }
        let record = ManagedDatabase {
            name: database.name.to_string(),
            path: database.path.clone(),
        };
        if !managed.contains(&record) {
            state.record_managed(&record, clock.now())?;
        }
        let seen = match known.get(&database.path) {
            Some(identity) => identity.clone(),
            None => match crate::db::observe::read_identity(&database.path) {
                Ok(Some(identity)) => identity,
                _ => continue,
            },
        };
        crate::jobs::identity::check(
            state,
            database.name.as_str(),
            &database.path,
            &crate::store::LocalDir::new(&config.settings.backup_dir),
            &seen,
            clock.now(),
        )?;
    }
    Ok(())
}

/// Takes the verified backup that precedes the first column `apply` adds
/// to a database in this run (as migrations take theirs): "always back up
/// before schema changes". Nothing for other changes.
fn back_up_before_columns(
    config: &Config,
    state: &StateDb,
    change: &Change,
    backed_up: &mut BTreeSet<String>,
    clock: &dyn Clock,
) -> Result<(), JobFailure> {
    let Change::AddColumn { database, .. } = change else {
        return Ok(());
    };
    let Some(db) = config.databases.get(database.as_str()) else {
        return Ok(());
    };
    if !backed_up.insert(database.to_string()) {
        return Ok(());
    }
    let request = crate::jobs::backup::BackupRequest {
        database: db,
        backup_dir: &config.settings.backup_dir,
        trigger: crate::store::BackupTrigger::PreSchema,
        pin: false,
    };
    crate::jobs::backup::take(request, state, clock, &mut crate::jobs::progress::Quiet)
        .map(|report| {
            tracing::info!(db = database.as_str(), path = %report.path.display(), "backup taken before adding columns");
        })
        .map_err(|e| {
            JobFailure::new(
                FailureKind::of(&e),
                format!("the backup before adding columns failed, nothing was changed: {e}"),
            )
        })
}

fn execute(
    config: &Config,
    state: &StateDb,
    change: &Change,
    options: ApplyOptions,
    clock: &dyn Clock,
) -> ChangeStatus {
    let database = config.databases.get(change.database());
    let connection = database.map(|db| db.pragmas.connection).unwrap_or_default();
    let result = match change {
        Change::CreateDatabase { path, pragmas, .. } => {
            pragmas::create(path, pragmas, &connection).map_err(|e| JobFailure::from_error(&e))
        }
        Change::SetPragma {
            needs_vacuum: true, ..
        } if !options.allow_vacuum => {
            return ChangeStatus::Skipped("rewrites the file with VACUUM; run `litewarden apply --allow-vacuum` when a pause is acceptable".into());
        }
        Change::SetPragma { path, to, .. } => {
            pragmas::change(path, *to, &connection).map_err(|e| JobFailure::from_error(&e))
        }
        Change::RestoreDatabase { from, offsite, .. } => match database {
            Some(database) => restore_missing(config, database, from, *offsite, state, clock),
            None => Err(not_configured()),
        },
        Change::Migrate {
            manual: true,
            database,
            ..
        } => {
            return ChangeStatus::Skipped(format!(
                "migrations.apply is manual; run `litewarden migrate up {database}`"
            ));
        }
        Change::Migrate { .. } => match database {
            Some(database) => {
                migrate(config, database, state, clock, options.trigger()).and_then(|()| {
                    crate::db::columns::add_missing(&database.path, &database.columns, &connection)
                        .map(|_| ())
                        .map_err(|e| JobFailure::from_error(&e))
                })
            }
            None => Err(not_configured()),
        },
        Change::AddColumn { path, column, .. } => {
            crate::db::columns::add(path, column, &connection)
                .map(|_| ())
                .map_err(|e| JobFailure::from_error(&e))
        }
        Change::Unmanage { database, .. } => state
            .forget_managed(database)
            .map_err(|e| JobFailure::from_error(&e)),
    };
    match result {
        Ok(()) => ChangeStatus::Done,
        Err(error) => ChangeStatus::Failed(error),
    }
}

fn not_configured() -> JobFailure {
    JobFailure::new(
        FailureKind::Config,
        "the database is not in the configuration",
    )
}

/// Restores a missing database from `from`, then sets the stored pragmas
/// that need no VACUUM (a backup is a rollback-journal file), so one
/// `apply` converges fully.
fn restore_missing(
    config: &Config,
    database: &Database,
    from: &Path,
    offsite: bool,
    state: &StateDb,
    clock: &dyn Clock,
) -> Result<(), JobFailure> {
    let request = RestoreRequest {
        database,
        backup_dir: &config.settings.backup_dir,
        from: if offsite {
            RestoreSource::Remote(None)
        } else {
            RestoreSource::File(from.to_path_buf())
        },
        to: None,
        force: false,
        full_check: false,
    };
    let resolved = restore::resolve(&request, state).map_err(|e| JobFailure::from_error(&e))?;
    restore::restore(&request, &resolved, state, clock, &mut Quiet)
        .map_err(|e| JobFailure::from_error(&e))?;
    let facts = match observe_file(&database.path).map_err(|e| JobFailure::from_error(&e))? {
        ObservedFile::Present(facts) => facts,
        ObservedFile::Missing => {
            return Err(JobFailure::new(
                FailureKind::SourceMissing,
                "the restored file vanished",
            ));
        }
    };
    let desired = DesiredDatabase {
        name: database.name.clone(),
        path: database.path.clone(),
        pragmas: database.pragmas.persistent,
        restore_if_missing: false,
        migrations: None,
        columns: Vec::new(),
    };
    let observed = Observed {
        files: [(database.path.clone(), ObservedFile::Present(facts))].into(),
        ..Observed::default()
    };
    for change in plan::diff(
        &observed,
        &Desired {
            databases: vec![desired],
        },
    )
    .changes
    {
        if let Change::SetPragma {
            path,
            to,
            needs_vacuum: false,
            ..
        } = change
        {
            pragmas::change(&path, to, &database.pragmas.connection)
                .map_err(|e| JobFailure::from_error(&e))?;
        }
    }
    Ok(())
}

/// Runs the pending migrations of `database` (after a verified backup).
fn migrate(
    config: &Config,
    database: &Database,
    state: &StateDb,
    clock: &dyn Clock,
    trigger: Trigger,
) -> Result<(), JobFailure> {
    let Some(migrations) = &database.migrations else {
        return Err(JobFailure::new(
            FailureKind::Config,
            "the database has no `migrations:`",
        ));
    };
    let request = UpRequest {
        database,
        migrations,
        backup_dir: &config.settings.backup_dir,
        to: None,
        trigger,
    };
    crate::jobs::migrations::up(request, state, clock, &mut Quiet)
        .map(|_| ())
        .map_err(|e| JobFailure::from_error(&e))
}

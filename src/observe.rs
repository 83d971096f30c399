//! Observing the whole configuration into [`Observed`] for
//! [`crate::plan::diff`].
//!
//! Owns the assembly of an observation: each database's file (through
//! [`crate::db::observe`]), its pending migrations, its expectation (state
//! database and backup manifests, through [`crate::jobs::identity`]), the
//! operator's holds and backups dated in the future. Changes nothing: a
//! database that cannot be read (not SQLite, a broken migrations directory)
//! is recorded in [`Observed::unreadable`] with its error, so one bad file
//! never stops the others being managed. Sits above `db` and `jobs`, which
//! know nothing of it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::config::{Config, Database};
use crate::db::DbError;
use crate::db::observe::{declared_tables, observe_file, read_identity};
use crate::jobs::migrations::runner::MigrateError;
use crate::plan::identity::Identity;
use crate::plan::{Observed, ObservedFile, TableColumns};
use crate::state::expect::HoldKind;
use crate::state::{StateDb, StateError};
use crate::store::{LocalDir, Store};

/// Why the databases could not be observed (one unreadable database is not
/// an error: it is recorded in [`Observed::unreadable`]).
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The state database could not be read.
    #[error("{0}")]
    State(#[from] StateError),
    /// A database could not be read.
    #[error("{0}")]
    Db(#[from] DbError),
    /// Its migrations could not be read.
    #[error("{0}")]
    Migrate(#[source] Box<MigrateError>),
}

impl From<MigrateError> for ObserveError {
    fn from(error: MigrateError) -> Self {
        ObserveError::Migrate(Box::new(error))
    }
}

/// Observes every database of `config` and the managed list in the state
/// database (if one exists); `now` tells backups dated in the future.
pub fn observe(config: &Config, now: DateTime<Utc>) -> Result<Observed, ObserveError> {
    observe_with(config, &|_| true, &Observed::default(), now)
}

/// Observes the databases `fresh` selects (and any `cached` does not know)
/// and reuses `cached` for the others (their file, identity and
/// expectation): the daemon re-reads only what a reload changed, and
/// everything on its periodic full pass.
pub fn observe_with(
    config: &Config,
    fresh: &dyn Fn(&Database) -> bool,
    cached: &Observed,
    now: DateTime<Utc>,
) -> Result<Observed, ObserveError> {
    let mut observed = Observed::default();
    let mut reused = BTreeSet::new();
    for database in config.databases.values() {
        let name = database.name.to_string();
        let reuse = !fresh(database) && cached.files.contains_key(&database.path);
        if reuse {
            reused.insert(name.clone());
            if let Some(expectation) = cached.expectations.get(&name) {
                observed
                    .expectations
                    .insert(name.clone(), expectation.clone());
            }
            if let Some(ahead) = cached.dated_in_future.get(&name) {
                observed.dated_in_future.insert(name.clone(), ahead.clone());
            }
            observed
                .files
                .insert(database.path.clone(), cached.files[&database.path]);
            if let Some(pending) = cached.pending_migrations.get(&name) {
                observed
                    .pending_migrations
                    .insert(name.clone(), pending.clone());
            }
            if let Some(unadopted) = cached.unadopted.get(&name) {
                observed.unadopted.insert(name.clone(), unadopted.clone());
            }
            if let Some(tables) = cached.tables.get(&name) {
                observed.tables.insert(name, tables.clone());
            }
            if let Some(identity) = cached.identities.get(&database.path) {
                observed
                    .identities
                    .insert(database.path.clone(), identity.clone());
            }
            continue;
        }
        match observe_database(database) {
            Ok(seen) => {
                observed.files.insert(database.path.clone(), seen.file);
                if let Some(identity) = seen.identity {
                    observed.identities.insert(database.path.clone(), identity);
                }
                if let Some(pending) = seen.pending_migrations {
                    observed.pending_migrations.insert(name.clone(), pending);
                }
                if let Some(unadopted) = seen.unadopted {
                    observed.unadopted.insert(name.clone(), unadopted);
                }
                if let Some(tables) = seen.tables {
                    observed.tables.insert(name, tables);
                }
            }
            Err(error) => {
                observed.unreadable.insert(name, error.to_string());
            }
        }
    }
    let state = StateDb::open_read_only(&config.settings.state_dir)?;
    if let Some(state) = &state {
        observed.managed = state.managed_databases()?;
        apply_holds(config, state, &mut observed)?;
        for database in config
            .databases
            .values()
            .filter(|db| !reused.contains(db.name.as_str()))
        {
            let ahead = state.backups_dated_after(database.name.as_str(), now)?;
            if !ahead.is_empty() {
                let store = LocalDir::new(&config.settings.backup_dir);
                observed.dated_in_future.insert(
                    database.name.to_string(),
                    ahead.iter().map(|key| store.location(key)).collect(),
                );
            }
        }
    }
    for database in config.databases.values() {
        let name = database.name.as_str();
        if observed.unreadable.contains_key(name) || observed.expectations.contains_key(name) {
            continue;
        }
        let missing = matches!(
            observed.files.get(&database.path),
            Some(ObservedFile::Missing)
        );
        let managed = observed.managed.iter().any(|m| m.name == name);
        let found = crate::jobs::identity::expectation(
            state.as_ref(),
            name,
            &LocalDir::new(&config.settings.backup_dir),
            managed,
            missing,
        )
        .map_err(|e| e.to_string())
        .and_then(|local| with_offsite(config, database, state.as_ref(), local, missing));
        match found {
            Ok(expectation) => {
                observed.expectations.insert(name.to_string(), expectation);
            }
            Err(error) => {
                observed.unreadable.insert(name.to_string(), error);
            }
        }
    }
    Ok(observed)
}

/// The expectation of a missing database with `restore_if_missing` and no
/// verified local copy, completed from its offsite store: a new machine
/// with only jobs.yaml and the credentials restores from the bucket. A
/// store that cannot be listed is an error (the database is then neither
/// restored nor created empty).
fn with_offsite(
    config: &Config,
    database: &crate::config::Database,
    state: Option<&StateDb>,
    local: crate::plan::Expectation,
    missing: bool,
) -> Result<crate::plan::Expectation, String> {
    if !missing || !database.restore_if_missing || local.newest_verified.is_some() {
        return Ok(local);
    }
    if database.backup.offsite.is_none() {
        return Ok(local);
    }
    let name = database.name.as_str();
    let remote = crate::jobs::offsite::open(database, &config.settings.backup_dir)
        .map_err(|e| e.to_string())?;
    let found = crate::jobs::identity::expectation(state, name, &*remote, local.managed, true)
        .map_err(|e| e.to_string())?;
    Ok(crate::plan::Expectation {
        backups: local.backups + found.backups,
        verified: local.verified + found.verified,
        identity: local.identity.or(found.identity),
        newest_verified: found.newest_verified,
        ..local
    })
}

/// Applies the operator's holds to the observation: a `migrate down --to V`
/// hold removes the pending migrations above V while the migration files
/// are as they were (a changed directory lets the hold lapse); a `pause`
/// is shown. Each hold in force becomes a note of its database.
fn apply_holds(
    config: &Config,
    state: &StateDb,
    observed: &mut Observed,
) -> Result<(), ObserveError> {
    for hold in state.holds()? {
        let Some(database) = config.databases.get(hold.database.as_str()) else {
            continue;
        };
        let since = hold.since.format("%Y-%m-%d %H:%M:%SZ");
        let note = match (hold.kind, &database.migrations, hold.version) {
            (HoldKind::Migrations, Some(migrations), Some(version)) => {
                let files = crate::jobs::migrations::runner::discover(database, migrations)?;
                if hold.fingerprint.as_deref()
                    != Some(crate::jobs::migrations::fingerprint(&files).as_str())
                {
                    continue;
                }
                let above: Vec<String> = files
                    .iter()
                    .filter(|f| f.version > version)
                    .map(ToString::to_string)
                    .collect();
                if let Some(pending) = observed.pending_migrations.get_mut(database.name.as_str()) {
                    pending.retain(|name| !above.contains(name));
                }
                format!(
                    "migrations held by operator at {version} since {since} (`litewarden migrate up {}` releases it)",
                    database.name
                )
            }
            (HoldKind::Backups, _, _) => format!(
                "backups paused by operator since {since} (`litewarden resume {}`)",
                database.name
            ),
            _ => continue,
        };
        observed
            .holds
            .entry(database.name.to_string())
            .or_default()
            .push(note);
    }
    Ok(())
}

/// What one database looks like on disk.
struct DatabaseObservation {
    file: ObservedFile,
    identity: Option<Identity>,
    pending_migrations: Option<Vec<String>>,
    unadopted: Option<crate::plan::Unadopted>,
    tables: Option<TableColumns>,
}

/// Observes one database: its file, pending migrations and declared tables.
fn observe_database(database: &Database) -> Result<DatabaseObservation, ObserveError> {
    let file = observe_file(&database.path)?;
    let identity = read_identity(&database.path)?;
    let mut unadopted = None;
    let pending_migrations = match &database.migrations {
        Some(migrations) => {
            let status = crate::jobs::migrations::runner::status(database, migrations)?;
            let problems = status.errors();
            if !problems.is_empty() {
                return Err(crate::jobs::migrations::runner::MigrateError::Invalid {
                    database: database.name.to_string(),
                    problems,
                }
                .into());
            }
            let pending: Vec<String> = status.pending().iter().map(ToString::to_string).collect();
            unadopted =
                without_history(database, migrations, &status, identity.as_ref(), &pending)?;
            Some(pending)
        }
        None => None,
    };
    let tables = if database.columns.is_empty() {
        None
    } else {
        Some(declared_tables(database)?)
    };
    Ok(DatabaseObservation {
        file,
        identity,
        pending_migrations,
        unadopted,
        tables,
    })
}

/// A database with tables but no applied migration while some are pending,
/// whose schema the migrations would (partly) create again: its tables and
/// which version its schema is. Migrations that create none of its objects
/// (additions to a schema the application owns) are not held back.
fn without_history(
    database: &Database,
    migrations: &crate::config::Migrations,
    status: &crate::jobs::migrations::MigrationStatus,
    identity: Option<&Identity>,
    pending: &[String],
) -> Result<Option<crate::plan::Unadopted>, ObserveError> {
    let applied = status
        .entries
        .iter()
        .any(|e| !matches!(e, crate::jobs::migrations::Entry::Pending { .. }));
    let tables = identity.map_or(0, |i| {
        i.tables
            .iter()
            .filter(|t| t.as_str() != "_litewarden_migrations")
            .count()
    });
    if applied || pending.is_empty() || tables == 0 {
        return Ok(None);
    }
    let files = crate::jobs::migrations::runner::discover(database, migrations)?;
    let detection = match crate::jobs::migrations::detect::detect(&database.path, &files) {
        Ok(detection) => detection,
        Err(error) => {
            tracing::debug!(db = database.name.as_str(), %error, "cannot replay the migrations to compare schemas; running them will report it");
            return Ok(None);
        }
    };
    let overlaps = detection.matched.is_some()
        || detection.closest.is_some()
        || !detection.conflicts.is_empty();
    Ok(overlaps.then_some(crate::plan::Unadopted { tables, detection }))
}

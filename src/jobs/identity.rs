//! Checking a database against what litewarden expects of it.
//!
//! Owns the rule that turns an observation into a recorded discontinuity:
//! the expectation is the identity the state database remembers, or (when
//! the state database was lost) the source identity in the newest backup
//! manifest. A discontinuity is recorded once, with its `database_replaced`
//! event, and the new identity becomes the expectation; retention keeps the
//! backups from before it until the operator accepts it.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::backup::BackupError;
use super::manifest;
use crate::plan::identity::{self, Identity};
use crate::plan::{Expectation, KnownBackup};
use crate::state::expect::Discontinuity;
use crate::state::{StateDb, StateError};
use crate::store::{BackupTrigger, Store};

/// How often an unchanged identity is re-recorded (its "last seen" time).
pub const REMEMBER_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// What `database` is expected to look like, if anything is known.
pub fn expected(
    state: Option<&StateDb>,
    database: &str,
    store: &dyn Store,
) -> Result<Option<Identity>, StateError> {
    if let Some(state) = state
        && let Some((identity, _)) = state.identity(database)?
    {
        return Ok(Some(identity));
    }
    Ok(manifest::newest(store, database, |m| m.source.is_some()).and_then(|m| m.source))
}

/// What is known of `database` apart from its file; the backups are
/// counted only when `with_backups` (a missing file: the count and the
/// newest verified backup decide between restore, refuse and create).
pub fn expectation(
    state: Option<&StateDb>,
    database: &str,
    store: &dyn Store,
    managed: bool,
    with_backups: bool,
) -> Result<Expectation, BackupError> {
    let remembered = match state {
        Some(state) => state.identity(database)?,
        None => None,
    };
    let last_path = match state {
        Some(state) => state.identity_path(database)?,
        None => None,
    };
    let mut expectation = Expectation {
        managed,
        last_seen: remembered.as_ref().map(|(_, at)| *at),
        last_path,
        identity: remembered.map(|(identity, _)| identity),
        discontinuity: match state {
            Some(state) => state
                .open_discontinuities(database)?
                .into_iter()
                .next()
                .map(|d| (d.detected_at, d.reason)),
            None => None,
        },
        ..Expectation::default()
    };
    if expectation.identity.is_none() {
        expectation.identity = expected(None, database, store)?;
    }
    if with_backups {
        let found = manifest::inventory(state, store, database)?;
        expectation.backups = found.len();
        expectation.verified = found.iter().filter(|b| b.verified()).count();
        let restorable: Vec<_> = found
            .into_iter()
            .filter(|b| b.verified() && b.trigger != BackupTrigger::PreRestore)
            .collect();
        let chosen = manifest::prefer_data(store, &restorable);
        expectation.newest_verified = restorable.get(chosen).map(|b| KnownBackup {
            path: store.location(&b.key),
            created_at: b.created_at,
            source: manifest::source_of(store, b),
            offsite: store.id() == crate::store::StoreId::Offsite,
        });
    }
    Ok(expectation)
}

/// Compares `seen` with the expectation, records a discontinuity when it
/// does not fit (logging it), and remembers `seen` as the new expectation.
pub fn check(
    state: &StateDb,
    database: &str,
    path: &Path,
    store: &dyn Store,
    seen: &Identity,
    now: DateTime<Utc>,
) -> Result<Option<Discontinuity>, StateError> {
    let remembered = state.identity(database)?;
    if let Some((identity, at)) = &remembered
        && identity == seen
        && now - *at < REMEMBER_EVERY
    {
        return Ok(None);
    }
    let expected = match remembered {
        Some((identity, _)) => Some(identity),
        None => expected(None, database, store)?,
    };
    let found = match expected {
        Some(expected) => match identity::discontinuity(&expected, seen) {
            Some(reason) => {
                let recorded = state.record_discontinuity(database, &reason, now)?;
                let accept = format!("litewarden accept {database}");
                tracing::error!(db = database, path = %path.display(), reason = %reason, run = %accept, "database_replaced: the database does not fit what litewarden last saw; its backups from before are kept until accepted");
                Some(recorded)
            }
            None => None,
        },
        None => None,
    };
    state.remember_identity(database, path, seen, now)?;
    Ok(found)
}

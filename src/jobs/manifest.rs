//! The backup catalog and the stores that hold the copies agree: the
//! catalog rebuilt from the manifests, manifests rewritten from the catalog.
//!
//! Owns [`sync_catalog`], [`inventory`] and the choice of "latest". A
//! manifest ([`crate::store::manifest`]) is written before its copy is put
//! in place, and rewritten atomically when the copy is pinned, unpinned or
//! verified, so the state database is only a cache: a lost or second state
//! directory rebuilds the same catalog (sequence, checksum, verification,
//! pins, trigger, source identity) from the store. Copies without a
//! manifest (written before manifests existed) are added from their names,
//! unverified.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backup::BackupError;
use crate::plan::identity::Identity;
use crate::state::StateDb;
use crate::store::{BackupRecord, BackupTrigger, Key, Listed, Store, StoreId};

/// Rewrites the manifest of a catalogued copy after its catalog row
/// changed (pinned, verified), keeping the source identity its manifest
/// recorded when the row has none (rows from before the catalog kept it).
pub fn refresh(store: &dyn Store, record: &BackupRecord) -> Result<(), BackupError> {
    let mut record = record.clone();
    if record.source.is_none() {
        record.source = store.read_manifest(&record.key).and_then(|m| m.source);
    }
    store
        .write_manifest(&record.key, &record)
        .map_err(BackupError::store(&record.database))
}

/// Re-reads the catalog row of the copy under `key` and rewrites its
/// manifest from it (after a pin, unpin or verification).
pub fn refresh_from_catalog(
    state: &StateDb,
    store: &dyn Store,
    key: &Key,
) -> Result<(), BackupError> {
    match state.backup_by_key(store.id(), key)? {
        Some(record) => refresh(store, &record),
        None => Ok(()),
    }
}

/// The newest manifest (highest sequence) of `database` whose copy exists
/// and that `wanted` selects; read from the store alone, for when the
/// state database knows nothing.
pub fn newest(
    store: &dyn Store,
    database: &str,
    wanted: impl Fn(&BackupRecord) -> bool,
) -> Option<BackupRecord> {
    store
        .list(database)
        .ok()?
        .into_iter()
        .filter_map(|listed| store.read_manifest(&listed.key))
        .filter(|m| m.database == database && wanted(m))
        .max_by_key(|m| m.seq)
}

/// What the source database of `backup` looked like: from its catalog
/// row, else from its manifest (rows from before the catalog kept it).
pub fn source_of(store: &dyn Store, backup: &BackupRecord) -> Option<Identity> {
    match &backup.source {
        Some(source) => Some(source.clone()),
        None => store.read_manifest(&backup.key).and_then(|m| m.source),
    }
}

/// Which of `backups` (newest first) to restore as "latest": the first
/// whose source (from the catalog, else its manifest) had tables. A
/// database emptied by accident goes on being backed up, and those backups
/// must not become what a restore brings back while an older one holds the
/// data; when none says so (no manifests, or every one empty), the newest.
/// Returns its index.
pub fn prefer_data(store: &dyn Store, backups: &[BackupRecord]) -> usize {
    let mut first_unknown = None;
    for (i, backup) in backups.iter().enumerate() {
        match source_of(store, backup) {
            Some(source) if !source.tables.is_empty() => return first_unknown.unwrap_or(i),
            Some(_) => {}
            None => {
                first_unknown.get_or_insert(i);
            }
        }
    }
    first_unknown.unwrap_or(0)
}

/// Every copy of `database` in `store`, newest (by sequence, then name
/// time) first, described by the catalog when `state` knows it and by its
/// manifest otherwise (a manifest's verification counts too). Changes
/// nothing.
pub fn inventory(
    state: Option<&StateDb>,
    store: &dyn Store,
    database: &str,
) -> Result<Vec<BackupRecord>, BackupError> {
    let listed = store.list(database).map_err(BackupError::store(database))?;
    let mut found = Vec::with_capacity(listed.len());
    for copy in listed {
        let catalogued = match state {
            Some(state) => state.backup_by_key(store.id(), &copy.key)?,
            None => None,
        };
        let manifest = store
            .read_manifest(&copy.key)
            .filter(|m| m.database == database);
        let entry = match (catalogued, manifest) {
            (Some(mut record), manifest) => {
                if record.verified_at.is_none() {
                    record.verified_at = manifest.and_then(|m| m.verified_at);
                }
                record
            }
            (None, Some(record)) => record,
            (None, None) => from_name(store, database, &copy.key, copy.size, copy.named_at, 0),
        };
        found.push(entry);
    }
    found.sort_by_key(|b| std::cmp::Reverse((b.seq, b.created_at)));
    Ok(found)
}

/// The record of a copy known only by its name: unverified, rebuilt.
fn from_name(
    store: &dyn Store,
    database: &str,
    key: &Key,
    size: u64,
    named_at: DateTime<Utc>,
    seq: i64,
) -> BackupRecord {
    BackupRecord {
        id: 0,
        database: database.to_string(),
        store: store.id(),
        key: key.clone(),
        created_at: named_at,
        size,
        sha256: None,
        verified_at: None,
        method: None,
        trigger: BackupTrigger::Rebuilt,
        pinned: false,
        duration_ms: None,
        seq,
        source: None,
    }
}

/// What [`sync_catalog`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CatalogSync {
    /// Copies found in the store and added (from their manifest, or
    /// unverified from their name).
    pub added: Vec<Key>,
    /// Catalogued copies that are gone, removed from the catalog.
    pub missing: Vec<Key>,
}

/// Brings the catalog of `database` in line with what `store` holds:
/// copies not catalogued (a lost or second state directory) are added from
/// their manifest, or from their name as unverified; pins, verifications
/// and source identities recorded in manifests (by another state directory)
/// are taken over; rows whose copy is gone are dropped, but only once the
/// store could be listed: a store that is unreachable (an unmounted disk, a
/// directory replaced by a file) changes nothing in the catalog.
pub fn sync_catalog(
    state: &StateDb,
    store: &dyn Store,
    database: &str,
) -> Result<CatalogSync, BackupError> {
    let listed = store.list(database).map_err(BackupError::store(database))?;
    sync_listed(state, store, database, &listed)
}

/// [`sync_catalog`] with the store's listing already in hand. The
/// manifests of catalogued offsite copies are not read again (a request
/// each): only this state directory writes them.
pub fn sync_listed(
    state: &StateDb,
    store: &dyn Store,
    database: &str,
    listed: &[Listed],
) -> Result<CatalogSync, BackupError> {
    let mut sync = CatalogSync::default();
    let present: HashSet<&Key> = listed.iter().map(|l| &l.key).collect();
    for record in state.backups(database)? {
        if record.store == store.id() && !present.contains(&record.key) {
            state.delete_backup(record.id)?;
            tracing::warn!(db = database, key = %record.key, "catalogued backup is gone; removed from the catalog");
            sync.missing.push(record.key);
        }
    }
    let mut unnamed = Vec::new();
    for copy in listed {
        let catalogued = state.backup_by_key(store.id(), &copy.key)?;
        if catalogued.is_some() && store.id() == StoreId::Offsite {
            continue;
        }
        let manifest = store
            .read_manifest(&copy.key)
            .filter(|m| m.database == database);
        if let Some(record) = catalogued {
            if let Some(manifest) = &manifest {
                take_over(state, &record, manifest)?;
            }
            continue;
        }
        match manifest {
            Some(manifest) => {
                state.insert_backup(&BackupRecord {
                    duration_ms: None,
                    ..manifest
                })?;
                tracing::info!(db = database, key = %copy.key, "backup added to the catalog from its manifest");
                sync.added.push(copy.key.clone());
            }
            None => unnamed.push(copy),
        }
    }
    unnamed.sort_by_key(|copy| copy.named_at);
    for copy in unnamed {
        let seq = state.next_backup_seq(database)?;
        state.insert_backup(&from_name(
            store,
            database,
            &copy.key,
            copy.size,
            copy.named_at,
            seq,
        ))?;
        tracing::info!(db = database, key = %copy.key, "backup file added to the catalog from its name (unverified; no manifest)");
        sync.added.push(copy.key.clone());
    }
    Ok(sync)
}

/// Takes over what a manifest says that the catalog row does not: a pin, a
/// verification recorded through another state directory, or the source
/// identity of a row from before the catalog kept it.
fn take_over(
    state: &StateDb,
    record: &BackupRecord,
    manifest: &BackupRecord,
) -> Result<(), BackupError> {
    if manifest.pinned != record.pinned {
        state.set_pinned(record.id, manifest.pinned)?;
    }
    if let (Some(at), Some(sha)) = (manifest.verified_at, &manifest.sha256)
        && record.verified_at.is_none_or(|mine| mine < at)
    {
        state.mark_verified(record.id, sha, at)?;
    }
    if let (None, Some(source)) = (&record.source, &manifest.source) {
        state.set_backup_source(record.id, source)?;
    }
    Ok(())
}

/// The backups of `database` a restore may take, newest first: verified,
/// still held by `store`, and not the safety copies taken before a restore.
pub fn restorable(
    state: &StateDb,
    store: &dyn Store,
    database: &str,
) -> Result<Vec<BackupRecord>, crate::state::StateError> {
    let present: HashSet<Key> = match store.list(database) {
        Ok(listed) => listed.into_iter().map(|l| l.key).collect(),
        Err(e) => {
            tracing::warn!(db = database, error = %e, "cannot list the backups; none is restorable from there");
            HashSet::new()
        }
    };
    Ok(state
        .backups(database)?
        .into_iter()
        .filter(|b| {
            b.verified()
                && b.trigger != BackupTrigger::PreRestore
                && b.store == store.id()
                && present.contains(&b.key)
        })
        .collect())
}

/// The backup `--from latest` means: the newest (by the catalog's sequence)
/// verified one that its store still holds, not counting the safety copies
/// taken before a restore (restoring "latest" twice must not undo the first
/// restore), and passing over backups of an emptied database when an older
/// one holds data (see [`prefer_data`]).
pub fn latest_verified(
    state: &StateDb,
    store: &dyn Store,
    database: &str,
) -> Result<Option<BackupRecord>, crate::state::StateError> {
    let candidates = restorable(state, store, database)?;
    let chosen = prefer_data(store, &candidates);
    if chosen > 0 {
        tracing::warn!(db = database, newest = %candidates[0].key, chosen = %candidates[chosen].key, "the newest backups are of an empty database; latest is the newest one with data (pass --from FILE for another)");
    }
    Ok(candidates.into_iter().nth(chosen))
}

//! The backup catalog: one row per backup copy litewarden created, named
//! by its store and key.
//!
//! Owns the `backups` table of [`BackupRecord`]s (the type, which is also
//! the manifest beside each copy, is the store's). Only copies in this catalog are ever deleted
//! by retention. Rows rebuilt from file names (after the state database was
//! lost) carry no checksum and count as unverified until `verify` runs.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{StateDb, StateError, sqlite};
use crate::plan::identity::Identity;
use crate::store::{BackupRecord, BackupTrigger, Key, StoreId};

const COLUMNS: &str = "id, database, store, key, created_at, size, sha256, verified_at, method, trigger, pinned, duration_ms, seq, source";

impl StateDb {
    /// Adds a copy to the catalog at its `seq`; returns its id.
    pub fn insert_backup(&self, backup: &BackupRecord) -> Result<i64, StateError> {
        let source = backup
            .source
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_default());
        self.conn
            .prepare_cached(
                "INSERT INTO backups (database, store, key, created_at, size, sha256, verified_at, method, trigger, pinned, duration_ms, seq, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    backup.database,
                    backup.store.as_str(),
                    backup.key.as_str(),
                    backup.created_at.to_rfc3339(),
                    backup.size as i64,
                    backup.sha256,
                    backup.verified_at.map(|t| t.to_rfc3339()),
                    backup.method,
                    backup.trigger.as_str(),
                    backup.pinned,
                    backup.duration_ms.map(|d| d as i64),
                    backup.seq,
                    source,
                ])
            })
            .map_err(sqlite(&self.path, "cannot record a backup"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The databases that have copies in `store`.
    pub fn databases_in(&self, store: StoreId) -> Result<Vec<String>, StateError> {
        let mut select = self
            .conn
            .prepare_cached("SELECT DISTINCT database FROM backups WHERE store = ?1")
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))?;
        select
            .query_map(params![store.as_str()], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))
    }

    /// The next sequence number of `database`'s backups.
    pub fn next_backup_seq(&self, database: &str) -> Result<i64, StateError> {
        self.conn
            .query_row(
                "SELECT coalesce(max(seq), 0) + 1 FROM backups WHERE database = ?1",
                params![database],
                |row| row.get(0),
            )
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))
    }

    /// The backups of `database`, newest (highest sequence) first.
    pub fn backups(&self, database: &str) -> Result<Vec<BackupRecord>, StateError> {
        let sql =
            format!("SELECT {COLUMNS} FROM backups WHERE database = ?1 ORDER BY seq DESC, id DESC");
        let mut statement = self
            .conn
            .prepare_cached(&sql)
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))?;
        let rows = statement
            .query_map(params![database], raw_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))?;
        rows.into_iter().map(|raw| self.record(raw)).collect()
    }

    /// The keys of `database`'s backups whose time is later than `now`
    /// (written under a clock that ran ahead), oldest first.
    pub fn backups_dated_after(
        &self,
        database: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Key>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT key FROM backups WHERE database = ?1 AND created_at > ?2 ORDER BY seq",
            )
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))?;
        let keys: Vec<String> = statement
            .query_map(params![database, now.to_rfc3339()], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))?;
        keys.iter()
            .map(|key| Key::parse(key).ok_or_else(|| self.corrupt_key(key)))
            .collect()
    }

    /// The catalogued copy under `key` in `store`, if any.
    pub fn backup_by_key(
        &self,
        store: StoreId,
        key: &Key,
    ) -> Result<Option<BackupRecord>, StateError> {
        let sql = format!("SELECT {COLUMNS} FROM backups WHERE store = ?1 AND key = ?2");
        let raw = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut select| {
                select
                    .query_row(params![store.as_str(), key.as_str()], raw_row)
                    .optional()
            })
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))?;
        raw.map(|raw| self.record(raw)).transpose()
    }

    /// Records a passed verification and the checksum it confirmed.
    pub fn mark_verified(
        &self,
        id: i64,
        sha256: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE backups SET sha256 = ?2, verified_at = ?3 WHERE id = ?1",
                params![id, sha256, at.to_rfc3339()],
            )
            .map_err(sqlite(&self.path, "cannot update the backup catalog"))?;
        Ok(())
    }

    /// Records a backup's content again after it changed in place: its
    /// size, checksum and verification (`None`: unverified now).
    pub fn set_backup_content(
        &self,
        id: i64,
        size: u64,
        sha256: &str,
        verified_at: Option<DateTime<Utc>>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE backups SET size = ?2, sha256 = ?3, verified_at = ?4 WHERE id = ?1",
                params![id, size as i64, sha256, verified_at.map(|t| t.to_rfc3339())],
            )
            .map_err(sqlite(&self.path, "cannot update the backup catalog"))?;
        Ok(())
    }

    /// Records the source identity a copy's manifest carries, for a row
    /// that had none.
    pub fn set_backup_source(&self, id: i64, source: &Identity) -> Result<(), StateError> {
        let source = serde_json::to_string(source).unwrap_or_default();
        self.conn
            .execute(
                "UPDATE backups SET source = ?2 WHERE id = ?1",
                params![id, source],
            )
            .map_err(sqlite(&self.path, "cannot update the backup catalog"))?;
        Ok(())
    }

    /// Pins or unpins a backup.
    pub fn set_pinned(&self, id: i64, pinned: bool) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE backups SET pinned = ?2 WHERE id = ?1",
                params![id, pinned],
            )
            .map_err(sqlite(&self.path, "cannot update the backup catalog"))?;
        Ok(())
    }

    /// Removes a backup from the catalog (its copy must be gone already).
    pub fn delete_backup(&self, id: i64) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM backups WHERE id = ?1", params![id])
            .map_err(sqlite(&self.path, "cannot update the backup catalog"))?;
        Ok(())
    }

    fn corrupt_key(&self, key: &str) -> StateError {
        StateError::Corrupt {
            path: self.path.clone(),
            detail: format!("a backup has an invalid key `{key}`"),
        }
    }

    fn record(&self, raw: RawRow) -> Result<BackupRecord, StateError> {
        let corrupt = |what: String| StateError::Corrupt {
            path: self.path.clone(),
            detail: format!("backup {} has {what}", raw.id),
        };
        let time = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| corrupt(format!("an invalid time `{text}`")))
        };
        let source = raw
            .source
            .as_deref()
            .map(serde_json::from_str::<Identity>)
            .transpose()
            .map_err(|e| corrupt(format!("an unreadable source identity ({e})")))?;
        Ok(BackupRecord {
            id: raw.id,
            database: raw.database.clone(),
            store: StoreId::parse(&raw.store)
                .ok_or_else(|| corrupt(format!("an unknown store `{}`", raw.store)))?,
            key: Key::parse(&raw.key).ok_or_else(|| self.corrupt_key(&raw.key))?,
            created_at: time(&raw.created_at)?,
            size: raw.size.max(0) as u64,
            sha256: raw.sha256.clone(),
            verified_at: raw.verified_at.as_deref().map(time).transpose()?,
            method: raw.method.clone(),
            trigger: BackupTrigger::parse(&raw.trigger)
                .ok_or_else(|| corrupt(format!("an unknown trigger `{}`", raw.trigger)))?,
            pinned: raw.pinned,
            duration_ms: raw.duration_ms.map(|d| d.max(0) as u64),
            seq: raw.seq,
            source,
        })
    }
}

struct RawRow {
    id: i64,
    database: String,
    store: String,
    key: String,
    created_at: String,
    size: i64,
    sha256: Option<String>,
    verified_at: Option<String>,
    method: Option<String>,
    trigger: String,
    pinned: bool,
    duration_ms: Option<i64>,
    seq: i64,
    source: Option<String>,
}

fn raw_row(row: &Row) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: row.get(0)?,
        database: row.get(1)?,
        store: row.get(2)?,
        key: row.get(3)?,
        created_at: row.get(4)?,
        size: row.get(5)?,
        sha256: row.get(6)?,
        verified_at: row.get(7)?,
        method: row.get(8)?,
        trigger: row.get(9)?,
        pinned: row.get(10)?,
        duration_ms: row.get(11)?,
        seq: row.get(12)?,
        source: row.get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_round_trip_newest_first_and_can_be_verified_pinned_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let new = |file: &str, minutes: i64, seq: i64| BackupRecord {
            id: 0,
            database: "app".into(),
            store: StoreId::Local,
            key: Key::new("app", file),
            created_at: t0 + chrono::TimeDelta::minutes(minutes),
            size: 10,
            sha256: None,
            verified_at: None,
            method: Some("api".into()),
            trigger: BackupTrigger::Manual,
            pinned: false,
            duration_ms: Some(5),
            seq,
            source: Some(Identity::default()),
        };
        let old = state.insert_backup(&new("app-1.db", 0, 1)).unwrap();
        state.insert_backup(&new("app-2.db", 60, 2)).unwrap();
        let list = state.backups("app").unwrap();
        assert_eq!(
            list.iter().map(|b| b.key.as_str()).collect::<Vec<_>>(),
            ["app/app-2.db", "app/app-1.db"]
        );
        assert_eq!(
            list[1],
            BackupRecord {
                id: old,
                ..new("app-1.db", 0, 1)
            }
        );
        assert_eq!(state.next_backup_seq("app").unwrap(), 3);
        state.mark_verified(old, "abc", t0).unwrap();
        state.set_pinned(old, true).unwrap();
        let record = state
            .backup_by_key(StoreId::Local, &Key::new("app", "app-1.db"))
            .unwrap()
            .unwrap();
        assert!(record.verified() && record.pinned);
        assert_eq!(record.sha256.as_deref(), Some("abc"));
        state.delete_backup(old).unwrap();
        assert_eq!(state.backups("app").unwrap().len(), 1);
        assert!(state.backups("other").unwrap().is_empty());
    }
}

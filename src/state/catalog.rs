//! The backup catalog: one row per backup file litewarden created.
//!
//! Owns the `backups` table. Only files in this catalog are ever deleted by
//! retention. Rows rebuilt from file names (after the state database was
//! lost) carry no checksum and count as unverified until `verify` runs.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{StateDb, StateError, sqlite};

/// What caused a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupTrigger {
    /// `litewarden backup`.
    Manual,
    /// The scheduler.
    Schedule,
    /// Taken before running pending migrations.
    PreMigration,
    /// The safety copy taken before a restore replaced the file.
    PreRestore,
    /// Found on disk and re-added from its name.
    Rebuilt,
    /// Taken before `apply` added the columns `schema:` declares.
    PreSchema,
}

impl BackupTrigger {
    /// The name stored in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupTrigger::Manual => "manual",
            BackupTrigger::Schedule => "schedule",
            BackupTrigger::PreMigration => "pre-migration",
            BackupTrigger::PreRestore => "pre-restore",
            BackupTrigger::Rebuilt => "rebuilt",
            BackupTrigger::PreSchema => "pre-schema",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Manual,
            Self::Schedule,
            Self::PreMigration,
            Self::PreRestore,
            Self::Rebuilt,
            Self::PreSchema,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }
}

/// A backup about to be catalogued.
#[derive(Debug, Clone)]
pub struct NewBackup<'a> {
    /// The database it copies.
    pub database: &'a str,
    /// Absolute path of the file.
    pub path: &'a Path,
    /// The time in its name.
    pub created_at: DateTime<Utc>,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the file as stored, if known.
    pub sha256: Option<&'a str>,
    /// When it passed verification, if it did.
    pub verified_at: Option<DateTime<Utc>>,
    /// The copy method.
    pub method: Option<&'a str>,
    /// What caused it.
    pub trigger: BackupTrigger,
    /// Never prune it.
    pub pinned: bool,
    /// How long taking it took.
    pub duration_ms: Option<u64>,
    /// Its place in the catalog's sequence (from its manifest); `None`
    /// takes the next one.
    pub seq: Option<i64>,
}

impl NewBackup<'_> {
    /// The record this backup gets once catalogued at sequence `seq`
    /// (id 0 until it is inserted).
    pub fn record_at(&self, seq: i64) -> BackupRecord {
        BackupRecord {
            id: 0,
            database: self.database.to_string(),
            path: self.path.to_path_buf(),
            created_at: self.created_at,
            size: self.size,
            sha256: self.sha256.map(str::to_string),
            verified_at: self.verified_at,
            method: self.method.map(str::to_string),
            trigger: self.trigger,
            pinned: self.pinned,
            duration_ms: self.duration_ms,
            seq,
        }
    }
}

/// A catalogued backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRecord {
    /// Catalog id.
    pub id: i64,
    /// The database it copies.
    pub database: String,
    /// Absolute path of the file.
    pub path: PathBuf,
    /// The time in its name.
    pub created_at: DateTime<Utc>,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the file as stored, if known.
    pub sha256: Option<String>,
    /// When it last passed verification.
    pub verified_at: Option<DateTime<Utc>>,
    /// The copy method.
    pub method: Option<String>,
    /// What caused it.
    pub trigger: BackupTrigger,
    /// Never pruned.
    pub pinned: bool,
    /// How long taking it took.
    pub duration_ms: Option<u64>,
    /// Its place in the catalog's sequence: higher is newer, whatever the
    /// clock said.
    pub seq: i64,
}

impl BackupRecord {
    /// Whether it passed verification.
    pub fn verified(&self) -> bool {
        self.verified_at.is_some()
    }
}

const COLUMNS: &str = "id, database, path, created_at, size, sha256, verified_at, method, trigger, pinned, duration_ms, coalesce(seq, id)";

impl StateDb {
    /// Adds a backup to the catalog; returns its id.
    pub fn insert_backup(&self, backup: &NewBackup) -> Result<i64, StateError> {
        self.conn
            .execute(
                "INSERT INTO backups (database, path, created_at, size, sha256, verified_at, method, trigger, pinned, duration_ms, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                         coalesce(?11, (SELECT coalesce(max(seq), 0) + 1 FROM backups WHERE database = ?1)))",
                params![
                    backup.database,
                    backup.path.to_string_lossy(),
                    backup.created_at.to_rfc3339(),
                    backup.size as i64,
                    backup.sha256,
                    backup.verified_at.map(|t| t.to_rfc3339()),
                    backup.method,
                    backup.trigger.as_str(),
                    backup.pinned,
                    backup.duration_ms.map(|d| d as i64),
                    backup.seq,
                ],
            )
            .map_err(sqlite(&self.path, "cannot record a backup"))?;
        Ok(self.conn.last_insert_rowid())
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
        let sql = format!(
            "SELECT {COLUMNS} FROM backups WHERE database = ?1 ORDER BY coalesce(seq, id) DESC, id DESC"
        );
        let mut statement = self
            .conn
            .prepare(&sql)
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))?;
        let rows = statement
            .query_map(params![database], raw_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))?;
        rows.into_iter().map(|raw| self.record(raw)).collect()
    }

    /// The backups of `database` whose time is later than `now` (written
    /// under a clock that ran ahead).
    pub fn backups_dated_after(
        &self,
        database: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<PathBuf>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT path FROM backups WHERE database = ?1 AND created_at > ?2 ORDER BY seq",
            )
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))?;
        statement
            .query_map(params![database, now.to_rfc3339()], |row| {
                Ok(PathBuf::from(row.get::<_, String>(0)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read the backup catalog"))
    }

    /// The catalogued backup at `path`, if any.
    pub fn backup_by_path(&self, path: &Path) -> Result<Option<BackupRecord>, StateError> {
        let sql = format!("SELECT {COLUMNS} FROM backups WHERE path = ?1");
        let raw = self
            .conn
            .query_row(&sql, params![path.to_string_lossy()], raw_row)
            .optional()
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

    /// Removes a backup from the catalog (its file must be gone already).
    pub fn delete_backup(&self, id: i64) -> Result<(), StateError> {
        self.conn
            .execute("DELETE FROM backups WHERE id = ?1", params![id])
            .map_err(sqlite(&self.path, "cannot update the backup catalog"))?;
        Ok(())
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
        Ok(BackupRecord {
            id: raw.id,
            database: raw.database.clone(),
            path: PathBuf::from(&raw.path),
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
        })
    }
}

struct RawRow {
    id: i64,
    database: String,
    path: String,
    created_at: String,
    size: i64,
    sha256: Option<String>,
    verified_at: Option<String>,
    method: Option<String>,
    trigger: String,
    pinned: bool,
    duration_ms: Option<i64>,
    seq: i64,
}

fn raw_row(row: &Row) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: row.get(0)?,
        database: row.get(1)?,
        path: row.get(2)?,
        created_at: row.get(3)?,
        size: row.get(4)?,
        sha256: row.get(5)?,
        verified_at: row.get(6)?,
        method: row.get(7)?,
        trigger: row.get(8)?,
        pinned: row.get(9)?,
        duration_ms: row.get(10)?,
        seq: row.get(11)?,
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
        let new = |path: &'static str, minutes: i64| NewBackup {
            database: "app",
            path: Path::new(path),
            created_at: t0 + chrono::TimeDelta::minutes(minutes),
            size: 10,
            sha256: None,
            verified_at: None,
            method: Some("api"),
            trigger: BackupTrigger::Manual,
            pinned: false,
            duration_ms: Some(5),
            seq: None,
        };
        let old = state.insert_backup(&new("/b/app-1.db", 0)).unwrap();
        state.insert_backup(&new("/b/app-2.db", 60)).unwrap();
        let list = state.backups("app").unwrap();
        assert_eq!(
            list.iter()
                .map(|b| b.path.to_str().unwrap())
                .collect::<Vec<_>>(),
            ["/b/app-2.db", "/b/app-1.db"]
        );
        state.mark_verified(old, "abc", t0).unwrap();
        state.set_pinned(old, true).unwrap();
        let record = state
            .backup_by_path(Path::new("/b/app-1.db"))
            .unwrap()
            .unwrap();
        assert!(record.verified() && record.pinned);
        assert_eq!(record.sha256.as_deref(), Some("abc"));
        state.delete_backup(old).unwrap();
        assert_eq!(state.backups("app").unwrap().len(), 1);
        assert!(state.backups("other").unwrap().is_empty());
    }
}

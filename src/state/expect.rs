//! What litewarden expects of each database, and what it was told to hold.
//!
//! Owns the `database_identity`, `discontinuities`, `events`,
//! `operator_holds` and `backup_readers` tables: the last identity seen of
//! each managed database, the discontinuities found and not yet accepted,
//! the events alerts will match (`database_missing`, `database_replaced`),
//! the operator's holds (`migrate down`, `pause`) and the backups a running
//! restore reads. Only this module writes them; the decisions about them are
//! made elsewhere.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{StateDb, StateError, sqlite};
use crate::plan::identity::Identity;

/// A discontinuity that is not yet accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discontinuity {
    /// Its id.
    pub id: i64,
    /// The database.
    pub database: String,
    /// When it was found.
    pub detected_at: DateTime<Utc>,
    /// What did not fit.
    pub reason: String,
    /// The newest backup sequence number from before it.
    pub last_seq: i64,
}

/// What an operator hold stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// Automatic migrations above a version (`migrate down`).
    Migrations,
    /// Scheduled backups (`pause`).
    Backups,
}

impl HoldKind {
    fn as_str(self) -> &'static str {
        match self {
            HoldKind::Migrations => "migrations",
            HoldKind::Backups => "backups",
        }
    }
}

/// An operator's hold on a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    /// The database.
    pub database: String,
    /// What it stops.
    pub kind: HoldKind,
    /// Since when.
    pub since: DateTime<Utc>,
    /// For migrations: nothing above this version runs automatically.
    pub version: Option<i64>,
    /// For migrations: the migration files as they were (a change releases
    /// the hold).
    pub fingerprint: Option<String>,
}

/// A backup file a running restore reads, and who reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// The backup file.
    pub path: PathBuf,
    /// The reading process.
    pub pid: u32,
    /// What it does (`restore`).
    pub reason: String,
}

/// An `operator_holds` row as stored: database, kind, since, version,
/// fingerprint.
type HoldRow = (String, String, String, Option<i64>, Option<String>);

impl StateDb {
    /// The identity last seen of `database`, and when.
    pub fn identity(
        &self,
        database: &str,
    ) -> Result<Option<(Identity, DateTime<Utc>)>, StateError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT identity, seen_at FROM database_identity WHERE name = ?1",
                params![database],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(sqlite(&self.path, "cannot read database identities"))?;
        let Some((identity, seen_at)) = row else {
            return Ok(None);
        };
        let identity = serde_json::from_str(&identity).map_err(|e| {
            self.corrupt(format!(
                "database_identity of `{database}` is unreadable: {e}"
            ))
        })?;
        Ok(Some((identity, self.time(&seen_at)?)))
    }

    /// Where `database`'s file was when its identity was last recorded.
    pub fn identity_path(&self, database: &str) -> Result<Option<PathBuf>, StateError> {
        self.conn
            .query_row(
                "SELECT path FROM database_identity WHERE name = ?1",
                params![database],
                |row| row.get::<_, String>(0),
            )
            .optional()
            .map(|path| path.map(PathBuf::from))
            .map_err(sqlite(&self.path, "cannot read database identities"))
    }

    /// Remembers what `database` looks like now.
    pub fn remember_identity(
        &self,
        database: &str,
        path: &Path,
        identity: &Identity,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let text = serde_json::to_string(identity).map_err(|e| self.corrupt(e.to_string()))?;
        self.conn
            .execute(
                "INSERT INTO database_identity (name, path, seen_at, identity) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET path = excluded.path, seen_at = excluded.seen_at, identity = excluded.identity",
                params![database, path.to_string_lossy(), now.to_rfc3339(), text],
            )
            .map_err(sqlite(&self.path, "cannot record a database identity"))?;
        Ok(())
    }

    /// Forgets the identity of `database` (the operator accepted it gone).
    pub fn forget_identity(&self, database: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "DELETE FROM database_identity WHERE name = ?1",
                params![database],
            )
            .map_err(sqlite(&self.path, "cannot forget a database identity"))?;
        Ok(())
    }

    /// Records a discontinuity of `database` (the backups catalogued so far
    /// are "before" it) and its `database_replaced` event.
    pub fn record_discontinuity(
        &self,
        database: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Discontinuity, StateError> {
        let last_seq = self.next_backup_seq(database)? - 1;
        self.conn
            .execute(
                "INSERT INTO discontinuities (database, detected_at, reason, last_seq) VALUES (?1, ?2, ?3, ?4)",
                params![database, now.to_rfc3339(), reason, last_seq],
            )
            .map_err(sqlite(&self.path, "cannot record a discontinuity"))?;
        let id = self.conn.last_insert_rowid();
        self.record_event(Some(database), "database_replaced", reason, now)?;
        Ok(Discontinuity {
            id,
            database: database.to_string(),
            detected_at: now,
            reason: reason.to_string(),
            last_seq,
        })
    }

    /// The discontinuities of `database` not yet accepted, oldest first.
    pub fn open_discontinuities(&self, database: &str) -> Result<Vec<Discontinuity>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT id, detected_at, reason, last_seq FROM discontinuities
                 WHERE database = ?1 AND accepted_at IS NULL ORDER BY id",
            )
            .map_err(sqlite(&self.path, "cannot read discontinuities"))?;
        let rows: Vec<(i64, String, String, i64)> = statement
            .query_map(params![database], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read discontinuities"))?;
        rows.into_iter()
            .map(|(id, at, reason, last_seq)| {
                Ok(Discontinuity {
                    id,
                    database: database.to_string(),
                    detected_at: self.time(&at)?,
                    reason,
                    last_seq,
                })
            })
            .collect()
    }

    /// Accepts every open discontinuity of `database`; returns how many.
    pub fn accept_discontinuities(
        &self,
        database: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError> {
        self.conn
            .execute(
                "UPDATE discontinuities SET accepted_at = ?2 WHERE database = ?1 AND accepted_at IS NULL",
                params![database, now.to_rfc3339()],
            )
            .map_err(sqlite(&self.path, "cannot accept a discontinuity"))
    }

    /// Records an event alerts can match (`database_missing`, ...).
    pub fn record_event(
        &self,
        database: Option<&str>,
        kind: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO events (at, database, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![now.to_rfc3339(), database, kind, detail],
            )
            .map_err(sqlite(&self.path, "cannot record an event"))?;
        Ok(())
    }

    /// The kinds of the events recorded for `database`, oldest first.
    pub fn event_kinds(&self, database: &str) -> Result<Vec<String>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT kind FROM events WHERE database = ?1 ORDER BY id")
            .map_err(sqlite(&self.path, "cannot read events"))?;
        statement
            .query_map(params![database], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read events"))
    }

    /// Sets (or replaces) an operator hold.
    pub fn set_hold(&self, hold: &Hold) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO operator_holds (database, kind, since, version, fingerprint) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (database, kind) DO UPDATE SET since = excluded.since, version = excluded.version, fingerprint = excluded.fingerprint",
                params![hold.database, hold.kind.as_str(), hold.since.to_rfc3339(), hold.version, hold.fingerprint],
            )
            .map_err(sqlite(&self.path, "cannot record an operator hold"))?;
        Ok(())
    }

    /// Releases a hold; returns whether there was one.
    pub fn release_hold(&self, database: &str, kind: HoldKind) -> Result<bool, StateError> {
        self.conn
            .execute(
                "DELETE FROM operator_holds WHERE database = ?1 AND kind = ?2",
                params![database, kind.as_str()],
            )
            .map(|n| n > 0)
            .map_err(sqlite(&self.path, "cannot release an operator hold"))
    }

    /// Every operator hold, by database and kind.
    pub fn holds(&self) -> Result<Vec<Hold>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT database, kind, since, version, fingerprint FROM operator_holds ORDER BY database, kind")
            .map_err(sqlite(&self.path, "cannot read operator holds"))?;
        let rows: Vec<HoldRow> = statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read operator holds"))?;
        rows.into_iter()
            .map(|(database, kind, since, version, fingerprint)| {
                let kind = match kind.as_str() {
                    "migrations" => HoldKind::Migrations,
                    "backups" => HoldKind::Backups,
                    other => {
                        return Err(
                            self.corrupt(format!("operator_holds has an unknown kind `{other}`"))
                        );
                    }
                };
                Ok(Hold {
                    database,
                    kind,
                    since: self.time(&since)?,
                    version,
                    fingerprint,
                })
            })
            .collect()
    }

    /// The hold of `kind` on `database`, if any.
    pub fn hold(&self, database: &str, kind: HoldKind) -> Result<Option<Hold>, StateError> {
        Ok(self
            .holds()?
            .into_iter()
            .find(|h| h.database == database && h.kind == kind))
    }

    /// Records that process `pid` reads the backup at `path`.
    pub fn add_reader(
        &self,
        path: &Path,
        pid: u32,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO backup_readers (path, pid, reason, since) VALUES (?1, ?2, ?3, ?4)",
                params![path.to_string_lossy(), pid, reason, now.to_rfc3339()],
            )
            .map_err(sqlite(&self.path, "cannot record a backup reader"))?;
        Ok(())
    }

    /// Forgets that `pid` reads `path`.
    pub fn remove_reader(&self, path: &Path, pid: u32) -> Result<(), StateError> {
        self.conn
            .execute(
                "DELETE FROM backup_readers WHERE path = ?1 AND pid = ?2",
                params![path.to_string_lossy(), pid],
            )
            .map_err(sqlite(&self.path, "cannot forget a backup reader"))?;
        Ok(())
    }

    /// Every recorded backup reader (some may have died; callers check).
    pub fn readers(&self) -> Result<Vec<Reader>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT path, pid, reason FROM backup_readers")
            .map_err(sqlite(&self.path, "cannot read backup readers"))?;
        statement
            .query_map([], |row| {
                Ok(Reader {
                    path: PathBuf::from(row.get::<_, String>(0)?),
                    pid: row.get(1)?,
                    reason: row.get(2)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read backup readers"))
    }

    fn corrupt(&self, detail: String) -> StateError {
        StateError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn time(&self, text: &str) -> Result<DateTime<Utc>, StateError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| self.corrupt(format!("an invalid time `{text}`")))
    }
}

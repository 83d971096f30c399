//! Where each database's continuous replication stands, as its capture
//! last reported it.
//!
//! Owns the `replication` table: one row per replicated database; the
//! reconciler writes it from the capture's reports, `status`, `/status`
//! and `/metrics` read it.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{StateDb, StateError, sqlite};

/// Where one database's replication stands, as the capture reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The database.
    pub database: String,
    /// The current generation, once one started.
    pub generation: Option<String>,
    /// Segments written in it.
    pub segments: u64,
    /// Bytes of the replica on disk.
    pub bytes: u64,
    /// Frames of the log shipped in this generation.
    pub frames: u64,
    /// The last time the replica held every commit of the log.
    pub caught_up_at: Option<DateTime<Utc>>,
    /// Why the last step failed, if it did.
    pub error: Option<String>,
    /// Generations started since the capture began.
    pub generations_started: u64,
}

/// One database's replication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicationRow {
    /// The database.
    pub database: String,
    /// Its current generation.
    pub generation: Option<String>,
    /// Segments written in it.
    pub segments: i64,
    /// Bytes of the replica.
    pub bytes: i64,
    /// Frames of the log shipped in this generation.
    pub frames: i64,
    /// The last time the replica held every commit.
    pub caught_up_at: Option<DateTime<Utc>>,
    /// Why the capture is failing, if it is.
    pub error: Option<String>,
    /// Generations started since the capture began.
    pub generations_started: i64,
}

impl StateDb {
    /// Records a capture's report.
    pub fn record_replication(&self, report: &Report) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO replication (database, generation, segments, bytes, frames, caught_up_at, error, generations_started)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (database) DO UPDATE SET generation = excluded.generation,
                   segments = excluded.segments, bytes = excluded.bytes, frames = excluded.frames,
                   caught_up_at = coalesce(excluded.caught_up_at, caught_up_at),
                   error = excluded.error, generations_started = excluded.generations_started",
                params![
                    report.database,
                    report.generation,
                    report.segments as i64,
                    report.bytes as i64,
                    report.frames as i64,
                    report.caught_up_at,
                    report.error,
                    report.generations_started as i64,
                ],
            )
            .map_err(sqlite(&self.path, "cannot record replication"))?;
        Ok(())
    }

    /// Forgets the replication of databases no longer replicated.
    pub fn keep_replication_of(&self, databases: &[&str]) -> Result<(), StateError> {
        let rows = self.replication()?;
        for row in rows
            .iter()
            .filter(|r| !databases.contains(&r.database.as_str()))
        {
            self.conn
                .execute(
                    "DELETE FROM replication WHERE database = ?1",
                    params![row.database],
                )
                .map_err(sqlite(&self.path, "cannot forget replication"))?;
        }
        Ok(())
    }

    /// Every replicated database's row, by name.
    pub fn replication(&self) -> Result<Vec<ReplicationRow>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT database, generation, segments, bytes, frames, caught_up_at, error, generations_started
                 FROM replication ORDER BY database",
            )
            .map_err(sqlite(&self.path, "cannot read replication"))?;
        statement
            .query_map([], |row| {
                Ok(ReplicationRow {
                    database: row.get(0)?,
                    generation: row.get(1)?,
                    segments: row.get(2)?,
                    bytes: row.get(3)?,
                    frames: row.get(4)?,
                    caught_up_at: row.get(5)?,
                    error: row.get(6)?,
                    generations_started: row.get(7)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(sqlite(&self.path, "cannot read replication"))
    }
}

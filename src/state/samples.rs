//! What the status page draws and advises from: each database's size over
//! the last day, and the application's slow queries.
//!
//! Owns the `size_samples` table (one row per health run: database and
//! `-wal` bytes; rows older than [`SAMPLES_KEPT_FOR`] go, and at most
//! [`SAMPLES_KEPT`] per database stay) and the `slow_queries` table (per
//! database and normalised statement: how often it was slow, its total
//! and longest time), written by `live::Manager` in the application.

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{StateDb, StateError, sqlite};

/// How far back size samples reach.
pub const SAMPLES_KEPT_FOR: TimeDelta = TimeDelta::hours(24);

/// At most this many size samples per database (one a minute for a day).
pub const SAMPLES_KEPT: i64 = 1440;

/// One size sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SizeSample {
    /// When it was measured.
    pub at: DateTime<Utc>,
    /// The database file's bytes.
    pub db_bytes: u64,
    /// The `-wal` file's bytes.
    pub wal_bytes: u64,
}

/// One statement the application found slow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowStatement {
    /// The statement with its literals replaced by `?`.
    pub sql: String,
    /// How many times it was slow.
    pub count: u64,
    /// Its total time when slow, milliseconds.
    pub total_ms: f64,
    /// Its longest time, milliseconds.
    pub max_ms: f64,
    /// The last time it was slow.
    pub last_at: DateTime<Utc>,
}

impl SlowStatement {
    /// Its mean time when slow, milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.total_ms / self.count.max(1) as f64
    }
}

impl StateDb {
    /// Records a size sample of `database`, dropping the ones the page no
    /// longer draws.
    pub fn record_size_sample(&self, database: &str, sample: SizeSample) -> Result<(), StateError> {
        let fail = || sqlite(&self.path, "cannot record a size sample");
        self.conn
            .execute(
                "INSERT OR REPLACE INTO size_samples (database, at, db_bytes, wal_bytes) VALUES (?1, ?2, ?3, ?4)",
                params![database, sample.at, sample.db_bytes as i64, sample.wal_bytes as i64],
            )
            .map_err(fail())?;
        self.conn
            .execute(
                "DELETE FROM size_samples WHERE database = ?1 AND (at < ?2 OR at NOT IN
                   (SELECT at FROM size_samples WHERE database = ?1 ORDER BY at DESC LIMIT ?3))",
                params![database, sample.at - SAMPLES_KEPT_FOR, SAMPLES_KEPT],
            )
            .map_err(fail())?;
        Ok(())
    }

    /// The size samples of `database`, oldest first.
    pub fn size_samples(&self, database: &str) -> Result<Vec<SizeSample>, StateError> {
        let fail = || sqlite(&self.path, "cannot read size samples");
        let mut statement = self
            .conn
            .prepare(
                "SELECT at, db_bytes, wal_bytes FROM size_samples WHERE database = ?1 ORDER BY at",
            )
            .map_err(fail())?;
        statement
            .query_map(params![database], |row| {
                Ok(SizeSample {
                    at: row.get(0)?,
                    db_bytes: row.get::<_, i64>(1)?.max(0) as u64,
                    wal_bytes: row.get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(fail())
    }

    /// Counts one slow run of `sql` (normalised) on `database`.
    pub fn record_slow_query(
        &self,
        database: &str,
        sql: &str,
        took_ms: f64,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO slow_queries (database, sql, count, total_ms, max_ms, last_at)
                 VALUES (?1, ?2, 1, ?3, ?3, ?4)
                 ON CONFLICT (database, sql) DO UPDATE SET count = count + 1,
                   total_ms = total_ms + excluded.total_ms,
                   max_ms = max(max_ms, excluded.max_ms), last_at = excluded.last_at",
                params![database, sql, took_ms, at],
            )
            .map_err(sqlite(&self.path, "cannot record a slow query"))?;
        Ok(())
    }

    /// The slow statements of `database`, the most time first.
    pub fn slow_queries(&self, database: &str) -> Result<Vec<SlowStatement>, StateError> {
        let fail = || sqlite(&self.path, "cannot read slow queries");
        let mut statement = self
            .conn
            .prepare(
                "SELECT sql, count, total_ms, max_ms, last_at FROM slow_queries
                 WHERE database = ?1 ORDER BY total_ms DESC",
            )
            .map_err(fail())?;
        statement
            .query_map(params![database], |row| {
                Ok(SlowStatement {
                    sql: row.get(0)?,
                    count: row.get::<_, i64>(1)?.max(0) as u64,
                    total_ms: row.get(2)?,
                    max_ms: row.get(3)?,
                    last_at: row.get(4)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_older_than_a_day_go_and_slow_queries_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for hour in [0, 10, 25, 26] {
            let sample = SizeSample {
                at: start + TimeDelta::hours(hour),
                db_bytes: hour as u64,
                wal_bytes: 0,
            };
            state.record_size_sample("app", sample).unwrap();
        }
        let kept: Vec<u64> = state
            .size_samples("app")
            .unwrap()
            .iter()
            .map(|s| s.db_bytes)
            .collect();
        assert_eq!(kept, [10, 25, 26]);
        state
            .record_slow_query("app", "SELECT ?", 30.0, start)
            .unwrap();
        state
            .record_slow_query("app", "SELECT ?", 10.0, start)
            .unwrap();
        let slow = state.slow_queries("app").unwrap();
        assert_eq!(
            (slow[0].count, slow[0].max_ms, slow[0].mean_ms()),
            (2, 30.0, 20.0)
        );
    }
}

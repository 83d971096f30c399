//! Restore drills: a backup is only as good as its last restore.
//!
//! Owns the drill sequence: take the newest verified backup (as `restore
//! --from latest` would), mark it as being read (so no prune removes it),
//! restore it into a scratch file in the backup directory, run
//! `integrity_check` on it, optionally run `freshness_sql` on it and on the
//! live database and compare, then delete the scratch file. Nothing live is
//! touched; the live database is opened read-only. With `drill: { from:
//! offsite }` the copy is the newest verified one on the offsite store,
//! downloaded first: the drill then proves the bucket alone restores.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::{Connection, OpenFlags, types::ValueRef};
use serde::Serialize;

use super::backup;
use super::progress::Quiet;
use super::verify;
use crate::clock::Clock;
use crate::config::{Database, DrillFrom, VerifyLevel};
use crate::state::StateDb;
use crate::store::{LocalDir, Store};

/// What the freshness query returned on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freshness {
    /// The value on the restored copy.
    pub restored: String,
    /// The value on the live database.
    pub live: String,
    /// How far the restored copy is behind, in seconds, when both values
    /// read as times (or unix seconds).
    pub lag_seconds: Option<i64>,
}

/// The result of one drill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The database.
    pub database: String,
    /// The backup restored.
    pub backup: Option<PathBuf>,
    /// Whether the drill passed.
    pub passed: bool,
    /// Why it failed.
    pub reason: Option<String>,
    /// The freshness comparison, if configured.
    pub freshness: Option<Freshness>,
    /// For a replicated database: the random point of the window its
    /// replica was rebuilt at and checked.
    pub replica_point: Option<DateTime<Utc>>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Runs a drill of `database`; its result (pass or fail) is the report.
/// Errors only when the state database cannot be used.
pub fn run(
    database: &Database,
    backup_dir: &Path,
    state: &StateDb,
    clock: &dyn Clock,
) -> Result<Report, crate::state::StateError> {
    let started = Instant::now();
    let name = database.name.as_str();
    let failed = |reason: String| Report {
        database: name.to_string(),
        backup: None,
        passed: false,
        reason: Some(reason),
        freshness: None,
        replica_point: None,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let replica_point = match replica_drill(database, backup_dir, state.scratch_dir(), clock.now())
    {
        Some(Err(reason)) => return Ok(failed(reason)),
        Some(Ok(point)) => Some(point),
        None => None,
    };
    let local = LocalDir::new(backup_dir);
    let remote;
    let store: &dyn Store = match database.drill.as_ref().map(|d| d.from) {
        Some(DrillFrom::Offsite) => match super::offsite::open(database, backup_dir) {
            Ok(opened) => {
                remote = opened;
                &*remote
            }
            Err(e) => return Ok(failed(e.to_string())),
        },
        _ => &local,
    };
    match super::manifest::sync_catalog(state, store, name) {
        Ok(_) => {}
        Err(backup::BackupError::State(e)) => return Err(e),
        Err(other) => return Ok(failed(other.to_string())),
    }
    let Some(newest) = super::manifest::latest_verified(state, store, name)? else {
        if replica_point.is_some() && !database.backup.enabled {
            return Ok(Report {
                database: name.to_string(),
                backup: None,
                passed: true,
                reason: None,
                freshness: None,
                replica_point,
                duration_ms: started.elapsed().as_millis() as u64,
            });
        }
        return Ok(failed(format!(
            "no verified backup to restore (`litewarden backup {name}`)"
        )));
    };
    let place = store.location(&newest.key);
    state.add_reader(&place, std::process::id(), "drill", clock.now())?;
    let outcome = match store.fetch(&newest.key) {
        Ok(fetched) => drill(database, fetched.path(), state.scratch_dir()),
        Err(e) => Err(e.to_string()),
    };
    state.remove_reader(&place, std::process::id())?;
    let (passed, reason, freshness) = match outcome {
        Ok(freshness) => match lagging(database, freshness.as_ref()) {
            Some(reason) => (false, Some(reason), freshness),
            None => (true, None, freshness),
        },
        Err(reason) => (false, Some(reason), None),
    };
    Ok(Report {
        database: name.to_string(),
        backup: Some(place),
        passed,
        reason,
        freshness,
        replica_point,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// For a replicated database whose replica holds something: rebuilds it
/// at a random point of the window (from `now`) into a scratch file and
/// runs `integrity_check` on it; the point, or why it failed.
fn replica_drill(
    database: &Database,
    backup_dir: &Path,
    scratch_dir: &Path,
    now: DateTime<Utc>,
) -> Option<Result<DateTime<Utc>, String>> {
    let replicate = database.replicate.as_ref()?;
    let dir = crate::replicate::catalog::replica_dir(backup_dir, database.name.as_str());
    let generations = crate::replicate::catalog::generations(&dir).ok()?;
    let (oldest, newest) = crate::replicate::catalog::range(&generations)?;
    let window = chrono::TimeDelta::from_std(replicate.window).unwrap_or(chrono::TimeDelta::MAX);
    let from = oldest.max(now - window).min(newest);
    let span = (newest - from).num_milliseconds().max(0);
    let fraction = f64::from(now.timestamp_subsec_nanos() % 1_000_000) / 1_000_000.0;
    let point = from + chrono::TimeDelta::milliseconds((span as f64 * fraction) as i64);
    let checked = (|| {
        let scratch = verify::scratch_file(scratch_dir)
            .map_err(|e| format!("cannot create the scratch file: {e}"))?;
        crate::replicate::rebuild::rebuild(
            database.name.as_str(),
            &dir,
            Some(point),
            scratch.file(),
            scratch.path(),
        )
        .map_err(|e| e.to_string())?;
        verify::check_database(scratch.path(), VerifyLevel::Full).map_err(|e| e.to_string())
    })();
    Some(checked.map(|_| point).map_err(|e| {
        format!(
            "the replica at {}: {e}",
            crate::replicate::rebuild::shown(point)
        )
    }))
}

/// Restores `backup` into a scratch file in `scratch_dir`, checks
/// it, and runs the freshness query; the scratch file is gone whatever
/// happens.
fn drill(
    database: &Database,
    backup: &Path,
    scratch_dir: &Path,
) -> Result<Option<Freshness>, String> {
    let scratch = verify::scratch_file(scratch_dir)
        .map_err(|e| format!("cannot create the scratch file: {e}"))?;
    verify::decode_into(
        backup,
        verify::is_compressed(backup),
        &mut io::BufWriter::new(scratch.file()),
        &mut Quiet,
    )
    .map_err(|e| format!("cannot restore into the scratch file: {e}"))?;
    verify::check_database(scratch.path(), VerifyLevel::Full).map_err(|e| e.to_string())?;
    let Some(sql) = &database
        .drill
        .as_ref()
        .and_then(|d| d.freshness_sql.clone())
    else {
        return Ok(None);
    };
    let restored = query_value(scratch.path(), sql)
        .map_err(|e| format!("freshness_sql on the restored copy: {e}"))?;
    let live = query_value(&database.path, sql)
        .map_err(|e| format!("freshness_sql on the live database: {e}"))?;
    let lag_seconds = match (as_time(&restored), as_time(&live)) {
        (Some(restored), Some(live)) => Some((live - restored).num_seconds()),
        _ => None,
    };
    Ok(Some(Freshness {
        restored,
        live,
        lag_seconds,
    }))
}

/// Why the restored copy is too far behind, if `max_lag` says so.
fn lagging(database: &Database, freshness: Option<&Freshness>) -> Option<String> {
    let max_lag = database.drill.as_ref()?.max_lag?;
    let freshness = freshness?;
    let lag = freshness.lag_seconds?;
    (lag > max_lag.as_secs() as i64).then(|| {
        format!(
            "the restored copy is {} behind the live database ({} vs {}), more than max_lag {}",
            humantime::format_duration(std::time::Duration::from_secs(lag as u64)),
            freshness.restored,
            freshness.live,
            humantime::format_duration(max_lag)
        )
    })
}

/// The first column of the first row of `sql` on the database at `path`
/// (read-only), as text.
fn query_value(path: &Path, sql: &str) -> Result<String, rusqlite::Error> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.query_row(sql, [], |row| {
        Ok(match row.get_ref(0)? {
            ValueRef::Null => "NULL".to_string(),
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(f) => f.to_string(),
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Blob(_) => "<blob>".to_string(),
        })
    })
}

/// A freshness value as a time: RFC 3339, `YYYY-MM-DD HH:MM:SS`, or unix
/// seconds.
fn as_time(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Some(t.and_utc());
        }
    }
    value
        .parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_values_read_as_times_in_the_usual_spellings() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(as_time("2027-01-15T08:00:00Z"), Some(t));
        assert_eq!(as_time("2027-01-15 08:00:00"), Some(t));
        assert_eq!(as_time("1800000000"), Some(t));
        assert_eq!(as_time("page 7"), None);
    }
}

//! Health checks of one database: cheap checks every run, the slow
//! `quick_check`/`integrity_check` only when asked.
//!
//! Owns the checks and their verdicts; the figures come from the file, the
//! state database (expectation, newest verified backup, the previous run) and
//! the file system. Nothing here changes the database, except one `PASSIVE`
//! checkpoint (never waits for a lock; skipped when Litestream owns the WAL,
//! `_litestream_seq`) whose result shows a reader pinning the WAL.
//!
//! A run's result is `healthy`, `degraded` (something to look at) or
//! `unhealthy` (the database or its backups are at risk), with one check per
//! line and the figures Prometheus and the seed's Python users read
//! (`db_size_mb`, `wal_size_mb`, ...).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use crate::config::{Database, VerifyLevel};
use crate::state::StateDb;
pub use crate::state::health::{Check, Figures, Report, Status};
use crate::store::{LocalDir, Store};

/// What a health run needs besides the database.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The database with its health settings.
    pub database: &'a Database,
    /// `settings.backup_dir`.
    pub backup_dir: &'a Path,
    /// Also run `quick_check` or `integrity_check`.
    pub deep: Option<VerifyLevel>,
    /// The run's time.
    pub now: DateTime<Utc>,
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0
}

/// Runs the checks. `state` gives the expectation, the newest verified
/// backup and the previous run (none on a fresh install).
pub fn run(request: Request, state: Option<&StateDb>) -> Report {
    let db = request.database;
    let mut checks = Vec::new();
    let mut figures = Figures::default();
    let mut check = |name: &str, status: Status, detail: String| {
        checks.push(Check {
            name: name.to_string(),
            status,
            detail,
        })
    };
    let previous = state.and_then(|s| s.health(db.name.as_str()).ok().flatten());
    match file_checks(db, request.deep, previous.as_ref(), &mut figures) {
        Ok(found) => {
            for (name, status, detail) in found {
                check(name, status, detail);
            }
        }
        Err((name, detail)) => check(name, Status::Unhealthy, detail),
    }
    if let Some(state) = state
        && let Ok(open) = state.open_discontinuities(db.name.as_str())
        && let Some(first) = open.first()
    {
        check(
            "identity",
            Status::Unhealthy,
            format!(
                "does not fit what litewarden last saw since {}: {} (`litewarden accept {}` once intended)",
                first.detected_at.format("%Y-%m-%d %H:%M:%SZ"),
                first.reason,
                db.name
            ),
        );
    }
    if let Some(blocker) = not_a_directory(request.backup_dir) {
        check(
            "backup_dir",
            Status::Unhealthy,
            format!(
                "{} cannot hold backups: `{}` is not a directory (the backup disk unmounted or the directory replaced); make it a directory again or fix settings.backup_dir",
                request.backup_dir.display(),
                blocker.display()
            ),
        );
    }
    let min_free = db.health.min_free_disk.0;
    for (name, dir, slot) in [
        ("free_disk", parent(&db.path), &mut figures.free_disk_bytes),
        (
            "backup_free_disk",
            request.backup_dir.to_path_buf(),
            &mut figures.backup_free_disk_bytes,
        ),
    ] {
        match free_bytes(&dir) {
            Some(free) => {
                *slot = Some(free);
                let (status, detail) = if free < min_free {
                    (
                        Status::Unhealthy,
                        format!(
                            "{} free on {}, below min_free_disk {}",
                            human(free),
                            dir.display(),
                            human(min_free)
                        ),
                    )
                } else {
                    (Status::Healthy, format!("{} free", human(free)))
                };
                check(name, status, detail);
            }
            None => check(
                name,
                Status::Degraded,
                format!("cannot read the free space of {}", dir.display()),
            ),
        }
    }
    let store = LocalDir::new(request.backup_dir);
    backup_check(db, &store, state, request.now, &mut figures, &mut check);
    if let Some(state) = state {
        offsite_check(db, state, request.now, &mut figures, &mut check);
    }
    if let Some(migrations) = &db.migrations {
        match crate::jobs::migrations::runner::status(db, migrations) {
            Ok(status) if !status.errors().is_empty() => {
                check("migrations", Status::Degraded, status.errors().join("; "))
            }
            Ok(status) if !status.pending().is_empty() => check(
                "migrations",
                Status::Degraded,
                format!("{} pending", status.pending().len()),
            ),
            Ok(_) => check("migrations", Status::Healthy, "up to date".into()),
            Err(e) => check("migrations", Status::Degraded, e.to_string()),
        }
    }
    let status = checks.iter().map(|c| c.status).max().unwrap_or_default();
    Report {
        database: db.name.to_string(),
        status,
        checked_at: request.now,
        db_size_mb: mib(figures.db_size_bytes),
        wal_size_mb: mib(figures.wal_size_bytes),
        checks,
        figures,
        deep: request.deep.and_then(deep_name).map(str::to_string),
    }
}

type Found = Vec<(&'static str, Status, String)>;

/// The checks that read the file: presence, header, size, WAL, freelist,
/// mode, and the deep check when asked.
fn file_checks(
    db: &Database,
    deep: Option<VerifyLevel>,
    previous: Option<&Report>,
    figures: &mut Figures,
) -> Result<Found, (&'static str, String)> {
    let mut found = Vec::new();
    let metadata = match std::fs::metadata(&db.path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err((
                "file",
                format!(
                    "{} is missing (`litewarden restore {}`)",
                    db.path.display(),
                    db.name
                ),
            ));
        }
        Err(e) => return Err(("file", format!("{}: {e}", db.path.display()))),
    };
    figures.db_size_bytes = metadata.len();
    found.push((
        "file",
        Status::Healthy,
        format!("{} present", human(metadata.len())),
    ));
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o002 != 0 {
        found.push((
            "file_mode",
            Status::Degraded,
            format!("mode {mode:o}: any user can write to it (chmod o-w)"),
        ));
    }
    let conn = Connection::open_with_flags(
        &db.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| ("header", format!("cannot open: {e}")))?;
    conn.busy_timeout(Duration::ZERO)
        .map_err(|e| ("header", e.to_string()))?;
    let pragma = |name: &str| -> Result<i64, (&'static str, String)> {
        conn.pragma_query_value(None, name, |r| r.get(0))
            .map_err(|e| ("header", format!("not a readable SQLite database: {e}")))
    };
    figures.page_count = pragma("page_count")?.max(0) as u64;
    figures.freelist_count = pragma("freelist_count")?.max(0) as u64;
    found.push(("header", Status::Healthy, "SQLite format 3".into()));
    figures.wal_size_bytes = std::fs::metadata(wal_path(&db.path)).map_or(0, |m| m.len());
    let max_wal = db.health.max_wal_size.0;
    found.push(if figures.wal_size_bytes > max_wal {
        (
            "wal_size",
            Status::Unhealthy,
            format!(
                "{} WAL, above max_wal_size {}",
                human(figures.wal_size_bytes),
                human(max_wal)
            ),
        )
    } else {
        (
            "wal_size",
            Status::Healthy,
            format!("{} WAL", human(figures.wal_size_bytes)),
        )
    });
    if figures.wal_size_bytes > 0 && db.replicate.is_none() && !litestream_owns(&conn) {
        let (_, log, backfilled): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap_or((0, 0, 0));
        let pinned = (log - backfilled).max(0);
        figures.wal_frames_pinned = Some(pinned);
        let grew = previous.is_some_and(|p| figures.wal_size_bytes > p.figures.wal_size_bytes);
        if pinned > 0 && grew {
            found.push(("wal_pinned", Status::Degraded, format!("{pinned} WAL frames cannot be checkpointed and the WAL grew since the last run: a reader holds a transaction open")));
        }
    }
    if figures.page_count > 100 && figures.freelist_count * 2 > figures.page_count {
        found.push((
            "freelist",
            Status::Degraded,
            format!(
                "{} of {} pages are free; `optimize.vacuum: true` or `VACUUM` would give them back",
                figures.freelist_count, figures.page_count
            ),
        ));
    }
    drop(conn);
    if let Some(level) = deep
        && let Some(name) = deep_name(level)
    {
        found.push(match crate::jobs::verify::check_database(&db.path, level) {
            Ok(()) => (name, Status::Healthy, "ok".to_string()),
            Err(e) => (name, Status::Unhealthy, e.to_string()),
        });
    }
    Ok(found)
}

fn backup_check(
    db: &Database,
    store: &dyn Store,
    state: Option<&StateDb>,
    now: DateTime<Utc>,
    figures: &mut Figures,
    check: &mut impl FnMut(&str, Status, String),
) {
    let newest = state.and_then(|s| {
        super::manifest::latest_verified(s, store, db.name.as_str())
            .ok()
            .flatten()
    });
    if let Some(newest) = &newest {
        figures.backup_age_seconds = Some((now - newest.created_at).num_seconds().max(0));
        figures.backup_size_bytes = Some(newest.size);
    }
    let Some(max_age) = db.health.max_backup_age else {
        return;
    };
    let limit = humantime::format_duration(max_age);
    match (&newest, figures.backup_age_seconds) {
        (Some(_), Some(age)) if age as u64 > max_age.as_secs() => check(
            "backup_age",
            Status::Unhealthy,
            format!(
                "newest verified backup is {} old, above max_backup_age {limit}",
                humantime::format_duration(Duration::from_secs(age as u64))
            ),
        ),
        (Some(_), Some(age)) => check(
            "backup_age",
            Status::Healthy,
            format!(
                "newest verified backup is {} old",
                humantime::format_duration(Duration::from_secs(age as u64))
            ),
        ),
        _ => check(
            "backup_age",
            Status::Unhealthy,
            format!("no verified backup (`litewarden backup {}`)", db.name),
        ),
    }
}

/// `offsite_age`: degraded when the offsite store is further behind than
/// `offsite.max_age_lag` (the `offsite_stale` alert); from the catalog, no
/// request to the store.
fn offsite_check(
    db: &Database,
    state: &StateDb,
    now: DateTime<Utc>,
    figures: &mut Figures,
    check: &mut impl FnMut(&str, Status, String),
) {
    let lag = match super::offsite::lag(state, db, now) {
        Ok(Some(lag)) => lag,
        Ok(None) => return,
        Err(e) => return check("offsite_age", Status::Degraded, e.to_string()),
    };
    figures.offsite_age_seconds = lag.newest_age.map(|age| age.num_seconds().max(0));
    let age = |age: chrono::TimeDelta| {
        humantime::format_duration(Duration::from_secs(age.num_seconds().max(0) as u64))
    };
    let (status, detail) = match (lag.newest_age, lag.stale) {
        (Some(newest), false) => (
            Status::Healthy,
            format!("newest offsite copy is {} old", age(newest)),
        ),
        (Some(newest), true) => (
            Status::Degraded,
            format!(
                "newest offsite copy is {} old, above offsite.max_age_lag (`litewarden offsite {}`)",
                age(newest),
                db.name
            ),
        ),
        (None, true) => (
            Status::Degraded,
            format!(
                "no copy reached the offsite store yet, and one waits longer than offsite.max_age_lag (`litewarden offsite {}`)",
                db.name
            ),
        ),
        (None, false) => (
            Status::Healthy,
            "no copy on the offsite store yet".to_string(),
        ),
    };
    check("offsite_age", status, detail);
}

/// The slow check due for `database` at `now` (see
/// [`StateDb::deep_check_due`]), as a verification level.
pub fn due_deep_check(
    state: &StateDb,
    database: &Database,
    now: DateTime<Utc>,
) -> Result<Option<VerifyLevel>, crate::state::StateError> {
    use crate::state::health::DeepCheck;
    Ok(state
        .deep_check_due(
            database.name.as_str(),
            database.health.quick_check,
            database.health.integrity_check,
            now,
        )?
        .map(|due| match due {
            DeepCheck::Quick => VerifyLevel::Quick,
            DeepCheck::Integrity => VerifyLevel::Full,
        }))
}

/// The name of a deep check level.
fn deep_name(level: VerifyLevel) -> Option<&'static str> {
    match level {
        VerifyLevel::None => None,
        VerifyLevel::Quick => Some("quick_check"),
        VerifyLevel::Full => Some("integrity_check"),
    }
}

/// Whether Litestream manages the database's WAL (it owns checkpoints).
pub fn litestream_owns(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT 1 FROM sqlite_schema WHERE name = '_litestream_seq'",
        [],
        |_| Ok(()),
    )
    .is_ok()
}

/// The `-wal` file of a database.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_os_string();
    name.push("-wal");
    PathBuf::from(name)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Free bytes for an unprivileged user on the file system of `dir` (the
/// nearest existing ancestor).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    let stats = rustix::fs::statvfs(existing).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// The nearest existing ancestor of `dir` (itself included) when it is
/// not a directory: `dir` then cannot exist or be created.
fn not_a_directory(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|ancestor| ancestor.symlink_metadata().is_ok())
        .filter(|existing| !existing.is_dir())
        .map(Path::to_path_buf)
}

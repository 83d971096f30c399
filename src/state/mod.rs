//! The state database, `<settings.state_dir>/state.db`.
//!
//! Owns every write to state.db: which databases litewarden manages, the
//! record of every job run, and the backup catalog ([`catalog`]). Later
//! capabilities add their tables here (alert state) through `schema::SCHEMA`, never
//! by writing the file from elsewhere. The schema version lives in `PRAGMA user_version`; each entry
//! of `SCHEMA` upgrades by one version inside a transaction.

pub mod alerts;
pub mod catalog;
mod columns;
pub mod daemon;
pub mod expect;
pub mod health;
mod recover;
pub mod replication;
pub mod runs;
pub mod samples;
mod schema;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

pub use self::runs::{FailureKind, RunFigures};
use crate::config::JobKind;

/// File name of the state database inside `settings.state_dir`.
pub const STATE_FILE: &str = "state.db";

use schema::SCHEMA;

/// How long the history of job runs is kept: older runs are deleted by the
/// daemon, except the latest of each job, database and outcome (scheduling
/// and `status` read those). Run totals for `/metrics` are kept apart and
/// never shrink.
pub const RUN_HISTORY: chrono::TimeDelta = chrono::TimeDelta::days(90);

/// Why the state database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state directory or file could not be created.
    #[error("{}: cannot create the state directory: {source}", crate::paths::display(.path))]
    CreateDir {
        /// The state directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed on the state database.
    #[error("{}: {action}: {source}", crate::paths::display(.path))]
    Sqlite {
        /// The state database.
        path: PathBuf,
        /// What litewarden was doing.
        action: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A row of the state database cannot be read back.
    #[error("{}: {detail}; move the state database aside to rebuild it", crate::paths::display(.path))]
    Corrupt {
        /// The state database.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file is not an intact SQLite database (garbage, truncated, a
    /// failed `quick_check`): [`StateDb::open`] keeps it aside and starts a
    /// new one.
    #[error("{}: damaged: {detail}", crate::paths::display(.path))]
    Damaged {
        /// The state database.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The state database was written by a newer litewarden.
    #[error("{}: schema version {found} is newer than this litewarden understands ({known}); upgrade litewarden", crate::paths::display(.path))]
    TooNew {
        /// The state database.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
}

pub use crate::plan::ManagedDatabase;

/// What started a job run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A command typed by the operator (or the application's library).
    Manual,
    /// The scheduler.
    Schedule,
}

impl Trigger {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
        }
    }

    /// The trigger named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [Trigger::Manual, Trigger::Schedule]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// How a job run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did what it had to.
    Success,
    /// It failed; see the error.
    Failed,
}

impl Outcome {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [Outcome::Success, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// One finished job run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRun {
    /// The kind of job.
    pub job: JobKind,
    /// The database it ran on, if one.
    pub database: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// What kind of failure, when it failed.
    pub failure: Option<FailureKind>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// A short summary of what it did.
    pub detail: Option<String>,
    /// What it measured.
    pub figures: RunFigures,
}

/// An open state database.
#[derive(Debug)]
pub struct StateDb {
    path: PathBuf,
    conn: Connection,
    /// The file's (device, inode) when it was opened: see
    /// [`StateDb::is_intact`].
    file_id: Option<(u64, u64)>,
}

impl StateDb {
    /// Opens (creating when needed, mode 0700/0600) the state database in
    /// `state_dir` and brings its schema up to date.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        crate::durable::create_private_dir(state_dir).map_err(|source| StateError::CreateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(STATE_FILE);
        match Self::open_file(&path) {
            Err(error) if recover::is_damage(&error) => {
                let kept = match recover::move_aside(&path) {
                    Ok(kept) => kept,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        // Another process found it damaged at the same moment
                        // and moved it aside first.
                        return Self::open_file(&path);
                    }
                    Err(source) => {
                        return Err(StateError::CreateDir {
                            path: path.clone(),
                            source,
                        });
                    }
                };
                tracing::error!(
                    path = %path.display(),
                    kept = %kept.display(),
                    error = %error,
                    "the state database is damaged: kept it aside and started a new one; the backup catalog is rebuilt from the backup directory's manifests (pins and verification included), run history and alert state start afresh"
                );
                Self::open_file(&path)
            }
            other => other,
        }
    }

    /// Opens, upgrades and checks the state database at `path`.
    fn open_file(path: &Path) -> Result<Self, StateError> {
        create_file(path).map_err(|source| StateError::CreateDir {
            path: path.to_path_buf(),
            source,
        })?;
        recover::check_header(path)?;
        let conn = Connection::open(path).map_err(sqlite(path, "cannot open"))?;
        let mut state = Self {
            path: path.to_path_buf(),
            conn,
            file_id: recover::file_id(path),
        };
        state.configure()?;
        state.upgrade()?;
        state.quick_check()?;
        Ok(state)
    }

    /// The state directory, where jobs decode scratch copies of backups
    /// (anonymous temp files; never beside a backup, whose directory may be
    /// read-only).
    pub fn scratch_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Opens the state database read-write if it exists; `None` when
    /// nothing was ever recorded. Never creates anything.
    pub fn open_existing(state_dir: &Path) -> Result<Option<Self>, StateError> {
        if state_dir.join(STATE_FILE).exists() {
            Self::open(state_dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Opens an existing state database read-only; `None` when there is
    /// none yet (nothing was ever applied). Never creates anything.
    pub fn open_read_only(state_dir: &Path) -> Result<Option<Self>, StateError> {
        let path = state_dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        recover::check_header(&path)?;
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite(&path, "cannot open"))?;
        let file_id = recover::file_id(&path);
        let state = Self {
            path,
            conn,
            file_id,
        };
        state
            .conn
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite(&state.path, "cannot configure"))?;
        let version = state.version()?;
        if version > SCHEMA.len() as i64 {
            return Err(StateError::TooNew {
                path: state.path,
                found: version,
                known: SCHEMA.len() as i64,
            });
        }
        Ok((version > 0).then_some(state))
    }

    fn configure(&self) -> Result<(), StateError> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite(&self.path, "cannot configure"))?;
        self.enter_wal()?;
        self.conn
            .pragma_update(None, "synchronous", "normal")
            .map_err(sqlite(&self.path, "cannot configure"))
    }

    /// Switches a new state database to WAL. SQLite does not call the busy
    /// handler for this switch, so concurrent first opens retry here.
    fn enter_wal(&self) -> Result<(), StateError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mode = self
                .conn
                .pragma_update_and_check(None, "journal_mode", "wal", |row| {
                    row.get::<_, String>(0)
                });
            match mode {
                Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(ref e) if recover::is_busy(e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Ok(mode) => {
                    return Err(StateError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("stays in journal mode {mode}"),
                    });
                }
                Err(source) => {
                    return Err(StateError::Sqlite {
                        path: self.path.clone(),
                        action: "cannot configure",
                        source,
                    });
                }
            }
        }
    }

    fn version(&self) -> Result<i64, StateError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sqlite(&self.path, "cannot read the schema version"))
    }

    /// Applies the missing [`SCHEMA`] steps. The version is read inside the
    /// write transaction, so two processes opening a new state database at
    /// once never run the same step twice.
    fn upgrade(&mut self) -> Result<(), StateError> {
        let known = SCHEMA.len() as i64;
        if self.version()? == known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite(&self.path, "cannot upgrade the schema"))?;
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sqlite(&self.path, "cannot read the schema version"))?;
        if found > known {
            return Err(StateError::TooNew {
                path: self.path.clone(),
                found,
                known,
            });
        }
        for sql in SCHEMA.iter().skip(found.max(0) as usize) {
            tx.execute_batch(sql)
                .map_err(sqlite(&self.path, "cannot upgrade the schema"))?;
        }
        tx.pragma_update(None, "user_version", known)
            .and_then(|()| tx.commit())
            .map_err(sqlite(&self.path, "cannot upgrade the schema"))
    }

    /// The databases recorded as managed, by name.
    pub fn managed_databases(&self) -> Result<Vec<ManagedDatabase>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT name, path FROM managed_databases ORDER BY name")
            .map_err(sqlite(&self.path, "cannot read managed databases"))?;
        let rows = statement
            .query_map([], |row| {
                Ok(ManagedDatabase {
                    name: row.get(0)?,
                    path: PathBuf::from(row.get::<_, String>(1)?),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sqlite(&self.path, "cannot read managed databases"))?;
        Ok(rows)
    }

    /// Records `database` as managed (or refreshes its path and time).
    pub fn record_managed(
        &self,
        database: &ManagedDatabase,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let now = now.to_rfc3339();
        self.conn
            .execute(
                "INSERT INTO managed_databases (name, path, first_applied_at, last_applied_at)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (name) DO UPDATE SET path = excluded.path, last_applied_at = excluded.last_applied_at",
                params![database.name, database.path.to_string_lossy(), now],
            )
            .map_err(sqlite(&self.path, "cannot record a managed database"))?;
        Ok(())
    }

    /// Stops managing the database called `name`. Its file is not touched.
    pub fn forget_managed(&self, name: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "DELETE FROM managed_databases WHERE name = ?1",
                params![name],
            )
            .map_err(sqlite(&self.path, "cannot forget a managed database"))?;
        Ok(())
    }

    /// Records a finished job run and counts it in the run totals; returns
    /// its id.
    pub fn record_run(&self, run: &JobRun) -> Result<i64, StateError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sqlite(&self.path, "cannot record a job run"))?;
        tx.execute(
            "INSERT INTO run_totals (job, database, outcome, count) VALUES (?1, coalesce(?2, ''), ?3, 1)
             ON CONFLICT (job, database, outcome) DO UPDATE SET count = count + 1",
            params![run.job, run.database, run.outcome],
        )
        .map_err(sqlite(&self.path, "cannot record a job run"))?;
        tx
            .execute(
                "INSERT INTO job_runs (job, database, trigger, started_at, finished_at, outcome, error, detail, failure, figures)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    run.job,
                    run.database,
                    run.trigger,
                    run.started_at.to_rfc3339(),
                    run.finished_at.to_rfc3339(),
                    run.outcome,
                    run.error,
                    run.detail,
                    run.failure,
                    run.figures.json(),
                ],
            )
            .map_err(sqlite(&self.path, "cannot record a job run"))?;
        let id = tx.last_insert_rowid();
        tx.commit()
            .map_err(sqlite(&self.path, "cannot record a job run"))?;
        Ok(id)
    }

    /// Deletes job runs that started before `before`, keeping the latest of
    /// each job, database and outcome; returns how many were deleted.
    pub fn prune_history(&self, before: DateTime<Utc>) -> Result<usize, StateError> {
        self.conn
            .execute(
                "DELETE FROM job_runs WHERE started_at < ?1 AND id NOT IN
                 (SELECT max(id) FROM job_runs GROUP BY job, database, outcome)",
                params![before.to_rfc3339()],
            )
            .map_err(sqlite(&self.path, "cannot prune the run history"))
    }

    /// When the most recent run of `job` started, how it ended and its
    /// summary, if it ever ran.
    pub fn last_run(&self, job: JobKind) -> Result<Option<RecordedRun>, StateError> {
        let row = self
            .conn
            .query_row(
                "SELECT started_at, outcome, detail FROM job_runs WHERE job = ?1 ORDER BY id DESC LIMIT 1",
                params![job.as_str()],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(sqlite(&self.path, "cannot read job runs"))?;
        let Some((started_at, outcome, detail)) = row else {
            return Ok(None);
        };
        let corrupt = |what: String| StateError::Corrupt {
            path: self.path.clone(),
            detail: format!("job_runs has {what}"),
        };
        Ok(Some(RecordedRun {
            started_at: DateTime::parse_from_rfc3339(&started_at)
                .map_err(|_| corrupt(format!("an invalid started_at `{started_at}`")))?
                .with_timezone(&Utc),
            outcome: match outcome.as_str() {
                "success" => Outcome::Success,
                "failed" => Outcome::Failed,
                other => return Err(corrupt(format!("an unknown outcome `{other}`"))),
            },
            detail,
        }))
    }
}

/// The summary of a recorded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRun {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// Its summary.
    pub detail: Option<String>,
}

/// Creates the state database file (mode 0600) when there is none, and
/// refuses a symbolic link in its place. An existing file is not opened
/// here: closing a descriptor of it would drop the locks this process's
/// other connections to it hold (see [`crate::db::file`]).
fn create_file(path: &Path) -> std::io::Result<()> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
                return Err(rustix::io::Errno::LOOP.into());
            }
            Ok(())
        }
        other => other.map(drop),
    }
}

pub(crate) fn sqlite<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl Fn(rusqlite::Error) -> StateError + 'a {
    move |source| StateError::Sqlite {
        path: path.to_path_buf(),
        action,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};

    fn clock() -> FakeClock {
        FakeClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap())
    }

    #[test]
    fn open_creates_private_directory_and_file_and_reopens_idempotently() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        drop(StateDb::open(&state_dir).unwrap());
        let state = StateDb::open(&state_dir).unwrap();
        assert_eq!(state.version().unwrap(), SCHEMA.len() as i64);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state_dir), 0o700);
        assert_eq!(mode(&state_dir.join(STATE_FILE)), 0o600);
    }

    #[test]
    fn two_processes_creating_the_state_database_at_once_both_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| StateDb::open(&state_dir).map(|_| ())))
                .collect();
            for handle in handles {
                handle.join().unwrap().unwrap();
            }
        });
        assert_eq!(
            StateDb::open(&state_dir).unwrap().version().unwrap(),
            SCHEMA.len() as i64
        );
    }

    #[test]
    fn read_only_open_of_a_missing_state_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        assert!(StateDb::open_read_only(&state_dir).unwrap().is_none());
        assert!(!state_dir.exists());
    }

    #[test]
    fn managed_databases_are_upserted_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        let clock = clock();
        let db = ManagedDatabase {
            name: "a".into(),
            path: "/x/a.db".into(),
        };
        state.record_managed(&db, clock.now()).unwrap();
        state
            .record_managed(
                &ManagedDatabase {
                    path: "/y/a.db".into(),
                    ..db.clone()
                },
                clock.now(),
            )
            .unwrap();
        assert_eq!(
            state.managed_databases().unwrap(),
            vec![ManagedDatabase {
                name: "a".into(),
                path: "/y/a.db".into()
            }]
        );
        state.forget_managed("a").unwrap();
        assert!(state.managed_databases().unwrap().is_empty());
    }

    #[test]
    fn job_runs_are_recorded_and_the_last_one_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        let clock = clock();
        let run = JobRun {
            job: JobKind::Apply,
            database: None,
            trigger: Trigger::Manual,
            started_at: clock.now(),
            finished_at: clock.now(),
            outcome: Outcome::Success,
            failure: None,
            error: None,
            detail: Some("1 created".into()),
            figures: Default::default(),
        };
        state.record_run(&run).unwrap();
        let last = state.last_run(JobKind::Apply).unwrap().unwrap();
        assert_eq!(
            last,
            RecordedRun {
                started_at: clock.now(),
                outcome: Outcome::Success,
                detail: Some("1 created".into())
            }
        );
        assert!(state.last_run(JobKind::Backup).unwrap().is_none());
    }

    fn backup_run(database: &str, started_at: DateTime<Utc>, outcome: Outcome) -> JobRun {
        JobRun {
            job: JobKind::Backup,
            database: Some(database.into()),
            trigger: Trigger::Schedule,
            started_at,
            finished_at: started_at,
            outcome,
            failure: None,
            error: None,
            detail: None,
            figures: Default::default(),
        }
    }

    fn history(state: &StateDb) -> i64 {
        state
            .conn
            .query_row("SELECT count(*) FROM job_runs", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn pruning_the_history_keeps_the_latest_run_of_each_outcome_and_the_totals() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        let now = clock().now();
        let day = chrono::TimeDelta::days(1);
        for age in [200, 150, 120] {
            state
                .record_run(&backup_run("app", now - day * age, Outcome::Success))
                .unwrap();
        }
        state
            .record_run(&backup_run("app", now - day * 100, Outcome::Failed))
            .unwrap();
        state
            .record_run(&backup_run("app", now - day, Outcome::Success))
            .unwrap();
        state
            .record_run(&backup_run("old", now - day * 300, Outcome::Success))
            .unwrap();
        let totals = state.run_counts().unwrap();

        let removed = state.prune_history(now - RUN_HISTORY).unwrap();
        assert_eq!(removed, 3, "app's three old successes go");
        assert_eq!(history(&state), 3);
        assert_eq!(
            state.last_start(JobKind::Backup, "old").unwrap(),
            Some(now - day * 300),
            "the only run of a database stays: scheduling anchors on it"
        );
        assert_eq!(
            state.run_counts().unwrap(),
            totals,
            "/metrics counters never shrink"
        );
        assert_eq!(
            totals
                .iter()
                .find(|c| c.database.as_deref() == Some("app") && c.outcome == Outcome::Success)
                .map(|c| c.count),
            Some(4)
        );
    }

    #[test]
    fn upgrading_a_version_3_state_database_counts_its_existing_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let conn = Connection::open(&path).unwrap();
        for step in &SCHEMA[..3] {
            conn.execute_batch(step).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 3;
             INSERT INTO job_runs (job, database, trigger, started_at, finished_at, outcome)
             VALUES ('backup', 'app', 'schedule', 't', 't', 'success'),
                    ('backup', 'app', 'schedule', 't', 't', 'success'),
                    ('apply', NULL, 'manual', 't', 't', 'failed');",
        )
        .unwrap();
        drop(conn);
        let state = StateDb::open(dir.path()).unwrap();
        let counts: Vec<_> = state
            .run_counts()
            .unwrap()
            .into_iter()
            .map(|c| (c.job, c.database, c.outcome, c.count))
            .collect();
        assert_eq!(
            counts,
            [
                (JobKind::Apply, None, Outcome::Failed, 1),
                (
                    JobKind::Backup,
                    Some("app".to_string()),
                    Outcome::Success,
                    2
                ),
            ]
        );
    }

    #[test]
    fn upgrading_a_catalog_of_paths_names_each_copy_by_store_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let conn = Connection::open(&path).unwrap();
        let before = SCHEMA
            .iter()
            .position(|step| step.contains("CREATE TABLE copies"))
            .unwrap();
        for step in &SCHEMA[..before] {
            conn.execute_batch(step).unwrap();
        }
        conn.execute_batch(&format!(
            "PRAGMA user_version = {before};
             INSERT INTO backups (database, path, created_at, size, trigger, pinned, seq)
             VALUES ('app', '/srv/backups/app/app-20261118T110640Z.db.zst', '2026-11-18T11:06:40+00:00', 5, 'schedule', 1, 7);"
        ))
        .unwrap();
        drop(conn);
        let state = StateDb::open(dir.path()).unwrap();
        let backups = state.backups("app").unwrap();
        assert_eq!(backups.len(), 1);
        let copy = &backups[0];
        assert_eq!(copy.store, crate::store::StoreId::Local);
        assert_eq!(copy.key.as_str(), "app/app-20261118T110640Z.db.zst");
        assert_eq!((copy.seq, copy.size, copy.pinned), (7, 5, true));
    }
}

//! The engines a [`Manager`] hands work to: the daemon's health checks,
//! backup and retention, migrations, optimize and added columns, run on the
//! application's database with the manager's writer held where they write;
//! and the metrics of the manager's own figures.
//!
//! Owns no state: each method borrows the manager's database definition,
//! directories and clock.

use std::path::{Path, PathBuf};

use super::{BackupDone, LiveError, Manager, Metrics, NewColumn, PoolFigures, mib, open};
use crate::jobs::progress::Quiet;
use crate::jobs::run;
use crate::state::Trigger;

impl Manager {
    /// The health job's checks, run now (the seed's `health_check()`).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let report = db.health()?;
    /// println!("{}", report.status.as_str());
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn health(&self) -> Result<crate::jobs::health::Report, LiveError> {
        let state = crate::state::StateDb::open_read_only(&self.state_dir)?;
        Ok(crate::jobs::health::run(
            crate::jobs::health::Request {
                database: &self.database,
                backup_dir: &self.backup_dir,
                deep: None,
                now: self.clock.now(),
            },
            state.as_ref(),
        ))
    }

    /// Sizes, pool and query figures (the seed's
    /// `get_performance_metrics()`).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let m = db.metrics();
    /// println!("{} MiB, p99 {} ms, {} pool waits", m.db_size_mb, m.queries.p99_ms, m.pool.waits.pool_waits);
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let (in_use, idle) = self.readers.state();
        Metrics {
            database: self.name().to_string(),
            db_size_mb: mib(size(&self.database.path)),
            wal_size_mb: mib(size(&crate::jobs::health::wal_path(&self.database.path))),
            pool: PoolFigures {
                size: self.readers.size(),
                in_use,
                idle,
                waits: self.recorder.waits(),
            },
            queries: self.recorder.queries(),
        }
    }

    /// Takes a verified backup into the backup directory, catalogued like
    /// the daemon's, then applies the retention as the daemon's backup job
    /// does (the seed's `backup_database()`).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let done = db.backup_now()?;
    /// println!("{} ({} pruned)", done.backup.path.display(), done.pruned);
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn backup_now(&self) -> Result<BackupDone, LiveError> {
        let _claim = crate::db::lock::DatabaseLock::acquire(
            self.name(),
            &self.database.path,
            &self.state_dir,
        )?;
        let state = crate::state::StateDb::open(&self.state_dir)?;
        crate::jobs::backup::remove_restore_leftovers(crate::durable::parent(&self.database.path));
        let context = run::Context {
            state: &state,
            backup_dir: &self.backup_dir,
            timezone: self.timezone,
            clock: self.clock.as_ref(),
            trigger: Trigger::Manual,
        };
        let job = run::Job::Backup {
            pin: false,
            prune: true,
        };
        let started_at = self.clock.now();
        let result = run::run(job, &self.database, &context, &mut Quiet);
        run::record(
            &state,
            job.kind(),
            Some(self.name()),
            Trigger::Manual,
            started_at,
            self.clock.now(),
            &run::outcome(&result),
        )?;
        let run::Done::Backup { report, pruned } = result? else {
            return Err(LiveError::Config(format!(
                "{}: backups are paused by the operator",
                self.name()
            )));
        };
        let (backup, pruned) = (report, pruned.len());
        Ok(BackupDone { backup, pruned })
    }

    /// Writes a consistent, `quick_check`ed copy of the database to `path`
    /// (which must not exist), through the backup engine's copy.
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// db.backup_to("/tmp/copy.db")?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<PathBuf, LiveError> {
        open::copy_to(&self.database, path.as_ref())
    }

    /// Applies the pending migrations (same files, tracking table, lock and
    /// pre-migration backup as `litewarden migrate up`).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let report = db.run_pending_migrations()?;
    /// println!("{} applied", report.applied.len());
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn run_pending_migrations(&self) -> Result<crate::jobs::migrations::UpReport, LiveError> {
        let migrations =
            self.database
                .migrations
                .clone()
                .ok_or_else(|| LiveError::NoMigrations {
                    database: self.name().to_string(),
                })?;
        self.run_migrations(&migrations)
    }

    /// Applies the pending migrations of the directory `dir` (for a
    /// database whose configuration names none: the shipped layout's
    /// `migrations/<name>/`).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let report = db.run_migrations_in("migrations/a")?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn run_migrations_in(
        &self,
        dir: impl AsRef<Path>,
    ) -> Result<crate::jobs::migrations::UpReport, LiveError> {
        self.run_migrations(&crate::config::Migrations {
            dir: crate::paths::from_cwd(dir.as_ref()),
            apply: crate::config::MigrationApply::Manual,
            allow_out_of_order: false,
        })
    }

    fn run_migrations(
        &self,
        migrations: &crate::config::Migrations,
    ) -> Result<crate::jobs::migrations::UpReport, LiveError> {
        let state = crate::state::StateDb::open(&self.state_dir)?;
        let request = crate::jobs::migrations::UpRequest {
            database: &self.database,
            migrations,
            backup_dir: &self.backup_dir,
            to: None,
            trigger: crate::state::Trigger::Manual,
        };
        Ok(crate::jobs::migrations::up(
            request,
            &state,
            self.clock.as_ref(),
            &mut crate::jobs::progress::Quiet,
        )?)
    }

    /// `PRAGMA optimize`, a passive checkpoint and what else the optimize
    /// job does (the seed's `optimize_for_live_updates()`).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// db.optimize()?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn optimize(&self) -> Result<crate::jobs::optimize::Report, LiveError> {
        Ok(crate::jobs::optimize::run(&self.database)?)
    }

    /// Adds each column that is missing from its (existing) table, with
    /// `ALTER TABLE ... ADD COLUMN` only (the seed's
    /// `update_schema_safely`); returns `table.column` for each one added.
    ///
    /// ```no_run
    /// use litewarden::live::NewColumn;
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// db.add_columns(&[NewColumn {
    ///     table: "pages".into(), column: "priority".into(), sql_type: "INTEGER".into(),
    ///     default: Some("0".into()), not_null: true,
    /// }])?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn add_columns(&self, columns: &[NewColumn]) -> Result<Vec<String>, LiveError> {
        let declared = columns
            .iter()
            .map(|c| open::declared_column(self.name(), c))
            .collect::<Result<Vec<_>, _>>()?;
        let _writer = self.writer()?;
        Ok(crate::db::columns::add_missing(
            &self.database.path,
            &declared,
            &self.database.pragmas.connection,
        )?)
    }

    /// Adds each column definition (`"priority INTEGER DEFAULT 0 NOT NULL"`,
    /// as after `ADD COLUMN`) to `table` unless a column of that name exists,
    /// in one transaction; SQLite parses each definition on an in-memory
    /// copy of the table first, so defaults mean what they mean in SQL.
    /// Returns `table.column` for each column added; a missing table is an
    /// error.
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let added = db.add_column_definitions("crawled_pages", &["crawl_priority INTEGER DEFAULT 1".into()])?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn add_column_definitions(
        &self,
        table: &str,
        definitions: &[String],
    ) -> Result<Vec<String>, LiveError> {
        let _writer = self.writer()?;
        Ok(crate::db::columns::add_definitions(
            &self.database.path,
            table,
            definitions,
            &self.database.pragmas.connection,
        )?)
    }
}

//! The application side: pooled access to one managed database, with the
//! same health checks, backup engine and migration engine as the daemon.
//!
//! Owns [`Manager`]: a small fixed pool of reader connections (`pool.rs`
//! says why not r2d2) and one writer connection. Every write of the process goes
//! through that writer, one at a time (an in-process queue on its lock), so
//! threads of one application never meet `SQLITE_BUSY` among themselves;
//! transactions begin `IMMEDIATE`, so a write never fails half-way on a
//! lock upgrade, and other processes (the daemon) are waited for up to
//! `busy_timeout`. Every connection gets the database's per-connection
//! pragmas from `jobs.yaml` and a prepared-statement cache.
//!
//! ```no_run
//! use litewarden::live::{Manager, Options};
//!
//! let db = Manager::open("website_crawler.db", Options::default())?;
//! db.execute_batch("CREATE TABLE IF NOT EXISTS crawled_pages (url TEXT PRIMARY KEY, status INTEGER)")?;
//! db.execute("INSERT OR REPLACE INTO crawled_pages VALUES (?1, ?2)", ("https://example.com", 200))?;
//! let urls: Vec<String> = db.query("SELECT url FROM crawled_pages", [], |row| row.get(0))?;
//! assert_eq!(urls.len(), 1);
//! # Ok::<(), litewarden::live::LiveError>(())
//! ```
//!
//! Must not: own any file but through the engines it calls (`jobs::backup`,
//! `jobs::migrations`, `jobs::health`, `db::columns`), or keep state outside
//! the [`Manager`] value.

mod engines;
mod error;
pub mod metrics;
mod open;
mod options;
mod pool;
mod slow_log;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{Connection, Params, Row, Transaction, TransactionBehavior};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::error::LiveError;
use self::metrics::{Kind, QueryFigures, Recorder, WaitFigures};
pub use self::options::*;
use self::pool::ReaderPool;
pub use self::writer::OwnedTransaction;
use self::writer::{Writer, WriterGuard};
use crate::clock::Clock;
use crate::config::{Config, Database};

/// Rows with their column names, for callers that do not know the row type
/// (the Python package).
///
/// ```no_run
/// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
/// let table = db.query_table("SELECT 1 AS one", [])?;
/// assert_eq!(table.columns, ["one"]);
/// # Ok::<(), litewarden::live::LiveError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows, each value as SQLite returned it.
    pub rows: Vec<Vec<rusqlite::types::Value>>,
}

/// A column to add when missing ([`Manager::add_columns`]): only `ADD
/// COLUMN` is ever run.
///
/// ```
/// let column = litewarden::live::NewColumn {
///     table: "crawled_pages".into(), column: "priority".into(),
///     sql_type: "INTEGER".into(), default: Some("0".into()), not_null: true,
/// };
/// assert_eq!(column.sql_type, "INTEGER");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewColumn {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// Its type, e.g. `INTEGER` or `VARCHAR(255)`.
    pub sql_type: String,
    /// Its default, as text (`0`, `pending`); numbers stay numbers.
    pub default: Option<String>,
    /// `NOT NULL` (needs a default for the rows that exist).
    pub not_null: bool,
}

/// The pool's connections at one moment.
///
/// ```no_run
/// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
/// let pool = db.metrics().pool;
/// println!("{} of {} readers in use, {} waits", pool.in_use, pool.size, pool.waits.pool_waits);
/// # Ok::<(), litewarden::live::LiveError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolFigures {
    /// Reader connections the pool may hold.
    pub size: u32,
    /// Readers checked out now.
    pub in_use: u32,
    /// Readers open and idle.
    pub idle: u32,
    /// Waits, as counted so far.
    #[serde(flatten)]
    pub waits: WaitFigures,
}

/// What [`Manager::metrics`] reports: the seed's `get_performance_metrics()`.
///
/// ```no_run
/// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
/// let metrics = db.metrics();
/// println!("{} MiB, WAL {} MiB", metrics.db_size_mb, metrics.wal_size_mb);
/// # Ok::<(), litewarden::live::LiveError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// The database's name.
    pub database: String,
    /// Size of the database file, MiB.
    pub db_size_mb: f64,
    /// Size of its `-wal`, MiB.
    pub wal_size_mb: f64,
    /// The reader pool.
    pub pool: PoolFigures,
    /// Statement counts and latency.
    pub queries: QueryFigures,
}

/// What [`Manager::backup_now`] did.
///
/// ```no_run
/// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
/// let done = db.backup_now()?;
/// println!("{} bytes, {} older backups pruned", done.backup.record.size, done.pruned);
/// # Ok::<(), litewarden::live::LiveError>(())
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct BackupDone {
    /// The new backup.
    pub backup: crate::jobs::backup::BackupReport,
    /// How many older backups the retention removed.
    pub pruned: usize,
}

/// Pooled access to one database. Cheap to share: wrap it in an `Arc`.
///
/// ```no_run
/// use std::sync::Arc;
/// let db = Arc::new(litewarden::live::Manager::open("a.db", Default::default())?);
/// let worker = { let db = Arc::clone(&db); std::thread::spawn(move || db.execute("INSERT INTO t VALUES (1)", [])) };
/// worker.join().expect("worker")?;
/// # Ok::<(), litewarden::live::LiveError>(())
/// ```
pub struct Manager {
    database: Database,
    backup_dir: PathBuf,
    state_dir: PathBuf,
    timezone: chrono_tz::Tz,
    writer: Writer,
    readers: ReaderPool,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("database", &self.database.name)
            .field("path", &self.database.path)
            .finish_non_exhaustive()
    }
}

/// The rows of `sql` on `conn`, with their column names.
fn table_of<P: Params>(conn: &Connection, sql: &str, params: P) -> rusqlite::Result<Table> {
    let mut statement = conn.prepare_cached(sql)?;
    let columns: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let width = columns.len();
    let rows = statement
        .query_map(params, |row| {
            (0..width)
                .map(|i| row.get::<_, rusqlite::types::Value>(i))
                .collect()
        })?
        .collect::<Result<_, _>>()?;
    Ok(Table { columns, rows })
}

/// The parameter names of a prepared statement, in SQLite's numbering.
fn parameter_names_of(statement: &rusqlite::Statement) -> Vec<Option<String>> {
    (1..=statement.parameter_count())
        .map(|i| statement.parameter_name(i).map(str::to_string))
        .collect()
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0
}

impl Manager {
    /// Opens (creating it when missing, in WAL mode) the database at
    /// `path` with the defaults of `jobs.yaml`.
    ///
    /// ```no_run
    /// let db = litewarden::live::Manager::open("analytics.db", Default::default())?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Self, LiveError> {
        let config = open::config_for_path(path.as_ref(), &options)?;
        let name = config
            .databases
            .keys()
            .next()
            .map(|name| name.to_string())
            .unwrap_or_default();
        Self::from_config(&config, &name, options)
    }

    /// Opens database `name` of a loaded `jobs.yaml`, with its path,
    /// pragmas, backup settings, migrations and directories, as the daemon
    /// sees them. A database litewarden managed that is now missing is not
    /// created again (the daemon's rule): the error says what to run.
    ///
    /// ```no_run
    /// use litewarden::config::{self, Environment};
    /// let loaded = config::load("jobs.yaml".as_ref(), &Environment::from_process())?;
    /// let db = litewarden::live::Manager::from_config(&loaded.config, "website_crawler", Default::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_config(config: &Config, name: &str, options: Options) -> Result<Self, LiveError> {
        let database = config
            .databases
            .get(name)
            .map(|database| Database::clone(database))
            .ok_or_else(|| LiveError::UnknownDatabase {
                name: name.to_string(),
                known: config.databases.keys().map(|n| n.to_string()).collect(),
            })?;
        open::ensure_file(config, &database, options.clock.as_ref())?;
        let writer = open::writer(&database, options.statement_cache)?;
        let readers = ReaderPool::open(&database, &options)?;
        Ok(Self {
            backup_dir: config.settings.backup_dir.clone(),
            state_dir: config.settings.state_dir.clone(),
            timezone: config.settings.timezone,
            database,
            writer: Writer::new(writer),
            readers,
            recorder: Recorder::new(options.slow_query).with_slow_log(slow_log::SlowLog::start(
                name,
                config.settings.state_dir.clone(),
                Arc::clone(&options.clock),
            )),
            clock: options.clock,
        })
    }

    /// The database's name (from `jobs.yaml`, or the file's stem).
    ///
    /// ```no_run
    /// let db = litewarden::live::Manager::open("website_crawler.db", Default::default())?;
    /// assert_eq!(db.name(), "website_crawler");
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn name(&self) -> &str {
        self.database.name.as_str()
    }

    /// The database file (absolute).
    ///
    /// ```no_run
    /// let db = litewarden::live::Manager::open("website_crawler.db", Default::default())?;
    /// assert!(db.path().is_absolute());
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.database.path
    }

    /// Whether the configuration names a migrations directory.
    ///
    /// ```no_run
    /// let db = litewarden::live::Manager::open("website_crawler.db", Default::default())?;
    /// assert!(!db.has_migrations());
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn has_migrations(&self) -> bool {
        self.database.migrations.is_some()
    }

    fn sql_error<'a>(&'a self, sql: &'a str) -> impl FnOnce(rusqlite::Error) -> LiveError + 'a {
        move |source| LiveError::Sql {
            database: self.name().to_string(),
            sql: error::quote(sql),
            source,
        }
    }

    /// Runs `work` on a pooled reader and records the statement.
    fn read<T>(
        &self,
        sql: &str,
        work: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, LiveError> {
        let reader = self.readers.get(&self.recorder, self.name())?;
        let started = Instant::now();
        let result = work(&reader);
        self.recorder
            .statement(Kind::Read, sql, started.elapsed(), result.is_ok());
        result.map_err(self.sql_error(sql))
    }

    /// The writer connection, waiting for this process's other writers
    /// (and up to `busy_timeout` for an [`OwnedTransaction`]).
    fn writer(&self) -> Result<WriterGuard<'_>, LiveError> {
        self.writer.lock(
            &self.recorder,
            self.database.pragmas.connection.busy_timeout,
            self.name(),
        )
    }

    fn writer_slot(&self) -> &Writer {
        &self.writer
    }

    fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Begins an `IMMEDIATE` transaction that keeps the writer until it
    /// commits, rolls back or is dropped; other writes wait for it.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// let db = Arc::new(litewarden::live::Manager::open("a.db", Default::default())?);
    /// let tx = litewarden::live::Manager::begin(&db)?;
    /// tx.execute("UPDATE pages SET status = 200", [])?;
    /// tx.commit()?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn begin(manager: &Arc<Self>) -> Result<OwnedTransaction, LiveError> {
        OwnedTransaction::begin(manager)
    }

    /// Runs `work` on the writer and records the statement.
    fn write<T>(
        &self,
        sql: &str,
        work: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, LiveError> {
        let mut writer = self.writer()?;
        let started = Instant::now();
        let result = work(&mut writer);
        self.recorder
            .statement(Kind::Write, sql, started.elapsed(), result.is_ok());
        result.map_err(self.sql_error(sql))
    }

    /// Runs a query on a pooled reader and maps each row with `map`.
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let ids: Vec<i64> = db.query("SELECT id FROM pages WHERE status = ?1", [200], |row| row.get(0))?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn query<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        mut map: impl FnMut(&Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, LiveError> {
        self.read(sql, |conn| {
            let mut statement = conn.prepare_cached(sql)?;
            let rows = statement.query_map(params, |row| map(row))?;
            rows.collect()
        })
    }

    /// The first row of a query; an error when there is none.
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let pages: i64 = db.query_row("SELECT count(*) FROM pages", [], |row| row.get(0))?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn query_row<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnOnce(&Row) -> rusqlite::Result<T>,
    ) -> Result<T, LiveError> {
        self.read(sql, |conn| conn.prepare_cached(sql)?.query_row(params, map))
    }

    /// Runs a query and deserializes each row (columns by name) into `T`.
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize)]
    /// struct Page { url: String, status: Option<i64> }
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let pages: Vec<Page> = db.query_as("SELECT url, status FROM pages", [])?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn query_as<T: DeserializeOwned, P: Params>(
        &self,
        sql: &str,
        params: P,
    ) -> Result<Vec<T>, LiveError> {
        let table = self.query_table(sql, params)?;
        table
            .rows
            .into_iter()
            .map(|row| {
                let object: serde_json::Map<String, serde_json::Value> = table
                    .columns
                    .iter()
                    .cloned()
                    .zip(row.into_iter().map(error::json_value))
                    .collect();
                serde_json::from_value(serde_json::Value::Object(object)).map_err(|source| {
                    LiveError::Decode {
                        database: self.name().to_string(),
                        sql: error::quote(sql),
                        source,
                    }
                })
            })
            .collect()
    }

    /// Runs a query and returns its column names and raw values.
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let table = db.query_table("SELECT * FROM pages", [])?;
    /// println!("{:?}: {} rows", table.columns, table.rows.len());
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn query_table<P: Params>(&self, sql: &str, params: P) -> Result<Table, LiveError> {
        self.read(sql, |conn| table_of(conn, sql, params))
    }

    /// Runs one statement that changes the database on the writer; returns
    /// the number of rows it changed (the seed's `db_update`).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let changed = db.execute("UPDATE pages SET status = ?1 WHERE url = ?2", (404, "https://example.com/gone"))?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, LiveError> {
        let mut left_open = false;
        let changed = self.write(sql, |conn| {
            let changed = conn.prepare_cached(sql)?.execute(params)?;
            if !conn.is_autocommit() {
                left_open = true;
                conn.execute_batch("ROLLBACK")?;
            }
            Ok(changed)
        })?;
        if left_open {
            return Err(LiveError::TransactionLeftOpen {
                database: self.name().to_string(),
                sql: error::quote(sql),
            });
        }
        Ok(changed)
    }

    /// The names of `sql`'s parameters in SQLite's numbering (`None` for a
    /// bare `?`), so a caller holding named values can check that each one
    /// is given (Python's `sqlite3` raises for a missing one).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let names = db.parameter_names("SELECT * FROM pages WHERE url = :url AND status = ?")?;
    /// assert_eq!(names, [Some(":url".to_string()), None]);
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn parameter_names(&self, sql: &str) -> Result<Vec<Option<String>>, LiveError> {
        let reader = self.readers.get(&self.recorder, self.name())?;
        let statement = reader.prepare_cached(sql).map_err(self.sql_error(sql))?;
        Ok(parameter_names_of(&statement))
    }

    /// Runs statements separated by `;` on the writer, in one `IMMEDIATE`
    /// transaction.
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// db.execute_batch("CREATE TABLE IF NOT EXISTS t (x); CREATE INDEX IF NOT EXISTS t_x ON t (x);")?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn execute_batch(&self, sql: &str) -> Result<(), LiveError> {
        self.write(sql, |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.commit()
        })
    }

    /// Runs `work` in one `IMMEDIATE` transaction on the writer: committed
    /// when it returns `Ok`, rolled back when it returns `Err` or panics
    /// (the panic goes on; the manager stays usable).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// db.transaction(|tx| {
    ///     tx.execute("INSERT INTO pages (url) VALUES (?1)", ["https://example.com/a"])?;
    ///     tx.execute("UPDATE stats SET pages = pages + 1", [])?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn transaction<T>(
        &self,
        work: impl FnOnce(&Transaction) -> Result<T, LiveError>,
    ) -> Result<T, LiveError> {
        let mut writer = self.writer()?;
        let started = Instant::now();
        let name = self.name().to_string();
        let begin_error = |source| LiveError::Sql {
            database: name.clone(),
            sql: "BEGIN IMMEDIATE".into(),
            source,
        };
        let tx = match writer.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(source) => {
                self.recorder
                    .statement(Kind::Write, "BEGIN IMMEDIATE", started.elapsed(), false);
                return Err(begin_error(source));
            }
        };
        let result = work(&tx).and_then(|value| {
            tx.commit().map_err(|source| LiveError::Sql {
                database: name.clone(),
                sql: "COMMIT".into(),
                source,
            })?;
            Ok(value)
        });
        self.recorder.statement(
            Kind::Write,
            "transaction",
            started.elapsed(),
            result.is_ok(),
        );
        result
    }

    /// Runs `sql` once per item of `rows` with a cached statement, all in
    /// one `IMMEDIATE` transaction; returns the rows changed.
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// let urls = ["https://a.example", "https://b.example"];
    /// db.insert_many("INSERT INTO pages (url) VALUES (?1)", urls.iter().map(|u| [u]))?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn insert_many<P: Params>(
        &self,
        sql: &str,
        rows: impl IntoIterator<Item = P>,
    ) -> Result<usize, LiveError> {
        self.write(sql, |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut changed = 0;
            {
                let mut statement = tx.prepare_cached(sql)?;
                for params in rows {
                    changed += statement.execute(params)?;
                }
            }
            tx.commit()?;
            Ok(changed)
        })
    }

    /// Whether `sql` only reads (SQLite's own verdict), so a caller that
    /// does not know can route it ([`Manager::query_table`] or
    /// [`Manager::execute`]).
    ///
    /// ```no_run
    /// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
    /// assert!(db.is_read_only("SELECT 1")?);
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn is_read_only(&self, sql: &str) -> Result<bool, LiveError> {
        let reader = self.readers.get(&self.recorder, self.name())?;
        let statement = reader.prepare_cached(sql).map_err(self.sql_error(sql))?;
        Ok(statement.readonly())
    }
}

#[cfg(test)]
mod tests;

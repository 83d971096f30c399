//! The writer of a [`super::Manager`]: the one connection every write of the
//! process takes in turn, and [`OwnedTransaction`], a transaction that keeps
//! it across calls (the Python package's `with db.transaction() as tx:`).
//!
//! Owns that connection. While an owned transaction has it out, other
//! writes wait for it to come back, up to the database's `busy_timeout`,
//! then fail with [`LiveError::WriterHeld`] instead of waiting forever (a
//! thread that opened a transaction and then writes outside it would
//! otherwise wait for itself).

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Params};

use super::metrics::{Kind, Recorder};
use super::{LiveError, Manager, Table};

/// The writer connection and the signal that it came back.
pub(super) struct Writer {
    slot: Mutex<Option<Connection>>,
    returned: Condvar,
}

/// The writer connection, held for one write.
pub(super) struct WriterGuard<'a> {
    guard: MutexGuard<'a, Option<Connection>>,
}

impl Deref for WriterGuard<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self.guard.as_ref() {
            Some(conn) => conn,
            None => unreachable!("a guard is handed out only while the connection is in"),
        }
    }
}

impl DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self.guard.as_mut() {
            Some(conn) => conn,
            None => unreachable!("a guard is handed out only while the connection is in"),
        }
    }
}

impl Writer {
    pub(super) fn new(conn: Connection) -> Self {
        Self {
            slot: Mutex::new(Some(conn)),
            returned: Condvar::new(),
        }
    }

    /// The connection, waiting for this process's other writers, and up to
    /// `timeout` for an owned transaction to give it back. A writer that
    /// panicked left no transaction open (rusqlite rolls back on unwind),
    /// so a poisoned lock is taken over as it is.
    pub(super) fn lock(
        &self,
        recorder: &Recorder,
        timeout: Duration,
        database: &str,
    ) -> Result<WriterGuard<'_>, LiveError> {
        let mut guard = match self.slot.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                recorder.writer_wait();
                self.slot.lock().unwrap_or_else(|e| e.into_inner())
            }
        };
        let started = Instant::now();
        if guard.is_none() {
            recorder.writer_wait();
        }
        while guard.is_none() {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(LiveError::WriterHeld {
                    database: database.to_string(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            guard = self
                .returned
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some(conn) = guard.as_ref().filter(|conn| !conn.is_autocommit()) {
            let _ = conn.execute_batch("ROLLBACK");
        }
        Ok(WriterGuard { guard })
    }

    fn give_back(&self, conn: Connection) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
        self.returned.notify_one();
    }
}

/// A transaction that holds the writer across calls: other writes of the
/// process wait until it commits, rolls back or is dropped (which rolls
/// back). Its reads see its own writes.
///
/// ```no_run
/// use std::sync::Arc;
/// let db = Arc::new(litewarden::live::Manager::open("a.db", Default::default())?);
/// let tx = litewarden::live::Manager::begin(&db)?;
/// tx.execute("INSERT INTO pages (url) VALUES (?1)", ["https://example.com"])?;
/// let pending = tx.query_table("SELECT count(*) FROM pages", [])?;
/// tx.commit()?;
/// # Ok::<(), litewarden::live::LiveError>(())
/// ```
pub struct OwnedTransaction {
    manager: Arc<Manager>,
    conn: Option<Connection>,
    started: Instant,
}

impl std::fmt::Debug for OwnedTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("OwnedTransaction")
            .field("database", &self.manager.name())
            .finish_non_exhaustive()
    }
}

impl OwnedTransaction {
    /// Takes the writer out of `manager` and begins `IMMEDIATE` on it.
    pub(super) fn begin(manager: &Arc<Manager>) -> Result<Self, LiveError> {
        let conn = {
            let mut guard = manager.writer()?;
            guard.guard.take()
        };
        let Some(conn) = conn else {
            unreachable!("the writer guard holds the connection")
        };
        let mut tx = Self {
            manager: Arc::clone(manager),
            conn: Some(conn),
            started: Instant::now(),
        };
        if let Err(source) = tx.conn().execute_batch("BEGIN IMMEDIATE") {
            tx.finish(false);
            return Err(LiveError::Sql {
                database: manager.name().to_string(),
                sql: "BEGIN IMMEDIATE".into(),
                source,
            });
        }
        Ok(tx)
    }

    fn conn(&self) -> &Connection {
        match self.conn.as_ref() {
            Some(conn) => conn,
            None => unreachable!("the connection is out until the transaction ends"),
        }
    }

    fn recorded<T>(&self, sql: &str, result: rusqlite::Result<T>) -> Result<T, LiveError> {
        self.manager
            .recorder()
            .statement(Kind::Write, sql, Duration::ZERO, result.is_ok());
        result.map_err(|source| LiveError::Sql {
            database: self.manager.name().to_string(),
            sql: super::error::quote(sql),
            source,
        })
    }

    /// Runs one statement in the transaction; returns the rows it changed.
    ///
    /// ```no_run
    /// # let db = std::sync::Arc::new(litewarden::live::Manager::open("a.db", Default::default())?);
    /// let tx = litewarden::live::Manager::begin(&db)?;
    /// tx.execute("DELETE FROM pages WHERE status = ?1", [404])?;
    /// tx.commit()?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, LiveError> {
        let result = self
            .conn()
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(params));
        self.recorded(sql, result)
    }

    /// The names of `sql`'s parameters, as [`Manager::parameter_names`]
    /// (prepared in the transaction, so it sees the tables it created).
    ///
    /// ```no_run
    /// # let db = std::sync::Arc::new(litewarden::live::Manager::open("a.db", Default::default())?);
    /// let tx = litewarden::live::Manager::begin(&db)?;
    /// assert_eq!(tx.parameter_names("SELECT :a")?, [Some(":a".to_string())]);
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn parameter_names(&self, sql: &str) -> Result<Vec<Option<String>>, LiveError> {
        self.conn()
            .prepare_cached(sql)
            .map(|statement| super::parameter_names_of(&statement))
            .map_err(|source| LiveError::Sql {
                database: self.manager.name().to_string(),
                sql: super::error::quote(sql),
                source,
            })
    }

    /// Runs a query in the transaction (it sees the transaction's writes).
    ///
    /// ```no_run
    /// # let db = std::sync::Arc::new(litewarden::live::Manager::open("a.db", Default::default())?);
    /// let tx = litewarden::live::Manager::begin(&db)?;
    /// let rows = tx.query_table("SELECT url FROM pages", [])?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn query_table<P: Params>(&self, sql: &str, params: P) -> Result<Table, LiveError> {
        let result = super::table_of(self.conn(), sql, params);
        self.recorded(sql, result)
    }

    /// Commits and gives the writer back.
    ///
    /// ```no_run
    /// # let db = std::sync::Arc::new(litewarden::live::Manager::open("a.db", Default::default())?);
    /// litewarden::live::Manager::begin(&db)?.commit()?;
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn commit(mut self) -> Result<(), LiveError> {
        let result = self.conn().execute_batch("COMMIT");
        let result = self.recorded("COMMIT", result);
        self.finish(result.is_ok());
        result
    }

    /// Rolls back and gives the writer back (as dropping it does).
    ///
    /// ```no_run
    /// # let db = std::sync::Arc::new(litewarden::live::Manager::open("a.db", Default::default())?);
    /// litewarden::live::Manager::begin(&db)?.rollback();
    /// # Ok::<(), litewarden::live::LiveError>(())
    /// ```
    pub fn rollback(mut self) {
        self.finish(false);
    }

    /// Gives the connection back, rolling back unless `committed`.
    fn finish(&mut self, committed: bool) {
        if let Some(conn) = self.conn.take() {
            if !committed && !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            self.manager.recorder().statement(
                Kind::Write,
                "transaction",
                self.started.elapsed(),
                committed,
            );
            self.manager.writer_slot().give_back(conn);
        }
    }
}

impl Drop for OwnedTransaction {
    fn drop(&mut self) {
        self.finish(false);
    }
}

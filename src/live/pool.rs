//! The reader pool of a [`super::Manager`]: r2d2 with r2d2_sqlite.
//!
//! r2d2 rather than a hand-written pool: it is the pool DESIGN.md chose,
//! it hands out connections without a global lock on the hot path, and its
//! `get_timeout` is the `connection_timeout` the seed had. Readers are
//! opened `query_only` (a write sent to `query` fails at once instead of
//! bypassing the writer's queue) with the database's per-connection
//! pragmas and a prepared-statement cache. A read first tries to take a
//! connection without waiting, so a wait is counted only when every reader
//! was checked out.

use std::time::Instant;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;

use super::metrics::Recorder;
use super::{LiveError, Options};
use crate::config::Database;

/// The readers of one database.
pub(super) struct ReaderPool {
    pool: Pool<SqliteConnectionManager>,
    size: u32,
}

impl ReaderPool {
    /// Opens the pool; its first reader is opened now, so a bad file fails
    /// here, the others on demand.
    pub(super) fn open(database: &Database, options: &Options) -> Result<Self, LiveError> {
        let pragmas = database.pragmas.connection;
        let path = database.path.clone();
        let cache = options.statement_cache;
        let manager = SqliteConnectionManager::file(&database.path)
            .with_flags(
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )
            .with_init(move |conn| {
                crate::db::apply_connection_pragmas(conn, &path, &pragmas).map_err(|e| {
                    rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                        Some(e.to_string()),
                    )
                })?;
                conn.pragma_update(None, "query_only", true)?;
                conn.set_prepared_statement_cache_capacity(cache);
                Ok(())
            });
        let size = options.pool_size.max(1);
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            .connection_timeout(options.connection_timeout)
            .build(manager)
            .map_err(|e| LiveError::Open {
                path: database.path.clone(),
                detail: format!("cannot open a reader: {e}"),
            })?;
        Ok(Self { pool, size })
    }

    /// A reader, waiting up to `connection_timeout` when all are out.
    pub(super) fn get(
        &self,
        recorder: &Recorder,
        database: &str,
    ) -> Result<PooledConnection<SqliteConnectionManager>, LiveError> {
        if let Some(reader) = self.pool.try_get() {
            return Ok(reader);
        }
        recorder.pool_wait();
        let started = Instant::now();
        self.pool.get().map_err(|_| {
            recorder.pool_timeout();
            let (in_use, _) = self.state();
            LiveError::PoolExhausted {
                database: database.to_string(),
                size: self.size,
                in_use,
                waited_ms: started.elapsed().as_millis() as u64,
            }
        })
    }

    /// (checked out, idle) readers now.
    pub(super) fn state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (
            state.connections - state.idle_connections,
            state.idle_connections,
        )
    }

    /// The most readers the pool holds.
    pub(super) fn size(&self) -> u32 {
        self.size
    }
}

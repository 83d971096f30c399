//! The reader pool of a [`super::Manager`]: a small fixed pool.
//!
//! Not r2d2 (which DESIGN.md named, and which this module used first): r2d2
//! hands out every connection through one mutex and a condition variable,
//! and with 8 reader threads on 2 cores that lock made point reads 1.4×
//! slower than raw rusqlite (benches/live.rs). Here each slot is its own
//! mutex; a thread starts at the slot it took last (a thread-local hint),
//! so threads no more numerous than the slots settle on one each and never
//! meet, and only a read that finds every slot taken touches the shared
//! wait lock. Readers are opened on first use, read-only
//! (`SQLITE_OPEN_READONLY`, so a write sent to `query` fails at once instead
//! of bypassing the writer's queue, and no `PRAGMA query_only=0` makes a
//! reader writable) and `query_only`, with the database's per-connection
//! pragmas and a prepared-statement cache.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::metrics::Recorder;
use super::{LiveError, Options};
use crate::config::{ConnectionPragmas, Database};

/// How long a waiting read sleeps before it looks at the slots again (a
/// release between its look and its sleep would otherwise go unnoticed).
const RESCAN: Duration = Duration::from_millis(2);

thread_local! {
    /// The slot this thread took last: only where a search starts, never
    /// which slot a thread may use (a hint, like a CPU cache).
    static LAST_SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The readers of one database.
pub(super) struct ReaderPool {
    slots: Vec<Mutex<Option<Connection>>>,
    path: std::path::PathBuf,
    pragmas: ConnectionPragmas,
    statement_cache: usize,
    timeout: Duration,
    waiters: AtomicU32,
    wait_lock: Mutex<()>,
    released: Condvar,
    hasher: std::collections::hash_map::RandomState,
}

/// A reader checked out of the pool; back in it when dropped.
pub(super) struct Reader<'a> {
    /// Always `Some` until dropped.
    guard: Option<MutexGuard<'a, Option<Connection>>>,
    pool: &'a ReaderPool,
}

impl Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self.guard.as_ref().and_then(|guard| guard.as_ref()) {
            Some(conn) => conn,
            None => unreachable!("a reader is handed out only once its connection is open"),
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        if self.pool.waiters.load(Ordering::Acquire) > 0 {
            self.pool.released.notify_one();
        }
    }
}

impl ReaderPool {
    /// The pool, with its first reader opened now so a bad file fails
    /// here; the others open on demand.
    pub(super) fn open(database: &Database, options: &Options) -> Result<Self, LiveError> {
        let size = options.pool_size.max(1) as usize;
        let pool = Self {
            slots: (0..size).map(|_| Mutex::new(None)).collect(),
            path: database.path.clone(),
            pragmas: database.pragmas.connection,
            statement_cache: options.statement_cache,
            timeout: options.connection_timeout,
            waiters: AtomicU32::new(0),
            wait_lock: Mutex::new(()),
            released: Condvar::new(),
            hasher: std::collections::hash_map::RandomState::new(),
        };
        let first = pool.slots[0].lock().unwrap_or_else(|e| e.into_inner());
        drop(pool.ready(first).map_err(|e| LiveError::Open {
            path: database.path.clone(),
            detail: format!("cannot open a reader: {e}"),
        })?);
        Ok(pool)
    }

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        crate::db::apply_connection_pragmas(&conn, &self.path, &self.pragmas).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(e.to_string()),
            )
        })?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(self.statement_cache);
        Ok(conn)
    }

    /// `guard`'s slot as a reader, opening its connection when needed.
    fn ready<'a>(
        &'a self,
        mut guard: MutexGuard<'a, Option<Connection>>,
    ) -> Result<Reader<'a>, rusqlite::Error> {
        if guard.is_none() {
            *guard = Some(self.connect()?);
        }
        Ok(Reader {
            guard: Some(guard),
            pool: self,
        })
    }

    /// A free slot, starting at the one this thread took last (so threads
    /// settle on slots of their own, as threads with a connection each do),
    /// or at the slot its id hashes to.
    fn try_take(&self) -> Option<MutexGuard<'_, Option<Connection>>> {
        let start = LAST_SLOT.with(Cell::get).unwrap_or_else(|| {
            let mut hasher = self.hasher.build_hasher();
            std::hash::Hash::hash(&std::thread::current().id(), &mut hasher);
            hasher.finish() as usize
        });
        (0..self.slots.len()).find_map(|i| {
            let index = (start + i) % self.slots.len();
            let guard = match self.slots[index].try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            };
            LAST_SLOT.with(|last| last.set(Some(index)));
            Some(guard)
        })
    }

    /// A reader, waiting up to `connection_timeout` when all are out.
    pub(super) fn get(&self, recorder: &Recorder, database: &str) -> Result<Reader<'_>, LiveError> {
        let open_error = |source| LiveError::Sql {
            database: database.to_string(),
            sql: "(opening a reader)".into(),
            source,
        };
        if let Some(guard) = self.try_take() {
            return self.ready(guard).map_err(open_error);
        }
        recorder.pool_wait();
        let started = Instant::now();
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let taken = loop {
            if let Some(guard) = self.try_take() {
                break Some(guard);
            }
            let left = self.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                break None;
            }
            let lock = self.wait_lock.lock().unwrap_or_else(|e| e.into_inner());
            let _ = self.released.wait_timeout(lock, left.min(RESCAN));
        };
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        match taken {
            Some(guard) => self.ready(guard).map_err(open_error),
            None => {
                recorder.pool_timeout();
                Err(LiveError::PoolExhausted {
                    database: database.to_string(),
                    size: self.size(),
                    in_use: self.state().0,
                    waited_ms: started.elapsed().as_millis() as u64,
                })
            }
        }
    }

    /// (checked out, idle) readers now.
    pub(super) fn state(&self) -> (u32, u32) {
        let (mut in_use, mut idle) = (0, 0);
        for slot in &self.slots {
            match slot.try_lock() {
                Ok(guard) if guard.is_some() => idle += 1,
                Ok(_) => {}
                Err(_) => in_use += 1,
            }
        }
        (in_use, idle)
    }

    /// The most readers the pool holds.
    pub(super) fn size(&self) -> u32 {
        self.slots.len() as u32
    }
}

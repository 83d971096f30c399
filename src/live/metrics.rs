//! What the application's database access costs: query counts, a latency
//! histogram, pool waits and the slowest queries.
//!
//! Owns `Recorder`, one per [`super::Manager`]: lock-free counters and a
//! log₂ histogram of microseconds (one atomic per bucket), so recording a
//! query costs a few relaxed atomic adds and never a lock; only a query
//! over the slow threshold takes the small lock of the slow-query list.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Buckets of the latency histogram: bucket `i` counts queries that took
/// under 2^i microseconds (the last one, everything longer: over a minute).
const BUCKETS: usize = 27;

/// How many slow queries are kept (the newest).
pub const SLOW_QUERIES_KEPT: usize = 32;

/// Whether a statement read or wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Through the reader pool.
    Read,
    /// Through the writer connection.
    Write,
}

/// The counters of one kind of statement, on cache lines of their own so
/// the writer never contends with the readers for them.
#[derive(Debug)]
#[repr(align(64))]
struct Lane {
    statements: AtomicU64,
    errors: AtomicU64,
    max_micros: AtomicU64,
    histogram: [AtomicU64; BUCKETS],
}

impl Lane {
    fn new() -> Self {
        Self {
            statements: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            max_micros: AtomicU64::new(0),
            histogram: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn count(&self, micros: u64, ok: bool) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        self.histogram[bucket.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        if micros > self.max_micros.load(Ordering::Relaxed) {
            self.max_micros.fetch_max(micros, Ordering::Relaxed);
        }
    }
}

/// The counters of one manager.
#[derive(Debug)]
pub(crate) struct Recorder {
    reads: Lane,
    writes: Lane,
    pool_waits: AtomicU64,
    pool_timeouts: AtomicU64,
    writer_waits: AtomicU64,
    slow_threshold: Duration,
    slow: Mutex<VecDeque<SlowQuery>>,
    slow_log: Option<super::slow_log::SlowLog>,
}

/// A statement that took longer than the slow-query threshold.
///
/// ```no_run
/// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
/// for slow in db.metrics().queries.slow_queries {
///     println!("{} ms: {}", slow.duration_ms, slow.sql);
/// }
/// # Ok::<(), litewarden::live::LiveError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowQuery {
    /// The SQL, as given.
    pub sql: String,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// Whether it read or wrote.
    pub write: bool,
}

/// Query figures at one moment.
///
/// ```no_run
/// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
/// let q = db.metrics().queries;
/// println!("{} reads, {} writes, p99 {} ms", q.reads, q.writes, q.p99_ms);
/// # Ok::<(), litewarden::live::LiveError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryFigures {
    /// Statements run through the reader pool.
    pub reads: u64,
    /// Statements run through the writer.
    pub writes: u64,
    /// Statements that failed.
    pub errors: u64,
    /// Median latency, milliseconds (upper bound of its histogram bucket).
    pub p50_ms: f64,
    /// 95th percentile, milliseconds.
    pub p95_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Longest, milliseconds.
    pub max_ms: f64,
    /// The newest statements over the slow threshold.
    pub slow_queries: Vec<SlowQuery>,
}

/// Pool waits at one moment.
///
/// ```no_run
/// # let db = litewarden::live::Manager::open("a.db", Default::default())?;
/// let waits = db.metrics().pool.waits;
/// println!("{} waits, {} timeouts", waits.pool_waits, waits.pool_timeouts);
/// # Ok::<(), litewarden::live::LiveError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WaitFigures {
    /// Reads that found every pooled connection checked out and waited.
    pub pool_waits: u64,
    /// Reads that waited longer than `connection_timeout` and failed.
    pub pool_timeouts: u64,
    /// Writes that waited for another writer of this process.
    pub writer_waits: u64,
}

impl Recorder {
    /// A recorder calling statements over `slow_threshold` slow.
    pub fn new(slow_threshold: Duration) -> Self {
        Self {
            reads: Lane::new(),
            writes: Lane::new(),
            pool_waits: AtomicU64::new(0),
            pool_timeouts: AtomicU64::new(0),
            writer_waits: AtomicU64::new(0),
            slow_threshold,
            slow: Mutex::new(VecDeque::with_capacity(SLOW_QUERIES_KEPT)),
            slow_log: None,
        }
    }

    /// Also keeps each slow statement in the state database (for
    /// `litewarden advise`).
    pub fn with_slow_log(mut self, log: super::slow_log::SlowLog) -> Self {
        self.slow_log = Some(log);
        self
    }

    /// Counts one statement of `kind` that took `took` (failed when `ok`
    /// is false).
    pub fn statement(&self, kind: Kind, sql: &str, took: Duration, ok: bool) {
        let micros = took.as_micros().min(u128::from(u64::MAX)) as u64;
        match kind {
            Kind::Read => self.reads.count(micros, ok),
            Kind::Write => self.writes.count(micros, ok),
        }
        if took >= self.slow_threshold {
            let mut slow = self.slow.lock().unwrap_or_else(|e| e.into_inner());
            if slow.len() == SLOW_QUERIES_KEPT {
                slow.pop_front();
            }
            if let Some(log) = self
                .slow_log
                .as_ref()
                .filter(|_| ok && sql != "transaction")
            {
                log.record(sql, took.as_secs_f64() * 1000.0);
            }
            slow.push_back(SlowQuery {
                sql: sql.to_string(),
                duration_ms: took.as_secs_f64() * 1000.0,
                write: kind == Kind::Write,
            });
        }
    }

    /// Counts a read that had to wait for a pooled connection.
    pub fn pool_wait(&self) {
        self.pool_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a read that gave up waiting.
    pub fn pool_timeout(&self) {
        self.pool_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a write that waited for another writer.
    pub fn writer_wait(&self) {
        self.writer_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// The pool waits so far.
    pub fn waits(&self) -> WaitFigures {
        WaitFigures {
            pool_waits: self.pool_waits.load(Ordering::Relaxed),
            pool_timeouts: self.pool_timeouts.load(Ordering::Relaxed),
            writer_waits: self.writer_waits.load(Ordering::Relaxed),
        }
    }

    /// The query figures so far.
    pub fn queries(&self) -> QueryFigures {
        let counts: Vec<u64> = self
            .reads
            .histogram
            .iter()
            .zip(&self.writes.histogram)
            .map(|(r, w)| r.load(Ordering::Relaxed) + w.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let percentile = |q: f64| -> f64 {
            if total == 0 {
                return 0.0;
            }
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (bucket, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return (1u64 << bucket) as f64 / 1000.0;
                }
            }
            f64::INFINITY
        };
        QueryFigures {
            reads: self.reads.statements.load(Ordering::Relaxed),
            writes: self.writes.statements.load(Ordering::Relaxed),
            errors: self.reads.errors.load(Ordering::Relaxed)
                + self.writes.errors.load(Ordering::Relaxed),
            p50_ms: percentile(0.50),
            p95_ms: percentile(0.95),
            p99_ms: percentile(0.99),
            max_ms: self
                .reads
                .max_micros
                .load(Ordering::Relaxed)
                .max(self.writes.max_micros.load(Ordering::Relaxed)) as f64
                / 1000.0,
            slow_queries: self
                .slow
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram_and_slow_queries_keep_their_sql() {
        let recorder = Recorder::new(Duration::from_millis(50));
        for _ in 0..98 {
            recorder.statement(Kind::Read, "SELECT 1", Duration::from_micros(100), true);
        }
        recorder.statement(
            Kind::Write,
            "UPDATE t SET x = 1",
            Duration::from_millis(80),
            false,
        );
        recorder.statement(Kind::Read, "SELECT 2", Duration::from_millis(3), true);
        let figures = recorder.queries();
        assert_eq!((figures.reads, figures.writes, figures.errors), (99, 1, 1));
        assert_eq!(
            figures.p50_ms, 0.128,
            "100 µs falls in the bucket under 128 µs"
        );
        assert!(
            figures.p99_ms >= 3.0 && figures.p99_ms <= 4.1,
            "{figures:?}"
        );
        assert_eq!(figures.max_ms, 80.0);
        assert_eq!(figures.slow_queries.len(), 1);
        assert_eq!(figures.slow_queries[0].sql, "UPDATE t SET x = 1");
        assert!(figures.slow_queries[0].write);
    }

    #[test]
    fn only_the_newest_slow_queries_are_kept() {
        let recorder = Recorder::new(Duration::ZERO);
        for i in 0..SLOW_QUERIES_KEPT + 5 {
            recorder.statement(
                Kind::Read,
                &format!("SELECT {i}"),
                Duration::from_micros(1),
                true,
            );
        }
        let slow = recorder.queries().slow_queries;
        assert_eq!(slow.len(), SLOW_QUERIES_KEPT);
        assert_eq!(slow[0].sql, "SELECT 5");
    }
}

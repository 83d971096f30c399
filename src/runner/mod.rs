//! The runner: one bounded pool of worker threads that runs every job of
//! the daemon (scheduled backups, health, maintenance, drills, and the
//! changes a reload plans), keyed by database.
//!
//! The pool has `settings.workers` threads (default twice the cores),
//! started as work needs them. Work waits in a [`Queue`] with one line per
//! database: a database's work runs in the order it was submitted and never
//! two at once, while other databases run in parallel; across databases the
//! more urgent [`Priority`] and then the longest-waiting goes first. At most
//! `settings.max_parallel_jobs` tasks run at once, for every kind, converge
//! included: this is the one place that limit is kept.
//!
//! A task found stuck (past its timeout) is set aside: its worker no longer
//! counts against the limits and a fresh worker takes its place (at most
//! [`STUCK_SPARES`] set aside at once), so a database held EXCLUSIVE by
//! another process delays no other database. Long-running tasks (a
//! replication capture lives as long as the daemon) run apart, on their own
//! bounded set ([`LongTasks`], at most [`LONG_TASKS`]): cancellable, never
//! holding a worker or their database's line. The runner is owned by the
//! reconciler's thread; workers talk back only through the report
//! callback, so nothing is shared under a lock.

mod long;
mod queue;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use chrono::{DateTime, Utc};

pub use self::long::{Cancel, LongTaskError, LongTasks};
pub use self::queue::{Priority, Queue};
pub use self::worker::{Finished, Report, Task, Work};
use crate::clock::Clock;
use crate::config::{DbName, JobKind};

/// Stuck workers set aside (replaced by fresh ones) at most at once; past
/// that, stuck tasks hold their slots.
pub const STUCK_SPARES: usize = 8;

/// Long-running tasks at most at once: one capture per replicated
/// database, so as many as the databases one daemon manages.
pub const LONG_TASKS: usize = 10_000;

/// The default pool size: twice the cores.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// A job: its database and kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey {
    /// The database.
    pub database: DbName,
    /// The job kind.
    pub kind: JobKind,
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", self.database, self.kind.as_str())
    }
}

/// A task a worker took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    /// Which job.
    pub key: JobKey,
    /// The run's sequence number.
    pub run_id: u64,
    /// What caused it.
    pub trigger: &'static str,
    /// When the worker took it.
    pub started: DateTime<Utc>,
}

/// One worker thread as the runner sees it.
struct Worker {
    work: Sender<Work>,
    /// The database whose task it runs.
    busy: Option<DbName>,
    /// Its task was found stuck: it no longer counts against the limits.
    set_aside: bool,
}

/// The pool, its queue and the limits.
pub struct Runner {
    queue: Queue<Work>,
    workers: Vec<Worker>,
    size: usize,
    limit: usize,
    spawned: usize,
    state_dir: PathBuf,
    clock: Arc<dyn Clock>,
    report: Report,
    long: LongTasks,
}

impl Runner {
    /// A pool of at most `size` workers (at least 1) recording into the
    /// state database in `state_dir`, running at most `limit` tasks at once,
    /// reporting each finished run to `report`.
    pub fn new(
        size: usize,
        limit: usize,
        state_dir: PathBuf,
        clock: Arc<dyn Clock>,
        report: Report,
    ) -> Runner {
        Runner {
            queue: Queue::default(),
            workers: Vec::new(),
            size: size.max(1),
            limit: limit.max(1),
            spawned: 0,
            state_dir,
            clock,
            report,
            long: LongTasks::new(LONG_TASKS),
        }
    }

    /// Starts a long-running task for `key` beside the pool.
    pub fn start_long(
        &mut self,
        key: JobKey,
        task: impl FnOnce(Cancel) + Send + 'static,
    ) -> Result<(), LongTaskError> {
        self.long.start(key, task)
    }

    /// Asks the long-running task `key` to end; whether it ran.
    pub fn cancel_long(&mut self, key: &JobKey) -> bool {
        self.long.cancel(key)
    }

    /// Asks every long-running task to end and waits up to `grace`;
    /// returns how many still run.
    pub fn stop_long(&mut self, grace: std::time::Duration) -> usize {
        self.long.stop_all(grace)
    }

    /// Applies reloaded limits (`settings.workers`, `max_parallel_jobs`);
    /// idle workers beyond the new size end.
    pub fn resize(&mut self, size: usize, limit: usize) {
        self.size = size.max(1);
        self.limit = limit.max(1);
        while self.counted_workers() > self.size {
            let Some(idle) = self.workers.iter().position(|w| w.busy.is_none()) else {
                break;
            };
            self.workers.swap_remove(idle);
        }
    }

    /// Queues `work` behind its database's earlier work.
    pub fn submit(&mut self, work: Work) {
        let database = work.key.database.clone();
        let priority = work.task.priority();
        self.queue.submit(&database, priority, work);
    }

    /// Hands waiting work to free workers, within the limits; returns what
    /// started. Work whose worker cannot be started is reported as failed.
    pub fn dispatch(&mut self) -> Vec<Dispatched> {
        let mut started = Vec::new();
        while self.queue.can_take(self.limit) {
            let Some(worker) = self.free_worker() else {
                break;
            };
            let Some((database, mut work)) = self.queue.take(self.limit) else {
                break;
            };
            work.started = self.clock.now();
            let dispatched = Dispatched {
                key: work.key.clone(),
                run_id: work.run_id,
                trigger: work.task.trigger(),
                started: work.started,
            };
            match self.workers[worker].work.send(work) {
                Ok(()) => {
                    self.workers[worker].busy = Some(database);
                    started.push(dispatched);
                }
                Err(lost) => {
                    self.workers.swap_remove(worker);
                    self.queue.done(&database);
                    self.fail(lost.0, "the worker thread is gone");
                }
            }
        }
        started
    }

    /// `database`'s task finished: its worker is free again (or ends, when
    /// the pool has more workers than its size: it was set aside, or the
    /// size shrank), its next work may run.
    pub fn done(&mut self, database: &DbName) {
        self.queue.done(database);
        let Some(index) = self
            .workers
            .iter()
            .position(|w| w.busy.as_ref() == Some(database))
        else {
            return;
        };
        let worker = &mut self.workers[index];
        worker.busy = None;
        worker.set_aside = false;
        if self.counted_workers() > self.size {
            self.workers.swap_remove(index);
        }
    }

    /// `database`'s task is past its timeout: its worker stops counting
    /// against the limits, so the rest of the pool keeps working.
    pub fn set_aside(&mut self, database: &DbName) {
        let aside = self.workers.iter().filter(|w| w.set_aside).count();
        if aside >= STUCK_SPARES {
            return;
        }
        if let Some(worker) = self
            .workers
            .iter_mut()
            .find(|w| w.busy.as_ref() == Some(database))
        {
            worker.set_aside = true;
            self.queue.set_aside(database);
        }
    }

    /// Removes every waiting task (running ones go on) and returns them.
    pub fn cancel_waiting(&mut self) -> Vec<Work> {
        self.queue.drain()
    }

    /// Tasks running now, set-aside ones included.
    pub fn in_flight(&self) -> usize {
        self.workers.iter().filter(|w| w.busy.is_some()).count()
    }

    /// Workers that count against the pool size.
    fn counted_workers(&self) -> usize {
        self.workers.iter().filter(|w| !w.set_aside).count()
    }

    /// An idle worker, started when none is idle and the pool has room.
    fn free_worker(&mut self) -> Option<usize> {
        if let Some(idle) = self.workers.iter().position(|w| w.busy.is_none()) {
            return Some(idle);
        }
        if self.counted_workers() >= self.size {
            return None;
        }
        self.spawned += 1;
        match worker::spawn(
            self.spawned,
            self.state_dir.clone(),
            Arc::clone(&self.report),
            Arc::clone(&self.clock),
        ) {
            Ok(work) => {
                self.workers.push(Worker {
                    work,
                    busy: None,
                    set_aside: false,
                });
                Some(self.workers.len() - 1)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start a worker thread");
                None
            }
        }
    }

    /// Reports `work` as failed without running it.
    fn fail(&self, work: Work, why: &str) {
        (self.report)(Finished {
            key: work.key,
            started: work.started,
            run_id: work.run_id,
            result: Err(crate::jobs::outcome::JobFailure::new(
                crate::jobs::outcome::FailureKind::Other,
                why,
            )),
            report: None,
        });
    }
}

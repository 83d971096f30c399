//! Long-running tasks: work that lasts as long as the daemon does (the
//! capture of continuous replication holds a read transaction of its
//! database for its whole life), kept apart from the pool.
//!
//! Owns [`LongTasks`]: a bounded set of threads, one per task, keyed by
//! job. A long task never takes a worker of the pool nor a place in its
//! database's line, so the database's backups, health runs and changes go
//! on beside it; it gets a [`Cancel`] and ends when asked (a reload that
//! removes it, shutdown), and shutdown waits for it up to the grace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::JobKey;

/// Asks a long task to end; the task checks it between steps.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Whether the task was asked to end.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Why a long task was not started.
#[derive(Debug, thiserror::Error)]
pub enum LongTaskError {
    /// The set is full.
    #[error(
        "{key}: cannot start: {limit} long-running tasks already run (the most this daemon runs at once)"
    )]
    Full {
        /// The task.
        key: JobKey,
        /// The bound.
        limit: usize,
    },
    /// That task already runs.
    #[error("{0}: already running")]
    AlreadyRunning(JobKey),
    /// The thread could not be started.
    #[error("{key}: cannot start its thread: {source}")]
    Spawn {
        /// The task.
        key: JobKey,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

struct Running {
    cancel: Cancel,
    thread: JoinHandle<()>,
}

/// The long-running tasks, at most `limit` at once.
pub struct LongTasks {
    limit: usize,
    running: BTreeMap<JobKey, Running>,
}

impl LongTasks {
    /// An empty set that runs at most `limit` tasks (at least 1).
    pub fn new(limit: usize) -> Self {
        LongTasks {
            limit: limit.max(1),
            running: BTreeMap::new(),
        }
    }

    /// Starts `task` as `key` on a thread of its own.
    pub fn start(
        &mut self,
        key: JobKey,
        task: impl FnOnce(Cancel) + Send + 'static,
    ) -> Result<(), LongTaskError> {
        self.reap();
        if self.running.contains_key(&key) {
            return Err(LongTaskError::AlreadyRunning(key));
        }
        if self.running.len() >= self.limit {
            return Err(LongTaskError::Full {
                key,
                limit: self.limit,
            });
        }
        let cancel = Cancel::default();
        let given = cancel.clone();
        let thread = std::thread::Builder::new()
            .name(format!("long-{}", key.database))
            .spawn(move || task(given));
        match thread {
            Ok(thread) => {
                self.running.insert(key, Running { cancel, thread });
                Ok(())
            }
            Err(source) => Err(LongTaskError::Spawn { key, source }),
        }
    }

    /// Asks the task `key` to end (it is dropped from the set; its thread
    /// ends on its own). Returns whether it ran.
    pub fn cancel(&mut self, key: &JobKey) -> bool {
        match self.running.remove(key) {
            Some(running) => {
                running.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Tasks running now (ended ones are forgotten first).
    pub fn running(&mut self) -> usize {
        self.reap();
        self.running.len()
    }

    /// Asks every task to end and waits for them up to `grace`; returns
    /// how many were still running when it ran out.
    pub fn stop_all(&mut self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        for running in self.running.values() {
            running.cancel.cancel();
        }
        while Instant::now() < deadline {
            self.reap();
            if self.running.is_empty() {
                return 0;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.reap();
        self.running.len()
    }

    /// Forgets the tasks whose thread ended.
    fn reap(&mut self) {
        let ended: Vec<JobKey> = self
            .running
            .iter()
            .filter(|(_, running)| running.thread.is_finished())
            .map(|(key, _)| key.clone())
            .collect();
        for key in ended {
            if let Some(running) = self.running.remove(&key)
                && running.thread.join().is_err()
            {
                tracing::error!(task = %key, "a long-running task panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DbName, JobKind};
    use std::sync::mpsc::channel;

    fn key(database: &str) -> JobKey {
        JobKey {
            database: DbName::new(database).unwrap(),
            kind: JobKind::Backup,
        }
    }

    /// A task that reports it started, then runs until cancelled.
    fn until_cancelled(started: std::sync::mpsc::Sender<()>) -> impl FnOnce(Cancel) + Send {
        move |cancel| {
            started.send(()).unwrap();
            while !cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn the_set_is_bounded_a_task_runs_once_and_ends_when_cancelled() {
        let mut tasks = LongTasks::new(2);
        let (started, starts) = channel();
        tasks
            .start(key("a"), until_cancelled(started.clone()))
            .unwrap();
        tasks
            .start(key("b"), until_cancelled(started.clone()))
            .unwrap();
        starts.recv().unwrap();
        starts.recv().unwrap();
        assert!(matches!(
            tasks.start(key("a"), until_cancelled(started.clone())),
            Err(LongTaskError::AlreadyRunning(_))
        ));
        assert!(matches!(
            tasks.start(key("c"), until_cancelled(started.clone())),
            Err(LongTaskError::Full { limit: 2, .. })
        ));
        assert!(tasks.cancel(&key("a")));
        assert_eq!(tasks.running(), 1);
        tasks.start(key("c"), until_cancelled(started)).unwrap();
        starts.recv().unwrap();
        assert_eq!(tasks.stop_all(Duration::from_secs(10)), 0);
        assert_eq!(tasks.running(), 0);
    }

    #[test]
    fn shutdown_waits_only_for_the_grace() {
        let mut tasks = LongTasks::new(1);
        let (release, released) = channel::<()>();
        let (started, starts) = channel();
        tasks
            .start(key("deaf"), move |_cancel| {
                started.send(()).unwrap();
                let _ = released.recv();
            })
            .unwrap();
        starts.recv().unwrap();
        assert_eq!(
            tasks.stop_all(Duration::from_millis(20)),
            1,
            "a task that ignores the cancel is left behind"
        );
        release.send(()).unwrap();
    }
}

//! The runner's queue: pure bookkeeping of which work waits, in what order,
//! and which databases have a task in flight.
//!
//! Each database has its own first-in-first-out line, so a database's work
//! runs in the order it was submitted (a database a reload creates is
//! created before its first backup). Across databases the head of every
//! line that is free to run waits in one ordered set: the most urgent
//! [`Priority`] first, then the longest-waiting. At most one task per
//! database is in flight, and at most `limit` in all (`max_parallel_jobs`)
//! but for tasks set aside as stuck. Nothing here starts a thread or reads
//! a clock, so the ordering and limit rules are tested directly.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::config::DbName;

/// How urgent a task is; the runner starts more urgent work first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Changes a reload planned (pragmas, columns, migrations): the
    /// application may be waiting for them.
    Converge,
    /// Backups: the copies every other guarantee rests on.
    Backup,
    /// Health checks, maintenance and drills.
    Maintenance,
}

/// A line position: priority, then submission order.
type Slot = (Priority, u64, DbName);

/// Waiting work of type `T`, one line per database.
#[derive(Debug)]
pub struct Queue<T> {
    lines: BTreeMap<DbName, VecDeque<(Priority, u64, T)>>,
    /// The head of every line whose database has nothing in flight.
    ready: BTreeSet<Slot>,
    /// Databases with a task in flight; `false` once set aside (stuck),
    /// no longer counted against the limit.
    in_flight: BTreeMap<DbName, bool>,
    submitted: u64,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            lines: BTreeMap::new(),
            ready: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            submitted: 0,
        }
    }
}

impl<T> Queue<T> {
    /// Adds `item` at the end of `database`'s line.
    pub fn submit(&mut self, database: &DbName, priority: Priority, item: T) {
        self.submitted += 1;
        let line = self.lines.entry(database.clone()).or_default();
        line.push_back((priority, self.submitted, item));
        if line.len() == 1 && !self.in_flight.contains_key(database) {
            self.ready
                .insert((priority, self.submitted, database.clone()));
        }
    }

    /// Takes the most urgent, longest-waiting item of a database with
    /// nothing in flight, while fewer than `limit` counted tasks are in
    /// flight, and marks that database in flight.
    pub fn take(&mut self, limit: usize) -> Option<(DbName, T)> {
        if !self.can_take(limit) {
            return None;
        }
        let (_, _, database) = self.ready.pop_first()?;
        let line = self.lines.get_mut(&database)?;
        let (_, _, item) = line.pop_front()?;
        if line.is_empty() {
            self.lines.remove(&database);
        }
        self.in_flight.insert(database.clone(), true);
        Some((database, item))
    }

    /// `database`'s task ended: its next item may run.
    pub fn done(&mut self, database: &DbName) {
        if self.in_flight.remove(database).is_none() {
            return;
        }
        if let Some((priority, seq, _)) = self.lines.get(database).and_then(VecDeque::front) {
            self.ready.insert((*priority, *seq, database.clone()));
        }
    }

    /// Removes every waiting item (in-flight tasks are not affected).
    pub fn drain(&mut self) -> Vec<T> {
        self.ready.clear();
        std::mem::take(&mut self.lines)
            .into_values()
            .flat_map(|line| line.into_iter().map(|(_, _, item)| item))
            .collect()
    }

    /// `database`'s task is stuck: it stops counting against the limit.
    pub fn set_aside(&mut self, database: &DbName) {
        if let Some(counted) = self.in_flight.get_mut(database) {
            *counted = false;
        }
    }

    /// Whether `database` has a task in flight.
    #[cfg(test)]
    pub fn is_in_flight(&self, database: &str) -> bool {
        self.in_flight.contains_key(database)
    }

    /// Tasks in flight that count against the limit.
    pub fn running(&self) -> usize {
        self.in_flight.values().filter(|counted| **counted).count()
    }

    /// How many items wait.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.lines.values().map(VecDeque::len).sum()
    }

    /// Whether [`Queue::take`] with `limit` would give an item.
    pub fn can_take(&self, limit: usize) -> bool {
        !self.ready.is_empty() && self.running() < limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> DbName {
        DbName::new(s).unwrap()
    }

    #[test]
    fn one_database_runs_in_submission_order_and_one_at_a_time() {
        let mut queue = Queue::default();
        queue.submit(&name("a"), Priority::Backup, "backup");
        queue.submit(&name("a"), Priority::Converge, "migrate");
        assert_eq!(queue.take(8), Some((name("a"), "backup")));
        assert_eq!(queue.take(8), None, "a is in flight");
        queue.done(&name("a"));
        assert_eq!(queue.take(8), Some((name("a"), "migrate")));
    }

    #[test]
    fn across_databases_urgent_work_first_then_the_longest_waiting() {
        let mut queue = Queue::default();
        queue.submit(&name("z"), Priority::Maintenance, "z-health");
        queue.submit(&name("b"), Priority::Backup, "b-backup");
        queue.submit(&name("a"), Priority::Backup, "a-backup");
        queue.submit(&name("m"), Priority::Converge, "m-apply");
        let order: Vec<_> = std::iter::from_fn(|| queue.take(8).map(|(_, item)| item)).collect();
        assert_eq!(order, ["m-apply", "b-backup", "a-backup", "z-health"]);
    }

    #[test]
    fn a_database_in_flight_holds_only_its_own_line() {
        let mut queue = Queue::default();
        queue.submit(&name("slow"), Priority::Backup, 1);
        assert_eq!(queue.take(8), Some((name("slow"), 1)));
        queue.submit(&name("slow"), Priority::Converge, 2);
        queue.submit(&name("other"), Priority::Maintenance, 3);
        assert_eq!(queue.take(8), Some((name("other"), 3)));
        assert!(!queue.can_take(8));
        assert_eq!(queue.waiting(), 1);
        queue.done(&name("slow"));
        assert_eq!(queue.take(8), Some((name("slow"), 2)));
    }

    #[test]
    fn drain_empties_the_lines_and_leaves_in_flight_alone() {
        let mut queue = Queue::default();
        queue.submit(&name("a"), Priority::Backup, 1);
        queue.submit(&name("a"), Priority::Backup, 2);
        queue.submit(&name("b"), Priority::Backup, 3);
        queue.take(8);
        let mut drained = queue.drain();
        drained.sort();
        assert_eq!(drained, [2, 3]);
        assert!(queue.is_in_flight("a"));
        queue.done(&name("a"));
        assert_eq!(queue.take(8), None);
    }

    #[test]
    fn at_most_limit_run_at_once_and_a_stuck_one_stops_counting() {
        let mut queue = Queue::default();
        for db in ["a", "b", "c"] {
            queue.submit(&name(db), Priority::Converge, db);
        }
        assert_eq!(queue.take(2), Some((name("a"), "a")));
        assert_eq!(queue.take(2), Some((name("b"), "b")));
        assert_eq!(queue.take(2), None, "converge keeps the limit too");
        queue.set_aside(&name("a"));
        assert_eq!(queue.take(2), Some((name("c"), "c")));
        assert_eq!(queue.running(), 2);
    }
}

//! Taking the databases in turn: a look at many files (headers, the
//! periodic re-observation) covers a bounded number per pass and goes
//! round, so its cost does not grow with the number of databases.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use crate::config::{Database, DbName};

/// A place in the round of databases: each call hands out the next ones.
#[derive(Debug, Default)]
pub(super) struct Turn {
    after: Option<DbName>,
}

impl Turn {
    /// The next `count` databases after the last ones handed out, wrapping
    /// around (all of them when there are no more than `count`).
    pub(super) fn next(
        &mut self,
        databases: &BTreeMap<DbName, Arc<Database>>,
        count: usize,
    ) -> BTreeSet<DbName> {
        if databases.len() <= count {
            return databases.keys().cloned().collect();
        }
        let start = self
            .after
            .as_ref()
            .map_or(Bound::Unbounded, Bound::Excluded);
        let turn: Vec<DbName> = databases
            .range::<DbName, _>((start, Bound::Unbounded))
            .chain(databases.iter())
            .map(|(name, _)| name.clone())
            .take(count)
            .collect();
        self.after = turn.last().cloned();
        turn.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_database_gets_its_turn_and_the_round_wraps() {
        let config = crate::config::parse(
            b"version: 1\ndatabases:\n  a: { path: a.db }\n  b: { path: b.db }\n  c: { path: c.db }\n  d: { path: d.db }\n  e: { path: e.db }\n",
            "jobs.yaml",
            std::path::Path::new("/x/jobs.yaml"),
            &crate::config::Environment::default(),
        )
        .unwrap()
        .0;
        let mut turn = Turn::default();
        let names = |set: BTreeSet<DbName>| set.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(names(turn.next(&config.databases, 2)), ["a", "b"]);
        assert_eq!(names(turn.next(&config.databases, 2)), ["c", "d"]);
        assert_eq!(names(turn.next(&config.databases, 2)), ["a", "e"]);
        assert_eq!(names(turn.next(&config.databases, 2)), ["b", "c"]);
        assert_eq!(names(turn.next(&config.databases, 9)).len(), 5);
    }
}

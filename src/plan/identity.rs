//! What a managed database is expected to be, and whether what is on disk
//! still fits it.
//!
//! Owns the [`Identity`] value (what litewarden last saw of a database) and
//! the pure [`discontinuity`] comparison. No I/O: `db::observe` reads an
//! identity from a file, the state database remembers one, backup manifests
//! carry one, and this module only compares two values.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A database file's identity: enough to tell "the same database, grown"
/// from "an empty or different file under the same name".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Page size in bytes.
    pub page_size: u64,
    /// Number of pages.
    pub page_count: u64,
    /// `PRAGMA application_id`.
    pub application_id: i32,
    /// `PRAGMA user_version` (the migration version litewarden mirrors).
    pub user_version: i64,
    /// The header's file-change counter.
    pub change_counter: u32,
    /// The user tables, by name.
    pub tables: BTreeSet<String>,
    /// SHA-256 of the schema's SQL, sorted.
    pub schema_sha256: String,
}

/// Pages below which a database is too small for shrinking to say anything.
const SHRINK_FLOOR_PAGES: u64 = 32;

/// Why `seen` is not a continuation of `expected`, if it is not: its
/// application_id changed, it lost tables (or all of them), or it shrank to
/// under a tenth of its pages. Growth and new tables are continuity.
pub fn discontinuity(expected: &Identity, seen: &Identity) -> Option<String> {
    if expected.application_id != seen.application_id {
        return Some(format!(
            "its application_id changed from {} to {}",
            expected.application_id, seen.application_id
        ));
    }
    if !expected.tables.is_empty() && seen.tables.is_empty() {
        return Some(format!(
            "it is empty now (it had {} table{}: {})",
            expected.tables.len(),
            if expected.tables.len() == 1 { "" } else { "s" },
            list(&expected.tables)
        ));
    }
    let lost: BTreeSet<String> = expected.tables.difference(&seen.tables).cloned().collect();
    if !lost.is_empty() {
        return Some(format!("its tables {} are gone", list(&lost)));
    }
    let bytes = |i: &Identity| i.page_count.saturating_mul(i.page_size);
    if expected.page_count >= SHRINK_FLOOR_PAGES && bytes(seen).saturating_mul(10) < bytes(expected)
    {
        return Some(format!(
            "it shrank from {} to {} bytes",
            bytes(expected),
            bytes(seen)
        ));
    }
    None
}

fn list(tables: &BTreeSet<String>) -> String {
    tables.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crawler() -> Identity {
        Identity {
            page_size: 4096,
            page_count: 1000,
            application_id: 0,
            user_version: 2,
            change_counter: 7,
            tables: ["pages".to_string(), "links".to_string()].into(),
            schema_sha256: "a".into(),
        }
    }

    #[test]
    fn growth_and_new_tables_are_the_same_database() {
        let mut grown = crawler();
        grown.page_count = 5000;
        grown.tables.insert("stats".into());
        grown.user_version = 3;
        assert_eq!(discontinuity(&crawler(), &grown), None);
    }

    #[test]
    fn an_emptied_database_is_a_discontinuity() {
        let empty = Identity {
            page_size: 4096,
            page_count: 0,
            ..Identity::default()
        };
        let why = discontinuity(&crawler(), &empty).unwrap();
        assert_eq!(why, "it is empty now (it had 2 tables: links, pages)");
    }

    #[test]
    fn a_lost_table_a_new_application_id_or_a_collapse_is_a_discontinuity() {
        let mut lost = crawler();
        lost.tables.remove("links");
        assert_eq!(
            discontinuity(&crawler(), &lost).unwrap(),
            "its tables links are gone"
        );
        let mut foreign = crawler();
        foreign.application_id = 42;
        assert!(
            discontinuity(&crawler(), &foreign)
                .unwrap()
                .contains("application_id")
        );
        let mut collapsed = crawler();
        collapsed.page_count = 50;
        assert!(
            discontinuity(&crawler(), &collapsed)
                .unwrap()
                .contains("shrank")
        );
    }

    #[test]
    fn a_small_database_shrinking_says_nothing() {
        let mut small = crawler();
        small.page_count = 10;
        let mut smaller = small.clone();
        smaller.page_count = 2;
        assert_eq!(discontinuity(&small, &smaller), None);
    }
}

//! Finding which migration version an existing database already has.
//!
//! Owns `migrate baseline --detect` and the adoption hint of `plan`: the
//! migrations are replayed one by one on an empty in-memory database, and
//! after each the schema (every table, index, view and trigger of
//! `sqlite_schema` with its SQL, whitespace and case normalised) is compared
//! with the live one. The version whose schema equals it is the match; when
//! none does, the closest (fewest differing objects) is reported with its
//! differences. Objects are also compared by name: a migration that
//! creates a table, index, view or trigger the database already has is a
//! [`Conflict`] (running it would fail "already exists"), reported with the
//! column differences of a table. Read-only on the live file.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::MigrationFile;
pub use crate::plan::adoption::{Conflict, Detection};

/// The schema objects of a database: `type name` → normalised SQL.
type Schema = BTreeMap<String, String>;

/// Replays `files` on an empty scratch database and compares each version's
/// schema with the database at `live`.
pub fn detect(live: &Path, files: &[MigrationFile]) -> Result<Detection, String> {
    crate::db::observe::roll_back_hot_journal(live);
    let live_conn = Connection::open_with_flags(live, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", crate::paths::display(live)))?;
    let wanted = schema(&live_conn)?;
    let scratch = Connection::open_in_memory().map_err(|e| e.to_string())?;
    let mut best: Option<(usize, i64, Vec<String>)> = None;
    let mut created: BTreeMap<String, i64> = BTreeMap::new();
    for file in files {
        scratch
            .execute_batch(&file.sql)
            .map_err(|e| format!("{file}: {e} (replaying it on an empty database)"))?;
        let replayed = schema(&scratch)?;
        for object in replayed.keys().filter(|o| wanted.contains_key(*o)) {
            created.entry(object.clone()).or_insert(file.version);
        }
        let differences = compare(&wanted, &replayed);
        if differences.is_empty() {
            return Ok(Detection {
                matched: Some(file.version),
                closest: None,
                differences,
                conflicts: Vec::new(),
            });
        }
        let score = distance(&differences);
        if best.as_ref().is_none_or(|(best, _, _)| score < *best) {
            best = Some((score, file.version, differences));
        }
    }
    let conflicts = created
        .into_iter()
        .map(|(object, version)| conflict(&live_conn, &scratch, object, version))
        .collect::<Result<Vec<_>, _>>()?;
    let empty = distance(&compare(&wanted, &Schema::new()));
    Ok(match best {
        Some((count, version, differences)) if count < empty => Detection {
            matched: None,
            closest: Some(version),
            differences,
            conflicts,
        },
        _ => Detection {
            matched: None,
            closest: None,
            differences: Vec::new(),
            conflicts,
        },
    })
}

/// The conflict of `object` (`type name`), with a table's column differences.
fn conflict(
    live: &Connection,
    replayed: &Connection,
    object: String,
    version: i64,
) -> Result<Conflict, String> {
    let mut conflict = Conflict {
        object,
        version,
        only_in_database: Vec::new(),
        only_in_migrations: Vec::new(),
    };
    if let Some(table) = conflict.object.strip_prefix("table ") {
        let ours = columns(live, table)?;
        let theirs = columns(replayed, table)?;
        conflict.only_in_database = ours
            .iter()
            .filter(|c| !theirs.contains(c))
            .cloned()
            .collect();
        conflict.only_in_migrations = theirs
            .iter()
            .filter(|c| !ours.contains(c))
            .cloned()
            .collect();
    }
    Ok(conflict)
}

/// The column names of `table`, lowercased.
fn columns(conn: &Connection, table: &str) -> Result<Vec<String>, String> {
    let mut statement = conn
        .prepare("SELECT lower(name) FROM pragma_table_info(?1)")
        .map_err(|e| e.to_string())?;
    statement
        .query_map([table], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| e.to_string())
}

/// The user schema of `conn`, without SQLite's and litewarden's own tables.
fn schema(conn: &Connection) -> Result<Schema, String> {
    let mut statement = conn
        .prepare(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_schema
             WHERE name NOT LIKE 'sqlite_%' AND tbl_name != '_litewarden_migrations'",
        )
        .map_err(|e| e.to_string())?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                format!("{} {}", row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                normalise(&row.get::<_, String>(2)?),
            ))
        })
        .and_then(|rows| rows.collect::<Result<Schema, _>>())
        .map_err(|e| e.to_string())?;
    Ok(rows)
}

/// SQL with runs of whitespace made one space, lowercased, and no space
/// next to punctuation, so formatting never counts as a difference.
fn normalise(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let mut text = words.join(" ").to_lowercase();
    for punctuation in ["(", ")", ",", ";"] {
        text = text
            .replace(&format!(" {punctuation}"), punctuation)
            .replace(&format!("{punctuation} "), punctuation);
    }
    text.replace(['"', '`'], "")
}

/// How far a version is from the live schema: an object with other SQL is
/// closer than one that is missing or extra.
fn distance(differences: &[String]) -> usize {
    differences
        .iter()
        .map(|d| if d.contains(" differs: ") { 1 } else { 2 })
        .sum()
}

/// What `found` lacks, has extra or has differently compared with `wanted`.
fn compare(wanted: &Schema, found: &Schema) -> Vec<String> {
    let mut differences = Vec::new();
    for (object, sql) in wanted {
        match found.get(object) {
            None => differences.push(format!(
                "the database has {object}, the migrations do not create it"
            )),
            Some(other) if other != sql => differences.push(format!(
                "{object} differs: the database has `{sql}`, the migrations give `{other}`"
            )),
            Some(_) => {}
        }
    }
    for object in found.keys().filter(|o| !wanted.contains_key(*o)) {
        differences.push(format!(
            "the migrations create {object}, the database has none"
        ));
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: i64, sql: &str) -> MigrationFile {
        MigrationFile {
            version,
            name: format!("m{version}"),
            path: format!("{version:04}_m{version}.sql").into(),
            down: None,
            checksum: String::new(),
            sql: sql.to_string(),
            no_transaction: false,
        }
    }

    #[test]
    fn the_version_whose_schema_equals_the_live_one_is_found_and_formatting_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        Connection::open(&live)
            .unwrap()
            .execute_batch("CREATE TABLE pages (id INTEGER PRIMARY KEY,\n  url TEXT);\nCREATE INDEX pages_url ON pages(url);")
            .unwrap();
        let files = [
            file(1, "CREATE TABLE pages (id INTEGER PRIMARY KEY, url TEXT);"),
            file(2, "CREATE INDEX pages_url ON pages (url);"),
            file(3, "ALTER TABLE pages ADD COLUMN title TEXT;"),
        ];
        let found = detect(&live, &files).unwrap();
        assert_eq!(found.matched, Some(2), "{found:?}");
    }

    #[test]
    fn a_migration_that_creates_a_table_the_database_has_is_a_conflict_with_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        Connection::open(&live)
            .unwrap()
            .execute_batch(
                "CREATE TABLE crawled_pages (id INTEGER PRIMARY KEY, url TEXT, content TEXT);",
            )
            .unwrap();
        let files = [file(
            1,
            "CREATE TABLE crawled_pages (id INTEGER PRIMARY KEY, url TEXT, domain TEXT NOT NULL);
             CREATE INDEX crawled_pages_domain ON crawled_pages (domain);
             CREATE INDEX crawled_pages_url ON crawled_pages (url);",
        )];
        let found = detect(&live, &files).unwrap();
        assert_eq!((found.matched, found.closest), (None, None), "{found:?}");
        assert_eq!(
            found
                .conflicts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "migration 1 creates table crawled_pages, which the database already has; only the database has column content; only the migrations give column domain"
            ]
        );
    }

    #[test]
    fn without_a_match_the_closest_version_and_its_differences_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        Connection::open(&live)
            .unwrap()
            .execute_batch("CREATE TABLE pages (id INTEGER PRIMARY KEY, url TEXT, extra TEXT);")
            .unwrap();
        let files = [file(
            1,
            "CREATE TABLE pages (id INTEGER PRIMARY KEY, url TEXT);",
        )];
        let found = detect(&live, &files).unwrap();
        assert_eq!(found.matched, None);
        assert_eq!(found.closest, Some(1));
        assert_eq!(found.differences.len(), 1, "{:?}", found.differences);
        assert!(
            found.differences[0].starts_with("table pages differs"),
            "{:?}",
            found.differences
        );
    }
}

//! Backup copy names: `<db>/<db>-YYYYMMDDTHHMMSSZ[-N].db[.zst]`, the
//! same in every store.
//!
//! Owns the format in both directions, so the catalog can be rebuilt from
//! names alone. Pure: the caller says which names are taken.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::Key;

const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// What a backup file name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedName {
    /// The UTC time in the name.
    pub created_at: DateTime<Utc>,
    /// Whether it ends in `.zst`.
    pub compressed: bool,
}

/// The file name of a backup of `database` taken at `at`; `collision` 0
/// gives the plain name, N > 0 adds `-N` before the extension.
pub fn file_name(database: &str, at: DateTime<Utc>, collision: u32, compressed: bool) -> String {
    let suffix = if collision == 0 {
        String::new()
    } else {
        format!("-{collision}")
    };
    let extension = if compressed { ".db.zst" } else { ".db" };
    format!("{database}-{}{suffix}{extension}", at.format(TIME_FORMAT))
}

/// The first free key for a copy of `database` taken at `at`, trying `-1`,
/// `-2`, ... while `taken` says a name is in use.
pub fn free_key(
    database: &str,
    at: DateTime<Utc>,
    compressed: bool,
    taken: impl Fn(&Key) -> bool,
) -> Key {
    (0..)
        .map(|collision| Key::new(database, &file_name(database, at, collision, compressed)))
        .find(|key| !taken(key))
        .unwrap_or_else(|| Key::new(database, &file_name(database, at, u32::MAX, compressed)))
}

/// Parses a file name written by [`file_name`] for `database`.
pub fn parse(database: &str, name: &str) -> Option<ParsedName> {
    let rest = name.strip_prefix(database)?.strip_prefix('-')?;
    let (rest, compressed) = match rest.strip_suffix(".db.zst") {
        Some(rest) => (rest, true),
        None => (rest.strip_suffix(".db")?, false),
    };
    let (time, collision) = match rest.split_once('-') {
        Some((time, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            (time, Some(n))
        }
        Some(_) => return None,
        None => (rest, None),
    };
    if collision.is_some_and(|n| n.starts_with('0')) {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(time, TIME_FORMAT).ok()?;
    Some(ParsedName {
        created_at: naive.and_utc(),
        compressed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    #[test]
    fn names_are_iso_basic_utc_with_collision_suffixes() {
        assert_eq!(
            file_name("crawler", at(), 0, true),
            "crawler-20261118T110640Z.db.zst"
        );
        assert_eq!(
            file_name("crawler", at(), 2, false),
            "crawler-20261118T110640Z-2.db"
        );
    }

    #[test]
    fn free_key_skips_taken_names() {
        let taken = [
            Key::new("a", "a-20261118T110640Z.db"),
            Key::new("a", "a-20261118T110640Z-1.db"),
        ];
        let key = free_key("a", at(), false, |k| taken.contains(k));
        assert_eq!(key.as_str(), "a/a-20261118T110640Z-2.db");
    }

    #[test]
    fn parse_refuses_other_databases_temp_files_and_junk() {
        assert!(parse("a", "b-20261118T110640Z.db").is_none());
        assert!(parse("a", ".lw-tmp-xyz").is_none());
        assert!(parse("a", "a-20261118T110640Z.db.tmp").is_none());
        assert!(parse("a", "a-2026.db").is_none());
        assert!(parse("a", "a-20261118T110640Z-x.db").is_none());
        assert!(parse("a-b", "a-b-20261118T110640Z-1.db.zst").is_some());
    }

    proptest! {
        #[test]
        fn names_round_trip(seconds in 0i64..4_000_000_000, collision in 0u32..50, compressed: bool, db in "[a-z_-]{1,12}") {
            let at = DateTime::from_timestamp(seconds, 0).unwrap();
            let parsed = parse(&db, &file_name(&db, at, collision, compressed)).unwrap();
            prop_assert_eq!(parsed, ParsedName { created_at: at, compressed });
        }
    }
}

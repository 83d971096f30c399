//! The `schema:` block: declared columns that `apply` adds with
//! `ALTER TABLE ... ADD COLUMN` (the seed's `update_schema_safely`).
//!
//! Owns the checks that keep the generated SQL safe: table and column names
//! are plain identifiers, types are type names, defaults are constants
//! (SQLite refuses a non-constant default in ADD COLUMN), and `NOT NULL`
//! comes with a default so existing rows get a value. Pure.

use std::collections::BTreeMap;

use super::locate::FieldPath;
use super::model::DeclaredColumn;
use super::raw::RawColumn;

/// Whether `text` is a plain SQL identifier (letters, digits, `_`).
pub fn identifier(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `text` is a column type name, optionally sized (`VARCHAR(255)`).
pub fn type_name(text: &str) -> bool {
    let (name, size) = match text.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest)),
        None => (text.trim(), None),
    };
    const CLAUSES: &[&str] = &[
        "DEFAULT",
        "NOT",
        "NULL",
        "PRIMARY",
        "REFERENCES",
        "CHECK",
        "COLLATE",
        "GENERATED",
        "AS",
        "UNIQUE",
        "CONSTRAINT",
    ];
    let name_ok = !name.is_empty()
        && name
            .split_whitespace()
            .all(|word| identifier(word) && !CLAUSES.contains(&word.to_ascii_uppercase().as_str()));
    let size_ok = size.is_none_or(|rest| {
        rest.strip_suffix(')').is_some_and(|inside| {
            inside
                .split(',')
                .all(|n| !n.trim().is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()))
        })
    });
    name_ok && size_ok
}

/// A default as an SQL literal: a number SQLite reads as one (optionally
/// signed, finite decimal digits; not Rust's `inf` or `NaN`) as it is,
/// anything else quoted as a string.
pub fn literal(text: &str) -> String {
    let trimmed = text.trim();
    if is_sql_number(trimmed) {
        trimmed.to_string()
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// `[+-]digits[.digits][e[+-]digits]` (or `.digits`), and finite.
fn is_sql_number(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    !(whole.is_empty() && fraction.is_empty())
        && digits(whole)
        && digits(fraction)
        && exponent.is_none_or(|e| !e.is_empty() && digits(e))
        && text.parse::<f64>().is_ok_and(f64::is_finite)
}

/// The declared columns, or the problems with their key paths.
pub fn declared(
    schema: Option<&BTreeMap<String, BTreeMap<String, RawColumn>>>,
    path: &FieldPath,
) -> (Vec<DeclaredColumn>, Vec<(FieldPath, String)>) {
    let mut columns = Vec::new();
    let mut problems = Vec::new();
    for (table, declared) in schema.into_iter().flatten() {
        let table_path = path.key(table);
        if !identifier(table) {
            problems.push((
                table_path.clone(),
                format!("`{table}` is not a plain table name (letters, digits and `_`)"),
            ));
            continue;
        }
        for (column, raw) in declared {
            let at = table_path.key(column);
            if !identifier(column) {
                problems.push((
                    at,
                    format!("`{column}` is not a plain column name (letters, digits and `_`)"),
                ));
                continue;
            }
            let sql_type = raw.type_.0.trim().to_string();
            if !type_name(&sql_type) {
                problems.push((
                    at.key("type"),
                    format!(
                        "`{sql_type}` is not an SQL type name (e.g. INTEGER, TEXT, VARCHAR(255))"
                    ),
                ));
                continue;
            }
            let not_null = raw.not_null.as_ref().is_some_and(|n| n.0);
            if not_null && raw.default.is_none() {
                problems.push((
                    at.key("not_null"),
                    "a NOT NULL column needs a `default` for the rows that already exist".into(),
                ));
                continue;
            }
            columns.push(DeclaredColumn {
                table: table.clone(),
                column: column.clone(),
                sql_type,
                default: raw.default.as_ref().map(|d| literal(&d.0)),
                not_null,
            });
        }
    }
    (columns, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_quote_text_and_keep_numbers() {
        assert_eq!(literal("1"), "1");
        assert_eq!(literal("-2.5"), "-2.5");
        assert_eq!(literal("pending"), "'pending'");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn type_names_allow_sizes_but_not_sql() {
        for ok in [
            "INTEGER",
            "TIMESTAMP",
            "VARCHAR(255)",
            "DECIMAL(10, 2)",
            "unsigned big int",
        ] {
            assert!(type_name(ok), "{ok}");
        }
        for bad in [
            "",
            "INT; DROP TABLE x",
            "TEXT)",
            "VARCHAR(x)",
            "INT DEFAULT 1 --",
            "INT DEFAULT x",
            "TEXT NOT NULL",
        ] {
            assert!(!type_name(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_are_numbers_only_when_sqlite_reads_them_as_numbers() {
        for number in ["1", "-1", "+2.5", ".5", "1e3", "-1.5E-2", "0"] {
            assert_eq!(literal(number), number);
        }
        for text in [
            "-inf", "inf", "NaN", "infinity", "1e500", "0x10", "1.2.3", "-", "", "e5",
        ] {
            assert_eq!(literal(text), format!("'{text}'"), "{text}");
        }
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a)").unwrap();
        for text in ["-inf", "NaN", "1e500"] {
            conn.execute_batch(&format!(
                "ALTER TABLE t ADD COLUMN \"c{}\" TEXT DEFAULT {}",
                text.len(),
                literal(text)
            ))
            .unwrap();
        }
    }

    #[test]
    fn definitions_quote_the_column() {
        let column = DeclaredColumn {
            table: "pages".into(),
            column: "crawl_priority".into(),
            sql_type: "INTEGER".into(),
            default: Some("1".into()),
            not_null: true,
        };
        assert_eq!(
            column.definition(),
            "\"crawl_priority\" INTEGER DEFAULT 1 NOT NULL"
        );
    }
}

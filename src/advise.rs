//! Index advice from the application's slow queries: which statements
//! scan a whole table or sort in a temporary B-tree, and the index that
//! would change that, proven on a copy of the schema.
//!
//! Owns [`advise`]: for each slow statement recorded by `live::Manager`,
//! `EXPLAIN QUERY PLAN` on the database (read-only), the columns its
//! `WHERE` and `ORDER BY` name for each scanned table (equalities first,
//! then one range, then the order), and the proposed `CREATE INDEX` tried
//! on an in-memory database holding the same schema (and the table's
//! `sqlite_stat1` rows when present): only an index the planner then uses
//! is proposed. Nothing is ever created on the database itself.

use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use crate::state::samples::SlowStatement;

/// What litewarden advises for one slow statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// The statement, normalised.
    pub sql: String,
    /// How many times it was slow.
    pub count: u64,
    /// Its mean time when slow, milliseconds.
    pub mean_ms: f64,
    /// Its plan today, one line per step.
    pub plan: Vec<String>,
    /// What makes it slow: a full scan, a temporary B-tree.
    pub problems: Vec<String>,
    /// The index that would help, proven on a copy of the schema.
    pub index: Option<ProposedIndex>,
    /// Why it could not be explained (a statement of another schema).
    pub error: Option<String>,
}

/// An index litewarden proposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProposedIndex {
    /// Its name.
    pub name: String,
    /// Its table.
    pub table: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// The statement that creates it.
    pub create: String,
    /// The plan of the slow statement with it.
    pub plan: Vec<String>,
}

/// Advises on each of `slow` against the database at `path` (opened
/// read-only as every observation is: a hot journal rolled back, a busy
/// writer waited for).
pub fn advise(path: &Path, slow: &[SlowStatement]) -> Result<Vec<Advice>, crate::db::DbError> {
    let db = crate::db::observe::open_read_only(path)?;
    let mut advice = Vec::new();
    for statement in slow {
        advice.push(advise_one(&db, path, statement));
    }
    Ok(advice)
}

fn advise_one(db: &Connection, path: &Path, statement: &SlowStatement) -> Advice {
    let mut advice = Advice {
        sql: statement.sql.clone(),
        count: statement.count,
        mean_ms: statement.mean_ms(),
        plan: Vec::new(),
        problems: Vec::new(),
        index: None,
        error: None,
    };
    match query_plan(db, &statement.sql) {
        Ok(plan) => advice.plan = plan,
        Err(e) => {
            advice.error = Some(e.to_string());
            return advice;
        }
    }
    let sorted = advice
        .plan
        .iter()
        .any(|step| step.contains("USE TEMP B-TREE FOR ORDER BY"));
    for table in scanned_tables(&advice.plan) {
        advice
            .problems
            .push(format!("scans every row of `{table}`"));
        if advice.index.is_none() {
            advice.index = propose(db, path, &statement.sql, &table).ok().flatten();
        }
    }
    if sorted {
        advice
            .problems
            .push("sorts its rows in a temporary B-tree".into());
    }
    advice
}

/// `EXPLAIN QUERY PLAN` of `sql`, its parameters left unbound.
fn query_plan(db: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let mut rows = statement.raw_query();
    let mut plan = Vec::new();
    while let Some(row) = rows.next()? {
        plan.push(row.get::<_, String>(3)?);
    }
    Ok(plan)
}

/// The tables a plan reads whole (`SCAN t`, not through an index).
fn scanned_tables(plan: &[String]) -> Vec<String> {
    plan.iter()
        .filter_map(|step| step.strip_prefix("SCAN "))
        .filter(|rest| !rest.contains(" INDEX ") && !rest.contains("VIRTUAL TABLE"))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|table| table.trim_matches(['"', '`', '[', ']']).to_string())
        .collect()
}

/// The index on `table` for `sql`, if one the planner would use exists.
fn propose(
    db: &Connection,
    path: &Path,
    sql: &str,
    table: &str,
) -> rusqlite::Result<Option<ProposedIndex>> {
    let columns: Vec<String> = {
        let mut statement = db.prepare("SELECT name FROM pragma_table_info(?1)")?;
        statement
            .query_map([table], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let chosen = index_columns(sql, &columns);
    if chosen.is_empty() {
        return Ok(None);
    }
    let name = format!("idx_{table}_{}", chosen.join("_"));
    let quoted: Vec<String> = chosen.iter().map(|c| quote(c)).collect();
    let create = format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
        quote(&name),
        quote(table),
        quoted.join(", ")
    );
    let copy = schema_copy(path)?;
    copy.execute_batch(&create)?;
    let plan = query_plan(&copy, sql)?;
    let uses = plan
        .iter()
        .any(|step| step.contains(&format!("INDEX {name}")));
    Ok(uses.then(|| ProposedIndex {
        name,
        table: table.to_string(),
        columns: chosen,
        create,
        plan,
    }))
}

/// An in-memory database with the schema of the one at `path` and its
/// `sqlite_stat1` rows.
fn schema_copy(path: &Path) -> rusqlite::Result<Connection> {
    let copy = Connection::open_in_memory()?;
    copy.execute("ATTACH DATABASE ?1 AS source", [path.to_string_lossy()])?;
    let schema: Vec<String> = {
        let mut statement = copy.prepare(
            "SELECT sql FROM source.sqlite_schema WHERE sql IS NOT NULL
             AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' DESC, rowid",
        )?;
        statement
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    for sql in schema {
        copy.execute_batch(&sql)?;
    }
    let has_stats: bool = copy.query_row(
        "SELECT count(*) > 0 FROM source.sqlite_schema WHERE name = 'sqlite_stat1'",
        [],
        |row| row.get(0),
    )?;
    if has_stats {
        copy.execute_batch(
            "ANALYZE main; DELETE FROM main.sqlite_stat1;
             INSERT INTO main.sqlite_stat1 SELECT * FROM source.sqlite_stat1;
             ANALYZE main.sqlite_schema;",
        )?;
    }
    copy.execute_batch("DETACH DATABASE source")?;
    Ok(copy)
}

/// The columns (of `columns`) an index for `sql` should hold: those its
/// `WHERE` compares for equality, then one it compares as a range, then
/// its `ORDER BY` columns when no range came first.
fn index_columns(sql: &str, columns: &[String]) -> Vec<String> {
    let words = words(sql);
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let find = |keyword: &str| upper.iter().position(|w| w == keyword);
    let clause_end = |from: usize| {
        upper[from..]
            .iter()
            .position(|w| ["ORDER", "GROUP", "LIMIT", "HAVING", "UNION", ")"].contains(&w.as_str()))
            .map_or(upper.len(), |at| from + at)
    };
    let column_of = |word: &str| {
        let bare = word
            .rsplit('.')
            .next()
            .unwrap_or(word)
            .trim_matches(['"', '`', '[', ']']);
        columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(bare))
            .cloned()
    };
    let mut equal = Vec::new();
    let mut range = None;
    if let Some(start) = find("WHERE") {
        let end = clause_end(start + 1);
        for (at, word) in words.iter().enumerate().take(end).skip(start + 1) {
            let Some(column) = column_of(word) else {
                continue;
            };
            let operator = upper.get(at + 1).map(String::as_str).unwrap_or("");
            if ["=", "==", "IN", "IS"].contains(&operator) {
                if !equal.contains(&column) {
                    equal.push(column);
                }
            } else if ["<", ">", "<=", ">=", "BETWEEN", "LIKE", "GLOB"].contains(&operator)
                && range.is_none()
            {
                range = Some(column);
            }
        }
    }
    let mut chosen = equal;
    match range {
        Some(column) if !chosen.contains(&column) => chosen.push(column),
        Some(_) => {}
        None => {
            if let Some(start) = find("ORDER") {
                for word in &words[start + 2..clause_end(start + 2).max(start + 2)] {
                    if let Some(column) = column_of(word)
                        && !chosen.contains(&column)
                    {
                        chosen.push(column);
                    }
                }
            }
        }
    }
    chosen
}

/// The words and operators of `sql`.
fn words(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || matches!(c, '_' | '.' | '"' | '`' | '[' | ']' | '?') {
            word.push(c);
        } else if matches!(c, '<' | '>' | '=' | '!') {
            flush(&mut word, &mut out);
            let mut operator = c.to_string();
            if chars.peek().is_some_and(|n| matches!(n, '=' | '>')) {
                operator.extend(chars.next());
            }
            out.push(operator);
        } else {
            flush(&mut word, &mut out);
            if matches!(c, '(' | ')' | ',') {
                out.push(c.to_string());
            }
        }
    }
    flush(&mut word, &mut out);
    out
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<String> {
        ["id", "url", "status", "depth", "crawled_at"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn equalities_come_first_then_one_range_then_the_order() {
        assert_eq!(
            index_columns(
                "SELECT * FROM pages WHERE depth > ? AND status = ?",
                &columns()
            ),
            ["status", "depth"]
        );
        assert_eq!(
            index_columns(
                "SELECT url FROM pages p WHERE p.status = ? ORDER BY crawled_at DESC LIMIT ?",
                &columns()
            ),
            ["status", "crawled_at"]
        );
        assert!(index_columns("SELECT count(*) FROM pages", &columns()).is_empty());
    }

    #[test]
    fn a_full_scan_gets_an_index_the_planner_then_uses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE pages (id INTEGER PRIMARY KEY, url TEXT, status INTEGER, depth INTEGER, crawled_at TEXT);
             WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 2000)
             INSERT INTO pages (url, status, depth) SELECT 'u' || v, v % 7, v % 5 FROM n;",
        )
        .unwrap();
        let slow = SlowStatement {
            sql: "SELECT url FROM pages WHERE status = ?".into(),
            count: 3,
            total_ms: 30.0,
            max_ms: 12.0,
            last_at: chrono::Utc::now(),
        };
        let advice = advise(&path, &[slow]).unwrap();
        let index = advice[0].index.as_ref().expect("an index");
        assert_eq!(index.columns, ["status"]);
        assert!(advice[0].problems[0].contains("scans every row of `pages`"));
        assert!(
            index
                .plan
                .iter()
                .any(|s| s.contains("USING INDEX idx_pages_status")),
            "{index:?}"
        );
    }
}

//! Generator for a crawler-shaped benchmark database: `crawled_pages` rows
//! with URLs, titles and ~2 KiB of HTML-like text, plus indexes, in WAL
//! mode. The text repeats words the way pages do, so it compresses like
//! real crawl data rather than like random bytes or zeros.

use std::path::Path;

use rusqlite::{Connection, params};

const WORDS: &[&str] = &[
    "the", "crawler", "fetched", "page", "content", "<div>", "</div>", "<p>", "</p>", "link",
    "href", "example", "sqlite", "backup", "index", "status", "title", "body", "news", "product",
    "price", "review", "2026", "about",
];

/// Creates `path` (if missing) holding about `megabytes` MiB of pages.
pub fn generate(path: &Path, megabytes: u64) {
    if path.exists() {
        return;
    }
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut conn = Connection::open(&partial).expect("create the benchmark database");
    conn.execute_batch(
        "PRAGMA journal_mode=wal; PRAGMA synchronous=off;
         CREATE TABLE crawled_pages (
             id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, domain TEXT NOT NULL,
             status TEXT NOT NULL, http_status INTEGER, title TEXT, content_hash TEXT,
             body TEXT, fetched_at TEXT NOT NULL);
         CREATE INDEX crawled_pages_status ON crawled_pages (status, fetched_at);",
    )
    .expect("create schema");
    let rows = megabytes * 1024 * 1024 / 4300;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let tx = conn.transaction().expect("begin");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO crawled_pages VALUES (?1, ?2, ?3, 'fetched', 200, ?4, ?5, ?6, ?7)",
            )
            .expect("prepare");
        let mut body = String::with_capacity(2200);
        for id in 0..rows {
            body.clear();
            while body.len() < 2000 {
                body.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
                body.push(' ');
            }
            let domain = format!("site{}.example", next() % 5000);
            insert
                .execute(params![
                    id as i64,
                    format!("https://{domain}/page/{id}"),
                    domain,
                    format!(
                        "Page {id} about {}",
                        WORDS[(id % WORDS.len() as u64) as usize]
                    ),
                    format!("{:016x}", next()),
                    body,
                    format!("2026-11-{:02}T{:02}:00:00Z", 1 + id % 28, id % 24),
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    drop(conn);
    std::fs::rename(&partial, path).expect("move the benchmark database into place");
}

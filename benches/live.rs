//! Benchmark for issue #15: `live::Manager` against raw rusqlite on the same
//! generated crawler database (`LITEWARDEN_BENCH_MB`, default 256 MiB):
//! query 1000 rows, insert 1000 rows in one transaction, 1000 single-row
//! updates (medians of `ROUNDS`), and 8 readers + 1 writer for
//! `LITEWARDEN_BENCH_SECS` (10) each, in five alternating slices from a
//! checkpointed WAL. Prints each ratio against its target
//! (≤ 1.1× the raw time; throughput ≥ 1/1.1 of raw), then the seed's table
//! (query 45 ms, insert 120 ms, backup 8 s) next to ours.
//!
//! Run with `cargo bench --bench live`.

#[path = "crawler_db.rs"]
mod crawler_db;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use litewarden::live::{Manager, Options};
use rusqlite::Connection;

const ROUNDS: usize = 31;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Runs `raw` and `ours` alternately, `ROUNDS` times each, and returns the
/// medians (raw, ours).
fn paired(mut raw: impl FnMut(usize), mut ours: impl FnMut(usize)) -> (Duration, Duration) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let started = Instant::now();
        raw(round);
        a.push(started.elapsed());
        let started = Instant::now();
        ours(round);
        b.push(started.elapsed());
    }
    (median(a), median(b))
}

fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA synchronous=normal; PRAGMA busy_timeout=5000;")
        .expect("pragmas");
    conn.set_prepared_statement_cache_capacity(64);
    conn
}

fn report(name: &str, raw: Duration, ours: Duration) {
    let ratio = ours.as_secs_f64() / raw.as_secs_f64();
    println!(
        "{name:<34} raw {:>9.3} ms   live {:>9.3} ms   {ratio:.2}x  (target <= 1.10x: {})",
        raw.as_secs_f64() * 1000.0,
        ours.as_secs_f64() * 1000.0,
        if ratio <= 1.10 { "ok" } else { "OVER" }
    );
}

/// Reads and writes per second with 8 reader threads and 1 writer thread
/// for `seconds`; `read` and `write` are called with the thread's index.
fn mixed(
    seconds: u64,
    read: Arc<dyn Fn(usize, u64) -> bool + Send + Sync>,
    write: Arc<dyn Fn(u64) -> bool + Send + Sync>,
) -> (f64, f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, writes, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut threads = Vec::new();
    for thread in 0..8 {
        let (stop, reads, errors, read) = (
            Arc::clone(&stop),
            Arc::clone(&reads),
            Arc::clone(&errors),
            Arc::clone(&read),
        );
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if read(thread, n) {
                    reads.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }
    {
        let (stop, writes, errors, write) = (
            Arc::clone(&stop),
            Arc::clone(&writes),
            Arc::clone(&errors),
            Arc::clone(&write),
        );
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if write(n) {
                    writes.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("bench thread");
    }
    (
        reads.load(Ordering::Relaxed) as f64 / seconds as f64,
        writes.load(Ordering::Relaxed) as f64 / seconds as f64,
        errors.load(Ordering::Relaxed),
    )
}

fn main() {
    let megabytes = env_number("LITEWARDEN_BENCH_MB", 256);
    let seconds = env_number("LITEWARDEN_BENCH_SECS", 10).max(5);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("website_crawler.db");
    crawler_db::generate(&path, megabytes);
    let rows: i64 = raw_connection(&path)
        .query_row("SELECT count(*) FROM crawled_pages", [], |r| r.get(0))
        .expect("count");
    println!("{megabytes} MiB crawler database, {rows} pages; medians of {ROUNDS} paired rounds");

    let db = Manager::open(&path, Options::default()).expect("open the manager");
    let raw = raw_connection(&path);
    let offset = |round: usize| (round as i64 * 1000) % (rows - 1600).max(1);
    let select =
        "SELECT id, url, status, title FROM crawled_pages WHERE id > ?1 ORDER BY id LIMIT 1000";
    let (raw_query, live_query) = paired(
        |round| {
            let mut statement = raw.prepare_cached(select).expect("prepare");
            let rows: Vec<(i64, String, String, Option<String>)> = statement
                .query_map([offset(round)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert_eq!(rows.len(), 1000);
        },
        |round| {
            let rows: Vec<(i64, String, String, Option<String>)> = db
                .query(select, [offset(round) + 500], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .expect("query");
            assert_eq!(rows.len(), 1000);
        },
    );
    report("query 1000 rows", raw_query, live_query);

    raw.execute_batch(
        "CREATE TABLE IF NOT EXISTS bench_insert (id INTEGER PRIMARY KEY, url TEXT, body TEXT)",
    )
    .expect("table");
    let insert = "INSERT INTO bench_insert (url, body) VALUES (?1, ?2)";
    let body = "lorem ipsum ".repeat(20);
    let mut raw_writer = raw_connection(&path);
    let (raw_insert, live_insert) = paired(
        |round| {
            let tx = raw_writer
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .expect("begin");
            {
                let mut statement = tx.prepare_cached(insert).expect("prepare");
                for i in 0..1000 {
                    statement
                        .execute((format!("https://raw/{round}/{i}"), &body))
                        .expect("insert");
                }
            }
            tx.commit().expect("commit");
        },
        |round| {
            db.insert_many(
                insert,
                (0..1000).map(|i| (format!("https://live/{round}/{i}"), &body)),
            )
            .expect("insert_many");
        },
    );
    report("insert 1000 rows, one transaction", raw_insert, live_insert);

    let update = "UPDATE crawled_pages SET http_status = ?1 WHERE id = ?2";
    let (raw_update, live_update) = paired(
        |round| {
            let mut statement = raw_writer.prepare_cached(update).expect("prepare");
            for i in 0..1000 {
                statement
                    .execute((round as i64, i * 7 + 1))
                    .expect("update");
            }
        },
        |round| {
            for i in 0..1000 {
                db.execute(update, (round as i64, i * 7 + 2))
                    .expect("update");
            }
        },
    );
    report("1000 single-row updates", raw_update, live_update);
    drop(raw_writer);

    let read_sql = "SELECT title, status FROM crawled_pages WHERE id >= ?1 LIMIT 1";
    let write_sql = "UPDATE crawled_pages SET http_status = http_status + 1 WHERE id = ?1";
    let rows_u = (rows / 2).max(1) as u64;
    let raw_path = path.clone();
    let raw_readers: Vec<std::sync::Mutex<Connection>> = (0..8)
        .map(|_| std::sync::Mutex::new(raw_connection(&raw_path)))
        .collect();
    let raw_readers = Arc::new(raw_readers);
    let raw_writer = Arc::new(std::sync::Mutex::new(raw_connection(&raw_path)));
    let raw_read: Arc<dyn Fn(usize, u64) -> bool + Send + Sync> = Arc::new(move |thread, n| {
        let conn = raw_readers[thread].lock().expect("reader");
        conn.prepare_cached(read_sql)
            .and_then(|mut s| {
                s.query_row([((n * 7919) % rows_u + 1) as i64], |r| {
                    r.get::<_, Option<String>>(0)
                })
            })
            .is_ok()
    });
    let raw_write: Arc<dyn Fn(u64) -> bool + Send + Sync> = Arc::new(move |n| {
        let conn = raw_writer.lock().expect("writer");
        conn.prepare_cached(write_sql)
            .and_then(|mut s| s.execute([((n * 104_729) % rows_u + 1) as i64]))
            .is_ok()
    });
    let db = Arc::new(db);
    let (reader_db, writer_db) = (Arc::clone(&db), Arc::clone(&db));
    let live_read: Arc<dyn Fn(usize, u64) -> bool + Send + Sync> = Arc::new(move |_, n| {
        reader_db
            .query_row(read_sql, [((n * 7919) % rows_u + 1) as i64], |r| {
                r.get::<_, Option<String>>(0)
            })
            .is_ok()
    });
    let live_write: Arc<dyn Fn(u64) -> bool + Send + Sync> = Arc::new(move |n| {
        writer_db
            .execute(write_sql, [((n * 104_729) % rows_u + 1) as i64])
            .is_ok()
    });
    let checkpoint = raw_connection(&path);
    let slices = 5;
    let (mut raw_reads, mut raw_writes, mut raw_errors) = (0.0, 0.0, 0);
    let (mut live_reads, mut live_writes, mut live_errors) = (0.0, 0.0, 0);
    for _ in 0..slices {
        let _ = checkpoint.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        let (r, w, e) = mixed(
            seconds / slices,
            Arc::clone(&raw_read),
            Arc::clone(&raw_write),
        );
        (raw_reads, raw_writes, raw_errors) = (
            raw_reads + r / slices as f64,
            raw_writes + w / slices as f64,
            raw_errors + e,
        );
        let _ = checkpoint.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        let (r, w, e) = mixed(
            seconds / slices,
            Arc::clone(&live_read),
            Arc::clone(&live_write),
        );
        (live_reads, live_writes, live_errors) = (
            live_reads + r / slices as f64,
            live_writes + w / slices as f64,
            live_errors + e,
        );
    }
    let verdict = |ours: f64, theirs: f64| if ours * 1.10 >= theirs { "ok" } else { "UNDER" };
    println!(
        "8 readers + 1 writer, {seconds} s (5 alternating slices)   raw {raw_reads:>9.0} reads/s {raw_writes:>7.0} writes/s ({raw_errors} errors)   live {live_reads:>9.0} reads/s {live_writes:>7.0} writes/s ({live_errors} errors)  (reads {:.2}x: {}, writes {:.2}x: {})",
        raw_reads / live_reads.max(1.0),
        verdict(live_reads, raw_reads),
        raw_writes / live_writes.max(1.0),
        verdict(live_writes, raw_writes),
    );

    let started = Instant::now();
    let backup = db.backup_now().expect("backup");
    let backup_time = started.elapsed();
    println!();
    println!("the seed's figures next to ours ({megabytes} MiB database):");
    println!("| operation | seed | litewarden::live |");
    println!("|---|---|---|");
    println!(
        "| query | 45 ms | {:.2} ms (1000 rows) |",
        live_query.as_secs_f64() * 1000.0
    );
    println!(
        "| insert | 120 ms | {:.2} ms (1000 rows, one transaction) |",
        live_insert.as_secs_f64() * 1000.0
    );
    println!(
        "| backup | 8 s | {:.2} s (verified, zstd, {} bytes stored) |",
        backup_time.as_secs_f64(),
        backup.backup.record.size
    );
}

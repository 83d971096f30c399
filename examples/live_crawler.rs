//! A crawler's database traffic through `litewarden::live` (issue #15):
//! worker threads insert and update `crawled_pages` while a background
//! thread runs health checks and optimize; half-way a backup is taken and a
//! new migration is applied, all while the workers keep writing. A progress
//! bar shows pages per second; the metrics print at the end.
//!
//! `cargo run --release --example live_crawler [DIR]` (DIR defaults to a
//! new temp directory; `LIVE_CRAWLER_SECS`, default 10, sets the length).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use litewarden::live::{LiveError, Manager, Options};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::var("LIVE_CRAWLER_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let temp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations)?;
    std::fs::write(
        migrations.join("0001_crawled_pages.sql"),
        "CREATE TABLE crawled_pages (id INTEGER PRIMARY KEY, url TEXT UNIQUE NOT NULL, status INTEGER, fetched_at TEXT, body TEXT);",
    )?;
    let db = Arc::new(Manager::open(
        dir.join("website_crawler.db"),
        Options {
            migrations_dir: Some(migrations.clone()),
            ..Options::default()
        },
    )?);
    db.run_pending_migrations()?;

    let stop = Arc::new(AtomicBool::new(false));
    let pages = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (db, stop, pages) = (Arc::clone(&db), Arc::clone(&stop), Arc::clone(&pages));
            std::thread::spawn(move || -> Result<(), LiveError> {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let url = format!("https://example.com/{worker}/{n}");
                    db.execute(
                        "INSERT INTO crawled_pages (url, fetched_at, body) VALUES (?1, datetime('now'), ?2)",
                        (&url, "lorem ipsum ".repeat(20)),
                    )?;
                    db.execute(
                        "UPDATE crawled_pages SET status = 200 WHERE url = ?1",
                        [&url],
                    )?;
                    pages.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                Ok(())
            })
        })
        .collect();
    let maintenance = {
        let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
        std::thread::spawn(move || -> Result<(), LiveError> {
            while !stop.load(Ordering::Relaxed) {
                db.health()?;
                db.optimize()?;
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        })
    };

    let bar = indicatif::ProgressBar::new(seconds);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} s  {msg}",
    )?);
    let started = Instant::now();
    let mut changed_midway = false;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(250));
        let rate = pages.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        bar.set_position(started.elapsed().as_secs());
        bar.set_message(format!("{rate:.0} pages/s"));
        if !changed_midway && started.elapsed() >= Duration::from_secs(seconds) / 2 {
            changed_midway = true;
            let backup = db.backup_now()?;
            bar.println(format!("backup: {}", backup.backup.path.display()));
            std::fs::write(
                migrations.join("0002_priority.sql"),
                "ALTER TABLE crawled_pages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;",
            )?;
            let applied = db.run_pending_migrations()?;
            bar.println(format!("migrations applied: {}", applied.applied.len()));
        }
    }
    stop.store(true, Ordering::Relaxed);
    bar.finish();
    for worker in workers {
        worker.join().map_err(|_| "a worker panicked")??;
    }
    maintenance.join().map_err(|_| "maintenance panicked")??;
    let total: i64 = db.query_row("SELECT count(*) FROM crawled_pages", [], |r| r.get(0))?;
    println!("{total} pages in the database");
    println!("{}", serde_json::to_string_pretty(&db.metrics())?);
    Ok(())
}

//! Benchmark for issue #10: what health checks cost.
//!
//! 1. The cheap health run (no quick_check) of a ~1 GiB crawler database:
//!    median and max over `LITEWARDEN_BENCH_ROUNDS` (default 21) runs,
//!    target <= 10 ms.
//! 2. Its `quick_check` while a writer thread commits 50-row transactions:
//!    duration, the WAL's growth during it (a read transaction over the whole
//!    file holds checkpoints back) and the writer's throughput against before.
//! 3. The shipped `jobs.yaml` under `litewarden run` (three databases,
//!    health every 5 minutes, optimize hourly, backups hourly) for
//!    `LITEWARDEN_BENCH_IDLE_SECS` (default 600): the daemon's CPU time as a
//!    share of one core, target <= 0.1%.
//!
//! `LITEWARDEN_BENCH_MB` sets the database size (default 1024); it is cached
//! in `target/bench-data/`. Run with `cargo bench --bench health`.

mod process;

use process::cpu_ticks;
#[path = "crawler_db.rs"]
mod crawler_db;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use litewarden::clock::{Clock, SystemClock};
use litewarden::config::{Environment, VerifyLevel};
use litewarden::jobs::health;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wal_size(db: &Path) -> u64 {
    std::fs::metadata(health::wal_path(db)).map_or(0, |m| m.len())
}

fn main() {
    let megabytes = env_number("LITEWARDEN_BENCH_MB", 1024);
    let rounds = env_number("LITEWARDEN_BENCH_ROUNDS", 21) as usize;
    let idle = env_number("LITEWARDEN_BENCH_IDLE_SECS", 600);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&data).expect("create target/bench-data");
    let source = data.join(format!("crawler-{megabytes}MiB.db"));
    crawler_db::generate(&source, megabytes);
    let work = tempfile::tempdir_in(&data).expect("work dir");
    let db = work.path().join("crawler.db");
    std::fs::copy(&source, &db).expect("copy the benchmark database");
    std::fs::write(
        work.path().join("jobs.yaml"),
        "version: 1\ndatabases:\n  crawler: { path: crawler.db }\n",
    )
    .expect("write jobs.yaml");
    let config = litewarden::config::load(&work.path().join("jobs.yaml"), &Environment::default())
        .expect("load")
        .config;
    let database = config.databases.values().next().expect("a database");
    let state = litewarden::state::StateDb::open(&config.settings.state_dir).expect("state");
    let request = |deep| health::Request {
        database,
        backup_dir: &config.settings.backup_dir,
        deep,
        now: SystemClock.now(),
    };

    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let at = Instant::now();
            let report = health::run(request(None), Some(&state));
            let took = at.elapsed();
            assert!(report.db_size_mb > 0.0);
            took
        })
        .collect();
    samples.sort();
    println!(
        "cheap health run, {:.0} MiB database: median {:.2} ms, max {:.2} ms over {rounds} runs (target <= 10 ms)",
        std::fs::metadata(&db).map_or(0, |m| m.len()) as f64 / 1048576.0,
        samples[rounds / 2].as_secs_f64() * 1000.0,
        samples[rounds - 1].as_secs_f64() * 1000.0
    );

    let stop = Arc::new(AtomicBool::new(false));
    let rows = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, rows) = (db.clone(), Arc::clone(&stop), Arc::clone(&rows));
        std::thread::spawn(move || {
            let mut conn = rusqlite::Connection::open(&db).expect("writer");
            conn.busy_timeout(Duration::from_secs(5))
                .expect("busy timeout");
            let mut id: i64 = 10_000_000;
            while !stop.load(Ordering::SeqCst) {
                let tx = conn.transaction().expect("begin");
                for _ in 0..50 {
                    id += 1;
                    tx.execute(
                        "INSERT INTO crawled_pages (id, url, domain, status, fetched_at) VALUES (?1, ?2, 'bench', 'ok', '2026-12-01')",
                        rusqlite::params![id, format!("https://bench/{id}")],
                    )
                    .expect("insert");
                }
                tx.commit().expect("commit");
                rows.fetch_add(50, Ordering::SeqCst);
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let before = rows.load(Ordering::SeqCst) as f64 / 2.0;
    let (wal_at_start, counted_at_start) = (wal_size(&db), rows.load(Ordering::SeqCst));
    let at = Instant::now();
    let report = health::run(request(Some(VerifyLevel::Quick)), Some(&state));
    let took = at.elapsed();
    let during = (rows.load(Ordering::SeqCst) - counted_at_start) as f64 / took.as_secs_f64();
    let growth = wal_size(&db) as i64 - wal_at_start as i64;
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    println!(
        "quick_check under a writer: {:.2} s ({}), WAL grew {:+.1} MiB during it, writer {:.0} rows/s during vs {:.0} before",
        took.as_secs_f64(),
        report
            .checks
            .iter()
            .find(|c| c.name == "quick_check")
            .map_or("not run".to_string(), |c| c.detail.clone()),
        growth as f64 / 1048576.0,
        during,
        before
    );

    let shipped = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("jobs.yaml"), shipped.path().join("jobs.yaml")).expect("jobs.yaml");
    Command::new("cp")
        .args(["-r", &root.join("migrations").display().to_string()])
        .arg(shipped.path())
        .status()
        .expect("copy migrations");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_litewarden"))
        .arg("run")
        .current_dir(shipped.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the litewarden binary");
    std::thread::sleep(Duration::from_secs(5));
    let ticks_before = cpu_ticks(daemon.id());
    std::thread::sleep(Duration::from_secs(idle));
    let ticks = cpu_ticks(daemon.id()) - ticks_before;
    let _ = daemon.kill();
    let _ = daemon.wait();
    let seconds = ticks as f64 / 100.0;
    println!(
        "shipped jobs.yaml under `litewarden run` for {idle} s (health every 5m on 3 databases): CPU {seconds:.2} s = {:.3}% of one core (target <= 0.1%)",
        seconds / idle as f64 * 100.0
    );
}

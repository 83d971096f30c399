//! Benchmark for issue #22: one daemon managing many tiny databases.
//!
//! For each count in `LITEWARDEN_SCALE_COUNTS` (default `1000,10000`):
//! tiny databases (one table of 100 rows), `every: 1h`, zstd + verify
//! quick, health and maintenance off, none backed up yet. Measures the time
//! until every database has its first backup, peak threads and RSS during
//! that catch-up, `/healthz` latency (p50/p99) while it runs, the time from
//! a save of `jobs.yaml` to the new schedule in the state database (an edit
//! of one database; an edit of the defaults, which changes every
//! database), then the daemon's CPU over
//! `LITEWARDEN_SCALE_STEADY_SECS` (default 600) of steady state.
//! `LITEWARDEN_SCALE_PARALLEL` sets `max_parallel_jobs` (default: the
//! daemon's, 2).
//!
//! Run with `cargo bench --bench scale`.

mod process;

use process::{cpu_ticks, status_field};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Targets at 10 000 databases on a 2-core machine (the issue's).
const TARGETS: &str = "targets at 10 000: catch-up <= 60 s, threads <= 2 x cores + 8, RSS <= 100 MB, /healthz p99 <= 100 ms, reload <= 2 s, steady CPU <= 10 % of one core";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The config of `count` databases, backed up `every` (`1h`; the edits
/// make it `2h` for all, or `first` for `db00000` alone).
fn config(count: usize, port: u16, every: &str, first: Option<&str>) -> String {
    let parallel = std::env::var("LITEWARDEN_SCALE_PARALLEL")
        .map(|n| format!(", max_parallel_jobs: {n}"))
        .unwrap_or_default();
    let mut text = format!(
        "version: 1\nsettings: {{ listen: \"127.0.0.1:{port}\"{parallel} }}\ndefaults:\n  backup: {{ every: {every}, compress: zstd, verify: quick }}\n  health: {{ enabled: false }}\n  optimize: {{ enabled: false }}\ndatabases:\n"
    );
    for i in 0..count {
        match first {
            Some(first) if i == 0 => text.push_str(&format!(
                "  db00000: {{ path: data/db00000.db, backup: {{ every: {first} }} }}\n"
            )),
            _ => text.push_str(&format!("  db{i:05}: {{ path: data/db{i:05}.db }}\n")),
        }
    }
    text
}

fn save(dir: &Path, text: &str) {
    std::fs::write(dir.join("jobs.yaml.new"), text).expect("write");
    std::fs::rename(dir.join("jobs.yaml.new"), dir.join("jobs.yaml")).expect("rename");
}

/// `count` copies of one tiny database.
fn databases(dir: &Path, count: usize) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let template = dir.join("template.db");
    let conn = rusqlite::Connection::open(&template).expect("template");
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
         INSERT INTO t (v) SELECT 'row ' || i FROM n;",
    )
    .expect("fill the template");
    drop(conn);
    for i in 0..count {
        std::fs::copy(&template, data.join(format!("db{i:05}.db"))).expect("copy");
    }
}

fn start(dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_litewarden"))
        .arg("run")
        .current_dir(dir)
        .env("RUST_LOG", "litewarden=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the daemon")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Databases with at least one backup in the catalog (read-only).
fn backed_up(dir: &Path) -> i64 {
    let path = dir.join(".litewarden/state.db");
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    let _ = conn.busy_timeout(Duration::from_secs(1));
    conn.query_row("SELECT count(DISTINCT database) FROM backups", [], |r| {
        r.get(0)
    })
    .unwrap_or(0)
}

fn healthz(port: u16) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    Some(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

/// Waits until the daemon's schedule table shows `database`'s backup
/// scheduled as `since` (the edit was applied).
fn wait_for_reload(dir: &Path, database: &str, since: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let path = dir.join(".litewarden/state.db");
    while started.elapsed() < limit {
        if let Ok(conn) =
            rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        {
            let schedule: Option<String> = conn
                .query_row(
                    "SELECT schedule FROM daemon_jobs WHERE job = 'backup' AND database = ?1 AND schedule = ?2",
                    [database, since],
                    |r| r.get(0),
                )
                .ok();
            if schedule.is_some() {
                return Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn shown(took: Option<Duration>) -> String {
    took.map_or("timed out".to_string(), |d| {
        format!("{:.0} ms", d.as_secs_f64() * 1000.0)
    })
}

fn run(count: usize, steady: Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    databases(dir.path(), count);
    let port = free_port();
    save(dir.path(), &config(count, port, "1h", None));
    let started = Instant::now();
    let daemon = start(dir.path());
    let pid = daemon.id();

    let probing = Arc::new(AtomicBool::new(true));
    let prober = {
        let probing = Arc::clone(&probing);
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut failures = 0;
            while probing.load(Ordering::Relaxed) {
                match healthz(port) {
                    Some(took) => latencies.push(took),
                    None if latencies.is_empty() => {} // not listening yet
                    None => failures += 1,
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (latencies, failures)
        })
    };

    let mut peak_threads = 0;
    let mut done = 0;
    let limit = Duration::from_secs(1800);
    while started.elapsed() < limit {
        peak_threads = peak_threads.max(status_field(pid, "Threads:"));
        done = backed_up(dir.path());
        if done as usize >= count {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let catch_up = started.elapsed();
    probing.store(false, Ordering::Relaxed);
    let (mut latencies, failures) = prober.join().expect("prober");
    latencies.sort();
    let peak_rss = status_field(pid, "VmHWM:");

    let limit = Duration::from_secs(120);
    save(dir.path(), &config(count, port, "1h", Some("3h")));
    let one = wait_for_reload(dir.path(), "db00000", "every 3h", limit);
    save(dir.path(), &config(count, port, "2h", None));
    let all = wait_for_reload(
        dir.path(),
        &format!("db{:05}", count - 1),
        "every 2h",
        limit,
    );
    save(dir.path(), &config(count, port, "1h", None));
    let _ = wait_for_reload(
        dir.path(),
        &format!("db{:05}", count - 1),
        "every 1h",
        limit,
    );

    let ticks_before = cpu_ticks(pid);
    let window = Instant::now();
    std::thread::sleep(steady);
    let ticks = cpu_ticks(pid) - ticks_before;
    let window = window.elapsed().as_secs_f64();
    let threads_after = status_field(pid, "Threads:");
    stop(daemon);

    println!(
        "{count} databases: first backup of every database in {:.1} s ({done}/{count}); peak threads {peak_threads} (at rest {threads_after}); peak RSS {:.1} MiB; /healthz during catch-up p50 {:.1} ms, p99 {:.1} ms over {} probes ({failures} failed); one database edited -> applied {}, the defaults edited (every database) -> applied {}; steady state CPU {:.2} s over {:.0} s = {:.2} % of one core",
        catch_up.as_secs_f64(),
        peak_rss as f64 / 1024.0,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len(),
        shown(one),
        shown(all),
        ticks as f64 / 100.0,
        window,
        ticks as f64 / 100.0 / window * 100.0,
    );
}

fn main() {
    let counts: Vec<usize> = std::env::var("LITEWARDEN_SCALE_COUNTS")
        .unwrap_or_else(|_| "1000,10000".to_string())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let steady = Duration::from_secs(
        std::env::var("LITEWARDEN_SCALE_STEADY_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600),
    );
    println!(
        "scale: {} cores; {TARGETS}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for count in counts {
        run(count, steady);
    }
}

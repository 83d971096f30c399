//! Benchmarks for issue #6, on the real daemon:
//! - save → "reload applied" latency over 20 edits (rename saves), p50/p95;
//! - idle daemon managing three databases: RSS and CPU over a window
//!   (`LITEWARDEN_BENCH_IDLE_SECS`, default 60);
//! - 1000 databases: one edit → "reload applied".
//!
//! Run with `cargo bench --bench daemon`.

mod process;

use process::{cpu_ticks, status_field};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn start(dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("daemon.log")).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_litewarden"))
        .arg("run")
        .current_dir(dir)
        .env("RUST_LOG", "litewarden=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the daemon")
}

/// Waits until the daemon's log holds `count` lines containing `needle`,
/// reading only what was appended since the last look (re-reading a large
/// log every few milliseconds would slow the daemon being measured).
fn wait_for(dir: &Path, needle: &str, count: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut file = std::fs::File::open(dir.join("daemon.log")).expect("open the log");
    let mut text = String::new();
    loop {
        let mut chunk = String::new();
        let _ = file.read_to_string(&mut chunk);
        text.push_str(&chunk);
        if text.matches(needle).count() >= count {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "timed out waiting for {needle:?} #{count}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn save(dir: &Path, text: &str) {
    std::fs::write(dir.join("jobs.yaml.new"), text).expect("write");
    std::fs::rename(dir.join("jobs.yaml.new"), dir.join("jobs.yaml")).expect("rename");
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn config(databases: usize, hour: usize) -> String {
    let mut text = format!(
        "version: 1\ndefaults:\n  pragmas: {{ journal_mode: wal }}\n  backup: {{ schedule: \"0 {hour} * * *\" }}\ndatabases:\n"
    );
    for i in 0..databases {
        text.push_str(&format!("  db{i:04}: {{ path: data/db{i:04}.db }}\n"));
    }
    text
}

fn main() {
    let idle_secs: u64 = std::env::var("LITEWARDEN_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);

    let dir = tempfile::tempdir().expect("temp dir");
    save(dir.path(), &config(3, 3));
    let daemon = start(dir.path());
    wait_for(dir.path(), "ready", 1, Duration::from_secs(30));
    let mut latencies = Vec::new();
    for edit in 0..20 {
        save(dir.path(), &config(3, 4 + edit % 10));
        let took = wait_for(
            dir.path(),
            "reload applied",
            edit + 1,
            Duration::from_secs(10),
        );
        latencies.push(took);
        std::thread::sleep(Duration::from_millis(100));
    }
    latencies.sort();
    println!(
        "save -> reload applied, 20 edits, 3 databases: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (target p95 <= 500 ms)",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.95).as_secs_f64() * 1000.0,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );

    let pid = daemon.id();
    std::thread::sleep(Duration::from_secs(5));
    let ticks_before = cpu_ticks(pid);
    let window = Instant::now();
    let mut peak_rss = 0;
    while window.elapsed() < Duration::from_secs(idle_secs) {
        peak_rss = peak_rss.max(status_field(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let ticks = cpu_ticks(pid) - ticks_before;
    let clock_ticks = 100.0;
    println!(
        "idle over {idle_secs} s, 3 databases: peak RSS {:.1} MiB (target <= 20 MiB), CPU {:.2} s = {:.3}% of one core",
        peak_rss as f64 / 1024.0,
        ticks as f64 / clock_ticks,
        ticks as f64 / clock_ticks / idle_secs as f64 * 100.0
    );
    stop(daemon);

    let big = tempfile::tempdir().expect("temp dir");
    save(big.path(), &config(1000, 3));
    let daemon = start(big.path());
    let startup = wait_for(big.path(), "ready", 1, Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(2));
    let mut reloads = Vec::new();
    for edit in 0..5 {
        let one_change = config(1000, 3).replacen(
            "  db0500: { path: data/db0500.db }",
            &format!(
                "  db0500: {{ path: data/db0500.db, backup: {{ schedule: \"0 {} * * *\" }} }}",
                4 + edit
            ),
            1,
        );
        save(big.path(), &one_change);
        reloads.push(wait_for(
            big.path(),
            "reload applied",
            edit + 1,
            Duration::from_secs(60),
        ));
        std::thread::sleep(Duration::from_millis(500));
    }
    reloads.sort();
    println!(
        "1000 databases: startup (create 1000 files, schedule) {:.2} s; one edit -> reload applied over 5 edits: p50 {:.0} ms, max {:.0} ms (target <= 1000 ms); RSS {:.1} MiB",
        startup.as_secs_f64(),
        percentile(&reloads, 0.5).as_secs_f64() * 1000.0,
        reloads.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        status_field(daemon.id(), "VmRSS:") as f64 / 1024.0
    );
    if let Ok(keep) = std::env::var("LITEWARDEN_BENCH_KEEP_LOG") {
        let _ = std::fs::copy(big.path().join("daemon.log"), keep);
    }
    stop(daemon);
}

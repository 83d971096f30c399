//! Benchmark for issue #3: `check` and `plan` of a generated jobs.yaml with
//! 1000 databases (target: under 1 s each on a 2-core machine).
//!
//! Times the real binary end to end (process start, parse, validate,
//! preflight, observe 1000 files, diff) and the library stages in-process,
//! and prints medians. Run with `cargo bench --bench config`.
//!
//! Then (issue #14) how `check` scales: 20,000 and 100,000 databases, one
//! run each, and the ratio of the two times (5 when linear, 25 when
//! quadratic; 40,000 databases took 7.75 s before the key lookup in the
//! position-aware document became a hash lookup).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use litewarden::config::{self, Environment};
use litewarden::plan::{self, Desired};

const DATABASES: usize = 1000;
const ROUNDS: usize = 15;

fn generate(dir: &Path, databases: usize) {
    let mut text = String::from(
        "version: 1\nsettings: { backup_dir: /var/backups/lw }\ndefaults:\n  pragmas: { journal_mode: wal, synchronous: normal, busy_timeout: 5s }\n  backup:\n    every: ${DB_UPDATE_INTERVAL:-3600}s\n    retention: { keep_last: 3, keep_hourly: 24, keep_daily: 7, keep_within: \"${BACKUP_RETENTION_DAYS:-7}d\" }\n  health: { every: 5m, max_wal_size: 256MiB, max_backup_age: 2h }\n  optimize: { schedule: \"@hourly\" }\ndatabases:\n",
    );
    for i in 0..databases {
        text.push_str(&format!("  db{i:04}: {{ path: \"data/db{i:04}.db\" }}\n"));
    }
    std::fs::write(dir.join("jobs.yaml"), text).expect("write jobs.yaml");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn binary(dir: &Path, command: &str, expected: i32) -> Duration {
    time(|| {
        let status = Command::new(env!("CARGO_BIN_EXE_litewarden"))
            .arg(command)
            .current_dir(dir)
            .env("RUST_LOG", "error")
            .output()
            .expect("run litewarden");
        assert_eq!(
            status.status.code(),
            Some(expected),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    })
}

fn report(name: &str, took: Duration) {
    let verdict = if took < Duration::from_secs(1) {
        "ok"
    } else {
        "OVER TARGET"
    };
    println!(
        "{name:<48} {:>9.1} ms  (target < 1000 ms: {verdict})",
        took.as_secs_f64() * 1000.0
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path(), DATABASES);
    let file = dir.path().join("jobs.yaml");
    let environment = Environment::from_process();
    println!("{DATABASES} databases, median of {ROUNDS} rounds");

    report("litewarden check (binary)", binary(dir.path(), "check", 0));
    report(
        "litewarden plan, all files missing (binary)",
        binary(dir.path(), "plan", 2),
    );
    report(
        "load + validate + preflight (library)",
        time(|| {
            config::load(&file, &environment).expect("valid config");
        }),
    );

    let loaded = config::load(&file, &environment).expect("valid config");
    let status = Command::new(env!("CARGO_BIN_EXE_litewarden"))
        .arg("apply")
        .current_dir(dir.path())
        .env("RUST_LOG", "error")
        .output()
        .expect("run apply");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    report(
        "litewarden plan, 1000 existing files (binary)",
        binary(dir.path(), "plan", 0),
    );
    report(
        "observe + diff, 1000 existing files (library)",
        time(|| {
            let observed = litewarden::observe::observe(
                &loaded.config,
                litewarden::clock::Clock::now(&litewarden::clock::SystemClock),
            )
            .expect("observe");
            assert!(plan::diff(&observed, &Desired::from_config(&loaded.config)).is_empty());
        }),
    );
    scaling();
}

/// `check` of 20,000 and of 100,000 databases, and the ratio.
fn scaling() {
    let mut took = Vec::new();
    for databases in [20_000, 100_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        generate(dir.path(), databases);
        let start = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_litewarden"))
            .arg("check")
            .current_dir(dir.path())
            .env("RUST_LOG", "error")
            .output()
            .expect("run check");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        took.push(start.elapsed());
        println!(
            "litewarden check, {databases} databases          {:>9.1} ms",
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
    let ratio = took[1].as_secs_f64() / took[0].as_secs_f64();
    println!(
        "5x the databases took {ratio:.1}x the time (linear: 5, quadratic: 25): {}",
        if ratio < 10.0 { "ok" } else { "NOT LINEAR" }
    );
}

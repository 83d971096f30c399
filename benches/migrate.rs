//! Benchmark for issue #5: applying 200 small migrations to a ~1 GiB
//! crawler database while a writer process keeps committing.
//!
//! Reports the total `migrate up` time, the pre-migration backup's time, and
//! the writer's longest stall (the longest a single 50-row transaction took
//! from BEGIN IMMEDIATE to COMMIT) during the run against before it.
//! `LITEWARDEN_BENCH_MB` sets the size (default 1024). Run with
//! `cargo bench --bench migrate`.

#[path = "crawler_db.rs"]
mod crawler_db;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WRITER: &str = r#"
import os, sqlite3, sys, time
path, stop, report = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(path, timeout=120, isolation_level=None)
n = c.execute("select max(id) from crawled_pages").fetchone()[0] + 1
worst, count = 0.0, 0
while not os.path.exists(stop):
    t = time.monotonic()
    c.execute("begin immediate")
    for _ in range(50):
        c.execute("insert into crawled_pages (id, url, domain, status, fetched_at) values (?, ?, 'w.example', 'fetched', '2026-11-29')", (n, "https://w.example/%d" % n))
        n += 1
    c.execute("commit")
    worst = max(worst, time.monotonic() - t)
    count += 1
    if os.path.exists(report + ".reset"):
        os.remove(report + ".reset")
        worst = 0.0
    with open(report, "w") as f:
        f.write("%f %d" % (worst, count))
    time.sleep(0.005)
"#;

fn read_report(path: &Path) -> (f64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut parts = text.split_whitespace();
    (
        parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0),
        parts.next().and_then(|v| v.parse().ok()).unwrap_or(0),
    )
}

fn main() {
    let megabytes: u64 = std::env::var("LITEWARDEN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&data).expect("create target/bench-data");
    let source = data.join(format!("crawler-{megabytes}MiB.db"));
    crawler_db::generate(&source, megabytes);
    let work = tempfile::tempdir_in(&data).expect("work dir");
    let work = work.path();
    let db = work.join("crawler.db");
    std::fs::copy(&source, &db).expect("copy the database");
    let migrations = work.join("migrations");
    std::fs::create_dir_all(&migrations).expect("migrations dir");
    for i in 1..=200 {
        let sql = match i % 4 {
            0 => format!("ALTER TABLE crawled_pages ADD COLUMN extra_{i} INTEGER DEFAULT {i};\n"),
            1 => format!(
                "CREATE TABLE audit_{i} (id INTEGER PRIMARY KEY, at TEXT NOT NULL, note TEXT);\n"
            ),
            2 => format!(
                "INSERT INTO audit_{} (at, note) VALUES ('2026-11-29', 'step {i}');\n",
                i - 1
            ),
            _ => format!("CREATE INDEX audit_{}_at ON audit_{} (at);\n", i - 2, i - 2),
        };
        std::fs::write(migrations.join(format!("{i:04}_step.sql")), sql)
            .expect("write a migration");
    }
    std::fs::write(
        work.join("jobs.yaml"),
        "version: 1\ndatabases:\n  crawler: { path: crawler.db, pragmas: { journal_mode: wal, busy_timeout: 30s }, backup: { compress: zstd, verify: quick }, migrations: { dir: migrations } }\n",
    )
    .expect("write jobs.yaml");

    let script = work.join("writer.py");
    std::fs::write(&script, WRITER).expect("write the writer");
    let stop = work.join("stop");
    let report = work.join("writer.txt");
    let mut writer = Command::new("python3")
        .arg(&script)
        .arg(&db)
        .arg(&stop)
        .arg(&report)
        .spawn()
        .expect("python3 for the writer");
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(format!("{}.reset", report.display()), b"").expect("reset the writer's worst");
    std::thread::sleep(Duration::from_secs(3));
    let (stall_before, txns_before) = read_report(&report);
    std::fs::write(format!("{}.reset", report.display()), b"").expect("reset the writer's worst");
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_litewarden"))
        .args(["migrate", "up", "crawler", "--json"])
        .current_dir(work)
        .env("RUST_LOG", "error")
        .stderr(Stdio::inherit())
        .output()
        .expect("run migrate up");
    let total = started.elapsed();
    let (stall_during, txns_after) = read_report(&report);
    std::fs::write(&stop, b"").expect("stop the writer");
    let _ = writer.wait();
    assert!(output.status.success(), "migrate up failed");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let applied = json["report"]["applied"].as_array().map_or(0, Vec::len);
    let longest_lock = json["report"]["applied"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["lock_ms"].as_u64())
        .max()
        .unwrap_or(0);
    let listed = Command::new(env!("CARGO_BIN_EXE_litewarden"))
        .args(["backups", "crawler", "--json"])
        .current_dir(work)
        .env("RUST_LOG", "error")
        .output()
        .expect("list backups");
    let backups: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let backup_ms = backups["backups"][0]["backup"]["duration_ms"]
        .as_u64()
        .unwrap_or(0);
    let size = std::fs::metadata(&source).map(|m| m.len()).unwrap_or(0);
    println!(
        "database {:.0} MiB, {applied} migrations applied with a writer committing 50-row transactions",
        size as f64 / 1048576.0
    );
    println!(
        "total migrate up (incl. backup):      {:>8.2} s",
        total.as_secs_f64()
    );
    println!(
        "pre-migration backup (zstd, quick):   {:>8.2} s",
        backup_ms as f64 / 1000.0
    );
    println!(
        "migrations alone:                     {:>8.2} s",
        total.as_secs_f64() - backup_ms as f64 / 1000.0
    );
    println!("longest write lock held by one file:  {longest_lock:>8} ms");
    println!(
        "writer's longest stall, before:       {:>8.1} ms",
        stall_before * 1000.0
    );
    println!(
        "writer's longest stall, during:       {:>8.1} ms",
        stall_during * 1000.0
    );
    println!(
        "writer transactions during the run:   {:>8}",
        txns_after.saturating_sub(txns_before)
    );
}

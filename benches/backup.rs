//! Benchmark for issue #4: backing up a ~1 GiB crawler-shaped WAL database.
//!
//! In one run, with paired rounds (each round runs every contender once, in
//! the same page-cache state) and medians over `ROUNDS` (default 7):
//! `cp && sync`, `sqlite3 db ".backup out"`, and `litewarden backup` per
//! method with verify none and quick, no compression, plus snapshot with
//! zstd. Then, with a steady writer process, every method once, reporting
//! the backup time, the WAL growth and the writer's throughput during the
//! backup against before it.
//!
//! `LITEWARDEN_BENCH_MB` sets the database size (default 1024),
//! `LITEWARDEN_BENCH_ROUNDS` the rounds. The database is cached in
//! `target/bench-data/`. Run with `cargo bench --bench backup`.

#[path = "crawler_db.rs"]
mod crawler_db;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

struct Contender {
    name: String,
    run: Box<dyn Fn(&Path) -> u64>,
}

fn run(command: &mut Command) {
    let output = command
        .stdout(Stdio::null())
        .output()
        .expect("run a benchmark command");
    assert!(
        output.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    if e.path().is_dir() {
                        dir_size(&e.path())
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn litewarden(work: &Path, db: &Path, method: &str, verify: &str, compress: &str) -> Contender {
    let config = work.join(format!("{method}-{verify}-{compress}.yaml"));
    std::fs::write(
        &config,
        format!(
            "version: 1\nsettings: {{ state_dir: state, backup_dir: out-{method}-{verify}-{compress} }}\ndatabases:\n  crawler: {{ path: \"{}\", backup: {{ method: {method}, verify: {verify}, compress: {compress} }} }}\n",
            db.display()
        ),
    )
    .expect("write a config");
    let out = work.join(format!("out-{method}-{verify}-{compress}"));
    Contender {
        name: format!(
            "litewarden {method}, verify {verify}{}",
            if compress == "zstd" { ", zstd" } else { "" }
        ),
        run: Box::new(move |_| {
            let _ = std::fs::remove_dir_all(&out);
            run(Command::new(env!("CARGO_BIN_EXE_litewarden"))
                .arg("-c")
                .arg(&config)
                .args(["backup", "crawler"])
                .env("RUST_LOG", "error"));
            dir_size(&out)
        }),
    }
}

fn main() {
    let megabytes = env_number("LITEWARDEN_BENCH_MB", 1024);
    let rounds = env_number("LITEWARDEN_BENCH_ROUNDS", 7) as usize;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&data).expect("create target/bench-data");
    let db = data.join(format!("crawler-{megabytes}MiB.db"));
    let started = Instant::now();
    crawler_db::generate(&db, megabytes);
    let size = std::fs::metadata(&db).expect("benchmark database").len();
    println!(
        "database: {} ({:.0} MiB, ready in {:.1}s), {rounds} paired rounds, medians",
        db.display(),
        size as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );

    let work = tempfile::tempdir_in(&data).expect("work dir");
    let work = work.path().to_path_buf();
    let copy_target = work.join("cp.db");
    let backup_target = work.join("sqlite3-backup.db");
    let have_sqlite3 = Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut contenders = vec![Contender {
        name: "cp && sync".into(),
        run: Box::new({
            let db = db.clone();
            let target = copy_target.clone();
            move |_| {
                let _ = std::fs::remove_file(&target);
                run(Command::new("sh").arg("-c").arg(format!(
                    "cp '{}' '{}' && sync",
                    db.display(),
                    target.display()
                )));
                std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0)
            }
        }),
    }];
    if have_sqlite3 {
        contenders.push(Contender {
            name: "sqlite3 .backup".into(),
            run: Box::new({
                let db = db.clone();
                let target = backup_target.clone();
                move |_| {
                    let _ = std::fs::remove_file(&target);
                    run(Command::new("sqlite3")
                        .arg(&db)
                        .arg(format!(".backup '{}'", target.display())));
                    std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0)
                }
            }),
        });
    } else {
        println!(
            "(sqlite3 CLI not found: its row is skipped; apt-get install sqlite3 to include it)"
        );
    }
    for method in ["snapshot", "api", "vacuum"] {
        for verify in ["none", "quick"] {
            contenders.push(litewarden(&work, &db, method, verify, "none"));
        }
    }
    contenders.push(litewarden(&work, &db, "snapshot", "none", "zstd"));

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    let mut bytes = vec![0u64; contenders.len()];
    for round in 0..rounds {
        for (i, contender) in contenders.iter().enumerate() {
            let start = Instant::now();
            bytes[i] = (contender.run)(&work);
            samples[i].push(start.elapsed());
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let cp = medians[0];
    let sqlite = have_sqlite3.then(|| medians[1]);
    println!(
        "\n{:<38} {:>10} {:>10} {:>12} {:>14}",
        "contender", "median s", "x cp+sync", "x sqlite3", "bytes written"
    );
    for (i, contender) in contenders.iter().enumerate() {
        let t = medians[i].as_secs_f64();
        let vs_sqlite = sqlite.map_or("-".to_string(), |s| format!("{:.2}", t / s.as_secs_f64()));
        println!(
            "{:<38} {:>10.3} {:>10.2} {:>12} {:>14}",
            contender.name,
            t,
            t / cp.as_secs_f64(),
            vs_sqlite,
            bytes[i]
        );
    }
    writer_round(&work, &db);
}

const WRITER: &str = r#"
import os, sqlite3, sys, time
path, stop = sys.argv[1], sys.argv[2]
c = sqlite3.connect(path, timeout=60, isolation_level=None)
n = c.execute("select max(id) from crawled_pages").fetchone()[0] + 1
while not os.path.exists(stop):
    c.execute("begin immediate")
    for _ in range(50):
        c.execute("insert into crawled_pages (id, url, domain, status, fetched_at, body) values (?, ?, 'w.example', 'fetched', '2026-11-29T00:00:00Z', ?)", (n, "https://w.example/%d" % n, "x" * 1500))
        n += 1
    c.execute("commit")
"#;

fn rows(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.busy_timeout(Duration::from_secs(60))
        .expect("busy timeout");
    conn.query_row("SELECT count(*) FROM crawled_pages", [], |r| r.get(0))
        .expect("count")
}

fn wal_size(db: &Path) -> u64 {
    std::fs::metadata(PathBuf::from(format!("{}-wal", db.display())))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Every method once on a copy of the database while a writer commits
/// 50-row transactions without pause.
fn writer_round(work: &Path, source: &Path) {
    let db = work.join("live.db");
    run(Command::new("cp").arg(source).arg(&db));
    let script = work.join("writer.py");
    std::fs::write(&script, WRITER).expect("write the writer");
    println!("\nwith a steady writer (python3, 50-row transactions, no pause):");
    println!(
        "{:<22} {:>10} {:>14} {:>16} {:>16}",
        "method", "backup s", "WAL growth", "writer rows/s", "before rows/s"
    );
    for method in ["snapshot", "api", "vacuum"] {
        let stop = work.join(format!("stop-{method}"));
        let mut writer = Command::new("python3")
            .arg(&script)
            .arg(&db)
            .arg(&stop)
            .spawn()
            .expect("python3 for the writer");
        std::thread::sleep(Duration::from_secs(1));
        let (r0, t0) = (rows(&db), Instant::now());
        std::thread::sleep(Duration::from_secs(3));
        let before_rate = (rows(&db) - r0) as f64 / t0.elapsed().as_secs_f64();
        let contender = litewarden(work, &db, method, "quick", "none");
        let (wal0, r1, t1) = (wal_size(&db), rows(&db), Instant::now());
        (contender.run)(work);
        let took = t1.elapsed();
        let during_rate = (rows(&db) - r1) as f64 / took.as_secs_f64();
        let growth = wal_size(&db) as i64 - wal0 as i64;
        std::fs::write(&stop, b"").expect("stop the writer");
        let _ = writer.wait();
        println!(
            "{:<22} {:>10.3} {:>13.1}M {:>16.0} {:>16.0}",
            method,
            took.as_secs_f64(),
            growth as f64 / 1048576.0,
            during_rate,
            before_rate
        );
        run(Command::new("sqlite3")
            .arg(&db)
            .arg("PRAGMA wal_checkpoint(TRUNCATE);"));
    }
}

//! Benchmark for issues #4 and #12: backing up and restoring a
//! crawler-shaped WAL database (default 1 GiB).
//!
//! In one run, with paired rounds (each round runs every contender once, in
//! the same page-cache state) and medians over `ROUNDS` (default 7):
//! `cp && sync`, `sqlite3 db ".backup out"`, `sqlite3 .backup && zstd -T0 -1
//! && sync`, and `litewarden backup` per method with verify none and quick,
//! no compression, plus snapshot with zstd and verify none, quick (the
//! default) and full. Then restores of the default backup: `zstd -d &&
//! sync`, `litewarden restore --to`, and `litewarden restore` in place over
//! the unchanged database and over one where 10% of the rows were
//! rewritten. The targets of #12 are printed with their ratios. Then, with a
//! steady writer process, every method once, reporting the backup time, the
//! WAL growth and the writer's throughput during the backup against before
//! it.
//!
//! `LITEWARDEN_BENCH_MB` sets the database size (default 1024),
//! `LITEWARDEN_BENCH_ROUNDS` the rounds, `LITEWARDEN_BENCH_TARGETS_ONLY=1`
//! runs only the contenders #12's targets compare. The database is cached in
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
    /// Untimed preparation before each run.
    setup: Box<dyn Fn()>,
    run: Box<dyn Fn(&Path) -> u64>,
}

fn no_setup() -> Box<dyn Fn()> {
    Box::new(|| {})
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
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
        setup: no_setup(),
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
    let have_sqlite3 = have("sqlite3");
    let have_zstd = have("zstd");
    let mut contenders = vec![Contender {
        name: "cp && sync".into(),
        setup: no_setup(),
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
            setup: no_setup(),
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
    }
    if have_sqlite3 && have_zstd {
        contenders.push(Contender {
            name: SQLITE3_ZSTD.into(),
            setup: no_setup(),
            run: Box::new({
                let db = db.clone();
                let target = work.join("sqlite3-zstd.db");
                move |_| {
                    let _ = std::fs::remove_file(&target);
                    let zst = target.with_extension("db.zst");
                    let _ = std::fs::remove_file(&zst);
                    run(Command::new("sh").arg("-c").arg(format!(
                        "sqlite3 '{db}' \".backup '{out}'\" && zstd -q -T0 -1 --rm '{out}' && sync",
                        db = db.display(),
                        out = target.display()
                    )));
                    std::fs::metadata(&zst).map(|m| m.len()).unwrap_or(0)
                }
            }),
        });
    } else {
        println!(
            "(sqlite3 or zstd CLI not found: their rows are skipped; apt-get install sqlite3 zstd to include them)"
        );
    }
    for method in ["snapshot", "api", "vacuum"] {
        for verify in ["none", "quick"] {
            contenders.push(litewarden(&work, &db, method, verify, "none"));
        }
    }
    for verify in ["none", "quick", "full"] {
        contenders.push(litewarden(&work, &db, "snapshot", verify, "zstd"));
    }
    contenders.extend(restores(&work, &db, have_zstd));
    let focused = std::env::var_os("LITEWARDEN_BENCH_TARGETS_ONLY").is_some();
    if focused {
        contenders.retain(|c| c.name == "cp && sync" || TARGETED.contains(&c.name.as_str()));
    }

    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    let mut bytes = vec![0u64; contenders.len()];
    for round in 0..rounds {
        for (i, contender) in contenders.iter().enumerate() {
            (contender.setup)();
            let start = Instant::now();
            bytes[i] = (contender.run)(&work);
            samples[i].push(start.elapsed());
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let cp = medians[0];
    let sqlite = contenders
        .iter()
        .position(|c| c.name == "sqlite3 .backup")
        .map(|i| medians[i]);
    println!(
        "\n{:<46} {:>10} {:>10} {:>12} {:>14}",
        "contender", "median s", "x cp+sync", "x sqlite3", "bytes written"
    );
    for (i, contender) in contenders.iter().enumerate() {
        let t = medians[i].as_secs_f64();
        let vs_sqlite = sqlite.map_or("-".to_string(), |s| format!("{:.2}", t / s.as_secs_f64()));
        println!(
            "{:<46} {:>10.3} {:>10.2} {:>12} {:>14}",
            contender.name,
            t,
            t / cp.as_secs_f64(),
            vs_sqlite,
            bytes[i]
        );
    }
    targets(&contenders, &medians);
    if !focused {
        writer_round(&work, &db);
    }
}

/// The contenders #12's targets compare (`LITEWARDEN_BENCH_TARGETS_ONLY=1`
/// runs only these, and `cp && sync`).
const TARGETED: [&str; 8] = [
    DEFAULT,
    "litewarden snapshot, verify none, zstd",
    SQLITE3_ZSTD,
    "litewarden snapshot, verify quick",
    ZSTD_D,
    "litewarden restore --to",
    "litewarden restore in place, unchanged db",
    "litewarden restore in place, 10% rows rewritten",
];

const SQLITE3_ZSTD: &str = "sqlite3 .backup && zstd -T0 -1 && sync";
const ZSTD_D: &str = "zstd -d && sync (the default backup)";
const DEFAULT: &str = "litewarden snapshot, verify quick, zstd";

/// The ratios issue #12 sets, each as (what, contender, baseline, at most).
fn targets(contenders: &[Contender], medians: &[Duration]) {
    let time = |name: &str| {
        contenders
            .iter()
            .position(|c| c.name == name)
            .map(|i| medians[i].as_secs_f64())
    };
    println!("\ntargets of #12:");
    for (what, contender, baseline, limit) in [
        (
            "default backup vs zstd without verify",
            DEFAULT,
            "litewarden snapshot, verify none, zstd",
            1.5,
        ),
        (
            "default backup vs sqlite3 .backup + zstd",
            DEFAULT,
            SQLITE3_ZSTD,
            0.75,
        ),
        (
            "plain backup, verify quick vs cp && sync",
            "litewarden snapshot, verify quick",
            "cp && sync",
            1.2,
        ),
        (
            "restore --to vs zstd -d && sync",
            "litewarden restore --to",
            ZSTD_D,
            1.5,
        ),
        (
            "restore in place vs zstd -d && sync",
            "litewarden restore in place, unchanged db",
            ZSTD_D,
            2.5,
        ),
        (
            "restore in place (10% rows rewritten) vs zstd -d && sync",
            "litewarden restore in place, 10% rows rewritten",
            ZSTD_D,
            2.5,
        ),
    ] {
        match (time(contender), time(baseline)) {
            (Some(t), Some(b)) => println!(
                "  {what:<58} {:>6.2}x (target <= {limit}) {}",
                t / b,
                if t / b <= limit { "met" } else { "MISSED" }
            ),
            _ => println!("  {what:<58} (a contender is missing)"),
        }
    }
}

/// Restores of the default backup of `source`: `zstd -d && sync`, then
/// `litewarden restore --to` and in place (over the unchanged database and
/// over one with 10% of its rows rewritten).
fn restores(work: &Path, source: &Path, have_zstd: bool) -> Vec<Contender> {
    let live = work.join("restore-live.db");
    run(Command::new("cp").arg(source).arg(&live));
    let config = work.join("restore.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nsettings: {{ state_dir: restore-state, backup_dir: restore-out }}\ndatabases:\n  crawler: {{ path: \"{}\", backup: {{ verify: quick, compress: zstd }} }}\n",
            live.display()
        ),
    )
    .expect("write the restore config");
    run(Command::new(env!("CARGO_BIN_EXE_litewarden"))
        .arg("-c")
        .arg(&config)
        .args(["backup", "crawler"])
        .env("RUST_LOG", "error"));
    let backup = std::fs::read_dir(work.join("restore-out/crawler"))
        .expect("the backup directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "zst"))
        .expect("the default backup");
    let litewarden = move |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_litewarden"));
        command
            .arg("-c")
            .arg(&config)
            .args(args)
            .env("RUST_LOG", "error");
        command
    };
    let mut contenders = Vec::new();
    if have_zstd {
        let out = work.join("zstd-d.db");
        contenders.push(Contender {
            name: ZSTD_D.into(),
            setup: Box::new({
                let out = out.clone();
                move || {
                    let _ = std::fs::remove_file(&out);
                }
            }),
            run: Box::new({
                let backup = backup.clone();
                move |_| {
                    run(Command::new("sh").arg("-c").arg(format!(
                        "zstd -q -d -o '{}' '{}' && sync",
                        out.display(),
                        backup.display()
                    )));
                    std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0)
                }
            }),
        });
    }
    let to = work.join("restored-to.db");
    contenders.push(Contender {
        name: "litewarden restore --to".into(),
        setup: Box::new({
            let to = to.clone();
            move || {
                let _ = std::fs::remove_file(&to);
            }
        }),
        run: Box::new({
            let litewarden = litewarden.clone();
            move |_| {
                run(&mut litewarden(&[
                    "restore",
                    "crawler",
                    "--to",
                    to.to_str().unwrap(),
                    "--yes",
                ]));
                std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0)
            }
        }),
    });
    for (name, rewrite) in [
        ("litewarden restore in place, unchanged db", false),
        ("litewarden restore in place, 10% rows rewritten", true),
    ] {
        let live = live.clone();
        let safety_copies = work.join("restore-out/crawler");
        contenders.push(Contender {
            name: name.into(),
            setup: Box::new(move || {
                remove_plain_backups(&safety_copies);
                if rewrite {
                    let conn = rusqlite::Connection::open(&live).expect("open the live copy");
                    conn.execute_batch(
                        "UPDATE crawled_pages SET body = upper(body) WHERE id % 10 = 0; PRAGMA wal_checkpoint(TRUNCATE);",
                    )
                    .expect("rewrite 10% of the rows");
                }
            }),
            run: Box::new({
                let litewarden = litewarden.clone();
                move |_| {
                    run(&mut litewarden(&["restore", "crawler", "--from", "latest", "--yes"]));
                    0
                }
            }),
        });
    }
    contenders
}

/// Removes the uncompressed (pre-restore safety) copies that earlier rounds
/// left, so the disk does not fill over the rounds.
fn remove_plain_backups(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".db") || name.ends_with(".db.json") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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

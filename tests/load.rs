//! The load proof of issue #14, a test binary of its own so it runs after
//! the integration tests instead of beside them: a writer at full speed on
//! each of three databases (Python's sqlite3, one committed row per
//! transaction, its own process) for `LITEWARDEN_LOAD_SECS` (60 in CI),
//! first alone and then while the daemon backs up every 5 s and runs health
//! and optimise. Afterwards every row each writer saw committed is in its
//! database, each database passes `integrity_check`, every listed backup
//! verifies in another process, and each database's last backup run
//! succeeded, and no run failed. (A snapshot backup once failed here at the
//! end of its read transaction with "database disk image is malformed":
//! closing its own descriptor of the database file had dropped the daemon's
//! POSIX locks, so a writer closing its last connection could checkpoint
//! and delete the WAL under the snapshot; see `src/db/file.rs`.) The
//! writers' commit latency (p50, p99, max stall) with and without the
//! daemon is printed and recorded.

#[path = "common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, binary, count, integrity_check_elsewhere};

const DATABASES: [&str; 3] = ["website_crawler", "backup", "analytics"];

const WRITER: &str = r#"
import json, os, sqlite3, sys, time
path, stop = sys.argv[1], sys.argv[2]
c = sqlite3.connect(path, timeout=30, isolation_level=None)
c.execute("pragma journal_mode=wal")
c.execute("pragma synchronous=normal")
c.execute("create table if not exists ledger (id integer primary key, body text)")
n = c.execute("select coalesce(max(id), 0) from ledger").fetchone()[0]
first = n
latencies = []
busy = 0
while not os.path.exists(stop):
    started = time.perf_counter()
    try:
        c.execute("insert into ledger values (?, 'crawled page body')", (n + 1,))
    except sqlite3.OperationalError:
        busy += 1
        continue
    latencies.append(time.perf_counter() - started)
    n += 1
latencies.sort()
def at(q):
    return latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000 if latencies else 0
print(json.dumps({"first": first, "last": n, "commits": n - first, "busy": busy,
                  "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": latencies[-1] * 1000 if latencies else 0}))
"#;

fn seconds() -> u64 {
    std::env::var("LITEWARDEN_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

struct Writers {
    children: Vec<Child>,
    stop: PathBuf,
}

impl Writers {
    fn start(project: &Project, phase: &str) -> Self {
        let script = project.join("writer.py");
        std::fs::write(&script, WRITER).unwrap();
        let stop = project.join(&format!("stop-{phase}"));
        let children = DATABASES
            .iter()
            .map(|name| {
                Command::new("python3")
                    .arg(&script)
                    .arg(project.join(&format!("{name}.db")))
                    .arg(&stop)
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("python3 is on every CI machine")
            })
            .collect();
        Self { children, stop }
    }

    fn finish(self) -> Vec<serde_json::Value> {
        std::fs::write(&self.stop, b"").unwrap();
        self.children
            .into_iter()
            .map(|mut child| {
                let mut text = String::new();
                child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut text)
                    .unwrap();
                assert!(child.wait().unwrap().success(), "a writer failed");
                serde_json::from_str(text.trim()).unwrap()
            })
            .collect()
    }
}

fn run_for(duration: Duration) {
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn worst(figures: &[serde_json::Value], key: &str) -> f64 {
    figures
        .iter()
        .map(|f| f[key].as_f64().unwrap())
        .fold(0.0, f64::max)
}

fn assert_every_commit_kept(db: &Path, figures: &serde_json::Value) {
    let last = figures["last"].as_i64().unwrap();
    assert_eq!(count(db, "ledger"), last, "{}: rows lost", db.display());
    assert_eq!(integrity_check_elsewhere(db), "ok");
}

#[test]
fn three_writers_at_full_speed_lose_nothing_while_the_daemon_backs_up_every_five_seconds() {
    let project = Project::with_config(
        "version: 1\ndefaults:\n  pragmas: { journal_mode: wal, synchronous: normal, busy_timeout: 5s }\n  backup: { every: 5s, compress: zstd, verify: quick, retention: { keep_last: 4 } }\n  health: { every: 5s, max_wal_size: 1GiB, min_free_disk: 1MiB, max_backup_age: 1h }\n  optimize: { schedule: \"* * * * *\" }\ndatabases:\n  website_crawler: { path: website_crawler.db }\n  backup: { path: backup.db }\n  analytics: { path: analytics.db }\n",
    );
    let secs = seconds();
    let alone = Writers::start(&project, "alone");
    run_for(Duration::from_secs(secs / 4));
    let without = alone.finish();

    let log = std::fs::File::create(project.join("daemon.log")).unwrap();
    let mut daemon = Command::new(binary())
        .arg("run")
        .current_dir(project.path())
        .env("RUST_LOG", "litewarden=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let beside = Writers::start(&project, "daemon");
    run_for(Duration::from_secs(secs));
    let with = beside.finish();
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(daemon.wait().unwrap().success());

    let mut backups = 0;
    for (name, figures) in DATABASES.iter().zip(&with) {
        assert_every_commit_kept(&project.join(&format!("{name}.db")), figures);
        let listed = project.run(&["backups", name, "--json"]);
        let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
        let listed = json["backups"].as_array().unwrap();
        assert!(!listed.is_empty(), "{name}: no backup was taken");
        for backup in listed {
            let path = backup["path"].as_str().unwrap();
            let verify = project.run(&["verify", path]);
            assert_eq!(verify.code, 0, "{path}: {verify:?}");
            backups += 1;
        }
    }
    let log = std::fs::read_to_string(project.join("daemon.log")).unwrap();
    let runs = |job: &str| {
        log.lines()
            .filter(|l| l.contains("job finished") && l.contains(&format!("job=\"{job}\"")))
            .count()
    };
    let finished: Vec<&str> = log.lines().filter(|l| l.contains("job finished")).collect();
    let failures: Vec<&str> = finished
        .iter()
        .copied()
        .filter(|l| !l.contains("outcome=\"success\""))
        .collect();
    let summary = serde_json::json!({
        "seconds": secs,
        "commits_per_s_alone": without.iter().map(|f| f["commits"].as_f64().unwrap()).sum::<f64>() / (secs / 4) as f64,
        "commits_per_s_with_daemon": with.iter().map(|f| f["commits"].as_f64().unwrap()).sum::<f64>() / secs as f64,
        "p99_ms_alone": worst(&without, "p99_ms"),
        "p99_ms_with_daemon": worst(&with, "p99_ms"),
        "max_stall_ms_alone": worst(&without, "max_ms"),
        "max_stall_ms_with_daemon": worst(&with, "max_ms"),
        "busy_errors": with.iter().chain(&without).map(|f| f["busy"].as_i64().unwrap()).sum::<i64>(),
        "backup_runs": runs("backup"),
        "health_runs": runs("health"),
        "optimize_runs": runs("optimize"),
        "failed_runs": failures.len(),
        "failures": failures.iter().map(|l| l.split("error=").nth(1).unwrap_or(l)).collect::<Vec<_>>(),
        "backups_verified_after": backups,
    });
    println!("load: {summary}");
    common::record("load", summary);
    for name in DATABASES {
        assert!(
            finished.iter().any(|l| l.contains(&format!("db={name} "))
                && l.contains("job=\"backup\"")
                && l.contains("outcome=\"success\"")),
            "{name}: no backup run succeeded under load"
        );
    }
    assert!(failures.is_empty(), "failed runs under load: {failures:#?}");
}

//! Continuous replication (issue #24) through the real binary: kill -9 of
//! the application and the daemon at random points, point-in-time restores,
//! and the application checkpointing the log by itself.
//!
//! The writer commits transactions of two rows `(seq, 1)` and `(seq, 2)`,
//! each stamped with the time just before its commit, and prints each
//! `seq` with the time SQLite acknowledged it. `LITEWARDEN_CRASH_ROUNDS`
//! sets the kill rounds (20 by default).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::{Project, open};
use crate::crash::{Points, spawn};

/// How often the test daemons ship commits.
const SYNC_EVERY: Duration = Duration::from_millis(200);

/// What a restore may miss beyond `sync_every`: one step's own time on a
/// busy two-core machine.
const STEP_SLACK: Duration = Duration::from_millis(600);

fn config(extra: &str) -> String {
    format!(
        "version: 1
settings: {{ state_dir: st, backup_dir: bk }}
databases:
  app:
    path: app.db
    pragmas: {{ journal_mode: wal }}
    backup: {{ enabled: false }}
    replicate: {{ sync_every: 200ms, window: 1h }}
{extra}"
    )
}

fn project() -> Project {
    let project = Project::with_config(&config(""));
    assert_eq!(project.run(&["apply"]).code, 0);
    open(&project.join("app.db"))
        .execute_batch(
            "CREATE TABLE t (seq INTEGER, part INTEGER, at REAL, PRIMARY KEY (seq, part));",
        )
        .unwrap();
    project
}

/// The writer: `argv[2]` is the first seq, `argv[3]` (optional) runs a
/// `wal_checkpoint(argv[3])` every 25 commits.
const WRITER: &str = "import sqlite3, sys, threading, time
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
n = int(sys.argv[2])
mode = sys.argv[3] if len(sys.argv) > 3 else None
print('ready', flush=True)
while not stop.is_set():
    c.execute('BEGIN')
    at = time.time()
    c.execute('INSERT INTO t VALUES (?, 1, ?)', (n, at))
    c.execute('INSERT INTO t VALUES (?, 2, ?)', (n, at))
    c.execute('COMMIT')
    print(n, time.time(), flush=True)
    if mode and n % 25 == 0:
        c.execute('PRAGMA wal_checkpoint(%s)' % mode).fetchall()
    n += 1
    time.sleep(0.004)
";

struct Writer(Child);

impl Writer {
    fn start(db: &Path, first: i64, checkpoint: Option<&str>) -> Self {
        let (db, first) = (db.display().to_string(), first.to_string());
        let mut args = vec![db.as_str(), first.as_str()];
        args.extend(checkpoint);
        Writer(crate::common::python_ready(WRITER, &args))
    }

    /// Each acknowledged seq and when (seconds since the epoch).
    fn acknowledged(self) -> BTreeMap<i64, f64> {
        let output = self.0.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let (seq, at) = line.split_once(' ')?;
                Some((seq.parse().ok()?, at.parse().ok()?))
            })
            .collect()
    }

    fn stop(mut self) -> BTreeMap<i64, f64> {
        drop(self.0.stdin.take());
        self.acknowledged()
    }

    fn kill(mut self) -> BTreeMap<i64, f64> {
        let _ = self.0.kill();
        self.acknowledged()
    }
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The restored copy's transactions, by seq, with their commit stamps;
/// fails on a half transaction or a damaged file.
fn transactions(path: &Path) -> BTreeMap<i64, f64> {
    let conn = open(path);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", path.display());
    let mut parts: BTreeMap<i64, (u32, f64)> = BTreeMap::new();
    let mut statement = conn.prepare("SELECT seq, at FROM t").unwrap();
    for row in statement
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))
        .unwrap()
    {
        let (seq, at) = row.unwrap();
        parts.entry(seq).or_insert((0, at)).0 += 1;
    }
    for (seq, (count, _)) in &parts {
        assert_eq!(*count, 2, "transaction {seq} is half there");
    }
    parts.into_iter().map(|(seq, (_, at))| (seq, at)).collect()
}

fn restore_to(project: &Project, out: &str, extra: &[&str]) -> BTreeMap<i64, f64> {
    let mut args = vec!["restore", "app", "--to", out, "--yes"];
    args.extend_from_slice(extra);
    let restored = project.run(&args);
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    let restored = transactions(&project.join(out));
    std::fs::remove_file(project.join(out)).unwrap();
    restored
}

/// Waits until the daemon started a generation after `since`.
fn wait_for_generation(project: &Project, since: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = generations(project);
        if now.iter().any(|g| !since.contains(g)) {
            return;
        }
        assert!(Instant::now() < deadline, "no generation started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn generations(project: &Project) -> Vec<String> {
    let dir = project.join("bk/app/wal");
    crate::common::file_names(&dir)
        .into_iter()
        .filter(|name| dir.join(name).join("base.lwb").is_file())
        .collect()
}

fn kill_9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kill_9_of_writer_and_daemon_loses_at_most_one_sync_and_never_half_a_transaction() {
    let project = project();
    let mut points = Points::seeded();
    let rounds = std::env::var("LITEWARDEN_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut next = 1;
    for round in 0..rounds {
        let before = generations(&project);
        let mut daemon = spawn(&project, &["run"]);
        wait_for_generation(&project, &before);
        let writer = Writer::start(&project.join("app.db"), next, None);
        std::thread::sleep(Duration::from_millis(1000) + points.next(Duration::from_millis(1500)));
        kill_9(&mut daemon);
        let killed_at = epoch_now();
        let acknowledged = writer.kill();
        let restored = restore_to(&project, "out.db", &[]);
        let horizon = killed_at - (SYNC_EVERY + STEP_SLACK).as_secs_f64();
        let window = acknowledged
            .iter()
            .filter(|(seq, _)| !restored.contains_key(seq))
            .map(|(_, at)| killed_at - at)
            .fold(0.0, f64::max);
        eprintln!(
            "round {round}: {} acknowledged, lost the last {window:.3}s",
            acknowledged.len()
        );
        assert!(
            acknowledged.keys().any(|seq| restored.contains_key(seq)),
            "round {round}: nothing of this round was replicated"
        );
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|(seq, at)| **at < horizon && !restored.contains_key(seq))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} commits acknowledged well before the kill are not in the replica: {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        next = crate::common::count(&project.join("app.db"), "t") / 2 + 1;
        next = next.max(acknowledged.keys().max().map_or(next, |m| m + 1));
    }
}

/// Waits until the replica's newest point holds `seq`.
fn wait_until_replicated(project: &Project, seq: i64) -> BTreeMap<i64, f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let restored = restore_to(project, "caught-up.db", &[]);
        if restored.contains_key(&seq) {
            return restored;
        }
        assert!(Instant::now() < deadline, "seq {seq} never replicated");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rfc3339(epoch: f64) -> String {
    chrono::DateTime::from_timestamp_micros((epoch * 1e6) as i64)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[test]
fn every_point_restores_exactly_the_commits_made_before_it() {
    let project = project();
    let mut daemon = spawn(&project, &["run"]);
    wait_for_generation(&project, &[]);
    let started = epoch_now();
    let writer = Writer::start(&project.join("app.db"), 1, None);
    std::thread::sleep(Duration::from_secs(4));
    let acknowledged = writer.stop();
    let newest = *acknowledged.keys().max().unwrap();
    let all = wait_until_replicated(&project, newest);
    assert_eq!(all.len(), acknowledged.len());
    let mut points = Points::seeded();
    let span = Duration::from_secs_f64(epoch_now() - started);
    for _ in 0..20 {
        let at = started + points.next(span).as_secs_f64();
        let restored = restore_to(&project, "point.db", &["--at", &rfc3339(at)]);
        let after: Vec<_> = restored.iter().filter(|(_, stamp)| **stamp > at).collect();
        assert!(
            after.is_empty(),
            "restored at {at}: commits made after it: {after:?}"
        );
        let horizon = at - (SYNC_EVERY + STEP_SLACK).as_secs_f64();
        let missing: Vec<_> = all
            .iter()
            .filter(|(seq, stamp)| **stamp < horizon && !restored.contains_key(seq))
            .collect();
        assert!(
            missing.is_empty(),
            "restored at {at}: commits made well before it are missing: {:?}",
            &missing[..missing.len().min(5)]
        );
        let newest = restored.keys().max().copied().unwrap_or(0);
        assert_eq!(
            restored.len() as i64,
            newest,
            "a gap in the restored commits"
        );
    }
    let listed = project.run(&["backups", "app"]);
    assert!(
        listed.stdout.contains("replica: any point from"),
        "{}",
        listed.stdout
    );
    let listed = project.run(&["backups", "app", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed["replica"]["generations"], 1, "{listed}");
    let drill = project.run(&["drill", "app", "--json"]);
    assert_eq!(drill.code, 0, "{}", drill.stdout);
    let drill: serde_json::Value = serde_json::from_str(&drill.stdout).unwrap();
    assert_eq!(drill["drill"]["passed"], true, "{drill}");
    assert!(drill["drill"]["replica_point"].is_string(), "{drill}");
    kill_9(&mut daemon);
}

#[test]
fn check_refuses_replication_without_wal_or_without_an_offsite_store() {
    let without_wal = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, replicate: { sync_every: 1s } }\n",
    );
    let checked = without_wal.run(&["check"]);
    assert_eq!(checked.code, 1);
    assert!(
        checked.stderr.contains("databases.app.replicate: replication ships the write-ahead log: set `pragmas: { journal_mode: wal }`"),
        "{}",
        checked.stderr
    );
    let without_store = Project::with_config(&config("").replace(
        "replicate: { sync_every: 200ms, window: 1h }",
        "replicate: { to: offsite, sync_every: 50ms }",
    ));
    let checked = without_store.run(&["check"]);
    assert_eq!(checked.code, 1);
    assert!(
        checked
            .stderr
            .contains("databases.app.replicate.to: `to: offsite` needs an offsite store"),
        "{}",
        checked.stderr
    );
    assert!(
        checked
            .stderr
            .contains("databases.app.replicate.sync_every: must be at least 100ms"),
        "{}",
        checked.stderr
    );
}

#[test]
fn the_application_checkpointing_the_log_itself_loses_no_commit() {
    for mode in ["TRUNCATE", "RESTART"] {
        let project = project();
        let mut daemon = spawn(&project, &["run"]);
        wait_for_generation(&project, &[]);
        let writer = Writer::start(&project.join("app.db"), 1, Some(mode));
        std::thread::sleep(Duration::from_secs(3));
        open(&project.join("app.db"))
            .execute_batch("VACUUM")
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        let acknowledged = writer.stop();
        let newest = *acknowledged.keys().max().unwrap();
        let restored = wait_until_replicated(&project, newest);
        assert_eq!(
            restored.keys().collect::<Vec<_>>(),
            acknowledged.keys().collect::<Vec<_>>(),
            "{mode}: the replica holds exactly the acknowledged commits"
        );
        kill_9(&mut daemon);
    }
}

#[test]
fn status_metrics_and_alerts_show_a_broken_capture_and_its_recovery() {
    use crate::daemon::{Daemon, http_get, wait_until};
    let port = crate::common::free_port();
    let project = Project::with_config(&format!(
        "{}alerts:\n  - {{ name: replica, when: replication_broken, to: [ops@example.com] }}\n",
        config("").replace(
            "settings: { state_dir: st, backup_dir: bk }",
            &format!("settings: {{ state_dir: st, backup_dir: bk, listen: \"127.0.0.1:{port}\" }}"),
        )
    ));
    assert_eq!(project.run(&["apply"]).code, 0);
    std::fs::create_dir_all(project.join("bk/app")).unwrap();
    std::fs::write(project.join("bk/app/wal"), b"in the way").unwrap();
    let daemon = Daemon::start(&project);
    let status = || {
        let output = project.run(&["status", "--json"]);
        assert_eq!(output.code, 0, "{}", output.stderr);
        serde_json::from_str::<serde_json::Value>(&output.stdout).unwrap()
    };
    wait_until("the capture reports its failure", || {
        status()["replication"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("bk/app/wal"))
    });
    wait_until("replication_broken is active", || {
        status()["alerts"]
            .as_array()
            .is_some_and(|alerts| alerts.iter().any(|a| a["key"]["rule"] == "replica"))
    });
    let text = project.run(&["status"]);
    assert!(
        text.stdout.contains("replication: app: FAILING"),
        "{}",
        text.stdout
    );
    assert!(
        http_get(port, "/metrics").contains("litewarden_replication_failing{database=\"app\"} 1")
    );
    std::fs::remove_file(project.join("bk/app/wal")).unwrap();
    wait_until("the capture recovers", || {
        let now = status();
        let capture = &now["replication"][0];
        capture["error"].is_null()
            && capture["generation"].is_string()
            && capture["lag_seconds"].as_f64().is_some_and(|lag| lag < 5.0)
    });
    let metrics = http_get(port, "/metrics");
    assert!(
        metrics.contains("litewarden_replication_lag_seconds{database=\"app\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("litewarden_replication_failing{database=\"app\"} 0"));
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn to_offsite_an_empty_machine_restores_every_commit_from_the_bucket() {
    use crate::common::s3::{S3Server, credentials};
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = Project::with_config(&crate::offsite::config(
        &server,
        "  state_dir: st\n  backup_dir: bk\n",
        "    pragmas: { journal_mode: wal }\n    backup: { enabled: false }\n    replicate: { to: offsite, sync_every: 200ms, window: 1h }\n",
    ));
    assert_eq!(project.run_with(&["apply"], &credentials()).code, 0);
    open(&project.join("app.db"))
        .execute_batch(
            "CREATE TABLE t (seq INTEGER, part INTEGER, at REAL, PRIMARY KEY (seq, part));",
        )
        .unwrap();
    let daemon = crate::daemon::Daemon::start_with(&project, &credentials());
    wait_for_generation(&project, &[]);
    let writer = Writer::start(&project.join("app.db"), 1, None);
    std::thread::sleep(Duration::from_secs(2));
    let acknowledged = writer.stop();
    wait_until_replicated(&project, *acknowledged.keys().max().unwrap());
    let local = project.join("bk/app/wal");
    let remote = server.object_path("prod/app/wal");
    let files = |dir: &Path| -> Vec<String> {
        let mut names = Vec::new();
        for generation in crate::common::all_names(dir) {
            for file in crate::common::all_names(&dir.join(&generation)) {
                names.push(format!("{generation}/{file}"));
            }
        }
        names
    };
    crate::daemon::wait_until("the bucket holds the replica", || {
        let here = files(&local);
        !here.is_empty() && here == files(&remote)
    });
    drop(daemon);
    for gone in ["bk", "st", "app.db", "app.db-wal", "app.db-shm"] {
        let path = project.join(gone);
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_file(&path);
    }
    let restored = project.run_with(
        &["restore", "app", "--to", "out.db", "--yes"],
        &credentials(),
    );
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    let restored = transactions(&project.join("out.db"));
    assert_eq!(
        restored.keys().collect::<Vec<_>>(),
        acknowledged.keys().collect::<Vec<_>>()
    );
    let middle = acknowledged.values().nth(acknowledged.len() / 2).unwrap() + 0.5;
    let point = project.run_with(
        &[
            "restore",
            "app",
            "--to",
            "point.db",
            "--yes",
            "--at",
            &rfc3339(middle),
        ],
        &credentials(),
    );
    assert_eq!(point.code, 0, "{}", point.stderr);
    let point = transactions(&project.join("point.db"));
    assert!(point.values().all(|stamp| *stamp <= middle));
    let horizon = middle - (SYNC_EVERY + STEP_SLACK).as_secs_f64();
    assert!(
        acknowledged
            .iter()
            .filter(|(_, at)| **at < horizon)
            .all(|(seq, _)| point.contains_key(seq))
    );
}

#[test]
fn a_full_replica_disk_is_a_clear_error_and_the_replica_still_restores_its_last_point() {
    use crate::daemon::{Daemon, wait_until};
    let project = project();
    let Some(_disk) = crate::common::Tmpfs::mount(&project.join("bk"), "size=2m") else {
        eprintln!("skipped: this user cannot mount a tmpfs (CI runs this test as root)");
        return;
    };
    let daemon = Daemon::start(&project);
    wait_for_generation(&project, &[]);
    let db = project.join("app.db");
    let conn = open(&db);
    conn.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
        .unwrap();
    let status = || {
        let output = project.run(&["status", "--json"]);
        serde_json::from_str::<serde_json::Value>(&output.stdout).unwrap()
    };
    wait_until("the capture reports the full disk", || {
        conn.execute("INSERT INTO blobs (data) VALUES (randomblob(100000))", [])
            .unwrap();
        status()["replication"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("bk/app/wal") && e.contains("No space left on device"))
    });
    let live = crate::common::count(&db, "blobs");
    let restored = project.run(&["restore", "app", "--to", "out.db", "--yes"]);
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    let kept = crate::common::count(&project.join("out.db"), "blobs");
    assert!(kept > 0 && kept <= live, "{kept} of {live} rows");
    drop(daemon);
}

#[test]
fn a_clock_jumped_ahead_while_the_daemon_was_stopped_removes_no_generation() {
    use crate::daemon::{Daemon, wait_until};
    let project = project();
    let db = project.join("app.db");
    let watched = || std::fs::read_to_string(project.join("bk/app/wal/watched")).ok();
    let mut after_first = 0.0;
    for round in 1..=3 {
        let before = generations(&project);
        let daemon = Daemon::start(&project);
        wait_for_generation(&project, &before);
        open(&db)
            .execute("INSERT INTO t VALUES (?1, 1, 0), (?1, 2, 0)", [round])
            .unwrap();
        assert_eq!(daemon.stop(), 0);
        if round == 1 {
            after_first = epoch_now();
        }
    }
    let recorded = watched().expect("a stopped capture records the time it watched");
    let before = generations(&project);
    let daemon = Daemon::start_with(&project, &[("LITEWARDEN_CLOCK_OFFSET", "30d")]);
    wait_for_generation(&project, &before);
    wait_until("the window's retention ran under the jumped clock", || {
        watched().is_some_and(|now| now != recorded)
    });
    assert_eq!(daemon.stop(), 0);
    assert_eq!(
        generations(&project).len(),
        4,
        "{:?}",
        generations(&project)
    );
    let log = std::fs::read_to_string(project.join("daemon.log")).unwrap();
    assert!(
        log.contains("ahead of the time the capture watched"),
        "{log}"
    );
    let first = restore_to(&project, "first.db", &["--at", &rfc3339(after_first)]);
    assert_eq!(first.keys().copied().collect::<Vec<_>>(), [1]);
}

#[test]
fn a_reload_restarts_the_capture_when_replicate_changes_and_stops_it_when_it_goes() {
    use crate::daemon::{Daemon, wait_until};
    let project = project();
    let db = project.join("app.db");
    let daemon = Daemon::start(&project);
    wait_for_generation(&project, &[]);
    let status = || -> serde_json::Value {
        serde_json::from_str(&project.run(&["status", "--json"]).stdout).unwrap()
    };
    wait_until("the capture reports", || {
        status()["replication"][0]["database"] == "app"
    });
    let before = generations(&project);
    project.write(
        "jobs.yaml",
        config("")
            .replace("sync_every: 200ms", "sync_every: 300ms")
            .as_bytes(),
    );
    wait_for_generation(&project, &before);
    open(&db)
        .execute("INSERT INTO t VALUES (1, 1, 0), (1, 2, 0)", [])
        .unwrap();
    wait_until_replicated(&project, 1);

    project.write(
        "jobs.yaml",
        config("")
            .replace("    replicate: { sync_every: 200ms, window: 1h }\n", "")
            .as_bytes(),
    );
    wait_until("the capture stopped and its row went", || {
        status()["replication"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });
    wait_until("the log may be truncated: no capture pins it", || {
        let (busy, _, _): (i64, i64, i64) = open(&db)
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        busy == 0 && std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len()) == 0
    });
    drop(daemon);
}

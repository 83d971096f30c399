//! Issue #15 through the library as an application links it: 16 writer
//! threads on one `live::Manager` for `LITEWARDEN_LIVE_SECS` (10) with a
//! backup taken in the middle lose no row and see no busy error, while the
//! same load through Python's `sqlite3` (a connection per thread) is
//! measured for comparison; a read-only file and a missing managed database
//! are clear errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use litewarden::live::{LiveError, Manager, Options};

use crate::common::{Project, integrity_check_elsewhere};

fn seconds() -> u64 {
    std::env::var("LITEWARDEN_LIVE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

const PYTHON_WRITERS: &str = r#"
import sqlite3, sys, threading, time
path, seconds = sys.argv[1], float(sys.argv[2])
setup = sqlite3.connect(path)
setup.execute("pragma journal_mode=wal")
setup.execute("create table if not exists w (thread integer, n integer)")
setup.commit()
locked, committed = [0], [0]
lock = threading.Lock()
def writer(t):
    c = sqlite3.connect(path)
    n = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            c.execute("insert into w values (?, ?)", (t, n))
            c.commit()
            n += 1
        except sqlite3.OperationalError as e:
            if "locked" in str(e):
                with lock: locked[0] += 1
            c.rollback()
    with lock: committed[0] += n
threads = [threading.Thread(target=writer, args=(t,)) for t in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(committed[0], locked[0])
"#;

#[test]
fn sixteen_writer_threads_with_a_backup_in_the_middle_lose_nothing_and_never_see_busy() {
    let project = Project::new();
    let db = Arc::new(Manager::open(project.join("app.db"), Options::default()).unwrap());
    db.execute_batch("CREATE TABLE w (thread INTEGER, n INTEGER, body TEXT)")
        .unwrap();
    let secs = seconds();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..16)
        .map(|thread| {
            let (db, stop, errors) = (Arc::clone(&db), Arc::clone(&stop), Arc::clone(&errors));
            std::thread::spawn(move || {
                let mut committed = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let result = if committed % 10 == 0 {
                        db.transaction(|tx| {
                            tx.execute("INSERT INTO w VALUES (?1, ?2, 'a')", (thread, committed))?;
                            Ok(())
                        })
                    } else {
                        db.execute("INSERT INTO w VALUES (?1, ?2, 'b')", (thread, committed))
                            .map(|_| ())
                    };
                    match result {
                        Ok(()) => committed += 1,
                        Err(error) => {
                            eprintln!("writer {thread}: {error}");
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                committed
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs) / 2);
    let backup = db.backup_now().unwrap();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let committed: i64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(errors.load(Ordering::Relaxed), 0, "no busy or other error");
    let rows: i64 = db
        .query_row("SELECT count(*) FROM w", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, committed, "every committed row is there");
    let metrics = db.metrics();
    drop(db);
    assert_eq!(integrity_check_elsewhere(&project.join("app.db")), "ok");
    let verify = project.run(&["verify", backup.backup.path.to_str().unwrap()]);
    assert_eq!(verify.code, 0, "{verify:?}");

    let python = std::process::Command::new("python3")
        .args(["-c", PYTHON_WRITERS])
        .arg(project.join("python.db"))
        .arg(secs.to_string())
        .output()
        .expect("python3 is on every CI machine");
    let text = String::from_utf8_lossy(&python.stdout);
    let mut figures = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    let (python_committed, python_locked) =
        (figures.next().unwrap_or(0), figures.next().unwrap_or(0));
    let summary = serde_json::json!({
        "seconds": secs,
        "threads": 16,
        "manager_commits_per_s": committed as f64 / secs as f64,
        "manager_busy_errors": 0,
        "manager_writer_waits": metrics.pool.waits.writer_waits,
        "manager_p99_ms": metrics.queries.p99_ms,
        "python_sqlite3_commits_per_s": python_committed as f64 / secs as f64,
        "python_sqlite3_locked_errors": python_locked,
    });
    println!("live writers: {summary}");
    crate::common::record("live_writers", summary);
}

#[test]
fn a_read_only_database_is_a_clear_error() {
    let project = Project::new();
    let dir = project.join("ro");
    std::fs::create_dir(&dir).unwrap();
    drop(Manager::open(dir.join("app.db"), Options::default()).unwrap());
    let mounted = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "mount --bind '{0}' '{0}' && mount -o remount,ro,bind '{0}'",
                dir.display()
            ),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var("CI").is_err(),
            "CI runs as root and can bind-mount read-only"
        );
        eprintln!("skipped outside CI: cannot bind-mount read-only");
        return;
    }
    let error = Manager::open(dir.join("app.db"), Options::default()).unwrap_err();
    let _ = std::process::Command::new("umount").arg(&dir).status();
    let text = error.to_string();
    assert!(text.contains("app.db"), "{text}");
    assert!(
        text.contains("read-only") || text.contains("readonly") || text.contains("unable to open"),
        "{text}"
    );
}

#[test]
fn a_missing_database_litewarden_managed_is_not_created_again() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { compress: none } }\n",
    );
    crate::common::fill(&project.join("app.db"), 10);
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    std::fs::remove_file(project.join("app.db")).unwrap();
    let loaded = litewarden::config::load(
        &project.join("jobs.yaml"),
        &litewarden::config::Environment::default(),
    )
    .unwrap();
    let error = Manager::from_config(&loaded.config, "app", Options::default()).unwrap_err();
    assert!(matches!(error, LiveError::Open { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("restore it with `litewarden restore app`"),
        "{error}"
    );
    assert!(!project.join("app.db").exists());
    let error = Manager::from_config(&loaded.config, "nope", Options::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no database `nope` in jobs.yaml (it declares: app)"
    );
}

/// Regression: the snapshot copy read the database file through a
/// descriptor of its own, and closing it dropped every POSIX lock the
/// application's pooled connections held, so another process could take
/// the file out of WAL mode (or checkpoint and delete the WAL) under them.
#[test]
fn a_backup_taken_by_the_application_keeps_the_locks_of_its_connections() {
    let project = Project::new();
    let db = Manager::open(project.join("app.db"), Options::default()).unwrap();
    db.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let count: i64 = db
        .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 1);
    db.backup_now().unwrap();
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1],timeout=0.1)\nprint(c.execute('PRAGMA journal_mode=delete').fetchone()[0])",
            &project.join("app.db").display().to_string(),
        ])
        .output()
        .expect("python3 is on every CI machine");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("database is locked"),
        "another process took the database out of WAL mode under open connections: {output:?}"
    );
}

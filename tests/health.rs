//! Health checks, maintenance, restore drills and metrics (issue #10):
//! each detection against a real database, with a second process (python3)
//! holding readers where a test needs one.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Project, count, open};
use crate::daemon::{Daemon, http_get, wait_until};

/// A python3 process holding a read transaction on a database until dropped.
struct Reader {
    child: Child,
}

impl Reader {
    fn hold(path: &Path) -> Self {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('begin')\nc.execute('select count(*) from t').fetchone()\nprint('ready', flush=True)\nsys.stdin.read()",
                &path.display().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is on every CI machine");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Reader { child }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn project(settings: &str) -> Project {
    let project = Project::with_config(&format!(
        "version: 1\ndefaults:\n  backup: {{ compress: none, retention: {{ keep_last: 3 }} }}\ndatabases:\n  app: {{ path: app.db{settings} }}\n"
    ));
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x, fetched_at); INSERT INTO t VALUES (1, '2026-12-01T00:00:00Z');")
        .unwrap();
    project
}

fn write_rows(path: &Path, rows: usize) {
    let conn = open(path);
    for i in 0..rows {
        conn.execute(
            "INSERT INTO t VALUES (?1, '2026-12-01T00:00:00Z')",
            [format!("{i:0>500}")],
        )
        .unwrap();
    }
}

fn health(project: &Project, args: &[&str]) -> (i32, serde_json::Value) {
    let output = project.run(&[&["health", "app", "--json"], args].concat());
    let json = serde_json::from_str(&output.stdout).unwrap_or_else(|_| panic!("{output:?}"));
    (output.code, json)
}

fn check(json: &serde_json::Value, name: &str) -> Option<(String, String)> {
    json["databases"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
}

#[test]
fn a_healthy_database_reports_the_seed_shape_and_exits_0() {
    let project = project(", health: { max_backup_age: 2h }");
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    let (code, json) = health(&project, &[]);
    assert_eq!(code, 0, "{json}");
    let db = &json["databases"][0];
    assert_eq!(db["status"], "healthy", "{json}");
    assert!(db["db_size_mb"].is_number() && db["wal_size_mb"].is_number());
    assert_eq!(
        db["deep"], "integrity_check",
        "the first run includes the slow check"
    );
    let (_, again) = health(&project, &[]);
    assert!(
        again["databases"][0]["deep"].is_null(),
        "then it waits for its interval"
    );
}

#[test]
fn a_wal_over_its_limit_behind_a_reader_is_unhealthy_and_a_pinning_reader_is_reported() {
    let project = project(", health: { max_wal_size: 64KiB }");
    let db = project.join("app.db");
    let reader = Reader::hold(&db);
    write_rows(&db, 200);
    let (code, first) = health(&project, &[]);
    assert_eq!(code, 1, "{first}");
    let (status, detail) = check(&first, "wal_size").unwrap();
    assert_eq!(status, "unhealthy", "{detail}");
    write_rows(&db, 200);
    let (_, second) = health(&project, &[]);
    let (status, detail) = check(&second, "wal_pinned").expect("a pinned WAL is reported");
    assert_eq!(status, "degraded");
    assert!(
        detail.contains("a reader holds a transaction open"),
        "{detail}"
    );
    drop(reader);
}

#[test]
fn a_stale_backup_a_modified_migration_and_low_disk_are_each_reported() {
    let project = project(
        ", health: { max_backup_age: 1h, min_free_disk: 1000000TiB }, migrations: { dir: migrations }",
    );
    project.write("migrations/0001_a.sql", b"CREATE TABLE a(x);\n");
    assert_eq!(project.run(&["apply"]).code, 0);
    let old = project.run_with(&["backup", "app"], &[("LITEWARDEN_CLOCK_OFFSET", "-2h")]);
    assert_eq!(old.code, 0, "{old:?}");
    project.write("migrations/0001_a.sql", b"CREATE TABLE a(x, y);\n");
    let (code, json) = health(&project, &[]);
    assert_eq!(code, 1);
    let (status, detail) = check(&json, "backup_age").unwrap();
    assert_eq!(status, "unhealthy");
    assert!(detail.contains("above max_backup_age 1h"), "{detail}");
    let (status, detail) = check(&json, "migrations").unwrap();
    assert_eq!(status, "degraded");
    assert!(detail.contains("checksum mismatch"), "{detail}");
    let (status, detail) = check(&json, "free_disk").unwrap();
    assert_eq!(status, "unhealthy");
    assert!(detail.contains("below min_free_disk"), "{detail}");
}

#[test]
fn a_corrupt_page_is_caught_by_quick_check() {
    use std::io::{Seek, SeekFrom, Write};
    let project = project("");
    let db = project.join("app.db");
    write_rows(&db, 300);
    open(&db)
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.seek(SeekFrom::Start(4096)).unwrap();
    file.write_all(&[0xA5; 4096]).unwrap();
    drop(file);
    let (code, json) = health(&project, &["--deep"]);
    assert_eq!(code, 1, "{json}");
    let (status, _) = check(&json, "quick_check").unwrap();
    assert_eq!(status, "unhealthy");
}

#[test]
fn optimize_truncates_the_wal_when_no_reader_is_active_and_falls_back_when_one_is() {
    let project = project(", health: { max_wal_size: 64KiB }");
    let db = project.join("app.db");
    let keep_wal = open(&db);
    keep_wal.execute_batch("SELECT 1").unwrap();
    write_rows(&db, 300);
    let optimize = |project: &Project| -> serde_json::Value {
        let output = project.run(&["optimize", "app", "--json"]);
        assert_eq!(output.code, 0, "{output:?}");
        serde_json::from_str::<serde_json::Value>(&output.stdout).unwrap()["optimize"][0].clone()
    };
    let reader = Reader::hold(&db);
    write_rows(&db, 300);
    let fell_back = optimize(&project);
    assert_eq!(fell_back["checkpoint"], "truncate_fell_back", "{fell_back}");
    drop(reader);
    let truncated = optimize(&project);
    assert_eq!(truncated["checkpoint"], "truncate", "{truncated}");
    assert_eq!(truncated["wal_bytes"][1], 0, "{truncated}");
}

#[test]
fn optimize_never_keeps_a_committing_writer_waiting_past_its_busy_timeout() {
    let project = project(", health: { max_wal_size: 16KiB }, optimize: { vacuum: false }");
    let db = project.join("app.db");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let conn = open(&db);
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut longest = Duration::ZERO;
            let mut commits = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || commits < 50 {
                let at = Instant::now();
                conn.execute("INSERT INTO t VALUES (?1, 'x')", [commits])
                    .unwrap();
                longest = longest.max(at.elapsed());
                commits += 1;
            }
            longest
        })
    };
    for _ in 0..2 {
        let output = project.run(&["optimize", "app"]);
        assert_eq!(output.code, 0, "{output:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let longest = writer.join().unwrap();
    assert!(
        longest < Duration::from_secs(5),
        "the writer waited {longest:?}, past its busy timeout"
    );
}

fn drill_project(freshness: &str) -> Project {
    project(&format!(
        ", drill: {{ every: 7d, freshness_sql: \"select max(fetched_at) from t\"{freshness} }}"
    ))
}

#[test]
fn a_drill_on_a_good_backup_passes_and_on_a_corrupted_one_fails() {
    let project = drill_project("");
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    let passed = project.run(&["drill", "app", "--json"]);
    assert_eq!(passed.code, 0, "{passed:?}");
    let json: serde_json::Value = serde_json::from_str(&passed.stdout).unwrap();
    assert_eq!(json["drill"]["freshness"]["lag_seconds"], 0, "{json}");
    let backup = json["drill"]["backup"].as_str().unwrap().to_string();
    let mut bytes = std::fs::read(&backup).unwrap();
    for byte in &mut bytes[4096..8192] {
        *byte = 0xA5;
    }
    std::fs::write(&backup, bytes).unwrap();
    let failed = project.run(&["drill", "app"]);
    assert_eq!(failed.code, 1, "{failed:?}");
    assert!(failed.stdout.contains("DRILL FAILED"), "{failed:?}");
    let events: i64 = open(&project.join(".litewarden/state.db"))
        .query_row(
            "SELECT count(*) FROM events WHERE kind = 'drill_failed'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(events, 1, "alerts can match the drill_failed event");
    assert!(
        project.join("app.db").exists() && count(&project.join("app.db"), "t") == 1,
        "nothing live is touched"
    );
}

#[test]
fn a_drill_whose_backup_is_too_far_behind_fails_the_freshness_check() {
    let project = drill_project(", max_lag: 1h");
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    open(&project.join("app.db"))
        .execute("INSERT INTO t VALUES (2, '2026-12-01T05:00:00Z')", [])
        .unwrap();
    let output = project.run(&["drill", "app"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output.stdout.contains("behind the live database"),
        "{output:?}"
    );
}

#[test]
fn metrics_parse_as_prometheus_text_and_healthz_follows_the_databases_health() {
    let port = crate::common::free_port();
    let config = |min_free: &str| {
        format!(
            "version: 1\nsettings: {{ listen: \"127.0.0.1:{port}\" }}\ndefaults:\n  health: {{ every: 1s, min_free_disk: {min_free} }}\ndatabases:\n  app: {{ path: app.db, backup: {{ every: 1h, compress: none }} }}\n"
        )
    };
    let project = Project::with_config(&config("1KiB"));
    let daemon = Daemon::start(&project);
    wait_until("a health run is exported", || {
        http_get(port, "/metrics").contains("litewarden_health_status{database=\"app\"} 0")
    });
    let body = http_get(port, "/metrics");
    let text = body.split("\r\n\r\n").nth(1).unwrap_or_default();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("database") == Some("app"))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
                _ => -1.0,
            })
    };
    assert!(
        value("litewarden_database_size_bytes").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        value("litewarden_free_disk_bytes").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        value("litewarden_job_last_success_timestamp_seconds").is_some(),
        "{text}"
    );
    assert!(
        text.contains("litewarden_job_duration_seconds_bucket"),
        "{text}"
    );
    assert!(http_get(port, "/healthz").starts_with("HTTP/1.1 200"));
    std::fs::write(project.join("jobs.yaml"), config("1000000TiB")).unwrap();
    wait_until("healthz turns 503", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1 503")
    });
    assert!(http_get(port, "/status").contains("\"health\""));
    std::fs::write(project.join("jobs.yaml"), config("1KiB")).unwrap();
    wait_until("and back to 200", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1 200")
    });
    let status = project.run(&["status"]);
    assert!(status.stdout.contains("HEALTH"), "{status:?}");
    assert_eq!(daemon.stop(), 0);
}

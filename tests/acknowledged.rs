//! Never lose an acknowledged write (issue #20): restores under a steady
//! writer, retention after a clock jump, and restore sources with a `-wal`,
//! through the real binary.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{Project, file_names, open};

const CONFIG: &str = "version: 1
settings: { state_dir: st, backup_dir: bk }
databases:
  app: { path: app.db, backup: { compress: none } }
";

/// A second process writing rows `1, 2, ...` into `t`, one commit each,
/// printing each id once SQLite acknowledged it, until its stdin closes.
const WRITER: &str = "import sqlite3, sys, threading
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
n = 0
print('ready', flush=True)
while not stop.is_set():
    n += 1
    c.execute('INSERT INTO t (id) VALUES (?)', (n,))
    print(n, flush=True)
";

pub(crate) struct Writer {
    child: Child,
}

impl Writer {
    pub(crate) fn start(db: &Path) -> Self {
        Self {
            child: crate::common::python_ready(WRITER, &[&db.display().to_string()]),
        }
    }

    /// Stops the writer; the ids it acknowledged.
    pub(crate) fn stop(mut self) -> BTreeSet<i64> {
        drop(self.child.stdin.take());
        let output = self.child.wait_with_output().expect("wait for the writer");
        assert!(output.status.success(), "the writer failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }
}

pub(crate) fn ids(path: &Path) -> BTreeSet<i64> {
    let conn = open(path);
    let mut statement = conn.prepare("SELECT id FROM t").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn restores_under_a_steady_writer_keep_every_acknowledged_row_in_the_live_file_or_a_safety_copy() {
    let project = Project::with_config(CONFIG);
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY);")
        .unwrap();
    let source = project.join("empty.db");
    open(&project.join("app.db"))
        .execute("VACUUM INTO ?1", [source.to_str().unwrap()])
        .unwrap();
    let writer = Writer::start(&project.join("app.db"));
    let restores = std::env::var("LITEWARDEN_RESTORE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    for _ in 0..restores {
        let restore = project.run(&["restore", "app", "--from", "empty.db", "--yes"]);
        assert_eq!(restore.code, 0, "{restore:?}");
    }
    let acknowledged = writer.stop();
    assert!(acknowledged.len() > 100, "the writer wrote too little");

    let mut kept = ids(&project.join("app.db"));
    let dir = project.join("bk/app");
    let copies: Vec<String> = file_names(&dir)
        .into_iter()
        .filter(|name| name.ends_with(".db"))
        .collect();
    assert_eq!(copies.len(), restores, "one safety copy per restore");
    for copy in &copies {
        kept.extend(ids(&dir.join(copy)));
    }
    let lost: Vec<&i64> = acknowledged.difference(&kept).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged rows are in neither the live file nor a safety copy: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

#[test]
fn a_prune_with_the_clock_a_month_ahead_keeps_the_history_max_age_was_measured_on() {
    let project = Project::with_config(
        "version: 1
settings: { state_dir: st, backup_dir: bk }
databases:
  app:
    path: app.db
    backup: { compress: none, retention: { keep_last: 3, keep_hourly: 24, keep_daily: 7, max_age: 7d } }
",
    );
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .unwrap();
    for i in (0..10).rev() {
        let offset = format!("-{}h", i * 15);
        let backup = project.run_with(&["backup", "app"], &[("LITEWARDEN_CLOCK_OFFSET", &offset)]);
        assert_eq!(backup.code, 0, "{backup:?}");
    }
    let dir = project.join("bk/app");
    assert_eq!(file_names(&dir).len(), 10);

    let prune = project.run_with(&["prune", "app"], &[("LITEWARDEN_CLOCK_OFFSET", "30d")]);
    assert_eq!(prune.code, 0, "{prune:?}");
    assert_eq!(file_names(&dir).len(), 10, "{prune:?}");
}

/// A WAL database whose 500 rows are all still in its `-wal`, kept open by
/// the returned connection.
fn live_with_rows_in_its_wal(path: &Path) -> rusqlite::Connection {
    let conn = open(path);
    conn.execute_batch(
        "PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (id INTEGER PRIMARY KEY);
         PRAGMA wal_checkpoint(TRUNCATE);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO t SELECT i FROM n;",
    )
    .unwrap();
    conn
}

#[test]
fn a_restore_source_or_verified_file_with_a_wal_beside_it_is_refused_naming_the_wal() {
    let project = Project::with_config(CONFIG);
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY);")
        .unwrap();
    let source = project.join("other.db");
    let _writer = live_with_rows_in_its_wal(&source);

    let restore = project.run(&["restore", "app", "--from", "other.db", "--yes", "--force"]);
    assert_eq!(restore.code, 1, "{restore:?}");
    assert!(
        restore.stderr.contains("other.db-wal beside it holds")
            && restore.stderr.contains(".backup copy.db"),
        "{restore:?}"
    );
    assert_eq!(
        ids(&project.join("app.db")).len(),
        0,
        "nothing was restored"
    );

    let verify = project.run(&["verify", "other.db"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    assert!(
        verify.stderr.contains("other.db-wal beside it holds"),
        "{verify:?}"
    );
}

#[test]
fn verifying_a_closed_wal_database_writes_nothing_beside_it() {
    let project = Project::with_config(CONFIG);
    let copy = project.join("copy.db");
    drop(live_with_rows_in_its_wal(&copy));
    std::fs::create_dir(project.join("stored")).unwrap();
    std::fs::rename(&copy, project.join("stored/copy.db")).unwrap();
    let before = file_names(&project.join("stored"));
    let verify = project.run(&["verify", "stored/copy.db"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert_eq!(file_names(&project.join("stored")), before);
}

/// Gives table `t` of `path` a CHECK that calls `load_extension()`, through
/// `writable_schema`, as a hostile file would carry it.
fn make_hostile(path: &Path) {
    let conn = open(path);
    conn.execute_batch(
        "PRAGMA writable_schema=ON;
         UPDATE sqlite_schema SET sql = 'CREATE TABLE t (id INTEGER PRIMARY KEY CHECK (load_extension(''x'') IS NULL))' WHERE name = 't';
         PRAGMA writable_schema=OFF;",
    )
    .unwrap();
}

#[test]
fn a_schema_no_writer_can_load_fails_verification_and_never_locks_out_a_restore() {
    let project = Project::with_config(CONFIG);
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
        .unwrap();
    let backup = project.run(&["backup", "app"]);
    assert_eq!(backup.code, 0, "{backup:?}");

    let hostile = project.join("hostile.db");
    open(&project.join("app.db"))
        .execute("VACUUM INTO ?1", [hostile.to_str().unwrap()])
        .unwrap();
    make_hostile(&hostile);
    let verify = project.run(&["verify", "hostile.db"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    assert!(
        verify.stderr.contains("cannot be loaded by a writer"),
        "{verify:?}"
    );
    let restore = project.run(&["restore", "app", "--from", "hostile.db", "--yes"]);
    assert_eq!(restore.code, 1, "{restore:?}");
    assert!(
        restore.stderr.contains("cannot be loaded by a writer"),
        "{restore:?}"
    );

    make_hostile(&project.join("app.db"));
    let restore = project.run(&["restore", "app", "--from", "latest", "--yes"]);
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(ids(&project.join("app.db")), BTreeSet::from([1, 2]));
    let backup = project.run(&["backup", "app"]);
    assert_eq!(
        backup.code, 0,
        "a backup works again after the restore: {backup:?}"
    );
}

#[test]
fn a_restore_that_could_not_take_the_write_lock_removes_its_safety_copy() {
    let project = Project::with_config(
        "version: 1
settings: { state_dir: st, backup_dir: bk }
databases:
  app: { path: app.db, pragmas: { busy_timeout: 200ms }, backup: { compress: none } }
",
    );
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .unwrap();
    let backup = project.run(&["backup", "app"]);
    assert_eq!(backup.code, 0, "{backup:?}");
    let holder = crate::common::Holder::start(
        "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN IMMEDIATE')\nprint('ready', flush=True)\nsys.stdin.read()\nc.execute('ROLLBACK')",
        &project.join("app.db"),
    );
    let restore = project.run(&["restore", "app", "--from", "latest", "--yes"]);
    holder.release();
    assert_eq!(restore.code, 1, "{restore:?}");
    assert!(
        restore
            .stderr
            .contains("held the write lock longer than busy_timeout"),
        "{restore:?}"
    );
    assert_eq!(
        file_names(&project.join("bk/app")).len(),
        1,
        "only the backup is left"
    );
}

#[test]
fn the_seeds_own_crawled_pages_table_makes_the_database_unadopted_with_its_column_differences() {
    let project = crate::common::shipped();
    open(&project.join("website_crawler.db"))
        .execute_batch(
            "CREATE TABLE crawled_pages (id INTEGER PRIMARY KEY, url TEXT, title TEXT, content TEXT, status INTEGER, fetched_at TEXT);
             INSERT INTO crawled_pages (url) VALUES ('https://example.com');",
        )
        .unwrap();
    let expected = "migration 1 creates table crawled_pages, which the database already has; only the database has column content; only the migrations give columns domain, http_status, content_hash, content_type, content_length, depth, error, created_at, crawl_priority, last_modified";

    let plan = project.run(&["plan"]);
    assert!(plan.stdout.contains(expected), "{plan:?}");
    assert!(
        plan.stdout
            .contains("`litewarden migrate baseline website_crawler --version V`"),
        "{plan:?}"
    );
    assert!(
        !plan.stdout.contains("> website_crawler"),
        "no migration is planned: {plan:?}"
    );

    let apply = project.run(&["apply"]);
    assert!(
        !apply.stderr.contains("already exists") && !apply.stdout.contains("already exists"),
        "{apply:?}"
    );
    assert_eq!(
        crate::common::count(&project.join("website_crawler.db"), "crawled_pages"),
        1
    );

    let detect = project.run(&["migrate", "baseline", "website_crawler", "--detect"]);
    assert!(
        detect
            .stdout
            .contains("the migrations create objects it already has:"),
        "{detect:?}"
    );
    assert!(detect.stdout.contains(expected), "{detect:?}");
}

#[test]
fn with_the_backup_directory_replaced_by_a_file_read_only_commands_run_and_report_it() {
    let project = Project::with_config(CONFIG);
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .unwrap();
    for _ in 0..2 {
        assert_eq!(project.run(&["backup", "app"]).code, 0);
    }
    std::fs::rename(project.join("bk"), project.join("bk-aside")).unwrap();
    std::fs::write(project.join("bk"), b"the backup disk is gone").unwrap();

    let health = project.run(&["health", "app"]);
    assert_eq!(health.code, 1, "{health:?}");
    assert!(health.stdout.contains("FAIL backup_dir"), "{health:?}");

    let status = project.run(&["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(!status.stdout.contains("nothing has run yet"), "{status:?}");
    assert!(status.stdout.contains("backup"), "{status:?}");

    let backups = project.run(&["backups", "app"]);
    assert!(
        backups
            .stderr
            .contains("bk/app: cannot list: Not a directory"),
        "{backups:?}"
    );
    assert!(
        !backups.stderr.contains("removed from the catalog"),
        "{backups:?}"
    );
    for args in [&["alerts"][..], &["plan"]] {
        let output = project.run(args);
        assert!(
            !output.stderr.contains("error:"),
            "{args:?} ran: {output:?}"
        );
        assert!(
            output.stderr.contains("settings.backup_dir: directory `bk` cannot be created: `bk` is not a directory (a fault of the environment"),
            "{args:?} reports the fault: {output:?}"
        );
    }

    std::fs::remove_file(project.join("bk")).unwrap();
    std::fs::rename(project.join("bk-aside"), project.join("bk")).unwrap();
    let status = project.run(&["backups", "app"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(
        status.stdout.matches(".db").count(),
        2,
        "the catalog kept both: {status:?}"
    );
    std::fs::rename(project.join("bk"), project.join("bk-aside")).unwrap();
    std::fs::write(project.join("bk"), b"the backup disk is gone").unwrap();

    let backup = project.run(&["backup", "app", "--json"]);
    assert_eq!(backup.code, 1, "{backup:?}");
    let document: serde_json::Value =
        serde_json::from_str(backup.stdout.trim()).expect("a JSON error document");
    assert_eq!(document["ok"], false);
    assert!(
        document["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be created"),
        "{document}"
    );
}

#[test]
fn check_warns_when_the_databases_need_more_open_files_than_the_hard_limit() {
    let mut config = String::from("version: 1\ndatabases:\n");
    for i in 0..30 {
        config.push_str(&format!("  db{i}: {{ path: db{i}.db }}\n"));
    }
    let project = Project::with_config(&config);
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 100 && exec '{}' check",
            crate::common::binary().display()
        ))
        .current_dir(project.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("30 databases need about 184 open files, more than this process may open (100, the hard limit)"),
        "{stdout}"
    );
}

#[test]
fn the_daemon_raises_its_soft_open_files_limit_to_the_hard_one() {
    let project = Project::with_config(CONFIG);
    let mut daemon = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && ulimit -Hn 4096 && exec '{}' run",
            crate::common::binary().display()
        ))
        .current_dir(project.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let limits = format!("/proc/{}/limits", daemon.id());
    crate::daemon::wait_until("the daemon raised its limit", || {
        std::fs::read_to_string(&limits)
            .unwrap_or_default()
            .lines()
            .any(|line| {
                line.starts_with("Max open files")
                    && line.split_whitespace().filter(|w| *w == "4096").count() == 2
            })
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[test]
fn a_database_whose_path_changed_is_reported_with_the_path_where_it_was_last_seen() {
    let project = Project::with_config(CONFIG);
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY);")
        .unwrap();
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    project.write(
        "jobs.yaml",
        CONFIG
            .replace("path: app.db", "path: data/app.db")
            .as_bytes(),
    );
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stdout
            .contains("! app: data/app.db is missing (last seen at app.db "),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("its `path:` changed since"),
        "{plan:?}"
    );

    std::fs::create_dir_all(project.join("data")).unwrap();
    open(&project.join("data/app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE other (x);")
        .unwrap();
    let plan = project.run(&["plan"]);
    assert!(
        plan.stdout.contains("! app: data/app.db does not fit what litewarden last saw at app.db (its `path:` changed since): "),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("it is another file than app.db")
            && !plan.stdout.contains("litewarden restore app"),
        "never suggest restoring another file's copies over it: {plan:?}"
    );
}

#[test]
fn the_daemon_keeps_its_config_when_the_backup_directory_is_replaced_and_backups_fail_until_it_is_back()
 {
    let project = Project::with_config(
        "version: 1
settings: { state_dir: st, backup_dir: bk }
databases:
  app: { path: app.db, backup: { every: 1s, compress: none, retention: { keep_last: 2 } } }
",
    );
    let daemon = crate::daemon::Daemon::start(&project);
    let runs = |outcome: &str| {
        crate::common::polled_count(
            &project.join("st/state.db"),
            &format!("job_runs WHERE job = 'backup' AND outcome = '{outcome}'"),
        )
    };
    crate::daemon::wait_until("a backup succeeded", || {
        project.join("st/state.db").exists() && runs("success") >= 1
    });
    std::fs::rename(project.join("bk"), project.join("bk-aside")).unwrap();
    std::fs::write(project.join("bk"), b"the backup disk is gone").unwrap();
    daemon.signal("HUP");
    crate::daemon::wait_until("a backup failed", || runs("failed") >= 2);
    let invalid = crate::common::count(
        &project.join("st/state.db"),
        "job_runs WHERE job = 'apply' AND failure = 'config'",
    );
    assert_eq!(
        invalid, 0,
        "a fault of the environment is not an invalid config"
    );
    std::fs::remove_file(project.join("bk")).unwrap();
    std::fs::rename(project.join("bk-aside"), project.join("bk")).unwrap();
    let succeeded = runs("success");
    crate::daemon::wait_until("backups succeed again", || runs("success") > succeeded);
}

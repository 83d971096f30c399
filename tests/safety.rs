//! Never destroy the good copies (issue #9): a database's identity, missing
//! files, discontinuities, retention's protections, manifests, recovery of
//! a damaged file, clock steps and operator holds, through the real binary.

use std::path::{Path, PathBuf};

use crate::common::{Project, all_names, count, file_names, open};
use crate::daemon::{Daemon, backups, wait_until};

const DAEMON: &str = "version: 1
settings: { state_dir: st, backup_dir: bk }
databases:
  app: { path: app.db, backup: { every: 1s, compress: none, retention: { keep_last: 3 } } }
";

fn state(project: &Project, dir: &str) -> rusqlite::Connection {
    open(&project.join(&format!("{dir}/state.db")))
}

fn events(project: &Project, dir: &str, kind: &str) -> i64 {
    state(project, dir)
        .query_row(
            "SELECT count(*) FROM events WHERE kind = ?1",
            [kind],
            |row| row.get(0),
        )
        .unwrap_or(0)
}

fn failed_backups(project: &Project) -> i64 {
    state(project, "st")
        .query_row(
            "SELECT count(*) FROM job_runs WHERE job = 'backup' AND outcome = 'failed'",
            [],
            |row| row.get(0),
        )
        .unwrap_or(0)
}

fn table_with_rows(path: &Path, rows: i64) {
    open(path)
        .execute_batch(&format!(
            "PRAGMA journal_mode=wal; CREATE TABLE t(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) INSERT INTO t SELECT i FROM n;"
        ))
        .unwrap();
}

#[test]
fn a_deleted_database_is_never_recreated_and_its_good_backups_survive() {
    let project = Project::with_config(DAEMON);
    let daemon = Daemon::start(&project);
    wait_until("app.db is created", || project.join("app.db").exists());
    open(&project.join("app.db"))
        .execute_batch("BEGIN; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3); COMMIT;")
        .unwrap();
    let dir = project.join("bk/app");
    wait_until("three backups hold the rows", || {
        backups(&dir) >= 3
            && file_names(&dir)
                .iter()
                .all(|name| name.starts_with('.') || count(&dir.join(name), "sqlite_schema") == 1)
    });
    std::fs::remove_file(project.join("app.db")).unwrap();
    let before = failed_backups(&project);
    daemon.signal("HUP");
    wait_until("the missing database is recorded", || {
        events(&project, "st", "database_missing") >= 1
    });
    wait_until("two more backup runs failed instead of pruning", || {
        failed_backups(&project) >= before + 2
    });
    assert!(!project.join("app.db").exists(), "not re-created empty");
    let good = file_names(&dir);
    assert_eq!(good.len(), 3, "{good:?}");
    for name in &good {
        assert_eq!(count(&dir.join(name), "t"), 3, "{name} holds the data");
    }

    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stdout.contains("! app: app.db is missing (last seen ")
            && plan.stdout.contains("3 verified backups, newest ")
            && plan.stdout.contains("with tables t")
            && plan.stdout.contains(
                "restore it with `litewarden restore app`, or set restore_if_missing: true"
            ),
        "{plan:?}"
    );
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(!project.join("app.db").exists());

    let restore = project.run(&["restore", "app", "--yes"]);
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(count(&project.join("app.db"), "t"), 3);
    assert_eq!(daemon.stop(), 0);
    let log = std::fs::read_to_string(project.join("daemon.log")).unwrap();
    assert_eq!(
        log.matches("left alone until the operator acts").count(),
        1,
        "logged once: {log}"
    );
}

fn project(retention: &str, database: &str) -> Project {
    let project = Project::with_config(&format!(
        "version: 1\ndefaults:\n  backup: {{ compress: none, retention: {{ {retention} }} }}\ndatabases:\n  app: {{ path: app.db{database} }}\n"
    ));
    table_with_rows(&project.join("app.db"), 100);
    project
}

fn backup(project: &Project, args: &[&str], env: &[(&str, &str)]) -> PathBuf {
    let output = project.run_with(&[&["backup", "app", "--json"], args].concat(), env);
    assert_eq!(output.code, 0, "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    PathBuf::from(json["backups"][0]["path"].as_str().unwrap())
}

fn dry_run(project: &Project) -> Vec<(String, Vec<String>, bool)> {
    let output = project.run(&["prune", "app", "--dry-run", "--json"]);
    assert_eq!(output.code, 0, "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    json["prune"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| match r {
                        serde_json::Value::String(s) => s.clone(),
                        other => other["protected"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect(),
                e["dated_in_future"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn reasons_of(entries: &[(String, Vec<String>, bool)], path: &Path) -> Vec<String> {
    entries
        .iter()
        .find(|(p, _, _)| Path::new(p) == path)
        .map(|(_, r, _)| r.clone())
        .unwrap_or_else(|| panic!("{} not listed: {entries:?}", path.display()))
}

#[test]
fn restore_if_missing_restores_the_newest_verified_backup_and_never_an_empty_one() {
    let project = project("keep_last: 3", ", restore_if_missing: true");
    assert_eq!(project.run(&["apply"]).code, 0);
    backup(&project, &[], &[]);
    std::fs::remove_file(project.join("app.db")).unwrap();
    let output = project.run(&["apply"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(count(&project.join("app.db"), "t"), 100);
}

#[test]
fn state_dir_and_database_both_wiped_are_restored_from_the_backup_directory() {
    let project = project("keep_last: 3", ", restore_if_missing: true");
    backup(&project, &[], &[]);
    std::fs::remove_dir_all(project.join(".litewarden")).unwrap();
    std::fs::remove_file(project.join("app.db")).unwrap();
    let plan = project.run(&["plan"]);
    assert!(
        plan.stdout.contains("+ app: restore app.db from "),
        "{plan:?}"
    );
    assert_eq!(project.run(&["apply"]).code, 0);
    assert_eq!(
        count(&project.join("app.db"), "t"),
        100,
        "restored, not created"
    );
}

#[test]
fn without_restore_if_missing_a_wiped_volume_is_refused_not_created() {
    let project = project("keep_last: 3", "");
    backup(&project, &[], &[]);
    std::fs::remove_dir_all(project.join(".litewarden")).unwrap();
    std::fs::remove_file(project.join("app.db")).unwrap();
    let apply = project.run(&["apply", "--json"]);
    assert_eq!(apply.code, 1, "{apply:?}");
    let json: serde_json::Value = serde_json::from_str(&apply.stdout).unwrap();
    assert_eq!(json["problems"][0]["problem"], "missing", "{json}");
    assert!(!project.join("app.db").exists());
}

#[test]
fn an_emptied_database_is_a_discontinuity_and_its_old_backups_outlive_keep_last() {
    let project = project("keep_last: 2", "");
    let good: Vec<PathBuf> = (0..3).map(|_| backup(&project, &[], &[])).collect();
    std::fs::remove_file(project.join("app.db")).unwrap();
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE other(y);")
        .unwrap();
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stdout
            .contains("does not fit what litewarden last saw: its tables t are gone"),
        "{plan:?}"
    );
    for _ in 0..3 {
        backup(&project, &[], &[]);
    }
    assert_eq!(events(&project, ".litewarden", "database_replaced"), 1);
    let output = project.run(&["prune", "app"]);
    assert_eq!(output.code, 0, "{output:?}");
    for path in &good {
        assert!(path.exists(), "{} was pruned", path.display());
    }
    let entries = dry_run(&project);
    assert!(
        reasons_of(&entries, &good[0])[0].starts_with("before discontinuity "),
        "{entries:?}"
    );
    let accept = project.run(&["accept", "app"]);
    assert_eq!(accept.code, 0, "{accept:?}");
    assert_eq!(project.run(&["prune", "app"]).code, 0);
    assert!(!good[0].exists(), "accepted: the old ones may go now");
    assert_eq!(project.run(&["plan"]).code, 0);
}

#[test]
fn max_age_removes_a_40_day_old_backup_but_never_the_newest_verified() {
    let project = project("keep_last: 3, max_age: \"${BACKUP_RETENTION_DAYS}d\"", "");
    let env = [("BACKUP_RETENTION_DAYS", "7")];
    let old = backup(
        &project,
        &[],
        &[env[0], ("LITEWARDEN_CLOCK_OFFSET", "-40d")],
    );
    let output = project.run_with(&["prune", "app"], &env);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(old.exists(), "the only (newest verified) backup stays");
    backup(&project, &[], &env);
    let output = project.run_with(&["prune", "app"], &env);
    assert!(
        output.stdout.contains("app: 1 kept, 1 removed"),
        "{output:?}"
    );
    assert!(
        !old.exists(),
        "older than 7 days goes, whatever keep_last says"
    );
}

#[test]
fn pinned_and_safety_copies_are_protected_and_say_why() {
    let project = project("keep_last: 1, max_age: 1s", "");
    let pinned = backup(&project, &["--pin"], &[("LITEWARDEN_CLOCK_OFFSET", "-3d")]);
    backup(&project, &[], &[("LITEWARDEN_CLOCK_OFFSET", "-2d")]);
    let newest = backup(&project, &[], &[("LITEWARDEN_CLOCK_OFFSET", "-1d")]);
    let restore = project.run(&["restore", "app", "--yes"]);
    assert_eq!(restore.code, 0, "{restore:?}");
    let entries = dry_run(&project);
    assert_eq!(reasons_of(&entries, &pinned), ["pinned"]);
    assert_eq!(
        reasons_of(&entries, &newest),
        ["last", "newest_verified"],
        "max_age is measured from the newest backup, so it keeps its rules"
    );
    let safety: Vec<_> = entries
        .iter()
        .filter(|(_, r, _)| r.iter().any(|r| r.starts_with("safety copy")))
        .collect();
    assert_eq!(safety.len(), 1, "{entries:?}");
    assert_eq!(project.run(&["prune", "app"]).code, 0);
    assert!(pinned.exists() && newest.exists());
}

#[test]
fn two_state_dirs_over_one_backup_dir_agree_on_pins_and_verification() {
    let project = project("keep_last: 1", "");
    let first = backup(&project, &[], &[]);
    backup(&project, &[], &[]);
    let pin = project.run(&["pin", first.to_str().unwrap()]);
    assert_eq!(pin.code, 0, "{pin:?}");
    let text = std::fs::read_to_string(project.join("jobs.yaml")).unwrap();
    project.write(
        "second.yaml",
        text.replace(
            "version: 1\n",
            "version: 1\nsettings: { state_dir: second-state }\n",
        )
        .as_bytes(),
    );
    let listed = project.run(&["-c", "second.yaml", "backups", "app", "--json"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    for entry in json["backups"].as_array().unwrap() {
        assert!(!entry["backup"]["verified_at"].is_null(), "{entry}");
        assert_eq!(entry["backup"]["trigger"], "manual");
        let pinned = entry["path"].as_str() == first.to_str();
        assert_eq!(entry["backup"]["pinned"], pinned, "{entry}");
    }
    let prune = project.run(&["-c", "second.yaml", "prune", "app"]);
    assert!(prune.stdout.contains("2 kept, 0 removed"), "{prune:?}");
}

#[test]
fn a_backup_written_under_a_clock_two_days_ahead_does_not_become_latest() {
    let project = project("keep_last: 5", "");
    backup(&project, &[], &[]);
    let ahead = backup(&project, &[], &[("LITEWARDEN_CLOCK_OFFSET", "2d")]);
    open(&project.join("app.db"))
        .execute("INSERT INTO t VALUES (101)", [])
        .unwrap();
    let real = backup(&project, &[], &[]);
    let entries = dry_run(&project);
    assert_eq!(
        Path::new(&entries[0].0),
        real,
        "the catalog's order: {entries:?}"
    );
    assert!(entries[1].2, "the one ahead is flagged: {entries:?}");
    assert_eq!(Path::new(&entries[1].0), ahead);
    let to = project.join("restored.db");
    let restore = project.run(&["restore", "app", "--to", to.to_str().unwrap(), "--yes"]);
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(count(&to, "t"), 101, "latest is the newest by sequence");
}

fn corrupt_a_page(path: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    open(path)
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(4096)).unwrap();
    file.write_all(&[0xA5; 4096]).unwrap();
}

#[test]
fn restore_over_a_database_with_a_garbage_page_succeeds_and_keeps_a_raw_copy() {
    let project = project("keep_last: 3", "");
    open(&project.join("app.db"))
        .execute_batch("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO t SELECT i FROM n;")
        .unwrap();
    backup(&project, &[], &[]);
    corrupt_a_page(&project.join("app.db"));
    let restore = project.run(&["restore", "app", "--from", "latest", "--yes", "--json"]);
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(count(&project.join("app.db"), "t"), 5100);
    let json: serde_json::Value = serde_json::from_str(&restore.stdout).unwrap();
    let raw = PathBuf::from(json["restore"]["safety_copy"].as_str().unwrap());
    assert!(raw.exists(), "{json}");
    let listed = project.run(&["backups", "app", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let raw_entry = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"].as_str() == raw.to_str())
        .unwrap()
        .clone();
    assert_eq!(raw_entry["backup"]["method"], "raw");
    assert!(raw_entry["backup"]["verified_at"].is_null());
}

#[test]
fn restore_across_a_page_size_change_works() {
    let project = project("keep_last: 3", "");
    let before = backup(&project, &[], &[]);
    std::fs::write(
        project.join("jobs.yaml"),
        std::fs::read_to_string(project.join("jobs.yaml"))
            .unwrap()
            .replace("path: app.db", "path: app.db, pragmas: { page_size: 8192 }"),
    )
    .unwrap();
    let apply = project.run(&["apply", "--allow-vacuum"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    open(&project.join("app.db"))
        .execute("DELETE FROM t", [])
        .unwrap();
    let restore = project.run(&[
        "restore",
        "app",
        "--from",
        before.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(count(&project.join("app.db"), "t"), 100);
    let page_size: i64 = open(&project.join("app.db"))
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .unwrap();
    assert_eq!(page_size, 8192, "the live file keeps its page size");
    assert!(
        all_names(project.path())
            .iter()
            .all(|n| !n.contains(".lw-tmp-")),
        "no temp file is left"
    );
}

fn log(project: &Project) -> String {
    std::fs::read_to_string(project.join("daemon.log")).unwrap_or_default()
}

fn user_version(path: &Path) -> i64 {
    open(path)
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

#[test]
fn migrate_down_under_the_daemon_stays_down_across_reloads_and_a_restart() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { enabled: false }, migrations: { dir: migrations, apply: auto } }\n",
    );
    project.write("migrations/0001_a.sql", b"CREATE TABLE a(x);\n");
    project.write("migrations/0002_b.sql", b"CREATE TABLE b(x);\n");
    project.write("migrations/0002_b.down.sql", b"DROP TABLE b;\n");
    let daemon = Daemon::start(&project);
    wait_until("both migrations ran", || {
        project.join("app.db").exists() && user_version(&project.join("app.db")) == 2
    });
    let down = project.run(&["migrate", "down", "app", "--to", "1"]);
    assert_eq!(down.code, 0, "{down:?}");
    let reloads = log(&project).matches("reload applied").count();
    daemon.signal("HUP");
    wait_until("the daemon re-read everything", || {
        log(&project).matches("reload applied").count() > reloads
    });
    assert_eq!(user_version(&project.join("app.db")), 1, "not re-applied");
    let status = project.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("hold: app: migrations held by operator at 1 since "),
        "{status:?}"
    );
    assert_eq!(daemon.stop(), 0);
    std::fs::remove_file(project.join("daemon.log")).unwrap();
    let daemon = Daemon::start(&project);
    wait_until("the restarted daemon is ready", || {
        log(&project).contains("ready")
    });
    assert_eq!(
        user_version(&project.join("app.db")),
        1,
        "not after a restart"
    );
    let plan = project.run(&["plan"]);
    assert!(
        plan.stdout
            .contains("! app: migrations held by operator at 1 since "),
        "{plan:?}"
    );
    let up = project.run(&["migrate", "up", "app"]);
    assert_eq!(up.code, 0, "{up:?}");
    assert_eq!(user_version(&project.join("app.db")), 2);
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_second_daemon_with_another_state_dir_on_the_same_database_exits_1() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 1h } }\n",
    );
    project.write(
        "second.yaml",
        b"version: 1\nsettings: { state_dir: other-state }\ndatabases:\n  app: { path: app.db, backup: { every: 1h } }\n",
    );
    let daemon = Daemon::start(&project);
    wait_until("the first daemon is ready", || {
        log(&project).contains("ready")
    });
    let second = project
        .command(&["-c", "second.yaml", "run"])
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("app.db is managed by another litewarden (pid "),
        "{stderr}"
    );
    let backup = project.run(&["-c", "second.yaml", "backup", "app"]);
    assert_eq!(backup.code, 1, "{backup:?}");
    let ours = project.run(&["backup", "app"]);
    assert_eq!(
        ours.code, 0,
        "the daemon's own state dir cooperates: {ours:?}"
    );
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn paused_backups_are_not_taken_by_the_daemon_until_resumed() {
    let project = Project::with_config(DAEMON);
    project.run(&["apply"]);
    let pause = project.run(&["pause", "app"]);
    assert_eq!(pause.code, 0, "{pause:?}");
    let daemon = Daemon::start(&project);
    wait_until("a paused run finished", || {
        state(&project, "st")
            .query_row(
                "SELECT count(*) FROM job_runs WHERE job = 'backup' AND detail LIKE 'paused by operator%'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .unwrap_or(0)
            >= 1
    });
    assert_eq!(backups(&project.join("bk/app")), 0);
    let status = project.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("hold: app: backups paused by operator since "),
        "{status:?}"
    );
    assert_eq!(project.run(&["resume", "app"]).code, 0);
    wait_until("backups run again", || {
        backups(&project.join("bk/app")) >= 1
    });
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn restore_if_missing_never_brings_back_the_backups_of_an_emptied_database() {
    let project = project("keep_last: 2", ", restore_if_missing: true");
    assert_eq!(project.run(&["apply"]).code, 0);
    backup(&project, &[], &[]);
    std::fs::remove_file(project.join("app.db")).unwrap();
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal;")
        .unwrap();
    backup(&project, &[], &[]);
    backup(&project, &[], &[]);
    std::fs::remove_file(project.join("app.db")).unwrap();
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert_eq!(
        count(&project.join("app.db"), "t"),
        100,
        "the data, not the empty file"
    );
}

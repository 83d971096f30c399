//! The operator's first day (issue #21): what the status surfaces show,
//! retries, messages that name the real place, and restores by time.

use crate::common::{Project, free_port, open, successful_backup_runs};
use crate::daemon::{Daemon, http_get, wait_until};

/// A database whose backups fail: a regular file stands where its backup
/// directory goes.
fn failing_backups(project: &Project) {
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x);")
        .unwrap();
    project.write(
        "backups/app",
        b"a regular file where the backup directory goes",
    );
}

/// A project whose daemon serves /status on a free port and has the
/// `backup-failed` rule (no mail: alerts go to the log and /status),
/// backing up every `every`.
fn alerting(every: &str) -> (Project, u16) {
    let port = free_port();
    let project = Project::with_config(&format!(
        "version: 1
settings: {{ listen: \"127.0.0.1:{port}\" }}
defaults: {{ health: {{ enabled: false }}, optimize: {{ enabled: false }} }}
databases:
  app: {{ path: app.db, backup: {{ every: {every}, compress: none }} }}
alerts:
  - {{ name: backup-failed, when: job_failed, jobs: [backup], to: [ops@example.com] }}
"
    ));
    (project, port)
}

/// The active alerts `/status` lists, when it answers.
fn active_alerts(port: u16) -> Option<Vec<serde_json::Value>> {
    let body = http_get(port, "/status");
    let json = body.split("\r\n\r\n").nth(1)?;
    let status: serde_json::Value = serde_json::from_str(json).ok()?;
    status["alerts"].as_array().cloned()
}

#[test]
fn the_status_page_lists_the_active_alerts_as_status_json_does() {
    let (project, port) = alerting("1s");
    failing_backups(&project);
    let _daemon = Daemon::start(&project);
    wait_until("/status lists the firing alert", || {
        active_alerts(port).is_some_and(|alerts| {
            alerts
                .iter()
                .any(|a| a.to_string().contains("backup-failed"))
        })
    });
}

#[test]
fn a_flow_mapping_never_closed_is_reported_where_it_opens_too() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 1h }\n  other: { path: other.db }\n\nalerts: []\n",
    );
    let check = project.run(&["check"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(
        check.stderr.contains(
            "jobs.yaml:4:3: invalid YAML: invalid indentation in flow construct; the `{` at line 3 column 8 is never closed"
        ),
        "{check:?}"
    );
}

#[test]
fn plan_never_says_no_changes_without_naming_what_it_left_alone() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  a: { path: a.db, backup: { compress: none } }\n  b: { path: b.db }\n",
    );
    assert_eq!(project.run(&["apply"]).code, 0);
    assert_eq!(project.run(&["backup", "a"]).code, 0);
    std::fs::remove_file(project.join("a.db")).unwrap();
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(plan.stdout.contains("! a: a.db is missing"), "{plan:?}");
    assert!(
        plan.stdout
            .contains("No changes for 1 database; 1 left alone until the `!` line above is done."),
        "{plan:?}"
    );
    assert!(!plan.stdout.contains("No changes:"), "{plan:?}");
}

#[test]
fn accept_right_after_plan_showed_a_discontinuity_accepts_it() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { compress: none } }\n",
    );
    open(&project.join("app.db"))
        .execute_batch(
            "PRAGMA journal_mode=wal; CREATE TABLE pages (x); INSERT INTO pages VALUES (1);",
        )
        .unwrap();
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    open(&project.join("app.db"))
        .execute_batch("DROP TABLE pages; CREATE TABLE other (y);")
        .unwrap();
    let plan = project.run(&["plan"]);
    assert!(
        plan.stdout
            .contains("! app: app.db does not fit what litewarden last saw"),
        "{plan:?}"
    );
    let accept = project.run(&["accept", "app"]);
    assert_eq!(accept.code, 0, "{accept:?}");
    assert!(
        accept.stdout.contains("app: accepted as it is now: "),
        "{accept:?}"
    );
    assert!(
        accept.stdout.contains("app: 1 discontinuity accepted"),
        "{accept:?}"
    );
    let plan = project.run(&["plan"]);
    assert!(!plan.stdout.contains("! app"), "{plan:?}");
}

#[test]
fn a_failed_backup_is_retried_within_a_minute_not_an_interval_later_and_status_says_so() {
    let project = Project::with_config(
        "version: 1
defaults: { health: { enabled: false }, optimize: { enabled: false } }
databases:
  app: { path: app.db, backup: { every: 1h, compress: none } }
",
    );
    failing_backups(&project);
    let _daemon = Daemon::start(&project);
    let runs = |outcome: &str| {
        crate::common::polled_count(
            &project.join(".litewarden/state.db"),
            &format!("job_runs WHERE job = 'backup' AND outcome = '{outcome}'"),
        )
    };
    wait_until("the first backup failed", || {
        project.join(".litewarden/state.db").exists() && runs("failed") >= 1
    });
    wait_until("status shows the retry", || {
        project.run(&["status"]).stdout.contains("(retry 1)")
    });
    std::fs::remove_file(project.join("backups/app")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(75);
    while runs("success") == 0 {
        assert!(std::time::Instant::now() < deadline, "no retry within 75 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn restore_before_a_time_picks_the_newest_verified_copy_before_it_and_says_what_is_replaced() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { compress: none } }\n",
    );
    let db = project.join("app.db");
    open(&db)
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (x);")
        .unwrap();
    for (rows, offset) in [(1, "-30m"), (2, "-20m"), (3, "-5m")] {
        open(&db)
            .execute("INSERT INTO t VALUES (?1)", [rows])
            .unwrap();
        let backup = project.run_with(&["backup", "app"], &[("LITEWARDEN_CLOCK_OFFSET", offset)]);
        assert_eq!(backup.code, 0, "{backup:?}");
    }
    open(&db).execute("DELETE FROM t", []).unwrap();

    let restore = project.run(&["restore", "app", "--before", "-10m", "--yes"]);
    assert_eq!(restore.code, 0, "{restore:?}");
    assert_eq!(
        crate::common::count(&db, "t"),
        2,
        "the copy from 20 minutes ago"
    );
    assert!(
        restore.stderr.contains("app: replacing app.db with the copy of ")
            && restore.stderr.contains(" (20m")
            && restore.stderr.contains("every change made to it since is replaced (and kept in the safety copy taken first)"),
        "{restore:?}"
    );

    let too_early = project.run(&["restore", "app", "--before", "2h ago", "--yes"]);
    assert_eq!(too_early.code, 1, "{too_early:?}");
    assert!(
        too_early
            .stderr
            .contains("database `app` has no verified backup from before "),
        "{too_early:?}"
    );
    let bad = project.run(&["restore", "app", "--before", "yesterday-ish", "--yes"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr.contains("--before `yesterday-ish`: give an age"),
        "{bad:?}"
    );
}

#[test]
fn the_readme_fits_on_a_screen_and_keeps_the_operators_sections() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 150,
        "README.md has {lines} lines: move reference material to docs/reference.md"
    );
    for section in [
        "## Set-up: the two commands",
        "cargo run --release -- run",
        "bash scripts/test.sh",
        "## Your own databases",
        "## Alerts",
        "## Restore",
        "### Quick Start (Python",
        "## Kubernetes",
        "docs/reference.md",
    ] {
        assert!(readme.contains(section), "README.md lost `{section}`");
    }
    assert!(root.join("docs/reference.md").is_file());
}

#[test]
fn once_the_config_is_fixed_status_no_longer_shows_its_failure_as_the_latest() {
    let config = "version: 1\ndefaults: { health: { enabled: false }, optimize: { enabled: false } }\ndatabases:\n  app: { path: app.db, backup: { every: 1h, compress: none } }\n";
    let project = Project::with_config(config);
    let daemon = Daemon::start(&project);
    wait_until("the daemon runs", || {
        project.run(&["status"]).stdout.contains("daemon: running")
    });
    project.write(
        "jobs.yaml",
        b"version: 1\ndatabases:\n  app: { path: app.db, backup: { every: nonsense } }\n",
    );
    daemon.signal("HUP");
    wait_until("status shows the invalid config", || {
        project.run(&["status"]).stdout.contains("config_invalid")
    });
    project.write("jobs.yaml", config.as_bytes());
    daemon.signal("HUP");
    wait_until(
        "status shows the config valid again as the latest apply",
        || {
            let status = project.run(&["status"]).stdout;
            !status.contains("config_invalid") && status.contains("success")
        },
    );
}

#[test]
fn a_failed_manual_backup_raises_the_alert_and_a_good_one_resolves_it() {
    let (project, port) = alerting("24h");
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x);")
        .unwrap();
    let _daemon = Daemon::start(&project);
    let alerts = || active_alerts(port).map(|alerts| alerts.len());
    wait_until("the daemon's first backup and no alert", || {
        successful_backup_runs(&project) == 1 && alerts() == Some(0)
    });
    std::fs::rename(project.join("backups/app"), project.join("aside")).unwrap();
    project.write(
        "backups/app",
        b"a regular file where the backup directory goes",
    );
    assert_eq!(project.run(&["backup", "app"]).code, 1);
    wait_until("the manual failure raised the alert", || {
        alerts() == Some(1)
    });
    std::fs::remove_file(project.join("backups/app")).unwrap();
    std::fs::rename(project.join("aside"), project.join("backups/app")).unwrap();
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    wait_until("the manual success resolved it", || alerts() == Some(0));
}

//! `litewarden run` and `status` (issue #6): the real daemon, real files,
//! real signals. Waits poll every 50 ms with a deadline, so no test sleeps
//! longer than the daemon needs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Project, binary, file_names};

pub(crate) struct Daemon {
    child: Child,
}

impl Daemon {
    pub(crate) fn start(project: &Project) -> Self {
        Self::start_with(project, &[])
    }

    /// Starts `run` with these environment variables added.
    pub(crate) fn start_with(project: &Project, env: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(project.join("daemon.log")).unwrap();
        let child = Command::new(binary())
            .arg("run")
            .current_dir(project.path())
            .env("RUST_LOG", "litewarden=info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child }
    }

    /// The daemon's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes charge of a daemon started by the test itself (killed on drop).
    pub(crate) fn from_child(child: Child) -> Self {
        Self { child }
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub(crate) fn stop(mut self) -> i32 {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn status(project: &Project) -> serde_json::Value {
    let output = project.run(&["status", "--json"]);
    assert_eq!(output.code, 0, "{output:?}");
    serde_json::from_str(&output.stdout).unwrap()
}

fn next_run(project: &Project, job: &str) -> Option<String> {
    status(project)["jobs"]
        .as_array()?
        .iter()
        .find(|j| {
            format!(
                "{}/{}",
                j["database"].as_str().unwrap_or(""),
                j["job"].as_str().unwrap_or("")
            ) == job
        })
        .and_then(|j| j["next_run"].as_str().map(str::to_string))
}

pub(crate) fn backups(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|e| {
            e.filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    !name.starts_with('.') && !name.ends_with(".json")
                })
                .count()
        })
        .unwrap_or(0)
}

const CONFIG: &str = "version: 1
defaults:
  pragmas: { journal_mode: wal }
  backup: { every: 1s, compress: none, retention: { keep_last: 3 } }
databases:
  app: { path: app.db }
  other: { path: other.db, backup: { every: 1h } }
";

fn save_by_rename(project: &Project, text: &str) {
    project.write("jobs.yaml.swp", text.as_bytes());
    std::fs::rename(project.join("jobs.yaml.swp"), project.join("jobs.yaml")).unwrap();
}

#[test]
fn run_schedules_backups_reloads_every_kind_of_save_and_stops_on_sigterm() {
    let project = Project::with_config(CONFIG);
    let daemon = Daemon::start(&project);
    wait_until("app.db is created and backed up twice", || {
        backups(&project.join("backups/app")) >= 2
    });
    wait_until("retention keeps three", || {
        std::thread::sleep(Duration::from_millis(200));
        backups(&project.join("backups/app")) == 3
    });
    let other_next = next_run(&project, "other/backup");
    assert!(other_next.is_some());
    let jobs = status(&project)["jobs"].clone();
    assert!(
        jobs.as_array().unwrap().iter().all(|j| j["skipped"] == 0),
        "regression: starting a job counted its own tick as skipped: {jobs}"
    );

    save_by_rename(
        &project,
        &CONFIG
            .replace("every: 1s", "every: 1h")
            .replace("  other:", "  third: { path: third.db }\n  other:"),
    );
    wait_until("a database added by a rename-save is created", || {
        project.join("third.db").exists()
    });
    wait_until("the edited schedule is re-armed", || {
        status(&project)["jobs"].as_array().is_some_and(|jobs| {
            jobs.iter()
                .any(|j| j["database"] == "app" && j["schedule"] == "every 1h")
        })
    });
    assert_eq!(
        next_run(&project, "other/backup"),
        other_next,
        "an unchanged job keeps its next run"
    );

    std::fs::write(project.join("jobs.yaml"), "version: [\n").unwrap();
    wait_until("an invalid save is reported", || {
        status(&project)["daemon"]["config_ok"] == false
    });
    let text = project.run(&["status"]).stdout;
    assert!(text.contains("CONFIG INVALID"), "{text}");
    assert!(
        !text.contains("+00:00") && text.contains("Z success"),
        "the table shows times to the second in UTC: {text}"
    );
    assert_eq!(
        next_run(&project, "other/backup"),
        other_next,
        "the last good config stays in force"
    );

    std::fs::write(
        project.join("jobs.yaml"),
        CONFIG.replace("  other:", "  fourth: { path: fourth.db }\n  other:"),
    )
    .unwrap();
    wait_until("an in-place save recovers", || {
        status(&project)["daemon"]["config_ok"] == true
    });
    wait_until("and is applied", || project.join("fourth.db").exists());

    std::fs::write(
        project.join("jobs.yaml"),
        CONFIG.replace(
            "app: { path: app.db }",
            "app: { path: app.db, backup: { enabled: false } }",
        ),
    )
    .unwrap();
    wait_until("a removed job stops", || {
        status(&project)["jobs"].as_array().is_some_and(|jobs| {
            !jobs
                .iter()
                .any(|j| j["database"] == "app" && j["job"] == "backup")
        })
    });
    assert!(
        project.join("third.db").exists(),
        "a database removed from the file keeps its file"
    );

    assert_eq!(daemon.stop(), 0);
    let log = std::fs::read_to_string(project.join("daemon.log")).unwrap();
    assert!(
        log.contains("invalid config; keeping the last good one"),
        "{log}"
    );
    assert!(log.contains("litewarden run stopped"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "regression: a log file got ANSI colour codes"
    );
}

#[test]
fn a_kubernetes_style_symlink_swap_is_reloaded() {
    let project = Project::new();
    let write_version = |name: &str, text: &str| {
        project.write(&format!("{name}/jobs.yaml"), text.as_bytes());
    };
    write_version(
        "v1",
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { enabled: false } }\n",
    );
    std::os::unix::fs::symlink("v1", project.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/jobs.yaml", project.join("jobs.yaml")).unwrap();
    let daemon = Daemon::start(&project);
    wait_until("the first database exists", || {
        project.join("app.db").exists()
    });
    write_version(
        "v2",
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { enabled: false } }\n  swapped: { path: swapped.db, backup: { enabled: false } }\n",
    );
    std::os::unix::fs::symlink("v2", project.join("..data_tmp")).unwrap();
    std::fs::rename(project.join("..data_tmp"), project.join("..data")).unwrap();
    wait_until("the swapped config is applied", || {
        project.join("swapped.db").exists()
    });
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_second_daemon_exits_1_naming_the_first_and_an_invalid_file_fails_startup() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { enabled: false } }\n",
    );
    let daemon = Daemon::start(&project);
    wait_until("the first daemon runs", || {
        status(&project)["daemon_running"] == true
    });
    let second = project.run(&["run"]);
    assert_eq!(second.code, 1, "{second:?}");
    assert!(
        second.stderr.contains(&format!(
            "another `litewarden run` (pid {}) manages .litewarden",
            daemon.child.id()
        )),
        "{second:?}"
    );
    assert_eq!(daemon.stop(), 0);
    let text = project.run(&["status"]).stdout;
    assert!(text.contains("daemon: not running"), "{text}");

    let broken = Project::with_config("version: 1\ndatabases:\n  app: { pahts: app.db }\n");
    let output = broken.run(&["run"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output
            .stderr
            .contains("jobs.yaml:3:10: databases.app.pahts: unknown field"),
        "{output:?}"
    );
}

/// A daemon on `config` whose first backup of `app` (with `rows` rows) has
/// written its first file.
pub(crate) fn start_with_a_backup_under_way(config: &str, rows: u32) -> (Project, Daemon) {
    let project = Project::with_config(config);
    crate::common::fill(&project.join("app.db"), rows);
    let daemon = Daemon::start(&project);
    let dir = project.join("backups/app");
    wait_until("the backup is under way", || !file_names(&dir).is_empty());
    (project, daemon)
}

#[test]
fn sigterm_during_a_backup_lets_it_finish_and_leaves_no_temp_file() {
    let (project, daemon) = start_with_a_backup_under_way(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 1h, method: api, verify: full, compress: zstd } }\n",
        60_000,
    );
    assert_eq!(daemon.stop(), 0);
    let names = file_names(&project.join("backups/app"));
    assert!(
        names.iter().all(|n| !n.starts_with(".lw-tmp-")),
        "{names:?}"
    );
    assert_eq!(
        names.len(),
        1,
        "the running backup finished within the grace period: {names:?}"
    );
}

#[test]
fn a_new_migration_file_is_applied_by_the_running_daemon() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { enabled: false }, migrations: { dir: migrations } }\n",
    );
    project.write(
        "migrations/0001_pages.sql",
        b"CREATE TABLE pages (id INTEGER PRIMARY KEY);\n",
    );
    let daemon = Daemon::start(&project);
    let has_table = |table: &str| {
        project.join("app.db").exists()
            && crate::common::open(&project.join("app.db"))
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                    [table],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0)
                == 1
    };
    wait_until("the first migration is applied at startup", || {
        has_table("pages")
    });
    project.write(
        "migrations/0002_visits.sql",
        b"CREATE TABLE visits (id INTEGER PRIMARY KEY);\n",
    );
    wait_until(
        "a migration file dropped into the watched directory is applied",
        || has_table("visits"),
    );
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn an_overrunning_job_skips_its_ticks_and_is_reported_stuck_past_its_timeout() {
    let project = Project::with_config(
        "version: 1\nsettings: { max_parallel_jobs: 1, shutdown_grace: 200ms }\ndatabases:\n  app: { path: app.db, backup: { every: 1s, timeout: 300ms, method: vacuum, verify: full, compress: zstd } }\n",
    );
    crate::common::fill(&project.join("app.db"), 400_000);
    let daemon = Daemon::start(&project);
    wait_until("a tick is skipped while the backup runs", || {
        status(&project)["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|j| j["skipped"].as_i64().unwrap_or(0) > 0))
    });
    let state = crate::common::open(&project.join(".litewarden/state.db"));
    wait_until("the stuck job is recorded", || {
        state
            .query_row(
                "SELECT count(*) FROM job_runs WHERE job = 'backup' AND failure = 'stuck'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0)
            > 0
    });
    assert_eq!(daemon.stop(), 0);
    let log = std::fs::read_to_string(project.join("daemon.log")).unwrap();
    let skipped_lines = log.matches("tick skipped").count();
    let runs = log.matches("job started").count();
    assert!(
        skipped_lines >= 1 && skipped_lines <= runs,
        "skips are logged once per run ({runs}), not per tick ({skipped_lines}):\n{log}"
    );
}

#[test]
fn reading_its_own_config_does_not_make_the_daemon_reload_in_a_loop() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { schedule: '0 3 * * *' } }\n",
    );
    let log = std::fs::File::create(project.join("daemon.log")).unwrap();
    let child = Command::new(binary())
        .arg("run")
        .current_dir(project.path())
        .env("RUST_LOG", "litewarden=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let daemon = Daemon { child };
    wait_until("the daemon is ready", || {
        std::fs::read_to_string(project.join("daemon.log"))
            .unwrap_or_default()
            .contains("ready")
    });
    std::fs::write(
        project.join("jobs.yaml"),
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { schedule: '0 4 * * *' } }\n",
    )
    .unwrap();
    wait_until("the edit is applied", || {
        std::fs::read_to_string(project.join("daemon.log"))
            .unwrap_or_default()
            .contains("reload applied")
    });
    std::thread::sleep(Duration::from_millis(1500));
    let log = std::fs::read_to_string(project.join("daemon.log")).unwrap();
    assert!(
        log.matches("files checked").count() <= 1,
        "regression: each read of jobs.yaml woke the daemon again:\n{log}"
    );
    assert_eq!(daemon.stop(), 0);
}

fn record_backup_run(project: &Project, started: chrono::DateTime<chrono::Utc>) {
    assert_eq!(
        project.run(&["apply"]).code,
        0,
        "creates the state database"
    );
    crate::common::open(&project.join(".litewarden/state.db"))
        .execute(
            "INSERT INTO job_runs (job, database, trigger, started_at, finished_at, outcome) VALUES ('backup', 'app', 'schedule', ?1, ?1, 'success')",
            [started.to_rfc3339()],
        )
        .unwrap();
}

#[test]
fn every_is_anchored_to_the_last_run_and_downtime_is_caught_up_once() {
    let config = "version: 1\nsettings: { splay: 0s }\ndatabases:\n  app: { path: app.db, backup: { every: 1h, compress: none } }\n";
    let recent = Project::with_config(config);
    let ten_minutes_ago = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    record_backup_run(&recent, ten_minutes_ago);
    let daemon = Daemon::start(&recent);
    wait_until("the job is scheduled", || {
        next_run(&recent, "app/backup").is_some()
    });
    let next =
        chrono::DateTime::parse_from_rfc3339(&next_run(&recent, "app/backup").unwrap()).unwrap();
    assert_eq!(
        next,
        ten_minutes_ago + chrono::TimeDelta::hours(1),
        "a restart does not push the backup back"
    );
    assert_eq!(backups(&recent.join("backups/app")), 0);
    assert_eq!(daemon.stop(), 0);

    let stale = Project::with_config(config);
    record_backup_run(&stale, chrono::Utc::now() - chrono::TimeDelta::hours(5));
    let daemon = Daemon::start(&stale);
    let resumed = || {
        next_run(&stale, "app/backup")
            .and_then(|next| chrono::DateTime::parse_from_rfc3339(&next).ok())
            .is_some_and(|next| next > chrono::Utc::now() + chrono::TimeDelta::minutes(55))
    };
    wait_until(
        "one catch-up (not five) has landed and the interval resumes",
        || backups(&stale.join("backups/app")) == 1 && resumed(),
    );
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_backup_running_during_a_reload_completes() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 1h, method: api, verify: full, compress: zstd } }\n",
    );
    crate::common::fill(&project.join("app.db"), 60_000);
    let daemon = Daemon::start(&project);
    let dir = project.join("backups/app");
    wait_until("the backup is under way", || {
        std::fs::read_dir(&dir).is_ok_and(|mut e| e.next().is_some())
    });
    save_by_rename(
        &project,
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 2h, method: api, verify: full, compress: zstd } }\n",
    );
    wait_until("the new schedule is armed", || {
        status(&project)["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|j| j["schedule"] == "every 2h"))
    });
    wait_until("the backup that was running completes", || {
        backups(&dir) == 1
    });
    wait_until("and its run is recorded as a success", || {
        crate::common::successful_backup_runs(&project) == 1
    });
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn jitter_spreads_databases_that_share_a_schedule() {
    let project = Project::with_config(
        "version: 1\ndefaults:\n  backup: { schedule: '0 3 * * *', jitter: 1h }\ndatabases:\n  a: { path: a.db }\n  b: { path: b.db }\n  c: { path: c.db }\n",
    );
    let daemon = Daemon::start(&project);
    wait_until("all three are scheduled", || {
        ["a/backup", "b/backup", "c/backup"]
            .iter()
            .all(|j| next_run(&project, j).is_some())
    });
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = ["a/backup", "b/backup", "c/backup"]
        .iter()
        .map(|j| chrono::DateTime::parse_from_rfc3339(&next_run(&project, j).unwrap()).unwrap())
        .collect();
    let unique: std::collections::BTreeSet<_> = times.iter().collect();
    assert_eq!(unique.len(), 3, "{times:?}");
    for time in &times {
        let since_three = time.time() - chrono::NaiveTime::from_hms_opt(3, 0, 0).unwrap();
        assert!(
            since_three >= chrono::TimeDelta::zero() && since_three < chrono::TimeDelta::hours(1),
            "{time}"
        );
    }
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_backup_still_running_when_the_grace_ends_is_aborted_without_leftovers() {
    let (project, daemon) = start_with_a_backup_under_way(
        "version: 1\nsettings: { shutdown_grace: 100ms }\ndatabases:\n  app: { path: app.db, backup: { every: 1h, method: vacuum, verify: full, compress: zstd } }\n",
        150_000,
    );
    assert_eq!(daemon.stop(), 0);
    let names = file_names(&project.join("backups/app"));
    assert!(
        names.is_empty(),
        "the aborted backup's temp files are removed: {names:?}"
    );
    let log = std::fs::read_to_string(project.join("daemon.log")).unwrap();
    assert!(
        log.contains("aborting the jobs still running and removing their temp files removed=1"),
        "{log}"
    );
    let listed = project.run(&["backups", "app", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert!(json["backups"].as_array().unwrap().is_empty(), "{listed:?}");
}

pub(crate) fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let mut response = String::new();
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.read_to_string(&mut response);
    response
}

#[test]
fn metrics_expose_whether_the_last_reload_succeeded() {
    let port = crate::common::free_port();
    let config = format!(
        "version: 1\nsettings: {{ listen: \"127.0.0.1:{port}\" }}\ndatabases:\n  app: {{ path: app.db, backup: {{ every: 1h, compress: none }} }}\n"
    );
    let project = Project::with_config(&config);
    let daemon = Daemon::start(&project);
    wait_until("the first backup is recorded", || {
        http_get(port, "/metrics").contains("job=\"backup\",outcome=\"success\"")
    });
    let metrics = http_get(port, "/metrics");
    assert!(
        metrics.contains("litewarden_config_last_reload_successful 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "litewarden_job_runs_total{database=\"app\",job=\"backup\",outcome=\"success\"} 1"
        ),
        "{metrics}"
    );
    assert!(http_get(port, "/healthz").starts_with("HTTP/1.1 200"));
    std::fs::write(project.join("jobs.yaml"), "version: [\n").unwrap();
    wait_until("the failed reload shows in the metric", || {
        http_get(port, "/metrics").contains("litewarden_config_last_reload_successful 0")
    });
    assert!(http_get(port, "/healthz").starts_with("HTTP/1.1 503"));
    assert!(http_get(port, "/status").contains("\"config_ok\":false"));
    std::fs::write(project.join("jobs.yaml"), config).unwrap();
    wait_until("a valid save sets it back", || {
        http_get(port, "/metrics").contains("litewarden_config_last_reload_successful 1")
    });
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_changed_state_dir_or_listen_waits_for_a_restart() {
    let config =
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 1h, compress: none } }\n";
    let project = Project::with_config(config);
    let daemon = Daemon::start(&project);
    wait_until("the first backup", || {
        backups(&project.join("backups/app")) == 1
    });
    save_by_rename(
        &project,
        &config.replace(
            "version: 1\n",
            "version: 1\nsettings: { state_dir: elsewhere, listen: \"127.0.0.1:1\" }\n",
        ),
    );
    let log = || std::fs::read_to_string(project.join("daemon.log")).unwrap();
    wait_until("the restart-only settings are reported", || {
        log().contains("settings.listen changed")
    });
    assert!(log().contains("settings.state_dir changed"), "{}", log());
    assert!(!project.join("elsewhere").exists());
    assert!(!log().contains("ERROR"), "{}", log());
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_failing_scheduled_backup_is_recorded_and_retried_while_other_databases_go_on() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 1s, compress: none } }\n  broken: { path: broken.db, backup: { every: 1s, compress: none } }\n",
    );
    project.write("broken.db", &[b'x'; 4096]);
    let daemon = Daemon::start(&project);
    wait_until("the daemon is ready", || {
        std::fs::read_to_string(project.join("daemon.log"))
            .unwrap_or_default()
            .contains("ready")
    });
    let state = crate::common::open(&project.join(".litewarden/state.db"));
    let runs = |database: &str, outcome: &str| -> i64 {
        state
            .query_row(
                "SELECT count(*) FROM job_runs WHERE job = 'backup' AND database = ?1 AND outcome = ?2",
                [database, outcome],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    wait_until(
        "the broken backup failed twice and app kept backing up",
        || runs("broken", "failed") >= 2 && runs("app", "success") >= 2,
    );
    let error: String = state
        .query_row(
            "SELECT error FROM job_runs WHERE database = 'broken' AND outcome = 'failed' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        error.contains("broken"),
        "the error names the database: {error}"
    );
    let text = project.run(&["status"]).stdout;
    assert!(
        text.lines().any(|line| line.starts_with("broken ")
            && line.contains(" backup ")
            && line.contains("failed")),
        "{text}"
    );
    assert_eq!(
        std::fs::read(project.join("broken.db")).unwrap(),
        vec![b'x'; 4096],
        "the source is untouched"
    );
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn the_daemon_removes_what_a_killed_restore_left_beside_the_databases() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 1h, compress: none } }\n",
    );
    project.write(".lw-tmp-killed-restore", b"half a database");
    let daemon = Daemon::start(&project);
    wait_until("the leftover is gone", || {
        !project.join(".lw-tmp-killed-restore").exists()
    });
    // The sweep comes before the first converge, which creates the
    // database: poll for it rather than assume the two were one moment.
    wait_until("the daemon went on to create the database", || {
        project.join("app.db").exists()
    });
    assert_eq!(daemon.stop(), 0);
}

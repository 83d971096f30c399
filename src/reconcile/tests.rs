//! The reconciler driven by events fed directly and a fake clock: no
//! signals, no sleeping; real files, real backups on the worker threads.
use std::path::Path;
use std::sync::mpsc::Receiver;

use chrono::TimeDelta;

use super::*;
use crate::clock::FakeClock;
use crate::state::{JobRun, Outcome};

const HOURLY: &str = "version: 1\nsettings: { splay: 0s }\ndefaults: { health: { enabled: false }, optimize: { enabled: false } }\ndatabases:\n  app: { path: app.db, backup: { every: 1h, compress: none } }\n";

/// A connection to `file` in `dir`, for the test's own checks.
fn sqlite(dir: &Path, file: &str) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(file)).unwrap()
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn start(dir: &Path, clock: &Arc<FakeClock>) -> (Reconciler, Receiver<Event>) {
    start_with(dir, clock, HOURLY)
}

fn start_with(dir: &Path, clock: &Arc<FakeClock>, text: &str) -> (Reconciler, Receiver<Event>) {
    let path = dir.join("jobs.yaml");
    std::fs::write(&path, text).unwrap();
    let environment = Environment::default();
    let loaded = config::load(&path, &environment).unwrap();
    let config = Arc::new(loaded.config);
    let state = StateDb::open(&config.settings.state_dir).unwrap();
    let (events, inbox) = channel();
    let clock: Arc<dyn Clock> = Arc::clone(clock) as Arc<dyn Clock>;
    let mut daemon = Reconciler::new(path, environment, config, state, clock, events);
    daemon.start();
    (daemon, inbox)
}

/// Feeds the daemon its events (the watcher's included) until a job has
/// finished, as the loop would.
fn until_a_job_finishes(daemon: &mut Reconciler, inbox: &Receiver<Event>) {
    loop {
        let event = inbox
            .recv_timeout(Duration::from_secs(30))
            .expect("a job finishes");
        let finished = matches!(event, Event::JobFinished(_));
        assert_eq!(daemon.handle(event), Next::Continue);
        if finished {
            return;
        }
    }
}

fn successful_backups(dir: &Path) -> i64 {
    sqlite(dir, ".litewarden/state.db")
        .query_row(
            "SELECT count(*) FROM job_runs WHERE job = 'backup' AND outcome = 'success'",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

fn next_run(daemon: &Reconciler) -> Option<String> {
    daemon.jobs.snapshot()[0].next_run.map(|t| t.to_rfc3339())
}

#[test]
fn jobs_run_when_the_fake_clock_says_so_and_a_file_event_re_arms_them() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = t0();
    let clock = Arc::new(FakeClock::new(t0));
    let (mut daemon, inbox) = start(dir.path(), &clock);
    assert!(
        dir.path().join("app.db").exists(),
        "start converges the files"
    );

    daemon.fire_due_jobs();
    until_a_job_finishes(&mut daemon, &inbox);
    assert_eq!(successful_backups(dir.path()), 1);
    assert_eq!(
        next_run(&daemon),
        Some((t0 + TimeDelta::hours(1)).to_rfc3339())
    );

    daemon.fire_due_jobs();
    assert_eq!(daemon.jobs.running(), 0, "nothing is due before the hour");
    clock.advance(TimeDelta::hours(1));
    daemon.fire_due_jobs();
    assert_eq!(daemon.jobs.running(), 1);
    until_a_job_finishes(&mut daemon, &inbox);
    assert_eq!(successful_backups(dir.path()), 2);

    std::fs::write(dir.path().join("jobs.yaml"), HOURLY.replace("1h", "2h")).unwrap();
    assert_eq!(daemon.handle(Event::FilesChanged), Next::Continue);
    assert_eq!(
        next_run(&daemon),
        Some((t0 + TimeDelta::hours(3)).to_rfc3339()),
        "re-armed from the last recorded run"
    );
}

#[test]
fn a_first_signal_drains_ignoring_reloads_and_a_second_exits() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(t0()));
    let (mut daemon, _inbox) = start(dir.path(), &clock);
    assert_eq!(daemon.handle(Event::Shutdown), Next::Drain);
    std::fs::write(dir.path().join("jobs.yaml"), "version: [\n").unwrap();
    assert_eq!(daemon.handle(Event::Reload), Next::Continue);
    assert!(daemon.config_error.is_none(), "no reload while draining");
    assert_eq!(daemon.handle(Event::Shutdown), Next::Exit);
}

#[test]
fn an_invalid_save_keeps_the_last_good_config_until_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(t0()));
    let (mut daemon, _inbox) = start(dir.path(), &clock);
    std::fs::write(dir.path().join("jobs.yaml"), "version: [\n").unwrap();
    daemon.handle(Event::FilesChanged);
    let error = daemon.config_error.clone().expect("the error is kept");
    assert!(error.contains("jobs.yaml:"), "{error}");
    assert_eq!(
        daemon.config.databases.len(),
        1,
        "the last good config stays"
    );
    assert_eq!(daemon.jobs.len(), 1);
    std::fs::write(
        dir.path().join("jobs.yaml"),
        HOURLY.replace("app:", "other:"),
    )
    .unwrap();
    daemon.handle(Event::FilesChanged);
    assert!(daemon.config_error.is_none());
    assert_eq!(daemon.jobs.snapshot()[0].database, "other");
}

fn backup_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("backups/app"))
        .map(|entries| {
            entries
                .filter(|e| {
                    e.as_ref().is_ok_and(|e| {
                        !e.file_name().to_string_lossy().ends_with(".json")
                            && !e.file_name().to_string_lossy().starts_with(".litewarden")
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

fn applied_migrations(dir: &Path) -> i64 {
    sqlite(dir, "app.db")
        .query_row("SELECT count(*) FROM _litewarden_migrations", [], |row| {
            row.get(0)
        })
        .unwrap_or(0)
}

#[test]
fn a_failed_automatic_migration_waits_for_its_files_to_change_instead_of_piling_up_backups() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    let migration = dir.path().join("migrations/0001_init.sql");
    std::fs::write(&migration, "CREATE TABLE pages (url TEXT PRIMARY KEY;\n").unwrap();
    sqlite(dir.path(), "app.db")
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE seed(x);")
        .unwrap();
    let clock = Arc::new(FakeClock::new(t0()));
    let config = "version: 1\ndatabases:\n  app: { path: app.db, backup: { enabled: false, compress: none }, migrations: { dir: migrations, apply: auto } }\n";
    let (mut daemon, inbox) = start_with(dir.path(), &clock, config);
    assert_eq!(
        backup_files(dir.path()),
        1,
        "the failed run had its pre-migration backup"
    );
    assert_eq!(applied_migrations(dir.path()), 0);

    for _ in 0..3 {
        daemon.handle(Event::FilesChanged);
        daemon.reload(Reload::Poll);
    }
    assert!(
        daemon.converging.is_empty(),
        "regression: every reload ran the migration (and its backup) again"
    );
    assert_eq!(backup_files(dir.path()), 1);

    daemon.handle(Event::Reload);
    until_a_job_finishes(&mut daemon, &inbox);
    assert_eq!(backup_files(dir.path()), 2, "SIGHUP retries");

    std::fs::write(&migration, "CREATE TABLE pages (url TEXT PRIMARY KEY);\n").unwrap();
    daemon.handle(Event::FilesChanged);
    until_a_job_finishes(&mut daemon, &inbox);
    assert_eq!(applied_migrations(dir.path()), 1, "a fixed file runs");
}

/// A daemon with automatic migrations, and a first migration file saved
/// after it started (the file event handled).
fn a_new_migration_saved(dir: &Path) -> (Reconciler, Receiver<Event>) {
    std::fs::create_dir(dir.join("migrations")).unwrap();
    let clock = Arc::new(FakeClock::new(t0()));
    let config = "version: 1\ndatabases:\n  app: { path: app.db, backup: { enabled: false }, migrations: { dir: migrations, apply: auto } }\n";
    let (mut daemon, inbox) = start_with(dir, &clock, config);
    std::fs::write(
        dir.join("migrations/0001_init.sql"),
        "CREATE TABLE pages (url TEXT);\n",
    )
    .unwrap();
    daemon.handle(Event::FilesChanged);
    (daemon, inbox)
}

#[test]
fn a_reload_hands_migrations_to_the_database_worker_and_the_loop_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, inbox) = a_new_migration_saved(dir.path());
    assert!(
        daemon.converging.contains("app"),
        "the loop only dispatched it"
    );
    std::fs::write(
        dir.path().join("migrations/0002_more.sql"),
        "CREATE TABLE links (url TEXT);\n",
    )
    .unwrap();
    daemon.handle(Event::FilesChanged);
    until_a_job_finishes(&mut daemon, &inbox);
    if !daemon.converging.is_empty() {
        until_a_job_finishes(&mut daemon, &inbox);
    }
    assert!(daemon.converging.is_empty());
    assert_eq!(
        applied_migrations(dir.path()),
        2,
        "a file added while the first ran is applied after it"
    );
}

#[test]
fn startup_prunes_run_history_older_than_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDb::open(&dir.path().join(".litewarden")).unwrap();
    for days in [200, 199] {
        let at = t0() - TimeDelta::days(days);
        state
            .record_run(&JobRun {
                job: JobKind::Backup,
                database: Some("app".into()),
                trigger: Trigger::Schedule,
                started_at: at,
                finished_at: at,
                outcome: Outcome::Success,
                failure: None,
                error: None,
                detail: None,
                figures: Default::default(),
            })
            .unwrap();
    }
    drop(state);
    let clock = Arc::new(FakeClock::new(t0()));
    let (daemon, _inbox) = start(dir.path(), &clock);
    let runs: Vec<String> = sqlite(dir.path(), ".litewarden/state.db")
        .prepare("SELECT started_at FROM job_runs WHERE job = 'backup' ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        runs,
        [(t0() - TimeDelta::days(199)).to_rfc3339()],
        "the older run is gone, the latest stays"
    );
    let backups = daemon
        .state
        .run_counts()
        .unwrap()
        .into_iter()
        .find(|c| c.job == JobKind::Backup)
        .map(|c| c.count);
    assert_eq!(backups, Some(2), "totals keep both");
}

#[test]
fn changes_left_to_the_operator_are_reported_once_and_never_retried_on_each_reload() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations/0001_init.sql"),
        "CREATE TABLE pages (url TEXT);\n",
    )
    .unwrap();
    sqlite(dir.path(), "app.db")
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let clock = Arc::new(FakeClock::new(t0()));
    let config = "version: 1\ndatabases:\n  app: { path: app.db, pragmas: { page_size: 8192 }, backup: { enabled: false }, migrations: { dir: migrations, apply: manual } }\n";
    let (mut daemon, _inbox) = start_with(dir.path(), &clock, config);
    for _ in 0..3 {
        daemon.reload(Reload::Poll);
    }
    let apply_runs: i64 = sqlite(dir.path(), ".litewarden/state.db")
        .query_row(
            "SELECT count(*) FROM job_runs WHERE job = 'apply'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        apply_runs, 0,
        "regression: each poll recorded a run that skipped the VACUUM"
    );
    let page_size: i64 = sqlite(dir.path(), "app.db")
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    assert_eq!(page_size, 4096, "the daemon never rewrites the file");
}

#[test]
fn shutdown_waits_for_changes_a_worker_is_applying() {
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, inbox) = a_new_migration_saved(dir.path());
    assert!(daemon.converging.contains("app"));
    assert_eq!(daemon.handle(Event::Shutdown), Next::Drain);
    daemon.shut_down(&inbox, Duration::from_secs(30));
    assert!(daemon.converging.is_empty());
    assert_eq!(
        applied_migrations(dir.path()),
        1,
        "the migration finished before exit"
    );
}

#[test]
fn a_clock_stepping_back_does_not_push_an_interval_job_out() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(t0()));
    let (mut daemon, inbox) = start(dir.path(), &clock);
    daemon.fire_due_jobs();
    until_a_job_finishes(&mut daemon, &inbox);
    assert_eq!(
        next_run(&daemon).as_deref(),
        Some("2026-03-01T01:00:00+00:00")
    );
    clock.advance(TimeDelta::days(-2));
    daemon.fire_due_jobs();
    assert_eq!(
        next_run(&daemon).as_deref(),
        Some("2026-02-27T01:00:00+00:00"),
        "still one hour away on the stepped clock, not two days and an hour"
    );
}

#[test]
fn a_managed_database_that_disappears_is_announced_once_and_never_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(t0()));
    let (mut daemon, inbox) = start(dir.path(), &clock);
    sqlite(dir.path(), "app.db")
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);")
        .unwrap();
    daemon.fire_due_jobs();
    until_a_job_finishes(&mut daemon, &inbox);
    std::fs::remove_file(dir.path().join("app.db")).unwrap();
    for _ in 0..3 {
        daemon.handle(Event::Reload);
    }
    assert!(
        !dir.path().join("app.db").exists(),
        "never re-created empty"
    );
    let missing: i64 = sqlite(dir.path(), ".litewarden/state.db")
        .query_row(
            "SELECT count(*) FROM events WHERE database = 'app' AND kind = 'database_missing'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(missing, 1, "recorded once while it lasts");
    clock.advance(TimeDelta::hours(1));
    daemon.fire_due_jobs();
    until_a_job_finishes(&mut daemon, &inbox);
    let failure: String = sqlite(dir.path(), ".litewarden/state.db")
        .query_row(
            "SELECT failure FROM job_runs WHERE job = 'backup' AND outcome = 'failed'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(failure, "source_missing", "the outcome is a typed value");
}

#[test]
fn a_database_emptied_under_the_daemon_is_recorded_as_a_discontinuity_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(t0()));
    let (mut daemon, _inbox) = start(dir.path(), &clock);
    sqlite(dir.path(), "app.db")
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    daemon.handle(Event::Reload);
    std::fs::remove_file(dir.path().join("app.db")).unwrap();
    sqlite(dir.path(), "app.db")
        .execute_batch("PRAGMA journal_mode=wal;")
        .unwrap();
    for _ in 0..3 {
        daemon.handle(Event::Reload);
    }
    let recorded: i64 = sqlite(dir.path(), ".litewarden/state.db")
        .query_row(
            "SELECT count(*) FROM discontinuities WHERE database = 'app' AND accepted_at IS NULL",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(recorded, 1);
}

#[test]
fn the_daemon_runs_health_maintenance_and_a_drill_on_the_database_worker() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::new(t0()));
    let config = "version: 1\nsettings: { max_parallel_jobs: 4 }\ndatabases:\n  app: { path: app.db, backup: { every: 1h, compress: none }, health: { every: 1h }, optimize: { every: 1h }, drill: { every: 1h, freshness_sql: \"select count(*) from t\" } }\n";
    let (mut daemon, inbox) = start_with(dir.path(), &clock, config);
    sqlite(dir.path(), "app.db")
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    daemon.fire_due_jobs();
    for _ in 0..4 {
        until_a_job_finishes(&mut daemon, &inbox);
    }
    let outcomes: Vec<(String, String)> = {
        let conn = sqlite(dir.path(), ".litewarden/state.db");
        let mut statement = conn
            .prepare("SELECT job, outcome FROM job_runs WHERE database = 'app' ORDER BY job")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let success = |job: &str| (job.to_string(), "success".to_string());
    assert_eq!(
        outcomes,
        [
            success("backup"),
            success("drill"),
            success("health"),
            success("optimize")
        ],
        "the drill runs after the backup it restores"
    );
    let status: String = sqlite(dir.path(), ".litewarden/state.db")
        .query_row(
            "SELECT status FROM health WHERE database = 'app'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_ne!(status, "", "the health result is stored");
}

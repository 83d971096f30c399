//! The daemon's runner through the real binary (issue #22): per-database
//! order beside parallel databases, `max_parallel_jobs` for a reload's
//! migration too, a stuck job that delays no other database, and shutdown
//! with work queued and running.

use crate::common::Project;
use crate::daemon::{Daemon, status, wait_until};

/// Runs of `database`'s backup job with `outcome` (and that failure).
fn backup_runs(project: &Project, database: &str, outcome: &str, failure: Option<&str>) -> i64 {
    crate::common::backup_runs(project, Some(database), outcome, failure)
}

/// One job at a time over `free` (backed up every second) and `held` (every
/// 2 s, with `held_backup` added to its backup options): once both are
/// backed up, another process holds `held` EXCLUSIVE, so its next backup
/// blocks (a busy error after 5 s).
fn one_slot_and_a_held_database(held_backup: &str) -> (Project, Daemon, crate::common::Holder) {
    let project = Project::with_config(&format!(
        "version: 1\nsettings: {{ max_parallel_jobs: 1, shutdown_grace: 1s }}\ndefaults: {{ health: {{ enabled: false }}, optimize: {{ enabled: false }} }}\ndatabases:\n  free: {{ path: free.db, backup: {{ every: 1s, compress: none, retention: {{ keep_last: 2 }} }} }}\n  held: {{ path: held.db, pragmas: {{ journal_mode: delete, busy_timeout: 10m }}, backup: {{ every: 2s{held_backup}, compress: none, retention: {{ keep_last: 2 }} }} }}\n"
    ));
    crate::common::open(&project.join("held.db"))
        .execute_batch("PRAGMA journal_mode=delete; CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let daemon = Daemon::start(&project);
    wait_until("both databases are backed up once", || {
        backup_runs(&project, "free", "success", None) >= 1
            && backup_runs(&project, "held", "success", None) >= 1
    });
    let holder = crate::common::Holder::lock_exclusive(&project.join("held.db"));
    (project, daemon, holder)
}

#[test]
fn a_job_stuck_on_one_database_delays_no_other_database() {
    let (project, daemon, holder) = one_slot_and_a_held_database(", timeout: 200ms");
    wait_until("held's backup is reported stuck", || {
        backup_runs(&project, "held", "failed", Some("stuck")) >= 1
    });
    // The blocked run ends on its own after 5 s (a busy error); free's
    // next runs must come before that, beside it.
    let held_ended = || {
        backup_runs(&project, "held", "success", None)
            + backup_runs(&project, "held", "failed", None)
            - backup_runs(&project, "held", "failed", Some("stuck"))
    };
    let held_before = held_ended();
    let before = backup_runs(&project, "free", "success", None);
    wait_until(
        "free goes on being backed up with the only slot's job stuck on held",
        || backup_runs(&project, "free", "success", None) >= before + 2,
    );
    assert_eq!(
        held_ended(),
        held_before,
        "free ran while held's run was still blocked: that run was set aside"
    );
    holder.kill();
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn shutdown_drops_the_queued_work_and_gives_the_running_work_its_grace() {
    let (project, daemon, holder) = one_slot_and_a_held_database("");
    let held_started = || {
        std::fs::read_to_string(project.join("daemon.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("job started") && line.contains("db=held"))
            .count()
    };
    let started_before = held_started();
    wait_until("a backup of held runs into the lock", || {
        held_started() > started_before
            && backup_runs(&project, "held", "success", None)
                + backup_runs(&project, "held", "failed", None)
                < held_started() as i64
    });
    wait_until("free's next run waits for the slot", || {
        status(&project)["jobs"].as_array().is_some_and(|jobs| {
            jobs.iter()
                .any(|j| j["database"] == "free" && !j["running_since"].is_null())
        })
    });
    let free_before = backup_runs(&project, "free", "success", None);
    assert_eq!(daemon.stop(), 0);
    let log = std::fs::read_to_string(project.join("daemon.log")).unwrap();
    assert!(
        log.contains("cancelled=1"),
        "free's queued run is dropped: {log}"
    );
    assert!(
        log.contains("shutdown grace is over"),
        "held's running backup had its grace: {log}"
    );
    assert_eq!(
        backup_runs(&project, "free", "success", None),
        free_before,
        "nothing queued ran after the signal"
    );
    holder.kill();
}

/// The runs of `job` on `database` as (start, end), oldest first.
fn run_spans(
    project: &Project,
    job: &str,
    database: &str,
) -> Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let state = project.join(".litewarden/state.db");
    if !state.exists() {
        return Vec::new();
    }
    let time = |text: String| {
        chrono::DateTime::parse_from_rfc3339(&text)
            .expect("an RFC 3339 time")
            .to_utc()
    };
    crate::common::open(&state)
        .prepare("SELECT started_at, finished_at FROM job_runs WHERE job = ?1 AND database = ?2 ORDER BY id")
        .unwrap()
        .query_map([job, database], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(|span| span.map(|(start, end)| (time(start), time(end))))
        .collect::<Result<_, _>>()
        .unwrap()
}

type Span = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);

/// Runs a daemon over `a` (backed up every second, with migrations) and
/// `b` (backed up every second) under `max_parallel_jobs`, adds a slow
/// migration to `a` and waits until `a` is backed up after it. Returns the
/// migration's run and the backup runs of `a` and `b`.
fn a_slow_migration_beside_backups(max_parallel_jobs: u32) -> (Span, Vec<Span>, Vec<Span>) {
    let project = Project::with_config(&format!(
        "version: 1\nsettings: {{ max_parallel_jobs: {max_parallel_jobs}, splay: 0s }}\ndefaults: {{ health: {{ enabled: false }}, optimize: {{ enabled: false }}, backup: {{ every: 1s, compress: none, retention: {{ keep_last: 2 }} }} }}\ndatabases:\n  a: {{ path: a.db, migrations: {{ dir: migrations/a }} }}\n  b: {{ path: b.db }}\n",
    ));
    std::fs::create_dir_all(project.join("migrations/a")).unwrap();
    for name in ["a.db", "b.db"] {
        crate::common::open(&project.join(name))
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
    }
    let daemon = Daemon::start(&project);
    wait_until("both databases are backed up", || {
        backup_runs(&project, "a", "success", None) >= 1
            && backup_runs(&project, "b", "success", None) >= 1
    });
    project.write(
        "migrations/a/0001_slow.sql",
        b"CREATE TABLE slow AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000000) SELECT sum(i) AS s FROM n;\n",
    );
    wait_until("the migration ran and a backed up after it", || {
        let migrated = run_spans(&project, "migrate", "a");
        migrated.len() == 1
            && run_spans(&project, "backup", "a")
                .iter()
                .any(|(start, _)| *start >= migrated[0].1)
    });
    assert_eq!(daemon.stop(), 0);
    let migration = run_spans(&project, "migrate", "a")[0];
    assert!(
        migration.1 - migration.0 > chrono::TimeDelta::seconds(1),
        "the migration outlasts a backup interval, so backups fall due during it"
    );
    (
        migration,
        run_spans(&project, "backup", "a"),
        run_spans(&project, "backup", "b"),
    )
}

fn overlaps((start, end): Span, other: Span) -> bool {
    start < other.1 && end > other.0
}

#[test]
fn a_migration_and_a_backup_of_one_database_never_overlap_while_another_backs_up_beside_them() {
    let (migration, a, b) = a_slow_migration_beside_backups(2);
    for backup in a {
        assert!(
            !overlaps(backup, migration),
            "a backup of a {backup:?} overlapped its migration {migration:?}"
        );
    }
    assert!(
        b.iter().any(|backup| overlaps(*backup, migration)),
        "b was backed up while a migrated"
    );
}

#[test]
fn max_parallel_jobs_one_holds_for_a_reload_s_migration_too() {
    let (migration, a, b) = a_slow_migration_beside_backups(1);
    for backup in a.into_iter().chain(b) {
        assert!(
            !overlaps(backup, migration),
            "a backup {backup:?} ran beside the migration {migration:?} with one slot"
        );
    }
}

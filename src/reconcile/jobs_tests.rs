//! The job table's rules with fixed timestamps: no clock, no threads.
use std::path::Path;

use super::*;
use crate::config::Environment;

fn config(databases: &[(&str, &str)]) -> Config {
    let mut text = String::from(
        "version: 1\nsettings: { max_parallel_jobs: 2 }\ndefaults: { health: { enabled: false }, optimize: { enabled: false } }\ndatabases:\n",
    );
    for (name, backup) in databases {
        text.push_str(&format!(
            "  {name}: {{ path: {name}.db, backup: {backup} }}\n"
        ));
    }
    let environment = Environment::from_pairs(Vec::<(String, String)>::new());
    crate::config::parse(
        text.as_bytes(),
        "jobs.yaml",
        Path::new("/x/jobs.yaml"),
        &environment,
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
    .0
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn key(database: &str) -> JobKey {
    JobKey {
        database: DbName::new(database).unwrap(),
        kind: JobKind::Backup,
    }
}

fn next_runs(table: &JobTable) -> Vec<(String, Option<String>)> {
    table
        .snapshot()
        .into_iter()
        .map(|job| (job.database, job.next_run))
        .collect()
}

fn never_ran(_: JobKind, _: &str) -> Option<DateTime<Utc>> {
    None
}

const UTC: chrono_tz::Tz = chrono_tz::UTC;

#[test]
fn new_jobs_run_now_and_an_every_job_is_anchored_to_its_last_run() {
    let mut table = JobTable::default();
    let armed = table.rearm(
        &config(&[("a", "{ every: 1h }"), ("b", "{ every: 1h }")]),
        at(0),
        |_, database| (database == "b").then(|| at(-600)),
    );
    assert_eq!(
        armed,
        vec![
            Armed::Scheduled(key("a"), Some(at(0))),
            Armed::Scheduled(key("b"), Some(at(3000))),
        ]
    );
}

#[test]
fn a_reload_re_arms_only_the_job_whose_schedule_changed() {
    let mut table = JobTable::default();
    table.rearm(
        &config(&[("a", "{ every: 1h }"), ("b", "{ every: 1h }")]),
        at(0),
        never_ran,
    );
    let due = table.fire(at(0), UTC, 4);
    for start in &due.start {
        table.finish(&start.key, at(0), at(10), UTC, false);
    }
    let before = next_runs(&table);
    let armed = table.rearm(
        &config(&[("a", "{ every: 1h }"), ("b", "{ every: 2h }")]),
        at(100),
        |_, _| Some(at(0)),
    );
    assert_eq!(armed, vec![Armed::Scheduled(key("b"), Some(at(7200)))]);
    let after = next_runs(&table);
    assert_eq!(after[0], before[0], "a keeps its next run");
    assert_ne!(after[1], before[1]);
}

#[test]
fn a_running_job_skips_its_ticks_and_the_first_skip_is_reported_once() {
    let mut table = JobTable::default();
    table.rearm(&config(&[("a", "{ every: 1m }")]), at(0), never_ran);
    assert_eq!(table.fire(at(0), UTC, 4).start.len(), 1);
    let first = table.fire(at(60), UTC, 4);
    assert!(first.start.is_empty());
    assert_eq!(first.first_skips, vec![key("a")]);
    let second = table.fire(at(120), UTC, 4);
    assert!(second.first_skips.is_empty(), "logged once per stuck run");
    assert_eq!(table.snapshot()[0].skipped, 2);
    table.finish(&key("a"), at(0), at(130), UTC, false);
    assert_eq!(
        table.fire(at(130), UTC, 4).start.len(),
        1,
        "a long run is followed by one run, not a burst"
    );
}

#[test]
fn max_parallel_jobs_holds_the_rest_due_until_a_slot_frees() {
    let mut table = JobTable::default();
    table.rearm(
        &config(&[
            ("a", "{ every: 1h }"),
            ("b", "{ every: 1h }"),
            ("c", "{ every: 1h }"),
        ]),
        at(0),
        never_ran,
    );
    let due = table.fire(at(0), UTC, 2);
    assert_eq!(due.start.len(), 2);
    assert_eq!(
        table.time_to_next(at(1), 2),
        Some(Duration::from_secs(3599)),
        "a full table does not spin on the waiting job"
    );
    assert!(table.fire(at(1), UTC, 2).start.is_empty());
    table.finish(&due.start[0].key, at(0), at(5), UTC, false);
    let third = table.fire(at(5), UTC, 2);
    assert_eq!(third.start.len(), 1);
    assert_eq!(third.start[0].key, key("c"));
}

#[test]
fn a_job_past_its_timeout_is_reported_stuck_once() {
    let mut table = JobTable::default();
    table.rearm(
        &config(&[("a", "{ every: 1h, timeout: 10s }")]),
        at(0),
        never_ran,
    );
    table.fire(at(0), UTC, 4);
    assert_eq!(
        table.time_to_next(at(0), 4),
        Some(Duration::from_millis(10_001)),
        "the timeout wakes the daemon"
    );
    let stuck = table.fire(at(11), UTC, 4).stuck;
    assert_eq!(
        stuck,
        vec![Stuck {
            key: key("a"),
            kind: JobKind::Backup,
            started: at(0),
            timeout: Duration::from_secs(10),
        }]
    );
    assert!(table.fire(at(20), UTC, 4).stuck.is_empty());
}

#[test]
fn a_job_removed_while_running_finishes_and_is_then_gone() {
    let mut table = JobTable::default();
    table.rearm(
        &config(&[("a", "{ every: 1m }"), ("b", "{ every: 1m }")]),
        at(0),
        never_ran,
    );
    table.fire(at(0), UTC, 4);
    let armed = table.rearm(&config(&[("b", "{ every: 1m }")]), at(5), never_ran);
    assert_eq!(armed, vec![Armed::Removed(key("a"))]);
    assert_eq!(table.len(), 2, "still running");
    assert!(
        table
            .fire(at(120), UTC, 4)
            .first_skips
            .iter()
            .all(|k| k != &key("a")),
        "no more ticks"
    );
    assert_eq!(
        table.finish(&key("a"), at(0), at(130), UTC, false),
        Some(JobKind::Backup)
    );
    assert_eq!(table.len(), 1);
    assert!(
        table
            .fire(at(200), UTC, 4)
            .start
            .iter()
            .all(|s| s.key != key("a"))
    );
}

#[test]
fn a_running_job_keeps_the_definition_it_started_with() {
    let mut table = JobTable::default();
    table.rearm(
        &config(&[("a", "{ every: 1m, compress: none }")]),
        at(0),
        never_ran,
    );
    let started = table.fire(at(0), UTC, 4).start.remove(0);
    table.rearm(
        &config(&[("a", "{ every: 1m, compress: zstd }")]),
        at(5),
        never_ran,
    );
    assert_eq!(
        started.database.backup.compress,
        crate::config::Compression::None
    );
    table.finish(&key("a"), at(0), at(60), UTC, false);
    let next = table.fire(at(60), UTC, 4).start.remove(0);
    assert_eq!(
        next.database.backup.compress,
        crate::config::Compression::Zstd
    );
}

#[test]
fn a_job_slower_than_its_interval_does_not_starve_the_databases_after_it() {
    let mut table = JobTable::default();
    table.rearm(
        &config(&[
            ("a", "{ every: 5s }"),
            ("b", "{ every: 5s }"),
            ("c", "{ every: 5s }"),
        ]),
        at(0),
        never_ran,
    );
    let mut started = Vec::new();
    let mut now = 0;
    for _ in 0..6 {
        let due = table.fire(at(now), UTC, 1);
        assert_eq!(due.start.len(), 1);
        let key = due.start[0].key.clone();
        started.push(key.database.to_string());
        now += 7;
        table.finish(&key, at(now - 7), at(now), UTC, false);
    }
    assert_eq!(
        started,
        ["a", "b", "c", "a", "b", "c"],
        "the longest-waiting goes first"
    );
}

#[test]
fn a_failed_job_is_retried_after_30_s_doubling_unless_its_next_run_comes_first() {
    let mut table = JobTable::default();
    table.rearm(&config(&[("a", "{ every: 5m }")]), at(0), never_ran);
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..5 {
        let due = table.fire(at(now), UTC, 2);
        assert_eq!(due.start.len(), 1, "due at {now}");
        table.finish(&key("a"), at(now), at(now + 1), UTC, true);
        let next = table.snapshot()[0].next_run.clone().unwrap();
        let next = DateTime::parse_from_rfc3339(&next).unwrap().timestamp() - 1_800_000_000;
        waits.push(next - now - 1);
        assert_eq!(table.snapshot()[0].retry, waits.len() as i64);
        now = next;
    }
    assert_eq!(
        waits,
        [30, 60, 120, 240, 299],
        "the 5-minute run comes before a 480 s retry"
    );
    table.fire(at(now), UTC, 2);
    table.finish(&key("a"), at(now), at(now + 1), UTC, false);
    assert_eq!(table.snapshot()[0].retry, 0, "a success ends the retries");
}

//! The job table's rules with fixed timestamps: no clock, no threads.
use std::path::Path;

use std::collections::BTreeSet;

use super::*;
use crate::config::DbName;
use crate::config::Environment;
use crate::runner::{Priority, Queue};

fn config(databases: &[(&str, &str)]) -> Config {
    let mut text = String::from(
        "version: 1\nsettings: { max_parallel_jobs: 2, splay: 0s }\ndefaults: { health: { enabled: false }, optimize: { enabled: false } }\ndatabases:\n",
    );
    for (name, backup) in databases {
        text.push_str(&format!(
            "  {name}: {{ path: {name}.db, backup: {backup} }}\n"
        ));
    }
    parse(&text)
}

fn parse(text: &str) -> Config {
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
        .map(|job| (job.database, job.next_run.map(|t| t.to_rfc3339())))
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
    let due = table.fire(at(0), UTC);
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
    assert_eq!(table.fire(at(0), UTC).start.len(), 1);
    table.started(&key("a"), at(0));
    let first = table.fire(at(60), UTC);
    assert!(first.start.is_empty());
    assert_eq!(first.first_skips, vec![key("a")]);
    let second = table.fire(at(120), UTC);
    assert!(second.first_skips.is_empty(), "logged once per stuck run");
    assert_eq!(table.snapshot()[0].skipped, 2);
    table.finish(&key("a"), at(0), at(130), UTC, false);
    assert_eq!(
        table.fire(at(130), UTC).start.len(),
        1,
        "a long run is followed by one run, not a burst"
    );
}

/// Hands the due jobs to a runner queue with `limit` slots, the way the
/// daemon does; returns the jobs a worker took now.
fn start_through(
    table: &mut JobTable,
    queue: &mut Queue<JobKey>,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<JobKey> {
    for start in table.fire(now, UTC).start {
        let database = start.key.database.clone();
        queue.submit(&database, Priority::Backup, start.key);
    }
    let taken: Vec<JobKey> = std::iter::from_fn(|| queue.take(limit).map(|(_, key)| key)).collect();
    for key in &taken {
        table.started(key, now);
    }
    taken
}

#[test]
fn max_parallel_jobs_holds_the_rest_due_until_a_slot_frees() {
    let mut table = JobTable::default();
    let mut queue = Queue::default();
    table.rearm(
        &config(&[
            ("a", "{ every: 1h }"),
            ("b", "{ every: 1h }"),
            ("c", "{ every: 1h }"),
        ]),
        at(0),
        never_ran,
    );
    let started = start_through(&mut table, &mut queue, at(0), 2);
    assert_eq!(started.len(), 2);
    assert_eq!(
        table.time_to_next(at(1)),
        Some(Duration::from_secs(3599)),
        "a full runner does not spin on the waiting job"
    );
    assert!(start_through(&mut table, &mut queue, at(1), 2).is_empty());
    table.finish(&started[0], at(0), at(5), UTC, false);
    queue.done(&started[0].database);
    let third = start_through(&mut table, &mut queue, at(5), 2);
    assert_eq!(third, [key("c")]);
}

#[test]
fn a_job_past_its_timeout_is_reported_stuck_once() {
    let mut table = JobTable::default();
    table.rearm(
        &config(&[("a", "{ every: 1h, timeout: 10s }")]),
        at(0),
        never_ran,
    );
    table.fire(at(0), UTC);
    assert!(
        table.fire(at(20), UTC).stuck.is_empty(),
        "waiting in the runner's queue is not running: never stuck"
    );
    table.started(&key("a"), at(0));
    assert_eq!(
        table.time_to_next(at(0)),
        Some(Duration::from_millis(10_001)),
        "the timeout wakes the daemon"
    );
    let stuck = table.fire(at(11), UTC).stuck;
    assert_eq!(
        stuck,
        vec![Stuck {
            key: key("a"),
            kind: JobKind::Backup,
            started: at(0),
            timeout: Duration::from_secs(10),
        }]
    );
    assert!(table.fire(at(20), UTC).stuck.is_empty());
}

#[test]
fn a_job_removed_while_running_finishes_and_is_then_gone() {
    let mut table = JobTable::default();
    table.rearm(
        &config(&[("a", "{ every: 1m }"), ("b", "{ every: 1m }")]),
        at(0),
        never_ran,
    );
    table.fire(at(0), UTC);
    let armed = table.rearm(&config(&[("b", "{ every: 1m }")]), at(5), never_ran);
    assert_eq!(armed, vec![Armed::Removed(key("a"))]);
    assert_eq!(table.len(), 2, "still running");
    assert!(
        table
            .fire(at(120), UTC)
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
            .fire(at(200), UTC)
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
    let started = table.fire(at(0), UTC).start.remove(0);
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
    let next = table.fire(at(60), UTC).start.remove(0);
    assert_eq!(
        next.database.backup.compress,
        crate::config::Compression::Zstd
    );
}

#[test]
fn a_job_slower_than_its_interval_does_not_starve_the_databases_after_it() {
    let mut table = JobTable::default();
    let mut queue = Queue::default();
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
    let mut running = start_through(&mut table, &mut queue, at(now), 1);
    for _ in 0..6 {
        assert_eq!(running.len(), 1);
        let key = running.remove(0);
        started.push(key.database.to_string());
        now += 7;
        table.finish(&key, at(now - 7), at(now), UTC, false);
        queue.done(&key.database);
        running = start_through(&mut table, &mut queue, at(now), 1);
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
        let due = table.fire(at(now), UTC);
        assert_eq!(due.start.len(), 1, "due at {now}");
        table.finish(&key("a"), at(now), at(now + 1), UTC, true);
        let next = table.snapshot()[0].next_run.unwrap().timestamp() - 1_800_000_000;
        waits.push(next - now - 1);
        assert_eq!(table.snapshot()[0].retry, waits.len() as i64);
        now = next;
    }
    assert_eq!(
        waits,
        [30, 60, 120, 240, 299],
        "the 5-minute run comes before a 480 s retry"
    );
    table.fire(at(now), UTC);
    table.finish(&key("a"), at(now), at(now + 1), UTC, false);
    assert_eq!(table.snapshot()[0].retry, 0, "a success ends the retries");
}

#[test]
fn splay_spreads_databases_over_the_period_stably_and_a_first_run_is_not_delayed() {
    let mut text = String::from(
        "version: 1\ndefaults: { health: { enabled: false }, optimize: { enabled: false } }\ndatabases:\n",
    );
    for i in 0..50 {
        text.push_str(&format!(
            "  db{i}: {{ path: db{i}.db, backup: {{ every: 1h }} }}\n"
        ));
    }
    let config = parse(&text);
    let mut table = JobTable::default();
    table.rearm(&config, at(0), never_ran);
    let due = table.fire(at(0), UTC);
    assert_eq!(
        due.start.len(),
        50,
        "never backed up: all run now, none delayed"
    );
    for start in &due.start {
        table.finish(&start.key, at(0), at(1), UTC, false);
    }
    let next: Vec<i64> = table
        .snapshot()
        .iter()
        .map(|job| job.next_run.unwrap().timestamp() - at(0).timestamp())
        .collect();
    assert!(
        next.iter().all(|&s| s > 0 && s <= 3600),
        "never later than the interval: {next:?}"
    );
    let quarters: BTreeSet<i64> = next.iter().map(|s| s / 900).collect();
    assert_eq!(quarters.len(), 4, "spread over the hour: {next:?}");

    let mut restarted = JobTable::default();
    let last = |_: JobKind, _: &str| Some(at(0));
    restarted.rearm(&config, at(10), last);
    let mut again = JobTable::default();
    again.rearm(&config, at(10), last);
    assert_eq!(
        restarted.snapshot(),
        again.snapshot(),
        "the offsets are stable across restarts"
    );

    let on_grid = table
        .snapshot()
        .iter()
        .map(|job| job.next_run.unwrap())
        .min()
        .unwrap();
    let started = table.fire(on_grid, UTC).start;
    assert_eq!(started.len(), 1);
    let first = started[0].key.clone();
    table.finish(&first, on_grid, on_grid + TimeDelta::seconds(1), UTC, false);
    let row = table
        .snapshot()
        .into_iter()
        .find(|job| job.database == first.database.as_str())
        .unwrap();
    assert_eq!(
        row.next_run,
        Some(on_grid + TimeDelta::hours(1)),
        "on its place in the grid, the interval holds exactly"
    );

    let off = parse(&text.replace("version: 1\n", "version: 1\nsettings: { splay: 0s }\n"));
    let mut plain = JobTable::default();
    plain.rearm(&off, at(0), never_ran);
    for start in plain.fire(at(0), UTC).start {
        plain.finish(&start.key, at(0), at(1), UTC, false);
    }
    assert!(
        plain
            .snapshot()
            .iter()
            .all(|job| job.next_run == Some(at(3600))),
        "splay: 0s turns it off"
    );
}

#[test]
fn a_tick_while_the_run_waits_in_the_runner_queue_is_not_a_skip() {
    let mut table = JobTable::default();
    table.rearm(&config(&[("a", "{ every: 1m }")]), at(0), never_ran);
    assert_eq!(table.fire(at(0), UTC).start.len(), 1);
    let waiting = table.fire(at(60), UTC);
    assert!(waiting.start.is_empty() && waiting.first_skips.is_empty());
    assert_eq!(
        table.snapshot()[0].skipped,
        0,
        "the queued run is this tick's run"
    );
    table.started(&key("a"), at(61));
    assert_eq!(table.fire(at(120), UTC).first_skips, vec![key("a")]);
}

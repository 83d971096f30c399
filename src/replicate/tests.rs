//! The capture and the rebuild together, on real files.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::Connection;

use super::capture::Capture;
use super::catalog;
use super::rebuild::rebuild;
use crate::clock::FakeClock;

fn app(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, pad BLOB);",
    )
    .unwrap();
    conn
}

/// A WAL database `app.db` with its table, and where its replica goes.
struct Fixture {
    dir: tempfile::TempDir,
    db: std::path::PathBuf,
    replica: std::path::PathBuf,
    conn: Connection,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let replica = dir.path().join("replica");
    let conn = app(&db);
    Fixture {
        dir,
        db,
        replica,
        conn,
    }
}

fn insert(conn: &Connection, from: i64, to: i64) {
    for id in from..=to {
        conn.execute("INSERT INTO t VALUES (?1, zeroblob(300))", [id])
            .unwrap();
    }
}

fn at(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_000_040 + second, 0).unwrap()
}

fn rebuilt_ids(replica: &Path, point: Option<DateTime<Utc>>) -> Vec<i64> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let file = std::fs::File::create(&out).unwrap();
    rebuild("app", replica, point, &file, &out).unwrap();
    drop(file);
    let conn = Connection::open(&out).unwrap();
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut statement = conn.prepare("SELECT id FROM t ORDER BY id").unwrap();
    statement
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn each_step_is_a_point_and_the_latest_holds_every_commit() {
    let Fixture {
        dir: _dir,
        db,
        replica,
        conn,
    } = fixture();
    insert(&conn, 1, 10);
    let mut capture = Capture::new(&db, &replica);
    assert!(
        capture
            .step(&FakeClock::new(at(0)))
            .unwrap()
            .new_generation
            .is_some()
    );
    insert(&conn, 11, 20);
    assert_eq!(capture.step(&FakeClock::new(at(1))).unwrap().commits, 10);
    insert(&conn, 21, 30);
    capture.step(&FakeClock::new(at(2))).unwrap();
    assert_eq!(
        rebuilt_ids(&replica, Some(at(0))),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        rebuilt_ids(&replica, Some(at(1))),
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(rebuilt_ids(&replica, None), (1..=30).collect::<Vec<_>>());
}

#[test]
fn the_capture_checkpoints_and_follows_the_restarted_log_in_one_generation() {
    let Fixture {
        dir: _dir,
        db,
        replica,
        conn,
    } = fixture();
    let mut capture = Capture::new(&db, &replica).restart_log_after(8);
    capture.step(&FakeClock::new(at(0))).unwrap();
    for round in 0..6 {
        insert(&conn, round * 10 + 1, round * 10 + 10);
        let step = capture.step(&FakeClock::new(at(round + 1))).unwrap();
        assert!(step.new_generation.is_none(), "round {round}: {step:?}");
    }
    let generations = catalog::generations(&replica).unwrap();
    assert_eq!(generations.len(), 1);
    let wal = std::fs::metadata(db.with_extension("db-wal"))
        .unwrap()
        .len();
    assert!(
        wal < 200_000,
        "the log restarted instead of growing: {wal} bytes"
    );
    assert_eq!(rebuilt_ids(&replica, None), (1..=60).collect::<Vec<_>>());
}

#[test]
fn the_application_checkpointing_by_itself_is_held_off_or_starts_a_new_generation_and_loses_nothing()
 {
    let Fixture {
        dir: _dir,
        db,
        replica,
        conn,
    } = fixture();
    let mut capture = Capture::new(&db, &replica);
    capture.step(&FakeClock::new(at(0))).unwrap();
    insert(&conn, 1, 10);
    capture.step(&FakeClock::new(at(1))).unwrap();
    capture.step(&FakeClock::new(at(2))).unwrap();
    insert(&conn, 11, 20);
    conn.busy_timeout(std::time::Duration::ZERO).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    insert(&conn, 21, 25);
    conn.execute_batch("PRAGMA wal_checkpoint(RESTART);")
        .unwrap();
    insert(&conn, 26, 30);
    let mut started = 0;
    for second in 3..6 {
        started += usize::from(
            capture
                .step(&FakeClock::new(at(second)))
                .unwrap()
                .new_generation
                .is_some(),
        );
    }
    assert!(started <= 1, "{started} new generations");
    assert_eq!(rebuilt_ids(&replica, None), (1..=30).collect::<Vec<_>>());
    assert_eq!(
        rebuilt_ids(&replica, Some(at(1) + TimeDelta::milliseconds(500))),
        (1..=10).collect::<Vec<_>>()
    );
}

#[test]
fn a_damaged_segment_is_refused_naming_the_last_good_point() {
    let Fixture {
        dir,
        db,
        replica,
        conn,
    } = fixture();
    let mut capture = Capture::new(&db, &replica);
    capture.step(&FakeClock::new(at(0))).unwrap();
    insert(&conn, 1, 5);
    capture.step(&FakeClock::new(at(1))).unwrap();
    insert(&conn, 6, 10);
    capture.step(&FakeClock::new(at(2))).unwrap();
    let generation = &catalog::generations(&replica).unwrap()[0];
    let last = &generation.segments.last().unwrap().path;
    let mut bytes = std::fs::read(last).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(last, bytes).unwrap();
    let out = dir.path().join("out.db");
    let file = std::fs::File::create(&out).unwrap();
    let error = rebuild("app", &replica, None, &file, &out)
        .unwrap_err()
        .to_string();
    assert!(error.contains("--at"), "{error}");
    assert_eq!(
        rebuilt_ids(&replica, Some(at(1))),
        (1..=5).collect::<Vec<_>>()
    );
}

#[test]
fn compaction_joins_each_past_minute_into_one_file_and_every_point_stays() {
    let Fixture {
        dir: _dir,
        db,
        replica,
        conn,
    } = fixture();
    let mut capture = Capture::new(&db, &replica);
    capture.step(&FakeClock::new(at(0))).unwrap();
    let seconds = [1, 2, 3, 61, 62, 63, 121, 122];
    for (i, second) in seconds.iter().enumerate() {
        insert(&conn, i as i64 * 5 + 1, i as i64 * 5 + 5);
        capture.step(&FakeClock::new(at(*second))).unwrap();
    }
    let before: Vec<Vec<i64>> = seconds
        .iter()
        .map(|second| rebuilt_ids(&replica, Some(at(*second))))
        .collect();
    assert_eq!(super::compact(&replica, at(125)).unwrap(), 2);
    let generation = &catalog::generations(&replica).unwrap()[0];
    assert_eq!(generation.segments.len(), 4, "{:?}", generation.segments);
    assert_eq!(super::compact(&replica, at(125)).unwrap(), 0);
    for (second, expected) in seconds.iter().zip(before) {
        assert_eq!(
            rebuilt_ids(&replica, Some(at(*second))),
            expected,
            "at {second}"
        );
    }
    assert_eq!(rebuilt_ids(&replica, None), (1..=40).collect::<Vec<_>>());
}

#[test]
fn a_database_file_replaced_under_the_capture_starts_a_new_generation_of_the_new_file() {
    let Fixture {
        dir,
        db,
        replica,
        conn,
    } = fixture();
    insert(&conn, 1, 10);
    let mut capture = Capture::new(&db, &replica);
    capture.step(&FakeClock::new(at(0))).unwrap();
    let other = dir.path().join("other.db");
    let replacement = app(&other);
    insert(&replacement, 100, 105);
    drop(replacement);
    drop(conn);
    std::fs::rename(&other, &db).unwrap();
    for side in ["app.db-wal", "app.db-shm"] {
        std::fs::remove_file(dir.path().join(side)).unwrap();
    }
    let step = capture.step(&FakeClock::new(at(1))).unwrap();
    assert_eq!(
        step.new_generation.as_deref(),
        Some("the database file was replaced")
    );
    assert_eq!(rebuilt_ids(&replica, None), (100..=105).collect::<Vec<_>>());
    assert_eq!(
        rebuilt_ids(&replica, Some(at(0))),
        (1..=10).collect::<Vec<_>>()
    );
}

#[test]
fn a_log_past_its_limit_is_truncated_after_a_complete_checkpoint_and_a_new_generation_holds_every_commit()
 {
    let Fixture {
        dir: _dir,
        db,
        replica,
        conn,
    } = fixture();
    let mut capture = Capture::new(&db, &replica)
        .restart_log_after(8)
        .truncate_log_past(1);
    capture.step(&FakeClock::new(at(0))).unwrap();
    let wal = db.with_extension("db-wal");
    let mut truncated = 0;
    for round in 0..8 {
        insert(&conn, round * 10 + 1, round * 10 + 10);
        let step = capture.step(&FakeClock::new(at(round + 1))).unwrap();
        if std::fs::metadata(&wal).unwrap().len() == 0 {
            truncated += 1;
            assert!(step.new_generation.is_some(), "round {round}: {step:?}");
        }
        assert_eq!(
            rebuilt_ids(&replica, None),
            (1..=round * 10 + 10).collect::<Vec<_>>()
        );
    }
    assert!(truncated > 0, "the log was never truncated");
}

#[test]
fn a_clock_that_went_back_never_hides_the_newest_generation_behind_an_older_one() {
    let Fixture {
        dir: _dir,
        db,
        replica,
        conn,
    } = fixture();
    insert(&conn, 1, 10);
    let mut first = Capture::new(&db, &replica);
    first.step(&FakeClock::new(at(100))).unwrap();
    insert(&conn, 11, 20);
    first.step(&FakeClock::new(at(101))).unwrap();
    first.close();
    insert(&conn, 21, 30);
    let mut after_restart = Capture::new(&db, &replica);
    let behind = FakeClock::new(at(0));
    assert!(
        after_restart
            .step(&behind)
            .unwrap()
            .new_generation
            .is_some()
    );
    insert(&conn, 31, 40);
    assert_eq!(after_restart.step(&behind).unwrap().commits, 10);
    let generations = catalog::generations(&replica).unwrap();
    assert_eq!(generations.len(), 2);
    assert!(generations[1].started > at(101), "{generations:?}");
    assert_eq!(rebuilt_ids(&replica, None), (1..=40).collect::<Vec<_>>());
    assert_eq!(
        rebuilt_ids(&replica, Some(at(101))),
        (1..=20).collect::<Vec<_>>()
    );
}

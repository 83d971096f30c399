//! Unit tests of the live manager on real files in temp directories: reads
//! and writes, SQL errors, transactions rolled back on error and panic, pool
//! exhaustion, a file that is not a database, and the engines it calls.

use std::sync::Arc;
use std::time::Duration;

use super::*;

fn manager(dir: &Path, options: Options) -> Manager {
    Manager::open(dir.join("app.db"), options).unwrap()
}

/// Rows in `pages`, read through the pool.
fn pages(db: &Manager) -> i64 {
    db.query_row("SELECT count(*) FROM pages", [], |r| r.get(0))
        .unwrap()
}

fn with_pages(dir: &Path) -> Manager {
    let db = manager(dir, Options::default());
    db.execute_batch(
        "CREATE TABLE pages (id INTEGER PRIMARY KEY, url TEXT NOT NULL, status INTEGER)",
    )
    .unwrap();
    db
}

#[test]
fn open_creates_a_wal_database_and_reads_see_what_writes_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_pages(dir.path());
    assert_eq!(db.name(), "app");
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(
        db.execute(
            "INSERT INTO pages (url, status) VALUES (?1, ?2)",
            ("https://a.example", 200)
        )
        .unwrap(),
        1
    );
    let inserted = db
        .insert_many(
            "INSERT INTO pages (url) VALUES (?1)",
            ["https://b.example", "https://c.example"]
                .iter()
                .map(|u| [u]),
        )
        .unwrap();
    assert_eq!(inserted, 2);
    assert_eq!(
        db.execute("UPDATE pages SET status = 404 WHERE status IS NULL", [])
            .unwrap(),
        2
    );
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Page {
        url: String,
        status: Option<i64>,
    }
    let pages: Vec<Page> = db
        .query_as("SELECT url, status FROM pages ORDER BY id", [])
        .unwrap();
    assert_eq!(
        pages[0],
        Page {
            url: "https://a.example".into(),
            status: Some(200)
        }
    );
    let table = db.query_table("SELECT id, url FROM pages", []).unwrap();
    assert_eq!(table.columns, ["id", "url"]);
    assert_eq!(table.rows.len(), 3);
    let metrics = db.metrics();
    assert!(
        metrics.queries.writes >= 4 && metrics.queries.reads >= 3,
        "{metrics:?}"
    );
}

#[test]
fn an_sql_error_names_the_statement_and_the_pool_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_pages(dir.path());
    let error = db
        .query("SELECT nope FROM pages", [], |row| row.get::<_, i64>(0))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "app: no such column: nope in `SELECT nope FROM pages`"
    );
    let error = db
        .execute("INSERT INTO pages (url) VALUES (NULL)", [])
        .unwrap_err();
    assert!(
        error.to_string().contains(
            "NOT NULL constraint failed: pages.url in `INSERT INTO pages (url) VALUES (NULL)`"
        ),
        "{error}"
    );
    let error = db.query("DELETE FROM pages", [], |_| Ok(())).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("attempt to write a readonly database"),
        "{error}"
    );
    assert_eq!(db.metrics().queries.errors, 3);
    db.execute("INSERT INTO pages (url) VALUES ('ok')", [])
        .unwrap();
    let count = pages(&db);
    assert_eq!(count, 1);
}

#[test]
fn a_transaction_rolls_back_on_error_and_on_panic_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = with_pages(dir.path());
    let failed: Result<(), LiveError> = db.transaction(|tx| {
        tx.execute("INSERT INTO pages (url) VALUES ('a')", [])?;
        tx.execute("INSERT INTO nowhere VALUES (1)", [])?;
        Ok(())
    });
    assert!(failed.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Result<(), LiveError> = db.transaction(|tx| {
            tx.execute("INSERT INTO pages (url) VALUES ('b')", [])?;
            panic!("the application's code panicked");
        });
    }));
    assert!(panicked.is_err());
    let count = pages(&db);
    assert_eq!(count, 0, "both transactions rolled back");
    db.transaction(|tx| {
        tx.execute("INSERT INTO pages (url) VALUES ('c')", [])?;
        Ok(())
    })
    .unwrap();
    let count = pages(&db);
    assert_eq!(count, 1);
}

#[test]
fn an_exhausted_pool_waits_then_names_its_size_and_how_many_are_out() {
    let dir = tempfile::tempdir().unwrap();
    with_pages(dir.path());
    let db = Arc::new(manager(
        dir.path(),
        Options {
            pool_size: 1,
            connection_timeout: Duration::from_millis(200),
            ..Options::default()
        },
    ));
    let (holding, held) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || {
            db.query("SELECT 1", [], |_| {
                holding.send(()).unwrap();
                released.recv().unwrap();
                Ok(())
            })
            .unwrap();
        })
    };
    held.recv().unwrap();
    let error = db.query("SELECT 2", [], |_| Ok(())).unwrap_err();
    release.send(()).unwrap();
    holder.join().unwrap();
    let text = error.to_string();
    assert!(
        text.starts_with("app: connection pool exhausted: all 1 connections are checked out (1 in use) and none came back within"),
        "{text}"
    );
    let waits = db.metrics().pool.waits;
    assert_eq!((waits.pool_waits, waits.pool_timeouts), (1, 1));
    db.query("SELECT 3", [], |_| Ok(())).unwrap();
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.db"), vec![b'x'; 4096]).unwrap();
    let error = Manager::open(dir.path().join("app.db"), Options::default()).unwrap_err();
    assert!(
        error.to_string().ends_with(
            "app.db: not a SQLite database (wrong path, or the file is encrypted or damaged)"
        ),
        "{error}"
    );
}

#[test]
fn backups_migrations_health_and_columns_go_through_the_engines() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("0001_pages.sql"),
        "CREATE TABLE pages (id INTEGER PRIMARY KEY, url TEXT);",
    )
    .unwrap();
    let db = manager(
        dir.path(),
        Options {
            migrations_dir: Some(migrations),
            ..Options::default()
        },
    );
    let report = db.run_pending_migrations().unwrap();
    assert_eq!(report.applied.len(), 1);
    assert_eq!(db.run_pending_migrations().unwrap().applied.len(), 0);
    db.execute("INSERT INTO pages (url) VALUES ('x')", [])
        .unwrap();
    let added = db
        .add_columns(&[NewColumn {
            table: "pages".into(),
            column: "priority".into(),
            sql_type: "INTEGER".into(),
            default: Some("0".into()),
            not_null: true,
        }])
        .unwrap();
    assert_eq!(added, ["pages.priority"]);
    assert!(
        db.add_columns(&[NewColumn {
            table: "pages".into(),
            column: "bad; DROP TABLE pages".into(),
            sql_type: "INTEGER".into(),
            default: None,
            not_null: false,
        }])
        .is_err()
    );
    let backup = db.backup_now().unwrap();
    assert!(
        backup
            .backup
            .path
            .starts_with(dir.path().join("backups/app"))
    );
    let copy = db.backup_to(dir.path().join("copy.db")).unwrap();
    let conn = rusqlite::Connection::open(copy).unwrap();
    let priority: i64 = conn
        .query_row("SELECT priority FROM pages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(priority, 0);
    assert!(
        db.backup_to(dir.path().join("copy.db")).is_err(),
        "never replaces a file"
    );
    let health = db.health().unwrap();
    assert_eq!(health.status.as_str(), "healthy", "{health:?}");
    db.optimize().unwrap();
}

#[test]
fn an_owned_transaction_sees_its_writes_holds_the_writer_and_rolls_back_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(with_pages(dir.path()));
    let tx = Manager::begin(&db).unwrap();
    tx.execute("INSERT INTO pages (url) VALUES ('pending')", [])
        .unwrap();
    let seen = tx.query_table("SELECT count(*) FROM pages", []).unwrap();
    assert_eq!(seen.rows, [[rusqlite::types::Value::Integer(1)]]);
    let outside = pages(&db);
    assert_eq!(outside, 0, "readers see only committed rows");
    let waiting = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || db.execute("INSERT INTO pages (url) VALUES ('after')", []))
    };
    tx.commit().unwrap();
    assert_eq!(
        waiting.join().unwrap().unwrap(),
        1,
        "the waiting write ran after the commit"
    );
    drop(
        Manager::begin(&db)
            .unwrap()
            .execute("INSERT INTO pages (url) VALUES ('dropped')", []),
    );
    let tx = Manager::begin(&db).unwrap();
    tx.execute("INSERT INTO pages (url) VALUES ('dropped')", [])
        .unwrap();
    drop(tx);
    let urls: Vec<String> = db
        .query("SELECT url FROM pages ORDER BY id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(urls, ["pending", "after"]);
}

#[test]
fn writing_outside_an_open_transaction_from_its_thread_fails_after_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    with_pages(dir.path());
    let config = open::config_for_path(&dir.path().join("app.db"), &Options::default()).unwrap();
    let mut database = Database::clone(config.databases.values().next().unwrap());
    database.pragmas.connection.busy_timeout = Duration::from_millis(100);
    let mut config = config.clone();
    config
        .databases
        .insert(database.name.clone(), std::sync::Arc::new(database));
    let db = Arc::new(Manager::from_config(&config, "app", Options::default()).unwrap());
    let tx = Manager::begin(&db).unwrap();
    let error = db
        .execute("INSERT INTO pages (url) VALUES ('x')", [])
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("app: the writer is held by an open transaction"),
        "{error}"
    );
    tx.rollback();
    db.execute("INSERT INTO pages (url) VALUES ('x')", [])
        .unwrap();
}

#[test]
fn the_writer_of_a_replicated_database_leaves_checkpoints_to_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    with_pages(dir.path());
    let autocheckpoint = |replicated: bool| {
        let config =
            open::config_for_path(&dir.path().join("app.db"), &Options::default()).unwrap();
        let mut database = Database::clone(config.databases.values().next().unwrap());
        database.replicate = replicated.then(|| crate::config::Replicate {
            to: crate::config::ReplicateTo::Local,
            sync_every: Duration::from_secs(1),
            window: Duration::from_secs(3600),
            max_lag: Duration::from_secs(10),
        });
        let mut config = config.clone();
        config
            .databases
            .insert(database.name.clone(), std::sync::Arc::new(database));
        let db = Manager::from_config(&config, "app", Options::default()).unwrap();
        db.transaction(|tx| {
            Ok(tx.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get::<_, i64>(0))?)
        })
        .unwrap()
    };
    assert_eq!(autocheckpoint(false), 1000);
    assert_eq!(autocheckpoint(true), 0);
}

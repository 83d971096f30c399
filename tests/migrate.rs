//! Migrations on real databases (issue #5).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Project, count, open};

const CONFIG: &str = "\
version: 1
defaults:
  pragmas: { journal_mode: wal, busy_timeout: 300ms }
databases:
  app: { path: app.db, migrations: { dir: migrations/app } }
";

pub(crate) fn project(files: &[(&str, &str)]) -> Project {
    let project = Project::with_config(CONFIG);
    std::fs::create_dir_all(project.join("migrations/app")).unwrap();
    for (name, sql) in files {
        project.write(&format!("migrations/app/{name}"), sql.as_bytes());
    }
    project
}

fn column<T: rusqlite::types::FromSql>(path: &Path, sql: &str) -> Vec<T> {
    let conn = open(path);
    let mut statement = conn.prepare(sql).unwrap();
    statement
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

pub(crate) fn tables(path: &Path) -> Vec<String> {
    column(
        path,
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
}

fn applied_versions(path: &Path) -> Vec<i64> {
    column(
        path,
        "SELECT version FROM _litewarden_migrations ORDER BY version",
    )
}

const FIVE: &[(&str, &str)] = &[
    (
        "0001_pages.sql",
        "CREATE TABLE pages (id INTEGER PRIMARY KEY, url TEXT NOT NULL);\n",
    ),
    (
        "0002_seed.sql",
        "INSERT INTO pages (url) VALUES ('a'), ('b');\n",
    ),
    (
        "0003_broken.sql",
        "CREATE TABLE ok_before (x);\n\nCREATE TABLE broken (x INTEGER,,);\n",
    ),
    ("0004_later.sql", "CREATE TABLE later (x);\n"),
    ("0005_last.sql", "CREATE TABLE last (x);\n"),
];

#[test]
fn a_syntax_error_in_the_third_of_five_keeps_the_first_two_and_nothing_of_the_third() {
    let project = project(FIVE);
    let output = project.run(&["apply"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output
            .stdout
            .contains("0003_broken.sql:3: near \",\": syntax error"),
        "{output:?}"
    );
    let app = project.join("app.db");
    assert_eq!(applied_versions(&app), [1, 2]);
    assert_eq!(
        tables(&app),
        ["_litewarden_migrations", "pages"],
        "nothing of 0003 (not even its first statement)"
    );
    assert_eq!(crate::common::pragma::<i64>(&app, "user_version"), 2);
    let status = project.run(&["migrate", "status", "app"]);
    assert!(status.stdout.contains("applied   0002_seed"), "{status:?}");
    assert!(
        status.stdout.contains("pending   0003_broken"),
        "{status:?}"
    );
    assert!(status.stdout.contains("pending   0005_last"), "{status:?}");
    let up = project.run(&["migrate", "up", "app"]);
    assert_eq!(up.code, 1, "{up:?}");
    assert!(
        up.stderr
            .contains("database `app`: migrations/app/0003_broken.sql:3:"),
        "{up:?}"
    );
    let state = open(&project.join(".litewarden/state.db"));
    let failed: i64 = state
        .query_row("SELECT count(*) FROM job_runs WHERE job = 'migrate' AND outcome = 'failed' AND database = 'app'", [], |r| r.get(0))
        .unwrap();
    assert!(failed >= 1, "a failed migration run is recorded for alerts");
    let status = project.run(&["migrate", "status", "app"]);
    assert_eq!(status.code, 1, "{status:?}");
    let failed_line = status
        .stdout
        .lines()
        .find(|l| l.starts_with("FAILED    the last run, at 20"))
        .unwrap_or_else(|| panic!("{status:?}"));
    assert!(
        failed_line.contains("0003_broken.sql:3:"),
        "the failed migration and its error: {failed_line}"
    );
    assert!(
        status
            .stdout
            .contains("app: 2 applied, 3 pending, 1 problem"),
        "{status:?}"
    );
}

#[test]
fn a_migration_violating_a_constraint_on_existing_data_rolls_back_completely() {
    let project = project(&[
        (
            "0001_pages.sql",
            "CREATE TABLE pages (id INTEGER PRIMARY KEY, url TEXT);\nINSERT INTO pages (url) VALUES ('a'), ('a');\n",
        ),
        (
            "0002_unique.sql",
            "ALTER TABLE pages ADD COLUMN seen INTEGER;\nCREATE UNIQUE INDEX pages_url ON pages (url);\n",
        ),
    ]);
    let output = project.run(&["apply"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output
            .stdout
            .contains("0002_unique.sql:2: UNIQUE constraint failed"),
        "{output:?}"
    );
    let app = project.join("app.db");
    assert_eq!(applied_versions(&app), [1]);
    let columns: i64 = open(&app)
        .query_row("SELECT count(*) FROM pragma_table_info('pages')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        columns, 2,
        "the ADD COLUMN before the failure was rolled back too"
    );
}

/// A project with one pending migration whose database another connection
/// holds the write lock of (until `COMMIT` on the returned connection).
fn a_pending_migration_and_a_writer_holding_the_lock() -> (Project, rusqlite::Connection) {
    let project = project(&[(
        "0001_visits.sql",
        "CREATE TABLE visits (id INTEGER PRIMARY KEY);\n",
    )]);
    crate::common::fill(&project.join("app.db"), 10);
    let holder = open(&project.join("app.db"));
    holder
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO pages (url) VALUES ('held');")
        .unwrap();
    (project, holder)
}

#[test]
fn a_writer_holding_the_lock_past_busy_timeout_is_a_clear_busy_error_and_the_next_run_succeeds() {
    let (project, holder) = a_pending_migration_and_a_writer_holding_the_lock();
    let output = project.run(&["migrate", "up", "app"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(output.stderr.contains("database `app` is busy: another connection held the write lock longer than busy_timeout (300ms)"), "{output:?}");
    assert!(output.stderr.contains("runs again next time"), "{output:?}");
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    let output = project.run(&["migrate", "up", "app"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(applied_versions(&project.join("app.db")), [1]);
}

#[test]
fn apply_records_why_its_migration_failed_not_just_that_it_failed() {
    let (project, holder) = a_pending_migration_and_a_writer_holding_the_lock();
    let output = project.run(&["apply"]);
    assert_eq!(output.code, 1, "{output:?}");
    holder.execute_batch("COMMIT").unwrap();
    let state = project.join(".litewarden/state.db");
    let failures = |job: &str| -> Vec<String> {
        open(&state)
            .prepare("SELECT coalesce(failure, '-') FROM job_runs WHERE job = ?1 ORDER BY id")
            .unwrap()
            .query_map([job], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(failures("migrate"), ["busy"]);
    assert_eq!(
        failures("apply"),
        ["busy"],
        "the reload's record keeps the migration's kind of failure"
    );
}

#[test]
fn a_migration_killed_midway_leaves_the_pre_migration_state() {
    let project = project(&[
        (
            "0001_pages.sql",
            "CREATE TABLE pages (id INTEGER PRIMARY KEY, body TEXT);\nINSERT INTO pages (body) VALUES ('x');\n",
        ),
        (
            "0002_long.sql",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000000) INSERT INTO pages (body) SELECT printf('%.200c', 'y') FROM n;\n",
        ),
    ]);
    let config_dir = project.path();
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal")
        .unwrap();
    let first = project.run(&["migrate", "up", "app", "--to", "1"]);
    assert_eq!(first.code, 0, "{first:?}");
    let app = project.join("app.db");
    let mut child = std::process::Command::new(crate::common::binary())
        .args(["migrate", "up", "app"])
        .current_dir(config_dir)
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap();
    let wal = project.join("app.db-wal");
    let started = Instant::now();
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < 8 << 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the long migration never started writing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the migration must have been killed while running"
    );
    assert_eq!(applied_versions(&app), [1]);
    assert_eq!(count(&app, "pages"), 1);
    let check: String = open(&app)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let status = project.run(&["migrate", "status", "app"]);
    assert!(status.stdout.contains("pending   0002_long"), "{status:?}");
}

#[test]
fn malformed_names_duplicates_and_non_utf8_files_are_errors_naming_the_file() {
    for (files, expected) in [
        (
            vec![("init.sql", "SELECT 1;")],
            "migrations/app/init.sql: not a migration file name",
        ),
        (
            vec![("0001_a.sql", "SELECT 1;"), ("0001_b.sql", "SELECT 1;")],
            "both have version 1",
        ),
        (
            vec![("0001_a b.sql", "SELECT 1;")],
            "0001_a b.sql: not a migration file name",
        ),
    ] {
        let project = project(&files);
        let output = project.run(&["plan"]);
        assert_eq!(output.code, 1, "{output:?}");
        assert!(output.stderr.contains(expected), "{expected}: {output:?}");
        assert!(!project.join("app.db").exists());
    }
    let project = project(&[]);
    project.write(
        "migrations/app/0001_latin1.sql",
        b"INSERT INTO t VALUES ('caf\xe9');",
    );
    let output = project.run(&["migrate", "status", "app"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output
            .stderr
            .contains("0001_latin1.sql: not valid UTF-8 (byte 26)"),
        "{output:?}"
    );
}

#[test]
fn two_migrate_up_at_once_never_interleave() {
    let mut files: Vec<(String, String)> = Vec::new();
    for v in 1..=30 {
        files.push((format!("{v:04}_step.sql"), format!("CREATE TABLE t{v} (x);\nWITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO t{v} SELECT i FROM n;\n")));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let project = project(&refs);
    project.write("jobs.yaml", CONFIG.replace("300ms", "30s").as_bytes());
    crate::common::fill(&project.join("app.db"), 10);
    let spawn = || {
        std::process::Command::new(crate::common::binary())
            .args(["migrate", "up", "app", "--json"])
            .current_dir(project.path())
            .env("RUST_LOG", "error")
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");
    let applied = |o: &std::process::Output| -> usize {
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        json["report"]["applied"].as_array().unwrap().len()
    };
    assert_eq!(
        applied(&a) + applied(&b),
        30,
        "every migration ran exactly once"
    );
    assert_eq!(
        applied_versions(&project.join("app.db")),
        (1..=30).collect::<Vec<_>>()
    );
}

#[test]
fn an_edited_applied_file_is_an_error_until_repair_and_out_of_order_files_are_refused() {
    let project = project(&[
        ("0001_a.sql", "CREATE TABLE a (x);\n"),
        ("0003_c.sql", "CREATE TABLE c (x);\n"),
    ]);
    assert_eq!(project.run(&["apply"]).code, 0);
    project.write("migrations/app/0001_a.sql", b"CREATE TABLE a (x);\r\n");
    assert_eq!(
        project.run(&["plan"]).code,
        0,
        "a CRLF-only edit is not an edit"
    );
    project.write("migrations/app/0001_a.sql", b"CREATE TABLE a (x, y);\n");
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stderr
            .contains("0001_a.sql: checksum mismatch: applied as"),
        "{plan:?}"
    );
    assert!(
        plan.stderr.contains("litewarden migrate repair"),
        "{plan:?}"
    );
    let repair = project.run(&["migrate", "repair", "app"]);
    assert_eq!(repair.code, 0, "{repair:?}");
    assert!(
        repair.stdout.contains("1 checksum(s) repaired"),
        "{repair:?}"
    );
    assert_eq!(project.run(&["plan"]).code, 0);
    project.write("migrations/app/0002_b.sql", b"CREATE TABLE b (x);\n");
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stderr.contains(
            "0002_b.sql: version 2 is older than the newest applied migration (out of order"
        ),
        "{plan:?}"
    );
    project.write(
        "jobs.yaml",
        CONFIG
            .replace(
                "migrations/app }",
                "migrations/app, allow_out_of_order: true }",
            )
            .as_bytes(),
    );
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(apply.stdout.contains("> app: 0002_b applied"), "{apply:?}");
}

#[test]
fn manual_mode_only_reports_pending_migrations() {
    let project = project(&[("0001_a.sql", "CREATE TABLE a (x);\n")]);
    project.write(
        "jobs.yaml",
        CONFIG
            .replace("migrations/app }", "migrations/app, apply: manual }")
            .as_bytes(),
    );
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains("> app: 0001_a pending (manual: run `litewarden migrate up app`)"),
        "{plan:?}"
    );
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("(skipped: migrations.apply is manual"),
        "{apply:?}"
    );
    assert!(!tables(&project.join("app.db")).contains(&"a".to_string()));
    assert_eq!(project.run(&["migrate", "up", "app"]).code, 0);
    assert_eq!(project.run(&["plan"]).code, 0);
}

#[test]
fn baseline_adopts_an_existing_schema_and_sqlx_histories_are_imported() {
    let project = project(&[
        (
            "0001_pages.sql",
            "CREATE TABLE pages (id INTEGER PRIMARY KEY);\n",
        ),
        ("0002_more.sql", "CREATE TABLE more (x);\n"),
    ]);
    open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE pages (id INTEGER PRIMARY KEY);")
        .unwrap();
    let baseline = project.run(&["migrate", "baseline", "app", "--version", "1"]);
    assert_eq!(baseline.code, 0, "{baseline:?}");
    assert!(
        baseline
            .stdout
            .contains("recorded 0001_pages as applied (not run)"),
        "{baseline:?}"
    );
    assert_eq!(project.run(&["apply"]).code, 0);
    assert_eq!(applied_versions(&project.join("app.db")), [1, 2]);

    let sqlx = project_with_sqlx();
    let status = sqlx.run(&["migrate", "status", "app"]);
    assert!(
        status
            .stdout
            .contains("applied   20220505083406_create-events"),
        "{status:?}"
    );
    assert!(
        status.stdout.contains("pending   20220606000000_add-index"),
        "{status:?}"
    );
    assert_eq!(sqlx.run(&["apply"]).code, 0);
    assert_eq!(
        applied_versions(&sqlx.join("app.db")),
        [20220505083406, 20220606000000]
    );
}

fn project_with_sqlx() -> Project {
    let project = project(&[
        (
            "20220505083406_create-events.sql",
            "CREATE TABLE events (id INTEGER PRIMARY KEY);\n",
        ),
        (
            "20220606000000_add-index.sql",
            "CREATE INDEX events_id ON events (id);\n",
        ),
    ]);
    open(&project.join("app.db"))
        .execute_batch(
            "PRAGMA journal_mode=wal;
             CREATE TABLE events (id INTEGER PRIMARY KEY);
             CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                 success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);
             INSERT INTO _sqlx_migrations VALUES (20220505083406, 'create-events', '2022-05-05 08:34:06', 1, x'00', 5);",
        )
        .unwrap();
    project
}

#[test]
fn down_reverts_with_down_files_after_a_backup() {
    let project = project(&[
        ("0001_a.up.sql", "CREATE TABLE a (x);\n"),
        ("0001_a.down.sql", "DROP TABLE a;\n"),
        ("0002_b.sql", "CREATE TABLE b (x);\n"),
        ("0002_b.down.sql", "DROP TABLE b;\n"),
    ]);
    assert_eq!(project.run(&["apply"]).code, 0);
    let down = project.run(&["migrate", "down", "app", "--to", "1"]);
    assert_eq!(down.code, 0, "{down:?}");
    assert!(down.stdout.contains("< app: reverted 0002_b"), "{down:?}");
    assert_eq!(applied_versions(&project.join("app.db")), [1]);
    assert_eq!(
        tables(&project.join("app.db")),
        ["_litewarden_migrations", "a"]
    );
}

#[test]
fn a_realistic_history_gives_the_same_schema_as_plain_execute_batch() {
    for name in ["website_crawler", "analytics"] {
        realistic_history_matches(name);
    }
}

fn realistic_history_matches(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = Project::with_config(&format!(
        "version: 1\ndatabases:\n  {name}: {{ path: crawler.db, migrations: {{ dir: migrations/{name} }} }}\n"
    ));
    let dir = root.join(format!("migrations/{name}"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in &names {
        project.write(
            &format!(
                "migrations/{name}/{}",
                path.file_name().unwrap().to_string_lossy()
            ),
            &std::fs::read(path).unwrap(),
        );
    }
    assert_eq!(project.run(&["apply"]).code, 0);
    let reference = project.join("reference.db");
    let conn = open(&reference);
    for path in &names {
        conn.execute_batch(&std::fs::read_to_string(path).unwrap())
            .unwrap();
    }
    let schema = |path: &Path| -> Vec<(String, String, Option<String>)> {
        let conn = open(path);
        let mut statement = conn
            .prepare("SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE '_litewarden%' ORDER BY type, name")
            .unwrap();
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(schema(&project.join("crawler.db")), schema(&reference));
    assert!(schema(&reference).len() >= 3, "{name}");
}

#[test]
fn plan_rehearse_runs_pending_migrations_on_a_scratch_copy_and_touches_nothing_live() {
    let project = project(&[(
        "0001_pages.sql",
        "CREATE TABLE visits (id INTEGER PRIMARY KEY, url TEXT);\n",
    )]);
    crate::common::fill(&project.join("app.db"), 50);
    assert_eq!(project.run(&["apply"]).code, 0);
    project.write(
        "migrations/app/0002_ok.sql",
        b"ALTER TABLE pages ADD COLUMN crawl_priority INTEGER DEFAULT 1;\n",
    );
    project.write(
        "migrations/app/0003_bad.sql",
        b"CREATE UNIQUE INDEX pages_title ON pages (fetched_at);\n",
    );
    let live_before = crate::common::dump(&project.join("app.db"));
    let output = project.run(&["plan", "--rehearse"]);
    assert_eq!(
        output.code, 1,
        "a failing rehearsal fails the plan: {output:?}"
    );
    assert!(
        output
            .stdout
            .contains("rehearsal of app on an online copy of app.db:"),
        "{output:?}"
    );
    assert!(output.stdout.contains("  ok    0002_ok  "), "{output:?}");
    assert!(
        output.stdout.contains("  FAIL  0003_bad: database `app`:"),
        "{output:?}"
    );
    assert!(
        output.stdout.contains("UNIQUE constraint failed"),
        "{output:?}"
    );
    assert!(
        crate::common::dump(&project.join("app.db")) == live_before,
        "the live database is untouched"
    );
    assert_eq!(applied_versions(&project.join("app.db")), [1]);

    std::fs::remove_file(project.join("migrations/app/0003_bad.sql")).unwrap();
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    let output = project.run(&["plan", "--rehearse"]);
    assert_eq!(output.code, 2, "{output:?}");
    assert!(
        output
            .stdout
            .contains("rehearsal of app on a copy of backup backups/app/app-"),
        "{output:?}"
    );
}

#[test]
fn declared_columns_are_added_never_changed_and_type_drift_is_reported() {
    let project = Project::with_config(
        "version: 1
databases:
  app:
    path: app.db
    migrations: { dir: migrations/app }
    schema:
      pages:
        crawl_priority: { type: INTEGER, default: 1 }
        last_modified: { type: TIMESTAMP }
        status: { type: TEXT, default: pending, not_null: true }
        url: { type: BLOB }
      visits:
        referrer: { type: TEXT }
",
    );
    project.write(
        "migrations/app/0001_visits.sql",
        b"CREATE TABLE visits (id INTEGER PRIMARY KEY);\n",
    );
    crate::common::fill(&project.join("app.db"), 20);
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains("~ app: add column pages.\"crawl_priority\" INTEGER DEFAULT 1"),
        "{plan:?}"
    );
    assert!(
        plan.stdout
            .contains("~ app: add column pages.\"status\" TEXT DEFAULT 'pending' NOT NULL"),
        "{plan:?}"
    );
    assert!(plan.stdout.contains("! app: pages.url is TEXT, jobs.yaml declares BLOB (not changed: litewarden only adds columns)"), "{plan:?}");
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let app = project.join("app.db");
    let (priority, status): (i64, String) = open(&app)
        .query_row(
            "SELECT crawl_priority, status FROM pages WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((priority, status.as_str()), (1, "pending"));
    let referrer: i64 = open(&app)
        .query_row(
            "SELECT count(*) FROM pragma_table_info('visits') WHERE name = 'referrer'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        referrer, 1,
        "a column of a table a migration creates is added in the same apply"
    );
    let url_type: String = open(&app)
        .query_row(
            "SELECT type FROM pragma_table_info('pages') WHERE name = 'url'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(url_type, "TEXT", "existing columns are never changed");
    let again = project.run(&["plan"]);
    assert_eq!(again.code, 0, "{again:?}");

    project.write("jobs.yaml", b"version: 1\ndatabases:\n  app:\n    path: app.db\n    schema: { pages: { bad: { type: \"INT; DROP TABLE pages\" }, flag: { type: INTEGER, not_null: true } } }\n");
    let check = project.run(&["check"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(
        check.stderr.contains(
            "databases.app.schema.pages.bad.type: `INT; DROP TABLE pages` is not an SQL type name"
        ),
        "{check:?}"
    );
    assert!(
        check.stderr.contains(
            "databases.app.schema.pages.flag.not_null: a NOT NULL column needs a `default`"
        ),
        "{check:?}"
    );
}

#[test]
fn no_transaction_files_foreign_key_violations_and_refinery_histories() {
    let project = project(&[
        (
            "V1__parents.sql",
            "CREATE TABLE parents (id INTEGER PRIMARY KEY);\nCREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parents(id));\n",
        ),
        ("V2__vacuum.sql", "-- litewarden:no-transaction\nVACUUM;\n"),
    ]);
    let apply = project.run(&["apply"]);
    assert_eq!(
        apply.code, 0,
        "VACUUM cannot run inside a transaction, so this proves the header works: {apply:?}"
    );
    assert_eq!(applied_versions(&project.join("app.db")), [1, 2]);

    project.write(
        "migrations/app/V3__orphan.sql",
        b"INSERT INTO children (id, parent) VALUES (1, 42);\n",
    );
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("1 foreign key violation(s) after the migration"),
        "{apply:?}"
    );
    assert_eq!(count(&project.join("app.db"), "children"), 0, "rolled back");

    let refinery = project_with_refinery();
    let status = refinery.run(&["migrate", "status", "app"]);
    assert!(
        status.stdout.contains("applied   0001_events"),
        "{status:?}"
    );
    assert!(status.stdout.contains("pending   0002_more"), "{status:?}");
}

fn project_with_refinery() -> Project {
    let project = project(&[
        (
            "V1__events.sql",
            "CREATE TABLE events (id INTEGER PRIMARY KEY);\n",
        ),
        ("V2__more.sql", "CREATE TABLE more (x);\n"),
    ]);
    open(&project.join("app.db"))
        .execute_batch(
            "PRAGMA journal_mode=wal;
             CREATE TABLE events (id INTEGER PRIMARY KEY);
             CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255));
             INSERT INTO refinery_schema_history VALUES (1, 'events', '2024-01-01T00:00:00Z', '123');",
        )
        .unwrap();
    project
}

#[test]
fn a_failed_pre_migration_backup_means_no_migration_runs() {
    let project = project(&[(
        "0001_visits.sql",
        "CREATE TABLE visits (id INTEGER PRIMARY KEY);\n",
    )]);
    project.write(
        "jobs.yaml",
        CONFIG
            .replace(
                "databases:",
                "settings: { backup_dir: blocked/backups }\ndatabases:",
            )
            .as_bytes(),
    );
    crate::common::fill(&project.join("app.db"), 10);
    std::fs::create_dir_all(project.join("blocked/backups/app")).unwrap();
    std::fs::remove_dir(project.join("blocked/backups/app")).unwrap();
    project.write(
        "blocked/backups/app",
        b"a file where the backup directory should be",
    );
    let output = project.run(&["migrate", "up", "app"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output
            .stderr
            .contains("no migration was run: backup of `app` failed"),
        "{output:?}"
    );
    assert!(!tables(&project.join("app.db")).contains(&"visits".to_string()));
}

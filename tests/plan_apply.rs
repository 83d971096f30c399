//! `plan` and `apply` against real SQLite files.

use std::os::unix::fs::PermissionsExt;

use crate::common::{Project, open, pragma};

const THREE: &str = "\
version: 1
defaults:
  pragmas: { journal_mode: wal, synchronous: full, busy_timeout: 2s, foreign_keys: true }
databases:
  website_crawler: { path: data/website_crawler.db }
  backup: { path: data/backup.db }
  analytics: { path: data/analytics.db }
";

#[test]
fn plan_lists_creations_exits_2_and_creates_nothing() {
    let project = Project::with_config(THREE);
    let output = project.run(&["plan"]);
    assert_eq!(output.code, 2, "{output:?}");
    assert!(
        output
            .stdout
            .contains("+ website_crawler: create data/website_crawler.db (journal_mode=wal)"),
        "{output:?}"
    );
    assert!(
        output.stdout.contains(
            "Plan: 3 to create, 0 to change, 0 migration(s) to apply, 0 to stop managing."
        ),
        "{output:?}"
    );
    assert_eq!(project.files(), ["jobs.yaml"]);
}

#[test]
fn plan_json_describes_each_change() {
    let project = Project::with_config(THREE);
    let output = project.run(&["plan", "--json"]);
    assert_eq!(output.code, 2, "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let first = &json["changes"][0];
    assert_eq!(first["action"], "create_database");
    assert_eq!(first["database"], "analytics");
    assert_eq!(first["pragmas"][0]["pragma"], "journal_mode");
    assert_eq!(first["pragmas"][0]["value"], "wal");
}

#[test]
fn apply_creates_private_wal_databases_then_converges_to_a_no_op() {
    let project = Project::with_config(THREE);
    let output = project.run(&["apply"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(
        output
            .stdout
            .contains("Apply: 3 applied, 0 skipped, 0 failed."),
        "{output:?}"
    );
    for name in ["website_crawler", "backup", "analytics"] {
        let path = project.join(&format!("data/{name}.db"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
        assert_eq!(pragma::<String>(&path, "journal_mode"), "wal", "{name}");
    }
    let plan = project.run(&["plan"]);
    assert_eq!(
        plan.code, 0,
        "per-connection pragmas are never drift: {plan:?}"
    );
    assert!(
        plan.stdout
            .contains("No changes: 3 databases match jobs.yaml."),
        "{plan:?}"
    );
    let again = project.run(&["apply"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.stdout, "Apply: no changes.\n");
}

#[test]
fn apply_records_every_run_in_the_state_database() {
    let project = Project::with_config(THREE);
    assert_eq!(project.run(&["apply"]).code, 0);
    assert_eq!(project.run(&["apply"]).code, 0);
    let state = open(&project.join(".litewarden/state.db"));
    let runs: Vec<(String, String, String)> = state
        .prepare("SELECT job, outcome, detail FROM job_runs ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        runs,
        [
            (
                "apply".to_string(),
                "success".to_string(),
                "3 applied, 0 skipped, 0 failed".to_string()
            ),
            (
                "apply".to_string(),
                "success".to_string(),
                "no changes".to_string()
            ),
        ]
    );
    let managed: i64 = state
        .query_row("SELECT count(*) FROM managed_databases", [], |r| r.get(0))
        .unwrap();
    assert_eq!(managed, 3);
}

#[test]
fn journal_mode_drift_is_planned_and_converged_keeping_the_data() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, pragmas: { journal_mode: wal } }\n",
    );
    let path = project.join("app.db");
    open(&path)
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (42);")
        .unwrap();
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("~ app: journal_mode delete -> wal"),
        "{plan:?}"
    );
    assert_eq!(project.run(&["apply"]).code, 0);
    assert_eq!(pragma::<String>(&path, "journal_mode"), "wal");
    let x: i64 = open(&path)
        .query_row("SELECT x FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(x, 42);
    assert_eq!(project.run(&["plan"]).code, 0);
}

#[test]
fn page_size_change_on_a_non_empty_file_waits_for_allow_vacuum() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, pragmas: { journal_mode: wal, page_size: 8192, application_id: 1234 } }\n",
    );
    let path = project.join("app.db");
    open(&path)
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x); INSERT INTO t SELECT value FROM generate_series(1, 1000);")
        .unwrap_or_else(|_| open(&path).execute_batch("PRAGMA journal_mode=wal; CREATE TABLE IF NOT EXISTS t(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 1000) INSERT INTO t SELECT i FROM n;").unwrap());
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains("~ app: page_size 4096 -> 8192 (rewrites the file with VACUUM)"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("~ app: application_id 0 -> 1234"),
        "{plan:?}"
    );
    assert!(plan.stdout.contains("--allow-vacuum"), "{plan:?}");

    let skipped = project.run(&["apply"]);
    assert_eq!(skipped.code, 0, "{skipped:?}");
    assert!(
        skipped
            .stdout
            .contains("page_size 4096 -> 8192 (rewrites the file with VACUUM) (skipped:"),
        "{skipped:?}"
    );
    assert_eq!(pragma::<i64>(&path, "page_size"), 4096);
    assert_eq!(
        pragma::<i64>(&path, "application_id"),
        1234,
        "other changes still apply"
    );
    assert_eq!(project.run(&["plan"]).code, 2);

    let done = project.run(&["apply", "--allow-vacuum"]);
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(pragma::<i64>(&path, "page_size"), 8192);
    assert_eq!(pragma::<String>(&path, "journal_mode"), "wal");
    let count: i64 = open(&path)
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1000);
    assert_eq!(project.run(&["plan"]).code, 0);
}

#[test]
fn new_database_gets_page_size_and_auto_vacuum_without_vacuum() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, pragmas: { page_size: 16KiB, auto_vacuum: incremental } }\n",
    );
    assert_eq!(project.run(&["apply"]).code, 0);
    let path = project.join("app.db");
    assert_eq!(pragma::<i64>(&path, "page_size"), 16384);
    assert_eq!(pragma::<i64>(&path, "auto_vacuum"), 2);
    assert_eq!(project.run(&["plan"]).code, 0);
}

#[test]
fn removing_a_database_stops_managing_it_and_keeps_the_file() {
    let project = Project::with_config(THREE);
    assert_eq!(project.run(&["apply"]).code, 0);
    project.write("jobs.yaml", b"version: 1\ndatabases:\n  website_crawler: { path: data/website_crawler.db, pragmas: { journal_mode: wal } }\n");
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains("- analytics: stop managing data/analytics.db (file kept)"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains(
            "Plan: 0 to create, 0 to change, 0 migration(s) to apply, 2 to stop managing."
        ),
        "{plan:?}"
    );
    assert_eq!(project.run(&["apply"]).code, 0);
    assert!(project.join("data/analytics.db").is_file());
    assert!(project.join("data/backup.db").is_file());
    assert_eq!(project.run(&["plan"]).code, 0);
}

#[test]
fn apply_json_reports_each_result() {
    let project = Project::with_config("version: 1\ndatabases:\n  app: { path: app.db }\n");
    let output = project.run(&["apply", "--json"]);
    assert_eq!(output.code, 0, "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["results"][0]["change"]["action"], "create_database");
    assert_eq!(json["results"][0]["status"]["status"], "done");
}

#[test]
fn a_failing_database_does_not_stop_the_others() {
    let project = Project::with_config(
        "version: 1\ndefaults:\n  pragmas: { journal_mode: wal, busy_timeout: 200ms }\ndatabases:\n  a: { path: a.db }\n  b: { path: b.db }\n",
    );
    let a = project.join("a.db");
    let holder = open(&a);
    holder
        .execute_batch("CREATE TABLE t(x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
        .unwrap();
    let output = project.run(&["apply"]);
    drop(holder);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output
            .stdout
            .contains("~ a: journal_mode delete -> wal (failed:"),
        "{output:?}"
    );
    assert!(output.stdout.contains("+ b: create b.db"), "{output:?}");
    assert!(project.join("b.db").is_file());
}

#[test]
fn an_unreadable_database_is_reported_and_the_others_still_converge() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  notes: { path: notes.db }\n  app: { path: app.db }\n",
    );
    project.write("notes.db", b"these are my notes, not a database\n");
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "an unreadable database is an error: {plan:?}");
    assert!(plan.stdout.contains("+ app: create app.db"), "{plan:?}");
    assert!(
        plan.stderr
            .contains("error: notes.db: not a SQLite database"),
        "{plan:?}"
    );
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(
        project.join("app.db").is_file(),
        "the readable database converges"
    );
    assert!(apply.stdout.contains("1 could not be read"), "{apply:?}");
    assert_eq!(
        std::fs::read(project.join("notes.db")).unwrap(),
        b"these are my notes, not a database\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&project.run(&["plan", "--json"]).stdout).unwrap();
    assert_eq!(json["unreadable"][0]["database"], "notes", "{json}");
}

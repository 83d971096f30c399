//! A new operator's first hour (issue #13): configuration warnings only
//! where configuration is the subject, in the chosen log format.

use crate::common::{Project, fill, shipped};

fn project() -> Project {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { retention: { keep_last: 2 } } }\n",
    );
    fill(&project.join("app.db"), 100);
    project
}

#[test]
fn only_check_plan_and_apply_repeat_configuration_warnings() {
    let project = project();
    let warning = "is on the same file system as database app";
    for args in [&["plan"][..], &["apply"], &["check"]] {
        let output = project.run(args);
        assert!(
            output.stderr.contains(warning) || output.stdout.contains(warning),
            "{args:?}: {}",
            output.stderr
        );
    }
    for args in [
        &["backup", "app"][..],
        &["backups", "app"],
        &["prune", "app", "--dry-run"],
        &["health", "app"],
        &["migrate", "status", "app"],
        &["alerts"],
    ] {
        let output = project.run(args);
        assert!(
            !output.stderr.contains(warning),
            "{args:?} repeated a configuration warning: {}",
            output.stderr
        );
    }
}

#[test]
fn with_json_logs_a_configuration_warning_is_a_json_line() {
    let project = project();
    let output = project.run(&["--log-format", "json", "plan"]);
    let lines: Vec<&str> = output.stderr.lines().collect();
    assert!(!lines.is_empty(), "{output:?}", output = output.stderr);
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(value["level"], "WARN", "{line}");
        assert!(
            value["fields"]["warning"]
                .as_str()
                .is_some_and(|w| w.contains("same file system")),
            "{line}"
        );
    }
}

#[test]
fn plan_never_says_everything_matches_while_a_database_cannot_be_read() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  a: { path: a.db }\n  b: { path: b.db }\n  c: { path: c.db }\n",
    );
    assert_eq!(project.run(&["apply"]).code, 0);
    project.write("c.db", &[0x42; 8192]);
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(
        plan.stdout.contains(
            "No changes for 2 databases; 1 cannot be read (c; see the error above), so the plan is incomplete."
        ),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("match"), "{}", plan.stdout);
    assert!(plan.stderr.contains("c.db"), "{}", plan.stderr);
}

#[test]
fn commands_on_databases_take_all_and_a_bare_one_says_what_to_give() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  website_crawler: { path: a.db }\n  analytics: { path: b.db }\n",
    );
    assert_eq!(project.run(&["apply"]).code, 0);
    for command in [
        "backup", "prune", "backups", "optimize", "drill", "pause", "resume", "accept",
    ] {
        let bare = project.run(&[command]);
        assert_eq!(bare.code, 1, "{command}: {}", bare.stderr);
        assert!(
            bare.stderr.contains(&format!(
                "error: give a database (analytics, website_crawler) or --all, e.g. `litewarden {command} analytics` or `litewarden {command} --all`"
            )),
            "{command}: {}",
            bare.stderr
        );
    }
    assert_eq!(project.run(&["backup", "--all"]).code, 0);
    let listed = project.run(&["backups", "--all"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.starts_with("analytics:\n") && listed.stdout.contains("\nwebsite_crawler:\n"),
        "{}",
        listed.stdout
    );
    let json = project.run(&["backups", "--all", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let databases = value["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 2);
    assert!(
        databases
            .iter()
            .all(|d| d["backups"].as_array().unwrap().len() == 1)
    );
    let drills = project.run(&["drill", "--all", "--json"]);
    assert_eq!(drills.code, 0, "{}", drills.stdout);
    let value: serde_json::Value = serde_json::from_str(&drills.stdout).unwrap();
    assert_eq!(value["drills"].as_array().unwrap().len(), 2);
    let paused = project.run(&["pause", "--all"]);
    assert_eq!(paused.code, 0, "{}", paused.stderr);
    assert_eq!(paused.stdout.matches("scheduled backups paused").count(), 2);
    let resumed = project.run(&["resume", "--all"]);
    assert_eq!(
        resumed.stdout.matches("scheduled backups resumed").count(),
        2
    );
    assert_eq!(project.run(&["accept", "--all"]).code, 0);
}

#[test]
fn a_value_built_from_an_environment_variable_names_it() {
    let project = shipped();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("jobs.yaml")).unwrap();
    let at = |needle: &str| {
        shipped
            .lines()
            .enumerate()
            .find_map(|(i, line)| {
                line.find(needle)
                    .map(|col| format!("jobs.yaml:{}:{}", i + 1, col + 1))
            })
            .unwrap()
    };
    for (variable, value, expected) in [
        (
            "DB_UPDATE_INTERVAL",
            "1h",
            "DB_UPDATE_INTERVAL is \"1h\" but is used as seconds (`${DB_UPDATE_INTERVAL:-3600}s`); write 3600",
        ),
        (
            "BACKUP_RETENTION_DAYS",
            "7d",
            "BACKUP_RETENTION_DAYS is \"7d\" but is used as days (`${BACKUP_RETENTION_DAYS:-7}d`); write 7",
        ),
    ] {
        let output = project.run_with(&["check"], &[(variable, value)]);
        assert_eq!(
            output.code,
            1,
            "{variable}: {output:?}",
            output = output.stdout
        );
        let text = format!("{}{}", output.stdout, output.stderr);
        assert!(text.contains(expected), "{variable}: {text}");
        let position = at(&format!("${{{variable}"));
        assert!(
            text.lines()
                .any(|l| l.starts_with(&position) && l.contains(expected)),
            "{variable} at {position}: {text}"
        );
    }
}

#[test]
fn the_readme_session_is_what_the_binary_prints() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = shipped();
    let mut session = String::from("```text\n");
    for command in ["plan", "apply", "plan"] {
        let output = project.run(&[command]);
        assert!(
            output.code == 0 || output.code == 2,
            "{command}: {}",
            output.stderr
        );
        session.push_str(&format!("$ litewarden {command}\n{}", output.stdout));
    }
    session.push_str("```\n");
    let readme_path = root.join("docs/reference.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (start, end) = ("<!-- session:start -->\n", "<!-- session:end -->");
    let from = readme.find(start).expect("the session's start marker") + start.len();
    let to = readme.find(end).expect("the session's end marker");
    if std::env::var_os("LITEWARDEN_BLESS_README").is_some() {
        std::fs::write(
            &readme_path,
            format!("{}{session}{}", &readme[..from], &readme[to..]),
        )
        .unwrap();
        return;
    }
    assert_eq!(
        readme[from..to],
        session,
        "docs/reference.md's session drifted; LITEWARDEN_BLESS_README=1 cargo test readme_session rewrites it"
    );
}

#[test]
fn a_warning_from_defaults_is_reported_once_at_the_defaults_naming_the_databases() {
    let project = shipped();
    let output = project.run_with(&["check"], &[("ENABLE_AUTO_BACKUP", "false")]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    let lines: Vec<&str> = output
        .stdout
        .lines()
        .filter(|l| l.contains("scheduled backups are disabled"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", output.stdout);
    assert!(
        lines[0].contains("defaults.health.max_backup_age:")
            && lines[0].ends_with("(inherited by databases analytics, backup, website_crawler)"),
        "{}",
        lines[0]
    );

    let invalid = Project::with_config(
        "version: 1\ndefaults:\n  backup: { every: 0s }\ndatabases:\n  a: { path: a.db }\n  b: { path: b.db }\n",
    );
    let output = invalid.run(&["check"]);
    assert_eq!(output.code, 1, "{}", output.stdout);
    let text = format!("{}{}", output.stdout, output.stderr);
    assert!(
        text.contains("jobs.yaml:3:20: defaults.backup.every: interval must be longer than 0s (inherited by databases a, b)"),
        "{text}"
    );
    assert!(text.contains("jobs.yaml: 1 error"), "{text}");
}

/// The application built `website_crawler.db` itself: the shipped
/// migrations' SQL run directly, with no migration history.
fn built_by_the_application(project: &Project, extra: &str) {
    let conn = crate::common::open(&project.join("website_crawler.db"));
    let mut files: Vec<_> = std::fs::read_dir(project.join("migrations/website_crawler"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    for file in files {
        conn.execute_batch(&std::fs::read_to_string(file).unwrap())
            .unwrap();
    }
    conn.execute_batch(extra).unwrap();
}

#[test]
fn an_existing_database_without_history_is_adopted_not_migrated_twice() {
    let project = shipped();
    built_by_the_application(
        &project,
        "INSERT INTO crawled_pages (url, domain) VALUES ('https://example.com/', 'example.com');",
    );
    let hint = "! website_crawler: 1 table and no migration history — adopt it with `litewarden migrate baseline website_crawler --version 2`";
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(plan.stdout.contains(hint), "{}", plan.stdout);
    assert!(
        !plan.stdout.contains("website_crawler: 0001"),
        "{}",
        plan.stdout
    );
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 1, "{}", apply.stdout);
    assert!(
        apply.stdout.contains(hint),
        "{}{}",
        apply.stdout,
        apply.stderr
    );
    assert!(!apply.stderr.contains("already exists"), "{}", apply.stderr);

    let baseline = project.run(&["migrate", "baseline", "website_crawler", "--detect"]);
    assert_eq!(baseline.code, 0, "{}", baseline.stderr);
    assert!(
        baseline
            .stdout
            .contains("website_crawler: its schema is what the migrations give at version 2")
            && baseline
                .stdout
                .contains("website_crawler: baseline at version 2, 2 recorded"),
        "{}",
        baseline.stdout
    );
    let plan = project.run(&["plan"]);
    assert!(
        !plan.stdout.contains("! website_crawler"),
        "{}",
        plan.stdout
    );
    assert_eq!(
        crate::common::count(&project.join("website_crawler.db"), "crawled_pages"),
        1
    );
}

#[test]
fn a_schema_that_matches_no_version_is_reported_with_its_differences() {
    let project = shipped();
    built_by_the_application(&project, "CREATE TABLE app_only (x);");
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert!(
        plan.stdout.contains("! website_crawler: 2 tables and no migration history, and its schema matches no migration version (closest: 2, 1 difference)"),
        "{}",
        plan.stdout
    );
    let detect = project.run(&["migrate", "baseline", "website_crawler", "--detect"]);
    assert_eq!(detect.code, 1, "{}", detect.stdout);
    assert!(
        detect.stdout.contains("the closest is 2:")
            && detect
                .stdout
                .contains("  the database has table app_only, the migrations do not create it")
            && detect.stdout.contains("nothing recorded"),
        "{}",
        detect.stdout
    );
}

#[test]
fn a_database_named_backup_reads_as_a_database_and_a_job() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  backup: { path: backup.db, backup: { retention: { keep_last: 2 } } }\n",
    );
    assert_eq!(project.run(&["apply"]).code, 0);
    assert_eq!(project.run(&["backup", "backup"]).code, 0);
    assert_eq!(project.run(&["drill", "backup"]).code, 0);
    let status = project.run(&["status"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        !status.stdout.contains("backup/backup"),
        "{}",
        status.stdout
    );
    let header = status
        .stdout
        .lines()
        .find(|l| l.starts_with("DATABASE"))
        .unwrap();
    assert!(header.starts_with("DATABASE JOB"), "{header}");
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.starts_with("backup   drill ")),
        "{}",
        status.stdout
    );
}

#[test]
fn columns_from_schema_are_added_after_a_verified_backup() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app:\n    path: app.db\n    backup: { retention: { keep_last: 3 } }\n    schema:\n      pages:\n        crawl_priority: { type: INTEGER, default: 1 }\n        last_modified: { type: TIMESTAMP }\n",
    );
    fill(&project.join("app.db"), 50);
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 0, "{}{}", apply.stdout, apply.stderr);
    let listed = project.run(&["backups", "app", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let backups = value["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "one backup for both columns: {backups:?}");
    assert_eq!(backups[0]["backup"]["trigger"], "pre-schema");
    assert!(
        backups[0]["backup"]["verified_at"].is_string(),
        "{backups:?}"
    );
    let before = std::path::PathBuf::from(backups[0]["path"].as_str().unwrap());
    let restored = project.run(&[
        "restore",
        "app",
        "--from",
        before.to_str().unwrap(),
        "--to",
        "before.db",
        "--yes",
    ]);
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    let columns = |path: &str| -> Vec<String> {
        let conn = crate::common::open(&project.join(path));
        let mut statement = conn
            .prepare("SELECT name FROM pragma_table_info('pages')")
            .unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(!columns("before.db").contains(&"crawl_priority".to_string()));
    assert!(columns("app.db").contains(&"crawl_priority".to_string()));
}

#[test]
fn migrate_status_and_health_take_all_too() {
    let project = shipped();
    assert_eq!(project.run(&["apply"]).code, 0);
    let all = project.run(&["migrate", "status", "--all"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert!(
        all.stdout
            .contains("analytics: 2 applied, 0 pending, 0 problems")
            && all
                .stdout
                .contains("website_crawler: 2 applied, 0 pending, 0 problems"),
        "{}",
        all.stdout
    );
    let json = project.run(&["migrate", "status", "--all", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["databases"].as_array().unwrap().len(), 2);
    let bare = project.run(&["migrate", "status"]);
    assert_eq!(bare.code, 1);
    assert!(
        bare.stderr
            .contains("or --all, e.g. `litewarden migrate status analytics`"),
        "{}",
        bare.stderr
    );
    let health = project.run(&["health", "--all"]);
    for name in ["analytics", "backup", "website_crawler"] {
        assert!(health.stdout.contains(name), "{name}: {}", health.stdout);
    }
}

#[test]
fn running_in_the_checkout_leaves_nothing_git_does_not_ignore() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for left in [
        "website_crawler.db",
        "website_crawler.db-wal",
        "website_crawler.db-litewarden.lock",
        "website_crawler.db.migrate-lock",
        ".litewarden/state.db",
        "backups/website_crawler/x.db.zst",
    ] {
        let ignored = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["check-ignore", "-q", "--no-index", left])
            .status()
            .expect("git (on every CI machine)");
        assert!(ignored.success(), "{left} is not in .gitignore");
    }
}

#[test]
fn restore_and_the_migrate_commands_take_all_too() {
    let project = shipped();
    assert_eq!(project.run(&["apply"]).code, 0);
    assert_eq!(project.run(&["backup", "--all"]).code, 0);
    for (args, expected) in [
        (&["migrate", "up", "--all"][..], "migration(s) applied"),
        (&["migrate", "repair", "--all"], "checksum(s) repaired"),
        (
            &["migrate", "baseline", "--all", "--detect"],
            "its schema is what the migrations give at version 2",
        ),
    ] {
        let output = project.run(args);
        assert_eq!(output.code, 0, "{args:?}: {}", output.stderr);
        assert_eq!(
            output.stdout.matches(expected).count(),
            2,
            "{args:?}: {}",
            output.stdout
        );
        assert!(
            output.stdout.contains("analytics: ") && output.stdout.contains("website_crawler: "),
            "{args:?}: {}",
            output.stdout
        );
    }
    let restored = project.run(&["restore", "--all", "--yes"]);
    assert_eq!(restored.code, 0, "{}", restored.stderr);
    for name in ["analytics", "backup", "website_crawler"] {
        assert!(
            restored.stdout.contains(&format!("{name}: ")),
            "{name}: {}",
            restored.stdout
        );
    }
    let mixed = project.run(&["restore", "--all", "--from", "x.db", "--yes"]);
    assert_eq!(mixed.code, 1);
    assert!(
        mixed
            .stderr
            .contains("restore --all restores each database from its own newest verified backup"),
        "{}",
        mixed.stderr
    );
    for args in [
        &["restore"][..],
        &["migrate", "up"],
        &["migrate", "down", "--to", "1"],
        &["migrate", "repair"],
        &["migrate", "baseline", "--detect"],
    ] {
        let bare = project.run(args);
        assert_eq!(bare.code, 1, "{args:?}");
        assert!(
            bare.stderr.contains("or --all, e.g. `litewarden "),
            "{args:?}: {}",
            bare.stderr
        );
    }
}

//! `litewarden check` on good files: summary, warnings, JSON, config path.

use crate::common::Project;

#[test]
fn valid_file_prints_a_one_line_summary() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { enabled: false } }\n",
    );
    let output = project.run(&["check"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(output.stdout, "jobs.yaml: ok (1 database, 0 warnings)\n");
}

#[test]
fn warnings_are_positioned_and_do_not_fail() {
    let project = Project::with_config(
        "version: 1\ndefaults:\n  backup: { every: 6h }\n  health: { max_backup_age: 2h }\ndatabases:\n  app: { path: app.db }\n",
    );
    let output = project.run(&["check"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(output.stdout.contains("jobs.yaml:4:29: warning: defaults.health.max_backup_age: max_backup_age 2h is shorter than the time between backups (6h)"), "{output:?}");
    assert!(output.stdout.contains("jobs.yaml:6:16: warning: settings.backup_dir: `backups` is on the same file system as database app") || output.stdout.contains("warning: settings.backup_dir:"), "{output:?}");
}

#[test]
fn json_output_lists_warnings() {
    let project = Project::with_config("version: 1\ndatabases:\n  app: { path: app.db }\n");
    let output = project.run(&["check", "--json"]);
    assert_eq!(output.code, 0, "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["databases"], 1);
    assert_eq!(json["warnings"][0]["severity"], "warning");
}

#[test]
fn config_path_comes_from_the_flag_or_the_environment_and_relative_paths_follow_it() {
    let project = Project::new();
    project.write(
        "etc/lw.yaml",
        b"version: 1\ndatabases:\n  app: { path: ../data/app.db }\n",
    );
    let output = project.run(&["-c", "etc/lw.yaml", "apply"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(project.join("data/app.db").is_file());
    assert!(project.join("etc/.litewarden/state.db").is_file());
    let output = project.run_with(&["plan"], &[("LITEWARDEN_CONFIG", "etc/lw.yaml")]);
    assert_eq!(output.code, 0, "{output:?}");
}

#[test]
fn shipped_jobs_yaml_checks_and_applies_out_of_the_box() {
    let project = crate::common::shipped();
    let output = project.run(&["check"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(output.stdout.contains("ok (3 databases"), "{output:?}");
    let output = project.run_with(&["apply"], &[("DATABASE1_PATH", "data/crawler.db")]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(project.join("data/crawler.db").is_file());
    assert!(project.join("backup.db").is_file());
    assert!(project.join("analytics.db").is_file());
}

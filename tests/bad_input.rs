//! Every kind of bad input named by the foundation issue (#3): one clear
//! `file:line:col` error, exit 1, no panic, and no file touched, for both
//! `check` and `apply`.

use crate::common::Project;

struct Case {
    name: &'static str,
    config: &'static [u8],
    env: &'static [(&'static str, &'static str)],
    expected: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "unknown key",
        config: b"version: 1\ndatabases:\n  app:\n    pahts: app.db\n",
        env: &[],
        expected: "jobs.yaml:4:5: databases.app.pahts: unknown field `pahts` (did you mean `path`?)",
    },
    Case {
        name: "wrong type",
        config: b"version: 1\ndatabases:\n  app: { path: app.db, restore_if_missing: sometimes }\n",
        env: &[],
        expected: "jobs.yaml:3:44: databases.app.restore_if_missing: expected true or false, found `sometimes`",
    },
    Case {
        name: "bad cron",
        config: b"version: 1\ndefaults:\n  backup: { schedule: '0 25 * * *' }\ndatabases:\n  app: { path: app.db }\n",
        env: &[],
        expected: "jobs.yaml:3:23: defaults.backup.schedule: invalid cron pattern `0 25 * * *`",
    },
    Case {
        name: "cron that never fires",
        config: b"version: 1\ndefaults:\n  backup: { schedule: '0 0 30 2 *' }\ndatabases:\n  app: { path: app.db }\n",
        env: &[],
        expected: "jobs.yaml:3:23: defaults.backup.schedule: cron pattern `0 0 30 2 *` never fires",
    },
    Case {
        name: "bad duration",
        config: b"version: 1\ndatabases:\n  app:\n    path: app.db\n    health: { every: 5 minutes please }\n",
        env: &[],
        expected: "jobs.yaml:5:22: databases.app.health.every: expected a duration like 90s, 5m or 7d",
    },
    Case {
        name: "bad size",
        config: b"version: 1\ndatabases:\n  app:\n    path: app.db\n    health: { max_wal_size: 256MB2 }\n",
        env: &[],
        expected: "jobs.yaml:5:29: databases.app.health.max_wal_size:",
    },
    Case {
        name: "unset variable",
        config: b"version: 1\ndatabases:\n  app: { path: \"${DATABASE1_PATH}\" }\n",
        env: &[],
        expected: "jobs.yaml:3:16: databases.app.path: environment variable `DATABASE1_PATH` is not set",
    },
    Case {
        name: "duplicate database name",
        config: b"version: 1\ndatabases:\n  app: { path: a.db }\n  app: { path: b.db }\n",
        env: &[],
        expected: "jobs.yaml:4:3: duplicate key `app` (first defined at line 3 column 3)",
    },
    Case {
        name: "two databases on one path",
        config: b"version: 1\ndatabases:\n  a: { path: data/x.db }\n  b: { path: ./data/../data/x.db }\n",
        env: &[],
        expected: "jobs.yaml:4:14: databases.b.path:",
    },
    Case {
        name: "directory that cannot be created",
        config: b"version: 1\ndatabases:\n  app: { path: not-a-dir/app.db }\n",
        env: &[],
        expected: "jobs.yaml:3:16: databases.app.path: directory `not-a-dir` cannot be created: `not-a-dir` is not a directory",
    },
    Case {
        name: "empty file",
        config: b"",
        env: &[],
        expected: "jobs.yaml:1:1: the file is empty",
    },
    Case {
        name: "non-UTF-8 file",
        config: b"version: 1\ndatabases:\n  app: { path: caf\xe9.db }\n",
        env: &[],
        expected: "jobs.yaml:3:19: the file is not valid UTF-8 (byte 0xe9)",
    },
    Case {
        name: "tab indentation",
        config: b"version: 1\ndatabases:\n\tapp: { path: a.db }\n",
        env: &[],
        expected: "tabs are not allowed for indentation",
    },
    Case {
        name: "duplicate key inside a database",
        config: b"version: 1\ndatabases:\n  app:\n    path: a.db\n    path: b.db\n",
        env: &[],
        expected: "jobs.yaml:5:5: duplicate key `path` (first defined at line 4 column 5)",
    },
    Case {
        name: "anchor and alias",
        config: b"version: 1\ndatabases:\n  a: &shared { path: a.db }\n  b: *shared\n",
        env: &[],
        expected: "jobs.yaml:3:6: anchors and aliases (`&name`, `*name`) are not supported; put shared settings under `defaults:` instead",
    },
    Case {
        name: "merge key",
        config: b"version: 1\ndatabases:\n  a:\n    <<: { path: a.db }\n",
        env: &[],
        expected: "jobs.yaml:4:5: merge keys (`<<`) are not supported; put shared settings under `defaults:` instead",
    },
    Case {
        name: "yaml bomb",
        config: b"version: 1\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ndatabases: {}\n",
        env: &[],
        expected: "jobs.yaml:2:4: anchors and aliases",
    },
    Case {
        name: "tag",
        config: b"version: 1\ndatabases:\n  a: { path: !!str a.db }\n",
        env: &[],
        expected: "jobs.yaml:3:",
    },
    Case {
        name: "syntax error",
        config: b"version: 1\ndatabases:\n  a: { path: a.db\n",
        env: &[],
        expected: "jobs.yaml:4:1: invalid YAML",
    },
    Case {
        name: "interpolated value of the wrong type",
        config: b"version: 1\ndefaults:\n  backup:\n    every: ${DB_UPDATE_INTERVAL}s\ndatabases:\n  app: { path: app.db }\n",
        env: &[("DB_UPDATE_INTERVAL", "hourly")],
        expected: "jobs.yaml:4:12: defaults.backup.every: expected a duration",
    },
];

#[test]
fn every_bad_input_gives_a_positioned_error_exit_1_and_touches_nothing() {
    for case in CASES {
        let project = Project::new();
        project.write("jobs.yaml", case.config);
        project.write("not-a-dir", b"a regular file");
        let before = project.files();
        for command in ["check", "plan", "apply"] {
            let output = project.run_with(&[command], case.env);
            assert_eq!(output.code, 1, "{} / {command}: {output:?}", case.name);
            assert!(
                output.stderr.contains(case.expected),
                "{} / {command}: expected {:?} in {output:?}",
                case.name,
                case.expected
            );
            assert!(
                !output.stderr.contains("panicked"),
                "{} / {command}: {output:?}",
                case.name
            );
            assert!(
                output.stdout.is_empty(),
                "{} / {command}: {output:?}",
                case.name
            );
            assert_eq!(
                project.files(),
                before,
                "{} / {command} touched files",
                case.name
            );
        }
    }
}

#[test]
fn errors_are_also_available_as_json() {
    let project = Project::with_config("version: 1\ndatabases:\n  app:\n    pahts: app.db\n");
    let output = project.run(&["check", "--json"]);
    assert_eq!(output.code, 1, "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["errors"][0]["line"], 4);
    assert_eq!(json["errors"][0]["column"], 5);
    assert_eq!(json["errors"][0]["field"], "databases.app.pahts");
}

#[test]
fn missing_config_file_is_one_line_naming_it() {
    let project = Project::new();
    let output = project.run(&["check"]);
    assert_eq!(output.code, 1);
    assert_eq!(output.stderr.lines().count(), 1, "{output:?}");
    assert!(
        output
            .stderr
            .starts_with("error: jobs.yaml: cannot read the config file"),
        "{output:?}"
    );
}

#[test]
fn env_value_that_looks_like_yaml_stays_a_path() {
    let project =
        Project::with_config("version: 1\ndatabases:\n  app: { path: \"${DATABASE1_PATH}\" }\n");
    let output = project.run_with(&["apply"], &[("DATABASE1_PATH", "a: b #c")]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(project.join("a: b #c").is_file(), "{:?}", project.files());
}

#[test]
fn file_that_is_not_a_database_is_refused_by_plan_and_apply_and_left_alone() {
    let project = Project::with_config("version: 1\ndatabases:\n  app: { path: app.db }\n");
    project.write("app.db", b"these are my notes, not a database\n");
    for command in ["plan", "apply"] {
        let output = project.run(&[command]);
        assert_eq!(output.code, 1, "{output:?}");
        let errors: Vec<&str> = output
            .stderr
            .lines()
            .filter(|line| line.starts_with("error:"))
            .collect();
        assert_eq!(
            errors,
            [
                "error: app.db: not a SQLite database (wrong path, or the file is encrypted or damaged)"
            ],
            "{output:?}"
        );
    }
    assert_eq!(
        std::fs::read(project.join("app.db")).unwrap(),
        b"these are my notes, not a database\n"
    );
}

/// Regression: `run` reported a config error as one `error:` line without
/// the count `check` and every other command print (the daemon's own
/// error type hid the config's).
#[test]
fn run_on_an_invalid_config_prints_each_error_and_their_count_like_check() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { evry: 1h } }\n",
    );
    let run = project.run(&["run"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("jobs.yaml:3:34: databases.app.backup.evry: unknown field `evry`"),
        "{run:?}"
    );
    assert!(run.stderr.contains("jobs.yaml: 1 error"), "{run:?}");
    assert!(!run.stderr.contains("error: jobs.yaml"), "{run:?}");
}

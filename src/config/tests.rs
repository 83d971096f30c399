//! Tests of the whole load pipeline on in-memory text (no file system).

use std::path::{Path, PathBuf};

use super::*;

const MINIMAL: &str = "version: 1\ndatabases:\n  app: { path: app.db }\n";

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn parse_with(text: &str, environment: &Environment) -> Result<Config, Vec<Diagnostic>> {
    parse(
        text.as_bytes(),
        "jobs.yaml",
        Path::new("/etc/lw/jobs.yaml"),
        environment,
    )
    .map(|(config, _, _)| config)
}

fn ok(text: &str) -> Config {
    parse_with(text, &env(&[])).unwrap_or_else(|errors| panic!("{errors:#?}"))
}

fn errors(text: &str) -> Vec<String> {
    errors_with(text, &env(&[]))
}

fn errors_with(text: &str, environment: &Environment) -> Vec<String> {
    match parse_with(text, environment) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn warnings(text: &str) -> Vec<String> {
    let (_, warnings, _) = parse(
        text.as_bytes(),
        "jobs.yaml",
        Path::new("/etc/lw/jobs.yaml"),
        &env(&[]),
    )
    .unwrap();
    warnings.iter().map(ToString::to_string).collect()
}

fn app(config: &Config) -> &Database {
    config.databases.values().next().unwrap()
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let config = ok(MINIMAL);
    let db = app(&config);
    assert_eq!(db.path, PathBuf::from("/etc/lw/app.db"));
    assert_eq!(
        config.settings.state_dir,
        PathBuf::from("/etc/lw/.litewarden")
    );
    assert_eq!(config.settings.backup_dir, PathBuf::from("/etc/lw/backups"));
    assert_eq!(db.backup.schedule, Schedule::Every(DEFAULT_BACKUP_EVERY));
    assert_eq!(db.pragmas.connection.busy_timeout, DEFAULT_BUSY_TIMEOUT);
    assert_eq!(db.health.max_wal_size, DEFAULT_MAX_WAL_SIZE);
    assert!(matches!(db.optimize.schedule, Schedule::Cron(ref c) if c.as_str() == "@hourly"));
}

#[test]
fn shipped_jobs_yaml_is_valid_and_honours_the_reference_variables() {
    let text = include_str!("../../jobs.yaml");
    let environment = env(&[
        ("DATABASE1_PATH", "/data/website_crawler.db"),
        ("DATABASE2_PATH", "/data/backup.db"),
        ("DATABASE3_PATH", "/data/analytics.db"),
        ("BACKUP_DIR", "/backups"),
        ("ENABLE_AUTO_BACKUP", "false"),
        ("BACKUP_RETENTION_DAYS", "30"),
        ("DB_UPDATE_INTERVAL", "600"),
    ]);
    let config = parse_with(text, &environment).unwrap();
    let crawler = &config.databases[&DbName::new("website_crawler").unwrap()];
    assert_eq!(crawler.path, PathBuf::from("/data/website_crawler.db"));
    assert_eq!(config.settings.backup_dir, PathBuf::from("/backups"));
    assert!(!crawler.backup.enabled);
    assert_eq!(
        crawler.backup.retention.max_age,
        Some(std::time::Duration::from_secs(30 * 86400))
    );
    assert_eq!(
        crawler.backup.schedule,
        Schedule::Every(std::time::Duration::from_secs(600))
    );
    assert_eq!(
        crawler.pragmas.persistent.journal_mode,
        Some(JournalMode::Wal)
    );
    assert_eq!(config.databases.len(), 3);
    let defaults = parse_with(text, &env(&[])).unwrap();
    assert_eq!(
        defaults.databases[&DbName::new("backup").unwrap()].path,
        PathBuf::from("/etc/lw/backup.db")
    );
}

#[test]
fn env_value_that_looks_like_yaml_stays_a_path() {
    let text = "version: 1\ndatabases:\n  app:\n    path: ${DATABASE1_PATH}\n";
    let config = parse_with(text, &env(&[("DATABASE1_PATH", "a: b #c")])).unwrap();
    assert_eq!(app(&config).path, PathBuf::from("/etc/lw/a: b #c"));
}

#[test]
fn unset_variable_is_an_error_at_its_scalar() {
    let text = "version: 1\ndatabases:\n  app:\n    path: ${DATABASE1_PATH}\n";
    assert_eq!(
        errors(text),
        [
            "jobs.yaml:4:11: databases.app.path: environment variable `DATABASE1_PATH` is not set (give a default with `${DATABASE1_PATH:-value}`)"
        ]
    );
}

#[test]
fn typed_fields_accept_interpolated_strings() {
    let text = "version: 1\ndefaults:\n  backup: { enabled: \"${ON}\", every: \"${N}s\" }\ndatabases:\n  app: { path: app.db }\n";
    let config = parse_with(text, &env(&[("ON", "false"), ("N", "90")])).unwrap();
    assert!(!app(&config).backup.enabled);
    assert_eq!(
        app(&config).backup.schedule,
        Schedule::Every(std::time::Duration::from_secs(90))
    );
}

#[test]
fn interpolated_value_of_the_wrong_type_points_at_the_scalar() {
    let text = "version: 1\ndefaults:\n  backup:\n    enabled: ${ON}\ndatabases:\n  app: { path: app.db }\n";
    assert_eq!(
        errors_with(text, &env(&[("ON", "maybe")])),
        [
            "jobs.yaml:4:14: defaults.backup.enabled: expected true or false, found `maybe` (from ON=\"maybe\")"
        ]
    );
}

#[test]
fn unknown_key_suggests_the_closest_name() {
    let text = "version: 1\ndatabases:\n  app:\n    pahts: app.db\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "jobs.yaml:4:5: databases.app.pahts: unknown field `pahts` (did you mean `path`?)"
        ),
        "{}",
        errors[0]
    );
}

#[test]
fn literal_password_is_refused_with_the_alternatives() {
    let text =
        "version: 1\ndatabases: {}\nsmtp:\n  host: mail\n  from: a@b.c\n  password: hunter2\n";
    let errors = errors(text);
    assert!(
        errors[0].contains("smtp.password: unknown field `password`: never write a password"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].contains("hunter2"));
}

#[test]
fn wrong_type_has_its_position() {
    let errors = errors(
        "version: 1\ndatabases:\n  app:\n    path: app.db\n    pragmas:\n      busy_timeout: soon\n",
    );
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .starts_with("jobs.yaml:6:21: databases.app.pragmas.busy_timeout: expected a duration"),
        "{}",
        errors[0]
    );
}

#[test]
fn bad_enum_value_suggests_the_closest_choice() {
    let errors =
        errors("version: 1\ndefaults:\n  pragmas: { journal_mode: wall }\ndatabases: {}\n");
    assert!(
        errors[0].contains("unknown value `wall` (did you mean `wal`?)"),
        "{}",
        errors[0]
    );
}

#[test]
fn bad_cron_and_never_firing_cron_are_positioned_errors() {
    let bad =
        errors("version: 1\ndefaults:\n  backup: { schedule: \"0 0 * * * *\" }\ndatabases: {}\n");
    assert!(
        bad[0].starts_with("jobs.yaml:3:23: defaults.backup.schedule:"),
        "{}",
        bad[0]
    );
    assert!(bad[0].contains("use the standard 5"), "{}", bad[0]);
    let never =
        errors("version: 1\ndefaults:\n  backup: { schedule: \"0 0 30 2 *\" }\ndatabases: {}\n");
    assert!(never[0].contains("never fires"), "{}", never[0]);
}

#[test]
fn bad_size_and_duration_are_positioned_errors() {
    let size =
        errors("version: 1\ndefaults:\n  health: { max_wal_size: 5 parsecs }\ndatabases: {}\n");
    assert!(
        size[0].starts_with("jobs.yaml:3:27: defaults.health.max_wal_size: unknown size unit"),
        "{}",
        size[0]
    );
    let duration = errors("version: 1\ndefaults:\n  health: { every: 300 }\ndatabases: {}\n");
    assert!(duration[0].contains("write `300s`"), "{}", duration[0]);
}

#[test]
fn three_semantic_mistakes_give_three_positioned_errors() {
    let text = "\
version: 2
databases:
  a: { path: same.db }
  b: { path: same.db }
  c:
    path: c.db
    backup: { every: 1h, schedule: '@daily' }
";
    let errors = errors(text);
    assert_eq!(
        errors,
        [
            "jobs.yaml:1:10: version: unsupported version 2; this litewarden reads version 1",
            "jobs.yaml:4:14: databases.b.path: `/etc/lw/same.db` is also the path of database `a`; each database needs its own file",
            "jobs.yaml:7:36: databases.c.backup.schedule: set either `every` or `schedule`, not both",
        ]
    );
}

#[test]
fn duplicate_database_name_is_a_duplicate_key_error() {
    let errors = errors("version: 1\ndatabases:\n  a: { path: a.db }\n  a: { path: b.db }\n");
    assert_eq!(
        errors,
        ["jobs.yaml:4:3: duplicate key `a` (first defined at line 3 column 3)"]
    );
}

#[test]
fn invalid_database_name_points_at_the_key() {
    let errors = errors("version: 1\ndatabases:\n  'my db': { path: a.db }\n");
    assert!(
        errors[0]
            .starts_with("jobs.yaml:3:3: databases.my db: database name `my db` may only contain"),
        "{}",
        errors[0]
    );
}

#[test]
fn anchors_aliases_and_merge_keys_point_to_defaults() {
    let anchors = errors("version: 1\nx: &base { path: a.db }\ndatabases:\n  a: *base\n");
    assert!(anchors[0].starts_with("jobs.yaml:2:4:"), "{}", anchors[0]);
    assert!(anchors[0].contains("`defaults:`"));
    let merge = errors("version: 1\ndatabases:\n  a:\n    <<: { path: a.db }\n");
    assert!(
        merge[0].starts_with("jobs.yaml:4:5: merge keys"),
        "{}",
        merge[0]
    );
}

#[test]
fn yaml_bomb_is_refused_at_the_first_anchor() {
    let mut text = String::from("version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    text.push_str("databases: {}\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("jobs.yaml:2:5: anchors and aliases"),
        "{}",
        errors[0]
    );
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let text = format!(
        "version: 1\ndatabases: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_eq!(errors(&text).len(), 1);
}

#[test]
fn tabs_get_a_clear_message() {
    let errors = errors("version: 1\ndatabases:\n\tapp: { path: a.db }\n");
    assert!(errors[0].contains("tabs are not allowed"), "{}", errors[0]);
    assert!(errors[0].starts_with("jobs.yaml:3:"), "{}", errors[0]);
}

#[test]
fn empty_and_whitespace_files_are_errors() {
    assert_eq!(
        errors(""),
        ["jobs.yaml:1:1: the file is empty; it needs at least `version: 1` and `databases:`"]
    );
    assert_eq!(
        errors("\n  \n# only a comment\n"),
        ["jobs.yaml:1:1: the file is empty; it needs at least `version: 1` and `databases:`"]
    );
}

#[test]
fn non_utf8_is_reported_at_the_bad_byte() {
    let bytes = b"version: 1\ndatabases:\n  app: { path: \"a\xffb.db\" }\n";
    let errors = parse(bytes, "jobs.yaml", Path::new("/x/jobs.yaml"), &env(&[])).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "jobs.yaml:3:18: the file is not valid UTF-8 (byte 0xff); save it as UTF-8"
    );
}

#[test]
fn per_database_values_override_defaults_key_by_key() {
    let text = "\
version: 1
defaults:
  pragmas: { journal_mode: wal, busy_timeout: 5s }
  backup: { every: 1h, compress: zstd }
databases:
  a:
    path: a.db
    pragmas: { busy_timeout: 9s }
    backup: { schedule: '@daily' }
";
    let db = app(&ok(text)).clone();
    assert_eq!(db.pragmas.persistent.journal_mode, Some(JournalMode::Wal));
    assert_eq!(
        db.pragmas.connection.busy_timeout,
        std::time::Duration::from_secs(9)
    );
    assert!(
        matches!(db.backup.schedule, Schedule::Cron(_)),
        "a database's schedule replaces the default every"
    );
    assert_eq!(db.backup.compress, Compression::Zstd);
}

#[test]
fn backup_age_shorter_than_the_interval_is_a_warning() {
    let text = "version: 1\ndefaults:\n  backup: { every: 6h }\n  health: { max_backup_age: 2h }\ndatabases:\n  a: { path: a.db }\n";
    let warnings = warnings(text);
    assert!(
        warnings.iter().any(|w| w.starts_with("jobs.yaml:4:29: warning: defaults.health.max_backup_age: max_backup_age 2h is shorter than the time between backups (6h)")),
        "{warnings:#?}"
    );
    let cron = "version: 1\ndefaults:\n  backup: { schedule: '@daily' }\n  health: { max_backup_age: 2h }\ndatabases:\n  a: { path: a.db }\n";
    assert!(warnings_contain(cron, "(1day)"));
}

fn warnings_contain(text: &str, needle: &str) -> bool {
    warnings(text).iter().any(|w| w.contains(needle))
}

#[test]
fn alert_rules_are_checked_against_databases_and_conditions() {
    let text = "\
version: 1
databases:
  crawler: { path: c.db }
alerts:
  - { name: a, when: health_failed, jobs: [backup], to: [ops@example.com] }
  - { name: a, when: job_failed, databases: [crawlr], to: [] }
";
    let errors = errors(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].contains("alerts[0].jobs: `jobs` only applies"));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("alerts[1].name: alert name `a` is already used by alerts[0]"))
    );
    assert!(errors.iter().any(|e| {
        e.contains("alerts[1].databases[0]: unknown database `crawlr` (did you mean `crawler`?)")
    }));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("alerts[1].to: list at least one recipient"))
    );
}

#[test]
fn smtp_password_sources_are_exclusive_and_need_a_username() {
    let both = errors(
        "version: 1\ndatabases: {}\nsmtp: { host: h, from: a@b.c, username: u, password_env: P, password_file: p }\n",
    );
    assert!(both[0].contains("not both"), "{}", both[0]);
    let no_password =
        errors("version: 1\ndatabases: {}\nsmtp: { host: h, from: a@b.c, username: u }\n");
    assert!(
        no_password[0].contains("needs `password_env`"),
        "{}",
        no_password[0]
    );
    let config = ok(
        "version: 1\ndatabases: {}\nsmtp: { host: h, tls: tls, from: a@b.c, username: u, password_env: SMTP_PASSWORD }\n",
    );
    let smtp = config.smtp.unwrap();
    assert_eq!(
        (smtp.port, smtp.password),
        (465, Some(PasswordSource::Env("SMTP_PASSWORD".into())))
    );
}

#[test]
fn page_size_must_be_a_power_of_two() {
    let errors =
        errors("version: 1\ndatabases:\n  a: { path: a.db, pragmas: { page_size: 5000 } }\n");
    assert!(errors[0].contains("power of two"), "{}", errors[0]);
}

#[test]
fn database_inside_the_state_or_backup_dir_is_refused() {
    let errors = errors("version: 1\ndatabases:\n  a: { path: backups/a.db }\n");
    assert!(
        errors[0].contains("inside settings.backup_dir"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_second_document_is_refused_at_its_marker() {
    let text = "# jobs\n---\nversion: 1\ndatabases: {}\n---\nversion: 1\n";
    assert_eq!(
        errors(text),
        [
            "jobs.yaml:5:1: the file holds more than one YAML document (`---`); keep everything in one"
        ]
    );
}

#[test]
fn an_unknown_alias_gets_the_anchor_hint() {
    let errors = errors("version: 1\ndatabases: *shared\n");
    assert!(errors[0].contains("anchors and aliases"), "{}", errors[0]);
}

#[test]
fn a_null_value_says_a_value_is_missing() {
    assert_eq!(
        errors("version: 1\ndatabases: null\n"),
        ["jobs.yaml:2:12: databases: a value is missing here: expected a map"]
    );
}

proptest::proptest! {
    #[test]
    fn parse_never_panics_on_yaml_like_input(text in "(version: 1\n)?[a-z0-9:{}\\[\\], \\-\n\t#&*!?|>'\"%$~.<]{0,80}") {
        let _ = parse(text.as_bytes(), "jobs.yaml", Path::new("/x/jobs.yaml"), &env(&[("A", "1")]));
    }

    #[test]
    fn every_error_has_a_position_inside_the_file(text in "version: 1\ndatabases:\n  [a-z]{1,3}: \\{ [a-z_]{1,12}: [a-z0-9${}]{0,8} \\}\n") {
        if let Err(errors) = parse(text.as_bytes(), "jobs.yaml", Path::new("/x/jobs.yaml"), &env(&[])) {
            for error in errors {
                proptest::prop_assert!(error.position.line >= 1 && error.position.line <= text.lines().count() + 1, "{error}");
                proptest::prop_assert!(error.position.column >= 1, "{error}");
            }
        }
    }
}

#[test]
fn keep_within_shorter_than_the_backup_interval_is_a_warning() {
    let text = "version: 1\ndefaults:\n  backup: { every: 1d, retention: { keep_last: 2, keep_within: 6h } }\ndatabases:\n  a: { path: a.db }\n";
    assert!(
        warnings(text).iter().any(|w| w.contains("defaults.backup.retention.keep_within: keep_within 6h is shorter than the time between backups (1day)")),
        "{:#?}",
        warnings(text)
    );
    let fine = "version: 1\ndefaults:\n  backup: { every: 1h, retention: { keep_within: 6h } }\ndatabases:\n  a: { path: a.db }\n";
    assert!(!warnings_contain(fine, "keep_within"));
}

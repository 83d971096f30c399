//! Hostile input for the config loader (issue #14): random bytes, random
//! edits of the shipped `jobs.yaml`, alias bombs, deep nesting and huge
//! values. The loader must answer each with diagnostics that point inside
//! the file, never a panic; memory is bounded by [`MAX_CONFIG_BYTES`] and by
//! refusing anchors and aliases before anything is expanded.

use std::path::Path;

use proptest::prelude::*;

use super::*;

const SHIPPED: &str = include_str!("../../jobs.yaml");

fn load(bytes: &[u8]) -> Result<(), Vec<Diagnostic>> {
    let environment = Environment::from_pairs([("BACKUP_DIR", "/b"), ("SMTP_PASSWORD", "pw")]);
    parse(bytes, "jobs.yaml", Path::new("/x/jobs.yaml"), &environment).map(|_| ())
}

fn assert_positioned(text: &str, errors: &[Diagnostic]) {
    let lines = text.lines().count().max(1) + 1;
    for error in errors {
        assert!(
            (1..=lines).contains(&error.position.line) && error.position.column >= 1,
            "{error}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = load(&bytes);
    }

    #[test]
    fn random_edits_of_the_shipped_file_give_positioned_errors_or_a_config(
        at in 0usize..4096,
        delete in 0usize..24,
        insert in "[a-z0-9:{}\\[\\], \\-\n#&*!?|>'\"$.]{0,12}",
    ) {
        let at = at % SHIPPED.len();
        let at = (0..=at).rev().find(|i| SHIPPED.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + delete).min(SHIPPED.len());
        let end = (end..=SHIPPED.len()).find(|i| SHIPPED.is_char_boundary(*i)).unwrap_or(SHIPPED.len());
        let text = format!("{}{}{}", &SHIPPED[..at], insert, &SHIPPED[end..]);
        if let Err(errors) = load(text.as_bytes()) {
            prop_assert!(!errors.is_empty());
            assert_positioned(&text, &errors);
        }
    }
}

#[test]
fn the_shipped_file_loads() {
    load(SHIPPED.as_bytes()).unwrap();
}

#[test]
fn an_alias_bomb_is_refused_at_its_first_alias() {
    let mut text =
        String::from("version: 1\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..40 {
        let previous = level - 1;
        text.push_str(&format!(
            "x{level}: &a{level} [*a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}]\n"
        ));
    }
    text.push_str("databases: {}\n");
    let errors = load(text.as_bytes()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.contains("anchors and aliases"),
        "{}",
        errors[0]
    );
}

#[test]
fn deep_block_and_flow_nesting_are_errors_not_crashes() {
    let mut block = String::from("version: 1\ndatabases:\n");
    for depth in 0..3000 {
        block.push_str(&"  ".repeat(depth + 1));
        block.push_str("a:\n");
    }
    let errors = load(block.as_bytes()).unwrap_err();
    assert_positioned(&block, &errors);
    let flow = format!(
        "version: 1\ndatabases: {}{}\n",
        "{a: ".repeat(20_000),
        "}".repeat(20_000)
    );
    let errors = load(flow.as_bytes()).unwrap_err();
    assert_positioned(&flow, &errors);
}

#[test]
fn a_huge_value_is_an_error_at_its_field_not_a_crash() {
    let text = format!(
        "version: 1\ndatabases:\n  app: {{ path: app.db, backup: {{ every: {} }} }}\n",
        "9".repeat(8 << 20)
    );
    let errors = load(text.as_bytes()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().starts_with("jobs.yaml:3:"),
        "{}",
        errors[0]
    );
}

#[test]
fn twenty_thousand_databases_load() {
    let mut text = String::from("version: 1\ndatabases:\n");
    for i in 0..20_000 {
        text.push_str(&format!("  db{i}: {{ path: d/db{i}.db }}\n"));
    }
    load(text.as_bytes()).unwrap();
}

//! Restoring what a migration changed: the verified pre-migration backup
//! recorded on its row, found by version, file name or name.

use crate::common::{count, open};
use crate::migrate::{project, tables};

#[test]
fn a_verified_backup_precedes_every_run_and_restore_before_migration_finds_it() {
    let project = project(&[(
        "0001_visits.sql",
        "CREATE TABLE visits (id INTEGER PRIMARY KEY, url TEXT);\n",
    )]);
    crate::common::fill(&project.join("app.db"), 100);
    let up = project.run(&["migrate", "up", "app", "--json"]);
    assert_eq!(up.code, 0, "{up:?}");
    let json: serde_json::Value = serde_json::from_str(&up.stdout).unwrap();
    let backup = json["report"]["backup"]
        .as_str()
        .expect("a pre-migration backup")
        .to_string();
    let backup_on_row: String = open(&project.join("app.db"))
        .query_row(
            "SELECT backup_path FROM _litewarden_migrations WHERE version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(backup_on_row, backup);
    let listed = project.run(&["backups", "app"]);
    assert!(listed.stdout.contains("pre-migration"), "{listed:?}");
    let restore = project.run(&[
        "restore",
        "app",
        "--before-migration",
        "1",
        "--to",
        "before.db",
        "--yes",
    ]);
    assert_eq!(restore.code, 0, "{restore:?}");
    let before = project.join("before.db");
    assert_eq!(
        tables(&before),
        ["_litewarden_migrations", "pages"],
        "the state before 0001 ran"
    );
    assert_eq!(count(&before, "pages"), 100);
    for (i, reference) in ["0001_visits", "0001_visits.sql", "visits", "0001"]
        .iter()
        .enumerate()
    {
        let to = format!("before-{i}.db");
        let by_name = project.run(&[
            "restore",
            "app",
            "--before-migration",
            reference,
            "--to",
            &to,
            "--yes",
        ]);
        assert_eq!(by_name.code, 0, "{reference}: {by_name:?}");
        assert_eq!(count(&project.join(&to), "pages"), 100, "{reference}");
    }
    let unknown = project.run(&["restore", "app", "--before-migration", "0004_bad", "--yes"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown.stderr.contains(
            "database `app`: no applied migration is `0004_bad` (applied: 0001_visits); a migration that failed left the database as it was before it"
        ),
        "{unknown:?}"
    );
}

//! `backup`, `backups`, `verify`, `restore`, `prune`, `pin` (issue #4).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::common::{Project, count, dump, file_names, fill, integrity_check_elsewhere, open};

fn project(database_settings: &str) -> Project {
    let project = Project::with_config(&format!(
        "version: 1\ndefaults:\n  pragmas: {{ journal_mode: wal }}\n  backup: {{ retention: {{ keep_last: 2 }} }}\ndatabases:\n  app: {{ path: app.db{database_settings} }}\n"
    ));
    fill(&project.join("app.db"), 2000);
    project
}

fn backup_path(project: &Project, args: &[&str]) -> PathBuf {
    let output = project.run(&[&["backup"], args, &["--json"]].concat());
    assert_eq!(output.code, 0, "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    PathBuf::from(json["backups"][0]["path"].as_str().unwrap())
}

fn backups_json(project: &Project) -> serde_json::Value {
    let output = project.run(&["backups", "app", "--json"]);
    assert_eq!(output.code, 0, "{output:?}");
    serde_json::from_str(&output.stdout).unwrap()
}

#[test]
fn every_method_and_compression_gives_a_private_catalogued_backup_another_process_can_read() {
    for method in ["snapshot", "api", "vacuum", "auto"] {
        for compress in ["none", "zstd"] {
            let project = project(&format!(
                ", backup: {{ method: {method}, compress: {compress}, verify: full }}"
            ));
            let path = backup_path(&project, &["app"]);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let extension = if compress == "zstd" { ".db.zst" } else { ".db" };
            assert!(
                name.starts_with("app-20") && name.ends_with(&format!("Z{extension}")),
                "{name}"
            );
            assert_eq!(path.parent().unwrap(), project.join("backups/app"));
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let listed = backups_json(&project);
            assert!(
                !listed["backups"][0]["backup"]["verified_at"].is_null(),
                "{method}/{compress}"
            );
            assert_eq!(
                listed["backups"][0]["backup"]["method"],
                if method == "auto" { "snapshot" } else { method }
            );
            let plain = if compress == "zstd" {
                let out = project.join("restored.db");
                let output = project.run(&["restore", "app", "--to", "restored.db", "--yes"]);
                assert_eq!(output.code, 0, "{output:?}");
                out
            } else {
                path.clone()
            };
            assert_eq!(
                integrity_check_elsewhere(&plain),
                "ok",
                "{method}/{compress}"
            );
            assert_eq!(count(&plain, "pages"), 2000, "{method}/{compress}");
            let verify = project.run(&["verify", path.to_str().unwrap()]);
            assert_eq!(verify.code, 0, "{verify:?}");
            assert!(
                verify
                    .stdout
                    .contains("integrity_check ok, SHA-256 matches the catalog"),
                "{verify:?}"
            );
        }
    }
}

#[test]
fn unknown_database_suggests_the_closest_name() {
    let project = project("");
    let output = project.run(&["backup", "ap"]);
    assert_eq!(output.code, 1);
    assert_eq!(
        output.stderr.trim().lines().last().unwrap(),
        "error: no database `ap` in jobs.yaml (did you mean `app`?)"
    );
}

#[test]
fn missing_source_and_non_sqlite_source_are_refused() {
    let project = Project::with_config("version: 1\ndatabases:\n  app: { path: app.db }\n");
    let output = project.run(&["backup", "app"]);
    assert_eq!(output.code, 1);
    assert!(
        output
            .stderr
            .contains("error: database `app`: app.db does not exist"),
        "{output:?}"
    );
    project.write(
        "app.db",
        b"not a database at all, just text that is long enough",
    );
    let output = project.run(&["backup", "app"]);
    assert_eq!(output.code, 1);
    assert!(
        output.stderr.contains("app.db: not a SQLite database"),
        "{output:?}"
    );
    assert!(
        !project.join("backups/app").exists()
            || std::fs::read_dir(project.join("backups/app"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn backup_dir_below_a_regular_file_is_a_positioned_error() {
    let project = Project::with_config(
        "version: 1\nsettings:\n  backup_dir: blocker/backups\ndatabases:\n  app: { path: app.db }\n",
    );
    project.write("blocker", b"a file");
    fill(&project.join("app.db"), 10);
    let output = project.run(&["backup", "app"]);
    assert_eq!(output.code, 1);
    assert!(output.stderr.contains("jobs.yaml:3:15: settings.backup_dir: directory `blocker/backups` cannot be created: `blocker` is not a directory"), "{output:?}");
}

#[test]
fn disk_full_during_the_write_names_the_cause_and_leaves_no_partial_file() {
    for compress in ["none", "zstd"] {
        let project = project(&format!(", backup: {{ compress: {compress} }}"));
        rusqlite::Connection::open(project.join("app.db"))
            .unwrap()
            .execute_batch("CREATE TABLE noise (b); INSERT INTO noise VALUES (randomblob(400000));")
            .unwrap();
        assert_eq!(project.run(&["apply"]).code, 0);
        let source_before = std::fs::read(project.join("app.db")).unwrap();
        let script = format!(
            "ulimit -f 256; exec '{}' backup app",
            crate::common::binary().display()
        );
        let output = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(project.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{compress}: {stderr}");
        assert!(stderr.contains("File too large"), "{compress}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            file_names(&project.join("backups/app")),
            Vec::<String>::new(),
            "{compress}"
        );
        assert_eq!(
            std::fs::read(project.join("app.db")).unwrap(),
            source_before
        );
        assert!(
            backups_json(&project)["backups"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn corrupt_and_truncated_backups_are_refused_by_verify_and_restore() {
    for compress in ["none", "zstd"] {
        let project = project(&format!(", backup: {{ compress: {compress} }}"));
        let path = backup_path(&project, &["app"]);
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xff;
        for (what, bytes) in [
            ("flipped", flipped),
            ("truncated", good[..good.len() / 3].to_vec()),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let verify = project.run(&["verify", path.to_str().unwrap()]);
            assert_eq!(verify.code, 1, "{compress}/{what}: {verify:?}");
            assert!(
                verify
                    .stderr
                    .contains("the file changed since it was written"),
                "{compress}/{what}: {verify:?}"
            );
            let restore =
                project.run(&["restore", "app", "--from", path.to_str().unwrap(), "--yes"]);
            assert_eq!(restore.code, 1, "{compress}/{what}: {restore:?}");
            assert!(
                restore.stderr.contains("refusing to restore `app`"),
                "{restore:?}"
            );
            assert_eq!(count(&project.join("app.db"), "pages"), 2000);
        }
        std::fs::remove_file(&path).unwrap();
        let uncatalogued = project.join("stray.db");
        std::fs::write(&uncatalogued, &good[..good.len() / 2]).unwrap();
        let verify = project.run(&["verify", "stray.db"]);
        assert_eq!(verify.code, 1, "{verify:?}");
    }
}

#[test]
fn restore_round_trips_the_content_and_keeps_a_safety_copy() {
    let project = project("");
    let app = project.join("app.db");
    let at_backup = dump(&app);
    backup_path(&project, &["app"]);
    open(&app)
        .execute_batch("DELETE FROM pages WHERE id > 10; CREATE TABLE junk(x);")
        .unwrap();
    let changed = dump(&app);
    let output = project.run(&["restore", "app", "--from", "latest", "--yes"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(
        output
            .stdout
            .contains("app: the previous content is kept in backups/app/app-"),
        "{output:?}"
    );
    assert_eq!(dump(&app), at_backup);
    assert_eq!(crate::common::pragma::<String>(&app, "journal_mode"), "wal");
    let safety = backups_json(&project)["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backup"]["trigger"] == "pre-restore")
        .map(|b| PathBuf::from(b["path"].as_str().unwrap()))
        .expect("a pre-restore backup");
    let output = project.run(&[
        "restore",
        "app",
        "--from",
        safety.to_str().unwrap(),
        "--to",
        "before.db",
        "--yes",
    ]);
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(dump(&project.join("before.db")), changed);
    let again = project.run(&["restore", "app", "--yes"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(dump(&app), at_backup, "latest never means the safety copy");
}

#[test]
fn restore_from_another_databases_file_needs_force_and_to_never_overwrites() {
    let project = project("");
    let other = project.join("other.db");
    open(&other)
        .execute_batch("PRAGMA application_id = 7; CREATE TABLE invoices(id INTEGER PRIMARY KEY);")
        .unwrap();
    let output = project.run(&["restore", "app", "--from", "other.db", "--yes"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output.stderr.contains(
            "its application_id is 7, the database's is 0 (pass --force if this is intended)"
        ),
        "{output:?}"
    );
    assert_eq!(count(&project.join("app.db"), "pages"), 2000);
    let output = project.run(&["restore", "app", "--from", "other.db", "--yes", "--force"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(count(&project.join("app.db"), "invoices"), 0);
    project.write("exists.db", b"keep me");
    let output = project.run(&[
        "restore",
        "app",
        "--from",
        "other.db",
        "--to",
        "exists.db",
        "--yes",
    ]);
    assert_eq!(output.code, 1, "{output:?}");
    assert_eq!(
        std::fs::read(project.join("exists.db")).unwrap(),
        b"keep me"
    );
}

#[test]
fn restore_without_any_backup_says_how_to_take_one() {
    let project = project("");
    let output = project.run(&["restore", "app", "--yes"]);
    assert_eq!(output.code, 1);
    assert!(
        output.stderr.contains(
            "database `app` has no verified backup; take one with `litewarden backup app`"
        ),
        "{output:?}"
    );
}

fn kept_and_removed(project: &Project, args: &[&str]) -> (usize, usize, String) {
    let output = project.run(args);
    assert_eq!(output.code, 0, "{output:?}");
    let kept = output
        .stdout
        .lines()
        .filter(|l| l.starts_with("keep"))
        .count();
    let removed = output
        .stdout
        .lines()
        .filter(|l| l.starts_with("remove"))
        .count();
    (kept, removed, output.stdout)
}

#[test]
fn prune_applies_retention_with_reasons_and_respects_pins() {
    let project = project("");
    let pinned = backup_path(&project, &["app", "--pin"]);
    for _ in 0..3 {
        backup_path(&project, &["app"]);
    }
    let (kept, removed, text) = kept_and_removed(&project, &["prune", "app", "--dry-run"]);
    assert_eq!((kept, removed), (3, 1), "{text}");
    assert!(text.contains("(last, newest verified)"), "{text}");
    assert!(text.contains("(pinned)"), "{text}");
    assert!(text.contains("1 would be removed (dry run)"), "{text}");
    assert_eq!(
        file_names(&project.join("backups/app")).len(),
        4,
        "a dry run removes nothing"
    );
    let (_, _, text) = kept_and_removed(&project, &["prune", "app"]);
    assert!(text.contains("app: 3 kept, 1 removed"), "{text}");
    assert_eq!(file_names(&project.join("backups/app")).len(), 3);
    assert!(pinned.exists());
    let output = project.run(&["unpin", pinned.to_str().unwrap()]);
    assert_eq!(output.code, 0, "{output:?}");
    let (_, _, text) = kept_and_removed(&project, &["prune", "app"]);
    assert!(text.contains("app: 2 kept, 1 removed"), "{text}");
    assert!(!pinned.exists());
    let output = project.run(&["pin", "app.db"]);
    assert_eq!(output.code, 1, "{output:?}");
}

#[test]
fn a_lost_state_database_is_rebuilt_from_the_manifests_without_loss() {
    let project = project("");
    let pinned = backup_path(&project, &["app", "--pin"]);
    let manifest = format!("{}.json", pinned.display());
    assert!(
        std::path::Path::new(&manifest).exists(),
        "a manifest beside the backup"
    );
    std::fs::remove_dir_all(project.join(".litewarden")).unwrap();
    let listed = backups_json(&project);
    let entry = &listed["backups"][0]["backup"];
    assert_eq!(listed["backups"][0]["path"], pinned.to_str().unwrap());
    assert_eq!(entry["trigger"], "manual", "{listed}");
    assert_eq!(
        entry["pinned"], true,
        "pins live in the backup directory too"
    );
    assert!(!entry["verified_at"].is_null(), "so does verification");
    assert!(entry["sha256"].is_string());
}

#[test]
fn a_backup_without_manifest_is_rebuilt_from_its_name_as_unverified() {
    let project = project("");
    let path = backup_path(&project, &["app"]);
    std::fs::remove_file(format!("{}.json", path.display())).unwrap();
    std::fs::remove_dir_all(project.join(".litewarden")).unwrap();
    let listed = backups_json(&project);
    let entry = &listed["backups"][0]["backup"];
    assert_eq!(listed["backups"][0]["path"], path.to_str().unwrap());
    assert_eq!(entry["trigger"], "rebuilt");
    assert!(entry["verified_at"].is_null());
    let output = project.run(&["verify", path.to_str().unwrap()]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(
        output
            .stdout
            .contains("SHA-256 recorded in the catalog now"),
        "{output:?}"
    );
    assert!(!backups_json(&project)["backups"][0]["backup"]["verified_at"].is_null());
    assert!(
        std::path::Path::new(&format!("{}.json", path.display())).exists(),
        "verifying writes the manifest"
    );
}

#[test]
fn restore_if_missing_brings_back_a_lost_database_at_apply_and_never_touches_an_existing_one() {
    let project = project(", restore_if_missing: true");
    assert_eq!(project.run(&["apply"]).code, 0);
    let at_backup = dump(&project.join("app.db"));
    backup_path(&project, &["app"]);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(project.join(&format!("app.db{suffix}")));
    }
    let plan = project.run(&["plan"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains("+ app: restore app.db from backups/app/app-"),
        "{plan:?}"
    );
    let apply = project.run(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert_eq!(dump(&project.join("app.db")), at_backup);
    assert_eq!(
        project.run(&["plan"]).code,
        0,
        "restored and converged in one apply"
    );
    open(&project.join("app.db"))
        .execute_batch("DELETE FROM pages")
        .unwrap();
    assert_eq!(project.run(&["apply"]).code, 0);
    assert_eq!(
        count(&project.join("app.db"), "pages"),
        0,
        "never restored over an existing file"
    );
}

#[test]
fn a_killed_backup_leaves_nothing_that_backups_lists() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { method: api, verify: full } }\n",
    );
    fill(&project.join("app.db"), 60_000);
    let dir = project.join("backups/app");
    let mut child = std::process::Command::new(crate::common::binary())
        .args(["backup", "app"])
        .current_dir(project.path())
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while file_names(&dir).is_empty() && started.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the backup must still have been running when killed"
    );
    assert!(
        file_names(&dir)
            .iter()
            .all(|name| name.starts_with(".lw-tmp-")),
        "{:?}",
        file_names(&dir)
    );
    assert!(
        backups_json(&project)["backups"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let after = project.run(&["backup", "app"]);
    assert_eq!(after.code, 0, "{after:?}");
    assert_eq!(
        backups_json(&project)["backups"].as_array().unwrap().len(),
        1
    );
}

//! Copies that leave the machine: uploads to a real S3 server (s3s with
//! SigV4, in the test process), wrong credentials, a corrupted remote copy,
//! remote retention, status, and recovery from the bucket alone. The
//! failure modes are in `offsite_faults`.

use crate::common::s3::{self, S3Server};
use crate::common::{Project, fill};

/// The jobs.yaml of one database `app` whose copies go to `server` under
/// `prod`: `offsite` adds lines to the offsite block, `app` to the database.
pub(crate) fn config(server: &S3Server, offsite: &str, app: &str) -> String {
    format!(
        "version: 1\nsettings:\n{}{offsite}databases:\n  app:\n    path: app.db\n{app}",
        server.offsite_yaml("prod")
    )
}

/// A project with one database `app` (rows in it) whose copies go to
/// `server` under `prod`.
pub(crate) fn project(server: &S3Server) -> Project {
    let config = config(
        server,
        "",
        "    backup:\n      retention: { keep_last: 2 }\n",
    );
    let project = Project::with_config(&config);
    fill(&project.join("app.db"), 200);
    project
}

pub(crate) fn run(project: &Project, args: &[&str]) -> crate::common::Output {
    project.run_with(args, &s3::credentials())
}

pub(crate) fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn a_backup_goes_offsite_and_the_bucket_lists_it_with_its_manifest() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = project(&server);
    let backup = run(&project, &["backup", "app", "--json"]);
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    let key = json(&backup.stdout)["backups"][0]["record"]["key"]
        .as_str()
        .unwrap()
        .to_string();

    let upload = run(&project, &["offsite", "app", "--json"]);
    assert_eq!(upload.code, 0, "{}", upload.stderr);
    let spent = server.requests();
    assert_eq!(
        (
            spent.get("LIST"),
            spent.get("PUT"),
            spent.get("HEAD"),
            spent.get("GET")
        ),
        (Some(&1), Some(&2), Some(&1), None),
        "one listing, the manifest and the copy, one size check: {spent:?}"
    );
    let report = &json(&upload.stdout)["databases"][0]["report"];
    assert_eq!(report["uploaded"].as_array().unwrap().len(), 1, "{report}");
    let object = server.object_path(&format!("prod/{key}"));
    let local = project.join(&format!("backups/{key}"));
    assert_eq!(
        std::fs::read(&object).unwrap(),
        std::fs::read(&local).unwrap(),
        "the object holds the copy's bytes"
    );
    assert!(server.object_path(&format!("prod/{key}.json")).exists());

    let again = run(&project, &["offsite", "app", "--json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let after = server.requests();
    assert_eq!(
        after.get("LIST"),
        Some(&2),
        "nothing waiting costs one listing: {after:?}"
    );
    assert_eq!(
        (after.get("PUT"), after.get("HEAD")),
        (spent.get("PUT"), spent.get("HEAD"))
    );
    let report = &json(&again.stdout)["databases"][0]["report"];
    assert!(
        report["uploaded"].as_array().unwrap().is_empty(),
        "nothing waits: {report}"
    );

    let listed = run(&project, &["backups", "app", "--remote", "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let listed = json(&listed.stdout);
    let copies = listed["backups"].as_array().unwrap();
    assert_eq!(copies.len(), 1, "{listed}");
    assert_eq!(copies[0]["backup"]["key"], key.as_str());
    assert_eq!(copies[0]["backup"]["store"], "offsite");

    let local = run(&project, &["backups", "app"]);
    assert!(local.stdout.contains("OFFSITE"), "{}", local.stdout);
    let local = json(&run(&project, &["backups", "app", "--json"]).stdout);
    assert!(local["backups"][0]["offsite_at"].is_string(), "{local}");
}

#[test]
fn a_wrong_secret_is_an_error_naming_the_variable_and_never_the_secret() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = project(&server);
    assert_eq!(run(&project, &["backup", "app"]).code, 0);
    let wrong = "wr0ng-secret-value-1234";
    let out = project.run_with(
        &["offsite", "app"],
        &[
            ("AWS_ACCESS_KEY_ID", s3::KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", wrong),
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains("AWS_SECRET_ACCESS_KEY"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(wrong) && !out.stdout.contains(wrong));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);

    let missing = project.run_with(&["offsite", "app"], &[("AWS_ACCESS_KEY_ID", s3::KEY_ID)]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("AWS_SECRET_ACCESS_KEY is not set"),
        "{}",
        missing.stderr
    );
}

/// The jobs.yaml of a machine restoring `app` from `server` when it is
/// missing.
fn recovering_config(server: &S3Server) -> String {
    config(
        server,
        "",
        "    restore_if_missing: true\n    backup:\n      retention: { keep_last: 2 }\n",
    )
}

#[test]
fn an_empty_machine_recovers_from_the_bucket_alone() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let old = Project::with_config(&recovering_config(&server));
    fill(&old.join("app.db"), 300);
    assert_eq!(run(&old, &["backup", "app"]).code, 0);
    let upload = run(&old, &["offsite", "app"]);
    assert_eq!(upload.code, 0, "{}", upload.stderr);

    let new = Project::with_config(&recovering_config(&server));
    let listed = run(&new, &["backups", "app", "--remote", "--json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let listed = json(&listed.stdout);
    assert_eq!(listed["backups"].as_array().unwrap().len(), 1, "{listed}");
    assert!(
        new.files()
            .iter()
            .all(|f| !f.starts_with("backups/app/app-")),
        "listing downloads no copy: {:?}",
        new.files()
    );

    let plan = run(&new, &["plan"]);
    assert!(
        plan.stdout.contains("offsite: s3://backups/prod for app"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("restore") && plan.stdout.contains("s3://backups/prod/app/"),
        "{}",
        plan.stdout
    );
    let apply = run(&new, &["apply"]);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    assert_eq!(crate::common::count(&new.join("app.db"), "pages"), 300);
    assert_eq!(
        crate::common::dump(&new.join("app.db")),
        crate::common::dump(&old.join("app.db"))
    );
    assert!(
        new.files().iter().all(|f| !f.contains(".lw-tmp-")),
        "{:?}",
        new.files()
    );
}

#[test]
fn without_the_server_an_empty_machine_neither_restores_nor_creates_an_empty_database() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = Project::with_config(&recovering_config(&server));
    drop(server.stop());
    let apply = run(&project, &["apply"]);
    assert_ne!(apply.code, 0, "{}", apply.stdout);
    assert!(
        !project.join("app.db").exists(),
        "no empty database was created"
    );
    assert!(
        apply.stdout.contains("s3://backups/prod") || apply.stderr.contains("s3://backups/prod"),
        "{}\n{}",
        apply.stdout,
        apply.stderr
    );
}

#[test]
fn a_corrupted_remote_copy_is_refused_and_the_error_names_the_older_copy_that_works() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = project(&server);
    let mut keys = Vec::new();
    for more in [0, 50] {
        crate::common::open(&project.join("app.db"))
            .execute(
                "INSERT INTO pages (url) SELECT url || '?again' FROM pages LIMIT ?1",
                [more],
            )
            .unwrap();
        let backup = run(&project, &["backup", "app", "--json"]);
        assert_eq!(backup.code, 0, "{}", backup.stderr);
        keys.push(
            json(&backup.stdout)["backups"][0]["record"]["key"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        assert_eq!(run(&project, &["offsite", "app"]).code, 0);
    }
    let newest = server.object_path(&format!("prod/{}", keys[1]));
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();

    let out = run(
        &project,
        &[
            "restore",
            "app",
            "--from",
            "remote:latest",
            "--to",
            "restored.db",
            "-y",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    let older = keys[0].split('/').nth(1).unwrap();
    assert!(
        out.stderr.contains(keys[1].as_str()),
        "names the failed copy: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("--from remote:{older}")),
        "names the older copy: {}",
        out.stderr
    );
    assert!(!project.join("restored.db").exists());

    let newest_name = keys[1].split('/').nth(1).unwrap();
    let verify = run(&project, &["verify", &format!("remote:{newest_name}")]);
    assert_eq!(verify.code, 1, "{}", verify.stdout);
    assert!(
        verify
            .stderr
            .contains(&format!("s3://backups/prod/{}", keys[1]))
            && verify.stderr.contains("failed verification"),
        "{}",
        verify.stderr
    );
    let verify = run(&project, &["verify", &format!("remote:{older}")]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(
        verify.stdout.starts_with("ok: s3://backups/prod/"),
        "{}",
        verify.stdout
    );

    let from_older = format!("remote:{older}");
    let out = run(
        &project,
        &[
            "restore",
            "app",
            "--from",
            &from_older,
            "--to",
            "restored.db",
            "-y",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        crate::common::count(&project.join("restored.db"), "pages"),
        200
    );
}

#[test]
fn a_drill_from_offsite_restores_the_newest_remote_copy_and_needs_an_offsite_store() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let config = config(
        &server,
        "",
        "    drill: { every: 1d, from: offsite }\n    backup:\n      retention: { keep_last: 2 }\n",
    );
    let project = Project::with_config(&config);
    fill(&project.join("app.db"), 120);
    assert_eq!(run(&project, &["backup", "app"]).code, 0);
    let before = run(&project, &["drill", "app", "--json"]);
    assert_eq!(
        before.code, 1,
        "nothing on the remote yet: {}",
        before.stdout
    );
    assert_eq!(run(&project, &["offsite", "app"]).code, 0);
    let drill = run(&project, &["drill", "app", "--json"]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.stdout, drill.stderr);
    let report = json(&drill.stdout);
    let restored = report["drill"]["backup"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(restored.starts_with("s3://backups/prod/app/"), "{report}");

    let without = Project::with_config(
        "version: 1\ndatabases:\n  app:\n    path: app.db\n    drill: { every: 1d, from: offsite }\n",
    );
    let check = without.run(&["check"]);
    assert_eq!(check.code, 1);
    assert!(
        check.stderr.contains("databases.app.drill.from")
            || check.stdout.contains("databases.app.drill.from"),
        "{}{}",
        check.stdout,
        check.stderr
    );
}

/// The `offsite_age` check of `health app --json` run `offset` ahead.
fn offsite_age_check(project: &Project, offset: &str) -> serde_json::Value {
    let mut env = s3::credentials().to_vec();
    env.push(("LITEWARDEN_CLOCK_OFFSET", offset));
    let health = project.run_with(&["health", "app", "--json"], &env);
    let report = json(&health.stdout);
    report["databases"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == "offsite_age")
        .cloned()
        .unwrap_or_else(|| panic!("no offsite_age check: {report}"))
}

#[test]
fn status_and_health_say_how_far_the_offsite_store_is_behind() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = project(&server);
    assert_eq!(run(&project, &["backup", "app"]).code, 0);
    let status = json(&run(&project, &["status", "--json"]).stdout);
    assert_eq!(
        status["offsite"][0]["waiting"].as_array().unwrap().len(),
        1,
        "{status}"
    );
    assert_eq!(offsite_age_check(&project, "0s")["status"], "healthy");
    assert_eq!(
        offsite_age_check(&project, "3h")["status"],
        "degraded",
        "waiting past max_age_lag (2h)"
    );

    assert_eq!(run(&project, &["offsite", "app"]).code, 0);
    let status = json(&run(&project, &["status", "--json"]).stdout);
    assert_eq!(status["offsite"][0]["copies"], 1, "{status}");
    assert!(
        status["offsite"][0]["waiting"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{status}"
    );
    let text = run(&project, &["status"]).stdout;
    assert!(text.contains("offsite: app: newest copy"), "{text}");
    assert_eq!(offsite_age_check(&project, "0s")["status"], "healthy");
    let stale = offsite_age_check(&project, "3h");
    assert_eq!(stale["status"], "degraded");
    assert!(
        stale["detail"].as_str().unwrap().contains("max_age_lag"),
        "{stale}"
    );
}

#[test]
fn remote_retention_keeps_the_newest_verified_and_pinned_copies_whatever_the_rules_say() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let config = config(
        &server,
        "    retention: { keep_last: 1, max_age: 1s }\n",
        "    backup:\n      retention: { keep_last: 5 }\n",
    );
    let project = Project::with_config(&config);
    fill(&project.join("app.db"), 50);
    let mut keys = Vec::new();
    for (i, pin) in [true, false, false].into_iter().enumerate() {
        let offset = format!("{}h", i * 2);
        let mut env = s3::credentials().to_vec();
        env.push(("LITEWARDEN_CLOCK_OFFSET", &offset));
        let mut args = vec!["backup", "app", "--json"];
        if pin {
            args.push("--pin");
        }
        let backup = project.run_with(&args, &env);
        assert_eq!(backup.code, 0, "{}", backup.stderr);
        keys.push(
            json(&backup.stdout)["backups"][0]["record"]["key"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let upload = project.run_with(&["offsite", "app"], &env);
        assert_eq!(upload.code, 0, "{}", upload.stderr);
    }
    let present: Vec<bool> = keys
        .iter()
        .map(|key| server.object_path(&format!("prod/{key}")).exists())
        .collect();
    assert_eq!(
        present,
        [true, false, true],
        "pinned and newest kept, the middle one removed: {keys:?}"
    );
    assert!(
        !server
            .object_path(&format!("prod/{}.json", keys[1]))
            .exists(),
        "its manifest went with it"
    );
    for key in &keys {
        assert!(
            project.join(&format!("backups/{key}")).exists(),
            "local copies follow their own retention"
        );
    }
}

#[test]
fn check_shows_the_offsite_store_and_refuses_a_bad_one_by_its_field() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = project(&server);
    let check = run(&project, &["check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stdout.contains("offsite: s3://backups/prod for app, credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{}",
        check.stdout
    );
    assert!(!check.stdout.contains("is not set"), "{}", check.stdout);
    let unset = project.run(&["check"]);
    assert!(
        unset.stdout.contains("AWS_SECRET_ACCESS_KEY is not set"),
        "{}",
        unset.stdout
    );

    for (offsite, field, says) in [
        (
            "url: backups/prod",
            "settings.offsite.url",
            "must start with s3:// or file://",
        ),
        ("url: s3://", "settings.offsite.url", "names no bucket"),
        (
            "url: s3://b\n    endpoint: http://127.0.0.1:9",
            "settings.offsite.endpoint",
            "allow_http: true",
        ),
        (
            "url: s3://b\n    secret_access_key_env: \"hunter2!secret\"",
            "settings.offsite.secret_access_key_env",
            "never the password itself",
        ),
    ] {
        let bad = Project::with_config(&format!(
            "version: 1\nsettings:\n  offsite:\n    {offsite}\ndatabases:\n  app: {{ path: app.db }}\n"
        ));
        let check = bad.run(&["check"]);
        assert_eq!(check.code, 1, "{offsite}: {}", check.stdout);
        let said = format!("{}{}", check.stdout, check.stderr);
        assert!(
            said.contains(field) && said.contains(says),
            "{offsite}: {said}"
        );
        assert!(!said.contains("hunter2!secret"), "{said}");
    }
}

#[test]
fn credentials_can_come_from_files_and_a_refused_one_names_its_file_never_its_content() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let config = config(
        &server,
        "    access_key_id_file: secrets/key-id\n    secret_access_key_file: secrets/secret\n",
        "    backup: { retention: { keep_last: 2 } }\n",
    );
    let project = Project::with_config(&config);
    project.write("secrets/key-id", format!("{}\n", s3::KEY_ID).as_bytes());
    project.write("secrets/secret", format!("{}\n", s3::SECRET).as_bytes());
    fill(&project.join("app.db"), 30);
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    let check = project.run(&["check"]);
    assert!(
        !check.stdout.contains("is not set"),
        "no variable is needed: {}",
        check.stdout
    );
    let upload = project.run(&["offsite", "app"]);
    assert_eq!(upload.code, 0, "{}", upload.stderr);

    let wrong = "f1le-wr0ng-secret-777";
    project.write("secrets/secret", wrong.as_bytes());
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    let refused = project.run(&["offsite", "app"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("secrets/secret"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(wrong) && !refused.stdout.contains(wrong));

    let both = Project::with_config(
        "version: 1\nsettings:\n  offsite:\n    url: s3://b\n    secret_access_key_env: S\n    secret_access_key_file: s\ndatabases:\n  app: { path: app.db }\n",
    );
    let check = both.run(&["check"]);
    assert_eq!(check.code, 1);
    let said = format!("{}{}", check.stdout, check.stderr);
    assert!(
        said.contains("settings.offsite.secret_access_key_file") && said.contains("not both"),
        "{said}"
    );
}

#[test]
fn a_waiting_copy_deleted_by_hand_is_forgotten_and_the_next_one_goes_up() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = project(&server);
    assert_eq!(run(&project, &["backup", "app"]).code, 0);
    assert_eq!(run(&project, &["offsite", "app"]).code, 0);
    let mut keys = Vec::new();
    for _ in 0..2 {
        let backup = run(&project, &["backup", "app", "--json"]);
        assert_eq!(backup.code, 0, "{}", backup.stderr);
        keys.push(
            json(&backup.stdout)["backups"][0]["record"]["key"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    std::fs::remove_file(project.join(&format!("backups/{}", keys[0]))).unwrap();
    let upload = run(&project, &["offsite", "app", "--json"]);
    assert_eq!(upload.code, 0, "{}", upload.stderr);
    let uploaded = &json(&upload.stdout)["databases"][0]["report"]["uploaded"];
    assert_eq!(uploaded.as_array().unwrap().len(), 1, "{uploaded}");
    assert_eq!(uploaded[0]["key"], keys[1].as_str());
    assert!(server.object_path(&format!("prod/{}", keys[1])).exists());
}

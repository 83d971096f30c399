//! Copies that leave the machine: uploads to a real S3 server (s3s with
//! SigV4, in the test process), the backlog while it is down, wrong
//! credentials, and recovery from the bucket alone.

use crate::common::s3::{self, S3Server};
use crate::common::{Project, fill};

/// A project with one database `app` (rows in it) whose copies go to
/// `server` under `prefix`.
fn project(server: &S3Server, prefix: &str) -> Project {
    let config = format!(
        "version: 1\nsettings:\n{}databases:\n  app:\n    path: app.db\n    backup:\n      retention: {{ keep_last: 2 }}\n",
        server.offsite_yaml(prefix)
    );
    let project = Project::with_config(&config);
    fill(&project.join("app.db"), 200);
    project
}

fn run(project: &Project, args: &[&str]) -> crate::common::Output {
    project.run_with(args, &s3::credentials())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn a_backup_goes_offsite_and_the_bucket_lists_it_with_its_manifest() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = project(&server, "prod");
    let backup = run(&project, &["backup", "app", "--json"]);
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    let key = json(&backup.stdout)["backups"][0]["record"]["key"]
        .as_str()
        .unwrap()
        .to_string();

    let upload = run(&project, &["offsite", "app", "--json"]);
    assert_eq!(upload.code, 0, "{}", upload.stderr);
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
    let report = &json(&again.stdout)["databases"][0]["report"];
    assert!(report["uploaded"].as_array().unwrap().is_empty(), "nothing waits: {report}");

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
    let project = project(&server, "prod");
    assert_eq!(run(&project, &["backup", "app"]).code, 0);
    let wrong = "wr0ng-secret-value-1234";
    let out = project.run_with(
        &["offsite", "app"],
        &[("AWS_ACCESS_KEY_ID", s3::KEY_ID), ("AWS_SECRET_ACCESS_KEY", wrong)],
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("AWS_SECRET_ACCESS_KEY"), "{}", out.stderr);
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

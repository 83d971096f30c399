//! Copies that leave the machine when things go wrong: the S3 server down
//! under the daemon or during an upload, the uploader killed during a
//! multipart upload, a `file://` store on a read-only mount.

use crate::common::s3::{self, S3Server};
use crate::common::{Project, fill};
use crate::offsite::{json, run};

/// Runs of the offsite job with `outcome`, from the state database.
fn offsite_runs(project: &Project, outcome: &str) -> i64 {
    let path = project.join(".litewarden/state.db");
    if !path.exists() {
        return 0;
    }
    crate::common::open(&path)
        .query_row(
            "SELECT count(*) FROM job_runs WHERE job = 'offsite' AND outcome = ?1",
            [outcome],
            |row| row.get(0),
        )
        .unwrap_or(0)
}

/// The catalog's copies in `store`, as (seq, key), in the order they were
/// recorded.
fn catalogued(project: &Project, store: &str) -> Vec<(i64, String)> {
    let path = project.join(".litewarden/state.db");
    let connection = crate::common::open(&path);
    let mut select = connection
        .prepare("SELECT seq, key FROM backups WHERE store = ?1 ORDER BY id")
        .unwrap();
    select
        .query_map([store], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap_or_default()
}

#[test]
fn while_the_server_is_down_the_backlog_waits_in_state_db_and_uploads_in_order_when_it_is_back() {
    use crate::daemon::{Daemon, wait_until};
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let config = format!(
        "version: 1\nsettings:\n  shutdown_grace: 2s\n{}    retention: {{ keep_last: 100 }}\ndefaults: {{ health: {{ enabled: false }}, optimize: {{ enabled: false }} }}\ndatabases:\n  app:\n    path: app.db\n    backup: {{ every: 1s, compress: none, retention: {{ keep_last: 1 }} }}\nalerts:\n  - {{ name: offsite-down, when: job_failed, jobs: [offsite], to: [ops@example.com] }}\n",
        server.offsite_yaml("prod")
    );
    let project = Project::with_config(&config);
    fill(&project.join("app.db"), 100);
    let daemon = Daemon::start_with(&project, &s3::credentials());
    wait_until("a copy reaches the server", || {
        offsite_runs(&project, "success") >= 1
    });

    let (root, addr) = server.stop();
    let failed_before = offsite_runs(&project, "failed");
    wait_until("uploads fail while three copies wait locally", || {
        let local = catalogued(&project, "local").len();
        offsite_runs(&project, "failed") > failed_before + 1 && local >= 3
    });
    let waiting: Vec<(i64, String)> = catalogued(&project, "local")
        .into_iter()
        .filter(|(_, key)| {
            !catalogued(&project, "offsite")
                .iter()
                .any(|(_, k)| k == key)
        })
        .collect();
    assert!(
        waiting.len() >= 2,
        "keep_last: 1 kept every copy not uploaded: {waiting:?}"
    );
    for (_, key) in &waiting {
        assert!(
            project.join(&format!("backups/{key}")).exists(),
            "{key} is intact"
        );
    }
    let alerts = project.run(&["alerts", "--json"]);
    assert!(
        alerts.stdout.contains("offsite-down"),
        "the failure is alerted: {}",
        alerts.stdout
    );

    let server = S3Server::start_at(&root, addr);
    wait_until("every copy that waited reaches the server", || {
        let remote = catalogued(&project, "offsite");
        waiting
            .iter()
            .all(|(_, key)| remote.iter().any(|(_, k)| k == key))
    });
    let remote = catalogued(&project, "offsite");
    let uploaded: Vec<i64> = remote
        .iter()
        .filter(|(_, key)| waiting.iter().any(|(_, k)| k == key))
        .map(|(seq, _)| *seq)
        .collect();
    let mut in_order = uploaded.clone();
    in_order.sort();
    assert_eq!(uploaded, in_order, "the backlog went up oldest first");
    for (_, key) in &waiting {
        assert!(
            server.object_path(&format!("prod/{key}")).exists(),
            "{key} is on the server"
        );
    }
    assert_eq!(daemon.stop(), 0);
}

/// A project whose `app` holds ~19 MiB of random rows, backed up
/// uncompressed (a multipart upload) with copies going to `server`;
/// returns it and the copy's key.
fn with_a_large_backup(server: &S3Server) -> (Project, String) {
    let config = crate::offsite::config(
        server,
        "",
        "    backup:\n      compress: none\n      retention: { keep_last: 2 }\n",
    );
    let project = Project::with_config(&config);
    crate::common::open(&project.join("app.db"))
        .execute_batch(
            "CREATE TABLE blobs (b BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) INSERT INTO blobs SELECT randomblob(65536) FROM n;",
        )
        .unwrap();
    let backup = run(&project, &["backup", "app", "--json"]);
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    let key = json(&backup.stdout)["backups"][0]["record"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    (project, key)
}

/// `litewarden offsite app` started in the background.
fn upload_in_background(project: &Project) -> std::process::Child {
    std::process::Command::new(crate::common::binary())
        .args(["offsite", "app"])
        .current_dir(project.path())
        .envs(s3::credentials())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_during_a_multipart_upload_lists_no_half_copy_and_the_next_run_finishes() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start_slow_parts(objects.path(), std::time::Duration::from_millis(700));
    let (project, key) = with_a_large_backup(&server);
    let size = std::fs::metadata(project.join(&format!("backups/{key}")))
        .unwrap()
        .len();
    assert!(
        size > 16 << 20,
        "large enough for a multipart upload: {size}"
    );

    let mut child = upload_in_background(&project);
    crate::daemon::wait_until("a part is on its way", || server.parts_received() >= 1);
    child.kill().unwrap();
    child.wait().unwrap();

    let object = server.object_path(&format!("prod/{key}"));
    assert!(!object.exists(), "no half object");
    let listed = json(&run(&project, &["backups", "app", "--remote", "--json"]).stdout);
    assert!(
        listed["backups"].as_array().unwrap().is_empty(),
        "no half copy listed: {listed}"
    );

    let again = run(&project, &["offsite", "app", "--json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        std::fs::read(&object).unwrap(),
        std::fs::read(project.join(&format!("backups/{key}"))).unwrap()
    );
    let listed = json(&run(&project, &["backups", "app", "--remote", "--json"]).stdout);
    assert_eq!(listed["backups"].as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn a_file_offsite_on_a_read_only_mount_is_an_error_that_names_it() {
    let project = Project::new();
    let mount_dir = project.join("nfs");
    let Some(_mount) = crate::common::Tmpfs::mount(&mount_dir, "ro") else {
        eprintln!("skipped: this user cannot mount a read-only tmpfs (CI runs this test as root)");
        return;
    };
    let url = format!("file://{}", mount_dir.display());
    project.write(
        "jobs.yaml",
        format!("version: 1\nsettings:\n  offsite:\n    url: {url}\ndatabases:\n  app:\n    path: app.db\n    backup: {{ retention: {{ keep_last: 2 }} }}\n").as_bytes(),
    );
    fill(&project.join("app.db"), 50);
    let backup = project.run(&["backup", "app", "--json"]);
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    let key = json(&backup.stdout)["backups"][0]["record"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let out = project.run(&["offsite", "app"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains(&url),
        "names the offsite directory: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(
        project.join(&format!("backups/{key}")).exists(),
        "the local copy is kept"
    );
}

#[test]
fn the_server_stopping_during_an_upload_fails_the_run_and_keeps_the_local_copy_for_the_next() {
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start_slow_parts(objects.path(), std::time::Duration::from_secs(5));
    let (project, key) = with_a_large_backup(&server);
    let local = project.join(&format!("backups/{key}"));
    let before = std::fs::read(&local).unwrap();

    let upload = upload_in_background(&project);
    crate::daemon::wait_until("a part is on its way", || server.parts_received() >= 1);
    let (root, addr) = server.stop();
    let failed = upload.wait_with_output().unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("the local copies are kept"), "{stderr}");
    assert_eq!(
        std::fs::read(&local).unwrap(),
        before,
        "the local copy is untouched"
    );

    let server = S3Server::start_at(&root, addr);
    let again = run(&project, &["offsite", "app", "--json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        std::fs::read(server.object_path(&format!("prod/{key}"))).unwrap(),
        before
    );
}

#[test]
fn restores_from_the_bucket_under_a_steady_writer_keep_every_acknowledged_row() {
    use crate::acknowledged::{Writer, ids};
    let objects = tempfile::tempdir().unwrap();
    let server = S3Server::start(objects.path());
    let project = Project::with_config(&crate::offsite::config(
        &server,
        "",
        "    backup:\n      compress: none\n      retention: { keep_last: 50 }\n",
    ));
    crate::common::open(&project.join("app.db"))
        .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY);")
        .unwrap();
    assert_eq!(run(&project, &["backup", "app"]).code, 0);
    assert_eq!(run(&project, &["offsite", "app"]).code, 0);
    let writer = Writer::start(&project.join("app.db"));
    for _ in 0..5 {
        let restore = run(
            &project,
            &["restore", "app", "--from", "remote:latest", "--yes"],
        );
        assert_eq!(restore.code, 0, "{}", restore.stderr);
    }
    let acknowledged = writer.stop();
    assert!(acknowledged.len() > 50, "the writer wrote too little");
    let mut kept = ids(&project.join("app.db"));
    let dir = project.join("backups/app");
    for copy in crate::common::file_names(&dir)
        .into_iter()
        .filter(|name| name.ends_with(".db"))
    {
        kept.extend(ids(&dir.join(copy)));
    }
    let lost: Vec<&i64> = acknowledged.difference(&kept).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged rows are in neither the live file nor a safety copy: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

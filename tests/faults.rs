//! Faults (issue #14): a full disk, an unusable backup directory, a
//! database locked beyond its busy timeout, a config deleted under the
//! daemon. Each gives one clear error naming what failed, loses nothing,
//! and the next run succeeds once the fault clears. (A damaged or deleted
//! state database, a FIFO config and clock steps have their own tests in
//! `hostile.rs`, `safety.rs` and the reconciler's unit tests.)

use std::path::Path;
use std::process::Command;

use crate::common::{Output, Project, count, file_names, fill};
use crate::daemon::{Daemon, http_get, wait_until};

/// The lines of `stderr` that are errors: exactly one is expected.
fn error_lines(output: &Output) -> Vec<&str> {
    output
        .stderr
        .lines()
        .filter(|line| line.starts_with("error:") || line.contains(" ERROR "))
        .collect()
}

fn assert_one_clear_error(output: &Output, names: &[&str]) {
    assert_eq!(output.code, 1, "{output:?}");
    let errors = error_lines(output);
    assert_eq!(errors.len(), 1, "{output:?}");
    for name in names {
        assert!(errors[0].contains(name), "{name} in {output:?}");
    }
    assert!(!output.stderr.contains("panicked"), "{output:?}");
}

/// Mounts a tmpfs of `size` on `dir`: `false` when this machine does not
/// allow it (not root, no CAP_SYS_ADMIN).
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn remount(dir: &Path, size: &str) {
    let status = Command::new("mount")
        .args(["-o", &format!("remount,size={size}")])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_backup_disk_is_one_clear_error_and_the_next_backup_succeeds_once_space_is_back() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { compress: none, retention: { keep_last: 5 } } }\n",
    );
    let db = project.join("app.db");
    fill(&db, 8_000);
    crate::common::open(&db)
        .execute_batch("CREATE TABLE noise (b); INSERT INTO noise VALUES (randomblob(3000000));")
        .unwrap();
    let backups = project.join("backups");
    if !mount_tmpfs(&backups, "1m") {
        assert!(
            std::env::var("CI").is_err(),
            "CI runs as root and must be able to mount a tmpfs for the disk-full test"
        );
        eprintln!(
            "skipped outside CI: cannot mount a tmpfs (the ulimit -f variant runs in backup.rs)"
        );
        return;
    }
    let _unmount = Unmount(&backups);
    let before = std::fs::read(&db).unwrap();
    let output = project.run(&["backup", "app"]);
    assert_one_clear_error(&output, &["backups", "app"]);
    assert!(
        output
            .stderr
            .contains("backup of `app` failed: the backup disk is full: ")
            && output.stderr.contains("backups/app has ")
            && output.stderr.contains("free (No space left on device"),
        "the directory and its free space, never /proc/self/fd: {output:?}"
    );
    assert!(!output.stderr.contains("/proc/self/fd"), "{output:?}");
    assert_eq!(file_names(&backups.join("app")), Vec::<String>::new());
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database is untouched"
    );
    remount(&backups, "64m");
    let output = project.run(&["backup", "app"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(file_names(&backups.join("app")).len(), 1);
}

#[test]
fn a_backup_directory_that_became_a_file_is_one_clear_error_until_it_is_a_directory_again() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { compress: none } }\n",
    );
    fill(&project.join("app.db"), 100);
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    let dir = project.join("backups/app");
    let kept = project.join("kept-aside");
    std::fs::rename(&dir, &kept).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let output = project.run(&["backup", "app"]);
    assert_one_clear_error(&output, &["backups/app"]);
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&kept, &dir).unwrap();
    let output = project.run(&["backup", "app"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(file_names(&dir).len(), 2, "the first backup is still there");
}

#[test]
fn a_database_locked_beyond_its_busy_timeout_is_one_clear_error_and_the_next_backup_succeeds() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, pragmas: { journal_mode: delete, busy_timeout: 200ms }, backup: { compress: none } }\n",
    );
    let db = project.join("app.db");
    let holder = crate::common::Holder::exclusive(&db);
    let output = project.run(&["backup", "app"]);
    assert_one_clear_error(&output, &["app", "locked"]);
    assert_eq!(
        file_names(&project.join("backups/app")),
        Vec::<String>::new()
    );
    holder.release();
    let output = project.run(&["backup", "app"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(count(&db, "t"), 2, "the holder's commit is kept");
}

#[test]
fn a_config_deleted_under_the_daemon_keeps_the_last_good_one_and_backups_go_on() {
    let port = crate::common::free_port();
    let config = format!(
        "version: 1\nsettings: {{ listen: \"127.0.0.1:{port}\" }}\ndatabases:\n  app: {{ path: app.db, backup: {{ every: 1s, compress: none, retention: {{ keep_last: 100 }} }} }}\n"
    );
    let project = Project::with_config(&config);
    fill(&project.join("app.db"), 100);
    let daemon = Daemon::start(&project);
    let backups = || file_names(&project.join("backups/app")).len();
    wait_until("a first backup", || backups() >= 1);
    std::fs::remove_file(project.join("jobs.yaml")).unwrap();
    wait_until("the missing config is a failed reload", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1 503")
    });
    assert!(http_get(port, "/status").contains("cannot read the config file"));
    let before = backups();
    wait_until("backups go on with the last good config", || {
        backups() >= before + 2
    });
    project.write("jobs.yaml", config.as_bytes());
    wait_until("the config is good again", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1 200")
    });
    assert_eq!(daemon.stop(), 0);
}

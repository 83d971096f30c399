//! Crashes, interrupts and hostile files around backups and restores: what
//! a killed or interrupted run leaves, read-only backup directories, zstd
//! bombs, sparse files and concurrent runs.
//!
//! Kill points are spread over each operation's measured duration by a
//! seeded generator (printed on failure); `LITEWARDEN_CRASH_ROUNDS` raises
//! the 10 rounds per operation that CI runs (100 for a long run).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Project, all_names, binary, count, fill, integrity_check_elsewhere, open};

pub(crate) fn rounds() -> usize {
    std::env::var("LITEWARDEN_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// A small xorshift generator: reproducible kill points from a seed.
pub(crate) struct Points(u64);

impl Points {
    pub(crate) fn seeded() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64
            | 1;
        eprintln!("kill-point seed: {seed}");
        Points(seed)
    }

    /// A point in `0..span`.
    pub(crate) fn next(&mut self, span: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        span.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

fn project(backup: &str) -> Project {
    project_with_rows(backup, 6_000)
}

fn project_with_rows(backup: &str, rows: u32) -> Project {
    let project = Project::with_config(&format!(
        "version: 1\ndatabases:\n  app: {{ path: app.db, backup: {{ {backup} }} }}\n"
    ));
    fill(&project.join("app.db"), rows);
    project
}

pub(crate) fn spawn(project: &Project, args: &[&str]) -> Child {
    Command::new(binary())
        .args(args)
        .current_dir(project.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start litewarden")
}

/// How long `args` takes when left alone.
pub(crate) fn duration_of(project: &Project, args: &[&str]) -> Duration {
    let started = Instant::now();
    let output = project.run(args);
    assert_eq!(output.code, 0, "{args:?}: {}", output.stderr);
    started.elapsed()
}

pub(crate) fn temps(dir: &Path) -> Vec<String> {
    all_names(dir)
        .into_iter()
        .filter(|name| name.starts_with(".lw-tmp"))
        .collect()
}

pub(crate) fn listed_backups(project: &Project) -> Vec<PathBuf> {
    let output = project.run(&["backups", "app", "--json"]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    json["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| PathBuf::from(b["path"].as_str().unwrap()))
        .collect()
}

/// After a series of kills: one backup runs, and then no temp file is left
/// anywhere, every listed backup verifies in a second process, and the live
/// database passes integrity_check holding `rows`.
fn assert_recovered(project: &Project, rows: &[i64]) {
    let next = project.run(&["backup", "app"]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    for dir in [
        project.path().to_path_buf(),
        project.join("backups/app"),
        project.join(".litewarden"),
    ] {
        assert_eq!(temps(&dir), Vec::<String>::new(), "{}", dir.display());
    }
    let backups = listed_backups(project);
    assert!(!backups.is_empty());
    for backup in &backups {
        let verify = project.run(&["verify", backup.to_str().unwrap()]);
        assert_eq!(verify.code, 0, "{}: {}", backup.display(), verify.stderr);
    }
    let app = project.join("app.db");
    assert_eq!(integrity_check_elsewhere(&app), "ok");
    let found = count(&app, "pages");
    assert!(
        rows.contains(&found),
        "{found} rows, expected one of {rows:?}"
    );
}

#[test]
fn backups_killed_at_random_points_leave_nothing_once_the_next_backup_ran() {
    let mut points = Points::seeded();
    for settings in [
        "compress: zstd, verify: quick",
        "compress: zstd, verify: none",
        "compress: none, verify: quick",
        "compress: none, verify: none",
    ] {
        let project = project(settings);
        let span = duration_of(&project, &["backup", "app"]);
        let mut killed = 0;
        for round in 0..rounds() {
            let mut child = spawn(&project, &["backup", "app"]);
            std::thread::sleep(points.next(span));
            let _ = child.kill();
            let status = child.wait().unwrap();
            killed += usize::from(status.code().is_none());
            eprintln!("{settings}, round {round}: {status}");
        }
        crate::crash_ops::record_crash(&format!("backup ({settings})"), killed, span);
        assert_recovered(&project, &[6_000]);
    }
}

#[test]
fn restores_killed_at_random_points_leave_the_old_or_the_new_content_whole() {
    let mut points = Points::seeded();
    let project = project("compress: zstd, verify: quick");
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    open(&project.join("app.db"))
        .execute_batch("DELETE FROM pages WHERE id > 4000;")
        .unwrap();
    let span = duration_of(&project, &["restore", "app", "--yes"]);
    let mut killed = 0;
    for round in 0..rounds() {
        open(&project.join("app.db"))
            .execute_batch("DELETE FROM pages WHERE id > 4000;")
            .unwrap();
        let mut child = spawn(&project, &["restore", "app", "--yes"]);
        std::thread::sleep(points.next(span));
        let _ = child.kill();
        let status = child.wait().unwrap();
        killed += usize::from(status.code().is_none());
        eprintln!("restore round {round}: {status}");
        assert_eq!(integrity_check_elsewhere(&project.join("app.db")), "ok");
        let rows = count(&project.join("app.db"), "pages");
        assert!(rows == 4_000 || rows == 6_000, "{rows} rows");
    }
    crate::crash_ops::record_crash("restore in place", killed, span);
    assert_recovered(&project, &[4_000, 6_000]);
    let restore = project.run(&["restore", "app", "--from", "latest", "--yes"]);
    assert_eq!(restore.code, 0, "{}", restore.stderr);
}

/// Sends SIGINT to `args` part-way through and checks that it exits with
/// 130 and leaves no temp file, without any later run.
fn interrupt(project: &Project, args: &[&str], points: &mut Points) {
    let span = duration_of(project, args);
    for _ in 0..5 {
        let mut child = spawn(project, args);
        std::thread::sleep(points.next(span) / 2 + Duration::from_millis(5));
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = child.wait().unwrap();
        let before_main = std::os::unix::process::ExitStatusExt::signal(&status) == Some(2);
        assert!(
            status.code() == Some(130) || status.success() || before_main,
            "{args:?}: {status} (130: interrupted; success: it finished first; SIGINT itself: it came before main took the signal)"
        );
        for dir in [
            project.path().to_path_buf(),
            project.join("backups/app"),
            project.join(".litewarden"),
        ] {
            assert_eq!(temps(&dir), Vec::<String>::new(), "{args:?}: {status}");
        }
    }
}

#[test]
fn ctrl_c_on_backup_restore_or_verify_leaves_no_temp_file() {
    let mut points = Points::seeded();
    let project = project_with_rows("compress: none, verify: full", 40_000);
    interrupt(&project, &["backup", "app"], &mut points);
    let zstd = project_with_rows("compress: zstd, verify: full", 40_000);
    interrupt(&zstd, &["backup", "app"], &mut points);
    let backup = listed_backups(&zstd)[0].clone();
    interrupt(&zstd, &["verify", backup.to_str().unwrap()], &mut points);
    interrupt(
        &zstd,
        &["restore", "app", "--yes", "--verify", "full"],
        &mut points,
    );
}

/// `dir` made read-only in place: a read-only bind mount of itself where
/// the machine allows one (root with CAP_SYS_ADMIN, as CI runs), else, for
/// a user that is not root, directories without write permission.
struct ReadOnly {
    mounted: bool,
    dir: PathBuf,
}

fn is_root() -> bool {
    let id = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&id.stdout).trim() == "0"
}

fn set_tree_mode(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            set_tree_mode(&path, mode);
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl ReadOnly {
    fn of(dir: &Path) -> Self {
        let bind = Command::new("mount")
            .arg("--bind")
            .arg(dir)
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if bind {
            let remount = Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(dir)
                .status()
                .unwrap();
            assert!(remount.success(), "remount {} read-only", dir.display());
            return ReadOnly {
                mounted: true,
                dir: dir.to_path_buf(),
            };
        }
        assert!(
            !is_root(),
            "root here cannot bind-mount read-only; this test needs mount (CAP_SYS_ADMIN)"
        );
        set_tree_mode(dir, 0o555);
        ReadOnly {
            mounted: false,
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        } else {
            set_tree_mode(&self.dir, 0o755);
        }
    }
}

#[test]
fn backups_on_a_read_only_mount_verify_and_restore() {
    for compress in ["zstd", "none"] {
        let project = Project::with_config(&format!(
            "version: 1\ndatabases:\n  app: {{ path: app.db, backup: {{ compress: {compress} }} }}\n"
        ));
        fill(&project.join("app.db"), 3_000);
        let taken = project.run(&["backup", "app"]);
        assert_eq!(taken.code, 0, "{}", taken.stderr);
        let dir = project.join("backups/app");
        let backup = all_names(&dir)
            .into_iter()
            .find(|n| n.starts_with("app-") && !n.ends_with(".json"))
            .map(|n| dir.join(n))
            .unwrap();
        let read_only = ReadOnly::of(&project.join("backups"));
        let before = all_names(&dir);

        let verify = project.run(&["verify", backup.to_str().unwrap()]);
        assert_eq!(verify.code, 0, "{compress}: {}", verify.stderr);
        open(&project.join("app.db"))
            .execute_batch("DELETE FROM pages")
            .unwrap();
        let restore = project.run(&["restore", "app", "--to", "copy.db", "--yes"]);
        assert_eq!(restore.code, 0, "{compress}: {}", restore.stderr);
        assert_eq!(count(&project.join("copy.db"), "pages"), 3_000);
        let drill = project.run(&["drill", "app"]);
        assert_eq!(
            drill.code, 0,
            "{compress}: {} {}",
            drill.stdout, drill.stderr
        );
        assert_eq!(all_names(&dir), before, "{compress}");
        drop(read_only);
    }
}

/// A zstd file whose first 4 KiB are a one-page SQLite database and whose
/// rest is `extra` bytes of zeros (a few KiB compressed).
fn zstd_bomb(project: &Project, extra: u64) -> PathBuf {
    let small = project.join("small.db");
    open(&small)
        .execute_batch("PRAGMA page_size=4096; CREATE TABLE t(x); DROP TABLE t; VACUUM;")
        .unwrap();
    let page = std::fs::read(&small).unwrap();
    let bomb = project.join("bomb.db.zst");
    let mut encoder = zstd::Encoder::new(std::fs::File::create(&bomb).unwrap(), 19).unwrap();
    std::io::Write::write_all(&mut encoder, &page).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..extra >> 20 {
        std::io::Write::write_all(&mut encoder, &zeros).unwrap();
    }
    encoder.finish().unwrap();
    bomb
}

#[test]
fn a_zstd_bomb_is_refused_at_its_declared_size_and_a_sparse_file_costs_its_pages() {
    let project = project("compress: zstd");
    let bomb = zstd_bomb(&project, 64 << 20);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 64 << 10);
    for args in [
        vec!["verify", "bomb.db.zst"],
        vec![
            "restore",
            "app",
            "--from",
            "bomb.db.zst",
            "--to",
            "out.db",
            "--yes",
        ],
    ] {
        let output = project.run(&args);
        assert_eq!(output.code, 1, "{args:?}: {}", output.stderr);
        assert!(
            output.stderr.contains(
                "decodes to more than the 4096 bytes its SQLite header declares (page count × page size); refused"
            ),
            "{args:?}: {}",
            output.stderr
        );
    }
    assert!(!project.join("out.db").exists());
    assert_eq!(temps(project.path()), Vec::<String>::new());

    let sparse = project.join("sparse.db");
    std::fs::copy(project.join("app.db"), &sparse).unwrap();
    open(&sparse)
        .execute_batch("PRAGMA journal_mode=delete")
        .unwrap();
    let real = std::fs::metadata(&sparse).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&sparse)
        .unwrap()
        .set_len(20 << 30)
        .unwrap();
    let restore = project.run(&[
        "restore",
        "app",
        "--from",
        "sparse.db",
        "--to",
        "out.db",
        "--yes",
    ]);
    assert_eq!(restore.code, 0, "{}", restore.stderr);
    assert_eq!(
        std::fs::metadata(project.join("out.db")).unwrap().len(),
        real
    );
    assert_eq!(count(&project.join("out.db"), "pages"), 6_000);
}

#[test]
fn two_backups_of_one_database_started_together_both_succeed() {
    let project = project_with_rows("compress: zstd, verify: quick", 30_000);
    let children: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(binary())
                .args(["backup", "app"])
                .current_dir(project.path())
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for output in &outputs {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let backups = listed_backups(&project);
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert_ne!(backups[0], backups[1]);
}

#[test]
fn a_flipped_byte_in_an_uncatalogued_compressed_backup_is_caught_by_its_checksum() {
    let project = project("compress: zstd, verify: quick");
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    let mut bytes = std::fs::read(&listed_backups(&project)[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    project.write("stray.db.zst", &bytes);
    let verify = project.run(&["verify", "stray.db.zst"]);
    assert_eq!(verify.code, 1, "{}", verify.stderr);
    assert!(
        verify
            .stderr
            .contains("stray.db.zst: not a valid zstd file"),
        "{}",
        verify.stderr
    );
    let restore = project.run(&[
        "restore",
        "app",
        "--from",
        "stray.db.zst",
        "--to",
        "out.db",
        "--yes",
    ]);
    assert_eq!(restore.code, 1, "{}", restore.stderr);
    assert!(
        restore
            .stderr
            .contains("refusing to restore `app`: stray.db.zst: not a valid zstd file"),
        "{}",
        restore.stderr
    );
    assert!(!project.join("out.db").exists());
}

#[test]
fn a_restore_over_the_file_size_limit_names_the_target_and_leaves_nothing() {
    let project = project("compress: zstd, verify: quick");
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f 256; exec '{}' restore app --to out.db --yes",
            binary().display()
        ))
        .current_dir(project.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("restoring `app` into out.db failed") && stderr.contains("File too large"),
        "{stderr}"
    );
    assert!(!project.join("out.db").exists());
    assert_eq!(temps(project.path()), Vec::<String>::new());
}

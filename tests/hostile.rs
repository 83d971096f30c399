//! Issue #14: hostile input, broken state and secrets. Each test reproduces
//! one defect an adversarial pass found, through the real binary.

use crate::common::{Project, free_port};
use crate::daemon::{Daemon, http_get, wait_until};

const SECRET: &str = "Sup3r$ecret!pw#42";

/// Every byte of every file below the project (state.db included).
fn project_bytes(project: &Project) -> Vec<u8> {
    let mut all = Vec::new();
    for relative in project.files() {
        let path = project.join(&relative);
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn a_password_variable_is_never_printed_logged_stored_or_served() {
    let port = free_port();
    let good = format!(
        "version: 1\nsettings: {{ listen: \"127.0.0.1:{port}\" }}\ndatabases:\n  app: {{ path: app.db, backup: {{ every: 1h, compress: none }} }}\nsmtp:\n  host: 127.0.0.1\n  port: 1\n  tls: none\n  username: alerts\n  password_env: ${{SMTP_PASSWORD}}\n  from: litewarden@example.com\n"
    );
    let project = Project::with_config(&good);
    let env = [("SMTP_PASSWORD", SECRET)];
    let mut printed = String::new();
    let check = project.run_with(&["check"], &env);
    assert_eq!(check.code, 0, "{check:?}");
    printed += &format!("{check:?}");

    let bad = good.replace("from: litewarden@example.com", "from: \"${SMTP_PASSWORD}\"");
    project.write("jobs.yaml", bad.as_bytes());
    for args in [&["check"][..], &["check", "--json"], &["plan"], &["status"]] {
        let output = project.run_with(args, &env);
        printed += &format!("{output:?}");
    }
    assert!(printed.contains("<redacted>"), "{printed}");

    project.write("jobs.yaml", good.as_bytes());
    let daemon = Daemon::start_with(&project, &env);
    wait_until("the daemon serves /status", || {
        http_get(port, "/status").contains("\"config_ok\":true")
    });
    project.write("jobs.yaml", bad.as_bytes());
    wait_until("the bad save is reported", || {
        http_get(port, "/status").contains("\"config_ok\":false")
    });
    for path in ["/status", "/healthz", "/metrics"] {
        printed += &http_get(port, path);
    }
    printed += &format!("{:?}", project.run_with(&["status", "--json"], &env));
    assert_eq!(daemon.stop(), 0);
    printed += &std::fs::read_to_string(project.join("daemon.log")).unwrap();
    assert!(printed.contains("<redacted>"), "{printed}");
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(!contains(&project_bytes(&project), SECRET));
}

#[test]
fn a_password_written_into_password_env_is_refused_without_quoting_it() {
    let project = Project::with_config(&format!(
        "version: 1\ndatabases: {{}}\nsmtp:\n  host: h\n  username: u\n  password_env: \"{SECRET}\"\n  from: a@b.c\n"
    ));
    let output = project.run(&["check"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output.stderr.contains(
            "jobs.yaml:6:17: smtp.password_env: takes the name of an environment variable"
        ),
        "{output:?}"
    );
    assert!(!format!("{output:?}").contains(SECRET), "{output:?}");
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo (coreutils) is on every machine");
    assert!(status.success());
}

const APP: &str =
    "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 1h, compress: none } }\n";

#[test]
fn a_migration_linked_from_outside_its_directory_is_refused_and_never_quoted() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, migrations: { dir: migrations } }\n",
    );
    project.write("private/creds.sql", b"password = 'hunter2-private';\n");
    project.write("migrations/0001_init.sql", b"CREATE TABLE t (x);\n");
    std::os::unix::fs::symlink(
        project.join("private/creds.sql"),
        project.join("migrations/0002_creds.sql"),
    )
    .unwrap();
    for args in [&["plan"][..], &["apply"], &["migrate", "up", "app"]] {
        let output = project.run(args);
        assert_eq!(output.code, 1, "{args:?}: {output:?}");
        assert!(
            output.stderr.contains("0002_creds.sql: resolves to")
                && output.stderr.contains("outside the migrations directory"),
            "{args:?}: {output:?}"
        );
        assert!(!format!("{output:?}").contains("hunter2"), "{output:?}");
    }
    assert!(!contains(
        &project_bytes_but(&project, "private"),
        "hunter2"
    ));
}

/// Every byte below the project but the files under `skip`.
fn project_bytes_but(project: &Project, skip: &str) -> Vec<u8> {
    let mut all = Vec::new();
    for relative in project.files() {
        let path = project.join(&relative);
        if path.is_file() && !relative.starts_with(skip) && !path.is_symlink() {
            all.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    all
}

#[test]
fn restore_and_verify_refuse_a_fifo_a_device_and_a_directory_at_once() {
    let project = Project::with_config(APP);
    crate::common::fill(&project.join("app.db"), 10);
    mkfifo(&project.join("fifo"));
    for from in ["fifo", "/dev/zero", "/dev/urandom"] {
        let output = project.run(&["restore", "app", "--from", from, "--to", "out.db"]);
        assert_eq!(output.code, 1, "{from}: {output:?}");
        assert!(
            output.stderr.contains("not a regular file"),
            "{from}: {output:?}"
        );
        let output = project.run(&["verify", from]);
        assert_eq!(output.code, 1, "{from}: {output:?}");
        assert!(
            output.stderr.contains("not a regular file"),
            "{from}: {output:?}"
        );
    }
    let output = project.run(&["verify", "."]);
    assert_fails_saying(&output, "a directory, not a backup or database file");
    assert!(!project.join("out.db").exists());
}

#[test]
fn a_config_that_is_a_fifo_fails_at_startup_and_is_a_failed_reload_while_running() {
    let port = free_port();
    let config = APP.replace(
        "version: 1\n",
        &format!("version: 1\nsettings: {{ listen: \"127.0.0.1:{port}\" }}\n"),
    );
    let fifo_project = Project::new();
    mkfifo(&fifo_project.join("jobs.yaml"));
    let output = fifo_project.run(&["check"]);
    assert_fails_saying(&output, "not a regular file (a FIFO)");

    let project = Project::with_config(&config);
    let daemon = Daemon::start(&project);
    wait_until("the daemon is healthy", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1 200")
    });
    std::fs::remove_file(project.join("jobs.yaml")).unwrap();
    mkfifo(&project.join("jobs.yaml"));
    daemon.signal("HUP");
    wait_until("the FIFO is a failed reload", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1 503")
    });
    assert!(http_get(port, "/status").contains("not a regular file (a FIFO)"));
    assert_eq!(daemon.stop(), 0);
}

/// Every look at the database waits on a lock another process holds (its
/// observation, then the backup with busy_timeout 10m and grace 10m), so
/// the daemon cannot finish a graceful stop before the second signal: the
/// exit code proves the second signal ended it. (An earlier version let a
/// backup finish between the two `kill`s and was flaky.)
#[test]
fn a_second_sigterm_stops_the_daemon_at_once() {
    let project = Project::with_config(
        "version: 1\nsettings: { shutdown_grace: 10m }\ndatabases:\n  app: { path: app.db, pragmas: { journal_mode: delete, busy_timeout: 10m }, backup: { every: 1h, compress: none } }\n",
    );
    let writer = crate::common::Holder::exclusive(&project.join("app.db"));
    let daemon = Daemon::start(&project);
    wait_until("the daemon has its signal handler", || {
        std::fs::read_to_string(project.join("daemon.log"))
            .is_ok_and(|log| log.contains("litewarden run started"))
    });
    daemon.signal("TERM");
    assert_eq!(daemon.stop(), 128 + 15);
    writer.kill();
}

#[test]
fn a_garbage_state_database_is_kept_aside_and_backups_go_on() {
    let project = Project::with_config(APP);
    crate::common::fill(&project.join("app.db"), 100);
    assert_eq!(project.run(&["backup", "app"]).code, 0);
    std::fs::write(project.join(".litewarden/state.db"), vec![0x42; 20_000]).unwrap();
    let _ = std::fs::remove_file(project.join(".litewarden/state.db-wal"));
    let output = project.run(&["backup", "app"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(
        output.stderr.contains("the state database is damaged"),
        "{output:?}"
    );
    assert_eq!(
        std::fs::read(project.join(".litewarden/state.db.damaged-1")).unwrap(),
        vec![0x42; 20_000],
        "the damaged file is kept"
    );
    let listed = project.run(&["backups", "app", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(json["backups"].as_array().unwrap().len(), 2, "{listed:?}");
}

#[test]
fn the_daemon_survives_its_state_database_being_overwritten_or_deleted() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, backup: { every: 1s, compress: none, retention: { keep_last: 100 } } }\n",
    );
    crate::common::fill(&project.join("app.db"), 100);
    let daemon = Daemon::start(&project);
    let dir = project.join("backups/app");
    let count = || crate::common::file_names(&dir).len();
    wait_until("a first backup", || count() >= 1);
    let state = project.join(".litewarden/state.db");
    std::fs::write(&state, vec![0x42; 20_000]).unwrap();
    let before = count();
    wait_until("two more backups after the corruption", || {
        count() >= before + 2
    });
    assert!(project.join(".litewarden/state.db.damaged-1").exists());
    std::fs::remove_file(&state).unwrap();
    let _ = std::fs::remove_file(project.join(".litewarden/state.db-wal"));
    let before = count();
    wait_until("two more backups after the deletion", || {
        count() >= before + 2
    });
    let mut last_status = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !last_status
        .as_ref()
        .is_some_and(|output: &crate::common::Output| {
            output.code == 0 && output.stdout.contains("daemon: running (pid")
        })
    {
        assert!(
            std::time::Instant::now() < deadline,
            "status never said the daemon runs; last: {last_status:?}\ndaemon log:\n{}",
            std::fs::read_to_string(project.join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        last_status = Some(project.run(&["status"]));
    }
    assert_eq!(daemon.stop(), 0);
    let status = project.run(&["status"]);
    assert!(!status.stdout.contains("daemon: running"), "{status:?}");
    let listed = project.run(&["backups", "app", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(
        json["backups"].as_array().unwrap().len(),
        count(),
        "the catalog lists every backup file: {listed:?}"
    );
}

/// Runs the binary under `umask 000` in the project directory.
fn run_with_umask_000(project: &Project, args: &str) -> crate::common::Output {
    let output = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "umask 000; exec '{}' {args}",
                crate::common::binary().display()
            ),
        ])
        .current_dir(project.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    crate::common::Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn files_and_directories_are_private_even_under_umask_000() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: data/sub/app.db, migrations: { dir: migrations }, backup: { compress: none } }\n",
    );
    project.write("migrations/0001_init.sql", b"CREATE TABLE t (x);\n");
    let output = run_with_umask_000(&project, "apply");
    assert_eq!(output.code, 0, "{output:?}");
    let output = run_with_umask_000(&project, "backup app");
    assert_eq!(output.code, 0, "{output:?}");
    for dir in ["data", "data/sub", ".litewarden", "backups", "backups/app"] {
        assert_eq!(mode(&project.join(dir)), 0o700, "{dir}");
    }
    let mut files = vec![
        "data/sub/app.db".to_string(),
        "data/sub/app.db.migrate-lock".to_string(),
        ".litewarden/state.db".to_string(),
    ];
    files.extend(
        crate::common::all_names(&project.join("backups/app"))
            .into_iter()
            .map(|name| format!("backups/app/{name}")),
    );
    for file in &files {
        assert_eq!(mode(&project.join(file)), 0o600, "{file}");
    }
}

#[test]
fn a_lock_file_that_is_a_link_is_refused_and_its_target_never_created() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, migrations: { dir: migrations } }\n",
    );
    project.write("migrations/0001_init.sql", b"CREATE TABLE t (x);\n");
    crate::common::fill(&project.join("app.db"), 1);
    std::os::unix::fs::symlink(project.join("planted"), project.join("app.db.migrate-lock"))
        .unwrap();
    let output = project.run(&["migrate", "up", "app"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output.stderr.contains("app.db.migrate-lock")
            && output
                .stderr
                .contains("a symbolic link where litewarden keeps a lock file"),
        "{output:?}"
    );
    assert!(!project.join("planted").exists());
}

#[test]
fn a_default_that_rust_reads_as_infinity_is_stored_as_text_not_an_sql_error() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app:\n    path: app.db\n    backup: { compress: none }\n    schema:\n      pages:\n        score: { type: TEXT, default: \"-inf\" }\n        weight: { type: REAL, default: \"-1.5e3\" }\n",
    );
    crate::common::fill(&project.join("app.db"), 3);
    assert_eq!(project.run(&["check"]).code, 0);
    let output = project.run(&["apply"]);
    assert_eq!(output.code, 0, "{output:?}");
    let (score, weight): (String, f64) = crate::common::open(&project.join("app.db"))
        .query_row("SELECT score, weight FROM pages LIMIT 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!((score.as_str(), weight), ("-inf", -1500.0));
}

#[test]
fn a_nul_in_a_path_is_a_positioned_check_error() {
    let project = Project::with_config("version: 1\ndatabases:\n  app: { path: \"a\\0b.db\" }\n");
    let output = project.run(&["check"]);
    assert_fails_saying(&output, "jobs.yaml:3:16: databases.app.path: a NUL byte");
}

#[test]
fn listening_beyond_loopback_without_a_token_is_a_check_error() {
    let project =
        Project::with_config("version: 1\nsettings: { listen: \"0.0.0.0:9187\" }\ndatabases: {}\n");
    let output = project.run(&["check"]);
    assert_fails_saying(
        &output,
        "jobs.yaml:2:21: settings.listen: a listener beyond loopback shows database names, paths and errors: set `settings.http.token_env`",
    );
    project.write(
        "jobs.yaml",
        b"version: 1\nsettings: { listen: \"0.0.0.0:9187\", http: { token_env: LITEWARDEN_TOKEN } }\ndatabases: {}\n",
    );
    let output = project.run(&["check"]);
    assert_eq!(output.code, 0, "{output:?}");
}

#[test]
fn a_database_locked_by_its_writer_at_startup_counts_as_managed() {
    let port = free_port();
    let project = Project::with_config(&format!(
        "version: 1\nsettings: {{ listen: \"127.0.0.1:{port}\" }}\ndatabases:\n  app: {{ path: app.db, pragmas: {{ journal_mode: delete }}, backup: {{ every: 1h, compress: none }} }}\n"
    ));
    let writer = crate::common::Holder::exclusive(&project.join("app.db"));
    let daemon = Daemon::start(&project);
    wait_until("the locked database counts as managed", || {
        http_get(port, "/metrics").contains("litewarden_managed_databases 1")
    });
    writer.release();
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_database_path_that_is_a_fifo_is_reported_not_waited_on() {
    let project = Project::with_config(APP);
    mkfifo(&project.join("app.db"));
    let output = project.run(&["plan"]);
    assert_fails_saying(&output, "not a regular file (a FIFO)");
}

/// The command exited 1 and its stderr says `text`.
fn assert_fails_saying(output: &crate::common::Output, text: &str) {
    assert_eq!(output.code, 1, "{output:?}");
    assert!(output.stderr.contains(text), "{output:?}");
}

/// Polls `condition` for up to 10 s: well under the daemon's 30 s periodic
/// re-read, so passing proves the file watcher saw the change.
fn seen_by_the_watcher(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not see: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_config_linked_from_elsewhere_is_reloaded_when_its_target_is_edited() {
    let project = Project::new();
    let one = "version: 1\ndatabases:\n  app: { path: app.db, backup: { enabled: false } }\n";
    project.write("checkout/litewarden.yaml", one.as_bytes());
    std::os::unix::fs::symlink(
        project.join("checkout/litewarden.yaml"),
        project.join("jobs.yaml"),
    )
    .unwrap();
    let daemon = Daemon::start(&project);
    wait_until("the first database exists", || {
        project.join("app.db").exists()
    });
    let two = one.replace(
        "\n  app:",
        "\n  edited: { path: edited.db, backup: { enabled: false } }\n  app:",
    );
    std::fs::write(project.join("checkout/litewarden.yaml"), &two).unwrap();
    seen_by_the_watcher("an edit in place at the target", || {
        project.join("edited.db").exists()
    });
    project.write(
        "checkout/other.yaml",
        two.replace("edited", "retargeted").as_bytes(),
    );
    let link_tmp = project.join("jobs.yaml.tmp");
    std::os::unix::fs::symlink(project.join("checkout/other.yaml"), &link_tmp).unwrap();
    std::fs::rename(&link_tmp, project.join("jobs.yaml")).unwrap();
    seen_by_the_watcher("the link pointed elsewhere", || {
        project.join("retargeted.db").exists()
    });
    let three = two.replace("edited", "renamed_over");
    project.write("checkout/.other.yaml.swp", three.as_bytes());
    std::fs::rename(
        project.join("checkout/.other.yaml.swp"),
        project.join("checkout/other.yaml"),
    )
    .unwrap();
    seen_by_the_watcher("a save by rename at the new target", || {
        project.join("renamed_over.db").exists()
    });
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn a_page_size_change_killed_half_way_is_converged_back_to_wal_at_once() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, pragmas: { journal_mode: wal, page_size: 8192 }, backup: { enabled: false } }\n",
    );
    let db = project.join("app.db");
    crate::common::fill(&db, 200);
    let daemon = Daemon::start(&project);
    wait_until("the daemon is up", || {
        project
            .run(&["status"])
            .stdout
            .contains("daemon: running (pid")
    });
    let rewrite = crate::common::Holder::start(
        "import fcntl,sqlite3,sys\nlock=open(sys.argv[1]+'.migrate-lock','a')\nfcntl.flock(lock, fcntl.LOCK_EX)\nc=sqlite3.connect(sys.argv[1])\nc.execute('PRAGMA journal_mode=delete')\nc.close()\nprint('ready', flush=True)\nsys.stdin.read()",
        &db,
    );
    let plan = project.run(&["plan"]);
    assert!(
        plan.stdout.contains("~ app: journal_mode delete -> wal"),
        "{plan:?}"
    );
    rewrite.kill();
    seen_by_the_watcher("the interrupted rewrite converged back to WAL", || {
        crate::common::pragma::<String>(&db, "journal_mode") == "wal"
    });
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn status_of_a_killed_daemon_does_not_say_it_runs() {
    let project = Project::with_config(APP);
    let daemon = Daemon::start(&project);
    wait_until("the daemon is up", || {
        project
            .run(&["status"])
            .stdout
            .contains("daemon: running (pid")
    });
    daemon.signal("KILL");
    wait_until("status sees the daemon gone", || {
        let output = project.run(&["status"]);
        output.code == 0 && !output.stdout.contains("daemon: running")
    });
    let output = project.run(&["status"]);
    assert!(
        output.stdout.starts_with("daemon: not running"),
        "{output:?}"
    );
}

#[test]
fn a_huge_or_deeply_nested_config_is_one_error_not_a_crash() {
    let project = Project::new();
    std::fs::File::create(project.join("jobs.yaml"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let output = project.run(&["check"]);
    assert_fails_saying(
        &output,
        "jobs.yaml: cannot read the config file: 1073741824 bytes, more than the 67108864 accepted",
    );
    let mut nested = String::from("version: 1\ndatabases:\n");
    for depth in 0..3000 {
        nested.push_str(&format!("{}a:\n", "  ".repeat(depth + 1)));
    }
    project.write("jobs.yaml", nested.as_bytes());
    let output = project.run(&["check"]);
    assert_eq!(output.code, 1, "{output:?}");
    assert!(
        output
            .stderr
            .starts_with("jobs.yaml:66:129: nested more than 64 levels deep"),
        "{output:?}"
    );
}

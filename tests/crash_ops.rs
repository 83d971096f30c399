//! The crash harness for the operations besides backup and restore (those
//! are in `crash.rs`): `prune`, `migrate up` and `apply --allow-vacuum`
//! SIGKILLed at random points (`LITEWARDEN_CRASH_ROUNDS`, 10 in CI). After
//! the kills: no temp file, the catalog lists exactly the backup files,
//! every listed backup verifies in a second process, the database passes
//! `integrity_check` with every row a concurrent writer saw committed (its
//! ledger), the migration table matches the schema, and the next run
//! finishes the work.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{Project, count, file_names, fill, integrity_check_elsewhere, open};
use crate::crash::{Points, duration_of, listed_backups, rounds, spawn, temps};

/// A second process appending to table `ledger` as fast as it can commit
/// (retrying when busy); it prints each id after its commit.
struct Ledger {
    child: Child,
    stop: std::path::PathBuf,
}

impl Ledger {
    fn start(db: &Path) -> Self {
        let stop = db.with_extension("stop");
        let child = Command::new("python3")
            .args([
                "-c",
                "import os,sqlite3,sys,time\n\
                 c=sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)\n\
                 c.execute('CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY)')\n\
                 i=(c.execute('SELECT max(id) FROM ledger').fetchone()[0] or 0)+1\n\
                 while not os.path.exists(sys.argv[2]):\n\
                 \x20 try:\n\
                 \x20\x20 c.execute('INSERT INTO ledger (id) VALUES (?)', (i,))\n\
                 \x20\x20 print(i, flush=True); i+=1\n\
                 \x20 except sqlite3.OperationalError:\n\
                 \x20\x20 time.sleep(0.01)\n\
                 \x20 time.sleep(0.002)\n",
                &db.display().to_string(),
                &stop.display().to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is on every CI machine");
        Self { child, stop }
    }

    /// Stops the writer and returns the ids it saw committed.
    fn finish(mut self) -> Vec<i64> {
        std::fs::write(&self.stop, b"").unwrap();
        let stdout = self.child.stdout.take().unwrap();
        let ids = std::io::BufReader::new(stdout)
            .lines()
            .map(|line| line.unwrap().trim().parse().unwrap())
            .collect();
        assert!(
            self.child.wait().unwrap().success(),
            "the ledger writer failed"
        );
        ids
    }
}

fn assert_ledger_intact(db: &Path, committed: &[i64]) {
    assert!(!committed.is_empty(), "the writer committed nothing");
    let conn = open(db);
    let missing: Vec<i64> = committed
        .iter()
        .copied()
        .filter(|id| {
            conn.query_row("SELECT count(*) FROM ledger WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
                == 0
        })
        .collect();
    assert!(missing.is_empty(), "committed rows lost: {missing:?}");
}

/// No temp file anywhere; the catalog lists exactly the backup files, and
/// each verifies in another process.
fn assert_catalog_is_the_files(project: &Project) {
    for dir in [
        project.path().to_path_buf(),
        project.join("backups/app"),
        project.join(".litewarden"),
    ] {
        assert_eq!(temps(&dir), Vec::<String>::new(), "{}", dir.display());
    }
    let mut listed: Vec<String> = listed_backups(project)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, file_names(&project.join("backups/app")));
    for name in &listed {
        let path = project.join(&format!("backups/app/{name}"));
        let verify = project.run(&["verify", path.to_str().unwrap()]);
        assert_eq!(verify.code, 0, "{name}: {}", verify.stderr);
    }
}

/// Runs `args` `rounds()` times, each SIGKILLed at a random point of its
/// undisturbed duration (measured once after a first `before`), `before`
/// each; records how many kills landed.
fn kill_at_random_points(project: &Project, args: &[&str], mut before: impl FnMut()) {
    let mut points = Points::seeded();
    before();
    let span = duration_of(project, args);
    let mut killed = 0;
    for round in 0..rounds() {
        before();
        let stderr = project.join("round.stderr");
        let mut child = Command::new(crate::common::binary())
            .args(args)
            .current_dir(project.path())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(points.next(span));
        let _ = child.kill();
        let status = child.wait().unwrap();
        killed += usize::from(status.code().is_none());
        eprintln!("{args:?}, round {round}: {status}");
        assert_ne!(
            status.code(),
            Some(1),
            "{}",
            std::fs::read_to_string(&stderr).unwrap()
        );
    }
    record_crash(&args.join(" "), killed, span);
}

/// Records one operation's crash rounds for RELIABILITY.md.
pub(crate) fn record_crash(operation: &str, killed: usize, span: std::time::Duration) {
    crate::common::record(
        "crash",
        serde_json::json!({
            "operation": operation,
            "rounds": rounds(),
            "killed_mid_run": killed,
            "undisturbed_ms": span.as_millis() as u64,
        }),
    );
}

#[test]
fn prunes_killed_at_random_points_never_leave_a_listed_backup_without_its_file() {
    let keep_all = "version: 1\ndatabases:\n  app: { path: app.db, backup: { compress: none } }\n";
    let keep_two = keep_all.replace(
        "compress: none",
        "compress: none, retention: { keep_last: 2 }",
    );
    let project = Project::with_config(keep_all);
    fill(&project.join("app.db"), 500);
    let take = |n: usize| {
        project.write("jobs.yaml", keep_all.as_bytes());
        for _ in 0..n {
            let output = project.run(&["backup", "app"]);
            assert_eq!(output.code, 0, "{output:?}");
        }
        project.write("jobs.yaml", keep_two.as_bytes());
    };
    take(6);
    kill_at_random_points(&project, &["prune", "app"], || take(2));
    assert_catalog_is_the_files(&project);
    let output = project.run(&["prune", "app"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert_eq!(listed_backups(&project).len(), 2);
    assert_catalog_is_the_files(&project);
}

#[test]
fn migrations_killed_at_random_points_are_applied_whole_or_not_at_all() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, migrations: { dir: migrations, apply: manual }, backup: { compress: zstd } }\n",
    );
    let db = project.join("app.db");
    fill(&db, 2_000);
    for version in 1..=4 {
        project.write(
            &format!("migrations/{version:04}_step{version}.sql"),
            format!(
                "CREATE TABLE step{version} (id INTEGER PRIMARY KEY, body TEXT);\n\
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)\n\
                 INSERT INTO step{version} (body) SELECT hex(randomblob(32)) FROM n;\n"
            )
            .as_bytes(),
        );
        project.write(
            &format!("migrations/{version:04}_step{version}.down.sql"),
            format!("DROP TABLE step{version};\n").as_bytes(),
        );
    }
    let ledger = Ledger::start(&db);
    let span = duration_of(&project, &["migrate", "up", "app"]);
    let mut points = Points::seeded();
    let mut killed = 0;
    for round in 0..rounds() {
        let down = project.run(&["migrate", "down", "app", "--to", "0"]);
        assert_eq!(down.code, 0, "{down:?}");
        let mut child = spawn(&project, &["migrate", "up", "app"]);
        std::thread::sleep(points.next(span));
        let _ = child.kill();
        let status = child.wait().unwrap();
        killed += usize::from(status.code().is_none());
        eprintln!("migrate up, round {round}: {status}");
        assert_migrations_match_the_schema(&db);
    }
    record_crash("migrate up (with a concurrent writer)", killed, span);
    let output = project.run(&["migrate", "up", "app"]);
    assert_eq!(output.code, 0, "{output:?}");
    let committed = ledger.finish();
    assert_eq!(integrity_check_elsewhere(&db), "ok");
    assert_migrations_match_the_schema(&db);
    for version in 1..=4 {
        assert_eq!(count(&db, &format!("step{version}")), 40_000);
    }
    assert_eq!(count(&db, "pages"), 2_000);
    assert_ledger_intact(&db, &committed);
    assert_catalog_is_the_files(&project);
}

/// Every recorded migration's table exists whole; no other step table
/// exists.
fn assert_migrations_match_the_schema(db: &Path) {
    let conn = open(db);
    let applied: Vec<i64> = match conn.prepare("SELECT version FROM _litewarden_migrations") {
        Ok(mut statement) => statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap(),
        Err(_) => Vec::new(),
    };
    for version in 1..=4 {
        let exists: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                [format!("step{version}")],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            exists == 1,
            applied.contains(&version),
            "version {version}: table exists {exists}, applied {applied:?}"
        );
        if exists == 1 {
            assert_eq!(count(db, &format!("step{version}")), 40_000);
        }
    }
}

#[test]
fn page_size_rewrites_killed_at_random_points_keep_every_row_and_converge_next_time() {
    let config = |page_size: u32| {
        format!(
            "version: 1\ndatabases:\n  app: {{ path: app.db, pragmas: {{ journal_mode: wal, page_size: {page_size} }}, backup: {{ compress: none }} }}\n"
        )
    };
    let project = Project::with_config(&config(4096));
    let db = project.join("app.db");
    fill(&db, 20_000);
    let mut page_size = 4096;
    kill_at_random_points(&project, &["apply", "--allow-vacuum"], || {
        page_size = if page_size == 4096 { 8192 } else { 4096 };
        project.write("jobs.yaml", config(page_size).as_bytes());
    });
    for _ in 0..2 {
        assert_eq!(integrity_check_elsewhere(&db), "ok");
        assert_eq!(count(&db, "pages"), 20_000);
        let output = project.run(&["apply", "--allow-vacuum"]);
        assert_eq!(output.code, 0, "{output:?}");
        assert_eq!(
            crate::common::pragma::<i64>(&db, "page_size"),
            i64::from(page_size)
        );
        assert_eq!(crate::common::pragma::<String>(&db, "journal_mode"), "wal");
        let plan = project.run(&["plan"]);
        assert_eq!(plan.code, 0, "{plan:?}");
        page_size = if page_size == 4096 { 8192 } else { 4096 };
        project.write("jobs.yaml", config(page_size).as_bytes());
    }
    for dir in [project.path().to_path_buf(), project.join(".litewarden")] {
        assert_eq!(temps(&dir), Vec::<String>::new(), "{}", dir.display());
    }
}

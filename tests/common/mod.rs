//! Helpers for tests that run the real `litewarden` binary in a fresh
//! temporary directory.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub mod s3;

/// Environment variables the shipped jobs.yaml reads; cleared so the
/// developer's own environment never leaks into a test.
const SEED_VARIABLES: &[&str] = &[
    "DATABASE1_PATH",
    "DATABASE2_PATH",
    "DATABASE3_PATH",
    "BACKUP_DIR",
    "ENABLE_AUTO_BACKUP",
    "BACKUP_RETENTION_DAYS",
    "DB_UPDATE_INTERVAL",
    "SMTP_HOST",
    "SMTP_PASSWORD",
    "LITEWARDEN_CONFIG",
    "RUST_LOG",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
];

/// A temporary directory holding a `jobs.yaml`.
pub struct Project {
    dir: tempfile::TempDir,
}

/// What a finished command printed.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Project {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a temp dir"),
        }
    }

    /// A project whose jobs.yaml holds `config`.
    pub fn with_config(config: &str) -> Self {
        let project = Self::new();
        project.write("jobs.yaml", config.as_bytes());
        project
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, bytes: &[u8]) {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(path, bytes).expect("write a test file");
    }

    /// The binary, run in the project directory with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("litewarden").expect("the litewarden binary");
        command.current_dir(self.path()).args(args);
        for name in SEED_VARIABLES {
            command.env_remove(name);
        }
        command.env("RUST_LOG", "warn");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().expect("run litewarden");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Every path below the project directory, relative and sorted.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let path = entry.expect("dir entry").path();
                out.push(
                    path.strip_prefix(self.path())
                        .unwrap()
                        .display()
                        .to_string(),
                );
                if path.is_dir() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for `listen:`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Opens a database in the test process (not the binary that wrote it).
pub fn open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open a database")
}

pub fn pragma<T: rusqlite::types::FromSql>(path: &Path, name: &str) -> T {
    open(path)
        .pragma_query_value(None, name, |row| row.get(0))
        .expect("read a pragma")
}

/// Path of the litewarden binary under test.
pub fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("litewarden")
}

/// Creates `path` as a WAL database holding `rows` crawler-like rows in
/// table `pages` (ids 1..=rows).
pub fn fill(path: &Path, rows: u32) {
    let mut conn = open(path);
    conn.execute_batch(
        "PRAGMA journal_mode=wal;
         CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, url TEXT NOT NULL, title TEXT, body TEXT, fetched_at TEXT);",
    )
    .expect("create pages");
    let tx = conn.transaction().expect("begin");
    {
        let mut insert = tx
            .prepare("INSERT INTO pages (id, url, title, body, fetched_at) VALUES (?1, ?2, ?3, ?4, '2026-11-29T00:00:00Z')")
            .expect("prepare");
        for id in 1..=rows {
            insert
                .execute(rusqlite::params![
                    id,
                    format!("https://example.com/{id}"),
                    format!("page {id}"),
                    "lorem ipsum ".repeat(20)
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// `SELECT count(*)` of a table.
pub fn count(path: &Path, table: &str) -> i64 {
    open(path)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count rows")
}

/// `SELECT count(*)` of a table, for a wait that polls: 0 while the file or
/// the table does not exist yet (a daemon creating its state database) or
/// the read fails for a moment.
pub fn polled_count(path: &Path, table: &str) -> i64 {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|conn| conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)))
        .unwrap_or(0)
}

/// Backup runs the state database of `project` records as successful (0
/// before it exists).
pub fn successful_backup_runs(project: &Project) -> i64 {
    backup_runs(project, None, "success", None)
}

/// Backup runs of `database` (every database with `None`) that ended with
/// `outcome` (and, when given, that failure kind), 0 before the state
/// database exists.
pub fn backup_runs(
    project: &Project,
    database: Option<&str>,
    outcome: &str,
    failure: Option<&str>,
) -> i64 {
    let path = project.join(".litewarden/state.db");
    if !path.exists() {
        return 0;
    }
    open(&path)
        .query_row(
            "SELECT count(*) FROM job_runs WHERE job = 'backup' AND (?1 IS NULL OR database = ?1) AND outcome = ?2 AND (?3 IS NULL OR failure = ?3)",
            rusqlite::params![database, outcome, failure],
            |r| r.get(0),
        )
        .unwrap_or(0)
}

/// `sqlite3 .dump`-style dump of a database, made by Python's sqlite3
/// module in a separate process.
pub fn dump(path: &Path) -> String {
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys\nfor line in sqlite3.connect(sys.argv[1]).iterdump(): print(line)",
            &path.display().to_string(),
        ])
        .output()
        .expect("python3 is needed for dumps (it is on every CI machine)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 dump")
}

/// `PRAGMA integrity_check` run by Python's sqlite3 in a separate process.
pub fn integrity_check_elsewhere(path: &Path) -> String {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys\nprint(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])", &path.display().to_string()])
        .output()
        .expect("python3 is needed (it is on every CI machine)");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
        + &String::from_utf8_lossy(&output.stderr)
}

/// The names in `dir` but the backups' `.json` manifests (none when it
/// does not exist).
pub fn file_names(dir: &Path) -> Vec<String> {
    all_names(dir)
        .into_iter()
        .filter(|name| !name.ends_with(".json"))
        .collect()
}

/// Every name in `dir`, sorted (none when it does not exist), but the lock
/// file that serialises backups.
pub fn all_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name: &String| name != ".litewarden-backup.lock")
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// A project holding the shipped `jobs.yaml` and its migrations.
pub fn shipped() -> Project {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = Project::new();
    project.write("jobs.yaml", &std::fs::read(root.join("jobs.yaml")).unwrap());
    for dir in ["migrations/website_crawler", "migrations/analytics"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let entry = entry.unwrap();
            project.write(
                &format!("{dir}/{}", entry.file_name().to_string_lossy()),
                &std::fs::read(entry.path()).unwrap(),
            );
        }
    }
    project
}

/// Appends `figures` as one JSON line, tagged `kind`, to
/// `$LITEWARDEN_RELIABILITY_OUT/records.jsonl` when that variable is set:
/// `scripts/reliability.py` turns these records into RELIABILITY.md.
pub fn record(kind: &str, figures: serde_json::Value) {
    use std::io::Write;
    let Some(dir) = std::env::var_os("LITEWARDEN_RELIABILITY_OUT") else {
        return;
    };
    let line = serde_json::json!({ "kind": kind, "figures": figures }).to_string() + "\n";
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&dir).join("records.jsonl"))
        .expect("open the reliability records");
    file.write_all(line.as_bytes())
        .expect("write a reliability record");
}

/// A Python script that holds an EXCLUSIVE transaction on the database in
/// `sys.argv[1]` (inserting into its table `t`) until its stdin closes.
const EXCLUSIVE_WRITER: &str = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nc.execute('INSERT INTO t VALUES (2)')\nprint('ready', flush=True)\nsys.stdin.read()\nc.execute('COMMIT')";

/// A second process (Python) holding something on a database until
/// [`Holder::release`].
pub struct Holder {
    child: std::process::Child,
}

impl Holder {
    /// Runs `script` on `db` and waits until it prints `ready`.
    pub fn start(script: &str, db: &Path) -> Self {
        Self {
            child: python_ready(script, &[&db.display().to_string()]),
        }
    }

    /// Makes `db` a rollback-journal database with a table `t` holding one
    /// row, then holds it EXCLUSIVE from another process: every read of it
    /// waits (up to its busy_timeout) until [`Holder::release`].
    pub fn exclusive(db: &Path) -> Self {
        open(db)
            .execute_batch(
                "PRAGMA journal_mode=delete; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        Self::lock_exclusive(db)
    }

    /// Holds the existing database `db` (with a table `t`) EXCLUSIVE from
    /// another process until [`Holder::release`].
    pub fn lock_exclusive(db: &Path) -> Self {
        Self::start(EXCLUSIVE_WRITER, db)
    }

    /// Lets the holder finish what it holds and waits for it.
    pub fn release(mut self) {
        drop(self.child.stdin.take());
        assert!(self.child.wait().expect("wait for the holder").success());
    }

    /// Kills the holder (its locks go with it).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `python3 -c script args...` with piped stdin and stdout and
/// waits for the first line it prints, which must be `ready`.
pub fn python_ready(script: &str, args: &[&str]) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is on every CI machine");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the script's first line");
    assert_eq!(line.trim(), "ready", "the script did not start");
    child
}

/// A tmpfs mounted at a directory, unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one with `options` (`ro`, `size=2m`) at `dir`; `None` where
    /// this user may not mount (never under CI, which runs as root).
    pub fn mount(dir: &Path, options: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            mounted || std::env::var_os("CI").is_none(),
            "CI runs as root and must be able to mount a tmpfs"
        );
        mounted.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

//! The proof of issue #4: backups of a database that a separate process
//! writes to without pause hold whole transactions only.
//!
//! The writer (Python's sqlite3, its own SQLite build and process) commits
//! transactions of exactly 50 rows with increasing ids, pausing 2 ms
//! between them so the database stays a few MiB in a debug build. Each backup, opened
//! here (neither the writer nor the process that made it), must pass
//! `integrity_check`, hold a multiple of 50 writer rows with every id up to
//! the highest, and lie between the row counts seen before and after it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Project, open};

const WRITER: &str = r#"
import os, sqlite3, sys, time
path, mode, stop = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(path, timeout=30, isolation_level=None)
c.execute("pragma journal_mode=wal")
n = c.execute("select coalesce(max(id), 0) from w").fetchone()[0]
txns = 0
while not os.path.exists(stop):
    c.execute("begin immediate")
    for _ in range(50):
        n += 1
        c.execute("insert into w values (?, ?, ?)", (n, n // 50, "x" * 100))
    c.execute("commit")
    txns += 1
    time.sleep(0.002)
    if mode == "checkpoint" and txns % 5 == 0:
        c.execute("pragma wal_checkpoint(passive)")
print(txns)
"#;

struct Writer {
    child: Child,
    stop: PathBuf,
}

impl Writer {
    fn start(project: &Project, mode: &str) -> Self {
        let script = project.join("writer.py");
        std::fs::write(&script, WRITER).unwrap();
        let stop = project.join(&format!("stop-{mode}"));
        let child = Command::new("python3")
            .arg(&script)
            .arg(project.join("app.db"))
            .arg(mode)
            .arg(&stop)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for the writer process (it is on every CI machine)");
        Self { child, stop }
    }

    fn stop(mut self) -> u64 {
        std::fs::write(&self.stop, b"").unwrap();
        let output = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        assert!(output.status.success(), "writer failed");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap()
    }
}

fn writer_rows(path: &Path) -> i64 {
    let conn = open(path);
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.query_row("SELECT count(*) FROM w", [], |r| r.get(0))
        .unwrap()
}

fn wait_for_rows(path: &Path, above: i64) {
    let started = Instant::now();
    while writer_rows(path) <= above {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the writer made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// (config name, method, compression, verify): the snapshot method is run
/// both into a file (kernel copy, then page patching) and streamed into
/// zstd, the latter also with the default `verify: quick` (checked in the
/// copy's own read transaction, with no decoded copy).
const METHODS: [(&str, &str, &str, &str); 5] = [
    ("snapshot", "snapshot", "none", "full"),
    ("snapshot-zstd", "snapshot", "zstd", "full"),
    ("snapshot-zstd-quick", "snapshot", "zstd", "quick"),
    ("api", "api", "none", "full"),
    ("vacuum", "vacuum", "none", "full"),
];

#[test]
fn backups_under_a_steady_writer_hold_whole_transactions_for_every_method() {
    let project = Project::with_config(
        "version: 1\ndatabases:\n  app: { path: app.db, pragmas: { journal_mode: wal }, backup: { compress: none, verify: full } }\n",
    );
    let app = project.join("app.db");
    {
        let conn = open(&app);
        conn.execute_batch(
            "PRAGMA journal_mode=wal;
             CREATE TABLE w (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, payload TEXT NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
             INSERT INTO w SELECT i, i / 50, printf('%.100c', 'x') FROM n;",
        )
        .unwrap();
    }
    for (name, method, compress, verify) in METHODS {
        let config = format!(
            "version: 1\ndatabases:\n  app: {{ path: app.db, pragmas: {{ journal_mode: wal }}, backup: {{ method: {method}, compress: {compress}, verify: {verify} }} }}\n"
        );
        project.write(&format!("{name}.yaml"), config.as_bytes());
    }
    let mut overlapped = 0;
    for mode in ["plain", "checkpoint"] {
        let writer = Writer::start(&project, mode);
        for (method, _, compress, _) in METHODS {
            for round in 0..2 {
                let before = writer_rows(&app);
                wait_for_rows(&app, before);
                let output =
                    project.run(&["-c", &format!("{method}.yaml"), "backup", "app", "--json"]);
                let after = writer_rows(&app);
                assert_eq!(output.code, 0, "{mode}/{method}/{round}: {output:?}");
                let json: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
                let mut backup = PathBuf::from(json["backups"][0]["path"].as_str().unwrap());
                if compress == "zstd" {
                    let plain = project.join(&format!("{mode}-{method}-{round}.db"));
                    let mut out = std::fs::File::create(&plain).unwrap();
                    zstd::stream::copy_decode(std::fs::File::open(&backup).unwrap(), &mut out)
                        .unwrap();
                    backup = plain;
                }
                let copy = open(&backup);
                let check: String = copy
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(check, "ok", "{mode}/{method}/{round}");
                let (rows, max_id): (i64, i64) = copy
                    .query_row("SELECT count(*), max(id) FROM w", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .unwrap();
                assert_eq!(
                    rows % 50,
                    0,
                    "{mode}/{method}/{round}: {rows} rows is not whole transactions"
                );
                assert_eq!(max_id, rows, "{mode}/{method}/{round}: ids have a gap");
                assert!(
                    before <= rows && rows <= after,
                    "{mode}/{method}/{round}: {before} <= {rows} <= {after}"
                );
                if after > before {
                    overlapped += 1;
                }
            }
        }
        let transactions = writer.stop();
        assert!(transactions > 0);
    }
    assert!(
        overlapped >= 6,
        "the writer committed during only {overlapped} of 20 backups"
    );
}

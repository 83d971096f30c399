//! Benchmark for issue #11: from a failing backup to its firing mail.
//!
//! A real SMTP server (mailin-embedded) on 127.0.0.1 in this process, the
//! real daemon with a backup that fails (a regular file stands where the
//! backup directory goes), a `job_failed` rule with `for: 0s` and the
//! default `group_wait` (30 s). Reports the time from the failed run's end
//! (as recorded in the state database) to the mail's acceptance by the
//! server; target <= group_wait + 1 s. `LITEWARDEN_BENCH_ROUNDS` (default 1)
//! repeats it on fresh directories.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mailin_embedded::{Handler, Response, Server, SslConfig, response};

#[derive(Clone, Default)]
struct Arrivals {
    at: Arc<Mutex<Vec<DateTime<Utc>>>>,
}

impl Handler for Arrivals {
    fn data_end(&mut self) -> Response {
        self.at.lock().expect("arrivals").push(Utc::now());
        response::OK
    }
}

fn main() {
    let rounds = std::env::var("LITEWARDEN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for round in 0..rounds {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let arrivals = Arrivals::default();
        let at = Arc::clone(&arrivals.at);
        let mut server = Server::new(arrivals);
        server
            .with_name("localhost")
            .with_ssl(SslConfig::None)
            .expect("no tls")
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("jobs.yaml"),
            format!(
                "version: 1\ndefaults:\n  health: {{ enabled: false }}\n  optimize: {{ enabled: false }}\ndatabases:\n  app: {{ path: app.db, backup: {{ every: 1h, compress: none }} }}\nsmtp: {{ host: 127.0.0.1, port: {port}, tls: none, from: litewarden@example.com }}\nalerts:\n  - {{ name: backup-failed, when: job_failed, jobs: [backup], to: [ops@example.com] }}\n"
            ),
        )
        .expect("jobs.yaml");
        std::fs::create_dir_all(dir.path().join("backups")).expect("backups");
        std::fs::write(dir.path().join("backups/app"), b"not a directory").expect("blocker");
        rusqlite::Connection::open(dir.path().join("app.db"))
            .and_then(|c| c.execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x);"))
            .expect("database");
        let mut daemon = Command::new(env!("CARGO_BIN_EXE_litewarden"))
            .arg("run")
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the daemon");
        let deadline = Instant::now() + Duration::from_secs(120);
        while at.lock().expect("arrivals").is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = daemon.kill();
        let _ = daemon.wait();
        let failed: String = rusqlite::Connection::open(dir.path().join(".litewarden/state.db"))
            .and_then(|c| {
                c.query_row(
                    "SELECT finished_at FROM job_runs WHERE job = 'backup' AND outcome = 'failed' ORDER BY id LIMIT 1",
                    [],
                    |row| row.get(0),
                )
            })
            .expect("the failed backup run");
        let failed = DateTime::parse_from_rfc3339(&failed)
            .expect("time")
            .with_timezone(&Utc);
        match at.lock().expect("arrivals").first() {
            Some(arrived) => println!(
                "round {}: failing backup -> firing mail accepted: {:.2} s (for: 0s, group_wait 30 s; target <= 31 s)",
                round + 1,
                (*arrived - failed).num_milliseconds() as f64 / 1000.0
            ),
            None => println!("round {}: no mail within 120 s", round + 1),
        }
    }
}

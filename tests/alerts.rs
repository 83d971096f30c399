//! Email alerts and the heartbeat (issue #11) against a real SMTP server
//! (mailin-embedded) and a real HTTP listener, both on 127.0.0.1 in this
//! process, with the real daemon.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server, SslConfig, response};

use crate::common::{Project, open};
use crate::daemon::{Daemon, wait_until};

/// One mail as the server received it.
#[derive(Debug, Clone)]
struct Received {
    to: Vec<String>,
    text: String,
}

impl Received {
    /// The Subject header, unfolded (long headers continue on lines that
    /// start with white space).
    fn subject(&self) -> String {
        let mut lines = self
            .text
            .lines()
            .skip_while(|l| !l.starts_with("Subject: "));
        let mut subject = lines
            .next()
            .and_then(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_string();
        for continued in lines.take_while(|l| l.starts_with([' ', '\t'])) {
            subject.push_str(continued.trim_start_matches(['\t']));
        }
        subject
    }
}

#[derive(Clone, Default)]
struct Collector {
    mails: Arc<Mutex<Vec<Received>>>,
    to: Vec<String>,
    buffer: Vec<u8>,
}

impl Handler for Collector {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.buffer.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.buffer.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let text = String::from_utf8_lossy(&self.buffer).into_owned();
        self.mails.lock().unwrap().push(Received {
            to: self.to.clone(),
            text,
        });
        response::OK
    }
}

/// An SMTP server on 127.0.0.1 for the rest of the test process.
struct Smtp {
    port: u16,
    mails: Arc<Mutex<Vec<Received>>>,
}

impl Smtp {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::on(listener)
    }

    fn on(listener: TcpListener) -> Self {
        let port = listener.local_addr().unwrap().port();
        let collector = Collector::default();
        let mails = Arc::clone(&collector.mails);
        let mut server = Server::new(collector);
        server
            .with_name("localhost")
            .with_ssl(SslConfig::None)
            .unwrap()
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Smtp { port, mails }
    }

    fn mails(&self) -> Vec<Received> {
        self.mails.lock().unwrap().clone()
    }

    fn subjects(&self) -> Vec<String> {
        self.mails().iter().map(Received::subject).collect()
    }
}

fn config(port: u16, backup_dir: &str, extra_db: &str, rule: &str) -> String {
    format!(
        "version: 1
settings: {{ group_wait: 1s, backup_dir: {backup_dir} }}
defaults:
  health: {{ enabled: false }}
  optimize: {{ enabled: false }}
  backup: {{ every: 1s, compress: none, retention: {{ keep_last: 2 }} }}
databases:
  app: {{ path: app.db }}
{extra_db}smtp: {{ host: 127.0.0.1, port: {port}, tls: none, from: litewarden@example.com }}
alerts:
  - {{ name: backup-failed, when: job_failed, jobs: [backup], to: [ops@example.com], repeat: 1h, send_resolved: true{rule} }}
"
    )
}

fn failed_backups(project: &Project) -> i64 {
    open(&project.join(".litewarden/state.db"))
        .query_row(
            "SELECT count(*) FROM job_runs WHERE job = 'backup' AND outcome = 'failed'",
            [],
            |row| row.get(0),
        )
        .unwrap_or(0)
}

fn log(project: &Project) -> String {
    std::fs::read_to_string(project.join("daemon.log")).unwrap_or_default()
}

/// A project whose database exists and whose backups fail: a regular file
/// stands where each database's backup directory goes.
fn failing(text: &str, databases: &[&str]) -> Project {
    let project = Project::with_config(text);
    for db in databases {
        open(&project.join(&format!("{db}.db")))
            .execute_batch("PRAGMA journal_mode=wal; CREATE TABLE t(x);")
            .unwrap();
        project.write(
            &format!("backups/{db}"),
            b"a regular file where the backup directory goes",
        );
    }
    project
}

/// Waits (up to 60 s: a retried delivery may be 20 s of backoff away) for
/// `count` mails, showing the daemon's log if they do not come.
fn wait_for_mails(smtp: &Smtp, project: &Project, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while smtp.mails().len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{count} mail(s) did not arrive: {:?}\n{}",
            smtp.subjects(),
            log(project)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_failing_backup_mails_once_stays_quiet_within_repeat_and_mails_when_fixed() {
    let smtp = Smtp::start();
    let project = failing(&config(smtp.port, "backups", "", ""), &["app"]);
    let daemon = Daemon::start(&project);
    wait_for_mails(&smtp, &project, 1);
    let first = &smtp.mails()[0];
    assert_eq!(first.subject(), "[litewarden FIRING] app: backup failed");
    assert_eq!(first.to, ["ops@example.com"]);
    assert!(
        first.text.contains("litewarden backups app"),
        "{}",
        first.text
    );
    let failed = failed_backups(&project);
    wait_until("three more backups failed", || {
        failed_backups(&project) >= failed + 3
    });
    assert_eq!(
        smtp.mails().len(),
        1,
        "nothing more within repeat: {:?}",
        smtp.subjects()
    );

    project.write(
        "jobs.yaml",
        config(smtp.port, "fixed-backups", "", "").as_bytes(),
    );
    wait_for_mails(&smtp, &project, 2);
    assert_eq!(
        smtp.subjects()[1],
        "[litewarden RESOLVED] app: backup failed"
    );
    assert_eq!(daemon.stop(), 0);

    std::fs::remove_file(project.join("daemon.log")).unwrap();
    let backups = || crate::common::successful_backup_runs(&project);
    let before_restart = backups();
    let daemon = Daemon::start(&project);
    wait_until("the restarted daemon took two backups", || {
        backups() >= before_restart + 2
    });
    let status = project.run(&["alerts", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(json["alerts"].as_array().unwrap().is_empty(), "{json}");
    assert_eq!(daemon.stop(), 0);
    assert_eq!(
        smtp.mails().len(),
        2,
        "nothing re-sent after a restart: {:?}",
        smtp.subjects()
    );
}

#[test]
fn two_databases_failing_together_get_one_mail() {
    let smtp = Smtp::start();
    let text = config(smtp.port, "backups", "  other: { path: other.db }\n", "")
        .replace("group_wait: 1s", "group_wait: 3s");
    let project = failing(&text, &["app", "other"]);
    let daemon = Daemon::start(&project);
    wait_for_mails(&smtp, &project, 1);
    let subject = smtp.mails()[0].subject();
    assert!(
        subject.starts_with("[litewarden] 2 alerts: ")
            && subject.contains("FIRING: app: backup failed")
            && subject.contains("FIRING: other: backup failed"),
        "{subject}"
    );
    assert_eq!(daemon.stop(), 0);
    assert_eq!(smtp.mails().len(), 1);
}

#[test]
fn a_removed_database_file_sends_database_missing() {
    let smtp = Smtp::start();
    let text = config(smtp.port, "backups", "", "").replace(
        "alerts:\n",
        "alerts:\n  - { name: gone, when: database_missing, to: [ops@example.com] }\n",
    );
    let project = Project::with_config(&text);
    let daemon = Daemon::start(&project);
    wait_until("a backup is taken", || {
        std::fs::read_dir(project.join("backups/app")).is_ok_and(|d| d.count() > 0)
    });
    std::fs::remove_file(project.join("app.db")).unwrap();
    wait_until("the database_missing mail arrives", || {
        smtp.subjects()
            .iter()
            .any(|s| s.contains("app: database file missing"))
    });
    assert_eq!(daemon.stop(), 0);
}

#[test]
fn smtp_down_or_refusing_never_delays_jobs_and_the_mail_goes_out_later() {
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = reserved.local_addr().unwrap().port();
    drop(reserved);
    let secret = "s3cr3t-smtp-pw-7f1c";
    let refusing = config(port, "backups", "", "").replace(
        "tls: none,",
        "tls: none, username: alerts, password_env: SMTP_PASSWORD,",
    );
    let project = failing(&refusing, &["app"]);
    let log_file = std::fs::File::create(project.join("daemon.log")).unwrap();
    let child = std::process::Command::new(crate::common::binary())
        .arg("run")
        .current_dir(project.path())
        .env("RUST_LOG", "litewarden=info")
        .env("SMTP_PASSWORD", secret)
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let daemon = Daemon::from_child(child);
    wait_until("a delivery to the dead server failed", || {
        log(&project).contains("alert mail not delivered; retrying")
    });
    let failed = failed_backups(&project);
    wait_until("backups keep running on time meanwhile", || {
        failed_backups(&project) >= failed + 3
    });
    let smtp = Smtp::on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    wait_until("the refused login is retried and logged", || {
        log(&project)
            .matches("alert mail not delivered; retrying")
            .count()
            >= 2
    });
    project.write("jobs.yaml", config(port, "backups", "", "").as_bytes());
    wait_for_mails(&smtp, &project, 1);
    assert_eq!(smtp.subjects()[0], "[litewarden FIRING] app: backup failed");
    let status = project.run(&["status", "--json"]);
    let alerts = project.run(&["alerts", "--json"]);
    let check = project.run(&["check", "--json"]);
    assert_eq!(daemon.stop(), 0);
    for (what, text) in [
        ("daemon log", log(&project)),
        ("status", status.stdout + &status.stderr),
        ("alerts", alerts.stdout + &alerts.stderr),
        ("check", check.stdout + &check.stderr),
    ] {
        assert!(!text.contains(secret), "the SMTP password is in the {what}");
    }
    for mail in smtp.mails() {
        assert!(!mail.text.contains(secret));
    }
}

#[test]
fn alert_test_delivers_one_mail() {
    let smtp = Smtp::start();
    let project = Project::with_config(&config(smtp.port, "backups", "", ""));
    let output = project.run(&["alert", "test", "--to", "me@example.com"]);
    assert_eq!(output.code, 0, "{output:?}");
    assert!(output.stdout.contains("accepted"), "{output:?}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["me@example.com"]);
    assert_eq!(mails[0].subject(), "[litewarden TEST] alert mail works");
}

/// An HTTP listener on 127.0.0.1 counting the requests it answers.
fn heartbeat_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pings = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&pings);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        }
    });
    (port, pings)
}

fn health_runs(project: &Project) -> i64 {
    open(&project.join(".litewarden/state.db"))
        .query_row(
            "SELECT count(*) FROM job_runs WHERE job = 'health'",
            [],
            |row| row.get(0),
        )
        .unwrap_or(0)
}

#[test]
fn the_heartbeat_is_pinged_only_while_every_database_is_healthy() {
    let (port, pings) = heartbeat_server();
    let text = |min_free: &str| {
        format!(
            "version: 1\nsettings: {{ heartbeat_url: \"http://127.0.0.1:{port}/ping\" }}\ndefaults:\n  health: {{ every: 1s, min_free_disk: {min_free} }}\n  optimize: {{ enabled: false }}\ndatabases:\n  app: {{ path: app.db, backup: {{ every: 1h, compress: none }} }}\n"
        )
    };
    let project = Project::with_config(&text("1KiB"));
    let daemon = Daemon::start(&project);
    wait_until("pings arrive while healthy", || {
        pings.load(Ordering::SeqCst) >= 2
    });
    project.write("jobs.yaml", text("1000000TiB").as_bytes());
    wait_until("the database is unhealthy", || {
        project
            .run(&["status"])
            .stdout
            .contains("health: app: unhealthy")
    });
    let (before, runs) = (pings.load(Ordering::SeqCst), health_runs(&project));
    wait_until("three more health runs", || {
        health_runs(&project) >= runs + 3
    });
    assert!(
        pings.load(Ordering::SeqCst) <= before + 1,
        "no pings while unhealthy (one may have been in flight)"
    );
    assert_eq!(daemon.stop(), 0);
}

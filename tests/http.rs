//! The daemon's HTTP listener under hostile clients (issue #20): idle
//! connections, a client that pipelines and never reads, an endless request
//! line, and running out of descriptors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Project, binary, free_port};
use crate::daemon::{Daemon, http_get, wait_until};

fn project(port: u16) -> Project {
    Project::with_config(&format!(
        "version: 1\nsettings: {{ listen: \"127.0.0.1:{port}\" }}\ndatabases:\n  app: {{ path: app.db, backup: {{ every: 1s, compress: none, retention: {{ keep_last: 2 }} }} }}\n"
    ))
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

fn answered_within(port: u16, limit: Duration) -> bool {
    let started = Instant::now();
    http_get(port, "/healthz").starts_with("HTTP/1.1 ") && started.elapsed() < limit
}

#[test]
fn idle_connections_hold_a_bounded_number_of_descriptors_and_backups_go_on() {
    let port = free_port();
    let project = project(port);
    let daemon = Daemon::start(&project);
    wait_until("the listener answers", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1")
    });
    let pid = daemon.pid();
    let before = descriptors(pid);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let idle: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_millis(50)).ok())
        .collect();
    assert!(idle.len() >= 100, "the kernel took the connections");
    let during = descriptors(pid);
    assert!(
        during <= before + 2 + 64 + 4,
        "{during} descriptors with {} idle clients, {before} before",
        idle.len()
    );
    let backups = || {
        crate::common::polled_count(
            &project.join(".litewarden/state.db"),
            "job_runs WHERE job = 'backup' AND outcome = 'success'",
        )
    };
    let had = backups();
    wait_until("backups still succeed", || backups() >= had + 2);
    drop(idle);
    wait_until("the listener answers again", || {
        answered_within(port, Duration::from_secs(5))
    });
}

#[test]
fn a_client_that_pipelines_and_never_reads_does_not_block_healthz() {
    let port = free_port();
    let project = project(port);
    let _daemon = Daemon::start(&project);
    wait_until("the listener answers", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1")
    });
    let mut greedy = TcpStream::connect(("127.0.0.1", port)).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let _ = greedy.write_all(request.as_bytes());
    for _ in 0..5 {
        assert!(
            answered_within(port, Duration::from_secs(2)),
            "/healthz waited behind the greedy client"
        );
    }
    drop(greedy);
}

#[test]
fn an_endless_request_line_is_refused_after_a_bounded_read() {
    let port = free_port();
    let project = project(port);
    let _daemon = Daemon::start(&project);
    wait_until("the listener answers", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1")
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let _ = client.write_all(b"GET /");
    for _ in 0..16 {
        if client.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    assert!(answered_within(port, Duration::from_secs(2)));
}

#[test]
fn running_out_of_descriptors_pauses_accepting_and_never_ends_it() {
    let port = free_port();
    let project = project(port);
    let log = std::fs::File::create(project.join("daemon.log")).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n 48 && exec '{}' run", binary().display()))
        .current_dir(project.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _daemon = Daemon::from_child(child);
    wait_until("the listener answers", || {
        http_get(port, "/healthz").starts_with("HTTP/1.1")
    });
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_millis(50)).ok())
        .collect();
    assert!(!flood.is_empty());
    drop(flood);
    wait_until("the listener answers after the flood", || {
        answered_within(port, Duration::from_secs(5))
    });
}

/// The JSON body of `/status`, without the heartbeat (it moves every second).
fn without_heartbeat(mut document: serde_json::Value) -> serde_json::Value {
    if let Some(daemon) = document["daemon"].as_object_mut() {
        daemon.remove("heartbeat_at");
    }
    document
}

#[test]
fn status_json_and_the_status_endpoint_are_one_document() {
    let port = free_port();
    let project = Project::with_config(&format!(
        "version: 1\nsettings: {{ listen: \"127.0.0.1:{port}\" }}\ndefaults: {{ health: {{ enabled: false }}, optimize: {{ enabled: false }} }}\ndatabases:\n  app: {{ path: app.db, backup: {{ every: 1h, compress: none }} }}\n"
    ));
    let daemon = Daemon::start(&project);
    let status = || {
        let output = project.run(&["status", "--json"]);
        assert_eq!(output.code, 0, "{output:?}");
        serde_json::from_str::<serde_json::Value>(&output.stdout).unwrap()
    };
    wait_until("the first backup is recorded", || {
        status()["runs"]
            .as_array()
            .is_some_and(|runs| runs.iter().any(|r| r["job"] == "backup"))
    });
    assert_eq!(project.run(&["pause", "app"]).code, 0);
    let endpoint = http_get(port, "/status");
    let body = endpoint.split("\r\n\r\n").nth(1).unwrap_or_default();
    let served: serde_json::Value = serde_json::from_str(body).unwrap();
    let printed = status();
    assert_eq!(
        served["holds"].as_array().map(Vec::len),
        Some(1),
        "the endpoint shows the operator's hold: {served}"
    );
    assert_eq!(served["daemon_running"], true);
    assert_eq!(without_heartbeat(served), without_heartbeat(printed));
    assert_eq!(daemon.stop(), 0);
}

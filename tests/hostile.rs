//! Issue #14: hostile input, broken state and secrets. Each test reproduces
//! one defect an adversarial pass found, through the real binary.

use crate::common::Project;
use crate::daemon::{Daemon, http_get, wait_until};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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

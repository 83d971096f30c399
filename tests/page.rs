//! The status page (issue #25) in a real browser: headless Chromium
//! (Debian `chromium`, which the test command installs when missing)
//! driven over the DevTools protocol loads the page of a daemon with three
//! databases, one healthy and replicated, one unhealthy (not a database),
//! one whose backups fail (its backup directory is a file) and whose path
//! holds markup; the DOM, the absence of console errors, an update in place
//! after a backup, no sideways scrolling on a phone, and a screenshot under
//! `target/` for the README. Then the token beyond loopback: required,
//! never in the page.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::common::{Project, free_port};
use crate::daemon::{Daemon, wait_until};

const CHROMIUM: &str = "/usr/bin/chromium";

const MARKUP_PATH: &str = "x<script>alert(1)</script>.db";

fn config(port: u16, extra_settings: &str) -> String {
    format!(
        "version: 1
settings: {{ state_dir: st, backup_dir: bk, listen: \"127.0.0.1:{port}\"{extra_settings} }}
defaults:
  backup: {{ every: 1h, compress: none }}
databases:
  app:
    path: app.db
    pragmas: {{ journal_mode: wal }}
    replicate: {{ sync_every: 200ms, window: 1h }}
  broken:
    path: broken.db
  odd:
    path: \"{MARKUP_PATH}\"
"
    )
}

/// A GET of `path` on the listener: status code and body.
fn get(port: u16, path: &str, headers: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let code = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// Chromium, headless, with its DevTools socket.
struct Browser {
    child: Child,
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Option<Self> {
        if !std::path::Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var("CI").is_err(),
                "{CHROMIUM} is missing: `.ci/run` installs Debian's chromium"
            );
            return None;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,1600",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("chromium printed its DevTools address")
                .unwrap();
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                break url.trim().to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        let (socket, _) = tungstenite::connect(url.as_str()).expect("connect to DevTools");
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(60)))
                .unwrap();
        }
        let mut browser = Self {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = browser.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call(domain, json!({}));
        }
        Some(browser)
    }

    /// Sends a DevTools command and waits for its answer, keeping events.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let mut message = json!({ "id": self.next_id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(tungstenite::Message::text(message.to_string()))
            .unwrap();
        loop {
            let text = self.socket.read().unwrap().into_text().unwrap();
            let answer: Value = serde_json::from_str(text.as_str()).unwrap();
            if answer["id"] == self.next_id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
            self.events.push(answer);
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }

    /// The console errors, uncaught exceptions and dialogs seen so far.
    fn errors(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown" | "Page.javascriptDialogOpening") => true,
                Some("Runtime.consoleAPICalled") => e["params"]["type"] == "error",
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each database section: name, health and its last-backup line.
fn databases(browser: &mut Browser) -> Value {
    browser
        .eval(
            "JSON.stringify(Array.from(document.querySelectorAll('section.db')).map(s => ({
            name: s.dataset.db, health: s.dataset.health, backups: Number(s.dataset.backups),
            last: s.querySelector('.last-backup').textContent,
            failed: (s.querySelector('.backup-error') || {}).textContent || null })))",
        )
        .as_str()
        .map(|text| serde_json::from_str(text).unwrap())
        .unwrap_or(Value::Null)
}

#[test]
fn the_page_shows_every_database_updates_in_place_and_escapes_what_it_shows() {
    let Some(mut browser) = Browser::start() else {
        eprintln!("skipped: no chromium here (CI installs it)");
        return;
    };
    let port = free_port();
    let project = Project::with_config(&config(port, ""));
    assert_eq!(project.run(&["apply"]).code, 0);
    std::fs::write(project.join("broken.db"), b"this is not a database at all").unwrap();
    let _ = std::fs::remove_dir_all(project.join("bk/odd"));
    std::fs::create_dir_all(project.join("bk")).unwrap();
    std::fs::write(project.join("bk/odd"), b"a file where odd's backups go").unwrap();
    for name in ["broken", "odd"] {
        assert_ne!(project.run(&["backup", name]).code, 0, "{name}");
    }
    let _daemon = Daemon::start(&project);
    wait_until("the page is served with every health", || {
        let (code, body) = get(port, "/", "");
        code == 200
            && body.matches("data-health=\"unknown\"").count() == 0
            && body.contains("data-db=\"odd\"")
    });
    let (_, html) = get(port, "/", "");
    assert!(
        html.contains("x&lt;script&gt;alert(1)&lt;/script&gt;.db"),
        "{html}"
    );
    assert!(!html.contains("<script>alert(1)"), "{html}");

    let url = format!("http://127.0.0.1:{port}/");
    browser.call("Page.navigate", json!({ "url": url }));
    wait_until("the page loaded", || {
        browser.eval("document.readyState") == "complete"
    });
    let shown = databases(&mut browser);
    let by_name = |name: &str| {
        shown
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name("app")["health"], "healthy", "{shown}");
    assert_eq!(by_name("broken")["health"], "unhealthy", "{shown}");
    for name in ["broken", "odd"] {
        let failed = by_name(name)["failed"].as_str().unwrap_or("").to_string();
        assert!(failed.starts_with("last backup failed"), "{name}: {shown}");
    }
    assert_eq!(by_name("odd")["last"], "no verified backup", "{shown}");
    assert_eq!(by_name("broken")["last"], "no verified backup", "{shown}");
    let backups_before = by_name("app")["backups"].as_u64().unwrap();
    assert_eq!(browser.eval("document.scripts.length"), 1);
    browser.eval("window.notReloaded = true");

    let backup = project.run(&["backup", "app"]);
    assert_eq!(backup.code, 0, "{}", backup.stderr);
    wait_until("the page shows the backup without a reload", || {
        let shown = databases(&mut browser);
        shown
            .as_array()
            .and_then(|all| all.iter().find(|d| d["name"] == "app"))
            .is_some_and(|app| {
                app["backups"].as_u64() > Some(backups_before)
                    && app["last"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("last backup ")
            })
    });
    assert_eq!(
        browser.eval("window.notReloaded === true"),
        true,
        "the page reloaded"
    );
    wait_until("the replica's range is shown", || {
        browser.eval("!!document.querySelector('section[data-db=app] .replica')") == true
    });

    let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        shot["data"].as_str().unwrap(),
    )
    .unwrap();
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("status-page.png"), &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
    );
    wait_until("the page is laid out for a phone", || {
        browser.eval("window.innerWidth") == 390
    });
    assert_eq!(
        browser.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        true,
        "the page scrolls sideways on a phone"
    );
    let errors = browser.errors();
    assert!(errors.is_empty(), "{errors:?}");

    let (code, api) = get(port, "/api/status", "");
    assert_eq!(code, 200);
    let api: Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["databases"].as_array().unwrap().len(), 3, "{api}");
}

#[test]
fn beyond_loopback_the_token_is_required_and_never_shown() {
    let port = free_port();
    let beyond_loopback = config(
        port,
        ", http: { token_env: PAGE_TOKEN, metrics_public: true }",
    )
    .replace("127.0.0.1:", "0.0.0.0:");
    let project = Project::with_config(&beyond_loopback);
    assert_eq!(project.run(&["apply"]).code, 0);
    let _daemon = Daemon::start_with(&project, &[("PAGE_TOKEN", "s3cret-token/+")]);
    wait_until("the listener answers", || {
        get(port, "/metrics", "").0 == 200
    });
    for path in ["/", "/api/status", "/status"] {
        let (code, body) = get(port, path, "");
        assert_eq!(code, 401, "{path}: {body}");
        assert_eq!(
            get(port, path, "Authorization: Bearer wrong\r\n").0,
            401,
            "{path}"
        );
    }
    assert_ne!(
        get(port, "/healthz", "").0,
        401,
        "/healthz is public with metrics_public"
    );
    let (code, page) = get(port, "/?token=s3cret-token%2F%2B", "");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("data-db=\"app\""));
    assert!(!page.contains("s3cret"), "the token is in the page");
    let (code, api) = get(
        port,
        "/api/status",
        "Authorization: Bearer s3cret-token/+\r\n",
    );
    assert_eq!(code, 200);
    assert!(!api.contains("s3cret"));

    let missing = Project::with_config(&config(free_port(), ", http: { token_env: PAGE_TOKEN }"));
    let mut daemon = Command::new(crate::common::binary())
        .arg("run")
        .current_dir(missing.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_ne!(daemon.wait().unwrap().code(), Some(0));
    assert!(
        stderr.contains("settings.http.token_env: environment variable `PAGE_TOKEN` is not set"),
        "{stderr}"
    );
}

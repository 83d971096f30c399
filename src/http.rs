//! The status page (`/`), `/api/status`, `/metrics` (Prometheus),
//! `/healthz` and `/status` on `settings.listen`.
//!
//! Owns the HTTP server threads ([`serve`] says how clients are bounded)
//! and who may read them ([`Access`]: a bearer token when
//! `settings.http.token_env` is set; `/metrics` and `/healthz` stay open
//! with `metrics_public`).
//! It is a reader: every request reads a
//! snapshot from the state database (WAL mode, so it never blocks the
//! reconciler, which stays the only writer). Metrics: the config's last
//! reload, job runs by database/job/outcome, skipped ticks, managed
//! databases, and per database the latest health run's figures (database,
//! WAL and free-disk bytes, freelist pages, status and each check, newest
//! verified backup age and size), each job's last success time and duration
//! histogram, the last drill's result and the last optimize's pages
//! reclaimed. `/healthz` is 503 when the config is invalid or any
//! database's latest health is unhealthy; `/status` is
//! [`crate::status::snapshot`] as JSON, the same document as `status
//! --json`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::clock::Clock;
use crate::config::JobKind;
use crate::state::{Outcome, StateDb};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    database: String,
    job: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    database: String,
    job: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatabaseLabels {
    database: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    database: String,
    check: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiskLabels {
    database: String,
    dir: String,
}

/// Connections answered at once; more wait in the queue. Two, so one
/// client that is slow to read its answer never holds `/healthz` (the
/// endpoints are small reads of the state database, answered in
/// milliseconds).
pub const WORKERS: usize = 2;

/// Accepted connections waiting for a worker; past this, accepting waits
/// (new connections wait in the kernel's backlog, holding no descriptor of
/// this process).
pub const QUEUE: usize = 64;

/// How long a client may take to send its request head, in all.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a client may take to read the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head read (request line and headers).
pub const MAX_REQUEST: usize = 8 * 1024;

/// How long accepting pauses after an error (out of descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Serves the endpoints on `listen` from background threads, reading the
/// state database in `state_dir`: one accepting thread and [`WORKERS`]
/// answering threads behind a queue of [`QUEUE`] connections (so at most
/// `WORKERS + QUEUE` descriptors, whatever the clients do), each
/// connection one request (`Connection: close`), its head at most
/// [`MAX_REQUEST`] bytes read within [`READ_TIMEOUT`], its answer written
/// within [`WRITE_TIMEOUT`]. Slow, idle, pipelining or oversized clients
/// cost a bounded share and go; running out of descriptors pauses
/// accepting, never ends it.
pub fn serve(listen: SocketAddr, site: Site, clock: Arc<dyn Clock>) -> Result<(), String> {
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(listen = %listen, token = site.access.token.is_some(), "serving the status page, /api/status, /metrics, /healthz and /status");
    let site = Arc::new(site);
    let (queue, connections) = sync_channel::<TcpStream>(QUEUE);
    let connections = Arc::new(Mutex::new(connections));
    for worker in 0..WORKERS {
        let connections = Arc::clone(&connections);
        let site = Arc::clone(&site);
        let clock = Arc::clone(&clock);
        std::thread::Builder::new()
            .name(format!("http-{worker}"))
            .spawn(move || {
                loop {
                    let next = connections.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(stream) = next else { return };
                    answer(stream, &site, clock.as_ref());
                }
            })
            .map_err(|e| format!("cannot start the HTTP threads: {e}"))?;
    }
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || accept(&listener, &queue))
        .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
    Ok(())
}

/// Accepts connections for the workers, forever.
fn accept(listener: &TcpListener, queue: &SyncSender<TcpStream>) {
    let mut failing = false;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                failing = false;
                if queue.send(stream).is_err() {
                    return;
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot accept an HTTP connection; retrying");
                    failing = true;
                }
                std::thread::sleep(ACCEPT_PAUSE);
            }
        }
    }
}

/// What the listener serves: the state database, `jobs.yaml` (read anew
/// for each page) and who may read it.
#[derive(Debug, Clone)]
pub struct Site {
    /// The state directory.
    pub state_dir: PathBuf,
    /// `jobs.yaml`.
    pub config: PathBuf,
    /// The environment `jobs.yaml` is read with.
    pub environment: crate::config::Environment,
    /// Who may read.
    pub access: Access,
}

/// Who may read the listener.
#[derive(Clone, Default)]
pub struct Access {
    /// The bearer token every request needs, if any.
    pub token: Option<String>,
    /// Whether `/metrics` and `/healthz` are served without it.
    pub metrics_public: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("metrics_public", &self.metrics_public)
            .finish()
    }
}

impl Access {
    /// The access `settings.http` asks for, the token read from its
    /// variable in `environment`; an error naming the field when the
    /// variable is unset or empty.
    pub fn from_config(
        http: &crate::config::Http,
        environment: &crate::config::Environment,
    ) -> Result<Self, String> {
        let token = match &http.token_env {
            None => None,
            Some(name) => match environment.get(name).map(str::trim) {
                Some(token) if !token.is_empty() => Some(token.to_string()),
                _ => {
                    return Err(format!(
                        "settings.http.token_env: environment variable `{name}` is not set or empty; set it to the token the status page requires"
                    ));
                }
            },
        };
        Ok(Self {
            token,
            metrics_public: http.metrics_public,
        })
    }

    /// Whether a request for `path` with `token` may be answered.
    fn allows(&self, path: &str, token: Option<&str>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        if self.metrics_public && matches!(path, "/metrics" | "/healthz") {
            return true;
        }
        token.is_some_and(|given| same_secret(given.as_bytes(), expected.as_bytes()))
    }
}

/// Compares two secrets in a time that does not depend on where they
/// differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let differences = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    given.len() == expected.len() && differences == 0
}

/// Reads one request from `stream` and answers it.
fn answer(mut stream: TcpStream, site: &Site, clock: &dyn Clock) {
    let (status, content_type, body) = match read_request(&mut stream) {
        Ok(Request::Get { path, token }) if !site.access.allows(&path, token.as_deref()) => (
            401,
            "text/plain",
            "a token is required: send `Authorization: Bearer TOKEN` or add `?token=TOKEN` to the address\n".into(),
        ),
        Ok(Request::Get { path, .. }) => respond(&path, site, clock),
        Ok(Request::OtherMethod) => (405, "text/plain", "only GET is served\n".into()),
        Ok(Request::TooLarge) => (431, "text/plain", "request head too large\n".into()),
        Ok(Request::Malformed) => (400, "text/plain", "malformed request\n".into()),
        Err(error) => {
            tracing::debug!(%error, "HTTP client gone or too slow");
            return;
        }
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let extra = match (status, content_type) {
        (401, _) => "WWW-Authenticate: Bearer\r\n".to_string(),
        (_, crate::web::page::CONTENT_TYPE) => format!(
            "Content-Security-Policy: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
            crate::web::page::content_security_policy()
        ),
        _ => String::new(),
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let written = stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .and_then(|()| stream.write_all(head.as_bytes()))
        .and_then(|()| stream.write_all(body.as_bytes()))
        .and_then(|()| stream.flush());
    if let Err(error) = written {
        tracing::debug!(%error, "cannot answer an HTTP request");
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// What a client asked.
enum Request {
    /// A GET of `path` (without its query), with the token it carries
    /// (`Authorization: Bearer` or `?token=`).
    Get {
        path: String,
        token: Option<String>,
    },
    OtherMethod,
    TooLarge,
    Malformed,
}

/// Reads the request head within [`READ_TIMEOUT`] in all (not per read, so
/// a client trickling bytes is cut off too) and at most [`MAX_REQUEST`]
/// bytes.
fn read_request(stream: &mut TcpStream) -> std::io::Result<Request> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut buffer = vec![0u8; MAX_REQUEST];
    let mut filled = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let read = stream.read(&mut buffer[filled..])?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        filled += read;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buffer[..filled]) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(match (request.method, request.path) {
                    (Some("GET"), Some(target)) => {
                        let (path, query) = target.split_once('?').unwrap_or((target, ""));
                        let bearer = request
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                            .and_then(|h| std::str::from_utf8(h.value).ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .map(|v| v.trim().to_string());
                        let in_query = query
                            .split('&')
                            .find_map(|pair| pair.strip_prefix("token="))
                            .map(percent_decoded);
                        Request::Get {
                            path: path.to_string(),
                            token: bearer.or(in_query),
                        }
                    }
                    _ => Request::OtherMethod,
                });
            }
            Ok(httparse::Status::Partial) if filled == MAX_REQUEST => return Ok(Request::TooLarge),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Ok(Request::TooLarge),
            Err(_) => return Ok(Request::Malformed),
        }
    }
}

/// `%XX` escapes (and `+`) of a query value decoded.
fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = bytes
            .get(at + 1..at + 3)
            .filter(|_| bytes[at] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[at]) {
            (Some(byte), _) => {
                out.push(byte);
                at += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, byte) => out.push(byte),
        }
        at += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(url: &str, site: &Site, clock: &dyn Clock) -> (u16, &'static str, String) {
    let state_dir = site.state_dir.as_path();
    let state = match StateDb::open_read_only(state_dir) {
        Ok(Some(state)) => state,
        Ok(None) => return (503, "text/plain", "no state yet\n".into()),
        Err(e) => return (500, "text/plain", format!("{e}\n")),
    };
    match url {
        "/metrics" => match metrics(&state, clock.now()) {
            Ok(text) => (
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(e) => (500, "text/plain", format!("{e}\n")),
        },
        "/healthz" => match state.daemon().and_then(|d| Ok((d, state.all_health()?))) {
            Ok((Some(daemon), health)) if daemon.config_ok => {
                let unhealthy: Vec<String> = health
                    .iter()
                    .filter(|r| r.status == crate::state::health::Status::Unhealthy)
                    .map(|r| format!("{}: {}", r.database, r.reasons().join("; ")))
                    .collect();
                if unhealthy.is_empty() {
                    (200, "text/plain", "ok\n".into())
                } else {
                    (
                        503,
                        "text/plain",
                        format!("unhealthy: {}\n", unhealthy.join(" | ")),
                    )
                }
            }
            Ok((Some(daemon), _)) => (
                503,
                "text/plain",
                format!(
                    "config invalid: {}\n",
                    daemon.config_error.unwrap_or_default()
                ),
            ),
            Ok((None, _)) => (503, "text/plain", "daemon not started\n".into()),
            Err(e) => (500, "text/plain", format!("{e}\n")),
        },
        "/" | "/api/status" => {
            let overview = crate::web::overview(
                &state,
                state_dir,
                &site.config,
                &site.environment,
                clock.now(),
            );
            match overview {
                Ok(overview) if url == "/" => (
                    200,
                    crate::web::page::CONTENT_TYPE,
                    crate::web::page::render(&overview),
                ),
                Ok(overview) => (
                    200,
                    "application/json",
                    serde_json::json!(overview).to_string(),
                ),
                Err(e) => (500, "text/plain", format!("{e}\n")),
            }
        }
        "/status" => match crate::status::snapshot(None, &state, state_dir, clock.now()) {
            Ok(status) => (
                200,
                "application/json",
                serde_json::json!(status).to_string(),
            ),
            Err(e) => (500, "text/plain", format!("{e}\n")),
        },
        _ => (
            404,
            "text/plain",
            "not found: try /, /api/status, /metrics, /healthz or /status\n".into(),
        ),
    }
}

/// Each replicated database's capture: how far behind (seconds since the
/// replica last held every commit), segments and bytes of its generation,
/// generations started, and whether it fails.
fn replication_metrics(
    state: &StateDb,
    now: chrono::DateTime<chrono::Utc>,
    registry: &mut Registry,
) -> Result<(), crate::state::StateError> {
    use std::sync::atomic::AtomicU64;
    let lag = Family::<DatabaseLabels, Gauge<f64, AtomicU64>>::default();
    let gauge = || Family::<DatabaseLabels, Gauge>::default();
    let (segments, bytes, generations, failing) = (gauge(), gauge(), gauge(), gauge());
    for row in state.replication()? {
        let labels = DatabaseLabels {
            database: row.database.clone(),
        };
        if let Some(at) = row.caught_up_at {
            lag.get_or_create(&labels)
                .set((now - at).num_milliseconds().max(0) as f64 / 1000.0);
        }
        segments.get_or_create(&labels).set(row.segments);
        bytes.get_or_create(&labels).set(row.bytes);
        generations
            .get_or_create(&labels)
            .set(row.generations_started);
        failing
            .get_or_create(&labels)
            .set(i64::from(row.error.is_some()));
    }
    registry.register(
        "litewarden_replication_lag_seconds",
        "Seconds since the replica last held every commit of the database's log",
        lag,
    );
    registry.register(
        "litewarden_replication_segments",
        "Segments in the replica's current generation",
        segments,
    );
    registry.register(
        "litewarden_replication_bytes",
        "Bytes of the replica's current generation (base and segments)",
        bytes,
    );
    registry.register(
        "litewarden_replication_generations_started",
        "Generations the capture started since the daemon started",
        generations,
    );
    registry.register(
        "litewarden_replication_failing",
        "Whether the database's capture fails (1) or runs (0)",
        failing,
    );
    Ok(())
}

/// The per-database metrics: the latest health figures, last successes,
/// durations, drills and maintenance.
fn database_metrics(
    state: &StateDb,
    registry: &mut Registry,
) -> Result<(), crate::state::StateError> {
    use crate::state::health::Status;
    let gauge = || Family::<DatabaseLabels, Gauge>::default();
    let (size, wal, freelist, status) = (gauge(), gauge(), gauge(), gauge());
    let (backup_age, backup_size, offsite_age) = (gauge(), gauge(), gauge());
    let free_disk = Family::<DiskLabels, Gauge>::default();
    let checks = Family::<CheckLabels, Gauge>::default();
    for report in state.all_health()? {
        let labels = DatabaseLabels {
            database: report.database.clone(),
        };
        let f = &report.figures;
        size.get_or_create(&labels).set(f.db_size_bytes as i64);
        wal.get_or_create(&labels).set(f.wal_size_bytes as i64);
        freelist.get_or_create(&labels).set(f.freelist_count as i64);
        status.get_or_create(&labels).set(match report.status {
            Status::Healthy => 0,
            Status::Degraded => 1,
            Status::Unhealthy => 2,
        });
        if let Some(age) = f.backup_age_seconds {
            backup_age.get_or_create(&labels).set(age);
        }
        if let Some(bytes) = f.backup_size_bytes {
            backup_size.get_or_create(&labels).set(bytes as i64);
        }
        if let Some(age) = f.offsite_age_seconds {
            offsite_age.get_or_create(&labels).set(age);
        }
        for (dir, free) in [
            ("database", f.free_disk_bytes),
            ("backup", f.backup_free_disk_bytes),
        ] {
            if let Some(free) = free {
                free_disk
                    .get_or_create(&DiskLabels {
                        database: report.database.clone(),
                        dir: dir.into(),
                    })
                    .set(free as i64);
            }
        }
        for check in &report.checks {
            checks
                .get_or_create(&CheckLabels {
                    database: report.database.clone(),
                    check: check.name.clone(),
                })
                .set(i64::from(check.status == Status::Healthy));
        }
    }
    registry.register(
        "litewarden_database_size_bytes",
        "Size of the database file at the last health run",
        size,
    );
    registry.register(
        "litewarden_wal_size_bytes",
        "Size of the -wal file at the last health run",
        wal,
    );
    registry.register(
        "litewarden_freelist_pages",
        "Free pages in the database at the last health run",
        freelist,
    );
    registry.register(
        "litewarden_health_status",
        "Latest health: 0 healthy, 1 degraded, 2 unhealthy",
        status,
    );
    registry.register(
        "litewarden_health_check_ok",
        "Whether each health check passed at the last run",
        checks,
    );
    registry.register(
        "litewarden_free_disk_bytes",
        "Free bytes on the database's and the backup directory's file system",
        free_disk,
    );
    registry.register(
        "litewarden_backup_age_seconds",
        "Age of the newest verified backup at the last health run",
        backup_age,
    );
    registry.register(
        "litewarden_backup_size_bytes",
        "Size of the newest verified backup",
        backup_size,
    );
    registry.register(
        "litewarden_offsite_age_seconds",
        "Age of the newest copy on the offsite store at the last health run",
        offsite_age,
    );
    let last_success = Family::<JobLabels, Gauge>::default();
    for success in state.last_successes()? {
        last_success
            .get_or_create(&JobLabels {
                database: success.database,
                job: success.job.to_string(),
            })
            .set(success.at.timestamp());
    }
    registry.register(
        "litewarden_job_last_success_timestamp_seconds",
        "When each job last succeeded (unix time)",
        last_success,
    );
    let durations = Family::<JobLabels, Histogram>::new_with_constructor(|| {
        Histogram::new([0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0])
    });
    for run in state.run_durations()? {
        durations
            .get_or_create(&JobLabels {
                database: run.database,
                job: run.job.to_string(),
            })
            .observe(run.seconds);
    }
    registry.register(
        "litewarden_job_duration_seconds",
        "Duration of the recorded job runs",
        durations,
    );
    let drill = gauge();
    for run in state.latest_runs()? {
        if run.job == JobKind::Drill
            && let Some(database) = run.database
        {
            drill
                .get_or_create(&DatabaseLabels { database })
                .set(i64::from(run.outcome == Outcome::Success));
        }
    }
    registry.register(
        "litewarden_drill_passed",
        "Whether the last restore drill passed",
        drill,
    );
    let reclaimed = gauge();
    for (database, figures) in state.latest_figures(JobKind::Optimize)? {
        let pages = figures.pages_reclaimed.unwrap_or(0);
        reclaimed
            .get_or_create(&DatabaseLabels { database })
            .set(i64::try_from(pages).unwrap_or(i64::MAX));
    }
    registry.register(
        "litewarden_optimize_pages_reclaimed",
        "Pages the last maintenance run gave back",
        reclaimed,
    );
    let uploaded = gauge();
    for (database, figures) in state.latest_figures(JobKind::Offsite)? {
        let bytes = figures.bytes.unwrap_or(0);
        uploaded
            .get_or_create(&DatabaseLabels { database })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    registry.register(
        "litewarden_offsite_uploaded_bytes",
        "Bytes the last offsite run uploaded",
        uploaded,
    );
    Ok(())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    rule: String,
    database: String,
}

fn metrics(
    state: &StateDb,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, crate::state::StateError> {
    let mut registry = Registry::default();
    let config_ok = Gauge::<i64>::default();
    config_ok.set(i64::from(state.daemon()?.is_none_or(|d| d.config_ok)));
    registry.register(
        "litewarden_config_last_reload_successful",
        "Whether the last reload of jobs.yaml succeeded",
        config_ok,
    );
    let runs = Family::<RunLabels, Counter>::default();
    for run in state.run_counts()? {
        let labels = RunLabels {
            database: run.database.unwrap_or_default(),
            job: run.job.to_string(),
            outcome: run.outcome.as_str().to_string(),
        };
        runs.get_or_create(&labels).inc_by(run.count.max(0) as u64);
    }
    registry.register(
        "litewarden_job_runs",
        "Job runs by database, job and outcome",
        runs,
    );
    let skipped = Family::<JobLabels, Gauge>::default();
    for job in state.schedule()? {
        skipped
            .get_or_create(&JobLabels {
                database: job.database,
                job: job.job.to_string(),
            })
            .set(job.skipped);
    }
    registry.register(
        "litewarden_job_skipped_ticks",
        "Ticks skipped because the previous run was still going",
        skipped,
    );
    let managed = Gauge::<i64>::default();
    managed.set(state.managed_databases()?.len() as i64);
    registry.register(
        "litewarden_managed_databases",
        "Databases under management",
        managed,
    );
    database_metrics(state, &mut registry)?;
    replication_metrics(state, now, &mut registry)?;
    let firing = Family::<AlertLabels, Gauge>::default();
    for alert in crate::alert::notify::active_alerts(state)? {
        let labels = AlertLabels {
            rule: alert.key.rule.clone(),
            database: alert.key.database.clone(),
        };
        firing
            .get_or_create(&labels)
            .inc_by(i64::from(alert.phase == crate::alert::rules::Phase::Firing));
    }
    registry.register(
        "litewarden_alerts_firing",
        "Alerts firing now, by rule and database",
        firing,
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|_| {
        crate::state::StateError::Corrupt {
            path: PathBuf::from("metrics"),
            detail: "cannot encode metrics".into(),
        }
    })?;
    Ok(text)
}

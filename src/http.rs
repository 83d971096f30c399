//! `/metrics` (Prometheus), `/healthz` and `/status` on `settings.listen`.
//!
//! Owns the HTTP server thread. It is a reader: every request reads a
//! snapshot from the state database (WAL mode, so it never blocks the
//! reconciler, which stays the only writer). Metrics served now:
//! `litewarden_config_last_reload_successful`, `litewarden_job_runs_total`
//! by database, job and outcome, `litewarden_job_skipped_ticks` by database
//! and job, and `litewarden_managed_databases`.

use std::net::SocketAddr;
use std::path::PathBuf;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::state::StateDb;

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

/// Serves the endpoints on `listen` from a background thread, reading the
/// state database in `state_dir`.
pub fn serve(listen: SocketAddr, state_dir: PathBuf) -> Result<(), String> {
    let server =
        tiny_http::Server::http(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(listen = %listen, "serving /metrics, /healthz and /status");
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let (status, content_type, body) = respond(request.url(), &state_dir);
                let header = tiny_http::Header::from_bytes("Content-Type", content_type).ok();
                let mut response = tiny_http::Response::from_string(body).with_status_code(status);
                if let Some(header) = header {
                    response.add_header(header);
                }
                if let Err(e) = request.respond(response) {
                    tracing::debug!(error = %e, "cannot answer an HTTP request");
                }
            }
        })
        .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
    Ok(())
}

fn respond(url: &str, state_dir: &std::path::Path) -> (u16, &'static str, String) {
    let state = match StateDb::open_read_only(state_dir) {
        Ok(Some(state)) => state,
        Ok(None) => return (503, "text/plain", "no state yet\n".into()),
        Err(e) => return (500, "text/plain", format!("{e}\n")),
    };
    match url {
        "/metrics" => match metrics(&state) {
            Ok(text) => (
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(e) => (500, "text/plain", format!("{e}\n")),
        },
        "/healthz" => match state.daemon() {
            Ok(Some(daemon)) if daemon.config_ok => (200, "text/plain", "ok\n".into()),
            Ok(Some(daemon)) => (
                503,
                "text/plain",
                format!(
                    "config invalid: {}\n",
                    daemon.config_error.unwrap_or_default()
                ),
            ),
            Ok(None) => (503, "text/plain", "daemon not started\n".into()),
            Err(e) => (500, "text/plain", format!("{e}\n")),
        },
        "/status" => {
            let body = state
                .daemon()
                .and_then(|daemon| Ok((daemon, state.schedule()?, state.latest_runs()?)));
            match body {
                Ok((daemon, jobs, runs)) => (
                    200,
                    "application/json",
                    serde_json::json!({ "daemon": daemon, "jobs": jobs, "runs": runs }).to_string(),
                ),
                Err(e) => (500, "text/plain", format!("{e}\n")),
            }
        }
        _ => (
            404,
            "text/plain",
            "not found: try /metrics, /healthz or /status\n".into(),
        ),
    }
}

fn metrics(state: &StateDb) -> Result<String, crate::state::StateError> {
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
            job: run.job,
            outcome: run.outcome,
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
                job: job.job,
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
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|_| {
        crate::state::StateError::Corrupt {
            path: PathBuf::from("metrics"),
            detail: "cannot encode metrics".into(),
        }
    })?;
    Ok(text)
}

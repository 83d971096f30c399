//! The page's markup (maud: every database name, path and error is
//! escaped by construction), its style, and the few lines of script that
//! refresh it in place.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::chart;
use super::{DatabaseView, Overview};
use crate::state::Outcome;

/// The page's content type.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// How often the page replaces its body with a fresh copy.
pub const REFRESH_SECONDS: u32 = 3;

const STYLE: &str = "
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;padding:.7rem 1rem;background:#1d2330;color:#fff}
header .bad{color:#ffb4b4;font-weight:600}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(22rem,1fr));gap:1rem;padding:1rem}
section.db{background:#fff;border-radius:8px;padding:.8rem 1rem;box-shadow:0 1px 3px #0002;min-width:0}
h2{margin:.1rem 0 .3rem;font-size:1.15rem;display:flex;gap:.5rem;align-items:center;overflow-wrap:anywhere}
h3{font-size:.85rem;text-transform:uppercase;letter-spacing:.04em;color:#5b6475;margin:.8rem 0 .2rem}
.path{color:#5b6475;font-size:.85rem;overflow-wrap:anywhere;margin:0}
.badge{font-size:.75rem;padding:.1rem .45rem;border-radius:99px;color:#fff}
.badge.healthy{background:#2e7d32}.badge.degraded{background:#b26a00}.badge.unhealthy{background:#c62828}.badge.unknown{background:#78808f}
ul{margin:.2rem 0;padding-left:1.1rem}li{overflow-wrap:anywhere}
li.degraded{color:#8a5200}li.unhealthy{color:#b71c1c}
.error{color:#b71c1c;overflow-wrap:anywhere}
.empty{color:#78808f;margin:.2rem 0}
svg{width:100%;height:4.5rem;background:#fafbfc;border:1px solid #e3e6eb;border-radius:4px}
svg.timeline{height:1.6rem}
polyline{fill:none;stroke-width:1.5;vector-effect:non-scaling-stroke}
polyline.db{stroke:#1565c0}polyline.wal{stroke:#ef6c00}circle.db{fill:#1565c0}circle.wal{fill:#ef6c00}
.legend{font-size:.8rem;margin:.1rem 0}.legend .db{color:#1565c0}.legend .wal{color:#ef6c00}
line{stroke:#c5cad3}rect.verified{fill:#2e7d32}rect.pinned{fill:#6a1b9a}rect.offsite{fill:#1565c0}rect.unverified{fill:#c62828}
table{border-collapse:collapse;font-size:.85rem;width:100%}td{padding:.1rem .3rem;vertical-align:top;overflow-wrap:anywhere}td:first-child,td:nth-child(2){white-space:nowrap}tr.failed td{color:#b71c1c}
.stale header{background:#7a1f1f}
code{font-size:.8rem;overflow-wrap:anywhere}
footer{color:#78808f;font-size:.8rem;padding:0 1rem 1rem}
";

/// Replaces `#page` with the same element of a fresh copy of this URL
/// every few seconds; a failed fetch marks the page stale and tries again.
const SCRIPT: &str = "
(function(){
  var refresh=function(){
    fetch(window.location.href,{headers:{'Accept':'text/html'},cache:'no-store'})
      .then(function(r){if(!r.ok){throw new Error(String(r.status));}return r.text();})
      .then(function(text){
        var fresh=new DOMParser().parseFromString(text,'text/html').getElementById('page');
        var page=document.getElementById('page');
        if(fresh&&page){page.replaceWith(fresh);}
      })
      .catch(function(){var page=document.getElementById('page');if(page){page.classList.add('stale');}});
  };
  window.setInterval(refresh,REFRESH_MS);
})();
";

fn script() -> String {
    SCRIPT.replace("REFRESH_MS", &(REFRESH_SECONDS * 1000).to_string())
}

/// The page's policy: nothing from elsewhere, no script but its own (by
/// hash), fetches only to this listener.
pub fn content_security_policy() -> String {
    use base64::Engine;
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script()));
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; script-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The whole page for `overview`.
pub fn render(overview: &Overview) -> String {
    let script = script();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="icon" href="data:,";
                title { "litewarden" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                (body(overview))
                script { (PreEscaped(script)) }
            }
        }
    }
    .into_string()
}

/// The part that refreshes.
fn body(overview: &Overview) -> Markup {
    let now = overview.generated_at;
    html! {
        div #page data-generated=(overview.generated_at.to_rfc3339()) {
            header {
                strong { "litewarden" }
                @match (&overview.status.daemon, overview.status.daemon_running) {
                    (Some(daemon), true) => span #daemon { "daemon up since " (stored_time(&daemon.started_at)) },
                    _ => span #daemon .bad { "daemon not running" },
                }
                @match &overview.config_error {
                    None => span #config { "config valid" },
                    Some(error) => span #config .bad { "config error: " (error) },
                }
                @if overview.alerts_firing == 0 {
                    span #alerts { "no alert firing" }
                } @else {
                    span #alerts .bad { (overview.alerts_firing) " alert" @if overview.alerts_firing != 1 { "s" } " firing" }
                }
            }
            main {
                @if overview.databases.is_empty() {
                    p.empty { "No database in jobs.yaml." }
                }
                @for db in &overview.databases {
                    (database(db, now))
                }
            }
            footer { "Read at " (time(now)) "; refreshed every " (REFRESH_SECONDS) " s. JSON: /api/status." }
        }
    }
}

fn database(db: &DatabaseView, now: DateTime<Utc>) -> Markup {
    let health = db.health.as_ref().map_or("unknown", |h| h.status.as_str());
    let last_backup = db.backups.iter().rev().find(|b| b.verified);
    let failed_backup = db
        .runs
        .iter()
        .find(|r| r.job == crate::config::JobKind::Backup && r.outcome == Outcome::Failed);
    html! {
        section.db data-db=(db.name) data-health=(health) data-backups=(db.backups.len()) {
            h2 { span.name { (db.name) } span.badge.(health) .health { (health) } }
            @if let Some(path) = &db.path { p.path { (crate::paths::display(path)) } }
            h3 { "Health" }
            @match &db.health {
                Some(report) => {
                    ul.checks {
                        @for check in &report.checks {
                            li.(check.status.as_str()) { strong { (check.name) } ": " (check.detail) }
                        }
                    }
                    p.empty { "checked " (time(report.checked_at)) }
                }
                None => p.empty { "Not checked yet." },
            }
            h3 { "Size, last 24 h" }
            (chart::sizes(&db.samples, now))
            h3 { "Backups" }
            p.last-backup {
                @match last_backup {
                    Some(b) => { "last backup " (time(b.at)) " (" (chart::bytes(b.size)) ", verified)" }
                    None => "no verified backup",
                }
            }
            @if let Some(run) = failed_backup {
                p.error.backup-error { "last backup failed " (time(run.finished_at)) ": " (run.error.as_deref().unwrap_or("")) }
            }
            (chart::timeline(&db.backups, now))
            @if let Some(replica) = &db.replica {
                h3 { "Point-in-time restore" }
                p.replica { "any point from " (time(replica.oldest)) " to " (time(replica.newest)) }
            }
            @if let Some(replication) = &db.replication {
                @if let Some(error) = &replication.row.error { p.error { "replication: " (error) } }
                @else if let Some(lag) = replication.lag_seconds { p.empty { "replication lag " (format!("{lag:.1}")) " s" } }
            }
            @if let Some(drill) = &db.last_drill {
                p { "last drill " (time(drill.finished_at)) ": " (drill.outcome.as_str())
                    @if let Some(error) = &drill.error { span.error { " — " (error) } } }
            }
            @if !db.pending_migrations.is_empty() {
                h3 { "Pending migrations" }
                ul { @for name in &db.pending_migrations { li { code { (name) } } } }
            }
            @if !db.holds.is_empty() {
                h3 { "Holds" }
                ul { @for hold in &db.holds { li { (format!("{:?}", hold.kind)) " since " (time(hold.since)) } } }
            }
            @if !db.alerts.is_empty() {
                h3 { "Alerts" }
                ul.alerts { @for alert in &db.alerts { li.unhealthy { strong { (alert.key.rule) } " (" (format!("{:?}", alert.phase).to_lowercase()) "): " (alert.reason) } } }
            }
            @if !db.advice.is_empty() {
                h3 { "Slow queries" }
                ul.advice {
                    @for advice in &db.advice {
                        li {
                            code { (advice.sql) } " — " (advice.count) "×, " (format!("{:.1}", advice.mean_ms)) " ms"
                            @for problem in &advice.problems { br; span.degraded { (problem) } }
                            @if let Some(index) = &advice.index { br; "advice: " code { (index.create) } }
                        }
                    }
                }
            }
            h3 { "Last runs" }
            @if db.runs.is_empty() { p.empty { "No job ran yet." } }
            table.runs {
                @for run in &db.runs {
                    tr.(run.outcome.as_str()) {
                        td { (run.job.as_str()) }
                        td { (time(run.finished_at)) }
                        td { @match &run.error { Some(error) => span.error { (error) }, None => (run.outcome.as_str()) } }
                    }
                }
            }
        }
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn stored_time(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored)
        .map_or_else(|_| stored.to_string(), |at| time(at.to_utc()))
}

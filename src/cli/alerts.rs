//! `alerts` and `alert test`.
//!
//! Owns what they print: the active alerts (pending and firing) and the
//! recent notifications with their delivery result; and one real test mail
//! through the configured SMTP server, reporting how the conversation ended.

use std::io::Write;

use serde_json::json;

use super::{Cli, ExitStatus, print};
use crate::alert::email::{Mail, Mailer, SmtpMailer};
use crate::alert::rules::{Active, Phase};
use crate::config::{self, Environment};
use crate::error::Error;
use crate::state::StateDb;

/// The active alerts stored in `state`.
pub(super) fn active(state: &StateDb) -> Result<Vec<Active>, Error> {
    Ok(crate::alert::notify::active_alerts(state)?)
}

/// One line per active alert, as `status` and `alerts` print them.
pub(super) fn line(alert: &Active) -> String {
    let phase = match alert.phase {
        Phase::Pending => "pending",
        Phase::Firing => "FIRING",
    };
    let what = [
        alert.key.database.as_str(),
        alert.key.job.map_or("", crate::config::JobKind::as_str),
    ]
    .iter()
    .filter(|s| !s.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join("/");
    format!(
        "{phase:<8} {:<20} {:<24} since {}: {}",
        alert.key.rule,
        if what.is_empty() { "-" } else { &what },
        super::show_time(alert.since),
        alert.reason
    )
}

pub(super) fn list(
    cli: &Cli,
    environment: &Environment,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let loaded = super::load_reading(cli, environment)?;
    let Some(state) = StateDb::open_read_only(&loaded.config.settings.state_dir)? else {
        if json {
            print(out, json!({ "alerts": [], "notifications": [] }))?;
        } else {
            print(out, "no alerts: nothing has run yet")?;
        }
        return Ok(ExitStatus::Success);
    };
    let alerts = active(&state)?;
    let notifications = state.recent_notifications(20)?;
    if json {
        print(
            out,
            json!({ "alerts": alerts, "notifications": notifications }),
        )?;
        return Ok(ExitStatus::Success);
    }
    if alerts.is_empty() {
        print(out, "no active alerts")?;
    }
    for alert in &alerts {
        print(out, line(alert))?;
    }
    if !notifications.is_empty() {
        print(out, "\nrecent notifications:")?;
    }
    for n in &notifications {
        let delivery = match (&n.sent_at, &n.last_error) {
            (Some(at), _) => format!("sent {}", super::show_stored_time(at)),
            (None, Some(error)) => format!("NOT SENT after {} attempt(s): {error}", n.attempts),
            (None, None) => "queued".to_string(),
        };
        print(
            out,
            format_args!(
                "{}  {}  to {}  {delivery}",
                super::show_stored_time(&n.created_at),
                n.subject,
                n.recipients
            ),
        )?;
    }
    Ok(ExitStatus::Success)
}

pub(super) fn test(
    cli: &Cli,
    environment: &Environment,
    to: Option<&str>,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let loaded = config::load(&cli.config, environment)?;
    let config = loaded.config;
    let Some(smtp) = &config.smtp else {
        eprintln!(
            "error: {}: no `smtp:` section, so no mail can be sent (alerts go to the log and `litewarden status`)",
            crate::paths::display(&cli.config)
        );
        return Ok(ExitStatus::Failure);
    };
    let mut recipients: Vec<String> = match to {
        Some(to) => vec![to.to_string()],
        None => config
            .alerts
            .iter()
            .flat_map(|rule| rule.to.iter().map(|a| a.0.clone()))
            .collect(),
    };
    recipients.sort();
    recipients.dedup();
    if recipients.is_empty() {
        eprintln!("error: no recipient: pass --to ADDR or give a rule in `alerts:` a `to:`");
        return Ok(ExitStatus::Failure);
    }
    let mail = Mail {
        to: recipients.clone(),
        subject: "[litewarden TEST] alert mail works".into(),
        body: format!(
            "This is a test mail from litewarden ({}).\nAlerts for the rules in {} will be sent this way.\n",
            smtp.from.0,
            crate::paths::display(&cli.config)
        ),
    };
    let outcome = SmtpMailer::new(smtp, environment).and_then(|mailer| {
        mailer.send(&mail)?;
        Ok(mailer.server().to_string())
    });
    match outcome {
        Ok(server) => {
            print(
                out,
                format_args!(
                    "sent a test mail to {} via {server}: accepted",
                    recipients.join(", ")
                ),
            )?;
            Ok(ExitStatus::Success)
        }
        Err(e) => {
            eprintln!("error: the test mail was not delivered: {e}");
            Ok(ExitStatus::Failure)
        }
    }
}

//! The daemon's side of alerts: evaluate the rules after every wake-up,
//! hand queued mail to the outbox thread, and send the heartbeat after a
//! health round in which every database is healthy.

use std::sync::Arc;

use super::Reconciler;
use crate::alert::email::{Mailer, SmtpMailer};
use crate::alert::notify;
use crate::alert::outbox::Outbox;
use crate::alert::rules::NoticeKind;
use crate::config::{Config, Environment};
use crate::state::health::Status;

/// The mailer `config` asks for: none without `smtp:` (alerts go to the
/// log), or when its password cannot be read (logged; mail waits queued).
pub(super) fn mailer(config: &Config, environment: &Environment) -> Option<Arc<dyn Mailer>> {
    let smtp = config.smtp.as_ref()?;
    match SmtpMailer::new(smtp, environment) {
        Ok(mailer) => Some(Arc::new(mailer)),
        Err(e) => {
            tracing::error!(error = %e, "cannot set up alert mail; notifications wait in the queue until smtp: is fixed");
            None
        }
    }
}

impl Reconciler {
    /// Starts the outbox thread for the current config.
    pub(super) fn start_outbox(&mut self) {
        let mailer = mailer(&self.config, &self.environment);
        match Outbox::spawn(
            self.config.settings.state_dir.clone(),
            mailer,
            self.config.settings.group_wait,
            Arc::clone(&self.clock),
        ) {
            Ok(outbox) => self.outbox = Some(outbox),
            Err(e) => tracing::error!(error = %e, "cannot start the alert outbox thread"),
        }
    }

    /// A reload changed `smtp:` or `group_wait`: the outbox uses the new ones.
    pub(super) fn reconfigure_outbox(&self, previous: &Config) {
        let changed = previous.smtp != self.config.smtp
            || previous.settings.group_wait != self.config.settings.group_wait;
        if let (true, Some(outbox)) = (changed, &self.outbox) {
            outbox.configure(
                mailer(&self.config, &self.environment),
                self.config.settings.group_wait,
            );
        }
    }

    /// Runs the alert rules now: new states stored, notifications queued
    /// (and logged: without `smtp:` the log line is the alert).
    pub(super) fn evaluate_alerts(&mut self) {
        let notices = match notify::evaluate_and_queue(&self.config, &self.state, self.clock.now())
        {
            Ok(notices) => notices,
            Err(e) => {
                tracing::error!(error = %e, "cannot evaluate the alert rules");
                return;
            }
        };
        for notice in &notices {
            let subject = notify::subject(notice);
            match notice.kind {
                NoticeKind::Resolved => {
                    tracing::info!(rule = %notice.key.rule, db = %notice.key.database, subject = %subject, "alert resolved")
                }
                NoticeKind::Firing | NoticeKind::Repeat => {
                    tracing::warn!(rule = %notice.key.rule, db = %notice.key.database, reason = %notice.reason, subject = %subject, "alert firing")
                }
            }
        }
        if let (false, Some(outbox)) = (notices.is_empty(), &self.outbox) {
            outbox.wake();
        }
    }

    /// After a health run: when every database's latest health is healthy,
    /// GET `settings.heartbeat_url`, at most once per health interval.
    pub(super) fn heartbeat(&mut self) {
        let Some(url) = self.config.settings.heartbeat_url.clone() else {
            return;
        };
        let now = self.clock.now();
        let every = self
            .config
            .databases
            .values()
            .map(|db| db.health.every)
            .min()
            .unwrap_or_default();
        if self
            .heartbeat_at
            .is_some_and(|at| now - at < chrono::TimeDelta::from_std(every).unwrap_or_default())
        {
            return;
        }
        let reports = match self.state.all_health() {
            Ok(reports) => reports,
            Err(e) => {
                tracing::error!(error = %e, "cannot read health results for the heartbeat");
                return;
            }
        };
        let all_healthy = self.config.databases.values().all(|db| {
            reports
                .iter()
                .any(|r| r.database == db.name.as_str() && r.status == Status::Healthy)
        });
        if all_healthy && let Some(outbox) = &self.outbox {
            self.heartbeat_at = Some(now);
            outbox.heartbeat(url);
        }
    }
}

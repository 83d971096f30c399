//! From the lifecycle's notices to queued notifications and log lines.
//!
//! Owns [`evaluate_and_queue`]: gather the facts, run the pure lifecycle
//! against the stored alert states, store the new states and queue one
//! notification per notice (only with `smtp:`; without it the log line is
//! the notification), and the text of each notification: the subject
//! `[litewarden FIRING] app: backup failed` and a plain-text body that says
//! what is wrong, since when, and what to run.

use chrono::{DateTime, Utc};

use super::facts;
use super::rules::{self, Active, Notice, NoticeKind};
use crate::config::{AlertCondition, Config, JobKind};
use crate::state::StateDb;
use crate::state::alerts::NewNotification;

/// What a condition is called in a subject.
fn describe(notice: &Notice) -> String {
    match notice.condition {
        AlertCondition::JobFailed => match notice.key.job {
            Some(job) => format!("{job} failed"),
            None => "a job failed".into(),
        },
        AlertCondition::JobStuck => {
            format!("{} stuck", notice.key.job.map_or("a job", JobKind::as_str))
        }
        AlertCondition::HealthFailed => "unhealthy".into(),
        AlertCondition::BackupStale => "no recent verified backup".into(),
        AlertCondition::MigrationFailed => "migration failed".into(),
        AlertCondition::DrillFailed => "restore drill failed".into(),
        AlertCondition::DiskLow => "disk space low".into(),
        AlertCondition::ConfigInvalid => "jobs.yaml is invalid".into(),
        AlertCondition::DatabaseMissing => "database file missing".into(),
        AlertCondition::DatabaseReplaced => "database replaced or emptied".into(),
        AlertCondition::OffsiteStale => "no recent offsite copy".into(),
        AlertCondition::ReplicationLag => "replication behind".into(),
        AlertCondition::ReplicationBroken => "replication failing".into(),
    }
}

fn label(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Firing | NoticeKind::Repeat => "FIRING",
        NoticeKind::Resolved => "RESOLVED",
    }
}

/// The subject of one notification.
pub fn subject(notice: &Notice) -> String {
    let about = if notice.key.database.is_empty() {
        "litewarden".to_string()
    } else {
        notice.key.database.clone()
    };
    format!(
        "[litewarden {}] {about}: {}",
        label(notice.kind),
        describe(notice)
    )
}

/// The body of one notification: what, since when, and what to run.
pub fn body(notice: &Notice, now: DateTime<Utc>) -> String {
    let db = &notice.key.database;
    let mut text = format!(
        "{} {}\n\nrule:      {}\ndatabase:  {}\ncondition: {}\nsince:     {}\n",
        label(notice.kind),
        describe(notice),
        notice.key.rule,
        if db.is_empty() { "-" } else { db },
        notice.condition.as_str(),
        notice.since.format("%Y-%m-%d %H:%M:%SZ"),
    );
    if notice.kind == NoticeKind::Resolved {
        text.push_str(&format!(
            "resolved:  {}\nwas:       {}\n",
            now.format("%Y-%m-%d %H:%M:%SZ"),
            notice.reason
        ));
    } else {
        text.push_str(&format!("reason:    {}\n", notice.reason));
    }
    text.push_str("\nto investigate:\n  litewarden status\n");
    if !db.is_empty() {
        text.push_str(&suggestions(notice.condition, notice.key.job, db));
    }
    text
}

/// What to run for `condition` on database `db`: a restore only where the
/// database itself may be lost; a full disk or a failed job needs space or
/// the job's error first, and a restore would not help.
fn suggestions(condition: AlertCondition, job: Option<JobKind>, db: &str) -> String {
    match condition {
        AlertCondition::JobFailed | AlertCondition::JobStuck if job == Some(JobKind::Offsite) => {
            format!(
                "  litewarden backups {db} --remote   (what reached the offsite store)\n  litewarden offsite {db}   (once the store is reachable; a failed upload is also retried by itself, and the local copies wait)\n"
            )
        }
        AlertCondition::DiskLow => format!(
            "  litewarden health {db}   (which disk, how much is free)\n  litewarden prune {db} --dry-run   (what retention would free)\n"
        ),
        AlertCondition::JobFailed | AlertCondition::JobStuck | AlertCondition::BackupStale => {
            format!(
                "  litewarden health {db}\n  litewarden backups {db}\n  litewarden backup {db}   (once the cause is fixed; a failed job is also retried by itself)\n"
            )
        }
        AlertCondition::MigrationFailed => format!(
            "  litewarden migrate status {db}\n  litewarden restore {db} --before-migration VERSION   (if the database must go back)\n"
        ),
        AlertCondition::ConfigInvalid => "  litewarden check\n".to_string(),
        AlertCondition::OffsiteStale => format!(
            "  litewarden backups {db} --remote   (what reached the offsite store)\n  litewarden offsite {db}   (upload what is waiting, once the store is reachable)\n"
        ),
        AlertCondition::ReplicationLag | AlertCondition::ReplicationBroken => format!(
            "  litewarden status   (the capture's error and how far behind it is)\n  litewarden backups {db}   (the range the replica restores)\n"
        ),
        AlertCondition::HealthFailed
        | AlertCondition::DrillFailed
        | AlertCondition::DatabaseMissing
        | AlertCondition::DatabaseReplaced => format!(
            "  litewarden health {db}\n  litewarden backups {db}\n  litewarden restore {db}   (after checking the backups)\n"
        ),
    }
}

/// The active (pending and firing) alerts stored in `state`.
pub fn active_alerts(state: &StateDb) -> Result<Vec<Active>, crate::state::StateError> {
    Ok(state
        .alert_states()?
        .iter()
        .filter_map(|text| serde_json::from_str(text).ok())
        .collect())
}

/// Evaluates the rules of `config` at `now`, stores the new alert states
/// and queues what must be sent; returns the notices (for the log).
pub fn evaluate_and_queue(
    config: &Config,
    state: &StateDb,
    now: DateTime<Utc>,
) -> Result<Vec<Notice>, crate::state::StateError> {
    let previous = active_alerts(state)?;
    if config.alerts.is_empty() && previous.is_empty() {
        return Ok(Vec::new());
    }
    let facts = facts::gather(config, state, now)?;
    let (states, notices) = rules::evaluate(&config.alerts, &facts, &previous, now);
    if states == previous && notices.is_empty() {
        return Ok(notices);
    }
    let stored: Vec<((String, String, String), String)> = states
        .iter()
        .map(|a| {
            (
                (
                    a.key.rule.clone(),
                    a.key.database.clone(),
                    a.key.job.map_or("", JobKind::as_str).to_string(),
                ),
                serde_json::to_string(a).unwrap_or_default(),
            )
        })
        .collect();
    let texts: Vec<(String, String, String)> = notices
        .iter()
        .map(|n| {
            let mut to = n.to.clone();
            to.sort();
            (to.join(","), subject(n), body(n, now))
        })
        .collect();
    let queued: Vec<NewNotification> = if config.smtp.is_some() {
        notices
            .iter()
            .zip(&texts)
            .map(|(n, (to, subject, body))| NewNotification {
                created_at: now,
                recipients: to,
                rule: &n.key.rule,
                database: &n.key.database,
                kind: match n.kind {
                    NoticeKind::Firing => "firing",
                    NoticeKind::Repeat => "repeat",
                    NoticeKind::Resolved => "resolved",
                },
                subject,
                body,
            })
            .collect()
    } else {
        Vec::new()
    };
    state.save_alerts(&stored, &queued)?;
    Ok(notices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rules::AlertKey;

    fn notice(condition: AlertCondition, job: Option<JobKind>) -> Notice {
        Notice {
            key: AlertKey {
                rule: "r".into(),
                database: "app".into(),
                job,
            },
            condition,
            kind: NoticeKind::Firing,
            reason: "why".into(),
            since: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            to: vec!["ops@example.com".into()],
        }
    }

    #[test]
    fn an_offsite_failure_says_to_look_at_the_bucket_and_upload_not_to_back_up_again() {
        let now = DateTime::from_timestamp(1_800_000_100, 0).unwrap();
        let failed = body(
            &notice(AlertCondition::JobFailed, Some(JobKind::Offsite)),
            now,
        );
        assert!(failed.contains("litewarden offsite app"), "{failed}");
        assert!(!failed.contains("litewarden backup app "), "{failed}");
        let stale = notice(AlertCondition::OffsiteStale, None);
        assert_eq!(
            subject(&stale),
            "[litewarden FIRING] app: no recent offsite copy"
        );
        assert!(body(&stale, now).contains("litewarden backups app --remote"));
        let backup = body(
            &notice(AlertCondition::JobFailed, Some(JobKind::Backup)),
            now,
        );
        assert!(backup.contains("litewarden backup app "), "{backup}");
    }
}

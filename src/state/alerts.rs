//! Alert state and the outbox of notifications.
//!
//! Owns the `alerts` table (each active alert's lifecycle state, stored as
//! the alert module's JSON so a restart neither re-sends nor forgets) and the
//! `notifications` table (every notification queued, with its delivery:
//! attempts, next attempt, sent time, last error). The outbox is durable: a
//! mail server that is down loses nothing, the notification goes out when
//! it is back. Knows nothing of rules or mail.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{StateDb, StateError, sqlite};

/// A notification to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification<'a> {
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// The recipients, sorted and comma-separated (its group).
    pub recipients: &'a str,
    /// The rule.
    pub rule: &'a str,
    /// The database ("" for the whole config).
    pub database: &'a str,
    /// `firing`, `repeat` or `resolved`.
    pub kind: &'a str,
    /// The mail subject for this notification alone.
    pub subject: &'a str,
    /// Its part of the mail body.
    pub body: &'a str,
}

/// A queued notification and its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Its id.
    pub id: i64,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// The recipients, comma-separated.
    pub recipients: String,
    /// The rule.
    pub rule: String,
    /// The database.
    pub database: String,
    /// `firing`, `repeat` or `resolved`.
    pub kind: String,
    /// The subject.
    pub subject: String,
    /// The body part.
    pub body: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it was delivered (RFC 3339).
    pub sent_at: Option<String>,
    /// The last delivery error.
    pub last_error: Option<String>,
}

const NOTIFICATION_COLUMNS: &str = "id, created_at, recipients, rule, database, kind, subject, body, attempts, sent_at, last_error";

impl StateDb {
    /// The stored state of every active alert (JSON, as the alert module
    /// wrote it).
    pub fn alert_states(&self) -> Result<Vec<String>, StateError> {
        let mut statement = self
            .conn
            .prepare("SELECT state FROM alerts ORDER BY rule, database, job")
            .map_err(sqlite(&self.path, "cannot read alerts"))?;
        statement
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read alerts"))
    }

    /// Replaces the active alerts with `alerts` ((rule, database, job),
    /// state JSON) and queues `notifications`, in one transaction.
    pub fn save_alerts(
        &self,
        alerts: &[((String, String, String), String)],
        notifications: &[NewNotification],
    ) -> Result<(), StateError> {
        let failed = sqlite(&self.path, "cannot record alerts");
        let tx = self.conn.unchecked_transaction().map_err(&failed)?;
        tx.execute("DELETE FROM alerts", []).map_err(&failed)?;
        for ((rule, database, job), state) in alerts {
            tx.execute(
                "INSERT INTO alerts (rule, database, job, state) VALUES (?1, ?2, ?3, ?4)",
                params![rule, database, job, state],
            )
            .map_err(&failed)?;
        }
        for n in notifications {
            tx.execute(
                "INSERT INTO notifications (created_at, recipients, rule, database, kind, subject, body, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?1)",
                params![n.created_at.to_rfc3339(), n.recipients, n.rule, n.database, n.kind, n.subject, n.body],
            )
            .map_err(&failed)?;
        }
        tx.commit().map_err(&failed)
    }

    /// Undelivered notifications whose next attempt is due at `now`, by
    /// recipients group, for groups whose oldest member has waited
    /// `group_wait`.
    pub fn due_notifications(
        &self,
        now: DateTime<Utc>,
        group_wait: std::time::Duration,
    ) -> Result<Vec<Vec<Notification>>, StateError> {
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY recipients, id"
        );
        let mut statement = self
            .conn
            .prepare(&sql)
            .map_err(sqlite(&self.path, "cannot read notifications"))?;
        let rows: Vec<Notification> = statement
            .query_map(params![now.to_rfc3339()], notification)
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read notifications"))?;
        let wait = chrono::TimeDelta::from_std(group_wait).unwrap_or_default();
        let mut groups: Vec<Vec<Notification>> = Vec::new();
        for row in rows {
            match groups.last_mut() {
                Some(group) if group[0].recipients == row.recipients => group.push(row),
                _ => groups.push(vec![row]),
            }
        }
        groups.retain(|group| {
            group.iter().any(|n| {
                DateTime::parse_from_rfc3339(&n.created_at)
                    .is_ok_and(|at| now - at.with_timezone(&Utc) >= wait || n.attempts > 0)
            })
        });
        Ok(groups)
    }

    /// Marks notifications delivered.
    pub fn mark_delivered(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), StateError> {
        for id in ids {
            self.conn
                .execute(
                    "UPDATE notifications SET sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                    params![id, at.to_rfc3339()],
                )
                .map_err(sqlite(&self.path, "cannot update notifications"))?;
        }
        Ok(())
    }

    /// Records a failed delivery and when to try again.
    pub fn mark_undelivered(
        &self,
        ids: &[i64],
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StateError> {
        for id in ids {
            self.conn
                .execute(
                    "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1",
                    params![id, next_attempt.to_rfc3339(), error],
                )
                .map_err(sqlite(&self.path, "cannot update notifications"))?;
        }
        Ok(())
    }

    /// The most recent notifications, newest first.
    pub fn recent_notifications(&self, limit: usize) -> Result<Vec<Notification>, StateError> {
        let sql =
            format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications ORDER BY id DESC LIMIT ?1");
        let mut statement = self
            .conn
            .prepare(&sql)
            .map_err(sqlite(&self.path, "cannot read notifications"))?;
        statement
            .query_map(params![limit as i64], notification)
            .and_then(|rows| rows.collect())
            .map_err(sqlite(&self.path, "cannot read notifications"))
    }
}

fn notification(row: &rusqlite::Row) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: row.get(0)?,
        created_at: row.get(1)?,
        recipients: row.get(2)?,
        rule: row.get(3)?,
        database: row.get(4)?,
        kind: row.get(5)?,
        subject: row.get(6)?,
        body: row.get(7)?,
        attempts: row.get(8)?,
        sent_at: row.get(9)?,
        last_error: row.get(10)?,
    })
}

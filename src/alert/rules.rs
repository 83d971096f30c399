//! The alert lifecycle as a pure function.
//!
//! Owns [`evaluate`]: from the rules, the conditions that hold now
//! ([`Fact`]s), the previous alert states and `now`, it returns the new
//! states and the notifications to send. An alert is identified by rule +
//! database (+ job); it goes pending when its condition first holds, fires
//! once it has held for `for`, is re-sent every `repeat` while firing, stays
//! firing `keep_firing_for` after the condition clears (no flapping at a
//! threshold), and resolves (a mail with `send_resolved`). No I/O, no clock.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{AlertCondition, AlertRule, JobKind};

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// Which condition.
    pub condition: AlertCondition,
    /// The database ("" for the config as a whole).
    pub database: String,
    /// The job, for job conditions.
    pub job: Option<JobKind>,
    /// What is wrong, on one line.
    pub reason: String,
}

/// Which alert: rule, database and job.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    /// The rule's name.
    pub rule: String,
    /// The database ("" for the config as a whole).
    pub database: String,
    /// The job, for job conditions (stored as "" when none).
    #[serde(with = "job_or_empty")]
    pub job: Option<JobKind>,
}

/// An optional job kind stored as its name, or "" for none.
mod job_or_empty {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::config::JobKind;
    use crate::config::values::ScalarValue;

    pub fn serialize<S: Serializer>(job: &Option<JobKind>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(job.map_or("", JobKind::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<JobKind>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        JobKind::parse_scalar(&text)
            .map(Some)
            .map_err(D::Error::custom)
    }
}

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The condition holds, `for` has not elapsed.
    Pending,
    /// Firing: notified.
    Firing,
}

/// An active (pending or firing) alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    /// Which alert.
    pub key: AlertKey,
    /// Pending or firing.
    pub phase: Phase,
    /// When the condition started to hold.
    pub since: DateTime<Utc>,
    /// When it started firing.
    pub firing_since: Option<DateTime<Utc>>,
    /// When the last notification about it was queued.
    pub last_sent: Option<DateTime<Utc>>,
    /// When its condition cleared, while `keep_firing_for` keeps it firing.
    pub cleared_at: Option<DateTime<Utc>>,
    /// The latest reason.
    pub reason: String,
}

/// What a notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// It started firing.
    Firing,
    /// Still firing (`repeat`).
    Repeat,
    /// It resolved.
    Resolved,
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Which alert.
    pub key: AlertKey,
    /// The rule's condition.
    pub condition: AlertCondition,
    /// Firing, repeat or resolved.
    pub kind: NoticeKind,
    /// What is wrong (or was).
    pub reason: String,
    /// Since when the condition held.
    pub since: DateTime<Utc>,
    /// The recipients.
    pub to: Vec<String>,
}

fn delta(duration: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

fn matches(rule: &AlertRule, fact: &Fact) -> bool {
    fact.condition == rule.when
        && (rule.databases.is_empty() || rule.databases.iter().any(|d| d.as_str() == fact.database))
        && (rule.jobs.is_empty() || fact.job.is_some_and(|job| rule.jobs.contains(&job)))
}

/// The next alert states and the notifications due, at `now`.
pub fn evaluate(
    rules: &[AlertRule],
    facts: &[Fact],
    previous: &[Active],
    now: DateTime<Utc>,
) -> (Vec<Active>, Vec<Notice>) {
    let previous: BTreeMap<&AlertKey, &Active> = previous.iter().map(|a| (&a.key, a)).collect();
    let mut states = Vec::new();
    let mut notices = Vec::new();
    for rule in rules {
        let mut holding: BTreeMap<AlertKey, &Fact> = BTreeMap::new();
        for fact in facts.iter().filter(|f| matches(rule, f)) {
            let key = AlertKey {
                rule: rule.name.clone(),
                database: fact.database.clone(),
                job: fact.job,
            };
            holding.entry(key).or_insert(fact);
        }
        let notice = |key: &AlertKey, kind, reason: &str, since| Notice {
            key: key.clone(),
            condition: rule.when,
            kind,
            reason: reason.to_string(),
            since,
            to: rule.to.iter().map(|a| a.0.clone()).collect(),
        };
        for (key, fact) in &holding {
            let mut state = previous.get(key).map(|a| (*a).clone()).unwrap_or(Active {
                key: key.clone(),
                phase: Phase::Pending,
                since: now,
                firing_since: None,
                last_sent: None,
                cleared_at: None,
                reason: fact.reason.clone(),
            });
            state.reason = fact.reason.clone();
            state.cleared_at = None;
            match state.phase {
                Phase::Pending if now - state.since >= delta(rule.for_) => {
                    state.phase = Phase::Firing;
                    state.firing_since = Some(now);
                    state.last_sent = Some(now);
                    notices.push(notice(key, NoticeKind::Firing, &state.reason, state.since));
                }
                Phase::Pending => {}
                Phase::Firing => {
                    if let (Some(repeat), Some(last)) = (rule.repeat, state.last_sent)
                        && now - last >= delta(repeat)
                    {
                        state.last_sent = Some(now);
                        notices.push(notice(key, NoticeKind::Repeat, &state.reason, state.since));
                    }
                }
            }
            states.push(state);
        }
        for (key, before) in previous
            .iter()
            .filter(|(k, _)| k.rule == rule.name && !holding.contains_key(*k))
        {
            if before.phase != Phase::Firing {
                continue;
            }
            let cleared = before.cleared_at.unwrap_or(now);
            if now - cleared < delta(rule.keep_firing_for) {
                let mut kept = (*before).clone();
                kept.cleared_at = Some(cleared);
                states.push(kept);
            } else if rule.send_resolved {
                notices.push(notice(
                    key,
                    NoticeKind::Resolved,
                    &before.reason,
                    before.since,
                ));
            }
        }
    }
    (states, notices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_key_reads_back_its_job_typed_and_older_states_without_one() {
        let key = AlertKey {
            rule: "r".into(),
            database: "app".into(),
            job: Some(JobKind::Drill),
        };
        let text = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<AlertKey>(&text).unwrap(), key);
        let older: AlertKey =
            serde_json::from_str(r#"{"rule":"r","database":"","job":""}"#).unwrap();
        assert_eq!(older.job, None);
        assert!(
            serde_json::from_str::<AlertKey>(r#"{"rule":"r","database":"","job":"x"}"#).is_err()
        );
    }
    use std::time::Duration;

    fn rule(for_: u64, repeat: Option<u64>, keep: u64) -> AlertRule {
        AlertRule {
            name: "backup-failed".into(),
            when: AlertCondition::JobFailed,
            jobs: vec![JobKind::Backup],
            databases: Vec::new(),
            to: vec![crate::config::values::EmailAddress(
                "ops@example.com".into(),
            )],
            for_: Duration::from_secs(for_),
            repeat: repeat.map(Duration::from_secs),
            send_resolved: true,
            keep_firing_for: Duration::from_secs(keep),
        }
    }

    fn failed(database: &str) -> Fact {
        Fact {
            condition: AlertCondition::JobFailed,
            database: database.into(),
            job: Some(JobKind::Backup),
            reason: "disk full".into(),
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn kinds(notices: &[Notice]) -> Vec<NoticeKind> {
        notices.iter().map(|n| n.kind).collect()
    }

    #[test]
    fn an_alert_is_pending_for_its_for_then_fires_once_and_repeats_at_its_interval() {
        let rules = [rule(600, Some(3600), 0)];
        let facts = [failed("app")];
        let (states, notices) = evaluate(&rules, &facts, &[], at(0));
        assert_eq!(states[0].phase, Phase::Pending);
        assert!(notices.is_empty());
        let (states, notices) = evaluate(&rules, &facts, &states, at(599));
        assert!(notices.is_empty(), "not before `for`");
        let (states, notices) = evaluate(&rules, &facts, &states, at(600));
        assert_eq!(kinds(&notices), [NoticeKind::Firing]);
        let (states, notices) = evaluate(&rules, &facts, &states, at(1200));
        assert!(notices.is_empty(), "nothing more within repeat");
        let (_, notices) = evaluate(&rules, &facts, &states, at(4200));
        assert_eq!(kinds(&notices), [NoticeKind::Repeat]);
    }

    #[test]
    fn a_cleared_alert_resolves_and_a_pending_one_is_dropped_quietly() {
        let rules = [rule(0, None, 0)];
        let (states, notices) = evaluate(&rules, &[failed("app")], &[], at(0));
        assert_eq!(kinds(&notices), [NoticeKind::Firing]);
        let (states, notices) = evaluate(&rules, &[], &states, at(10));
        assert_eq!(kinds(&notices), [NoticeKind::Resolved]);
        assert!(states.is_empty());
        let slow = [rule(600, None, 0)];
        let (states, _) = evaluate(&slow, &[failed("app")], &[], at(0));
        let (states, notices) = evaluate(&slow, &[], &states, at(10));
        assert!(states.is_empty() && notices.is_empty());
    }

    #[test]
    fn keep_firing_for_stops_flapping_around_a_threshold() {
        let rules = [rule(0, None, 300)];
        let (states, _) = evaluate(&rules, &[failed("app")], &[], at(0));
        let (states, notices) = evaluate(&rules, &[], &states, at(10));
        assert!(notices.is_empty(), "kept firing");
        let (states, notices) = evaluate(&rules, &[failed("app")], &states, at(20));
        assert!(notices.is_empty(), "back again: no new firing mail");
        let (states, _) = evaluate(&rules, &[], &states, at(30));
        let (_, notices) = evaluate(&rules, &[], &states, at(330));
        assert_eq!(kinds(&notices), [NoticeKind::Resolved]);
    }

    #[test]
    fn each_database_is_its_own_alert_and_filters_apply() {
        let mut only_app = rule(0, None, 0);
        only_app.databases = vec![crate::config::DbName::new("app").unwrap()];
        let facts = [failed("app"), failed("other")];
        let (states, notices) = evaluate(&[rule(0, None, 0)], &facts, &[], at(0));
        assert_eq!((states.len(), notices.len()), (2, 2));
        let (states, _) = evaluate(&[only_app], &facts, &[], at(0));
        assert_eq!(states.len(), 1);
        let health = Fact {
            condition: AlertCondition::JobFailed,
            job: Some(JobKind::Health),
            ..failed("app")
        };
        let (states, _) = evaluate(&[rule(0, None, 0)], &[health], &[], at(0));
        assert!(states.is_empty(), "jobs: [backup] only");
    }
}

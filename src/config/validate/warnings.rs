//! Warnings about settings that cannot work together: a backup-age check
//! the schedule fails between backups, a `keep_within` shorter than the
//! backup interval; and the gaps of a schedule they are measured with.

use std::time::Duration;

use chrono::TimeZone;

use super::{FieldPath, Sourced, Validator};
use crate::config::model::*;

impl Validator<'_> {
    /// Warns when the newest backup must regularly be older than
    /// `max_backup_age`, so the health check would fail between backups.
    pub(super) fn check_backup_age(
        &mut self,
        backup: &Sourced<Backup>,
        health: &Sourced<Health>,
        timezone: chrono_tz::Tz,
    ) {
        let Some(max_age) = health.value.max_backup_age else {
            return;
        };
        if !backup.value.enabled {
            self.warn(&health.path, "scheduled backups are disabled, so the backup-age check will fail once the last backup is older than this");
            return;
        }
        let (_, gap) = self.gaps(&backup.value.schedule, timezone);
        if max_age < gap {
            self.warn(
                &health.path,
                format!(
                    "max_backup_age {} is shorter than the time between backups ({}), so health will fail before each backup",
                    humantime::format_duration(max_age),
                    humantime::format_duration(gap)
                ),
            );
        }
    }

    /// The (shortest, longest) gap between two runs of a schedule; for a
    /// cron pattern, over its next 100 occurrences, cached per pattern (1000
    /// databases usually share one).
    pub(super) fn gaps(
        &mut self,
        schedule: &Schedule,
        timezone: chrono_tz::Tz,
    ) -> (Duration, Duration) {
        let pattern = match schedule {
            Schedule::Every(every) => return (*every, *every),
            Schedule::Cron(pattern) => pattern,
        };
        let key = format!("{}|{}", pattern.as_str(), timezone.name());
        if let Some(gaps) = self.cron_gaps.get(&key) {
            return *gaps;
        }
        let start = timezone.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).single();
        let gaps: Vec<Duration> = start
            .map(|start| {
                let times: Vec<_> = pattern.cron().iter_after(start).take(100).collect();
                times
                    .windows(2)
                    .filter_map(|pair| (pair[1] - pair[0]).to_std().ok())
                    .collect()
            })
            .unwrap_or_default();
        let result = (
            gaps.iter().min().copied().unwrap_or(Duration::ZERO),
            gaps.iter().max().copied().unwrap_or(Duration::ZERO),
        );
        self.cron_gaps.insert(key, result);
        result
    }

    /// Warns when `keep_within` is shorter than the time between backups:
    /// the rule can then never keep more than the newest backup.
    pub(super) fn check_keep_within(
        &mut self,
        backup: &Backup,
        within_path: &FieldPath,
        timezone: chrono_tz::Tz,
    ) {
        let Some(within) = backup.retention.keep_within else {
            return;
        };
        let (shortest, _) = self.gaps(&backup.schedule, timezone);
        if backup.enabled && !within.is_zero() && within < shortest {
            self.warn(
                within_path,
                format!(
                    "keep_within {} is shorter than the time between backups ({}), so it never keeps more than the newest backup",
                    humantime::format_duration(within),
                    humantime::format_duration(shortest)
                ),
            );
        }
    }
}

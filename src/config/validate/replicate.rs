//! Validation of a database's `replicate:` block.

use std::time::Duration;

use super::{FieldPath, Validator, v};
use crate::config::model::{Backup, JournalMode, Pragmas, Replicate, ReplicateTo};
use crate::config::raw::RawReplicate;
use crate::config::values::HumanDuration;

/// How often commits are shipped by default.
pub const DEFAULT_SYNC_EVERY: Duration = Duration::from_secs(1);

/// How far back point-in-time restore reaches by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How far behind replication may fall by default.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(10);

/// The shortest `sync_every`: shorter ones cost CPU without losing less.
const MIN_SYNC_EVERY: Duration = Duration::from_millis(100);

impl Validator<'_> {
    /// The `replicate:` block at `path`; `None` (with errors reported) when
    /// it is invalid.
    pub(super) fn replicate(
        &mut self,
        raw: &RawReplicate,
        path: &FieldPath,
        pragmas: &Pragmas,
        backup: &Backup,
        timezone: chrono_tz::Tz,
    ) -> Option<Replicate> {
        let to = v(&raw.to).unwrap_or(ReplicateTo::Local);
        let sync_every = v(&raw.sync_every)
            .map(HumanDuration::get)
            .unwrap_or(DEFAULT_SYNC_EVERY);
        let window = v(&raw.window)
            .map(HumanDuration::get)
            .unwrap_or(DEFAULT_WINDOW);
        let mut valid = true;
        if sync_every < MIN_SYNC_EVERY {
            self.error(&path.key("sync_every"), "must be at least 100ms");
            valid = false;
        }
        if window < sync_every.max(Duration::from_secs(60)) {
            self.error(
                &path.key("window"),
                "must be at least a minute (and longer than sync_every)",
            );
            valid = false;
        }
        if pragmas.persistent.journal_mode != Some(JournalMode::Wal) {
            self.error(
                path,
                "replication ships the write-ahead log: set `pragmas: { journal_mode: wal }` for this database",
            );
            valid = false;
        }
        if to == ReplicateTo::Offsite && backup.offsite.is_none() {
            self.error(
                &path.key("to"),
                "`to: offsite` needs an offsite store: add `settings.offsite` or this database's `backup.offsite`",
            );
            valid = false;
        }
        if valid && backup.enabled {
            let (_, gap) = self.gaps(&backup.schedule, timezone);
            if window < gap {
                self.warn(
                    &path.key("window"),
                    format!(
                        "window {} is shorter than the time between backups ({}): a point older than the window is restorable only at a backup",
                        humantime::format_duration(window),
                        humantime::format_duration(gap)
                    ),
                );
            }
        }
        let max_lag = v(&raw.max_lag)
            .map(HumanDuration::get)
            .unwrap_or(DEFAULT_MAX_LAG);
        if max_lag <= sync_every {
            self.warn(
                &path.key("max_lag"),
                "max_lag is not longer than sync_every, so replication_lag holds between two steps",
            );
        }
        valid.then_some(Replicate {
            to,
            sync_every,
            window,
            max_lag,
        })
    }
}

//! The daemon's own rows in the state database: the schedule (only the
//! rows that changed) and the daemon's heartbeat, and reopening the state
//! database when its file was replaced under the daemon.

use std::time::Instant;

use super::{FILE_CHECK_SPACING, Reconciler};
use crate::state::StateDb;
use crate::state::daemon::DaemonRow;

impl Reconciler {
    /// Reopens the state database when its file was deleted, replaced or
    /// damaged under the daemon; the schedule and daemon row are then
    /// written again by [`Self::write_status`].
    pub(super) fn keep_state_intact(&mut self) {
        if self.state.is_intact() {
            return;
        }
        tracing::warn!(state_dir = %self.config.settings.state_dir.display(), "the state database was deleted or changed under the daemon; reopening it");
        match StateDb::open(&self.config.settings.state_dir) {
            Ok(state) => {
                self.state = state;
                self.schedule_stale = true;
            }
            Err(e) => tracing::error!(error = %e, "cannot reopen the state database"),
        }
    }

    /// Writes the schedule rows that changed and, at most every
    /// [`FILE_CHECK_SPACING`] (or when `now`), the daemon's heartbeat to
    /// the state database, for `litewarden status` and `/status`.
    pub(super) fn write_status(&mut self, now: bool) {
        let replace = self.schedule_stale;
        if replace {
            self.jobs.mark_all_changed();
        }
        let changes = self.jobs.take_changes();
        if !changes.is_empty() || replace {
            // A failed write loses the changes taken: the next one
            // rewrites the whole table.
            self.schedule_stale = self
                .state
                .write_schedule(&changes.write, &changes.remove, replace)
                .inspect_err(|e| tracing::error!(error = %e, "cannot write the schedule"))
                .is_err();
        }
        if !now
            && self
                .status_written_at
                .is_some_and(|at| at.elapsed() < FILE_CHECK_SPACING)
        {
            return;
        }
        self.status_written_at = Some(Instant::now());
        let row = DaemonRow {
            pid: i64::from(std::process::id()),
            started_at: self.started_at.clone(),
            config_ok: self.config_error.is_none(),
            config_error: self.config_error.clone(),
            heartbeat_at: self.clock.now().to_rfc3339(),
        };
        if let Err(e) = self.state.write_daemon(&row) {
            tracing::error!(error = %e, "cannot write the daemon status");
        }
    }
}

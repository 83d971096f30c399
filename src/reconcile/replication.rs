//! The daemon's captures: one long-running task per replicated database,
//! started, restarted when its settings change and stopped when its
//! `replicate:` goes away; their reports recorded in the state database.
//!
//! Owns the set of running captures and what each was started with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Event, Reconciler};
use crate::config::{Database, DbName, JobKind, Offsite, Replicate};
use crate::runner::JobKey;

/// What a capture was started with: a change restarts it.
#[derive(Debug, Clone)]
struct Started {
    path: PathBuf,
    backup_dir: PathBuf,
    replicate: Replicate,
    offsite: Option<Arc<Offsite>>,
    database: Arc<Database>,
}

impl Started {
    /// Whether a capture started with `other` is the one this wants (the
    /// rest of the database's settings do not touch the capture).
    fn same_capture(&self, other: &Started) -> bool {
        (&self.path, &self.backup_dir, &self.replicate, &self.offsite)
            == (
                &other.path,
                &other.backup_dir,
                &other.replicate,
                &other.offsite,
            )
    }
}

/// The running captures.
#[derive(Debug, Default)]
pub(super) struct Captures {
    running: BTreeMap<DbName, Started>,
}

impl Reconciler {
    /// Starts, restarts and stops captures to match the config.
    pub(super) fn sync_captures(&mut self) {
        let wanted: BTreeMap<DbName, Started> = self
            .config
            .databases
            .values()
            .filter_map(|db| {
                let replicate = db.replicate.clone()?;
                Some((
                    db.name.clone(),
                    Started {
                        path: db.path.clone(),
                        backup_dir: self.config.settings.backup_dir.clone(),
                        replicate,
                        offsite: db.backup.offsite.clone(),
                        database: Arc::clone(db),
                    },
                ))
            })
            .collect();
        let running = std::mem::take(&mut self.captures.running);
        for (database, started) in running {
            if wanted
                .get(&database)
                .is_some_and(|wanted| wanted.same_capture(&started))
            {
                self.captures.running.insert(database, started);
                continue;
            }
            self.runner.cancel_long(&key(&database));
            tracing::info!(db = %database, "replication: capture stopped");
        }
        for (database, started) in wanted {
            if self.captures.running.contains_key(&database) {
                continue;
            }
            let events = self.events.clone();
            let clock = Arc::clone(&self.clock);
            let task = {
                let started = started.clone();
                move |cancel: crate::runner::Cancel| {
                    crate::replicate::run(
                        &started.database,
                        &started.backup_dir,
                        clock.as_ref(),
                        &|| cancel.is_cancelled(),
                        &mut |report| {
                            let _ = events.send(Event::Replicated(report));
                        },
                    );
                }
            };
            match self.runner.start_long(key(&database), task) {
                Ok(()) => {
                    tracing::info!(db = %database, sync_every = %humantime::format_duration(started.replicate.sync_every), "replication: capture started");
                    self.captures.running.insert(database, started);
                }
                Err(e) => tracing::error!(error = %e, "replication: cannot start the capture"),
            }
        }
        let names: Vec<&str> = self.captures.running.keys().map(DbName::as_str).collect();
        if let Err(e) = self.state.keep_replication_of(&names) {
            tracing::error!(error = %e, "cannot update the replication rows");
        }
    }

    /// Records a capture's report; one sent by a capture stopped since
    /// (its `replicate:` removed) is dropped, so its row stays gone.
    pub(super) fn replicated(&mut self, report: crate::replicate::Report) {
        if !self.captures.running.contains_key(report.database.as_str()) {
            return;
        }
        if let Err(e) = self.state.record_replication(&report) {
            tracing::error!(error = %e, "cannot record replication");
        }
    }
}

fn key(database: &DbName) -> JobKey {
    JobKey {
        database: database.clone(),
        kind: JobKind::Replicate,
    }
}

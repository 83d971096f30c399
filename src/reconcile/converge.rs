//! Converging the files from the daemon: observe, plan, hold back what
//! must wait, then apply inline (startup) or on each database's worker
//! (reloads), and follow up when a worker is done.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Reconciler;
use crate::apply::{self, ApplyOptions, ApplyReport};
use crate::config::{Config, Database, JobKind};
use crate::db::lock::DatabaseLock;
use crate::plan::{self, Desired, Observed, Problem};
use crate::runner::{Finished, JobKey, Task, Work};

/// Where a converge applies its changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// On the loop's thread, before anything is scheduled (startup).
    Inline,
    /// On each database's worker (reloads), so the loop never waits.
    OnWorkers,
}

impl Reconciler {
    /// Converges the files: watches what the config names, re-observes the
    /// databases `fresh` selects (reusing the last observation for the
    /// others), applies the plan, then re-arms the jobs whose definition
    /// changed.
    pub(super) fn converge(&mut self, fresh: &dyn Fn(&Database) -> bool, mode: Mode) {
        let config = Arc::clone(&self.config);
        self.restart_watcher();
        match crate::observe::observe_with(&config, fresh, &self.observed, self.clock.now()) {
            Ok(mut observed) => {
                self.claim_databases(&config, &mut observed);
                for (database, error) in &observed.unreadable {
                    if self.observed.unreadable.get(database) != Some(error) {
                        tracing::error!(db = %database, error = %error, "cannot read the database; leaving it alone");
                    }
                }
                let mut plan = plan::diff(&observed, &Desired::from_config(&config));
                let problems = std::mem::take(&mut plan.problems);
                self.announce_problems(&problems);
                let not_observed = |db: &Database| !fresh(db);
                if let Err(e) = apply::remember_databases(
                    &config,
                    &self.state,
                    self.clock.as_ref(),
                    &not_observed,
                    &observed.identities,
                ) {
                    tracing::error!(error = %e, "cannot record what the databases look like");
                }
                for database in self.held.hold_back_migrations(&mut plan, &config) {
                    tracing::debug!(db = %database, "migrations held back after a failure");
                }
                for change in self.held.hold_back_operator_changes(&mut plan) {
                    tracing::warn!(change = %change, "left to the operator: `litewarden apply --allow-vacuum` runs a VACUUM rewrite when a pause is acceptable, `litewarden migrate up` runs manual migrations");
                }
                if !plan.is_empty() {
                    match mode {
                        Mode::Inline => self.apply_plan(&config, &plan, &mut observed),
                        Mode::OnWorkers => self.dispatch_plan(&config, plan, &mut observed),
                    }
                }
                self.observed = observed;
            }
            Err(e) => tracing::error!(error = %e, "cannot observe the databases"),
        }
        self.rearm();
        self.sync_captures();
    }

    /// Applies `plan`, holds back migrations that failed, and re-observes
    /// the databases it changed into `observed`.
    fn apply_plan(&mut self, config: &Config, plan: &plan::Plan, observed: &mut Observed) {
        let options = ApplyOptions {
            allow_vacuum: false,
            scheduled: true,
        };
        match apply::apply(config, plan, options, self.clock.as_ref()) {
            Ok(report) => {
                tracing::info!(summary = %report.summary(), "converged");
                self.hold_failed_migrations(&report, config);
            }
            Err(e) => tracing::error!(error = %e, "cannot converge"),
        }
        for change in &plan.changes {
            if let Some(database) = config.databases.get(change.database()) {
                observed.files.remove(&database.path);
            }
        }
        // Re-observe what was just applied now, so the next reload starts
        // from a complete observation.
        match crate::observe::observe_with(config, &|_| false, observed, self.clock.now()) {
            Ok(after) => *observed = after,
            Err(e) => tracing::warn!(error = %e, "cannot re-observe the converged databases"),
        }
    }

    /// Queues each database's changes on the runner (after whatever is
    /// queued for it, so a new database is created before its first
    /// backup). Databases not in the config (unmanage) are done here.
    /// A database whose earlier changes are still running is left for the
    /// re-plan that follows them.
    fn dispatch_plan(&mut self, config: &Arc<Config>, plan: plan::Plan, observed: &mut Observed) {
        let mut by_database: BTreeMap<String, Vec<plan::Change>> = BTreeMap::new();
        for change in plan.changes {
            by_database
                .entry(change.database().to_string())
                .or_default()
                .push(change);
        }
        let mut here = Vec::new();
        for (name, changes) in by_database {
            let Some(database) = config.databases.get(name.as_str()) else {
                here.extend(changes);
                continue;
            };
            observed.files.remove(&database.path);
            if !self.converging.insert(name.clone()) {
                self.replan.insert(name);
                continue;
            }
            self.runs_started += 1;
            let run_id = self.runs_started;
            tracing::debug!(db = %name, job = "apply", run_id, changes = changes.len(), "changes queued");
            self.runner.submit(Work {
                key: JobKey {
                    database: database.name.clone(),
                    kind: JobKind::Apply,
                },
                task: Task::Converge(Box::new(plan::Plan {
                    changes,
                    ..plan::Plan::default()
                })),
                database: Arc::clone(database),
                config: Arc::clone(config),
                started: self.clock.now(),
                run_id,
            });
        }
        self.dispatch();
        if !here.is_empty() {
            let local = plan::Plan {
                changes: here,
                ..plan::Plan::default()
            };
            self.apply_plan(config, &local, observed);
        }
    }

    /// A worker finished a reload's changes: remember failed migrations,
    /// and plan that database again if a reload asked for more while they
    /// ran (a failure waits for the next reload instead of looping).
    pub(super) fn converged(&mut self, finished: Finished) {
        let database = finished.key.database.to_string();
        self.converging.remove(&database);
        let asked_again = self.replan.remove(&database);
        if let Some(report) = &finished.report {
            let config = Arc::clone(&self.config);
            self.hold_failed_migrations(report, &config);
        }
        if asked_again && finished.result.is_ok() && !self.draining {
            self.converge(
                &|db: &Database| db.name.as_str() == database,
                Mode::OnWorkers,
            );
        }
    }

    /// Claims the databases not claimed yet (added by a reload, or created
    /// since); one another litewarden manages is left alone as unreadable.
    /// Claims of databases no longer in the config are released.
    fn claim_databases(&mut self, config: &Config, observed: &mut Observed) {
        self.locks
            .retain(|name, _| config.databases.contains_key(name.as_str()));
        for database in config.databases.values() {
            let name = database.name.as_str();
            if self.locks.get(name).is_some_and(DatabaseLock::held) {
                continue;
            }
            match DatabaseLock::acquire(name, &database.path, &config.settings.state_dir) {
                Ok(lock) => {
                    self.locks.insert(name.to_string(), lock);
                }
                Err(error) => {
                    observed
                        .unreadable
                        .insert(name.to_string(), error.to_string());
                }
            }
        }
    }

    /// Logs each problem once while it lasts (and once when it is gone), and
    /// records its event (`database_missing`; a `database_replaced` event is
    /// recorded with the discontinuity itself).
    fn announce_problems(&mut self, problems: &[Problem]) {
        let now: BTreeMap<String, &Problem> = problems
            .iter()
            .map(|p| (format!("{}/{}", p.database(), p.event()), p))
            .collect();
        for (key, problem) in &now {
            if self.problems.insert(key.clone()) {
                tracing::error!(db = %problem.database(), event = problem.event(), problem = %problem, "left alone until the operator acts");
                if let Problem::Missing { .. } = problem
                    && let Err(e) = self.state.record_event(
                        Some(problem.database().as_str()),
                        problem.event(),
                        &problem.to_string(),
                        self.clock.now(),
                    )
                {
                    tracing::error!(error = %e, "cannot record an event");
                }
            }
        }
        self.problems.retain(|key| {
            let lasting = now.contains_key(key);
            if !lasting {
                tracing::info!(problem = %key, "resolved");
            }
            lasting
        });
    }

    /// Holds back the migrations that failed in `report` (see
    /// [`HeldChanges::record`](super::held::HeldChanges::record)) and says so.
    fn hold_failed_migrations(&mut self, report: &ApplyReport, config: &Config) {
        for database in self.held.record(report, config) {
            tracing::warn!(db = %database, "automatic migrations stopped after a failure; they run again when a migration file changes, on SIGHUP, or with `litewarden migrate up`");
        }
    }
}

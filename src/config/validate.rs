//! Raw `jobs.yaml` types to the validated [`Config`].
//!
//! Owns the semantic rules of the file: defaults merged key by key, paths
//! resolved against the config file's directory, cross-field checks. Every
//! problem is collected (never only the first) as a [`Diagnostic`] with the
//! `line:column` of the offending value, found in the position-aware
//! [`Document`]. Pure: no file system, no environment, no clock.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::locate::{Document, FieldPath};
use super::model::*;
use super::raw::*;
use super::values::{CronPattern, HumanDuration, ScalarValue, did_you_mean};
use super::{Diagnostic, Severity};
use crate::paths;

mod maintenance;
mod offsite;
mod replicate;
mod warnings;

pub use self::replicate::{DEFAULT_SYNC_EVERY, DEFAULT_WINDOW};

/// The outcome of a successful validation.
#[derive(Debug)]
pub struct Validated {
    /// The configuration.
    pub config: Config,
    /// Settings that work, but probably not as intended.
    pub warnings: Vec<Diagnostic>,
}

/// Turns the raw file into a [`Config`], or every error found.
pub fn validate(
    raw: RawConfig,
    document: &Document,
    label: &str,
    file: &Path,
) -> Result<Validated, Vec<Diagnostic>> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut v = Validator {
        document,
        label,
        base,
        diagnostics: Vec::new(),
        cron_gaps: HashMap::new(),
        crons: HashMap::new(),
        current: None,
        settings_offsite: None,
        inherited_by: BTreeMap::new(),
    };
    let config = v.config(raw, file);
    for (index, databases) in &v.inherited_by {
        let diagnostic = &mut v.diagnostics[*index];
        diagnostic.message = format!(
            "{} (inherited by database{} {})",
            diagnostic.message,
            if databases.len() == 1 { "" } else { "s" },
            databases.join(", ")
        );
    }
    let (errors, warnings): (Vec<_>, Vec<_>) = v
        .diagnostics
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    if errors.is_empty() {
        Ok(Validated { config, warnings })
    } else {
        Err(errors)
    }
}

struct Validator<'a> {
    document: &'a Document,
    label: &'a str,
    base: &'a Path,
    diagnostics: Vec<Diagnostic>,
    cron_gaps: HashMap<String, (Duration, Duration)>,
    /// Each cron pattern once: databases that inherit or repeat a pattern
    /// share it (at 10 000 databases a copy each was 100 MB).
    crons: HashMap<String, Arc<CronPattern>>,
    /// The database being validated, while one is.
    current: Option<String>,
    /// `settings.offsite`, validated once, and whether it sets its own
    /// retention (else each database's local retention applies).
    settings_offsite: Option<(Arc<Offsite>, bool)>,
    /// For each diagnostic at a `defaults:` key (by index), the databases
    /// that inherit the value: it is reported once, naming them.
    inherited_by: BTreeMap<usize, Vec<String>>,
}

/// Marks a block whose errors are already reported.
struct Invalid;

/// A merged value and the key path it came from.
struct Sourced<T> {
    value: T,
    path: FieldPath,
}

fn v<T>(value: &Option<super::interpolate::Expanded<T>>) -> Option<T>
where
    T: Clone,
{
    value.as_ref().map(|e| e.0.clone())
}

impl Validator<'_> {
    fn report(&mut self, severity: Severity, path: &FieldPath, message: impl Into<String>) {
        let diagnostic = Diagnostic {
            severity,
            file: self.label.to_string(),
            position: self.document.locate(path),
            field: path.to_string(),
            message: message.into(),
        };
        let inherited = match &self.current {
            Some(database) if diagnostic.field.starts_with("defaults.") => database.clone(),
            _ => {
                self.diagnostics.push(diagnostic);
                return;
            }
        };
        let same = self.diagnostics.iter().position(|d| {
            d.severity == diagnostic.severity
                && d.position == diagnostic.position
                && d.field == diagnostic.field
                && d.message == diagnostic.message
        });
        let index = same.unwrap_or_else(|| {
            self.diagnostics.push(diagnostic);
            self.diagnostics.len() - 1
        });
        self.inherited_by.entry(index).or_default().push(inherited);
    }

    fn error(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.report(Severity::Error, path, message);
    }

    fn warn(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.report(Severity::Warning, path, message);
    }

    fn error_at_key(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            file: self.label.to_string(),
            position: self.document.locate_key(path),
            field: path.to_string(),
            message: message.into(),
        });
    }

    fn config(&mut self, raw: RawConfig, file: &Path) -> Config {
        if raw.version.0 != 1 {
            self.error(
                &FieldPath::root("version"),
                format!(
                    "unsupported version {}; this litewarden reads version 1",
                    raw.version.0
                ),
            );
        }
        let settings = self.settings(&raw.settings);
        let defaults_path = FieldPath::root("defaults");
        let mut databases = BTreeMap::new();
        let mut by_path: BTreeMap<PathBuf, (String, FieldPath)> = BTreeMap::new();
        for (name, raw_db) in &raw.databases {
            let db_path = FieldPath::root("databases").key(name);
            self.current = Some(name.clone());
            let database = self.database(
                name,
                raw_db,
                &raw.defaults,
                &defaults_path,
                &db_path,
                &settings,
            );
            self.current = None;
            let Some(database) = database else {
                continue;
            };
            let path_field = db_path.key("path");
            if let Some((other, other_field)) = by_path.get(&database.path) {
                let (later, earlier_name) =
                    if self.document.locate(&path_field) > self.document.locate(other_field) {
                        (path_field.clone(), other.clone())
                    } else {
                        (other_field.clone(), name.clone())
                    };
                self.error(
                    &later,
                    format!(
                        "`{}` is also the path of database `{earlier_name}`; each database needs its own file",
                        paths::display(&database.path)
                    ),
                );
            } else {
                by_path.insert(database.path.clone(), (name.clone(), path_field));
            }
            databases.insert(database.name.clone(), Arc::new(database));
        }
        if raw.databases.is_empty() {
            self.warn(
                &FieldPath::root("databases"),
                "no databases are declared; litewarden has nothing to manage",
            );
        }
        let smtp = raw.smtp.as_ref().and_then(|smtp| self.smtp(smtp));
        let alerts = self.alerts(&raw.alerts, &databases, smtp.is_some());
        Config {
            file: file.to_path_buf(),
            settings,
            databases,
            smtp,
            alerts,
        }
    }

    fn settings(&mut self, raw: &RawSettings) -> Settings {
        let path = FieldPath::root("settings");
        let state_dir = self.resolve(
            raw.state_dir
                .as_ref()
                .map_or(DEFAULT_STATE_DIR, |t| t.0.as_str()),
        );
        let backup_dir = self.resolve(
            raw.backup_dir
                .as_ref()
                .map_or(DEFAULT_BACKUP_DIR, |t| t.0.as_str()),
        );
        if state_dir == backup_dir {
            self.error(
                &path.key("backup_dir"),
                "backup_dir must differ from state_dir",
            );
        }
        for (key, value) in [
            ("state_dir", &raw.state_dir),
            ("backup_dir", &raw.backup_dir),
        ] {
            if value.as_ref().is_some_and(|t| t.0.trim().is_empty()) {
                self.error(&path.key(key), "must not be empty");
            }
        }
        if let Some(offsite) = &raw.offsite {
            self.settings_offsite = self
                .offsite(offsite, &path.key("offsite"), None)
                .map(|valid| (Arc::new(valid), offsite.retention.is_some()));
        }
        let listen = v(&raw.listen);
        let http = Http {
            token_env: raw
                .http
                .as_ref()
                .and_then(|http| http.token_env.as_ref())
                .map(|name| name.0.clone()),
            metrics_public: raw
                .http
                .as_ref()
                .and_then(|http| v(&http.metrics_public))
                .unwrap_or(false),
        };
        if listen.is_some_and(|address| !address.ip().is_loopback()) && http.token_env.is_none() {
            self.error(
                &path.key("listen"),
                "a listener beyond loopback shows database names, paths and errors: set `settings.http.token_env` to the environment variable holding a bearer token (e.g. `http: { token_env: LITEWARDEN_TOKEN }`), or listen on 127.0.0.1",
            );
        }
        Settings {
            state_dir,
            backup_dir,
            timezone: v(&raw.timezone).unwrap_or(chrono_tz::UTC),
            listen,
            http,
            max_parallel_jobs: match v(&raw.max_parallel_jobs) {
                Some(0) => {
                    self.error(&path.key("max_parallel_jobs"), "must be at least 1");
                    DEFAULT_MAX_PARALLEL_JOBS
                }
                Some(n) => n,
                None => DEFAULT_MAX_PARALLEL_JOBS,
            },
            workers: match v(&raw.workers) {
                Some(0) => {
                    self.error(&path.key("workers"), "must be at least 1");
                    None
                }
                n => n,
            },
            splay: v(&raw.splay).map(HumanDuration::get),
            shutdown_grace: v(&raw.shutdown_grace)
                .map_or(DEFAULT_SHUTDOWN_GRACE, HumanDuration::get),
            group_wait: v(&raw.group_wait).map_or(DEFAULT_GROUP_WAIT, HumanDuration::get),
            heartbeat_url: match &raw.heartbeat_url {
                Some(url) if !url.0.starts_with("http://") && !url.0.starts_with("https://") => {
                    self.error(
                        &path.key("heartbeat_url"),
                        "must start with http:// or https://",
                    );
                    None
                }
                Some(url) => Some(url.0.clone()),
                None => None,
            },
        }
    }

    fn resolve(&self, text: &str) -> PathBuf {
        paths::resolve(self.base, Path::new(text))
    }

    fn database(
        &mut self,
        name: &str,
        raw: &RawDatabase,
        defaults: &RawDefaults,
        defaults_path: &FieldPath,
        path: &FieldPath,
        settings: &Settings,
    ) -> Option<Database> {
        let db_name = match DbName::new(name) {
            Ok(db_name) => Some(db_name),
            Err(message) => {
                self.error_at_key(path, message);
                None
            }
        };
        let file_path = if raw.path.0.trim().is_empty() {
            self.error(&path.key("path"), "database path must not be empty");
            None
        } else {
            Some(self.resolve(&raw.path.0))
        };
        if let Some(file_path) = &file_path {
            if file_path.starts_with(&settings.state_dir) {
                self.error(
                    &path.key("path"),
                    "the database must not live inside settings.state_dir",
                );
            }
            if file_path.starts_with(&settings.backup_dir) {
                self.error(&path.key("path"), "the database must not live inside settings.backup_dir (retention manages that directory)");
            }
        }
        let pragmas = self.pragmas(
            raw.pragmas.as_ref(),
            defaults.pragmas.as_ref(),
            &path.key("pragmas"),
            &defaults_path.key("pragmas"),
        );
        let backup = self.backup(
            raw.backup.as_ref(),
            defaults.backup.as_ref(),
            &path.key("backup"),
            &defaults_path.key("backup"),
        );
        let health = self.health(
            raw.health.as_ref(),
            defaults.health.as_ref(),
            &path.key("health"),
            &defaults_path.key("health"),
        );
        let drill = self.drill(
            raw.drill.as_ref(),
            defaults.drill.as_ref(),
            &path.key("drill"),
            &defaults_path.key("drill"),
        );
        let optimize = self.optimize(
            raw.optimize.as_ref(),
            defaults.optimize.as_ref(),
            &path.key("optimize"),
            &defaults_path.key("optimize"),
        );
        let migrations = raw.migrations.as_ref().map(|m| Migrations {
            dir: self.resolve(&m.dir.0),
            apply: v(&m.apply).unwrap_or(MigrationApply::Auto),
            allow_out_of_order: v(&m.allow_out_of_order).unwrap_or(false),
        });
        if let (Some(backup), Ok(Some(drill))) = (&backup, &drill) {
            self.check_drill_source(
                drill,
                &backup.value,
                raw,
                &path.key("drill"),
                &defaults_path.key("drill"),
            );
        }
        if let (Some(backup), Some(health)) = (&backup, &health) {
            self.check_backup_age(backup, health, settings.timezone);
        }
        if let Some(backup) = &backup {
            let local = raw
                .backup
                .as_ref()
                .and_then(|b| b.retention.as_ref())
                .is_some_and(|r| r.keep_within.is_some());
            let base = if local {
                path.key("backup")
            } else {
                defaults_path.key("backup")
            };
            self.check_keep_within(
                &backup.value,
                &base.key("retention").key("keep_within"),
                settings.timezone,
            );
        }
        let replicate = match (&raw.replicate, &pragmas, &backup) {
            (Some(raw), Some(pragmas), Some(backup)) => Some(self.replicate(
                raw,
                &path.key("replicate"),
                pragmas,
                &backup.value,
                settings.timezone,
            )),
            (Some(_), _, _) => Some(None),
            (None, _, _) => None,
        };
        Some(Database {
            name: db_name?,
            path: file_path?,
            pragmas: pragmas?,
            backup: backup?.value,
            health: health?.value,
            optimize: optimize?,
            drill: drill.ok()?,
            migrations,
            restore_if_missing: v(&raw.restore_if_missing).unwrap_or(false),
            columns: self.columns(raw.schema.as_ref(), &path.key("schema")),
            replicate: replicate.map_or(Some(None), |r| r.map(Some))?,
        })
    }

    fn columns(
        &mut self,
        schema: Option<&BTreeMap<String, BTreeMap<String, RawColumn>>>,
        path: &FieldPath,
    ) -> Vec<DeclaredColumn> {
        let (columns, problems) = super::columns::declared(schema, path);
        for (field, message) in problems {
            self.error(&field, message);
        }
        columns
    }

    fn pragmas(
        &mut self,
        db: Option<&RawPragmas>,
        def: Option<&RawPragmas>,
        path: &FieldPath,
        def_path: &FieldPath,
    ) -> Option<Pragmas> {
        let empty = RawPragmas::default();
        let (db, def) = (db.unwrap_or(&empty), def.unwrap_or(&empty));
        let page_size = match (v(&db.page_size), v(&def.page_size)) {
            (Some(size), _) => Some((size, path.key("page_size"))),
            (None, Some(size)) => Some((size, def_path.key("page_size"))),
            (None, None) => None,
        };
        let page_size = match page_size {
            Some((size, field)) => match PageSize::new(size.bytes()) {
                Ok(page_size) => Some(page_size),
                Err(message) => {
                    self.error(&field, message);
                    return None;
                }
            },
            None => None,
        };
        Some(Pragmas {
            persistent: PersistentPragmas {
                journal_mode: v(&db.journal_mode).or(v(&def.journal_mode)),
                auto_vacuum: v(&db.auto_vacuum).or(v(&def.auto_vacuum)),
                page_size,
                application_id: v(&db.application_id).or(v(&def.application_id)),
            },
            connection: ConnectionPragmas {
                synchronous: v(&db.synchronous).or(v(&def.synchronous)),
                busy_timeout: v(&db.busy_timeout)
                    .or(v(&def.busy_timeout))
                    .map_or(DEFAULT_BUSY_TIMEOUT, HumanDuration::get),
                foreign_keys: v(&db.foreign_keys).or(v(&def.foreign_keys)),
                cache_size: v(&db.cache_size).or(v(&def.cache_size)),
                mmap_size: v(&db.mmap_size).or(v(&def.mmap_size)),
            },
        })
    }

    /// The one shared copy of `cron`.
    fn shared_cron(&mut self, cron: CronPattern) -> Arc<CronPattern> {
        Arc::clone(
            self.crons
                .entry(cron.as_str().to_string())
                .or_insert_with(|| Arc::new(cron)),
        )
    }

    /// The schedule of one block: `every` and `schedule` are exclusive, and
    /// a database that sets either one replaces both of the defaults'.
    fn schedule(
        &mut self,
        db: (Option<HumanDuration>, Option<CronPattern>),
        def: (Option<HumanDuration>, Option<CronPattern>),
        path: &FieldPath,
        def_path: &FieldPath,
    ) -> Result<Option<Sourced<Schedule>>, Invalid> {
        let mut ok = true;
        for ((every, schedule), at) in [(&db, path), (&def, def_path)] {
            if every.is_some() && schedule.is_some() {
                self.error(
                    &at.key("schedule"),
                    "set either `every` or `schedule`, not both",
                );
                ok = false;
            }
            if every.is_some_and(|e| e.get().is_zero()) {
                self.error(&at.key("every"), "interval must be longer than 0s");
                ok = false;
            }
        }
        if !ok {
            return Err(Invalid);
        }
        let (level, at) = if db.0.is_some() || db.1.is_some() {
            (db, path)
        } else {
            (def, def_path)
        };
        Ok(match level {
            (Some(every), _) => Some(Sourced {
                value: Schedule::Every(every.get()),
                path: at.key("every"),
            }),
            (None, Some(cron)) => Some(Sourced {
                value: Schedule::Cron(self.shared_cron(cron)),
                path: at.key("schedule"),
            }),
            (None, None) => None,
        })
    }

    fn backup(
        &mut self,
        db: Option<&RawBackup>,
        def: Option<&RawBackup>,
        path: &FieldPath,
        def_path: &FieldPath,
    ) -> Option<Sourced<Backup>> {
        let empty = RawBackup::default();
        let (db, def) = (db.unwrap_or(&empty), def.unwrap_or(&empty));
        let schedule = self.schedule(
            (v(&db.every), v(&db.schedule)),
            (v(&def.every), v(&def.schedule)),
            path,
            def_path,
        );
        let timeout = v(&db.timeout)
            .or(v(&def.timeout))
            .map_or(DEFAULT_BACKUP_TIMEOUT, HumanDuration::get);
        if timeout.is_zero() {
            let at = if db.timeout.is_some() { path } else { def_path };
            self.error(&at.key("timeout"), "timeout must be longer than 0s");
        }
        let retention = self.retention(db.retention.as_ref(), def.retention.as_ref());
        let enabled = v(&db.enabled).or(v(&def.enabled)).unwrap_or(true);
        if enabled && retention == Retention::default() {
            self.warn(
                &path.key("retention"),
                "no retention rule is set: prune keeps every backup",
            );
        }
        let offsite = self.database_offsite(
            db.offsite.as_ref(),
            def.offsite.as_ref(),
            path,
            def_path,
            retention,
        );
        let schedule = schedule.ok()?.unwrap_or_else(|| Sourced {
            value: Schedule::Every(DEFAULT_BACKUP_EVERY),
            path: path.clone(),
        });
        Some(Sourced {
            path: schedule.path,
            value: Backup {
                enabled,
                schedule: schedule.value,
                method: v(&db.method)
                    .or(v(&def.method))
                    .unwrap_or(BackupMethod::Auto),
                compress: v(&db.compress)
                    .or(v(&def.compress))
                    .unwrap_or(Compression::Zstd),
                verify: v(&db.verify)
                    .or(v(&def.verify))
                    .unwrap_or(VerifyLevel::Quick),
                retention,
                before_migrations: v(&db.before_migrations)
                    .or(v(&def.before_migrations))
                    .unwrap_or(true),
                timeout,
                jitter: v(&db.jitter)
                    .or(v(&def.jitter))
                    .map_or(Duration::ZERO, HumanDuration::get),
                offsite,
            },
        })
    }

    fn retention(&mut self, db: Option<&RawRetention>, def: Option<&RawRetention>) -> Retention {
        let empty = RawRetention::default();
        let (db, def) = (db.unwrap_or(&empty), def.unwrap_or(&empty));
        let count =
            |a: &Option<super::interpolate::Expanded<u32>>,
             b: &Option<super::interpolate::Expanded<u32>>| v(a).or(v(b)).unwrap_or(0);
        Retention {
            keep_last: count(&db.keep_last, &def.keep_last),
            keep_hourly: count(&db.keep_hourly, &def.keep_hourly),
            keep_daily: count(&db.keep_daily, &def.keep_daily),
            keep_weekly: count(&db.keep_weekly, &def.keep_weekly),
            keep_monthly: count(&db.keep_monthly, &def.keep_monthly),
            keep_yearly: count(&db.keep_yearly, &def.keep_yearly),
            keep_within: v(&db.keep_within)
                .or(v(&def.keep_within))
                .map(HumanDuration::get),
            max_age: v(&db.max_age).or(v(&def.max_age)).map(HumanDuration::get),
        }
    }

    fn smtp(&mut self, raw: &RawSmtp) -> Option<Smtp> {
        let path = FieldPath::root("smtp");
        let tls = v(&raw.tls).unwrap_or(SmtpTls::Starttls);
        let password = match (&raw.password_env, &raw.password_file) {
            (Some(_), Some(_)) => {
                self.error(
                    &path.key("password_file"),
                    "set either `password_env` or `password_file`, not both",
                );
                return None;
            }
            (Some(env), None) => Some(PasswordSource::Env(env.0.clone())),
            (None, Some(file)) => Some(PasswordSource::File(self.resolve(&file.0))),
            (None, None) => None,
        };
        match (&raw.username, &password) {
            (Some(_), None) => {
                self.error(
                    &path.key("username"),
                    "a username needs `password_env` or `password_file`",
                );
                return None;
            }
            (None, Some(_)) => {
                self.error(&path, "a password needs a `username`");
                return None;
            }
            _ => {}
        }
        if raw.host.0.trim().is_empty() {
            self.error(&path.key("host"), "host must not be empty");
            return None;
        }
        Some(Smtp {
            host: raw.host.0.trim().to_string(),
            port: v(&raw.port).unwrap_or(match tls {
                SmtpTls::None => 25,
                SmtpTls::Starttls => 587,
                SmtpTls::Tls => 465,
            }),
            tls,
            username: v(&raw.username),
            password,
            from: raw.from.0.clone(),
        })
    }

    fn alerts(
        &mut self,
        raw: &[RawAlert],
        databases: &BTreeMap<DbName, Arc<Database>>,
        have_smtp: bool,
    ) -> Vec<AlertRule> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut rules = Vec::new();
        for (index, alert) in raw.iter().enumerate() {
            let path = FieldPath::root("alerts").index(index);
            let name = alert.name.0.trim().to_string();
            if name.is_empty() {
                self.error(&path.key("name"), "alert name must not be empty");
            } else if let Some(first) = seen.insert(name.clone(), index) {
                self.error(
                    &path.key("name"),
                    format!("alert name `{name}` is already used by alerts[{first}]"),
                );
            }
            if alert.to.is_empty() {
                self.error(&path.key("to"), "list at least one recipient");
            }
            let when = alert.when.0;
            if !alert.jobs.is_empty()
                && !matches!(when, AlertCondition::JobFailed | AlertCondition::JobStuck)
            {
                self.error(
                    &path.key("jobs"),
                    format!("`jobs` only applies to job_failed and job_stuck, not {when}"),
                );
            }
            let mut rule_databases = Vec::new();
            for (i, db) in alert.databases.iter().enumerate() {
                match databases.keys().find(|name| name.as_str() == db.0) {
                    Some(name) => rule_databases.push(name.clone()),
                    None => {
                        let hint = did_you_mean(&db.0, databases.keys().map(DbName::as_str))
                            .map(|close| format!(" (did you mean `{close}`?)"))
                            .unwrap_or_default();
                        self.error(
                            &path.key("databases").index(i),
                            format!("unknown database `{}`{hint}", db.0),
                        );
                    }
                }
            }
            if alert.repeat.as_ref().is_some_and(|r| r.0.get().is_zero()) {
                self.error(&path.key("repeat"), "repeat must be longer than 0s");
            }
            rules.push(AlertRule {
                name,
                when,
                jobs: alert.jobs.iter().map(|j| j.0).collect(),
                databases: rule_databases,
                to: alert.to.iter().map(|t| t.0.clone()).collect(),
                for_: v(&alert.for_).map_or(Duration::ZERO, HumanDuration::get),
                repeat: v(&alert.repeat).map(HumanDuration::get),
                send_resolved: v(&alert.send_resolved).unwrap_or(false),
                keep_firing_for: v(&alert.keep_firing_for)
                    .map_or(Duration::ZERO, HumanDuration::get),
            });
        }
        if !raw.is_empty() && !have_smtp {
            self.warn(
                &FieldPath::root("alerts"),
                "no `smtp:` section: alert mails cannot be sent",
            );
        }
        rules
    }
}

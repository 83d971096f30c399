//! The command line: clap definitions and the dispatch to one function per
//! command (in `converge` and `backups`).
//!
//! Owns argument parsing and what each command prints (text, or JSON with
//! `--json`). It returns an [`ExitStatus`] or an [`Error`]; only `main`
//! turns those into a process exit code.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

mod advise;
mod alerts;
mod backups;
mod converge;
mod holds;
mod maintain;
mod migrate;
mod offsite;
mod progress_bar;
mod select;
mod status;

use crate::apply::ApplyOptions;
use crate::clock::Clock;
use crate::config::{self, Diagnostic, Environment, Loaded};
use crate::error::Error;

/// Keeps the SQLite databases of a live application safe and fast.
#[derive(Debug, Parser)]
#[command(name = "litewarden", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(
        short,
        long,
        global = true,
        env = "LITEWARDEN_CONFIG",
        default_value = "jobs.yaml"
    )]
    pub config: PathBuf,
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How much `restore` checks a backup before restoring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestoreVerify {
    /// The hash of a backup verified when written suffices.
    Hash,
    /// `integrity_check` on every source.
    Full,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config; print every error as file:line:col.
    Check {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what `apply` would change, changing nothing (exit 2 when changes are pending).
    Plan {
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Also run pending migrations on a scratch copy and report duration, WAL growth and errors.
        #[arg(long)]
        rehearse: bool,
    },
    /// Converge once: create missing databases and set stored pragmas.
    Apply {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Allow changes that rewrite a file with VACUUM (auto_vacuum, page_size).
        #[arg(long)]
        allow_vacuum: bool,
    },
    /// Take a verified backup now.
    Backup {
        /// The database (a name from jobs.yaml).
        database: Option<String>,
        /// Back up every database.
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// Pin the backup: retention never removes it.
        #[arg(long)]
        pin: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the backups of a database, newest first, with why each is kept.
    Backups {
        /// The database.
        database: Option<String>,
        /// List the backups of every database.
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// List the copies on the offsite store (from their manifests; nothing is downloaded).
        #[arg(long)]
        remote: bool,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload the verified backups waiting for the offsite store now, then apply its retention.
    Offsite {
        /// The database.
        database: Option<String>,
        /// Every database with an offsite store.
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a backup or database file: checksum (when catalogued) and integrity_check; `remote:NAME` downloads and checks a copy on the offsite store.
    Verify {
        /// The file, or `remote:NAME` (a copy's file name on the offsite store).
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a database from a backup, keeping a safety copy of the current file.
    Restore {
        /// The database.
        database: Option<String>,
        /// Every database, each from its newest verified backup.
        #[arg(long, conflicts_with_all = ["database", "to", "before_migration"])]
        all: bool,
        /// `latest` (the newest verified backup; for a replicated database, the newest point of its replica), `replica`, `remote:latest`, `remote:NAME` or a backup file.
        #[arg(long, default_value = "latest")]
        from: String,
        /// Write the restored database to this new file instead of replacing the live one.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Restore the backup taken before a migration ran: its version (4), file name (0004_x.sql) or name (x), instead of --from.
        #[arg(long, conflicts_with = "from")]
        before_migration: Option<String>,
        /// Restore the newest verified backup taken before this time: `10m`,
        /// `-10m` or `"2h ago"` (that long ago), `2026-12-02 14:30` (in
        /// settings.timezone) or `2026-12-02T14:30:00Z`; instead of --from.
        #[arg(long, conflicts_with_all = ["from", "before_migration"], allow_hyphen_values = true)]
        before: Option<String>,
        /// Restore a replicated database as it was at this point of its
        /// replica: `-10m`, `2026-12-02 14:30` or `2026-12-02T14:30:00Z`
        /// (see `backups DB` for the range); instead of --from.
        #[arg(long, conflicts_with_all = ["from", "before_migration", "before"], allow_hyphen_values = true)]
        at: Option<String>,
        /// Restore even from a file that looks like another database.
        #[arg(long)]
        force: bool,
        /// `hash`: a backup verified when written whose SHA-256 still matches
        /// is restored on that proof; `full`: run integrity_check on it too.
        /// Other files always get integrity_check.
        #[arg(long, value_enum, default_value_t = RestoreVerify::Hash)]
        verify: RestoreVerify,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply retention: remove the backups no rule keeps.
    Prune {
        /// The database.
        database: Option<String>,
        /// Prune every database.
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// Show what would be kept and removed, and why, removing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Accept the database's discontinuities first (as `litewarden accept`), so the backups from before them may go.
        #[arg(long)]
        accept_discontinuity: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Accept that a database was replaced or emptied on purpose: its older backups are no longer protected.
    Accept {
        /// The database.
        database: Option<String>,
        /// Every database.
        #[arg(long, conflicts_with = "database")]
        all: bool,
    },
    /// Pause the daemon's scheduled backups of a database (for maintenance), until `resume`.
    Pause {
        /// The database.
        database: Option<String>,
        /// Every database.
        #[arg(long, conflicts_with = "database")]
        all: bool,
    },
    /// Resume the daemon's scheduled backups of a paused database.
    Resume {
        /// The database.
        database: Option<String>,
        /// Every database.
        #[arg(long, conflicts_with = "database")]
        all: bool,
    },
    /// Pin a backup so retention never removes it.
    Pin {
        /// The backup file.
        file: PathBuf,
    },
    /// Unpin a backup.
    Unpin {
        /// The backup file.
        file: PathBuf,
    },
    /// Migrations: status, up, down, repair, baseline.
    Migrate {
        /// What to do.
        #[command(subcommand)]
        action: MigrateCommand,
    },
    /// Run the daemon: apply, schedule backups, watch the config; SIGHUP reloads, SIGTERM stops.
    Run,
    /// Run the health checks now; exit 1 when a database is unhealthy.
    Health {
        /// The database (default: all).
        database: Option<String>,
        /// Every database (the default, for symmetry with the other commands).
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// Also run quick_check now, whether it is due or not.
        #[arg(long)]
        deep: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run maintenance now: PRAGMA optimize, a checkpoint that never freezes the app, incremental vacuum.
    Optimize {
        /// The database.
        database: Option<String>,
        /// Every database.
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore the newest verified backup to a scratch file and check it (a restore drill).
    Drill {
        /// The database.
        database: Option<String>,
        /// Every database.
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Jobs with their schedule, last run and result, next run; the daemon's state.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Index advice from the application's slow queries (nothing is created).
    Advise {
        /// The database.
        database: String,
        /// Write each proposed index as the database's next migration.
        #[arg(long)]
        write_migration: bool,
        /// Print the advice as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON schema of jobs.yaml.
    Schema,
    /// Active alerts (pending and firing) and recent notifications with their delivery.
    Alerts {
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Alert mail.
    Alert {
        /// What to do.
        #[command(subcommand)]
        action: AlertCommand,
    },
}

/// The `alert` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send one real mail through the configured SMTP server.
    Test {
        /// The recipient (default: every rule's recipients).
        #[arg(long)]
        to: Option<String>,
    },
}

/// The `migrate` subcommands.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// List applied (with time and backup), pending, modified and missing migrations.
    Status {
        /// The database.
        database: Option<String>,
        /// Every database with migrations.
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply pending migrations (after a verified backup).
    Up {
        /// The database.
        database: Option<String>,
        /// Every database with migrations.
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// Apply only up to this version.
        #[arg(long)]
        to: Option<i64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revert migrations newer than VERSION with their .down.sql files (after a verified backup).
    Down {
        /// The database.
        database: Option<String>,
        /// Every database with migrations (each reverted to VERSION).
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// Keep this version and older ones.
        #[arg(long)]
        to: i64,
    },
    /// Accept the current checksums of edited, already applied files.
    Repair {
        /// The database.
        database: Option<String>,
        /// Every database with migrations.
        #[arg(long, conflicts_with = "database")]
        all: bool,
    },
    /// Record versions up to VERSION as applied without running them (adopting an existing database).
    Baseline {
        /// The database.
        database: Option<String>,
        /// Every database with migrations (with --detect: each at its own version).
        #[arg(long, conflicts_with = "database")]
        all: bool,
        /// The newest version the database already has.
        #[arg(long, required_unless_present = "detect", conflicts_with = "detect")]
        version: Option<i64>,
        /// Find the version: replay the migrations on an empty scratch
        /// database and baseline at the one whose schema equals the live one
        /// (or report the closest and how it differs).
        #[arg(long)]
        detect: bool,
    },
}

impl Cli {
    /// Whether the command was asked for JSON (`--json`): then a failure is
    /// a JSON document on stdout too.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Check { json }
            | Command::Status { json }
            | Command::Alerts { json }
            | Command::Plan { json, .. }
            | Command::Apply { json, .. }
            | Command::Backup { json, .. }
            | Command::Backups { json, .. }
            | Command::Offsite { json, .. }
            | Command::Verify { json, .. }
            | Command::Restore { json, .. }
            | Command::Prune { json, .. }
            | Command::Health { json, .. }
            | Command::Optimize { json, .. }
            | Command::Drill { json, .. }
            | Command::Advise { json, .. } => *json,
            Command::Migrate { action } => matches!(
                action,
                MigrateCommand::Status { json: true, .. } | MigrateCommand::Up { json: true, .. }
            ),
            _ => false,
        }
    }
}

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything is fine (exit 0).
    Success,
    /// `plan` found changes to make (exit 2).
    ChangesPending,
    /// The command reported a failure itself (exit 1).
    Failure,
}

/// Runs one command, writing its output to `out`.
pub fn run(
    cli: &Cli,
    environment: &Environment,
    clock: Arc<dyn Clock>,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    match &cli.command {
        Command::Check { json } => converge::check(cli, environment, *json, out),
        Command::Plan { json, rehearse } => {
            converge::plan(cli, environment, clock.as_ref(), *json, *rehearse, out)
        }
        Command::Apply { json, allow_vacuum } => converge::apply(
            cli,
            environment,
            clock.as_ref(),
            *json,
            ApplyOptions {
                allow_vacuum: *allow_vacuum,
                scheduled: false,
            },
            out,
        ),
        Command::Backup {
            database,
            all,
            pin,
            json,
        } => backups::backup(
            cli,
            environment,
            clock.as_ref(),
            database.as_deref(),
            *all,
            *pin,
            *json,
            out,
        ),
        Command::Backups {
            database,
            all,
            remote,
            json,
        } => backups::list(
            cli,
            environment,
            clock.as_ref(),
            (database.as_deref(), *all, *remote),
            *json,
            out,
        ),
        Command::Offsite {
            database,
            all,
            json,
        } => offsite::upload(
            cli,
            environment,
            clock.as_ref(),
            (database.as_deref(), *all),
            *json,
            out,
        ),
        Command::Verify { file, json } => {
            match file.to_str().and_then(|f| f.strip_prefix("remote:")) {
                Some(name) => offsite::verify(cli, environment, clock.as_ref(), name, *json, out),
                None => backups::verify(cli, environment, clock.as_ref(), file, *json, out),
            }
        }
        Command::Restore {
            database,
            all,
            from,
            to,
            yes,
            before_migration,
            before,
            at,
            force,
            verify,
            json,
        } => {
            if *all && (from != "latest" || before.is_some() || at.is_some()) {
                return Err(Error::Usage(
                    "restore --all restores each database from its own newest verified backup (or replica); --from FILE, --before and --at name one database's point (give the database instead of --all)".into(),
                ));
            }
            let config = load_config(cli, environment)?;
            let databases = select::chosen(cli, &config, database.as_deref(), *all, "restore")?;
            let mut status = ExitStatus::Success;
            for db in databases {
                let one = backups::restore(
                    cli,
                    environment,
                    clock.as_ref(),
                    backups::RestoreArgs {
                        database: db.name.as_str(),
                        from,
                        to: to.as_deref(),
                        yes: *yes,
                        before_migration: before_migration.as_deref(),
                        before: before.as_deref(),
                        at: at.as_deref(),
                        force: *force,
                        full_check: *verify == RestoreVerify::Full,
                        json: *json,
                    },
                    out,
                )?;
                if one != ExitStatus::Success {
                    status = one;
                }
            }
            Ok(status)
        }
        Command::Prune {
            database,
            all,
            dry_run,
            accept_discontinuity,
            json,
        } => backups::prune(
            cli,
            environment,
            clock.as_ref(),
            backups::PruneArgs {
                database: database.as_deref(),
                all: *all,
                dry_run: *dry_run,
                accept_discontinuity: *accept_discontinuity,
                json: *json,
            },
            out,
        ),
        Command::Accept { database, all } => holds::accept(
            cli,
            environment,
            clock.as_ref(),
            (database.as_deref(), *all),
            out,
        ),
        Command::Pause { database, all } => holds::pause(
            cli,
            environment,
            clock.as_ref(),
            (database.as_deref(), *all),
            true,
            out,
        ),
        Command::Resume { database, all } => holds::pause(
            cli,
            environment,
            clock.as_ref(),
            (database.as_deref(), *all),
            false,
            out,
        ),
        Command::Pin { file } => backups::pin(cli, environment, file, true, out),
        Command::Unpin { file } => backups::pin(cli, environment, file, false, out),
        Command::Migrate { action } => migrate::run(cli, environment, clock.as_ref(), action, out),
        Command::Advise {
            database,
            write_migration,
            json,
        } => advise::run(cli, environment, database, *write_migration, *json, out),
        Command::Run => {
            match crate::limits::raise_open_files() {
                Ok(limits) => {
                    tracing::debug!(soft = ?limits.soft, hard = ?limits.hard, "open-files limit")
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot raise the open-files limit to the hard one")
                }
            }
            let options = crate::reconcile::Options {
                config: cli.config.clone(),
                environment: environment.clone(),
            };
            crate::reconcile::run(options, Arc::clone(&clock), |config| {
                match config.settings.listen {
                    Some(listen) => crate::http::serve(
                        listen,
                        crate::http::Site {
                            state_dir: config.settings.state_dir.clone(),
                            config: cli.config.clone(),
                            environment: environment.clone(),
                            access: crate::http::Access::from_config(
                                &config.settings.http,
                                environment,
                            )?,
                        },
                        Arc::clone(&clock),
                    ),
                    None => Ok(()),
                }
            })?;
            Ok(ExitStatus::Success)
        }
        Command::Health {
            database,
            all: _,
            deep,
            json,
        } => maintain::health(
            cli,
            environment,
            clock.as_ref(),
            maintain::HealthArgs {
                database: database.as_deref(),
                deep: *deep,
                json: *json,
            },
            out,
        ),
        Command::Optimize {
            database,
            all,
            json,
        } => maintain::optimize(
            cli,
            environment,
            clock.as_ref(),
            (database.as_deref(), *all),
            *json,
            out,
        ),
        Command::Drill {
            database,
            all,
            json,
        } => maintain::drill(
            cli,
            environment,
            clock.as_ref(),
            (database.as_deref(), *all),
            *json,
            out,
        ),
        Command::Status { json } => status::status(cli, environment, clock.as_ref(), *json, out),
        Command::Alerts { json } => alerts::list(cli, environment, *json, out),
        Command::Alert {
            action: AlertCommand::Test { to },
        } => alerts::test(cli, environment, to.as_deref(), out),
        Command::Schema => {
            print(out, crate::config::schema::jobs_schema().trim_end())?;
            Ok(ExitStatus::Success)
        }
    }
}

/// Claims the database files a command changes for its whole run (one
/// manager per file): refused when another litewarden, with another state
/// directory, manages one of them.
fn claim<'a>(
    config: &crate::config::Config,
    databases: impl IntoIterator<Item = &'a crate::config::Database>,
) -> Result<Vec<crate::db::lock::DatabaseLock>, Error> {
    databases
        .into_iter()
        .map(|db| {
            crate::db::lock::DatabaseLock::acquire(
                db.name.as_str(),
                &db.path,
                &config.settings.state_dir,
            )
            .map_err(Error::from)
        })
        .collect()
}

fn print(out: &mut dyn Write, text: impl std::fmt::Display) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(Error::Output)
}

/// What a command does with a fault of the environment (a directory that
/// cannot be created): a command that writes refuses to run, a read-only
/// one reports it and runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Faults {
    Refuse,
    Report,
}

/// Loads the config, printing JSON errors itself in JSON mode.
fn load(
    cli: &Cli,
    environment: &Environment,
    json: bool,
    faults: Faults,
    out: &mut dyn Write,
) -> Result<Option<Loaded>, Error> {
    let loaded = match faults {
        Faults::Refuse => config::load(&cli.config, environment).map_err(Error::from),
        Faults::Report => load_reading(cli, environment),
    };
    match loaded {
        Ok(loaded) => Ok(Some(loaded)),
        Err(Error::Config(config::LoadError::Invalid(errors))) if json => {
            print(
                out,
                json!({ "ok": false, "errors": errors, "warnings": [] }),
            )?;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Loads the config, printing its warnings on stderr.
/// Loads `jobs.yaml` for a command that acts on it; its configuration
/// warnings are for `check`, `plan`, `apply` and `run` to show, not repeated
/// by every command.
fn load_config(cli: &Cli, environment: &Environment) -> Result<config::Config, Error> {
    Ok(config::load(&cli.config, environment)?.config)
}

/// Loads `jobs.yaml` for a read-only command: a fault of the environment
/// is printed on stderr and kept in [`Loaded::faults`] for the command to
/// report, never a reason not to run.
fn load_reading(cli: &Cli, environment: &Environment) -> Result<Loaded, Error> {
    let loaded = config::load_reporting_faults(&cli.config, environment)?;
    for fault in &loaded.faults {
        warn_line(
            cli,
            "environment fault",
            format_args!(
                "{fault} (a fault of the environment, not of the file: commands that write refuse to run until it is fixed)"
            ),
        );
    }
    Ok(loaded)
}

/// Prints configuration warnings on stderr in the chosen log format.
fn print_warnings(cli: &Cli, warnings: &[Diagnostic]) {
    for warning in warnings {
        warn_line(cli, "config warning", warning);
    }
}

/// One warning on stderr: a plain line, or a JSON log line under
/// `--log-format json` (`what` is its message, the text its `warning`).
fn warn_line(cli: &Cli, what: &str, text: impl std::fmt::Display) {
    match cli.log_format {
        LogFormat::Text => eprintln!("{text}"),
        LogFormat::Json => tracing::warn!(warning = %text, "{what}"),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A time as every listing shows it: UTC, to the second
/// (`2026-11-29 02:32:12Z`).
fn show_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An RFC 3339 timestamp read from the state database, shown like
/// [`show_time`]; anything unparseable is shown as stored.
fn show_stored_time(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored)
        .map_or_else(|_| stored.to_string(), |at| show_time(at.to_utc()))
}

//! The command line's error type: what can stop a `litewarden` command,
//! gathering the errors of the layers below (each returns its own).
//!
//! Sits at the top, with `cli`; no module below imports it. Owns no state. Messages are lowercase, name the file, database or field
//! concerned, and keep the cause in `source`; `main` prints them on one line
//! each and maps them to exit code 1.

use std::path::PathBuf;

use crate::db::DbError;
use crate::state::StateError;

/// Anything that can stop a litewarden command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `jobs.yaml` cannot be read or is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::LoadError),
    /// Output could not be written (a closed pipe counts as success).
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    /// A command named a database that `jobs.yaml` does not declare.
    #[error("no database `{name}` in {}{}", crate::paths::display(.config), .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownDatabase {
        /// The config file.
        config: PathBuf,
        /// The name given.
        name: String,
        /// The closest declared name.
        suggestion: Option<String>,
    },
    /// Options that do not go together, beyond what the argument parser
    /// checks.
    #[error("{0}")]
    Usage(String),
    /// A command that acts on databases was given neither a name nor
    /// `--all`.
    #[error(
        "give a database ({names}) or --all, e.g. `litewarden {command} {first}` or `litewarden {command} --all`"
    )]
    NoDatabaseGiven {
        /// The command, as typed.
        command: &'static str,
        /// The declared names, comma-separated.
        names: String,
        /// The first declared name.
        first: String,
    },
    /// A file given to `pin`/`unpin` is not a catalogued backup.
    #[error("{}: not a backup in the catalog (see `litewarden backups <db>`)", crate::paths::display(.0))]
    UnknownBackup(PathBuf),
    /// A migration command names a database without `migrations:`.
    #[error("database `{0}` has no `migrations:` in the config")]
    NoMigrations(String),
    /// The operator declined a confirmation.
    #[error("cancelled; nothing was changed")]
    Cancelled,
    /// Taking or pruning a backup failed.
    #[error(transparent)]
    Backup(Box<crate::jobs::backup::BackupError>),
    /// A restore failed or was refused.
    #[error(transparent)]
    Restore(Box<crate::jobs::restore::RestoreError>),
    /// Migrations failed or were refused.
    #[error(transparent)]
    Migrate(Box<crate::jobs::migrations::runner::MigrateError>),
    /// A file failed verification.
    #[error(transparent)]
    Verify(#[from] crate::jobs::verify::VerifyError),
    /// A managed database could not be read or changed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The state database could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// Another litewarden manages a database.
    #[error(transparent)]
    Lock(#[from] crate::db::lock::LockError),
    /// The daemon could not start (a config error is [`Error::Config`]).
    #[error(transparent)]
    Run(crate::reconcile::DaemonError),
    /// The databases could not be observed.
    #[error(transparent)]
    Observe(#[from] crate::observe::ObserveError),
    /// A drill ran and did not pass.
    #[error("{0}")]
    DrillFailed(String),
    /// An offsite upload or listing failed.
    #[error(transparent)]
    Offsite(Box<crate::jobs::offsite::OffsiteError>),
}

/// A result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::reconcile::DaemonError> for Error {
    fn from(error: crate::reconcile::DaemonError) -> Self {
        match error {
            crate::reconcile::DaemonError::Config(error) => Error::Config(error),
            other => Error::Run(other),
        }
    }
}

impl From<crate::jobs::backup::BackupError> for Error {
    fn from(error: crate::jobs::backup::BackupError) -> Self {
        Error::Backup(Box::new(error))
    }
}

impl From<crate::jobs::run::RunError> for Error {
    fn from(error: crate::jobs::run::RunError) -> Self {
        use crate::jobs::run::RunError;
        match error {
            RunError::Backup(error) => error.into(),
            RunError::Optimize(error) => Error::Db(error),
            RunError::State(error) => Error::State(error),
            failed @ RunError::DrillFailed(_) => Error::DrillFailed(failed.to_string()),
            RunError::Offsite(error) => Error::Offsite(Box::new(error)),
        }
    }
}

impl From<crate::jobs::offsite::OffsiteError> for Error {
    fn from(error: crate::jobs::offsite::OffsiteError) -> Self {
        Error::Offsite(Box::new(error))
    }
}

impl From<crate::jobs::restore::RestoreError> for Error {
    fn from(error: crate::jobs::restore::RestoreError) -> Self {
        Error::Restore(Box::new(error))
    }
}

impl From<crate::jobs::migrations::runner::MigrateError> for Error {
    fn from(error: crate::jobs::migrations::runner::MigrateError) -> Self {
        Error::Migrate(Box::new(error))
    }
}

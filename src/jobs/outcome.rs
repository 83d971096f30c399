//! How a job run ended, as a value alerts, metrics and `status` match on.
//!
//! Owns [`JobSuccess`] (a summary with the figures the run measured),
//! [`JobFailure`] (a [`FailureKind`] and the one-line error) and the
//! classification of an error into a kind by walking its causes. Pure.

use std::error::Error as StdError;

use serde::Serialize;

pub use crate::state::runs::{FailureKind, RunFigures};

impl FailureKind {
    /// The kind of `error`, from the first of its causes that tells.
    pub fn of(error: &(dyn StdError + 'static)) -> Self {
        let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(current) = cause {
            if let Some(kind) = Self::of_one(current) {
                return kind;
            }
            cause = current.source();
        }
        FailureKind::Other
    }

    fn of_one(error: &(dyn StdError + 'static)) -> Option<Self> {
        use crate::jobs::backup::BackupError;
        if let Some(BackupError::SourceMissing { .. }) = error.downcast_ref::<BackupError>() {
            return Some(FailureKind::SourceMissing);
        }
        if let Some(BackupError::Verify { .. }) = error.downcast_ref::<BackupError>() {
            return Some(FailureKind::Corrupt);
        }
        if let Some(crate::db::DbError::NotADatabase { .. }) = error.downcast_ref() {
            return Some(FailureKind::Corrupt);
        }
        if let Some(crate::jobs::verify::VerifyError::Damaged { .. }) = error.downcast_ref() {
            return Some(FailureKind::Corrupt);
        }
        if let Some(crate::jobs::migrations::runner::MigrateError::Busy { .. }) =
            error.downcast_ref()
        {
            return Some(FailureKind::Busy);
        }
        if error.downcast_ref::<crate::db::lock::LockError>().is_some() {
            return Some(FailureKind::Config);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::StorageFull
        {
            return Some(FailureKind::DiskFull);
        }
        if let Some(sqlite) = error.downcast_ref::<rusqlite::Error>() {
            return match sqlite.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    Some(FailureKind::Busy)
                }
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                    Some(FailureKind::Corrupt)
                }
                Some(rusqlite::ErrorCode::DiskFull) => Some(FailureKind::DiskFull),
                _ => None,
            };
        }
        None
    }
}

/// A run that did what it had to, with what it measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobSuccess {
    /// One line for logs and `status`.
    pub summary: String,
    /// What it measured.
    pub figures: RunFigures,
}

impl JobSuccess {
    /// A success described by `summary` alone.
    pub fn summary(summary: impl Into<String>) -> Self {
        JobSuccess {
            summary: summary.into(),
            ..JobSuccess::default()
        }
    }
}

/// A run that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The error, on one line.
    pub message: String,
}

impl JobFailure {
    /// A failure of `kind`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        JobFailure {
            kind,
            message: message.into(),
        }
    }

    /// The failure `error` describes, classified by its causes.
    pub fn from_error(error: &(dyn StdError + 'static)) -> Self {
        JobFailure::new(FailureKind::of(error), error.to_string())
    }
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a run ended.
pub type JobOutcome = Result<JobSuccess, JobFailure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_source_a_full_disk_and_a_busy_database_are_told_apart() {
        let missing = crate::jobs::backup::BackupError::SourceMissing {
            database: "app".into(),
            path: "app.db".into(),
        };
        assert_eq!(FailureKind::of(&missing), FailureKind::SourceMissing);
        let full = crate::jobs::backup::BackupError::Io {
            database: "app".into(),
            path: "b".into(),
            action: "cannot write",
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };
        assert_eq!(FailureKind::of(&full), FailureKind::DiskFull);
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert_eq!(FailureKind::of(&busy), FailureKind::Busy);
        let other = std::io::Error::other("boom");
        assert_eq!(FailureKind::of(&other), FailureKind::Other);
    }
}

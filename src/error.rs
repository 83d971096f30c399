//! The crate's error type: every module's error gathered in one enum.
//!
//! Owns no state. Messages are lowercase, name the file, database or field
//! concerned, and keep the cause in `source`; `main` prints them on one line
//! each and maps them to exit code 1.

use std::path::PathBuf;

use crate::config::Diagnostic;
use crate::db::DbError;
use crate::state::StateError;

/// Anything that can stop a litewarden command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `jobs.yaml` is invalid; every problem found, in file order.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Config(Vec<Diagnostic>),
    /// `jobs.yaml` could not be read.
    #[error("{}: cannot read the config file: {source} (pass another file with -c FILE)", crate::paths::display(.path))]
    ConfigRead {
        /// The config file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A managed database could not be read or changed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The state database could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

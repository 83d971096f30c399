//! Why an offsite store cannot be opened: named by its URL and the config
//! field to change, never with a credential's value. Kept apart from the
//! store itself, which the `offsite` feature builds.

use std::io;

/// Why an offsite store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A credential variable is not set (or its file is empty).
    #[error(
        "offsite {url}: {from} is not set or empty (it holds the {what}; offsite.{field}_env or {field}_file names it)"
    )]
    MissingCredential {
        /// The offsite URL.
        url: String,
        /// The variable, or the file.
        from: String,
        /// What it holds.
        what: &'static str,
        /// The config field that names it, without `_env`/`_file`.
        field: &'static str,
    },
    /// A credential file cannot be read.
    #[error("offsite {url}: cannot read {} (offsite.{field}_file): {source}", .path.display())]
    CredentialFile {
        /// The offsite URL.
        url: String,
        /// The file.
        path: std::path::PathBuf,
        /// The config field that names it, without `_file`.
        field: &'static str,
        /// The cause.
        #[source]
        source: crate::regular::OpenError,
    },
    /// The directory of a `file://` offsite cannot be created.
    #[error("offsite {url}: cannot create the directory: {source}")]
    Directory {
        /// The offsite URL.
        url: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The client cannot be built from the settings.
    #[error("offsite {url}: {message}")]
    Settings {
        /// The offsite URL.
        url: String,
        /// What object_store said.
        message: String,
    },
}

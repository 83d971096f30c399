//! Why an offsite store cannot be opened: named by its URL and the config
//! field to change, never with a credential's value. Kept apart from the
//! store itself, which the `offsite` feature builds.

use std::io;

/// Why an offsite store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A credential variable is not set.
    #[error(
        "offsite {url}: the environment variable {variable} is not set (it holds the {what}; offsite.{field} names it)"
    )]
    MissingCredential {
        /// The offsite URL.
        url: String,
        /// The variable.
        variable: String,
        /// What it holds.
        what: &'static str,
        /// The config field that names it.
        field: &'static str,
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

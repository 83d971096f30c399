//! Where backup copies live.
//!
//! Owns the [`Store`] trait, the names of copies ([`Key`], [`naming`]) and
//! the manifest format ([`manifest`]); [`LocalDir`], the backup directory,
//! is the first implementation. Callers (backup, prune, restore, drill,
//! verify, health, the catalog sync) name a copy by its store and key, as
//! the catalog does, and reach its bytes, listing, deletion and manifest
//! only through the trait, so a store that keeps copies off the machine is
//! a second implementation, not a change to them. Every write is
//! crash-safe: a copy or manifest is complete under its key, or absent.

pub mod local;
pub mod manifest;
pub mod naming;
mod open_error;
mod record;
#[cfg(feature = "offsite")]
pub mod remote;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use local::LocalDir;
pub use open_error::OpenError;
pub use record::{BackupRecord, BackupTrigger};
#[cfg(feature = "offsite")]
pub use remote::Remote;

use crate::durable::PendingFile;

/// Which store holds a copy, as the catalog records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreId {
    /// The backup directory (`settings.backup_dir`).
    #[default]
    Local,
    /// The database's offsite store (`offsite:`).
    Offsite,
}

impl StoreId {
    /// The name stored in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreId::Local => "local",
            StoreId::Offsite => "offsite",
        }
    }

    /// The store named `text` in the catalog.
    pub fn parse(text: &str) -> Option<Self> {
        [StoreId::Local, StoreId::Offsite]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The name of a copy inside any store: `<database>/<file name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Key(String);

impl Key {
    /// The key of the copy of `database` named `file_name`.
    pub fn new(database: &str, file_name: &str) -> Self {
        Key(format!("{database}/{file_name}"))
    }

    /// A key read back from the catalog: `<database>/<file name>`, each
    /// part non-empty and without `/`, `.` or `..`.
    pub fn parse(text: &str) -> Option<Self> {
        let (database, file) = text.split_once('/')?;
        let plain =
            |part: &str| !part.is_empty() && part != "." && part != ".." && !part.contains('/');
        (plain(database) && plain(file)).then(|| Key(text.to_string()))
    }

    /// The database the copy belongs to.
    pub fn database(&self) -> &str {
        self.0.split_once('/').map_or("", |(database, _)| database)
    }

    /// The copy's file name.
    pub fn file_name(&self) -> &str {
        self.0.split_once('/').map_or(&self.0, |(_, file)| file)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A store operation that failed, named by where it failed (a path, or a
/// URL for a remote store).
#[derive(Debug, thiserror::Error)]
#[error("{}: {action}: {source}", crate::paths::display(.place))]
pub struct StoreError {
    /// Where: the copy, its manifest or the directory listed.
    pub place: PathBuf,
    /// What was being done.
    pub action: &'static str,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl StoreError {
    /// Wraps an I/O error at `place`.
    pub fn at(place: &Path, action: &'static str) -> impl FnOnce(io::Error) -> Self + use<> {
        let place = place.to_path_buf();
        move |source| StoreError {
            place,
            action,
            source,
        }
    }

    /// Whether the copy (or its directory) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

/// A copy found by [`Store::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: Key,
    /// Its size in bytes.
    pub size: u64,
    /// The time its name carries.
    pub named_at: DateTime<Utc>,
}

/// A local file holding a copy's bytes, for as long as it lives: the copy
/// itself in the local store, a downloaded temp file (removed on drop) in a
/// remote one.
#[derive(Debug)]
pub struct Fetched {
    path: PathBuf,
    _temporary: Option<(std::fs::File, tempfile::TempPath)>,
}

impl Fetched {
    /// The copy's own file.
    pub fn in_place(path: PathBuf) -> Self {
        Fetched {
            path,
            _temporary: None,
        }
    }

    /// A downloaded temp file, locked by `file` (so no sweep removes it
    /// while it is read) and removed when this is dropped.
    pub fn temporary(file: std::fs::File, temp: tempfile::TempPath) -> Self {
        Fetched {
            path: temp.to_path_buf(),
            _temporary: Some((file, temp)),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `bytes` as lower-case hex (how hashes are recorded).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`Store::put_file`] stored: the bytes it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Their number.
    pub size: u64,
    /// Their SHA-256, hex.
    pub sha256: String,
}

/// Where backup copies live. Implementations keep copies and manifests
/// under keys; nothing else about them is visible to the callers.
pub trait Store: Send + Sync + fmt::Debug {
    /// The id the catalog records for copies here.
    fn id(&self) -> StoreId;

    /// Where the copy under `key` is, for messages: a path or a URL.
    fn location(&self, key: &Key) -> PathBuf;

    /// An empty temp file to write the copy under `key` into, placed where
    /// [`Store::put`] is cheapest.
    fn stage(&self, key: &Key) -> Result<PendingFile, StoreError>;

    /// Stores a finished staged file under `key`, crash-safely, never
    /// replacing an existing copy: once it returns the copy is durable;
    /// after a crash before that, there is no copy under `key`.
    fn put(&self, key: &Key, staged: PendingFile) -> Result<(), StoreError>;

    /// Stores a copy of the file at `from` under `key`, like
    /// [`Store::put`]; returns the size and hash of what it read, so the
    /// caller can compare them with the copy's manifest.
    fn put_file(&self, key: &Key, from: &Path) -> Result<Written, StoreError>;

    /// A local file with the bytes of the copy under `key`.
    fn fetch(&self, key: &Key) -> Result<Fetched, StoreError>;

    /// The copies of `database`, by key. A store that cannot be listed is
    /// an error, never an empty list.
    fn list(&self, database: &str) -> Result<Vec<Listed>, StoreError>;

    /// Removes the copy under `key` and its manifest, durably; an absent
    /// copy is not an error.
    fn delete(&self, key: &Key) -> Result<(), StoreError>;

    /// The manifest of the copy under `key` (with that key and this store),
    /// `None` when it has none; an unreadable or damaged one is logged and
    /// counts as none.
    fn read_manifest(&self, key: &Key) -> Option<BackupRecord>;

    /// Writes or atomically replaces the manifest of the copy under `key`.
    fn write_manifest(&self, key: &Key, record: &BackupRecord) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_one_file_of_one_database() {
        let key = Key::new("app", "app-20261118T110640Z.db");
        assert_eq!(key.database(), "app");
        assert_eq!(key.file_name(), "app-20261118T110640Z.db");
        assert_eq!(Key::parse(key.as_str()), Some(key));
        for bad in ["app", "/app/x", "app/", "../x", "app/x/y", "app/.."] {
            assert_eq!(Key::parse(bad), None, "{bad}");
        }
        assert_eq!(StoreId::parse("local"), Some(StoreId::Local));
        assert_eq!(StoreId::parse("offsite"), Some(StoreId::Offsite));
        assert_eq!(StoreId::parse("s4"), None);
    }
}

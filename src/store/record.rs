//! A backup copy as the catalog and its manifest describe it.
//!
//! Owns [`BackupRecord`] (one type for the catalog row and the manifest)
//! and [`BackupTrigger`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Key, StoreId};
use crate::plan::identity::Identity;

/// What caused a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupTrigger {
    /// `litewarden backup`.
    Manual,
    /// The scheduler.
    Schedule,
    /// Taken before running pending migrations.
    PreMigration,
    /// The safety copy taken before a restore replaced the file.
    PreRestore,
    /// Found on disk and re-added from its name.
    Rebuilt,
    /// Taken before `apply` added the columns `schema:` declares.
    PreSchema,
}

impl BackupTrigger {
    /// The name stored in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupTrigger::Manual => "manual",
            BackupTrigger::Schedule => "schedule",
            BackupTrigger::PreMigration => "pre-migration",
            BackupTrigger::PreRestore => "pre-restore",
            BackupTrigger::Rebuilt => "rebuilt",
            BackupTrigger::PreSchema => "pre-schema",
        }
    }

    /// The trigger named `text` in the catalog.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Manual,
            Self::Schedule,
            Self::PreMigration,
            Self::PreRestore,
            Self::Rebuilt,
            Self::PreSchema,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }
}

/// A catalogued backup copy: the catalog row, and (without its id) the
/// manifest written beside the copy in its store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Catalog id (0 until inserted; not in manifests).
    #[serde(default)]
    pub id: i64,
    /// The database it copies.
    pub database: String,
    /// The store holding it.
    #[serde(default)]
    pub store: StoreId,
    /// Its name in that store.
    #[serde(default)]
    pub key: Key,
    /// The time in its name.
    pub created_at: DateTime<Utc>,
    /// Size in bytes, as stored.
    pub size: u64,
    /// SHA-256 of the copy as stored, if known.
    pub sha256: Option<String>,
    /// When it last passed verification.
    pub verified_at: Option<DateTime<Utc>>,
    /// The copy method (`snapshot`, `api`, `vacuum`, `raw`).
    pub method: Option<String>,
    /// What caused it.
    pub trigger: BackupTrigger,
    /// Never pruned.
    pub pinned: bool,
    /// How long taking it took.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Its place in the catalog's sequence: higher is newer, whatever the
    /// clock said.
    pub seq: i64,
    /// What the source database looked like when it was taken.
    #[serde(default)]
    pub source: Option<Identity>,
}

impl BackupRecord {
    /// Whether it passed verification.
    pub fn verified(&self) -> bool {
        self.verified_at.is_some()
    }
}

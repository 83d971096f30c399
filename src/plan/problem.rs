//! What a database should be versus what it is, when the two do not fit.
//!
//! Owns [`Expectation`] (what litewarden knows of a database before looking
//! at its file: last identity, backups, open discontinuity) and [`Problem`]
//! (a finding that stops an automatic action: a managed database that is
//! missing, or one that no longer fits its identity). Each problem prints as
//! one `!` line that says exactly what to run. Pure: no I/O, no clock.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::identity::Identity;
use crate::config::DbName;
use crate::paths;

/// A backup as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownBackup {
    /// Its file.
    pub path: PathBuf,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// What the database looked like then, if its manifest says.
    pub source: Option<Identity>,
    /// It is on the offsite store (no local copy was found).
    pub offsite: bool,
}

/// What litewarden knows of a database apart from its file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// A previous `apply` took it under management.
    pub managed: bool,
    /// When its identity was last recorded (or it was last applied).
    pub last_seen: Option<DateTime<Utc>>,
    /// Where its file was then (another path: `path:` changed since).
    pub last_path: Option<PathBuf>,
    /// The identity recorded then (or in the newest manifest).
    pub identity: Option<Identity>,
    /// How many backups it has (catalog and backup directory).
    pub backups: usize,
    /// How many of them passed verification.
    pub verified: usize,
    /// The newest verified backup by the catalog's sequence, not counting
    /// pre-restore safety copies.
    pub newest_verified: Option<KnownBackup>,
    /// The oldest discontinuity not yet accepted: when, and why.
    pub discontinuity: Option<(DateTime<Utc>, String)>,
}

impl Expectation {
    /// Whether litewarden has known this database before: it managed it, or
    /// it has backups of it. Such a database is never created empty.
    pub fn known(&self) -> bool {
        self.managed || self.last_seen.is_some() || self.identity.is_some() || self.backups > 0
    }
}

/// A finding that stops the automatic action on a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// A database litewarden knew is gone; it is not re-created.
    Missing {
        /// The database.
        database: DbName,
        /// Its missing file.
        path: PathBuf,
        /// What was known of it.
        expected: Box<Expectation>,
    },
    /// The file no longer fits what litewarden last saw (emptied, replaced,
    /// tables lost); the backups from before are kept.
    Replaced {
        /// The database.
        database: DbName,
        /// Its file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
        /// When it was first found; `None` when found by this observation.
        since: Option<DateTime<Utc>>,
        /// Where litewarden last saw the file, when `path:` changed since.
        moved_from: Option<PathBuf>,
    },
    /// An existing database with tables and no migration history: pending
    /// migrations would fail on it (or worse), so it waits for `migrate
    /// baseline`.
    Unadopted {
        /// The database.
        database: DbName,
        /// Its tables and the version its schema matches.
        found: super::Unadopted,
    },
}

impl Problem {
    /// The database concerned.
    pub fn database(&self) -> &DbName {
        match self {
            Problem::Missing { database, .. }
            | Problem::Replaced { database, .. }
            | Problem::Unadopted { database, .. } => database,
        }
    }

    /// The event alerts match: `database_missing` or `database_replaced`.
    pub fn event(&self) -> &'static str {
        match self {
            Problem::Missing { .. } => "database_missing",
            Problem::Replaced { .. } => "database_replaced",
            Problem::Unadopted { .. } => "database_unadopted",
        }
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Problem::Missing {
                database,
                path,
                expected,
            } => {
                let mut facts = Vec::new();
                match (&expected.last_path, expected.last_seen) {
                    (Some(last), Some(at)) if last != path => facts.push(format!(
                        "last seen at {} {}; its `path:` changed since",
                        paths::display(last),
                        time(at)
                    )),
                    (_, Some(at)) => facts.push(format!("last seen {}", time(at))),
                    _ => {}
                }
                facts.push(format!(
                    "{} verified backup{}",
                    expected.verified,
                    if expected.verified == 1 { "" } else { "s" }
                ));
                if let Some(newest) = &expected.newest_verified {
                    let mut text = format!("newest {}", time(newest.created_at));
                    if let Some(source) = newest.source.as_ref().filter(|s| !s.tables.is_empty()) {
                        let tables: Vec<&str> = source.tables.iter().map(String::as_str).collect();
                        text.push_str(&format!(" with tables {}", tables.join(", ")));
                    }
                    facts.push(text);
                }
                if expected.backups > expected.verified {
                    facts.push(format!(
                        "{} unverified",
                        expected.backups - expected.verified
                    ));
                }
                write!(
                    f,
                    "! {database}: {} is missing ({})",
                    paths::display(path),
                    facts.join(", ")
                )?;
                if expected.verified > 0 {
                    write!(
                        f,
                        " — restore it with `litewarden restore {database}`, or set restore_if_missing: true"
                    )?;
                } else if expected.backups > 0 {
                    write!(
                        f,
                        " — check a backup with `litewarden verify FILE` (see `litewarden backups {database}`), then `litewarden restore {database} --from FILE`"
                    )?;
                } else {
                    write!(
                        f,
                        " — put the file back, or `litewarden accept {database}` to start it again empty"
                    )?;
                }
                f.write_str("; litewarden will not create it empty")
            }
            Problem::Replaced {
                database,
                path,
                reason,
                since,
                moved_from,
            } => {
                write!(
                    f,
                    "! {database}: {} does not fit what litewarden last saw",
                    paths::display(path)
                )?;
                if let Some(moved_from) = moved_from {
                    write!(
                        f,
                        " at {} (its `path:` changed since)",
                        paths::display(moved_from)
                    )?;
                }
                write!(f, ": {reason}")?;
                if let Some(since) = since {
                    write!(f, " (since {})", time(*since))?;
                }
                if let Some(moved_from) = moved_from {
                    return write!(
                        f,
                        " — it is another file than {}: its backups are kept apart (protected as from before a discontinuity), never restored over this one by themselves; run `litewarden accept {database}` to manage {} from now on, or point `path:` back",
                        paths::display(moved_from),
                        paths::display(path)
                    );
                }
                write!(
                    f,
                    " — its backups from before are kept; run `litewarden accept {database}` once the new content is right, or `litewarden restore {database}` to bring the old one back"
                )
            }
            Problem::Unadopted { database, found } => {
                let tables = format!(
                    "{} table{}",
                    found.tables,
                    if found.tables == 1 { "" } else { "s" }
                );
                let detection = &found.detection;
                match (detection.matched, detection.closest) {
                    (Some(version), _) => write!(
                        f,
                        "! {database}: {tables} and no migration history — adopt it with `litewarden migrate baseline {database} --version {version}` (its schema is what the migrations give at version {version}); no migration runs on it until then"
                    ),
                    (None, Some(version)) => write!(
                        f,
                        "! {database}: {tables} and no migration history, and its schema matches no migration version (closest: {version}, {} difference{}) — see `litewarden migrate baseline {database} --detect`; no migration runs on it until it is adopted",
                        detection.differences.len(),
                        if detection.differences.len() == 1 {
                            ""
                        } else {
                            "s"
                        }
                    ),
                    (None, None) if detection.conflicts.is_empty() => write!(
                        f,
                        "! {database}: {tables} and no migration history, and no migration creates any of them — adopt it with `litewarden migrate baseline {database} --version V` once you know which version it is; no migration runs on it until then"
                    ),
                    (None, None) => {
                        let conflicts: Vec<String> = detection
                            .conflicts
                            .iter()
                            .map(ToString::to_string)
                            .collect();
                        write!(
                            f,
                            "! {database}: {tables} and no migration history; {} — running it would fail on that object. Choose: make the database what the migrations give and adopt it (`litewarden migrate baseline {database} --version V`), or change the migration to fit the existing objects (e.g. `CREATE TABLE IF NOT EXISTS` and `ALTER TABLE ... ADD COLUMN`); no migration runs on it until then",
                            conflicts.join("; ")
                        )
                    }
                }
            }
        }
    }
}

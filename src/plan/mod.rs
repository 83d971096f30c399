//! The difference between what `jobs.yaml` asks for and what is on disk.
//!
//! Owns the [`Plan`] value and the pure function [`diff`] that computes it
//! from an [`Observed`] and a [`Desired`] state. No I/O, no clock, no
//! SQLite: `plan` prints the value, `apply` (and later every reload of the
//! daemon) executes it, and tests build both inputs by hand.
//!
//! Only pragmas stored in the file are compared. Per-connection pragmas
//! (`synchronous`, `busy_timeout`, ...) cannot be imposed on other processes,
//! so they are never drift.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::{
    AutoVacuum, Config, DbName, DeclaredColumn, JournalMode, MigrationApply, PageSize,
    PersistentPragmas,
};
use crate::paths;

pub mod adoption;
pub mod identity;
pub mod problem;

pub use problem::{Expectation, KnownBackup, Problem};

/// A database a previous `apply` took under management (the state database
/// records these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedDatabase {
    /// Name in `jobs.yaml` at the time.
    pub name: String,
    /// Absolute path of the file.
    pub path: PathBuf,
}

/// One database as `jobs.yaml` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredDatabase {
    /// Its name.
    pub name: DbName,
    /// Absolute path of its file.
    pub path: PathBuf,
    /// The pragmas stored in the file.
    pub pragmas: PersistentPragmas,
    /// Restore the latest verified backup when the file is missing.
    pub restore_if_missing: bool,
    /// Whether `apply` runs pending migrations, when there are migrations.
    pub migrations: Option<MigrationApply>,
    /// Columns `jobs.yaml` declares.
    pub columns: Vec<DeclaredColumn>,
}

/// Everything `jobs.yaml` wants that `plan` compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// The databases, by name.
    pub databases: Vec<DesiredDatabase>,
}

impl Desired {
    /// The desired state of a configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            databases: config
                .databases
                .values()
                .map(|db| DesiredDatabase {
                    name: db.name.clone(),
                    path: db.path.clone(),
                    pragmas: db.pragmas.persistent,
                    restore_if_missing: db.restore_if_missing,
                    migrations: db.migrations.as_ref().map(|m| m.apply),
                    columns: db.columns.clone(),
                })
                .collect(),
        }
    }
}

/// The stored pragmas of an existing database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FileFacts {
    /// Whether the file is in WAL mode (the only journal mode stored in it).
    pub wal: bool,
    /// Auto-vacuum mode.
    pub auto_vacuum: AutoVacuum,
    /// Page size.
    pub page_size: PageSize,
    /// Application id.
    pub application_id: i32,
    /// Number of pages; 0 for an empty file.
    pub page_count: u64,
}

/// What is at a database path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedFile {
    /// No file.
    Missing,
    /// A SQLite database.
    Present(FileFacts),
}

/// Everything `plan` compares against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// What is at each desired database path.
    pub files: BTreeMap<PathBuf, ObservedFile>,
    /// Databases a previous `apply` took under management.
    pub managed: Vec<ManagedDatabase>,
    /// What is known of each database apart from its file, by name.
    pub expectations: BTreeMap<String, Expectation>,
    /// The identity of each present database file, by path.
    pub identities: BTreeMap<PathBuf, identity::Identity>,
    /// Operator holds in force, by database: what they stop, as a note
    /// (`migrations held by operator at 5 since ...`).
    pub holds: BTreeMap<String, Vec<String>>,
    /// Backups whose time is later than now, by database.
    pub dated_in_future: BTreeMap<String, Vec<PathBuf>>,
    /// Pending migrations of each database, by name (`0002_add_priority`).
    pub pending_migrations: BTreeMap<String, Vec<String>>,
    /// For each database, its declared tables as they are.
    pub tables: BTreeMap<String, TableColumns>,
    /// Databases that could not be observed, by name, with the error; the
    /// plan leaves them alone and reports them.
    pub unreadable: BTreeMap<String, String>,
    /// Databases that have tables but no migration history while
    /// migrations are pending, by name: adopted by `migrate baseline`.
    pub unadopted: BTreeMap<String, Unadopted>,
}

/// An existing database with tables and no migration history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unadopted {
    /// How many tables it has.
    pub tables: usize,
    /// Which migration version its schema is, found by replaying them.
    pub detection: adoption::Detection,
}

/// The columns (name, declared type) of each table, by table name; `None`
/// when the table does not exist.
pub type TableColumns = BTreeMap<String, Option<Vec<(String, String)>>>;

/// A persistent pragma and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "pragma", content = "value", rename_all = "snake_case")]
pub enum PragmaValue {
    /// `journal_mode`.
    JournalMode(JournalMode),
    /// `auto_vacuum`.
    AutoVacuum(AutoVacuum),
    /// `page_size`.
    PageSize(PageSize),
    /// `application_id`.
    ApplicationId(i32),
}

impl PragmaValue {
    /// The pragma's name.
    pub fn name(&self) -> &'static str {
        match self {
            PragmaValue::JournalMode(_) => "journal_mode",
            PragmaValue::AutoVacuum(_) => "auto_vacuum",
            PragmaValue::PageSize(_) => "page_size",
            PragmaValue::ApplicationId(_) => "application_id",
        }
    }

    /// The value as `jobs.yaml` spells it.
    pub fn value(&self) -> String {
        match self {
            PragmaValue::JournalMode(mode) => mode.to_string(),
            PragmaValue::AutoVacuum(mode) => mode.to_string(),
            PragmaValue::PageSize(size) => size.to_string(),
            PragmaValue::ApplicationId(id) => id.to_string(),
        }
    }
}

impl fmt::Display for PragmaValue {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}={}", self.name(), self.value())
    }
}

/// One step toward the desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// Create a missing database file with these pragmas.
    CreateDatabase {
        /// The database.
        database: DbName,
        /// Its file.
        path: PathBuf,
        /// Pragmas set at creation, before the first write.
        pragmas: Vec<PragmaValue>,
    },
    /// Change one stored pragma of an existing file.
    SetPragma {
        /// The database.
        database: DbName,
        /// Its file.
        path: PathBuf,
        /// The value now.
        from: PragmaValue,
        /// The value wanted.
        to: PragmaValue,
        /// Whether the change rewrites the file with VACUUM.
        needs_vacuum: bool,
    },
    /// Restore a missing database file from its latest verified backup
    /// (`restore_if_missing`).
    RestoreDatabase {
        /// The database.
        database: DbName,
        /// Its missing file.
        path: PathBuf,
        /// The backup to restore.
        from: PathBuf,
        /// The backup is on the offsite store (downloaded first).
        offsite: bool,
    },
    /// Apply pending migrations (after a verified backup).
    Migrate {
        /// The database.
        database: DbName,
        /// The pending migrations, in order.
        migrations: Vec<String>,
        /// `migrations.apply: manual`: `apply` only reports them.
        manual: bool,
    },
    /// Add a declared column (`ALTER TABLE ... ADD COLUMN`).
    AddColumn {
        /// The database.
        database: DbName,
        /// Its file.
        path: PathBuf,
        /// The column.
        column: DeclaredColumn,
    },
    /// Stop managing a database no longer in `jobs.yaml`; its file is kept.
    Unmanage {
        /// The name it had.
        database: String,
        /// Its file, which is not touched.
        path: PathBuf,
    },
}

impl Change {
    /// The symbol that starts the change's line: `+`, `~` or `-`.
    pub fn symbol(&self) -> char {
        match self {
            Change::CreateDatabase { .. } | Change::RestoreDatabase { .. } => '+',
            Change::SetPragma { .. } | Change::AddColumn { .. } => '~',
            Change::Migrate { .. } => '>',
            Change::Unmanage { .. } => '-',
        }
    }

    /// The database the change is about.
    pub fn database(&self) -> &str {
        match self {
            Change::CreateDatabase { database, .. }
            | Change::SetPragma { database, .. }
            | Change::RestoreDatabase { database, .. }
            | Change::Migrate { database, .. }
            | Change::AddColumn { database, .. } => database.as_str(),
            Change::Unmanage { database, .. } => database,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Change::Migrate {
            database,
            migrations,
            manual,
        } = self
        {
            let note = if *manual {
                format!(" (manual: run `litewarden migrate up {database}`)")
            } else {
                String::new()
            };
            return f.write_str(&migration_lines(database, migrations, "pending", &note));
        }
        write!(f, "{} {}: ", self.symbol(), self.database())?;
        match self {
            Change::CreateDatabase { path, pragmas, .. } => {
                write!(f, "create {}", paths::display(path))?;
                if !pragmas.is_empty() {
                    let list: Vec<_> = pragmas.iter().map(ToString::to_string).collect();
                    write!(f, " ({})", list.join(", "))?;
                }
                Ok(())
            }
            Change::SetPragma {
                from,
                to,
                needs_vacuum,
                ..
            } => {
                write!(f, "{} {} -> {}", to.name(), from.value(), to.value())?;
                if *needs_vacuum {
                    f.write_str(" (rewrites the file with VACUUM)")?;
                }
                Ok(())
            }
            Change::RestoreDatabase { path, from, .. } => {
                write!(
                    f,
                    "restore {} from {} (file missing)",
                    paths::display(path),
                    paths::display(from)
                )
            }
            Change::Unmanage { path, .. } => {
                write!(f, "stop managing {} (file kept)", paths::display(path))
            }
            Change::Migrate { .. } => Ok(()),
            Change::AddColumn { column, .. } => {
                write!(f, "add column {}.{}", column.table, column.definition())
            }
        }
    }
}

fn migration_lines(database: &DbName, migrations: &[String], verb: &str, note: &str) -> String {
    let lines: Vec<String> = migrations
        .iter()
        .map(|m| format!("> {database}: {m} {verb}{note}"))
        .collect();
    lines.join("\n")
}

impl Change {
    /// How the change reads once `apply` has made it.
    pub fn done_text(&self) -> String {
        match self {
            Change::Migrate {
                database,
                migrations,
                ..
            } => migration_lines(database, migrations, "applied", ""),
            other => other.to_string(),
        }
    }
}

/// The ordered changes that take the observed state to the desired one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The changes, grouped by database, in execution order.
    pub changes: Vec<Change>,
    /// Differences litewarden reports but never changes (a declared column
    /// whose type differs, a declared table that does not exist).
    pub notes: Vec<String>,
    /// Databases left out because they could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Databases whose file does not fit what litewarden knew: nothing
    /// automatic is done to them.
    pub problems: Vec<Problem>,
}

/// A database the plan leaves out because it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The database.
    pub database: String,
    /// Why it could not be read (names the file).
    pub error: String,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Counts of (create, change, unmanage).
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for change in &self.changes {
            match change {
                Change::CreateDatabase { .. } | Change::RestoreDatabase { .. } => {
                    counts.create += 1
                }
                Change::SetPragma { .. } | Change::AddColumn { .. } => counts.change += 1,
                Change::Migrate { migrations, .. } => counts.migrate += migrations.len(),
                Change::Unmanage { .. } => counts.unmanage += 1,
            }
        }
        counts
    }
}

/// How many changes of each kind a plan holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Databases to create or restore.
    pub create: usize,
    /// Stored pragmas to change.
    pub change: usize,
    /// Migrations to apply.
    pub migrate: usize,
    /// Databases to stop managing.
    pub unmanage: usize,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} to create, {} to change, {} migration(s) to apply, {} to stop managing",
            self.create, self.change, self.migrate, self.unmanage
        )
    }
}

/// Computes the plan. Within a database the order is the one `apply` must
/// follow: rewrites (`auto_vacuum`, `page_size`) before `application_id`,
/// and `journal_mode` last, since a page size cannot change in WAL mode.
pub fn diff(observed: &Observed, desired: &Desired) -> Plan {
    let mut changes = Vec::new();
    let readable = || {
        desired
            .databases
            .iter()
            .filter(|database| !observed.unreadable.contains_key(database.name.as_str()))
    };
    let mut problems = Vec::new();
    for database in readable() {
        let expected = observed
            .expectations
            .get(database.name.as_str())
            .cloned()
            .unwrap_or_default();
        match observed
            .files
            .get(&database.path)
            .copied()
            .unwrap_or(ObservedFile::Missing)
        {
            ObservedFile::Missing => match &expected.newest_verified {
                Some(newest) if database.restore_if_missing => {
                    changes.push(Change::RestoreDatabase {
                        database: database.name.clone(),
                        path: database.path.clone(),
                        from: newest.path.clone(),
                        offsite: newest.offsite,
                    })
                }
                _ if expected.known() => {
                    problems.push(Problem::Missing {
                        database: database.name.clone(),
                        path: database.path.clone(),
                        expected: Box::new(expected),
                    });
                    continue;
                }
                _ => changes.push(Change::CreateDatabase {
                    database: database.name.clone(),
                    path: database.path.clone(),
                    pragmas: creation_pragmas(&database.pragmas),
                }),
            },
            ObservedFile::Present(facts) => {
                if let Some(problem) = replaced(database, &expected, observed) {
                    problems.push(problem);
                    continue;
                }
                if let Some(unadopted) = observed.unadopted.get(database.name.as_str()) {
                    problems.push(Problem::Unadopted {
                        database: database.name.clone(),
                        found: unadopted.clone(),
                    });
                    continue;
                }
                changes.extend(pragma_drift(&database.pragmas, &facts).into_iter().map(
                    |(from, to, needs_vacuum)| Change::SetPragma {
                        database: database.name.clone(),
                        path: database.path.clone(),
                        from,
                        to,
                        needs_vacuum,
                    },
                ))
            }
        }
        if let (Some(apply), Some(pending)) = (
            database.migrations,
            observed.pending_migrations.get(database.name.as_str()),
        ) && !pending.is_empty()
        {
            changes.push(Change::Migrate {
                database: database.name.clone(),
                migrations: pending.clone(),
                manual: apply == MigrationApply::Manual,
            });
        }
    }
    let mut notes = Vec::new();
    for database in readable().filter(|d| !problems.iter().any(|p| p.database() == &d.name)) {
        let tables = observed.tables.get(database.name.as_str());
        for column in &database.columns {
            let existing = tables.and_then(|t| t.get(&column.table));
            match existing {
                Some(Some(columns)) => match columns.iter().find(|(name, _)| name.eq_ignore_ascii_case(&column.column)) {
                    None => changes.push(Change::AddColumn {
                        database: database.name.clone(),
                        path: database.path.clone(),
                        column: column.clone(),
                    }),
                    Some((_, found)) if !same_type(found, &column.sql_type) => notes.push(format!(
                        "{}: {}.{} is {found}, jobs.yaml declares {} (not changed: litewarden only adds columns)",
                        database.name, column.table, column.column, column.sql_type
                    )),
                    Some(_) => {}
                },
                Some(None) if observed.pending_migrations.get(database.name.as_str()).is_none_or(Vec::is_empty) => {
                    notes.push(format!(
                        "{}: table {} does not exist, so {} cannot be added (create the table with a migration)",
                        database.name, column.table, column.column
                    ))
                }
                _ => {}
            }
        }
    }
    let wanted: BTreeSet<&str> = desired.databases.iter().map(|d| d.name.as_str()).collect();
    changes.extend(
        observed
            .managed
            .iter()
            .filter(|managed| !wanted.contains(managed.name.as_str()))
            .map(|managed| Change::Unmanage {
                database: managed.name.clone(),
                path: managed.path.clone(),
            }),
    );
    for database in readable() {
        for hold in observed
            .holds
            .get(database.name.as_str())
            .into_iter()
            .flatten()
        {
            notes.push(format!("{}: {hold}", database.name));
        }
    }
    notes.dedup();
    let unreadable = observed
        .unreadable
        .iter()
        .map(|(database, error)| Unreadable {
            database: database.clone(),
            error: error.clone(),
        })
        .collect();
    Plan {
        changes,
        notes,
        unreadable,
        problems,
    }
}

/// The discontinuity of a present database, if any: one recorded and not
/// accepted, or one this observation shows.
fn replaced(
    database: &DesiredDatabase,
    expected: &Expectation,
    observed: &Observed,
) -> Option<Problem> {
    let (reason, since) = match (&expected.discontinuity, &expected.identity) {
        (Some((since, reason)), _) => (reason.clone(), Some(*since)),
        (None, Some(identity)) => (
            identity::discontinuity(identity, observed.identities.get(&database.path)?)?,
            None,
        ),
        (None, None) => return None,
    };
    Some(Problem::Replaced {
        database: database.name.clone(),
        path: database.path.clone(),
        reason,
        since,
        moved_from: expected
            .last_path
            .clone()
            .filter(|last| last != &database.path),
    })
}

/// Whether two declared SQL types are the same (case and spacing aside).
fn same_type(a: &str, b: &str) -> bool {
    let normal = |t: &str| {
        t.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase()
    };
    normal(a) == normal(b)
}

fn creation_pragmas(pragmas: &PersistentPragmas) -> Vec<PragmaValue> {
    [
        pragmas.page_size.map(PragmaValue::PageSize),
        pragmas.auto_vacuum.map(PragmaValue::AutoVacuum),
        pragmas.application_id.map(PragmaValue::ApplicationId),
        pragmas.journal_mode.map(PragmaValue::JournalMode),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// (from, to, needs_vacuum) for each stored pragma that differs.
fn pragma_drift(
    want: &PersistentPragmas,
    have: &FileFacts,
) -> Vec<(PragmaValue, PragmaValue, bool)> {
    let empty = have.page_count == 0;
    let mut out = Vec::new();
    if let Some(mode) = want.auto_vacuum
        && mode != have.auto_vacuum
    {
        let toggles_on_or_off = mode == AutoVacuum::None || have.auto_vacuum == AutoVacuum::None;
        out.push((
            PragmaValue::AutoVacuum(have.auto_vacuum),
            PragmaValue::AutoVacuum(mode),
            toggles_on_or_off && !empty,
        ));
    }
    if let Some(size) = want.page_size
        && size != have.page_size
    {
        out.push((
            PragmaValue::PageSize(have.page_size),
            PragmaValue::PageSize(size),
            !empty,
        ));
    }
    if let Some(id) = want.application_id
        && id != have.application_id
    {
        out.push((
            PragmaValue::ApplicationId(have.application_id),
            PragmaValue::ApplicationId(id),
            false,
        ));
    }
    if let Some(mode) = want.journal_mode
        && (mode == JournalMode::Wal) != have.wal
    {
        let from = if have.wal {
            JournalMode::Wal
        } else {
            JournalMode::Delete
        };
        out.push((
            PragmaValue::JournalMode(from),
            PragmaValue::JournalMode(mode),
            false,
        ));
    }
    out
}

#[cfg(test)]
mod tests;

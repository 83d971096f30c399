//! Reading what is on disk into [`Observed`] for [`crate::plan::diff`].
//!
//! Owns no state and changes nothing: files are opened read-only, a missing
//! file stays missing, and a database that cannot be read (not SQLite, a
//! broken migrations directory) is recorded in [`Observed::unreadable`]
//! with its error, so one bad file never stops the others being managed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::{DbError, sqlite_error};
use crate::config::{AutoVacuum, Config, Database, PageSize};
use crate::plan::identity::Identity;
use crate::plan::{FileFacts, Observed, ObservedFile, TableColumns};
use crate::state::StateDb;
use crate::state::expect::HoldKind;

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Observes every database of `config` and the managed list in the state
/// database (if one exists); `now` tells backups dated in the future.
pub fn observe(config: &Config, now: DateTime<Utc>) -> Result<Observed, crate::Error> {
    observe_with(config, &|_| true, &Observed::default(), now)
}

/// Observes the databases `fresh` selects (and any `cached` does not know)
/// and reuses `cached` for the others (their file, identity and
/// expectation): the daemon re-reads only what a reload changed, and
/// everything on its periodic full pass.
pub fn observe_with(
    config: &Config,
    fresh: &dyn Fn(&Database) -> bool,
    cached: &Observed,
    now: DateTime<Utc>,
) -> Result<Observed, crate::Error> {
    let mut observed = Observed::default();
    let mut reused = BTreeSet::new();
    for database in config.databases.values() {
        let name = database.name.to_string();
        let reuse = !fresh(database) && cached.files.contains_key(&database.path);
        if reuse {
            reused.insert(name.clone());
            if let Some(expectation) = cached.expectations.get(&name) {
                observed
                    .expectations
                    .insert(name.clone(), expectation.clone());
            }
            if let Some(ahead) = cached.dated_in_future.get(&name) {
                observed.dated_in_future.insert(name.clone(), ahead.clone());
            }
            observed
                .files
                .insert(database.path.clone(), cached.files[&database.path]);
            if let Some(pending) = cached.pending_migrations.get(&name) {
                observed
                    .pending_migrations
                    .insert(name.clone(), pending.clone());
            }
            if let Some(tables) = cached.tables.get(&name) {
                observed.tables.insert(name, tables.clone());
            }
            if let Some(identity) = cached.identities.get(&database.path) {
                observed
                    .identities
                    .insert(database.path.clone(), identity.clone());
            }
            continue;
        }
        match observe_database(database) {
            Ok(seen) => {
                observed.files.insert(database.path.clone(), seen.file);
                if let Some(identity) = seen.identity {
                    observed.identities.insert(database.path.clone(), identity);
                }
                if let Some(pending) = seen.pending_migrations {
                    observed.pending_migrations.insert(name.clone(), pending);
                }
                if let Some(tables) = seen.tables {
                    observed.tables.insert(name, tables);
                }
            }
            Err(error) => {
                observed.unreadable.insert(name, error.to_string());
            }
        }
    }
    let state = StateDb::open_read_only(&config.settings.state_dir)?;
    if let Some(state) = &state {
        observed.managed = state.managed_databases()?;
        apply_holds(config, state, &mut observed)?;
        for database in config
            .databases
            .values()
            .filter(|db| !reused.contains(db.name.as_str()))
        {
            let ahead = state.backups_dated_after(database.name.as_str(), now)?;
            if !ahead.is_empty() {
                observed
                    .dated_in_future
                    .insert(database.name.to_string(), ahead);
            }
        }
    }
    for database in config.databases.values() {
        let name = database.name.as_str();
        if observed.unreadable.contains_key(name) || observed.expectations.contains_key(name) {
            continue;
        }
        let missing = matches!(
            observed.files.get(&database.path),
            Some(ObservedFile::Missing)
        );
        let managed = observed.managed.iter().any(|m| m.name == name);
        let expectation = crate::jobs::identity::expectation(
            state.as_ref(),
            name,
            &config.settings.backup_dir,
            managed,
            missing,
        )?;
        observed.expectations.insert(name.to_string(), expectation);
    }
    Ok(observed)
}

/// Applies the operator's holds to the observation: a `migrate down --to V`
/// hold removes the pending migrations above V while the migration files
/// are as they were (a changed directory lets the hold lapse); a `pause`
/// is shown. Each hold in force becomes a note of its database.
fn apply_holds(
    config: &Config,
    state: &StateDb,
    observed: &mut Observed,
) -> Result<(), crate::Error> {
    for hold in state.holds()? {
        let Some(database) = config.databases.get(hold.database.as_str()) else {
            continue;
        };
        let since = hold.since.format("%Y-%m-%d %H:%M:%SZ");
        let note = match (hold.kind, &database.migrations, hold.version) {
            (HoldKind::Migrations, Some(migrations), Some(version)) => {
                let files = crate::jobs::migrations::runner::discover(database, migrations)?;
                if hold.fingerprint.as_deref()
                    != Some(crate::jobs::migrations::fingerprint(&files).as_str())
                {
                    continue;
                }
                let above: Vec<String> = files
                    .iter()
                    .filter(|f| f.version > version)
                    .map(ToString::to_string)
                    .collect();
                if let Some(pending) = observed.pending_migrations.get_mut(database.name.as_str()) {
                    pending.retain(|name| !above.contains(name));
                }
                format!(
                    "migrations held by operator at {version} since {since} (`litewarden migrate up {}` releases it)",
                    database.name
                )
            }
            (HoldKind::Backups, _, _) => format!(
                "backups paused by operator since {since} (`litewarden resume {}`)",
                database.name
            ),
            _ => continue,
        };
        observed
            .holds
            .entry(database.name.to_string())
            .or_default()
            .push(note);
    }
    Ok(())
}

/// What one database looks like on disk.
struct DatabaseObservation {
    file: ObservedFile,
    identity: Option<Identity>,
    pending_migrations: Option<Vec<String>>,
    tables: Option<TableColumns>,
}

/// Observes one database: its file, pending migrations and declared tables.
fn observe_database(database: &Database) -> Result<DatabaseObservation, crate::Error> {
    let file = observe_file(&database.path)?;
    let identity = read_identity(&database.path)?;
    let pending_migrations = match &database.migrations {
        Some(migrations) => {
            let status = crate::jobs::migrations::runner::status(database, migrations)?;
            let problems = status.errors();
            if !problems.is_empty() {
                return Err(crate::jobs::migrations::runner::MigrateError::Invalid {
                    database: database.name.to_string(),
                    problems,
                }
                .into());
            }
            Some(status.pending().iter().map(ToString::to_string).collect())
        }
        None => None,
    };
    let tables = if database.columns.is_empty() {
        None
    } else {
        Some(declared_tables(database)?)
    };
    Ok(DatabaseObservation {
        file,
        identity,
        pending_migrations,
        tables,
    })
}

/// What is at `path`: nothing, or a SQLite file and its stored pragmas.
pub fn observe_file(path: &Path) -> Result<ObservedFile, DbError> {
    let io = |action| {
        move |source| DbError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ObservedFile::Missing),
        Err(e) => return Err(io("cannot open")(e)),
    };
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    file.by_ref()
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(io("cannot read"))?;
    if !header.is_empty() && header.as_slice() != SQLITE_HEADER {
        return Err(DbError::NotADatabase {
            path: path.to_path_buf(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(sqlite_error(path, "cannot open read-only"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
    read_facts(&conn, path).map(ObservedFile::Present)
}

/// The identity of the database at `path` (`None` when there is no file):
/// its size, application id, user version, change counter and schema, read
/// through a read-only connection.
pub fn read_identity(path: &Path) -> Result<Option<Identity>, DbError> {
    let mut header = [0u8; 100];
    match std::fs::File::open(path) {
        Ok(mut file) => {
            let read = file.read(&mut header).map_err(|source| DbError::Io {
                path: path.to_path_buf(),
                action: "cannot read",
                source,
            })?;
            if read > 0 && (read < SQLITE_HEADER.len() || &header[..16] != SQLITE_HEADER) {
                return Err(DbError::NotADatabase {
                    path: path.to_path_buf(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DbError::Io {
                path: path.to_path_buf(),
                action: "cannot open",
                source,
            });
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(sqlite_error(path, "cannot open read-only"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
    identity_of(
        &conn,
        path,
        u32::from_be_bytes([header[24], header[25], header[26], header[27]]),
    )
    .map(Some)
}

/// The identity read through an open connection; `change_counter` comes
/// from the file's header.
pub fn identity_of(
    conn: &Connection,
    path: &Path,
    change_counter: u32,
) -> Result<Identity, DbError> {
    let schema_error = sqlite_error(path, "cannot read the schema");
    let mut statement = conn
        .prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
        .map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => DbError::NotADatabase {
                path: path.to_path_buf(),
            },
            _ => sqlite_error(path, "cannot read the schema")(source),
        })?;
    let entries: Vec<(String, String, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(schema_error)?;
    let mut hasher = Sha256::new();
    for (_, _, sql) in &entries {
        hasher.update(sql.as_bytes());
        hasher.update(b"\n");
    }
    Ok(Identity {
        page_size: pragma::<i64>(conn, path, "page_size")?.max(0) as u64,
        page_count: pragma::<i64>(conn, path, "page_count")?.max(0) as u64,
        application_id: pragma(conn, path, "application_id")?,
        user_version: pragma(conn, path, "user_version")?,
        change_counter,
        tables: entries
            .into_iter()
            .filter(|(kind, name, _)| kind == "table" && !name.starts_with("sqlite_"))
            .map(|(_, name, _)| name)
            .collect(),
        schema_sha256: format!("{:x}", hasher.finalize()),
    })
}

/// Reads the stored pragmas through an open connection.
pub fn read_facts(conn: &Connection, path: &Path) -> Result<FileFacts, DbError> {
    let journal_mode: String = pragma(conn, path, "journal_mode")?;
    let auto_vacuum = match pragma::<i64>(conn, path, "auto_vacuum")? {
        1 => AutoVacuum::Full,
        2 => AutoVacuum::Incremental,
        _ => AutoVacuum::None,
    };
    let page_size =
        PageSize::new(pragma::<i64>(conn, path, "page_size")?.max(0) as u64).map_err(|_| {
            DbError::NotADatabase {
                path: path.to_path_buf(),
            }
        })?;
    Ok(FileFacts {
        wal: journal_mode.eq_ignore_ascii_case("wal"),
        auto_vacuum,
        page_size,
        application_id: pragma(conn, path, "application_id")?,
        page_count: pragma::<i64>(conn, path, "page_count")?.max(0) as u64,
    })
}

/// Reads one pragma, mapping "file is not a database" to its own error.
pub(crate) fn pragma<T: rusqlite::types::FromSql>(
    conn: &Connection,
    path: &Path,
    name: &str,
) -> Result<T, DbError> {
    conn.pragma_query_value(None, name, |row| row.get(0))
        .map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => DbError::NotADatabase {
                path: path.to_path_buf(),
            },
            _ => sqlite_error(path, format!("cannot read {name}"))(source),
        })
}

/// The columns (name, declared type) of each table `database` declares
/// columns for; `None` for a table that does not exist (or a missing file).
pub fn declared_tables(database: &Database) -> Result<TableColumns, DbError> {
    let path = &database.path;
    let mut tables = BTreeMap::new();
    let conn = if path.exists() {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_error(path, "cannot open read-only"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite_error(path, "cannot set busy_timeout"))?;
        Some(conn)
    } else {
        None
    };
    for column in &database.columns {
        if tables.contains_key(&column.table) {
            continue;
        }
        let columns = match &conn {
            Some(conn) => {
                let mut statement = conn
                    .prepare("SELECT name, type FROM pragma_table_info(?1)")
                    .map_err(sqlite_error(path, "cannot read the schema"))?;
                let found: Vec<(String, String)> = statement
                    .query_map([&column.table], |row| Ok((row.get(0)?, row.get(1)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(sqlite_error(path, "cannot read the schema"))?;
                (!found.is_empty()).then_some(found)
            }
            None => None,
        };
        tables.insert(column.table.clone(), columns);
    }
    Ok(tables)
}

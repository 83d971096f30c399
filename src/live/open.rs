//! Setting a [`super::Manager`] up: the configuration of a bare path, the
//! database file (created only when the daemon would create it), the writer
//! connection, and the copies and columns it hands to the engines.

use std::path::Path;

use rusqlite::Connection;

use super::{LiveError, NewColumn, Options};
use crate::clock::Clock;
use crate::config::{BackupMethod, Config, Database, DeclaredColumn, Environment, VerifyLevel};

/// A JSON string is a YAML double-quoted scalar; `${` is doubled so a path
/// is never expanded.
fn yaml_string(text: &str) -> String {
    serde_json::Value::from(text.replace("${", "$${")).to_string()
}

/// A one-database configuration for the file at `path`, with `jobs.yaml`'s
/// defaults and the directories of `options` (else beside the file).
pub(super) fn config_for_path(path: &Path, options: &Options) -> Result<Config, LiveError> {
    let path = crate::paths::from_cwd(path);
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(crate::config::DbName::MAX_LEN)
        .collect();
    if name.is_empty() {
        name = "database".into();
    }
    let state_dir = options
        .state_dir
        .clone()
        .unwrap_or_else(|| dir.join(crate::config::DEFAULT_STATE_DIR));
    let backup_dir = options
        .backup_dir
        .clone()
        .unwrap_or_else(|| dir.join(crate::config::DEFAULT_BACKUP_DIR));
    let mut text = format!(
        "version: 1\nsettings: {{ state_dir: {}, backup_dir: {} }}\ndefaults:\n  pragmas: {{ journal_mode: wal, synchronous: normal }}\n  backup: {{ compress: zstd, verify: quick, retention: {{ keep_last: 3, keep_hourly: 24, keep_daily: 7, max_age: {}d }} }}\ndatabases:\n  {name}:\n    path: {}\n",
        yaml_string(&state_dir.to_string_lossy()),
        yaml_string(&backup_dir.to_string_lossy()),
        options.retention_days,
        yaml_string(&path.to_string_lossy()),
    );
    if let Some(migrations) = &options.migrations_dir {
        let migrations = crate::paths::from_cwd(migrations);
        text.push_str(&format!(
            "    migrations: {{ dir: {}, apply: manual }}\n",
            yaml_string(&migrations.to_string_lossy())
        ));
    }
    crate::config::parse(
        text.as_bytes(),
        "live options",
        &dir.join("jobs.yaml"),
        &Environment::default(),
    )
    .map(|(config, _, _)| config)
    .map_err(|errors| {
        LiveError::Config(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Checks the database file, or creates it when the daemon would: a
/// database never seen is created (in WAL mode, with its pragmas); one that
/// litewarden managed and is now missing is refused with what to run. An
/// existing file whose stored pragmas differ from the declared ones (a
/// rollback-journal database the application made itself) is converged as
/// `apply` would, without a VACUUM; when that cannot happen now (the daemon
/// or another writer holds it) the file is used as it is and a warning says
/// why.
pub(super) fn ensure_file(
    config: &Config,
    database: &Database,
    clock: &dyn Clock,
) -> Result<(), LiveError> {
    let open_error = |detail: String| LiveError::Open {
        path: database.path.clone(),
        detail,
    };
    let present = match crate::db::observe::observe_file(&database.path) {
        Ok(crate::plan::ObservedFile::Present(_)) => true,
        Ok(crate::plan::ObservedFile::Missing) => false,
        Err(error) => {
            return Err(open_error(
                error
                    .to_string()
                    .split_once(": ")
                    .map_or(error.to_string(), |(_, rest)| rest.to_string()),
            ));
        }
    };
    let observed = match crate::observe::observe(config, clock.now()) {
        Ok(observed) => observed,
        Err(error) if present => {
            tracing::debug!(db = database.name.as_str(), %error, "cannot observe the database to converge its stored pragmas; using the file as it is");
            return Ok(());
        }
        Err(error) => return Err(LiveError::Config(error.to_string())),
    };
    let mut plan = crate::plan::diff(&observed, &crate::plan::Desired::from_config(config));
    if !present
        && let Some(problem) = plan
            .problems
            .iter()
            .find(|p| p.database() == &database.name)
    {
        return Err(open_error(problem.to_string()));
    }
    plan.problems.clear();
    plan.changes.retain(|change| {
        change.database() == database.name.as_str()
            && match change {
                crate::plan::Change::CreateDatabase { .. } => !present,
                crate::plan::Change::SetPragma { needs_vacuum, .. } => present && !needs_vacuum,
                _ => false,
            }
    });
    if plan.changes.is_empty() {
        return Ok(());
    }
    let options = crate::apply::ApplyOptions {
        allow_vacuum: false,
        scheduled: false,
    };
    let failed = match crate::apply::apply(config, &plan, options, clock) {
        Err(e) => Some(e.to_string()),
        Ok(report) => report
            .results
            .iter()
            .find_map(|result| match &result.status {
                crate::apply::ChangeStatus::Failed(failure) => Some(failure.message.clone()),
                crate::apply::ChangeStatus::Skipped(why) => Some(why.clone()),
                crate::apply::ChangeStatus::Done => None,
            }),
    };
    match failed {
        Some(why) if !present => Err(open_error(format!("cannot create it: {why}"))),
        Some(why) => {
            tracing::warn!(db = database.name.as_str(), reason = %why, "the stored pragmas differ from the declared ones and cannot be changed now; using the file as it is");
            Ok(())
        }
        None => Ok(()),
    }
}

/// The writer connection, with the database's pragmas; refused when SQLite
/// could only open the file read-only. For a replicated database its
/// automatic checkpoints are off: the daemon's capture is the checkpointer,
/// and a checkpoint of ours could restart the log under frames it has not
/// shipped yet.
pub(super) fn writer(database: &Database, cache: usize) -> Result<Connection, LiveError> {
    let open_error = |detail: String| LiveError::Open {
        path: database.path.clone(),
        detail,
    };
    let conn = crate::db::open(&database.path, &database.pragmas.connection)
        .map_err(|e| open_error(format!("cannot open for writing: {e}")))?;
    conn.set_prepared_statement_cache_capacity(cache);
    if database.replicate.is_some() {
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| open_error(format!("cannot leave checkpoints to the capture: {e}")))?;
    }
    let read_only = conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(|e| open_error(format!("cannot open for writing: {e}")))?;
    if read_only {
        return Err(open_error(
            "read-only (a read-only file, directory or mount); the application's writer needs to write it and its -wal beside it".into(),
        ));
    }
    Ok(conn)
}

/// A consistent copy of `database` at `target`, `quick_check`ed before it
/// is moved into place; `target` must not exist.
pub(super) fn copy_to(database: &Database, target: &Path) -> Result<std::path::PathBuf, LiveError> {
    let target = crate::paths::from_cwd(target);
    let copy_error = |detail: String| LiveError::Copy {
        path: target.clone(),
        detail,
    };
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(copy_error("exists; backup_to never replaces a file".into()));
    }
    let source = crate::jobs::copy::Source::open(
        &database.path,
        BackupMethod::Auto,
        &database.pragmas.connection,
    )
    .map_err(|e| copy_error(e.to_string()))?;
    let pending = crate::durable::PendingFile::create_named(&target)
        .map_err(|e| copy_error(format!("cannot create: {e}")))?;
    source
        .copy_to(
            pending.file(),
            pending.path(),
            &mut crate::jobs::progress::Quiet,
        )
        .map_err(|e| copy_error(e.to_string()))?;
    crate::jobs::verify::check_database(pending.path(), VerifyLevel::Quick)
        .map_err(|e| copy_error(e.to_string()))?;
    pending
        .commit()
        .map_err(|e| copy_error(format!("cannot write: {e}")))
}

/// `column` checked as `jobs.yaml`'s `schema:` checks it.
pub(super) fn declared_column(
    database: &str,
    column: &NewColumn,
) -> Result<DeclaredColumn, LiveError> {
    let bad = |detail: &str| LiveError::BadColumn {
        database: database.to_string(),
        table: column.table.clone(),
        column: column.column.clone(),
        detail: detail.to_string(),
    };
    if !crate::config::columns::identifier(&column.table)
        || !crate::config::columns::identifier(&column.column)
    {
        return Err(bad(
            "table and column must be plain identifiers (letters, digits, `_`)",
        ));
    }
    if !crate::config::columns::type_name(&column.sql_type) {
        return Err(bad(
            "the type must be a type name such as INTEGER, TEXT or VARCHAR(255)",
        ));
    }
    if column.not_null && column.default.is_none() {
        return Err(bad(
            "a NOT NULL column needs a default for the rows that already exist",
        ));
    }
    Ok(DeclaredColumn {
        table: column.table.clone(),
        column: column.column.clone(),
        sql_type: column.sql_type.clone(),
        default: column
            .default
            .as_deref()
            .map(crate::config::columns::literal),
        not_null: column.not_null,
    })
}

//! Read-only file-system checks on a validated configuration.
//!
//! Owns the checks that need to look at the disk but must not change it:
//! a database, backup or state directory that cannot be created because a
//! parent is a regular file; a migrations directory that does not exist; and
//! the warning that backups share the database's file system (one disk
//! failure would take both). Nothing here creates, opens for writing or
//! deletes anything.
//!
//! A directory that cannot be created (the backup disk unmounted, a
//! directory replaced by a file) is a fault of the environment, not of the
//! file: [`Preflight::faults`], which commands that write refuse and
//! read-only commands report.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::locate::{Document, FieldPath};
use super::{Config, Diagnostic, Severity};
use crate::paths;

/// What the preflight checks found.
#[derive(Debug, Default)]
pub struct Preflight {
    /// Errors and warnings of the file.
    pub diagnostics: Vec<Diagnostic>,
    /// Faults of the environment: a state, backup or database directory
    /// that cannot be created.
    pub faults: Vec<Diagnostic>,
}

/// Every preflight error, fault and warning for `config`.
pub fn check(config: &Config, document: &Document, label: &str) -> Preflight {
    let mut out = Vec::new();
    let mut faults = Vec::new();
    let diagnostic = |severity, path: FieldPath, message: String| Diagnostic {
        severity,
        file: label.to_string(),
        position: document.locate(&path),
        field: path.to_string(),
        message,
    };
    let mut fault = |path: FieldPath, message: String| {
        faults.push(diagnostic(Severity::Error, path, message));
    };
    let settings = FieldPath::root("settings");
    for (key, dir) in [
        ("state_dir", &config.settings.state_dir),
        ("backup_dir", &config.settings.backup_dir),
    ] {
        if let Err(message) = creatable_dir(dir) {
            fault(settings.key(key), message);
        }
    }
    let backup_device = nearest_existing(&config.settings.backup_dir).and_then(|p| device(&p));
    let mut sharing = Vec::new();
    for (name, database) in &config.databases {
        let at = FieldPath::root("databases").key(name.as_str());
        match std::fs::metadata(&database.path) {
            Ok(meta) if meta.is_dir() => fault(
                at.key("path"),
                format!(
                    "`{}` is a directory, not a database file",
                    paths::display(&database.path)
                ),
            ),
            Ok(_) => {}
            Err(_) => {
                if let Some(parent) = database.path.parent()
                    && let Err(message) = creatable_dir(parent)
                {
                    fault(at.key("path"), message);
                }
            }
        }
        if let Some(migrations) = &database.migrations
            && !migrations.dir.is_dir()
        {
            out.push(diagnostic(
                Severity::Error,
                at.key("migrations").key("dir"),
                format!(
                    "migrations directory `{}` does not exist",
                    paths::display(&migrations.dir)
                ),
            ));
        }
        let db_device = nearest_existing(&database.path).and_then(|p| device(&p));
        if database.backup.enabled
            && database.backup.offsite.is_none()
            && db_device.is_some()
            && db_device == backup_device
        {
            sharing.push(name.as_str());
        }
    }
    let needed = crate::limits::descriptors_needed(config.databases.len());
    if let Some(hard) = crate::limits::open_files().hard
        && needed > hard
    {
        out.push(diagnostic(
            Severity::Warning,
            FieldPath::root("databases"),
            format!(
                "{} databases need about {needed} open files, more than this process may open ({hard}, the hard limit): raise it (`ulimit -Hn`, systemd LimitNOFILE=, or the container's nofile ulimit)",
                config.databases.len()
            ),
        ));
    }
    if !sharing.is_empty() {
        out.push(diagnostic(
            Severity::Warning,
            settings.key("backup_dir"),
            format!(
                "`{}` is on the same file system as {} {}; one disk failure loses the data and its backups (put backups on another disk, or copy them off the machine with `offsite:`)",
                paths::display(&config.settings.backup_dir),
                if sharing.len() == 1 {
                    "database"
                } else {
                    "databases"
                },
                sharing.join(", ")
            ),
        ));
    }
    Preflight {
        diagnostics: out,
        faults,
    }
}

/// Whether `dir` exists as a directory or could be created: its nearest
/// existing ancestor must be a directory.
fn creatable_dir(dir: &Path) -> Result<(), String> {
    let Some(existing) = nearest_existing(dir) else {
        return Ok(());
    };
    if existing.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "directory `{}` cannot be created: `{}` is not a directory",
            paths::display(dir),
            paths::display(&existing)
        ))
    }
}

fn nearest_existing(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|ancestor| ancestor.symlink_metadata().is_ok())
        .map(Path::to_path_buf)
}

fn device(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|meta| meta.dev())
}

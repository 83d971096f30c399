//! Finding migration files and checksumming them.
//!
//! Owns the naming rules. Accepted names, so an existing history can be
//! pointed at as it is:
//! - `<version>_<name>.sql` (`0001_init.sql`, sqlx's
//!   `20220505083406_create-events.sql`), with an optional `.down.sql` twin;
//! - sqlx's reversible pairs `<version>_<name>.up.sql` / `.down.sql`;
//! - refinery's `V<version>__<name>.sql`.
//!
//! The version is the leading integer of any width; the name holds letters,
//! digits, `_` and `-`. Any other `.sql` file is an error naming it, as are
//! duplicate versions and files that are not UTF-8. Files not ending in
//! `.sql` (a README) are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::MigrationFile;

/// Why the migration directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The directory cannot be read.
    #[error("{}: cannot read the migrations directory: {source}", crate::paths::display(.path))]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `.sql` file whose name does not follow the rules.
    #[error("{}: not a migration file name; use <version>_<name>.sql, e.g. 0002_add_priority.sql", crate::paths::display(.0))]
    BadName(PathBuf),
    /// Two files with one version.
    #[error("{} and {} both have version {version}", crate::paths::display(.first), crate::paths::display(.second))]
    DuplicateVersion {
        /// The version.
        version: i64,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A file that is not UTF-8.
    #[error("{}: not valid UTF-8 (byte {offset}); save it as UTF-8", crate::paths::display(.path))]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// A file that resolves (through a symbolic link) outside the directory.
    #[error("{}: resolves to {}, outside the migrations directory; copy the file into the directory instead of linking it", crate::paths::display(.path), crate::paths::display(.target))]
    Outside {
        /// The file as listed.
        path: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
    },
    /// A `.sql` name that is not a regular file (a FIFO, a device, a
    /// directory): never read, since reading one can block forever.
    #[error("{}: not a regular file; a migration must be a plain file", crate::paths::display(.0))]
    NotRegular(PathBuf),
    /// A `.down.sql` without its up migration.
    #[error("{}: a down migration without its up migration", crate::paths::display(.0))]
    OrphanDown(PathBuf),
}

/// The kind of file a name denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// An up (forward) migration.
    Up,
    /// A down (reverting) migration.
    Down,
}

/// Parses a file name into (version, name, kind); `None` when it is not a
/// migration name.
pub fn parse_name(file_name: &str) -> Option<(i64, String, FileKind)> {
    let (stem, kind) = if let Some(stem) = file_name.strip_suffix(".down.sql") {
        (stem, FileKind::Down)
    } else if let Some(stem) = file_name.strip_suffix(".up.sql") {
        (stem, FileKind::Up)
    } else {
        (file_name.strip_suffix(".sql")?, FileKind::Up)
    };
    let (version, name) = match stem
        .strip_prefix('V')
        .and_then(|rest| rest.split_once("__"))
    {
        Some((version, name)) => (version, name),
        None => stem.split_once('_')?,
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit()) || !valid_name {
        return None;
    }
    Some((version.parse().ok()?, name.to_string(), kind))
}

/// SHA-256 of a migration's text with a UTF-8 BOM stripped and CRLF turned
/// into LF, so an editor's line endings never count as an edit.
pub fn checksum(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalised = text.replace("\r\n", "\n");
    Sha256::digest(normalised.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads every migration in `dir`, in version order.
pub fn discover(dir: &Path) -> Result<Vec<MigrationFile>, FilesError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FilesError::Io { path, source }
    };
    let mut ups: BTreeMap<i64, MigrationFile> = BTreeMap::new();
    let mut downs: BTreeMap<i64, PathBuf> = BTreeMap::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    names.sort();
    let root = std::fs::canonicalize(dir).map_err(io(dir))?;
    for path in names {
        let Some(file_name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !file_name.ends_with(".sql") {
            continue;
        }
        let target = std::fs::canonicalize(&path).map_err(io(&path))?;
        if !target.starts_with(&root) {
            return Err(FilesError::Outside { path, target });
        }
        let metadata = std::fs::metadata(&target).map_err(io(&path))?;
        if metadata.is_dir() {
            continue;
        }
        if !metadata.is_file() {
            return Err(FilesError::NotRegular(path));
        }
        let (version, name, kind) =
            parse_name(&file_name).ok_or_else(|| FilesError::BadName(path.clone()))?;
        if kind == FileKind::Down {
            if let Some(first) = downs.insert(version, path.clone()) {
                return Err(FilesError::DuplicateVersion {
                    version,
                    first,
                    second: path,
                });
            }
            continue;
        }
        let bytes = crate::regular::read(&path).map_err(|error| match error {
            crate::regular::OpenError::Io(source) => FilesError::Io {
                path: path.clone(),
                source,
            },
            _ => FilesError::NotRegular(path.clone()),
        })?;
        let sql = String::from_utf8(bytes).map_err(|e| FilesError::NotUtf8 {
            path: path.clone(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        let file = MigrationFile {
            version,
            name,
            checksum: checksum(&sql),
            no_transaction: sql
                .trim_start_matches('\u{feff}')
                .trim_start()
                .starts_with("-- litewarden:no-transaction"),
            sql,
            path: path.clone(),
            down: None,
        };
        if let Some(first) = ups.insert(version, file) {
            return Err(FilesError::DuplicateVersion {
                version,
                first: first.path,
                second: path,
            });
        }
    }
    for (version, down) in downs {
        match ups.get_mut(&version) {
            Some(up) => up.down = Some(down),
            None => return Err(FilesError::OrphanDown(down)),
        }
    }
    Ok(ups.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_that_resolves_outside_the_directory_is_refused_and_never_read() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("migrations");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(root.path().join("secret.sql"), "password=hunter2").unwrap();
        std::fs::write(dir.join("0001_a.sql"), "CREATE TABLE a (x);").unwrap();
        std::os::unix::fs::symlink("0001_a.sql", dir.join("0002_b.sql")).unwrap();
        assert_eq!(
            discover(&dir).unwrap().len(),
            2,
            "a link inside the directory is fine"
        );
        std::os::unix::fs::symlink(root.path().join("secret.sql"), dir.join("0003_c.sql")).unwrap();
        let error = discover(&dir).unwrap_err();
        assert!(matches!(error, FilesError::Outside { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("outside the migrations directory"),
            "{error}"
        );
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn accepts_plain_sqlx_and_refinery_names() {
        assert_eq!(
            parse_name("0001_init.sql"),
            Some((1, "init".into(), FileKind::Up))
        );
        assert_eq!(
            parse_name("20220505083406_create-events.sql"),
            Some((20220505083406, "create-events".into(), FileKind::Up))
        );
        assert_eq!(
            parse_name("0002_add_x.up.sql"),
            Some((2, "add_x".into(), FileKind::Up))
        );
        assert_eq!(
            parse_name("0002_add_x.down.sql"),
            Some((2, "add_x".into(), FileKind::Down))
        );
        assert_eq!(
            parse_name("V3__add_index.sql"),
            Some((3, "add_index".into(), FileKind::Up))
        );
    }

    #[test]
    fn refuses_malformed_names() {
        for name in [
            "init.sql",
            "_init.sql",
            "1_.sql",
            "1_bad name.sql",
            "x1_init.sql",
            "1init.sql",
            "99999999999999999999_big.sql",
        ] {
            assert_eq!(parse_name(name), None, "{name}");
        }
    }

    #[test]
    fn checksum_ignores_crlf_and_bom() {
        assert_eq!(checksum("a\r\nb\r\n"), checksum("a\nb\n"));
        assert_eq!(checksum("\u{feff}a\n"), checksum("a\n"));
        assert_ne!(checksum("a\n"), checksum("b\n"));
    }

    #[test]
    fn discover_orders_pairs_and_rejects_bad_directories() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &[u8]| std::fs::write(dir.path().join(name), text).unwrap();
        write("0002_b.sql", b"-- litewarden:no-transaction\nSELECT 2;");
        write("0001_a.up.sql", b"SELECT 1;");
        write("0001_a.down.sql", b"SELECT -1;");
        write("README.md", b"notes");
        let files = discover(dir.path()).unwrap();
        assert_eq!(files.iter().map(|f| f.version).collect::<Vec<_>>(), [1, 2]);
        assert!(files[0].down.is_some() && !files[0].no_transaction);
        assert!(files[1].no_transaction);

        write("notes.sql", b"SELECT 0;");
        assert!(matches!(discover(dir.path()), Err(FilesError::BadName(_))));
        std::fs::remove_file(dir.path().join("notes.sql")).unwrap();
        write("0002_again.sql", b"SELECT 2;");
        assert!(matches!(
            discover(dir.path()),
            Err(FilesError::DuplicateVersion { version: 2, .. })
        ));
        std::fs::remove_file(dir.path().join("0002_again.sql")).unwrap();
        write("0003_latin1.sql", b"SELECT 'caf\xe9';");
        assert!(matches!(
            discover(dir.path()),
            Err(FilesError::NotUtf8 { offset: 11, .. })
        ));
    }
}

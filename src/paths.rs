//! Path helpers shared by the config loader and the printers.
//!
//! Owns no state. Everything here is lexical: no function touches the file
//! system, so the results are the same whether or not the paths exist.

use std::path::{Component, Path, PathBuf};

/// Resolves `path` against `base` (the config file's directory) and removes
/// `.` and `..` components lexically, without following symlinks.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let absolute = std::path::absolute(&joined).unwrap_or(joined);
    normalize(&absolute)
}

/// Resolves a path typed on the command line against the current
/// directory.
pub fn from_cwd(path: &Path) -> PathBuf {
    resolve(&std::env::current_dir().unwrap_or_default(), path)
}

/// Removes `.` and `..` components without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(component);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Shows `path` relative to the current directory when it lies below it, so
/// output reads `website_crawler.db` rather than a long absolute path.
pub fn display(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|relative| !relative.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_removes_dot_and_dotdot() {
        assert_eq!(
            normalize(Path::new("/a/./b/../c.db")),
            PathBuf::from("/a/c.db")
        );
    }

    #[test]
    fn resolve_keeps_absolute_paths_and_joins_relative_ones() {
        assert_eq!(
            resolve(Path::new("/etc/app"), Path::new("/data/x.db")),
            PathBuf::from("/data/x.db")
        );
        assert_eq!(
            resolve(Path::new("/etc/app"), Path::new("../x.db")),
            PathBuf::from("/etc/x.db")
        );
    }
}

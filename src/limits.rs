//! The open-files limit of the process.
//!
//! Owns raising the soft `RLIMIT_NOFILE` to the hard one when the daemon
//! starts (the default soft limit, 1024, ends a daemon with about a
//! thousand databases), and the estimate of how many descriptors a
//! configuration needs, which `check` compares with the limit. Touches
//! nothing else.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors the daemon needs besides its databases: state.db, the
/// config watcher, the HTTP listener and its connections, mail, logs.
pub const BASE_DESCRIPTORS: u64 = 64;

/// Descriptors per managed database: its lock file, and the database,
/// `-wal` and `-shm` of a running job.
pub const DESCRIPTORS_PER_DATABASE: u64 = 4;

/// About how many descriptors the daemon needs for `databases`.
pub fn descriptors_needed(databases: usize) -> u64 {
    BASE_DESCRIPTORS + DESCRIPTORS_PER_DATABASE * databases as u64
}

/// The soft and hard open-files limits (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The limit in force.
    pub soft: Option<u64>,
    /// The most the soft limit may be raised to.
    pub hard: Option<u64>,
}

/// The open-files limits now.
pub fn open_files() -> OpenFiles {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    OpenFiles {
        soft: current,
        hard: maximum,
    }
}

/// Raises the soft open-files limit to the hard one; returns the limits
/// in force afterwards.
pub fn raise_open_files() -> std::io::Result<OpenFiles> {
    let now = open_files();
    if now.soft != now.hard {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: now.hard,
                maximum: now.hard,
            },
        )?;
    }
    Ok(open_files())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_the_soft_limit_reaches_the_hard_one() {
        let raised = raise_open_files().unwrap();
        assert_eq!(raised.soft, raised.hard);
    }

    #[test]
    fn a_thousand_databases_need_more_than_the_default_soft_limit() {
        assert!(descriptors_needed(1000) > 1024);
        assert!(descriptors_needed(3) < 1024);
    }
}

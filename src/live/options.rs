//! How a [`super::Manager`] is set up: [`Options`] and their defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

/// Default number of reader connections.
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// Default time a read waits for a free reader before it fails.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Default threshold over which a statement is listed as slow.
pub const DEFAULT_SLOW_QUERY: Duration = Duration::from_millis(100);

/// Default age, in days, past which [`Manager::backup_now`](crate::live::Manager::backup_now) prunes backups
/// (the shipped `jobs.yaml`'s `${BACKUP_RETENTION_DAYS:-7}d`).
pub const DEFAULT_RETENTION_DAYS: u32 = 7;

/// Default number of prepared statements cached per connection.
pub const DEFAULT_STATEMENT_CACHE: usize = 64;

/// How a [`Manager`](crate::live::Manager) is set up. Fields left `None` take the same defaults
/// as `jobs.yaml` (`settings.backup_dir: backups` and `state_dir:
/// .litewarden`, both beside the database for [`Manager::open`](crate::live::Manager::open)).
///
/// ```
/// use litewarden::live::Options;
/// let options = Options { pool_size: 16, ..Options::default() };
/// assert_eq!(options.pool_size, 16);
/// ```
#[derive(Clone)]
pub struct Options {
    /// Reader connections in the pool.
    pub pool_size: u32,
    /// How long a read waits for a free reader.
    pub connection_timeout: Duration,
    /// Statements slower than this are listed in [`Metrics::queries`](crate::live::Metrics::queries).
    pub slow_query: Duration,
    /// Prepared statements cached per connection.
    pub statement_cache: usize,
    /// Where [`Manager::backup_now`](crate::live::Manager::backup_now) writes (`<dir>/<name>/...`).
    pub backup_dir: Option<PathBuf>,
    /// Where the backup catalog and run history live (`state.db`).
    pub state_dir: Option<PathBuf>,
    /// The migrations directory [`Manager::run_pending_migrations`](crate::live::Manager::run_pending_migrations) applies.
    pub migrations_dir: Option<PathBuf>,
    /// [`Manager::open`](crate::live::Manager::open) only: backups older than this many days are pruned
    /// after each [`Manager::backup_now`](crate::live::Manager::backup_now) (the seed's
    /// `BACKUP_RETENTION_DAYS`), with the rest of the shipped `jobs.yaml`'s
    /// retention (`keep_last: 3, keep_hourly: 24, keep_daily: 7`).
    pub retention_days: u32,
    /// The clock backups are named by.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("pool_size", &self.pool_size)
            .field("connection_timeout", &self.connection_timeout)
            .field("slow_query", &self.slow_query)
            .field("statement_cache", &self.statement_cache)
            .field("backup_dir", &self.backup_dir)
            .field("state_dir", &self.state_dir)
            .field("migrations_dir", &self.migrations_dir)
            .field("retention_days", &self.retention_days)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pool_size: DEFAULT_POOL_SIZE,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            slow_query: DEFAULT_SLOW_QUERY,
            statement_cache: DEFAULT_STATEMENT_CACHE,
            backup_dir: None,
            state_dir: None,
            migrations_dir: None,
            retention_days: DEFAULT_RETENTION_DAYS,
            clock: Arc::new(SystemClock),
        }
    }
}

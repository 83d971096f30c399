//! The validated configuration: what the rest of litewarden reads.
//!
//! Owns the runtime types built from `jobs.yaml` by `validate.rs`. Every
//! value here is checked, every default is applied and merged, and every path
//! is absolute (resolved against the config file's directory). Nothing here
//! does I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::values::{ByteSize, CronPattern, EmailAddress, scalar_enum};

/// Default backup interval when neither `every` nor `schedule` is given.
pub const DEFAULT_BACKUP_EVERY: Duration = Duration::from_secs(3600);
/// Default time a backup may run before it counts as stuck.
pub const DEFAULT_BACKUP_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default interval between health checks.
pub const DEFAULT_HEALTH_EVERY: Duration = Duration::from_secs(300);
/// Default largest healthy `-wal` file, in bytes (256 MiB).
pub const DEFAULT_MAX_WAL_SIZE: ByteSize = ByteSize(256 << 20);
/// Default smallest healthy free disk space, in bytes (1 GiB).
pub const DEFAULT_MIN_FREE_DISK: ByteSize = ByteSize(1 << 30);
/// Default interval between quick_checks within health runs (1 day).
pub const DEFAULT_QUICK_CHECK_EVERY: Duration = Duration::from_secs(86_400);
/// Default interval between integrity_checks within health runs (7 days).
pub const DEFAULT_INTEGRITY_CHECK_EVERY: Duration = Duration::from_secs(7 * 86_400);
/// Default maintenance schedule.
pub const DEFAULT_OPTIMIZE_SCHEDULE: &str = "@hourly";
/// Default busy timeout of litewarden's own connections.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of jobs the daemon runs at once.
pub const DEFAULT_MAX_PARALLEL_JOBS: u32 = 2;
/// Default time running jobs get to finish after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default time alerts to the same recipients are gathered into one mail.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// Default state directory, relative to the config file.
pub const DEFAULT_STATE_DIR: &str = ".litewarden";
/// Default backup directory, relative to the config file.
pub const DEFAULT_BACKUP_DIR: &str = "backups";

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file this was loaded from.
    pub file: PathBuf,
    /// Global settings.
    pub settings: Settings,
    /// The managed databases, by name.
    pub databases: BTreeMap<DbName, Arc<Database>>,
    /// Mail server for alerts, if configured.
    pub smtp: Option<Smtp>,
    /// Alert rules, in file order.
    pub alerts: Vec<AlertRule>,
}

/// Global settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Absolute path of the state directory.
    pub state_dir: PathBuf,
    /// Absolute path of the backup directory.
    pub backup_dir: PathBuf,
    /// Time zone that cron schedules run in.
    pub timezone: chrono_tz::Tz,
    /// Address of the HTTP endpoint, if enabled.
    pub listen: Option<SocketAddr>,
    /// Who may read it.
    pub http: Http,
    /// Jobs the daemon runs at once.
    pub max_parallel_jobs: u32,
    /// Worker threads of the daemon's pool; `None`: twice the cores.
    pub workers: Option<u32>,
    /// How far scheduled jobs are spread by a stable per-database offset;
    /// `None`: over their whole period; zero: not spread.
    pub splay: Option<Duration>,
    /// Time running jobs get after SIGTERM.
    pub shutdown_grace: Duration,
    /// Alerts to the same recipients that start within this go in one mail.
    pub group_wait: Duration,
    /// URL that gets a GET after each health round with every database
    /// healthy (a dead man's switch).
    pub heartbeat_url: Option<String>,
}

/// Access to the daemon's listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Http {
    /// The environment variable holding the bearer token, if one is
    /// required.
    pub token_env: Option<String>,
    /// Whether /metrics and /healthz are served without the token.
    pub metrics_public: bool,
}

/// A database name: letters, digits, `_` and `-`, used in file names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DbName(String);

/// Lets `config.databases.get(name)` look a database up by a plain `&str`
/// (the derived ordering is the inner string's, so lookups agree).
impl std::borrow::Borrow<str> for DbName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl DbName {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 64;

    /// Checks and wraps a name.
    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(format!(
                "database name must have 1 to {} characters",
                Self::MAX_LEN
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "database name `{name}` may only contain letters, digits, `_` and `-` (it is used in backup file names)"
            ));
        }
        Ok(Self(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DbName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One managed database with all defaults merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    /// The database's name.
    pub name: DbName,
    /// Absolute path of the database file.
    pub path: PathBuf,
    /// Pragmas.
    pub pragmas: Pragmas,
    /// Backups.
    pub backup: Backup,
    /// Health checks.
    pub health: Health,
    /// Maintenance.
    pub optimize: Optimize,
    /// Restore drills, if configured.
    pub drill: Option<Drill>,
    /// Migrations, if configured.
    pub migrations: Option<Migrations>,
    /// Restore the latest verified backup when the file is missing at `apply`.
    pub restore_if_missing: bool,
    /// Declared columns, by table then column.
    pub columns: Vec<DeclaredColumn>,
    /// Continuous replication, if configured.
    pub replicate: Option<Replicate>,
}

/// Continuous replication of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicate {
    /// Where segments go.
    pub to: ReplicateTo,
    /// How often new commits are shipped.
    pub sync_every: Duration,
    /// How far back point-in-time restore reaches.
    pub window: Duration,
    /// How far behind replication may fall before `replication_lag` holds.
    pub max_lag: Duration,
}

/// A column `jobs.yaml` declares; `apply` adds it when missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeclaredColumn {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// The SQL type as declared.
    pub sql_type: String,
    /// The default as an SQL literal.
    pub default: Option<String>,
    /// `NOT NULL`.
    pub not_null: bool,
}

impl DeclaredColumn {
    /// The column definition for `ALTER TABLE ... ADD COLUMN`.
    pub fn definition(&self) -> String {
        let mut sql = format!("\"{}\" {}", self.column, self.sql_type);
        if let Some(default) = &self.default {
            sql.push_str(&format!(" DEFAULT {default}"));
        }
        if self.not_null {
            sql.push_str(" NOT NULL");
        }
        sql
    }
}

/// Pragmas, split by where they live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pragmas {
    /// Stored in the file; `plan` reports drift and `apply` converges them.
    pub persistent: PersistentPragmas,
    /// Set on every connection litewarden (or the `live` pool) opens.
    pub connection: ConnectionPragmas,
}

/// Pragmas stored in the database file. `None` means "not managed".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistentPragmas {
    /// Journal mode.
    pub journal_mode: Option<JournalMode>,
    /// Auto-vacuum mode.
    pub auto_vacuum: Option<AutoVacuum>,
    /// Page size in bytes.
    pub page_size: Option<PageSize>,
    /// Application id in the header.
    pub application_id: Option<i32>,
}

/// Pragmas that hold for one connection only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPragmas {
    /// `PRAGMA synchronous`.
    pub synchronous: Option<Synchronous>,
    /// `PRAGMA busy_timeout`.
    pub busy_timeout: Duration,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: Option<bool>,
    /// `PRAGMA cache_size`, as a byte budget.
    pub cache_size: Option<ByteSize>,
    /// `PRAGMA mmap_size`.
    pub mmap_size: Option<ByteSize>,
}

impl Default for ConnectionPragmas {
    fn default() -> Self {
        Self {
            synchronous: None,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            foreign_keys: None,
            cache_size: None,
            mmap_size: None,
        }
    }
}

/// A valid SQLite page size: a power of two from 512 to 65536 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PageSize(u32);

impl PageSize {
    /// Checks and wraps a page size in bytes.
    pub fn new(bytes: u64) -> Result<Self, String> {
        if (512..=65536).contains(&bytes) && bytes.is_power_of_two() {
            Ok(Self(bytes as u32))
        } else {
            Err(format!(
                "page_size must be a power of two from 512 to 65536 bytes, found {bytes}"
            ))
        }
    }

    /// The page size in bytes.
    pub fn bytes(self) -> u32 {
        self.0
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// At a fixed interval, anchored to the last recorded run.
    Every(Duration),
    /// On a cron pattern in `settings.timezone` (one parsed pattern shared
    /// by every database that uses the same text).
    Cron(Arc<CronPattern>),
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Schedule::Every(every) => write!(f, "every {}", humantime::format_duration(*every)),
            Schedule::Cron(pattern) => write!(f, "cron \"{}\"", pattern.as_str()),
        }
    }
}

/// Backup settings of one database.
#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    /// Scheduled backups on or off.
    pub enabled: bool,
    /// When scheduled backups run.
    pub schedule: Schedule,
    /// How the copy is taken.
    pub method: BackupMethod,
    /// Compression of the backup file.
    pub compress: Compression,
    /// Check run after writing.
    pub verify: VerifyLevel,
    /// Which backups to keep.
    pub retention: Retention,
    /// Take a verified backup before pending migrations.
    pub before_migrations: bool,
    /// Time after which a running backup counts as stuck.
    pub timeout: Duration,
    /// Upper bound of the stable per-database delay added to scheduled runs.
    pub jitter: Duration,
    /// Where verified backups are uploaded, if anywhere.
    pub offsite: Option<Arc<Offsite>>,
}

/// Where copies go off the machine (`settings.offsite` or a database's
/// `backup.offsite`). Holds the names of the credential variables, never
/// their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offsite {
    /// The bucket and prefix, or the directory.
    pub url: OffsiteUrl,
    /// A custom S3 endpoint.
    pub endpoint: Option<String>,
    /// The S3 region.
    pub region: String,
    /// Whether an `http://` endpoint is allowed.
    pub allow_http: bool,
    /// Where the access key id is read from.
    pub access_key_id: PasswordSource,
    /// Where the secret access key is read from.
    pub secret_access_key: PasswordSource,
    /// Which remote copies to keep.
    pub retention: Retention,
    /// How old the newest remote copy may get before `offsite_stale`.
    pub max_age_lag: Duration,
}

/// An offsite location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsiteUrl {
    /// `s3://BUCKET[/PREFIX]`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/` (may be empty).
        prefix: String,
    },
    /// `file:///DIR`: a mounted directory.
    File(PathBuf),
}

impl OffsiteUrl {
    /// Parses `s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/DIR`.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX");
            }
            return Ok(OffsiteUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some(path) = text.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err("must be an absolute directory: file:///mnt/backups");
            }
            return Ok(OffsiteUrl::File(PathBuf::from(path)));
        }
        Err("must start with s3:// or file://")
    }
}

impl fmt::Display for OffsiteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffsiteUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            OffsiteUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            OffsiteUrl::File(dir) => write!(f, "file://{}", dir.display()),
        }
    }
}

/// Retention rules (restic `forget` semantics); 0 disables a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Newest N backups.
    pub keep_last: u32,
    /// Newest of each of the last N hours.
    pub keep_hourly: u32,
    /// Newest of each of the last N days.
    pub keep_daily: u32,
    /// Newest of each of the last N ISO weeks.
    pub keep_weekly: u32,
    /// Newest of each of the last N months.
    pub keep_monthly: u32,
    /// Newest of each of the last N years.
    pub keep_yearly: u32,
    /// Everything younger than this, measured from the newest backup.
    pub keep_within: Option<Duration>,
    /// Older than this before the newest backup (or now, if earlier) is removed unless protected; not a keep
    /// rule, so it alone is not a policy.
    pub max_age: Option<Duration>,
}

/// Health check settings of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Whether the daemon schedules the health job.
    pub enabled: bool,
    /// Interval between checks.
    pub every: Duration,
    /// Largest healthy WAL file.
    pub max_wal_size: ByteSize,
    /// Smallest healthy free disk space.
    pub min_free_disk: ByteSize,
    /// Oldest healthy newest-verified-backup, if checked.
    pub max_backup_age: Option<Duration>,
    /// Interval between `quick_check`s; zero: never.
    pub quick_check: Duration,
    /// Interval between `integrity_check`s; zero: never.
    pub integrity_check: Duration,
}

/// Maintenance settings of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Optimize {
    /// Whether the daemon schedules maintenance.
    pub enabled: bool,
    /// When maintenance runs.
    pub schedule: Schedule,
    /// Also run a full VACUUM.
    pub vacuum: bool,
}

/// Restore drill settings of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drill {
    /// When drills run.
    pub schedule: Schedule,
    /// The freshness query, if any.
    pub freshness_sql: Option<String>,
    /// Largest acceptable freshness lag of the restored copy.
    pub max_lag: Option<Duration>,
    /// Where the restored copy comes from.
    pub from: DrillFrom,
}

/// Migration settings of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrations {
    /// Absolute path of the migrations directory.
    pub dir: PathBuf,
    /// Whether `apply` runs pending migrations.
    pub apply: MigrationApply,
    /// Accept new files older than the newest applied one.
    pub allow_out_of_order: bool,
}

/// Mail server for alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// User name, if authenticating.
    pub username: Option<String>,
    /// Where the password comes from, if authenticating.
    pub password: Option<PasswordSource>,
    /// Sender address.
    pub from: EmailAddress,
}

/// Where a secret (the SMTP password, an offsite key) is read from; the
/// secret itself is never stored in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The named environment variable.
    Env(String),
    /// The file at this absolute path.
    File(PathBuf),
}

impl fmt::Display for PasswordSource {
    /// The variable's name or the file's path: where to look, never what.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Env(name) => f.write_str(name),
            PasswordSource::File(path) => write!(f, "the file {}", path.display()),
        }
    }
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// Unique name.
    pub name: String,
    /// The condition.
    pub when: AlertCondition,
    /// Job kinds the rule is limited to; empty means all.
    pub jobs: Vec<JobKind>,
    /// Databases the rule is limited to; empty means all.
    pub databases: Vec<DbName>,
    /// Recipients.
    pub to: Vec<EmailAddress>,
    /// How long the condition must hold before firing.
    pub for_: Duration,
    /// Resend interval while firing, if any.
    pub repeat: Option<Duration>,
    /// Send a mail on resolve.
    pub send_resolved: bool,
    /// Keep firing this long after the condition clears (no flapping).
    pub keep_firing_for: Duration,
}

scalar_enum!(
    /// `PRAGMA journal_mode`. Only `wal` is stored in the file; the rollback
    /// modes are what a file is in when it is not in WAL mode.
    JournalMode {
        /// Write-ahead log.
        Wal => "wal",
        /// Rollback journal, deleted after each transaction.
        Delete => "delete",
        /// Rollback journal, truncated after each transaction.
        Truncate => "truncate",
        /// Rollback journal, header zeroed after each transaction.
        Persist => "persist",
    }
);

scalar_enum!(
    /// `PRAGMA auto_vacuum`.
    AutoVacuum {
        /// Never shrink the file.
        None => "none",
        /// Shrink at every commit.
        Full => "full",
        /// Shrink on `PRAGMA incremental_vacuum`.
        Incremental => "incremental",
    }
);

scalar_enum!(
    /// `PRAGMA synchronous`.
    Synchronous {
        /// No syncs.
        Off => "off",
        /// Sync at checkpoints (safe with WAL).
        Normal => "normal",
        /// Sync at every commit.
        Full => "full",
        /// Full, plus the directory.
        Extra => "extra",
    }
);

scalar_enum!(
    /// How a backup copy is taken.
    BackupMethod {
        /// `snapshot` when possible, else `api`.
        Auto => "auto",
        /// Kernel file copy plus WAL page patching under a read transaction.
        Snapshot => "snapshot",
        /// SQLite online backup API in one step.
        Api => "api",
        /// `VACUUM INTO` (compacts).
        Vacuum => "vacuum",
    }
);

scalar_enum!(
    /// Compression of backup files.
    Compression {
        /// Plain `.db` files.
        None => "none",
        /// `.db.zst` files.
        Zstd => "zstd",
    }
);

scalar_enum!(
    /// Check run on a backup after writing it.
    VerifyLevel {
        /// No check.
        None => "none",
        /// `PRAGMA quick_check`.
        Quick => "quick",
        /// `PRAGMA integrity_check`.
        Full => "full",
    }
);

scalar_enum!(
    /// Where continuous replication ships its segments.
    ReplicateTo {
        /// `<backup_dir>/<db>/wal/`.
        Local => "local",
        /// The backup directory and the database's offsite store.
        Offsite => "offsite",
    }
);

scalar_enum!(
    /// Which copies a drill restores.
    DrillFrom {
        /// The newest verified copy in the backup directory.
        Local => "local",
        /// The newest verified copy on the offsite store (downloaded).
        Offsite => "offsite",
    }
);

scalar_enum!(
    /// Whether `apply` runs pending migrations.
    MigrationApply {
        /// `apply` and the daemon run them.
        Auto => "auto",
        /// Only `migrate up` runs them.
        Manual => "manual",
    }
);

scalar_enum!(
    /// SMTP transport security.
    SmtpTls {
        /// Plain connection (only for a local relay).
        None => "none",
        /// Upgrade with STARTTLS.
        Starttls => "starttls",
        /// TLS from the start (SMTPS).
        Tls => "tls",
    }
);

scalar_enum!(
    /// The condition an alert rule watches.
    AlertCondition {
        /// A job ended with an error.
        JobFailed => "job_failed",
        /// A job ran past its timeout.
        JobStuck => "job_stuck",
        /// A health check failed.
        HealthFailed => "health_failed",
        /// The newest verified backup is older than `max_backup_age`.
        BackupStale => "backup_stale",
        /// A migration failed.
        MigrationFailed => "migration_failed",
        /// A restore drill failed.
        DrillFailed => "drill_failed",
        /// Free disk space is below `min_free_disk`.
        DiskLow => "disk_low",
        /// A reload found an invalid jobs.yaml.
        ConfigInvalid => "config_invalid",
        /// A managed database's file is gone.
        DatabaseMissing => "database_missing",
        /// A database no longer fits its identity (emptied, replaced).
        DatabaseReplaced => "database_replaced",
        /// The newest copy on the offsite store is older than `offsite.max_age_lag`.
        OffsiteStale => "offsite_stale",
        /// Replication is further behind than `replicate.max_lag`.
        ReplicationLag => "replication_lag",
        /// The capture of a replicated database fails.
        ReplicationBroken => "replication_broken",
    }
);

scalar_enum!(
    /// The kinds of job litewarden runs.
    JobKind {
        /// Converge files and pragmas.
        Apply => "apply",
        /// Take a backup.
        Backup => "backup",
        /// Remove backups retention no longer keeps.
        Prune => "prune",
        /// Run pending migrations.
        Migrate => "migrate",
        /// Run health checks.
        Health => "health",
        /// Routine maintenance.
        Optimize => "optimize",
        /// Restore drill.
        Drill => "drill",
        /// Upload verified backups to the offsite store.
        Offsite => "offsite",
        /// Continuous replication (a long-running capture).
        Replicate => "replicate",
    }
);

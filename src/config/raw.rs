//! The serde types of `jobs.yaml`, faithful to the file.
//!
//! Owns nothing at run time: these types exist only between parsing and
//! validation. Every struct denies unknown fields, every optional key is an
//! `Option` (so "unset" differs from "zero" and per-database values can
//! override `defaults:`), and every scalar is an [`Expanded`] value so
//! `${VAR}` works everywhere and errors carry the scalar's position.
//!
//! The `///` comments here are the descriptions in `schemas/jobs.schema.json`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::Deserialize;

use super::interpolate::Expanded;
use super::model::{
    AlertCondition, AutoVacuum, BackupMethod, Compression, DrillFrom, JobKind, JournalMode,
    MigrationApply, ReplicateTo, SmtpTls, Synchronous, VerifyLevel,
};
use super::secret::VariableName;
use super::values::{ByteSize, CronPattern, EmailAddress, HumanDuration};

/// A string field that allows `${VAR}` expansion.
pub type Text = Expanded<String>;

/// The whole `jobs.yaml` file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "litewarden jobs.yaml")]
pub struct RawConfig {
    /// Format version of this file. Must be 1.
    pub version: Expanded<u32>,
    /// Where litewarden keeps its own files and how it serves status.
    #[serde(default)]
    pub settings: RawSettings,
    /// Settings merged into every database, key by key; a database overrides any of them.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// The managed databases, by name. The name is used in backup file names and alerts.
    pub databases: BTreeMap<String, RawDatabase>,
    /// Mail server for alerts. Without it no alert mail can be sent.
    pub smtp: Option<RawSmtp>,
    /// Alert rules.
    #[serde(default)]
    pub alerts: Vec<RawAlert>,
}

/// Global settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Settings")]
pub struct RawSettings {
    /// Directory for litewarden's state database and locks, relative to this file. Default `.litewarden`.
    pub state_dir: Option<Text>,
    /// Directory that holds backups (`<backup_dir>/<db>/...`), relative to this file. Default `backups`.
    pub backup_dir: Option<Text>,
    /// IANA time zone that cron schedules run in. Default `UTC`.
    pub timezone: Option<Expanded<chrono_tz::Tz>>,
    /// Address for the status page (`/`), /api/status, /metrics, /healthz and /status, e.g. `127.0.0.1:9187`. Omit to disable.
    pub listen: Option<Expanded<SocketAddr>>,
    /// Who may read the listener: required (with `token_env`) when `listen` is not a loopback address.
    pub http: Option<RawHttp>,
    /// How many jobs the daemon runs at once, across databases. Default 2.
    pub max_parallel_jobs: Option<Expanded<u32>>,
    /// Worker threads of the daemon's job pool. Default twice the cores.
    pub workers: Option<Expanded<u32>>,
    /// Spread each database's scheduled jobs over their period by a stable offset from its name, so many databases on one schedule do not run together: at most this far (capped at the period). Default: the whole period; `0s` turns it off.
    pub splay: Option<Expanded<HumanDuration>>,
    /// How long running jobs may finish after SIGTERM. Default `30s`.
    pub shutdown_grace: Option<Expanded<HumanDuration>>,
    /// Alerts to the same recipients that start within this go in one mail. Default `30s`.
    pub group_wait: Option<Expanded<HumanDuration>>,
    /// Object storage (or a mounted directory) that every verified backup is uploaded to; a database's `backup.offsite` replaces it.
    pub offsite: Option<RawOffsite>,
    /// URL that gets an HTTP GET after each health round in which every database is healthy (healthchecks.io style dead man's switch).
    pub heartbeat_url: Option<Text>,
}

/// Settings shared by all databases.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Defaults")]
pub struct RawDefaults {
    /// SQLite pragmas.
    pub pragmas: Option<RawPragmas>,
    /// Backup schedule, format and retention.
    pub backup: Option<RawBackup>,
    /// Health checks.
    pub health: Option<RawHealth>,
    /// Routine maintenance (`PRAGMA optimize`, checkpoints).
    pub optimize: Option<RawOptimize>,
    /// Restore drills.
    pub drill: Option<RawDrill>,
}

/// One managed database.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Database")]
pub struct RawDatabase {
    /// Path of the database file, relative to this file.
    pub path: Text,
    /// SQLite pragmas; override `defaults.pragmas` key by key.
    pub pragmas: Option<RawPragmas>,
    /// Backup settings; override `defaults.backup` key by key.
    pub backup: Option<RawBackup>,
    /// Health checks; override `defaults.health` key by key.
    pub health: Option<RawHealth>,
    /// Maintenance; overrides `defaults.optimize` key by key.
    pub optimize: Option<RawOptimize>,
    /// Restore drills; override `defaults.drill` key by key. Without either, no drill runs.
    pub drill: Option<RawDrill>,
    /// Migration files for this database.
    pub migrations: Option<RawMigrations>,
    /// When the file does not exist at `apply`, restore the latest verified backup first. Default false.
    pub restore_if_missing: Option<Expanded<bool>>,
    /// Declared columns by table: `apply` adds missing ones with ADD COLUMN, never drops or rewrites.
    pub schema: Option<BTreeMap<String, BTreeMap<String, RawColumn>>>,
    /// Continuous replication of the WAL: lose at most `sync_every` of commits, restore to any point within `window`.
    pub replicate: Option<RawReplicate>,
}

/// Continuous replication.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Replicate")]
pub struct RawReplicate {
    /// `local` (default): segments go to `<backup_dir>/<db>/wal/`; `offsite`: to the database's offsite store too.
    pub to: Option<Expanded<ReplicateTo>>,
    /// How often new commits are shipped, e.g. `1s` (the default): at most this much is lost with the disk.
    pub sync_every: Option<Expanded<HumanDuration>>,
    /// How far back point-in-time restore reaches, e.g. `24h` (the default).
    pub window: Option<Expanded<HumanDuration>>,
    /// The `replication_lag` alert condition holds when the replica is further behind than this, e.g. `10s` (the default).
    pub max_lag: Option<Expanded<HumanDuration>>,
}

/// A declared column.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Column")]
pub struct RawColumn {
    /// SQL type, e.g. `INTEGER`, `TEXT`, `TIMESTAMP`, `VARCHAR(255)`.
    #[serde(rename = "type")]
    pub type_: Text,
    /// Constant default for existing and new rows: a number, or text (quoted for you).
    pub default: Option<Text>,
    /// Add `NOT NULL` (needs a default). Default false.
    pub not_null: Option<Expanded<bool>>,
}

/// SQLite pragmas. `journal_mode`, `auto_vacuum`, `page_size` and
/// `application_id` live in the file and are converged by `apply`; the others
/// apply to litewarden's own connections and to the `live` pool.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Pragmas")]
pub struct RawPragmas {
    /// Journal mode stored in the file: `wal` (recommended), `delete`, `truncate` or `persist`.
    pub journal_mode: Option<Expanded<JournalMode>>,
    /// `none`, `full` or `incremental`. Changing it on a non-empty file needs a VACUUM (`apply --allow-vacuum`).
    pub auto_vacuum: Option<Expanded<AutoVacuum>>,
    /// Page size in bytes, a power of two from 512 to 65536. Changing it on a non-empty file needs a VACUUM.
    pub page_size: Option<Expanded<ByteSize>>,
    /// 32-bit integer stored in the file header to identify the application.
    pub application_id: Option<Expanded<i32>>,
    /// Per connection: `off`, `normal`, `full` or `extra`.
    pub synchronous: Option<Expanded<Synchronous>>,
    /// Per connection: how long to wait for a lock, e.g. `5s`.
    pub busy_timeout: Option<Expanded<HumanDuration>>,
    /// Per connection: enforce foreign keys.
    pub foreign_keys: Option<Expanded<bool>>,
    /// Per connection: page cache size, e.g. `64MiB`.
    pub cache_size: Option<Expanded<ByteSize>>,
    /// Per connection: memory-mapped I/O size, e.g. `256MiB`; 0 disables it.
    pub mmap_size: Option<Expanded<ByteSize>>,
}

/// Backup settings.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Backup")]
pub struct RawBackup {
    /// Take scheduled backups. Default true.
    pub enabled: Option<Expanded<bool>>,
    /// Interval between backups, e.g. `1h` or `3600s`. Exclusive with `schedule`.
    pub every: Option<Expanded<HumanDuration>>,
    /// Cron pattern for backups, e.g. `0 * * * *`. Exclusive with `every`.
    pub schedule: Option<Expanded<CronPattern>>,
    /// `auto` (default), `snapshot`, `api` or `vacuum`.
    pub method: Option<Expanded<BackupMethod>>,
    /// `zstd` (default) or `none`.
    pub compress: Option<Expanded<Compression>>,
    /// Check after writing: `quick` (default), `full` or `none`.
    pub verify: Option<Expanded<VerifyLevel>>,
    /// Which backups to keep; rules are ORed, as in restic `forget`.
    pub retention: Option<RawRetention>,
    /// Take a verified backup before running pending migrations. Default true.
    pub before_migrations: Option<Expanded<bool>>,
    /// A backup running longer than this raises `job_stuck`. Default `1h`.
    pub timeout: Option<Expanded<HumanDuration>>,
    /// Spread databases sharing a schedule: each runs up to this much later (a stable offset per database). Default 0.
    pub jitter: Option<Expanded<HumanDuration>>,
    /// Where this database's verified backups are uploaded; replaces `settings.offsite` as a whole.
    pub offsite: Option<RawOffsite>,
}

/// Copies that leave the machine: object storage or a mounted directory.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Offsite")]
pub struct RawOffsite {
    /// `s3://BUCKET[/PREFIX]` or `file:///mnt/nfs/backups`.
    pub url: Text,
    /// S3 endpoint for MinIO, Garage, R2, Ceph or a test server, e.g. `http://127.0.0.1:9000`. Default: AWS.
    pub endpoint: Option<Text>,
    /// S3 region. Default `us-east-1`.
    pub region: Option<Text>,
    /// Must be true for an `http://` endpoint (credentials and copies then cross the network unencrypted). Default false.
    pub allow_http: Option<Expanded<bool>>,
    /// Name of the environment variable holding the access key id. Default `AWS_ACCESS_KEY_ID`.
    pub access_key_id_env: Option<VariableName>,
    /// Name of the environment variable holding the secret access key (never the key itself). Default `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key_env: Option<VariableName>,
    /// Path of a file holding the access key id, relative to this file; instead of `access_key_id_env`.
    pub access_key_id_file: Option<Text>,
    /// Path of a file holding the secret access key, relative to this file (e.g. a mounted Secret); instead of `secret_access_key_env`.
    pub secret_access_key_file: Option<Text>,
    /// Which remote copies to keep. Default: the database's local retention.
    pub retention: Option<RawRetention>,
    /// `offsite_stale` fires when the newest remote copy is older than this. Default `2h`, or the backup interval plus an hour when that is longer.
    pub max_age_lag: Option<Expanded<HumanDuration>>,
}

/// Retention rules, ORed; the newest verified backup is always kept.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Retention")]
pub struct RawRetention {
    /// Keep the newest N backups.
    pub keep_last: Option<Expanded<u32>>,
    /// Keep the newest backup of each of the last N hours that have one.
    pub keep_hourly: Option<Expanded<u32>>,
    /// Keep the newest backup of each of the last N days that have one.
    pub keep_daily: Option<Expanded<u32>>,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    pub keep_weekly: Option<Expanded<u32>>,
    /// Keep the newest backup of each of the last N months that have one.
    pub keep_monthly: Option<Expanded<u32>>,
    /// Keep the newest backup of each of the last N years that have one.
    pub keep_yearly: Option<Expanded<u32>>,
    /// Keep every backup younger than this, measured from the newest backup, e.g. `7d`.
    pub keep_within: Option<Expanded<HumanDuration>>,
    /// Remove every backup older than this, measured from the newest backup (or now, if earlier), e.g. `7d`, whatever the other rules keep; the newest verified, pinned, pre-migration and pre-discontinuity backups are never removed.
    pub max_age: Option<Expanded<HumanDuration>>,
}

/// Health checks.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Health")]
pub struct RawHealth {
    /// Whether the daemon runs the health job. Default true (`litewarden health` always works).
    pub enabled: Option<Expanded<bool>>,
    /// How often to run the checks. Default `5m`.
    pub every: Option<Expanded<HumanDuration>>,
    /// Unhealthy when the `-wal` file is larger. Default `256MiB`.
    pub max_wal_size: Option<Expanded<ByteSize>>,
    /// Unhealthy when the database's or backup directory's disk has less free space. Default `1GiB`.
    pub min_free_disk: Option<Expanded<ByteSize>>,
    /// Unhealthy when the newest verified backup is older, e.g. `2h`. Unset: not checked.
    pub max_backup_age: Option<Expanded<HumanDuration>>,
    /// How often a health run includes `PRAGMA quick_check` (it holds a read transaction over the whole file). Default `1d`; `0s` never.
    pub quick_check: Option<Expanded<HumanDuration>>,
    /// How often a health run includes the full `PRAGMA integrity_check`. Default `7d`; `0s` never.
    pub integrity_check: Option<Expanded<HumanDuration>>,
}

/// Maintenance schedule.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Optimize")]
pub struct RawOptimize {
    /// Whether the daemon runs maintenance. Default true (`litewarden optimize` always works).
    pub enabled: Option<Expanded<bool>>,
    /// Interval between runs. Exclusive with `schedule`.
    pub every: Option<Expanded<HumanDuration>>,
    /// Cron pattern, e.g. `@hourly` (the default). Exclusive with `every`.
    pub schedule: Option<Expanded<CronPattern>>,
    /// Also run a full `VACUUM` (it rewrites the file and blocks writers while it runs). Default false.
    pub vacuum: Option<Expanded<bool>>,
}

/// Restore drills: restore the newest verified backup to a scratch file and check it.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Drill")]
pub struct RawDrill {
    /// Interval between drills. Exclusive with `schedule`.
    pub every: Option<Expanded<HumanDuration>>,
    /// Cron pattern, e.g. `0 4 * * 0` (Sundays 04:00). Exclusive with `every`.
    pub schedule: Option<Expanded<CronPattern>>,
    /// A query returning one value that grows with the data (e.g. `select max(fetched_at) from crawled_pages`), run on the restored copy and on the live database.
    pub freshness_sql: Option<Text>,
    /// The drill fails when the restored copy's freshness value is older than the live one's by more than this (values read as times), e.g. `2h`.
    pub max_lag: Option<Expanded<HumanDuration>>,
    /// `local` (default): restore the newest verified copy in the backup directory; `offsite`: download and restore the newest verified copy on the offsite store.
    pub from: Option<Expanded<DrillFrom>>,
}

/// Migration files.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Migrations")]
pub struct RawMigrations {
    /// Directory of `<version>_<name>.sql` files, relative to this file.
    pub dir: Text,
    /// `auto` (default): `apply` and the daemon run pending migrations; `manual`: only `migrate up` does.
    pub apply: Option<Expanded<MigrationApply>>,
    /// Accept a new file older than the newest applied one. Default false.
    pub allow_out_of_order: Option<Expanded<bool>>,
}

/// Access to the daemon's listener.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Http")]
pub struct RawHttp {
    /// Name of the environment variable holding the bearer token the page, /api/status and /status require (`Authorization: Bearer TOKEN` or `?token=TOKEN`), e.g. `LITEWARDEN_TOKEN`; never the token itself.
    pub token_env: Option<VariableName>,
    /// Serve /metrics and /healthz without the token (for a Prometheus scraper or a load balancer). Default false.
    pub metrics_public: Option<Expanded<bool>>,
}

/// Mail server for alerts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Smtp")]
pub struct RawSmtp {
    /// Host name of the SMTP server.
    pub host: Text,
    /// Port. Default 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub port: Option<Expanded<u16>>,
    /// `starttls` (default), `tls` or `none`.
    pub tls: Option<Expanded<SmtpTls>>,
    /// User name for SMTP authentication.
    pub username: Option<Text>,
    /// Name of the environment variable holding the password, e.g. `SMTP_PASSWORD` (or `${SMTP_PASSWORD}`; never expanded here).
    pub password_env: Option<VariableName>,
    /// Path of a file holding the password, relative to this file.
    pub password_file: Option<Text>,
    /// Sender address.
    pub from: Expanded<EmailAddress>,
}

/// One alert rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Alert")]
pub struct RawAlert {
    /// Unique name of the rule, used in mails and /status.
    pub name: Text,
    /// The condition that raises the alert.
    pub when: Expanded<AlertCondition>,
    /// Only these job kinds (for `job_failed` and `job_stuck`). Default: all.
    #[serde(default)]
    pub jobs: Vec<Expanded<JobKind>>,
    /// Only these databases. Default: all.
    #[serde(default)]
    pub databases: Vec<Text>,
    /// Recipients.
    pub to: Vec<Expanded<EmailAddress>>,
    /// The condition must hold this long before the alert fires, e.g. `10m`. Default 0.
    #[serde(rename = "for")]
    pub for_: Option<Expanded<HumanDuration>>,
    /// Resend while firing at this interval, e.g. `4h`. Default: never.
    pub repeat: Option<Expanded<HumanDuration>>,
    /// Send a mail when the alert resolves. Default false.
    pub send_resolved: Option<Expanded<bool>>,
    /// Keep the alert firing this long after its condition clears, so a value hovering at a threshold does not flap, e.g. `5m`. Default 0.
    pub keep_firing_for: Option<Expanded<HumanDuration>>,
}

//! The state database's schema, as the upgrade steps that build it.
//!
//! Owns [`SCHEMA`]: entry N upgrades a database at `user_version` N to N+1
//! inside a transaction. A released entry is never edited; later
//! capabilities append entries.

/// Schema upgrades, one per version; never edit a released entry.
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE managed_databases (
        name TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        first_applied_at TEXT NOT NULL,
        last_applied_at TEXT NOT NULL
    );
    CREATE TABLE job_runs (
        id INTEGER PRIMARY KEY,
        job TEXT NOT NULL,
        database TEXT,
        trigger TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT,
        detail TEXT
    );
    CREATE INDEX job_runs_by_job ON job_runs (job, database, started_at);",
    "CREATE TABLE backups (
        id INTEGER PRIMARY KEY,
        database TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT,
        verified_at TEXT,
        method TEXT,
        trigger TEXT NOT NULL,
        pinned INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER
    );
    CREATE INDEX backups_by_database ON backups (database, created_at);",
    "CREATE TABLE daemon_jobs (
        database TEXT NOT NULL,
        job TEXT NOT NULL,
        schedule TEXT NOT NULL,
        next_run TEXT,
        running_since TEXT,
        skipped INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (database, job)
    );
    CREATE TABLE daemon (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        config_ok INTEGER NOT NULL,
        config_error TEXT,
        heartbeat_at TEXT NOT NULL
    );",
    "CREATE TABLE run_totals (
        job TEXT NOT NULL,
        database TEXT NOT NULL,
        outcome TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (job, database, outcome)
    );
    INSERT INTO run_totals (job, database, outcome, count)
        SELECT job, coalesce(database, ''), outcome, count(*) FROM job_runs
        GROUP BY job, coalesce(database, ''), outcome;",
    "ALTER TABLE backups ADD COLUMN seq INTEGER;
    ALTER TABLE job_runs ADD COLUMN failure TEXT;
    ALTER TABLE job_runs ADD COLUMN figures TEXT;
    UPDATE backups SET seq = id;
    CREATE INDEX backups_by_seq ON backups (database, seq);
    CREATE TABLE database_identity (
        name TEXT PRIMARY KEY,
        path TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        identity TEXT NOT NULL
    );
    CREATE TABLE discontinuities (
        id INTEGER PRIMARY KEY,
        database TEXT NOT NULL,
        detected_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        accepted_at TEXT
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        database TEXT,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE operator_holds (
        database TEXT NOT NULL,
        kind TEXT NOT NULL,
        since TEXT NOT NULL,
        version INTEGER,
        fingerprint TEXT,
        PRIMARY KEY (database, kind)
    );
    CREATE TABLE health (
        database TEXT PRIMARY KEY,
        checked_at TEXT NOT NULL,
        status TEXT NOT NULL,
        report TEXT NOT NULL,
        quick_check_at TEXT,
        integrity_check_at TEXT
    );
    CREATE TABLE alerts (
        rule TEXT NOT NULL,
        database TEXT NOT NULL,
        job TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (rule, database, job)
    );
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        recipients TEXT NOT NULL,
        rule TEXT NOT NULL,
        database TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        sent_at TEXT,
        last_error TEXT
    );
    CREATE TABLE backup_readers (
        path TEXT NOT NULL,
        pid INTEGER NOT NULL,
        reason TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY (path, pid)
    );",
    "ALTER TABLE daemon_jobs ADD COLUMN retry INTEGER NOT NULL DEFAULT 0;",
    // Copies named by store and key (`<database>/<file name>`), not by a
    // local path; the manifest's source identity kept with the row.
    "CREATE TABLE copies (
        id INTEGER PRIMARY KEY,
        database TEXT NOT NULL,
        store TEXT NOT NULL,
        key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT,
        verified_at TEXT,
        method TEXT,
        trigger TEXT NOT NULL,
        pinned INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER,
        seq INTEGER NOT NULL,
        source TEXT,
        UNIQUE (store, key)
    );
    INSERT INTO copies (id, database, store, key, created_at, size, sha256, verified_at, method, trigger, pinned, duration_ms, seq)
        SELECT id, database, 'local', database || '/' || replace(path, rtrim(path, replace(path, '/', '')), ''),
               created_at, size, sha256, verified_at, method, trigger, pinned, duration_ms, coalesce(seq, id)
        FROM backups;
    DROP TABLE backups;
    ALTER TABLE copies RENAME TO backups;
    CREATE INDEX backups_by_database ON backups (database, seq);",
    // Where each replicated database's capture stands (issue #24).
    "CREATE TABLE replication (
        database TEXT PRIMARY KEY,
        generation TEXT,
        segments INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        frames INTEGER NOT NULL,
        caught_up_at TEXT,
        error TEXT,
        generations_started INTEGER NOT NULL
    );",
    // The status page's size charts and the application's slow queries
    // (issue #25).
    "CREATE TABLE size_samples (
        database TEXT NOT NULL,
        at TEXT NOT NULL,
        db_bytes INTEGER NOT NULL,
        wal_bytes INTEGER NOT NULL,
        PRIMARY KEY (database, at)
    );
    CREATE TABLE slow_queries (
        database TEXT NOT NULL,
        sql TEXT NOT NULL,
        count INTEGER NOT NULL,
        total_ms REAL NOT NULL,
        max_ms REAL NOT NULL,
        last_at TEXT NOT NULL,
        PRIMARY KEY (database, sql)
    );",
];

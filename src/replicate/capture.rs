//! The capture of one replicated database: every `sync_every`, the
//! commits added to its `-wal` file are written as a segment, and the log
//! is checkpointed so it does not grow.
//!
//! Owns two connections to the live database and the capture's position.
//! The *reader* holds a read transaction between two steps: SQLite neither
//! restarts the log nor checkpoints past a reader's snapshot, so the frames
//! after our position stay where they are until we have read them. The
//! *checkpointer* runs `PASSIVE` checkpoints while the reader still holds
//! the previous snapshot, so a checkpoint never copies a frame we have not
//! shipped; when it copied every frame (the whole log is shipped), the
//! reader lets go so the application's next commit can restart the log,
//! and that restart (the first salt one more) is expected.
//!
//! Anything else is a discontinuity and starts a new generation from a
//! fresh base: the log restarted when we did not expect it (the
//! application checkpointed itself), the file replaced (another inode), a
//! page size change, a commit that cannot be read. A new generation is
//! never a silent gap: the base holds everything committed before it.
//!
//! One case is not seen: after our complete checkpoint, if an application
//! reader keeps the log from restarting, the application appends frames,
//! then checkpoints by itself and restarts the log, all within one
//! `sync_every`, the restart looks like ours and those frames are missed.
//! `live::Manager` and the Python package turn the application's automatic
//! checkpoints off for a replicated database, which closes it for them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use super::catalog::{self, BASE};
use super::segment::{self, PageSums, StoredCommit};
use super::wal::{Position, WalFile, WalHeader};

/// At most this many frames go into one segment.
const MAX_FRAMES_PER_SEGMENT: u64 = 65_536;

/// From this many frames in the log (SQLite's own automatic checkpoint
/// size), the capture holds writers back for a moment to ship the last
/// frames and checkpoint all of them, so the log restarts instead of
/// growing under a writer that never pauses.
pub const RESTART_LOG_AFTER: u64 = 1000;

/// How long the capture's reader stands aside for another checkpointer.
const YIELD_AT_MOST: Duration = Duration::from_secs(2);

/// How long the capture waits for the write lock to restart the log
/// before it tries again at the next step.
const RESTART_WAIT: Duration = Duration::from_millis(200);

/// Why the capture could not go on.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// SQLite refused.
    #[error("{}: {action}: {source}", crate::paths::display(.path))]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// What the capture was doing.
        action: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A file could not be read or written.
    #[error("{}: {action}: {source}", crate::paths::display(.path))]
    Io {
        /// The file.
        path: PathBuf,
        /// What the capture was doing.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database is not in WAL mode.
    #[error("{}: not in WAL mode (journal_mode is {mode}); replication needs `journal_mode: wal`", crate::paths::display(.path))]
    NotWal {
        /// The database.
        path: PathBuf,
        /// Its journal mode.
        mode: String,
    },
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// A new generation started, and why.
    pub new_generation: Option<String>,
    /// Commits shipped in this step.
    pub commits: usize,
    /// Bytes written in this step.
    pub bytes: u64,
}

/// Where the capture stands, for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The current generation.
    pub generation: String,
    /// Segments written in it.
    pub segments: u64,
    /// Bytes of its base and segments.
    pub bytes: u64,
    /// Frames of the log shipped so far.
    pub frames: u64,
}

struct Live {
    generation: String,
    dir: PathBuf,
    header: Option<WalHeader>,
    at: Option<Position>,
    sums: PageSums,
    page_size: u32,
    next_sequence: u64,
    restart_expected: bool,
    base_bytes: u64,
    segment_bytes: u64,
}

/// The capture of one database.
pub struct Capture {
    database: PathBuf,
    replica_dir: PathBuf,
    inode: Option<(u64, u64)>,
    reader: Option<Connection>,
    checkpointer: Option<Connection>,
    wal: WalFile,
    live: Option<Live>,
    reader_may_be_unpinned: bool,
    restart_log_after: u64,
    truncate_log_past: Option<u64>,
    newest_stamp: Option<DateTime<Utc>>,
}

impl Capture {
    /// The capture of the database at `database`, writing under
    /// `replica_dir`. Nothing is opened until the first step.
    pub fn new(database: &Path, replica_dir: &Path) -> Self {
        Capture {
            database: database.to_path_buf(),
            replica_dir: replica_dir.to_path_buf(),
            inode: None,
            reader: None,
            checkpointer: None,
            wal: WalFile::beside(database),
            live: None,
            reader_may_be_unpinned: true,
            restart_log_after: RESTART_LOG_AFTER,
            truncate_log_past: None,
            newest_stamp: None,
        }
    }

    /// Truncates the `-wal` file to nothing after a complete checkpoint
    /// when it is larger than `bytes` (a burst left it large: the log
    /// restarts from its start but the file keeps its size).
    pub fn truncate_log_past(mut self, bytes: u64) -> Self {
        self.truncate_log_past = Some(bytes);
        self
    }

    /// Restarts the log from `frames` instead of [`RESTART_LOG_AFTER`].
    pub fn restart_log_after(mut self, frames: u64) -> Self {
        self.restart_log_after = frames.max(1);
        self
    }

    /// Where it stands, once a generation started.
    pub fn standing(&self) -> Option<Standing> {
        self.live.as_ref().map(|live| Standing {
            generation: live.generation.clone(),
            segments: live.next_sequence,
            bytes: live.base_bytes + live.segment_bytes,
            frames: live.at.map_or(0, |at| at.frames),
        })
    }

    /// Ships what the log gained since the last step. Commits are stamped
    /// with the clock's time after they were read (never before they were
    /// made: a restore at T holds nothing committed after T).
    pub fn step(&mut self, clock: &dyn crate::clock::Clock) -> Result<Step, CaptureError> {
        let now = clock.now();
        let inode = self.inode_now()?;
        if self.inode != Some(inode) {
            let why = match self.inode {
                None => "the capture started",
                Some(_) => "the database file was replaced",
            };
            self.close();
            self.inode = Some(inode);
            return self.start_generation(now, why);
        }
        let Some(live) = self.live.as_mut() else {
            return self.start_generation(now, "the capture started");
        };
        if live.segment_bytes > live.base_bytes.max(1 << 20) {
            return self.start_generation(now, "the segments outgrew the base");
        }
        let header = self
            .wal
            .header()
            .map_err(io(self.wal.path(), "cannot read the log"))?;
        match (live.header, header) {
            (_, None) => {}
            (Some(known), Some(seen)) if known == seen => {}
            (Some(known), Some(seen))
                if live.restart_expected && known.restarted_once_into(&seen) =>
            {
                live.header = Some(seen);
                live.at = Some(Position::start(&seen));
                live.restart_expected = false;
            }
            (None, Some(seen)) if seen.page_size == live.page_size => {
                live.header = Some(seen);
                live.at = Some(Position::start(&seen));
            }
            (Some(_), Some(_)) | (None, Some(_)) => {
                return self.start_generation(
                    now,
                    "the log was restarted by another checkpoint (the application's own)",
                );
            }
        }
        let mut shipped = Step::default();
        if let (Some(header), Some(at)) = (live.header, live.at) {
            let (commits, next) = self
                .wal
                .commits_after(&header, at, MAX_FRAMES_PER_SEGMENT)
                .map_err(io(self.wal.path(), "cannot read the log"))?;
            self.write_segment(clock.now(), commits, next, &mut shipped)?;
        }
        let Some(live) = self.live.as_ref() else {
            return Ok(shipped);
        };
        let shipped_frames = live.at.map_or(0, |at| at.frames);
        let complete = if self.reader_may_be_unpinned {
            false
        } else if shipped_frames >= self.restart_log_after {
            self.restart_log(clock, &mut shipped)?
        } else {
            self.checkpoint(shipped_frames)?
        };
        if let Some(live) = self.live.as_mut() {
            live.restart_expected |= complete;
        }
        if complete && self.log_too_large() && self.truncate_log()? {
            let started = self.start_generation(now, "the log was truncated past max_wal_size")?;
            shipped.new_generation = started.new_generation;
            return Ok(shipped);
        }
        self.renew_read(complete)?;
        Ok(shipped)
    }

    fn log_too_large(&self) -> bool {
        self.truncate_log_past.is_some_and(|limit| {
            std::fs::metadata(self.wal.path()).is_ok_and(|meta| meta.len() > limit)
        })
    }

    /// After a complete checkpoint (every frame shipped and in the
    /// database file): lets go of the reader and truncates the log, without
    /// waiting for anyone (a busy log is left for a later step); whether it
    /// did. A commit may slip in between and be checkpointed by the
    /// truncate, and the next header is written by whichever connection
    /// writes next (with fresh salts when it never restarted the log): so a
    /// truncated log is followed by a new generation, whose base holds
    /// every commit.
    fn truncate_log(&mut self) -> Result<bool, CaptureError> {
        let (Some(reader), Some(checkpointer)) = (self.reader.as_ref(), self.checkpointer.as_ref())
        else {
            return Ok(false);
        };
        let sqlite_error = |action| sqlite(&self.database, action);
        reader
            .execute_batch("COMMIT")
            .map_err(sqlite_error("cannot end the read transaction"))?;
        checkpointer
            .busy_timeout(Duration::ZERO)
            .map_err(sqlite_error("cannot set busy_timeout"))?;
        let truncated = checkpointer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        checkpointer
            .busy_timeout(Duration::from_secs(5))
            .map_err(sqlite_error("cannot set busy_timeout"))?;
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
            .map_err(sqlite_error("cannot start the read transaction"))?;
        self.reader_may_be_unpinned = true;
        Ok(matches!(truncated, Ok(0)))
    }

    /// Writes `commits` (seen at `now`) as the next segment.
    fn write_segment(
        &mut self,
        now: DateTime<Utc>,
        commits: Vec<super::wal::Commit>,
        next: Position,
        step: &mut Step,
    ) -> Result<(), CaptureError> {
        if commits.is_empty() || self.live.is_none() {
            return Ok(());
        }
        let observed_ms = self.stamp(now).timestamp_millis();
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        let stored: Vec<StoredCommit> = commits
            .into_iter()
            .map(|commit| {
                live.sums.apply(&commit);
                StoredCommit {
                    observed_ms,
                    commit,
                    sum: live.sums.total(),
                }
            })
            .collect();
        let name = catalog::segment_name(live.next_sequence, live.next_sequence, observed_ms);
        let target = live.dir.join(name);
        let bytes = segment::write_segment(&target, live.page_size, &stored)
            .map_err(io(&target, "cannot write the segment"))?;
        live.next_sequence += 1;
        live.segment_bytes += bytes;
        live.at = Some(next);
        live.restart_expected = false;
        step.commits += stored.len();
        step.bytes += bytes;
        Ok(())
    }

    /// With writers held back for a moment: ships the last frames, renews
    /// the reader at exactly the log's end and checkpoints every frame, so
    /// the application's next commit restarts the log. Whether it did
    /// (false when the write lock or an application reader was in the way).
    fn restart_log(
        &mut self,
        clock: &dyn crate::clock::Clock,
        step: &mut Step,
    ) -> Result<bool, CaptureError> {
        let Some((header, at)) = self.live.as_ref().and_then(|l| l.header.zip(l.at)) else {
            return Ok(false);
        };
        let holder = self.open()?;
        holder
            .busy_timeout(RESTART_WAIT)
            .map_err(sqlite(&self.database, "cannot set busy_timeout"))?;
        if crate::db::begin_immediate(&holder).is_err() {
            return Ok(false);
        }
        let held = self
            .wal
            .commits_after(&header, at, u64::MAX)
            .map_err(io(self.wal.path(), "cannot read the log"))
            .and_then(|(commits, next)| {
                self.renew_read(false)?;
                let complete = self.checkpoint(next.frames)?;
                Ok((commits, next, complete))
            });
        let _ = holder.execute_batch("ROLLBACK");
        let (commits, next, complete) = held?;
        self.write_segment(clock.now(), commits, next, step)?;
        Ok(complete)
    }

    /// Lets go of the database (a final step should come first).
    pub fn close(&mut self) {
        self.reader = None;
        self.checkpointer = None;
        self.wal.reopen();
        self.live = None;
    }

    /// `now`, or just after the newest time the replica already holds
    /// when the clock went back: stamps only go forward, so the newest
    /// generation sorts last (a restore of the newest point takes it) and a
    /// restore at T still holds nothing committed after T.
    fn stamp(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let replica_dir = &self.replica_dir;
        let newest = *self.newest_stamp.get_or_insert_with(|| {
            catalog::generations(replica_dir)
                .ok()
                .and_then(|generations| generations.iter().map(catalog::Generation::newest).max())
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        });
        let stamped = if now > newest {
            now
        } else {
            newest + chrono::TimeDelta::milliseconds(1)
        };
        self.newest_stamp = Some(stamped);
        stamped
    }

    fn inode_now(&self) -> Result<(u64, u64), CaptureError> {
        let meta = std::fs::metadata(&self.database)
            .map_err(io(&self.database, "cannot read the database"))?;
        Ok((meta.dev(), meta.ino()))
    }

    fn open(&self) -> Result<Connection, CaptureError> {
        let conn = Connection::open_with_flags(
            &self.database,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite(&self.database, "cannot open"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sqlite(&self.database, "cannot set busy_timeout"))?;
        Ok(conn)
    }

    /// A `PASSIVE` checkpoint: whether it was complete, every frame of the
    /// log now in the database file and the log `shipped` frames long.
    fn checkpoint(&mut self, shipped: u64) -> Result<bool, CaptureError> {
        match self.passive_checkpoint()? {
            Some((log, done)) => Ok(log > 0 && log == done && log as u64 == shipped),
            None => {
                self.yield_to_checkpointer()?;
                Ok(false)
            }
        }
    }

    /// A `PASSIVE` checkpoint: the log's frames and those now in the
    /// database file, or `None` when another checkpointer runs.
    fn passive_checkpoint(&self) -> Result<Option<(i64, i64)>, CaptureError> {
        let Some(conn) = self.checkpointer.as_ref() else {
            return Ok(Some((0, 0)));
        };
        let (busy, log, done): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sqlite(&self.database, "cannot checkpoint"))?;
        Ok((busy == 0).then_some((log, done)))
    }

    /// Another checkpointer runs: the application's own `RESTART` or
    /// `TRUNCATE` waits for our reader while it holds writers back, so the
    /// reader lets go until it is done (up to [`YIELD_AT_MOST`]). What it
    /// does to the log is seen at the next step: a restart we did not
    /// expect starts a new generation.
    fn yield_to_checkpointer(&mut self) -> Result<(), CaptureError> {
        let Some(reader) = self.reader.as_ref() else {
            return Ok(());
        };
        reader
            .execute_batch("COMMIT")
            .map_err(sqlite(&self.database, "cannot end the read transaction"))?;
        let since = std::time::Instant::now();
        while since.elapsed() < YIELD_AT_MOST {
            std::thread::sleep(Duration::from_millis(5));
            if self.passive_checkpoint()?.is_some() {
                break;
            }
        }
        if let Some(live) = self.live.as_mut() {
            live.restart_expected = false;
        }
        let reader = self.reader.as_ref().expect("checked above");
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
            .map_err(sqlite(&self.database, "cannot start the read transaction"))?;
        self.reader_may_be_unpinned = true;
        Ok(())
    }

    /// Ends the reader's transaction and starts the next one. After a
    /// complete checkpoint the new snapshot may not use the log at all (so
    /// it pins nothing): no checkpoint runs on it.
    fn renew_read(&mut self, after_complete_checkpoint: bool) -> Result<(), CaptureError> {
        let Some(reader) = self.reader.as_ref() else {
            return Ok(());
        };
        reader
            .execute_batch("COMMIT; BEGIN; SELECT count(*) FROM sqlite_schema;")
            .map_err(sqlite(&self.database, "cannot renew the read transaction"))?;
        self.reader_may_be_unpinned = after_complete_checkpoint;
        Ok(())
    }

    fn start_generation(&mut self, now: DateTime<Utc>, why: &str) -> Result<Step, CaptureError> {
        self.close();
        let now = self.stamp(now);
        let reader = self.open()?;
        let checkpointer = self.open()?;
        let mode: String = reader
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(sqlite(&self.database, "cannot read journal_mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(CaptureError::NotWal {
                path: self.database.clone(),
                mode,
            });
        }
        crate::db::begin_immediate(&checkpointer).map_err(sqlite(
            &self.database,
            "cannot hold writers back to start a generation",
        ))?;
        let started = self.snapshot_position(&reader);
        let _ = checkpointer.execute_batch("ROLLBACK");
        let (header, at) = started?;
        let page_size: u32 = reader
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sqlite(&self.database, "cannot read page_size"))?;
        let generation = unique_generation(&self.replica_dir, now);
        let dir = self.replica_dir.join(&generation);
        crate::durable::create_private_dir(&dir)
            .map_err(io(&dir, "cannot create the generation's directory"))?;
        let mut sums = PageSums::default();
        let base = dir.join(BASE);
        let (_, base_bytes) = {
            let mut pages = reader
                .prepare("SELECT data FROM sqlite_dbpage ORDER BY pgno")
                .map_err(sqlite(&self.database, "cannot read its pages"))?;
            let rows = pages
                .query_map([], |r| r.get::<_, Vec<u8>>(0))
                .map_err(sqlite(&self.database, "cannot read its pages"))?
                .map(|page| page.map_err(std::io::Error::other));
            segment::write_base(&base, page_size, now.timestamp_millis(), rows, &mut sums).map_err(
                |e| {
                    let _ = std::fs::remove_dir(&dir);
                    io(&base, "cannot write the base")(e)
                },
            )?
        };
        self.reader = Some(reader);
        self.checkpointer = Some(checkpointer);
        self.reader_may_be_unpinned = false;
        self.live = Some(Live {
            generation: generation.clone(),
            dir,
            header,
            at,
            sums,
            page_size,
            next_sequence: 0,
            restart_expected: false,
            base_bytes,
            segment_bytes: 0,
        });
        tracing::info!(database = %crate::paths::display(&self.database), generation, why, "replication: new generation");
        Ok(Step {
            new_generation: Some(why.to_string()),
            commits: 0,
            bytes: base_bytes,
        })
    }

    /// With writers held back: the log's header and end, and the reader's
    /// snapshot taken at exactly that end.
    fn snapshot_position(
        &mut self,
        reader: &Connection,
    ) -> Result<(Option<WalHeader>, Option<Position>), CaptureError> {
        self.wal.reopen();
        let header = self
            .wal
            .header()
            .map_err(io(self.wal.path(), "cannot read the log"))?;
        let at = match &header {
            Some(header) => Some(
                self.wal
                    .end(header)
                    .map_err(io(self.wal.path(), "cannot read the log"))?,
            ),
            None => None,
        };
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
            .map_err(sqlite(&self.database, "cannot start the read transaction"))?;
        Ok((header, at))
    }
}

fn unique_generation(replica_dir: &Path, now: DateTime<Utc>) -> String {
    let mut at = now;
    loop {
        let name = catalog::generation_name(at);
        if !replica_dir.join(&name).exists() {
            return name;
        }
        at += chrono::TimeDelta::milliseconds(1);
    }
}

fn io<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> CaptureError + 'a {
    move |source| CaptureError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

fn sqlite<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(rusqlite::Error) -> CaptureError + 'a {
    move |source| CaptureError::Sqlite {
        path: path.to_path_buf(),
        action,
        source,
    }
}

//! The application's slow statements, kept in the state database for
//! `litewarden advise` and the status page.
//!
//! Owns one background thread per manager that writes each slow statement,
//! its literals replaced by `?` ([`normalise`]), into `slow_queries`: the
//! statement that was slow never waits for the state database, and a full
//! queue drops a record rather than slow the application down.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use crate::clock::Clock;
use crate::state::StateDb;

/// Slow statements waiting to be written; past this, new ones are dropped.
const QUEUE: usize = 1024;

/// Writes slow statements of one database to the state database.
#[derive(Debug)]
pub(crate) struct SlowLog {
    sender: Option<SyncSender<(String, f64)>>,
    thread: Option<JoinHandle<()>>,
}

impl SlowLog {
    /// Starts the writer of `database`'s slow statements into the state
    /// database in `state_dir`.
    pub fn start(database: &str, state_dir: PathBuf, clock: Arc<dyn Clock>) -> Self {
        let (sender, received) = sync_channel(QUEUE);
        let database = database.to_string();
        let thread = std::thread::Builder::new()
            .name("litewarden-slow-log".into())
            .spawn(move || write_all(&database, &state_dir, clock.as_ref(), &received))
            .ok();
        Self {
            sender: thread.is_some().then_some(sender),
            thread,
        }
    }

    /// Queues one slow run of `sql` that took `took_ms`.
    pub fn record(&self, sql: &str, took_ms: f64) {
        if let Some(sender) = &self.sender {
            match sender.try_send((normalise(sql), took_ms)) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::debug!("slow-query log full; one record dropped")
                }
            }
        }
    }
}

impl Drop for SlowLog {
    /// Writes what is queued before the manager goes.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_all(
    database: &str,
    state_dir: &std::path::Path,
    clock: &dyn Clock,
    received: &Receiver<(String, f64)>,
) {
    let mut state: Option<StateDb> = None;
    let mut said = false;
    for (sql, took_ms) in received {
        if state.is_none() {
            state = StateDb::open(state_dir)
                .map_err(|e| {
                    if !said {
                        tracing::warn!(error = %e, "cannot record slow queries for `litewarden advise`");
                        said = true;
                    }
                })
                .ok();
        }
        if let Some(open) = &state
            && let Err(e) = open.record_slow_query(database, &sql, took_ms, clock.now())
        {
            tracing::warn!(error = %e, "cannot record a slow query for `litewarden advise`");
            state = None;
        }
    }
}

/// `sql` with its literals (strings, numbers, blobs) replaced by `?`, its
/// numbered parameters spelled `?`, and its white space collapsed: one
/// statement whatever values it ran with.
pub(crate) fn normalise(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
    let mut previous_word = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                while let Some(inner) = chars.next() {
                    if inner == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
                previous_word = false;
            }
            'x' | 'X' if !previous_word && chars.peek() == Some(&'\'') => {}
            '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == close {
                        break;
                    }
                }
                previous_word = true;
            }
            '?' | ':' | '@' | '$' if !previous_word => {
                while chars
                    .peek()
                    .is_some_and(|n| n.is_alphanumeric() || *n == '_')
                {
                    chars.next();
                }
                out.push('?');
                previous_word = false;
            }
            c if c.is_ascii_digit() && !previous_word => {
                while chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '.')
                {
                    chars.next();
                }
                out.push('?');
                previous_word = false;
            }
            c if c.is_whitespace() => {
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if !out.is_empty() {
                    out.push(' ');
                }
                previous_word = false;
            }
            c => {
                out.push(c);
                previous_word = c.is_alphanumeric() || c == '_';
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn literals_and_parameters_become_one_placeholder() {
        assert_eq!(
            normalise(
                "SELECT * FROM pages\n  WHERE url = 'https://a.example/it''s' AND depth > 3;"
            ),
            "SELECT * FROM pages WHERE url = ? AND depth > ?"
        );
        assert_eq!(
            normalise("select title2 from t where id = ?1 or id = :id or data = x'00ff'"),
            "select title2 from t where id = ? or id = ? or data = ?"
        );
        assert_eq!(
            normalise("SELECT \"a 1\" FROM [t 2]"),
            "SELECT \"a 1\" FROM [t 2]"
        );
    }
}

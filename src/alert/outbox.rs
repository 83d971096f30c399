//! The outbox thread: delivers queued notifications and heartbeats.
//!
//! Owns delivery. It runs on a thread of its own with its own state-database
//! connection, so an SMTP server that is slow or down never delays the
//! reconciler or a job. Every second (and when woken) it takes the groups of
//! undelivered notifications that are due (same recipients; the oldest has
//! waited `group_wait`), sends one mail per group, and marks them delivered;
//! a failure is logged and retried with backoff (5 s doubling, at most
//! 5 min), and nothing is lost: the queue is in the state database.
//!
//! Heartbeat GETs go through a thread of their own with a queue of one: an
//! SMTP server that accepts and never answers holds the mail thread for its
//! timeout per attempt, and a dead man's switch must not report litewarden
//! down because of it. A heartbeat handed over while one is still being sent
//! is dropped (the one in flight says the same). Wake-ups coalesce, so no
//! queue grows while the mail thread waits on a server.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError, channel};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::TimeDelta;

use super::email::{Mail, Mailer};
use crate::clock::Clock;
use crate::state::StateDb;
use crate::state::alerts::Notification;

/// How often the outbox looks for due notifications.
pub const TICK: Duration = Duration::from_secs(1);

/// How long a heartbeat GET may take.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait between two delivery attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What the outbox thread is told.
enum Order {
    /// Deliver what is due now.
    Wake,
    /// Use this mailer and group wait from now on.
    Configure(Option<Arc<dyn Mailer>>, Duration),
}

/// The handle of the outbox and heartbeat threads; dropping it stops them.
pub struct Outbox {
    orders: Sender<Order>,
    wake_pending: Arc<AtomicBool>,
    /// The heartbeat thread's inbox, started on the first heartbeat (a
    /// daemon without `heartbeat_url` has no such thread).
    heartbeats: OnceLock<Option<SyncSender<String>>>,
}

impl Outbox {
    /// Starts the thread, delivering with `mailer` (none: notifications
    /// wait in the queue) from the state database in `state_dir`.
    pub fn spawn(
        state_dir: PathBuf,
        mailer: Option<Arc<dyn Mailer>>,
        group_wait: Duration,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        let (orders, inbox) = channel();
        let wake_pending = Arc::new(AtomicBool::new(false));
        let woken = Arc::clone(&wake_pending);
        std::thread::Builder::new()
            .name("outbox".into())
            .spawn(move || {
                let mut worker = Worker {
                    state_dir,
                    state: None,
                    mailer,
                    group_wait,
                    clock,
                    wake_pending: woken,
                };
                worker.run(&inbox);
            })?;
        Ok(Outbox {
            orders,
            wake_pending,
            heartbeats: OnceLock::new(),
        })
    }

    /// Delivers what is due now rather than at the next tick (a wake-up
    /// already pending covers this one).
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.orders.send(Order::Wake);
        }
    }

    /// Changes the mailer or the group wait (a reload changed `smtp:`).
    pub fn configure(&self, mailer: Option<Arc<dyn Mailer>>, group_wait: Duration) {
        let _ = self.orders.send(Order::Configure(mailer, group_wait));
    }

    /// Sends a heartbeat GET to `url` on the heartbeat thread, never
    /// behind mail; dropped when the previous one is still being sent.
    pub fn heartbeat(&self, url: String) {
        let sender = self.heartbeats.get_or_init(|| {
            let (sender, urls) = std::sync::mpsc::sync_channel::<String>(1);
            let started = std::thread::Builder::new()
                .name("heartbeat".into())
                .spawn(move || {
                    for url in urls {
                        heartbeat(&url);
                    }
                });
            match started {
                Ok(_) => Some(sender),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the heartbeat thread; no heartbeats are sent");
                    None
                }
            }
        });
        if let Some(Err(TrySendError::Full(_))) = sender.as_ref().map(|s| s.try_send(url)) {
            tracing::debug!("a heartbeat is still being sent; this one is skipped");
        }
    }
}

struct Worker {
    state_dir: PathBuf,
    state: Option<StateDb>,
    mailer: Option<Arc<dyn Mailer>>,
    group_wait: Duration,
    clock: Arc<dyn Clock>,
    wake_pending: Arc<AtomicBool>,
}

impl Worker {
    fn run(&mut self, inbox: &Receiver<Order>) {
        loop {
            match inbox.recv_timeout(TICK) {
                Ok(Order::Configure(mailer, group_wait)) => {
                    self.mailer = mailer;
                    self.group_wait = group_wait;
                }
                Ok(Order::Wake) => self.wake_pending.store(false, Ordering::Release),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.deliver_due();
        }
    }

    fn deliver_due(&mut self) {
        let Some(mailer) = self.mailer.clone() else {
            return;
        };
        if self.state.as_ref().is_some_and(|state| !state.is_intact()) {
            self.state = None;
        }
        if self.state.is_none() {
            match StateDb::open(&self.state_dir) {
                Ok(state) => self.state = Some(state),
                Err(e) => {
                    tracing::error!(error = %e, "outbox: cannot open the state database");
                    return;
                }
            }
        }
        let Some(state) = &self.state else {
            return;
        };
        let now = self.clock.now();
        let groups = match state.due_notifications(now, self.group_wait) {
            Ok(groups) => groups,
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot read the queue");
                return;
            }
        };
        for group in groups {
            let mail = compose(&group);
            let ids: Vec<i64> = group.iter().map(|n| n.id).collect();
            let recorded = match mailer.send(&mail) {
                Ok(()) => {
                    tracing::info!(to = %mail.to.join(","), subject = %mail.subject, notifications = ids.len(), "alert mail sent");
                    state.mark_delivered(&ids, now)
                }
                Err(e) => {
                    let attempts = group.iter().map(|n| n.attempts).max().unwrap_or(0);
                    let backoff = backoff(attempts);
                    tracing::warn!(to = %mail.to.join(","), error = %e, attempt = attempts + 1, retry_in_s = backoff.as_secs(), "alert mail not delivered; retrying");
                    let next = now + TimeDelta::from_std(backoff).unwrap_or_default();
                    state.mark_undelivered(&ids, next, &e.to_string())
                }
            };
            if let Err(e) = recorded {
                tracing::error!(error = %e, "outbox: cannot record a delivery");
            }
        }
    }
}

/// The wait before retry number `attempts + 1`.
pub fn backoff(attempts: i64) -> Duration {
    let exponent = attempts.clamp(0, 10) as u32;
    Duration::from_secs(5 * 2u64.pow(exponent)).min(MAX_BACKOFF)
}

/// One mail for a group of notifications to the same recipients.
pub fn compose(group: &[Notification]) -> Mail {
    let to = group
        .first()
        .map(|n| n.recipients.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let subject = match group {
        [one] => one.subject.clone(),
        many => format!(
            "[litewarden] {} alerts: {}",
            many.len(),
            many.iter()
                .map(|n| n
                    .subject
                    .trim_start_matches("[litewarden ")
                    .replacen(']', ":", 1))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let body = group
        .iter()
        .map(|n| n.body.as_str())
        .collect::<Vec<_>>()
        .join("\n----------------------------------------\n\n");
    Mail { to, subject, body }
}

/// GETs `url` with a timeout; the outcome is logged.
fn heartbeat(url: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(HEARTBEAT_TIMEOUT))
        .build()
        .into();
    match agent.get(url).call() {
        Ok(response) => tracing::debug!(status = response.status().as_u16(), "heartbeat sent"),
        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(id: i64, subject: &str) -> Notification {
        Notification {
            id,
            created_at: "2027-01-15T08:00:00+00:00".into(),
            recipients: "a@x.org,b@x.org".into(),
            rule: "r".into(),
            database: "app".into(),
            kind: "firing".into(),
            subject: subject.into(),
            body: format!("body {id}\n"),
            attempts: 0,
            sent_at: None,
            last_error: None,
        }
    }

    #[test]
    fn a_group_becomes_one_mail_to_its_recipients() {
        let one = compose(&[notification(1, "[litewarden FIRING] app: backup failed")]);
        assert_eq!(one.subject, "[litewarden FIRING] app: backup failed");
        assert_eq!(one.to, ["a@x.org", "b@x.org"]);
        let two = compose(&[
            notification(1, "[litewarden FIRING] app: backup failed"),
            notification(2, "[litewarden FIRING] other: backup failed"),
        ]);
        assert_eq!(
            two.subject,
            "[litewarden] 2 alerts: FIRING: app: backup failed; FIRING: other: backup failed"
        );
        assert!(two.body.contains("body 1") && two.body.contains("body 2"));
    }

    /// A mail server that accepts and never answers.
    struct Stuck(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

    impl Mailer for Stuck {
        fn send(&self, _: &Mail) -> Result<(), super::super::email::MailError> {
            let _ = self.0.lock().map(|release| release.recv());
            Ok(())
        }
    }

    #[test]
    fn a_stuck_mail_server_never_delays_a_heartbeat() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let state = StateDb::open(dir.path()).unwrap();
        state
            .save_alerts(
                &[],
                &[crate::state::alerts::NewNotification {
                    created_at: crate::clock::SystemClock.now() - TimeDelta::hours(1),
                    recipients: "ops@x.org",
                    rule: "r",
                    database: "app",
                    kind: "firing",
                    subject: "s",
                    body: "b",
                }],
            )
            .unwrap();
        let (release, stuck) = channel();
        let mailer: Arc<dyn Mailer> = Arc::new(Stuck(std::sync::Mutex::new(stuck)));
        let outbox = Outbox::spawn(
            dir.path().to_path_buf(),
            Some(mailer),
            Duration::ZERO,
            Arc::new(crate::clock::SystemClock),
        )
        .unwrap();
        outbox.wake();
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ping", server.local_addr().unwrap());
        outbox.heartbeat(url);
        server.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut client = loop {
            match server.accept() {
                Ok((client, _)) => break client,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("no heartbeat within 5 s while the mail server is stuck: {e}"),
            }
        };
        client.set_nonblocking(false).unwrap();
        let mut request = [0u8; 64];
        let read = client.read(&mut request).unwrap();
        assert!(request[..read].starts_with(b"GET /ping"));
        client
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        release.send(()).unwrap();
    }

    #[test]
    fn retries_back_off_to_five_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(5));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }
}

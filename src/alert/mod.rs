//! Alerts: rules with a lifecycle, their notifications, and the heartbeat.
//!
//! [`rules`] is the pure lifecycle; [`facts`] reads the conditions that hold
//! from the state database; [`notify`] turns the lifecycle's notices into
//! queued notifications (and log lines); [`email`] delivers them through
//! SMTP from [`outbox`], a thread of its own, so a slow or dead mail server
//! never delays the loop or a job. Nothing here writes anything but
//! state.db's alert tables.

pub mod email;
pub mod facts;
pub mod notify;
pub mod outbox;
pub mod rules;

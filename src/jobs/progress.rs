//! Progress of long work (backup, restore, verify), behind a small trait so
//! jobs never know whether a terminal is watching.
//!
//! Owns no state beyond the implementations: [`Quiet`] for the daemon and
//! tests, and the CLI's progress bar in `cli`.

/// Receives progress of one long step.
pub trait Progress {
    /// A step starts; `total` in bytes when known.
    fn start(&mut self, step: &str, total: Option<u64>);
    /// `done` bytes of the current step are finished.
    fn advance(&mut self, done: u64);
    /// The current step is over.
    fn finish(&mut self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _step: &str, _total: Option<u64>) {}
    fn advance(&mut self, _done: u64) {}
    fn finish(&mut self) {}
}

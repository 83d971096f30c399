//! Progress of long commands: a bar on a terminal, log lines otherwise.
//!
//! Owns the [`Progress`] implementation the CLI hands to jobs.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

use crate::jobs::progress::Progress;

/// A progress bar on stderr when it is a terminal; a log line per step
/// otherwise.
pub struct Reporter {
    terminal: bool,
    bar: Option<ProgressBar>,
    step: String,
    started: Instant,
    done: u64,
}

impl Reporter {
    /// A reporter for the current stderr.
    pub fn for_stderr() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            bar: None,
            step: String::new(),
            started: Instant::now(),
            done: 0,
        }
    }
}

impl Progress for Reporter {
    fn start(&mut self, step: &str, total: Option<u64>) {
        self.step = step.to_string();
        self.started = Instant::now();
        self.done = 0;
        if !self.terminal {
            return;
        }
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(step.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        self.bar = Some(bar);
    }

    fn advance(&mut self, done: u64) {
        self.done = done;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        tracing::info!(
            step = %self.step,
            bytes = self.done,
            size = %HumanBytes(self.done),
            duration_ms = self.started.elapsed().as_millis() as u64,
            "step finished"
        );
    }
}

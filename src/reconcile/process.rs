//! The daemon's contact with its process: the single-instance lock on the
//! state directory, signal handling and the config file's content hash.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::mpsc::Sender;

use sha2::{Digest, Sha256};

use super::DaemonError;
use super::Event;

/// The SHA-256 of the file's content, `None` when it cannot be read.
pub fn file_hash(path: &Path) -> Option<Vec<u8>> {
    crate::regular::read(path)
        .ok()
        .map(|bytes| Sha256::digest(&bytes).to_vec())
}

/// Takes `<state_dir>/daemon.lock` for the life of the daemon; a second
/// daemon gets an error naming the holder's pid.
pub fn lock_state_dir(state_dir: &Path) -> Result<File, DaemonError> {
    let io =
        |source| DaemonError::Process(format!("{}: {source}", crate::paths::display(state_dir)));
    crate::durable::create_private_dir(state_dir).map_err(io)?;
    let path = state_dir.join("daemon.lock");
    let mut file = crate::durable::open_lock_file(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            writeln!(file, "{}", std::process::id()).map_err(io)?;
            Ok(file)
        }
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(DaemonError::Process(format!(
                "another `litewarden run` (pid {}) manages {}; stop it first",
                pid.trim(),
                crate::paths::display(state_dir)
            )))
        }
        Err(TryLockError::Error(source)) => Err(io(source)),
    }
}

/// Turns SIGHUP into [`Event::Reload`] and SIGTERM/SIGINT into
/// [`Event::Shutdown`] on `events`. A second SIGTERM/SIGINT exits the
/// process from this thread, whatever the reconciler is doing, so a daemon
/// stuck in a system call still stops (its own temp files removed).
pub fn spawn_signal_thread(events: Sender<Event>) -> Result<(), DaemonError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| DaemonError::Process(format!("cannot handle signals: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut shutdowns = 0;
            for signal in signals.forever() {
                let event = if signal == SIGHUP {
                    Event::Reload
                } else {
                    shutdowns += 1;
                    if shutdowns > 1 {
                        crate::durable::exit_removing_temps(128 + signal, |removed| {
                            tracing::warn!(signal, removed, "second signal: exiting at once")
                        });
                    }
                    Event::Shutdown
                };
                if events.send(event).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| DaemonError::Process(format!("cannot handle signals: {e}")))?;
    Ok(())
}

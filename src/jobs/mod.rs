//! The jobs litewarden runs on a managed database.
//!
//! Each module owns one kind of job; they reach backup copies through the
//! store seam ([`crate::store`]) and share the progress reporting seam
//! ([`progress`]). Pure decisions (retention) live apart from the modules
//! that touch files.

pub mod backup;
pub mod copy;
pub mod drill;
pub mod health;
pub mod identity;
pub mod manifest;
pub mod migrations;
pub mod offsite;
pub mod optimize;
pub mod outcome;
pub mod progress;
pub mod prune;
pub mod replace;
pub mod restore;
pub mod retention;
pub mod run;
pub mod verify;
#[cfg(test)]
mod verify_hostile_tests;

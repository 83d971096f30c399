//! litewarden keeps the SQLite databases of a live application safe and fast
//! while it runs.
//!
//! One YAML file (`jobs.yaml`) declares the databases and what should be true
//! of them. This crate turns that file into a validated [`config::Config`],
//! observes the real files ([`observe`]), computes the difference as a
//! printable value ([`plan::diff`]) and converges the files toward it
//! ([`apply`]). `src/main.rs` is only the command-line shell around
//! [`cli::run`].
//!
//! The crate owns no global state: every function receives what it needs
//! (configuration, environment, clock) as arguments.
#![warn(missing_docs)]

pub mod advise;
pub mod alert;
pub mod apply;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod durable;
pub mod error;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod live;
pub mod observe;
pub mod paths;
pub mod plan;
pub mod reconcile;
pub mod regular;
pub mod replicate;
pub mod runner;
pub mod scheduler;
pub mod state;
pub mod status;
pub mod store;
pub mod web;

pub use error::{Error, Result};

//! Integration tests: each one runs the real `litewarden` binary in a fresh
//! temporary directory.

mod common;

mod acknowledged;
mod advise;
mod alerts;
mod backup;
mod bad_input;
mod check;
mod crash;
mod crash_ops;
mod daemon;
mod deploy;
mod faults;
mod first_day;
mod first_hour;
mod health;
mod hostile;
mod http;
mod layers;
mod live;
mod live_backup;
mod migrate;
mod migrate_restore;
mod offsite;
mod offsite_faults;
mod page;
mod plan_apply;
mod replicate;
mod runner;
mod safety;
mod schema;

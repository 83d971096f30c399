//! `offsite`: upload what is waiting for the offsite store now.
//!
//! Owns what the command prints; the work is the `offsite` job of
//! [`crate::jobs::run`], recorded like the daemon's runs.

use std::io::Write;

use indicatif::HumanBytes;
use serde_json::json;

use super::progress_bar::Reporter;
use super::{Cli, ExitStatus, print};
use crate::clock::Clock;
use crate::config::{Config, Environment, PasswordSource};
use crate::error::Error;
use crate::jobs::run::{Done, Job};
use crate::state::StateDb;

pub(super) fn upload(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    (name, all): (Option<&str>, bool),
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let databases: Vec<_> = super::select::chosen(cli, &config, name, all, "offsite")?
        .into_iter()
        .filter(|db| !all || db.backup.offsite.is_some())
        .collect();
    let _locks = super::claim(&config, databases.iter().copied())?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for db in databases {
        let _span = tracing::info_span!("job", db = %db.name, job = "offsite", trigger = "manual")
            .entered();
        let ran = super::maintain::run_and_record(
            &config,
            db,
            &state,
            clock,
            Job::Offsite,
            &mut Reporter::for_stderr(),
        );
        match ran {
            Ok(Done::Offsite(report)) => {
                if !json {
                    print(
                        out,
                        format_args!(
                            "{}: {} uploaded ({}), {} removed from the offsite store by its retention, newest offsite copy {}",
                            db.name,
                            report.uploaded.len(),
                            HumanBytes(report.bytes),
                            report.pruned.len(),
                            report.newest.map_or("none".to_string(), super::show_time)
                        ),
                    )?;
                }
                reports.push(json!({ "database": db.name.as_str(), "report": report }));
            }
            Ok(_) => {}
            Err(error) if all => {
                eprintln!("error: {error}");
                failures.push(error.to_string());
            }
            Err(error) => return Err(error.into()),
        }
    }
    if json {
        print(
            out,
            json!({ "ok": failures.is_empty(), "databases": reports, "errors": failures }),
        )?;
    }
    Ok(if failures.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// `verify remote:NAME`: NAME is a copy's file name or its key
/// (`db/file`); the database is the one whose copies are named so.
pub(super) fn verify(
    cli: &Cli,
    environment: &Environment,
    clock: &dyn Clock,
    name: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitStatus, Error> {
    let config = super::load_config(cli, environment)?;
    let with_offsite = config
        .databases
        .values()
        .filter(|db| db.backup.offsite.is_some());
    let found = with_offsite.clone().find_map(|db| {
        let file = match name.split_once('/') {
            Some((database, file)) if database == db.name.as_str() => file,
            Some(_) => return None,
            None => name,
        };
        crate::store::naming::parse(db.name.as_str(), file)
            .map(|_| (db, crate::store::Key::new(db.name.as_str(), file)))
    });
    let Some((db, key)) = found else {
        return Err(crate::jobs::offsite::OffsiteError::Unknown {
            name: name.to_string(),
            databases: with_offsite
                .map(|db| format!("`{}`", db.name))
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into());
    };
    let _lock = super::claim(&config, [&**db])?;
    let state = StateDb::open(&config.settings.state_dir)?;
    let verified = crate::jobs::offsite::verify(
        db,
        &key,
        &config.settings.backup_dir,
        &state,
        clock,
        &mut Reporter::for_stderr(),
    )?;
    if json {
        print(out, json!({ "ok": true, "verified": verified }))?;
    } else {
        print(
            out,
            format_args!(
                "ok: {}: integrity_check ok, SHA-256 matches its manifest ({})",
                crate::paths::display(&verified.copy),
                verified.sha256
            ),
        )?;
    }
    Ok(ExitStatus::Success)
}

/// One offsite store as `check` shows it.
#[derive(Debug, serde::Serialize)]
pub(super) struct Summary {
    /// The store.
    url: String,
    /// The databases whose copies go there.
    databases: Vec<String>,
    /// The credential variables it reads.
    credentials: Vec<String>,
    /// Those of them not set in this environment.
    unset: Vec<String>,
}

/// The offsite stores of `config`, each once, with the credential
/// variables `environment` lacks (never their values).
pub(super) fn summary(config: &Config, environment: &Environment) -> Vec<Summary> {
    let mut stores: Vec<Summary> = Vec::new();
    for db in config.databases.values() {
        let Some(offsite) = db.backup.offsite.as_deref() else {
            continue;
        };
        let url = offsite.url.to_string();
        let sources = [&offsite.access_key_id, &offsite.secret_access_key];
        let credentials = match offsite.url {
            crate::config::OffsiteUrl::S3 { .. } => {
                sources.iter().map(ToString::to_string).collect()
            }
            crate::config::OffsiteUrl::File(_) => Vec::new(),
        };
        let variables: Vec<&str> = match offsite.url {
            crate::config::OffsiteUrl::S3 { .. } => sources
                .iter()
                .filter_map(|source| match source {
                    PasswordSource::Env(name) => Some(name.as_str()),
                    PasswordSource::File(_) => None,
                })
                .collect(),
            crate::config::OffsiteUrl::File(_) => Vec::new(),
        };
        match stores
            .iter_mut()
            .find(|s| s.url == url && s.credentials == credentials)
        {
            Some(store) => store.databases.push(db.name.to_string()),
            None => stores.push(Summary {
                unset: variables
                    .iter()
                    .filter(|name| environment.get(name).is_none_or(|v| v.is_empty()))
                    .map(|name| name.to_string())
                    .collect(),
                url,
                databases: vec![db.name.to_string()],
                credentials,
            }),
        }
    }
    stores
}

/// The lines `check` prints for `stores`.
pub(super) fn show_summary(stores: &[Summary], out: &mut dyn Write) -> Result<(), Error> {
    for store in stores {
        let credentials = if store.credentials.is_empty() {
            String::new()
        } else {
            format!(", credentials from {}", store.credentials.join(" and "))
        };
        print(
            out,
            format_args!(
                "offsite: {} for {}{credentials}",
                store.url,
                store.databases.join(", ")
            ),
        )?;
        for name in &store.unset {
            print(
                out,
                format_args!(
                    "warning: offsite {}: {name} is not set in this environment; uploads fail until the daemon's environment has it",
                    store.url
                ),
            )?;
        }
    }
    Ok(())
}

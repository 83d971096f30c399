//! Which databases a command acts on: one named (with the closest name
//! when it is not declared), or all with `--all`.

use super::Cli;
use crate::config::{Config, Database, values::did_you_mean};
use crate::error::Error;

/// The database called `name`, or an error with the closest name.
pub(super) fn database<'a>(
    cli: &Cli,
    config: &'a Config,
    name: &str,
) -> Result<&'a Database, Error> {
    config
        .databases
        .get(name)
        .map(|db| &**db)
        .ok_or_else(|| Error::UnknownDatabase {
            config: cli.config.clone(),
            name: name.to_string(),
            suggestion: did_you_mean(name, config.databases.keys().map(|n| n.as_str()))
                .map(str::to_string),
        })
}

/// The databases a command that needs an explicit choice acts on: the one
/// named, or all with `--all`; neither is an error that lists the names.
pub(super) fn chosen<'a>(
    cli: &Cli,
    config: &'a Config,
    name: Option<&str>,
    all: bool,
    command: &'static str,
) -> Result<Vec<&'a Database>, Error> {
    if name.is_none() && !all {
        let names: Vec<&str> = config.databases.keys().map(|n| n.as_str()).collect();
        return Err(Error::NoDatabaseGiven {
            command,
            names: names.join(", "),
            first: names.first().copied().unwrap_or("<db>").to_string(),
        });
    }
    selected(cli, config, name, all)
}

/// The databases a command acts on: the one named, else all.
pub(super) fn selected<'a>(
    cli: &Cli,
    config: &'a Config,
    name: Option<&str>,
    all: bool,
) -> Result<Vec<&'a Database>, Error> {
    match name {
        Some(name) if !all => Ok(vec![database(cli, config, name)?]),
        _ => Ok(config.databases.values().map(|db| &**db).collect()),
    }
}

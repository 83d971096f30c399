//! The replica off the machine (`replicate: { to: offsite }`): every file
//! of the local replica mirrored to the database's offsite store under
//! `<prefix>/<db>/wal/<generation>/<file>`, and downloaded back for a
//! restore when the local replica is gone.
//!
//! Owns [`Mirror`]: what it knows is on the store (listed once, then kept
//! up to date by its own uploads and removals). A step uploads the files
//! the store lacks (a generation's base before its segments, in order),
//! create-only, and only then removes the files the local replica no
//! longer has (compacted away, outside the window): the store always holds
//! a complete chain.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::catalog::{self, BASE};
use crate::config::Database;
use crate::jobs::offsite::OffsiteError;
use crate::store::StoreError;

/// The mirror of one database's replica.
pub struct Mirror {
    #[cfg(feature = "offsite")]
    database: String,
    #[cfg(feature = "offsite")]
    remote: crate::store::Remote,
    #[cfg(not(feature = "offsite"))]
    never: std::convert::Infallible,
    known: Option<BTreeSet<String>>,
}

/// Opens the offsite store of `database` for its replica.
#[cfg(feature = "offsite")]
pub fn open(database: &Database, backup_dir: &Path) -> Result<Mirror, OffsiteError> {
    let offsite = crate::jobs::offsite::configured(database)?;
    let remote = crate::store::Remote::open(
        offsite,
        &|variable| std::env::var(variable).ok(),
        backup_dir,
    )
    .map_err(|source| OffsiteError::Open {
        database: database.name.to_string(),
        source,
    })?;
    Ok(Mirror {
        database: database.name.to_string(),
        remote,
        known: None,
    })
}

/// Without the `offsite` feature (the Python package) no store opens.
#[cfg(not(feature = "offsite"))]
pub fn open(database: &Database, _backup_dir: &Path) -> Result<Mirror, OffsiteError> {
    crate::jobs::offsite::configured(database)?;
    Err(OffsiteError::NotBuilt(database.name.to_string()))
}

/// The replica's files under `replica_dir`, in upload order.
fn local_files(replica_dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for generation in catalog::generations(replica_dir)? {
        names.push(format!("{}/{BASE}", generation.name));
        for segment in &generation.segments {
            if let Some(file) = segment.path.file_name() {
                names.push(format!("{}/{}", generation.name, file.to_string_lossy()));
            }
        }
    }
    Ok(names)
}

/// The generation to download for a restore at `at` (the newest when
/// `None`) among the store's `names`, and its files.
fn chosen_generation(names: &[String], at: Option<DateTime<Utc>>) -> Option<Vec<String>> {
    let mut generations: Vec<(&str, DateTime<Utc>)> = names
        .iter()
        .filter_map(|name| name.strip_suffix(&format!("/{BASE}")))
        .filter_map(|generation| {
            chrono::NaiveDateTime::parse_from_str(generation, "%Y%m%dT%H%M%S%3fZ")
                .ok()
                .map(|started| (generation, started.and_utc()))
        })
        .collect();
    generations.sort();
    let (chosen, _) = generations
        .into_iter()
        .rev()
        .find(|(_, started)| at.is_none_or(|at| *started <= at))?;
    let prefix = format!("{chosen}/");
    Some(
        names
            .iter()
            .filter(|name| name.starts_with(&prefix))
            .cloned()
            .collect(),
    )
}

impl Mirror {
    /// Uploads what the store lacks, then removes what the local replica
    /// no longer has; how many files it uploaded.
    pub fn sync(&mut self, replica_dir: &Path) -> Result<usize, StoreError> {
        let local = local_files(replica_dir).map_err(StoreError::at(replica_dir, "cannot list"))?;
        let mut known = match self.known.take() {
            Some(known) => known,
            None => self.list()?.into_iter().collect(),
        };
        let mut uploaded = 0;
        let missing: Vec<&String> = local.iter().filter(|name| !known.contains(*name)).collect();
        for name in missing {
            let uploading = self.put(name, &replica_dir.join(name));
            if let Err(error) = uploading {
                self.known = Some(known);
                return Err(error);
            }
            known.insert(name.clone());
            uploaded += 1;
        }
        let local: BTreeSet<&String> = local.iter().collect();
        let gone: Vec<String> = known
            .iter()
            .filter(|name| !local.contains(name))
            .cloned()
            .collect();
        if !gone.is_empty() {
            self.delete(&gone)?;
            for name in &gone {
                known.remove(name);
            }
        }
        self.known = Some(known);
        Ok(uploaded)
    }

    /// Downloads the generation that restores `at` (the newest when
    /// `None`) into `into`; whether the store has one.
    pub fn download(&self, at: Option<DateTime<Utc>>, into: &Path) -> Result<bool, StoreError> {
        let names = self.list()?;
        let Some(files) = chosen_generation(&names, at) else {
            return Ok(false);
        };
        self.fetch(&files, into)?;
        Ok(true)
    }
}

#[cfg(feature = "offsite")]
impl Mirror {
    fn list(&self) -> Result<Vec<String>, StoreError> {
        self.remote.list_replica(&self.database)
    }

    fn put(&self, name: &str, from: &Path) -> Result<(), StoreError> {
        self.remote.put_replica(&self.database, name, from)
    }

    fn delete(&self, names: &[String]) -> Result<(), StoreError> {
        self.remote.delete_replica(&self.database, names)
    }

    fn fetch(&self, names: &[String], into: &Path) -> Result<(), StoreError> {
        self.remote.download_replica(&self.database, names, into)
    }
}

#[cfg(not(feature = "offsite"))]
impl Mirror {
    fn list(&self) -> Result<Vec<String>, StoreError> {
        match self.never {}
    }

    fn put(&self, _name: &str, _from: &Path) -> Result<(), StoreError> {
        match self.never {}
    }

    fn delete(&self, _names: &[String]) -> Result<(), StoreError> {
        match self.never {}
    }

    fn fetch(&self, _names: &[String], _into: &Path) -> Result<(), StoreError> {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_downloads_the_generation_that_covers_its_point() {
        let names: Vec<String> = [
            "20261203T070000000Z/base.lwb",
            "20261203T070000000Z/0000000000-0000000000-1.lws",
            "20261203T080000000Z/base.lwb",
            "20261203T080000000Z/0000000000-0000000003-2.lws",
            "20261203T090000000Z/0000000000-0000000000-3.lws",
        ]
        .map(String::from)
        .to_vec();
        let at = |text: &str| Some(DateTime::parse_from_rfc3339(text).unwrap().to_utc());
        assert_eq!(
            chosen_generation(&names, at("2026-12-03T07:30:00Z")).unwrap(),
            names[..2]
        );
        assert_eq!(
            chosen_generation(&names, None).unwrap(),
            names[2..4],
            "a generation without its base is not one"
        );
        assert_eq!(chosen_generation(&names, at("2026-12-03T06:00:00Z")), None);
    }
}

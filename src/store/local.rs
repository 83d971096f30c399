//! The backup directory as a store: `<backup_dir>/<db>/<file>` and its
//! manifest `<file>.json` beside it.
//!
//! Owns every path of a copy. Copies are staged as temp files in their
//! database's directory and linked into place (never replacing one);
//! manifests are replaced atomically; a deletion fsyncs the directory.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{Fetched, Key, Listed, Store, StoreError, StoreId, Written, manifest, naming};
use crate::durable::{self, PendingFile};
use crate::store::BackupRecord;

/// The local backup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// The store rooted at `backup_dir` (`settings.backup_dir`).
    pub fn new(backup_dir: &Path) -> Self {
        LocalDir {
            root: backup_dir.to_path_buf(),
        }
    }

    /// The directory holding the copies of `database`.
    pub fn database_dir(&self, database: &str) -> PathBuf {
        self.root.join(database)
    }

    /// The file of the copy under `key`.
    pub fn path(&self, key: &Key) -> PathBuf {
        self.database_dir(key.database()).join(key.file_name())
    }

    /// The key of the copy at `path`, when `path` is a copy's place in this
    /// directory.
    pub fn key_of(&self, path: &Path) -> Option<Key> {
        let file = path.file_name()?.to_str()?;
        let database = path.parent()?.file_name()?.to_str()?;
        let key = Key::parse(&format!("{database}/{file}"))?;
        (self.path(&key) == path).then_some(key)
    }

    fn manifest_path(&self, key: &Key) -> PathBuf {
        let mut name = self.path(key).into_os_string();
        name.push(".json");
        PathBuf::from(name)
    }
}

impl Store for LocalDir {
    fn id(&self) -> StoreId {
        StoreId::Local
    }

    fn location(&self, key: &Key) -> PathBuf {
        self.path(key)
    }

    fn stage(&self, key: &Key) -> Result<PendingFile, StoreError> {
        let dir = self.database_dir(key.database());
        durable::create_private_dir(&dir)
            .map_err(StoreError::at(&dir, "cannot create the directory"))?;
        PendingFile::create(&self.path(key))
            .map_err(StoreError::at(&dir, "cannot create a temp file"))
    }

    fn put(&self, key: &Key, staged: PendingFile) -> Result<(), StoreError> {
        let path = self.path(key);
        staged
            .commit_to(&path)
            .map(drop)
            .map_err(StoreError::at(&path, "cannot write"))
    }

    fn put_file(&self, key: &Key, from: &Path) -> Result<Written, StoreError> {
        let staged = self.stage(key)?;
        let mut source =
            crate::regular::open_io(from).map_err(StoreError::at(from, "cannot open"))?;
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let read = source
                .read(&mut buffer)
                .map_err(StoreError::at(from, "cannot read"))?;
            if read == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buffer[..read]);
            (&mut staged.file())
                .write_all(&buffer[..read])
                .map_err(StoreError::at(staged.path(), "cannot write"))?;
            size += read as u64;
        }
        self.put(key, staged)?;
        let sha256 = super::hex(&sha2::Digest::finalize(hasher));
        Ok(Written { size, sha256 })
    }

    fn fetch(&self, key: &Key) -> Result<Fetched, StoreError> {
        let path = self.path(key);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Fetched::in_place(path)),
            Ok(_) => Err(StoreError::at(&path, "not a backup file")(io::Error::from(
                io::ErrorKind::InvalidInput,
            ))),
            Err(e) => Err(StoreError::at(&path, "cannot open")(e)),
        }
    }

    fn list(&self, database: &str) -> Result<Vec<Listed>, StoreError> {
        let dir = self.database_dir(database);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::at(&dir, "cannot list")(e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(StoreError::at(&dir, "cannot list"))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(parsed) = naming::parse(database, &file_name) else {
                continue;
            };
            let size = match entry.metadata() {
                Ok(meta) if meta.is_file() => meta.len(),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::at(&entry.path(), "cannot stat")(e)),
            };
            found.push(Listed {
                key: Key::new(database, &file_name),
                size,
                named_at: parsed.created_at,
            });
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        for path in [self.path(key), self.manifest_path(key)] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(StoreError::at(&path, "cannot remove")(e));
                }
                _ => {}
            }
        }
        let dir = self.database_dir(key.database());
        durable::sync_dir(&dir).map_err(StoreError::at(&dir, "cannot sync"))
    }

    fn read_manifest(&self, key: &Key) -> Option<BackupRecord> {
        let path = self.manifest_path(key);
        let read = crate::regular::open_io(&path).and_then(|mut file| {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map(|_| bytes)
        });
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read a backup manifest; the backup counts as unverified");
                return None;
            }
        };
        match manifest::decode(&bytes) {
            Ok(record) => Some(BackupRecord {
                store: StoreId::Local,
                key: key.clone(),
                ..record
            }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unusable backup manifest; the backup counts as unverified");
                None
            }
        }
    }

    fn write_manifest(&self, key: &Key, record: &BackupRecord) -> Result<(), StoreError> {
        let path = self.manifest_path(key);
        let write = || {
            let pending = PendingFile::create(&path)?;
            (&mut pending.file()).write_all(&manifest::encode(record))?;
            pending.commit_replacing().map(drop)
        };
        write().map_err(StoreError::at(&path, "cannot write the manifest"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BackupTrigger;

    fn record(key: &Key) -> BackupRecord {
        BackupRecord {
            id: 0,
            database: key.database().into(),
            store: StoreId::Local,
            key: key.clone(),
            created_at: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            size: 5,
            sha256: None,
            verified_at: None,
            method: None,
            trigger: BackupTrigger::Manual,
            pinned: false,
            duration_ms: None,
            seq: 1,
            source: None,
        }
    }

    #[test]
    fn a_copy_goes_in_once_lists_fetches_and_leaves_with_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::new(dir.path());
        let key = Key::new("app", "app-20261118T110640Z.db");
        let stage = |text: &[u8]| {
            let staged = store.stage(&key).unwrap();
            (&mut staged.file()).write_all(text).unwrap();
            staged
        };
        store.put(&key, stage(b"first")).unwrap();
        assert!(store.put(&key, stage(b"second")).is_err(), "never replaced");
        store.write_manifest(&key, &record(&key)).unwrap();
        std::fs::write(dir.path().join("app/notes.txt"), "not a copy").unwrap();

        let listed = store.list("app").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((&listed[0].key, listed[0].size), (&key, 5));
        let fetched = store.fetch(&key).unwrap();
        assert_eq!(std::fs::read(fetched.path()).unwrap(), b"first");
        assert_eq!(store.read_manifest(&key), Some(record(&key)));
        assert_eq!(store.key_of(&store.path(&key)), Some(key.clone()));

        store.delete(&key).unwrap();
        store.delete(&key).unwrap();
        assert!(store.list("app").unwrap().is_empty());
        assert_eq!(store.read_manifest(&key), None);
        assert!(store.fetch(&key).unwrap_err().is_not_found());
        assert!(store.list("other").unwrap().is_empty());
    }
}

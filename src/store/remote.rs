//! The offsite store: object storage (S3 and compatible servers) or a
//! mounted directory, through the `object_store` crate.
//!
//! Owns the connection to one offsite location and the small tokio runtime
//! its requests run on; callers stay synchronous. Copies are uploaded
//! create-only (`PutMode::Create`; a multipart upload checks the key is free
//! first and its key is new by construction), hashed while they are read, and
//! checked by size after the upload; every S3 request carries a SHA-256
//! checksum the server verifies. Manifests sit beside each copy as
//! `<key>.json`, so the bucket alone describes itself. Downloads land in a
//! locked temp file under the local backup directory and vanish with their
//! [`Fetched`] (a killed process's is swept like every temp there).
//!
//! Credentials come from the environment variables the config names, and
//! never appear in an error: a refused signature names the variables.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, WriteMultipart,
};
use sha2::{Digest, Sha256};

use super::{
    Fetched, Key, Listed, OpenError, Store, StoreError, StoreId, Written, manifest, naming,
};
use crate::config::{Offsite, OffsiteUrl, PasswordSource};
use crate::durable::PendingFile;
use crate::store::BackupRecord;

/// Copies larger than this are uploaded in parts.
pub const MULTIPART_FROM: u64 = 16 << 20;
/// The size of one part of a multipart upload (S3's smallest is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once.
pub const PARTS_IN_FLIGHT: usize = 4;

/// One offsite location.
pub struct Remote {
    objects: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    credentials: Option<(String, String)>,
    scratch: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

impl Remote {
    /// Opens the offsite location `offsite`, reading its credentials through
    /// `env`; downloads go to temp files under `scratch` (the backup
    /// directory).
    pub fn open(
        offsite: &Offsite,
        env: &dyn Fn(&str) -> Option<String>,
        scratch: &Path,
    ) -> Result<Self, OpenError> {
        let url = offsite.url.to_string();
        let settings = |e: &dyn std::fmt::Display| OpenError::Settings {
            url: url.clone(),
            message: e.to_string(),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("litewarden-offsite")
            .enable_all()
            .build()
            .map_err(|e| settings(&e))?;
        let (objects, prefix, credentials): (Arc<dyn ObjectStore>, String, _) = match &offsite.url {
            OffsiteUrl::S3 { bucket, prefix } => {
                let key_id = credential(
                    &offsite.access_key_id,
                    env,
                    &url,
                    ("access key id", "access_key_id"),
                )?;
                let secret = credential(
                    &offsite.secret_access_key,
                    env,
                    &url,
                    ("secret access key", "secret_access_key"),
                )?;
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(&offsite.region)
                    .with_access_key_id(key_id)
                    .with_secret_access_key(secret)
                    .with_checksum_algorithm(Checksum::SHA256)
                    .with_retry(RetryConfig {
                        backoff: BackoffConfig::default(),
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(60),
                    })
                    .with_client_options(
                        ClientOptions::new()
                            .with_allow_http(offsite.allow_http)
                            .with_connect_timeout(Duration::from_secs(10))
                            .with_timeout(Duration::from_secs(300)),
                    );
                if let Some(endpoint) = &offsite.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                let objects = builder.build().map_err(|e| settings(&e))?;
                let names = (
                    offsite.access_key_id.to_string(),
                    offsite.secret_access_key.to_string(),
                );
                (Arc::new(objects), prefix.clone(), Some(names))
            }
            OffsiteUrl::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
                    url: url.clone(),
                    source,
                })?;
                let objects = LocalFileSystem::new_with_prefix(dir).map_err(|e| settings(&e))?;
                (Arc::new(objects), String::new(), None)
            }
        };
        Ok(Remote {
            objects,
            prefix,
            url,
            credentials,
            scratch: scratch.to_path_buf(),
            runtime,
        })
    }

    fn object(&self, key: &Key) -> ObjectPath {
        self.at(key.as_str())
    }

    fn manifest_object(&self, key: &Key) -> ObjectPath {
        self.at(&format!("{key}.json"))
    }

    fn at(&self, relative: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(relative)
        } else {
            ObjectPath::from(format!("{}/{relative}", self.prefix))
        }
    }

    fn place(&self, relative: &str) -> PathBuf {
        PathBuf::from(format!("{}/{relative}", self.url.trim_end_matches('/')))
    }

    /// An object_store error as an I/O error a user can act on: a refused
    /// signature names the credential variables (never their values).
    fn io_error(&self, error: object_store::Error) -> io::Error {
        let kind = match &error {
            object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => io::ErrorKind::AlreadyExists,
            _ => io::ErrorKind::Other,
        };
        let text = error.to_string();
        let refused = [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "AccessDenied",
            "403",
        ]
        .iter()
        .any(|marker| text.contains(marker));
        match (&self.credentials, refused) {
            (Some((key_id, secret)), true) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the server refused the credentials from {key_id} and {secret} (check both variables): {}",
                    first_line(&text)
                ),
            ),
            _ => io::Error::new(kind, first_line(&text).to_string()),
        }
    }

    fn failed(
        &self,
        relative: &str,
        action: &'static str,
        error: object_store::Error,
    ) -> StoreError {
        StoreError {
            place: self.place(relative),
            action,
            source: self.io_error(error),
        }
    }

    /// Uploads `from` as `relative` (under the prefix), never replacing an
    /// object; returns what was read while uploading.
    fn upload(&self, relative: &str, from: &Path) -> Result<Written, StoreError> {
        let local = |action| StoreError::at(from, action);
        let mut file = File::open(from).map_err(local("cannot open"))?;
        let size = file.metadata().map_err(local("cannot stat"))?.len();
        let object = self.at(relative);
        let sha256 = self.runtime.block_on(async {
            let mut hasher = Sha256::new();
            if size < MULTIPART_FROM {
                let mut bytes = Vec::with_capacity(size as usize);
                file.read_to_end(&mut bytes).map_err(local("cannot read"))?;
                hasher.update(&bytes);
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                self.objects
                    .put_opts(&object, PutPayload::from(bytes), options)
                    .await
                    .map_err(|e| self.failed(relative, "cannot upload", e))?;
            } else {
                match self.objects.head(&object).await {
                    Ok(_) => {
                        return Err(StoreError {
                            place: self.place(relative),
                            action: "cannot upload",
                            source: io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                "an object already has this name; it is never replaced",
                            ),
                        });
                    }
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.failed(relative, "cannot upload", e)),
                }
                let upload = self
                    .objects
                    .put_multipart(&object)
                    .await
                    .map_err(|e| self.failed(relative, "cannot start the upload", e))?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                let mut buffer = vec![0u8; PART_SIZE];
                loop {
                    let read = match file.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(read) => read,
                        Err(e) => {
                            let _ = writer.abort().await;
                            return Err(local("cannot read")(e));
                        }
                    };
                    hasher.update(&buffer[..read]);
                    if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                        let _ = writer.abort().await;
                        return Err(self.failed(relative, "cannot upload", e));
                    }
                    writer.write(&buffer[..read]);
                }
                writer
                    .finish()
                    .await
                    .map_err(|e| self.failed(relative, "cannot finish the upload", e))?;
            }
            let stored = self
                .objects
                .head(&object)
                .await
                .map_err(|e| self.failed(relative, "cannot check the upload", e))?;
            if stored.size != size {
                let _ = self.objects.delete(&object).await;
                return Err(StoreError {
                    place: self.place(relative),
                    action: "cannot check the upload",
                    source: io::Error::other(format!(
                        "the object has {} bytes, the copy {size}; it was removed",
                        stored.size
                    )),
                });
            }
            Ok(super::hex(&hasher.finalize()))
        })?;
        Ok(Written { size, sha256 })
    }
}

/// The replica of a database on the store: its files under
/// `<prefix>/<database>/wal/`, named `<generation>/<file>` as in the
/// backup directory.
impl Remote {
    fn replica_object(&self, database: &str, name: &str) -> (String, ObjectPath) {
        let relative = format!("{database}/wal/{name}");
        let object = self.at(&relative);
        (relative, object)
    }

    /// Uploads the replica file `from` as `name`, never replacing one.
    pub fn put_replica(&self, database: &str, name: &str, from: &Path) -> Result<(), StoreError> {
        self.upload(&format!("{database}/wal/{name}"), from)
            .map(drop)
    }

    /// The names of `database`'s replica files on the store.
    pub fn list_replica(&self, database: &str) -> Result<Vec<String>, StoreError> {
        let relative = format!("{database}/wal");
        let prefix = self.at(&relative);
        let strip = format!("{prefix}/");
        self.runtime.block_on(async {
            let mut found = Vec::new();
            let mut listing = self.objects.list(Some(&prefix));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| self.failed(&relative, "cannot list", e))?;
                if let Some(name) = meta.location.as_ref().strip_prefix(&strip) {
                    found.push(name.to_string());
                }
            }
            found.sort();
            Ok(found)
        })
    }

    /// Downloads the replica files `names` of `database` into `into`
    /// (keeping their `<generation>/<file>` names), several at once.
    pub fn download_replica(
        &self,
        database: &str,
        names: &[String],
        into: &Path,
    ) -> Result<(), StoreError> {
        self.runtime.block_on(async {
            let downloads = names.iter().map(|name| async move {
                let (relative, object) = self.replica_object(database, name);
                let target = into.join(name);
                if let Some(dir) = target.parent() {
                    crate::durable::create_private_dir(dir)
                        .map_err(StoreError::at(dir, "cannot create the directory"))?;
                }
                let bytes = self
                    .objects
                    .get(&object)
                    .await
                    .map_err(|e| self.failed(&relative, "cannot download", e))?
                    .bytes()
                    .await
                    .map_err(|e| self.failed(&relative, "cannot download", e))?;
                std::fs::write(&target, &bytes).map_err(StoreError::at(&target, "cannot write"))
            });
            let mut running =
                futures::stream::iter(downloads).buffer_unordered(PARTS_IN_FLIGHT * 2);
            while let Some(result) = running.next().await {
                result?;
            }
            Ok(())
        })
    }

    /// Removes the replica files `names` of `database` (absent ones are
    /// not an error), in bulk requests.
    pub fn delete_replica(&self, database: &str, names: &[String]) -> Result<(), StoreError> {
        let objects: Vec<ObjectPath> = names
            .iter()
            .map(|name| self.replica_object(database, name).1)
            .collect();
        self.runtime.block_on(async {
            let locations = futures::stream::iter(objects.into_iter().map(Ok)).boxed();
            let mut deleted = self.objects.delete_stream(locations);
            while let Some(result) = deleted.next().await {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.failed(database, "cannot remove", e)),
                }
            }
            Ok(())
        })
    }
}

/// The credential `source` names: an environment variable's value (through
/// `env`) or a file's first line; `what` and the config field (without
/// `_env`/`_file`) name it in errors, never its value.
fn credential(
    source: &PasswordSource,
    env: &dyn Fn(&str) -> Option<String>,
    url: &str,
    (what, field): (&'static str, &'static str),
) -> Result<String, OpenError> {
    let value = match source {
        PasswordSource::Env(variable) => env(variable),
        PasswordSource::File(path) => match crate::regular::read_at_most(path, 64 << 10) {
            Ok(bytes) => Some(
                String::from_utf8_lossy(&bytes)
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            Err(error) => {
                return Err(OpenError::CredentialFile {
                    url: url.to_string(),
                    path: path.clone(),
                    field,
                    source: error,
                });
            }
        },
    };
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| OpenError::MissingCredential {
            url: url.to_string(),
            from: source.to_string(),
            what,
            field,
        })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

impl Store for Remote {
    fn id(&self) -> StoreId {
        StoreId::Offsite
    }

    fn location(&self, key: &Key) -> PathBuf {
        self.place(key.as_str())
    }

    fn stage(&self, key: &Key) -> Result<PendingFile, StoreError> {
        let dir = self.scratch.join(key.database());
        crate::durable::create_private_dir(&dir)
            .map_err(StoreError::at(&dir, "cannot create the directory"))?;
        PendingFile::create(&dir.join(key.file_name()))
            .map_err(StoreError::at(&dir, "cannot create a temp file"))
    }

    fn put(&self, key: &Key, staged: PendingFile) -> Result<(), StoreError> {
        self.upload(key.as_str(), staged.path()).map(drop)
    }

    fn put_file(&self, key: &Key, from: &Path) -> Result<Written, StoreError> {
        self.upload(key.as_str(), from)
    }

    fn fetch(&self, key: &Key) -> Result<Fetched, StoreError> {
        let dir = self.scratch.join(key.database());
        crate::durable::create_private_dir(&dir)
            .map_err(StoreError::at(&dir, "cannot create the directory"))?;
        let (file, path) = crate::durable::locked_temp(&dir, &format!("-{}", key.file_name()))
            .map_err(StoreError::at(&dir, "cannot create a temp file"))?;
        let relative = key.as_str();
        self.runtime.block_on(async {
            let got = self
                .objects
                .get(&self.object(key))
                .await
                .map_err(|e| self.failed(relative, "cannot download", e))?;
            let mut stream = got.into_stream();
            let mut out = io::BufWriter::with_capacity(1 << 20, &file);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.failed(relative, "cannot download", e))?;
                out.write_all(&chunk)
                    .map_err(StoreError::at(&path, "cannot write"))?;
            }
            out.flush().map_err(StoreError::at(&path, "cannot write"))
        })?;
        Ok(Fetched::temporary(file, path))
    }

    fn list(&self, database: &str) -> Result<Vec<Listed>, StoreError> {
        let prefix = self.at(database);
        let mut found = Vec::new();
        self.runtime.block_on(async {
            let mut listing = self.objects.list(Some(&prefix));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| self.failed(database, "cannot list", e))?;
                let Some(file_name) = meta.location.filename() else {
                    continue;
                };
                let Some(parsed) = naming::parse(database, file_name) else {
                    continue;
                };
                found.push(Listed {
                    key: Key::new(database, file_name),
                    size: meta.size,
                    named_at: parsed.created_at,
                });
            }
            Ok::<_, StoreError>(())
        })?;
        found.retain(|listed| listed.key.database() == database);
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let both = [self.object(key), self.manifest_object(key)];
        self.runtime.block_on(async {
            let locations = futures::stream::iter(both.into_iter().map(Ok)).boxed();
            let mut deleted = self.objects.delete_stream(locations);
            while let Some(result) = deleted.next().await {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.failed(key.as_str(), "cannot remove", e)),
                }
            }
            Ok(())
        })
    }

    fn read_manifest(&self, key: &Key) -> Option<BackupRecord> {
        let object = self.manifest_object(key);
        let bytes = self.runtime.block_on(async {
            let got = self.objects.get(&object).await?;
            got.bytes().await
        });
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => return None,
            Err(e) => {
                tracing::warn!(url = %self.url, key = %key, error = %self.io_error(e), "cannot read an offsite manifest; the copy counts as unverified");
                return None;
            }
        };
        match manifest::decode(&bytes) {
            Ok(record) => Some(BackupRecord {
                store: StoreId::Offsite,
                key: key.clone(),
                ..record
            }),
            Err(e) => {
                tracing::warn!(url = %self.url, key = %key, error = %e, "unusable offsite manifest; the copy counts as unverified");
                None
            }
        }
    }

    fn write_manifest(&self, key: &Key, record: &BackupRecord) -> Result<(), StoreError> {
        let object = self.manifest_object(key);
        let payload = PutPayload::from(manifest::encode(record));
        self.runtime
            .block_on(self.objects.put(&object, payload))
            .map(drop)
            .map_err(|e| self.failed(&format!("{key}.json"), "cannot write the manifest", e))
    }
}

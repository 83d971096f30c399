//! The manifest beside each copy: the catalog row itself, as JSON.
//!
//! Owns the format. A manifest is a [`BackupRecord`] without its catalog
//! id, plus the format number and (for readers of format 1) the source's
//! migration version, so a lost or second state directory rebuilds the
//! same catalog from any store. Stores decide where the bytes go.

use serde_json::{Map, Value};

use crate::store::BackupRecord;

/// The manifest format this build writes and reads.
pub const FORMAT: u64 = 1;

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not the JSON of a manifest.
    #[error("damaged backup manifest: {0}")]
    Damaged(#[from] serde_json::Error),
    /// Written by a newer litewarden.
    #[error("backup manifest from a newer litewarden (format {0})")]
    Newer(u64),
}

/// The manifest bytes of `record`.
pub fn encode(record: &BackupRecord) -> Vec<u8> {
    let mut fields = match serde_json::to_value(record) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    fields.remove("id");
    fields.insert("format".into(), FORMAT.into());
    let version = record.source.as_ref().map(|s| s.user_version);
    fields.insert("migration_version".into(), version.into());
    serde_json::to_vec_pretty(&Value::Object(fields)).unwrap_or_default()
}

/// The record a manifest describes (id 0; the caller sets the store and
/// key from where it found it).
pub fn decode(bytes: &[u8]) -> Result<BackupRecord, ManifestError> {
    let mut fields: Map<String, Value> = serde_json::from_slice(bytes)?;
    let format = fields
        .remove("format")
        .and_then(|f| f.as_u64())
        .unwrap_or(0);
    if format > FORMAT {
        return Err(ManifestError::Newer(format));
    }
    fields.remove("migration_version");
    Ok(serde_json::from_value(Value::Object(fields))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BackupTrigger;
    use crate::store::{Key, StoreId};

    #[test]
    fn a_manifest_is_the_catalog_row_and_reads_format_one() {
        let record = BackupRecord {
            id: 7,
            database: "app".into(),
            store: StoreId::Local,
            key: Key::new("app", "app-20261118T110640Z.db"),
            created_at: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            size: 10,
            sha256: Some("abc".into()),
            verified_at: None,
            method: Some("api".into()),
            trigger: BackupTrigger::Schedule,
            pinned: true,
            duration_ms: Some(3),
            seq: 4,
            source: None,
        };
        let back = decode(&encode(&record)).unwrap();
        assert_eq!(back, BackupRecord { id: 0, ..record });

        let format_one = br#"{"format":1,"database":"app","seq":2,"created_at":"2026-11-18T11:06:40Z","size":5,"sha256":null,"verified_at":null,"method":"api","trigger":"manual","pinned":false,"migration_version":null,"source":null}"#;
        let old = decode(format_one).unwrap();
        assert_eq!((old.seq, old.size, old.duration_ms), (2, 5, None));
        assert!(matches!(
            decode(br#"{"format":2,"database":"app"}"#),
            Err(ManifestError::Newer(2))
        ));
    }
}

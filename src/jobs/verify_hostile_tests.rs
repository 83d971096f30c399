//! Hostile backup files (issue #14): a real backup, plain or zstd, with
//! bytes flipped and its tail cut at random. `verify_file` must never panic
//! or hang, must refuse every change when the catalogued hash is known, and
//! whatever it accepts without a hash must be a database that SQLite reads
//! whole.

use std::path::Path;

use proptest::prelude::*;

use super::verify::{sha256_file, verify_file};
use crate::config::VerifyLevel;
use crate::jobs::progress::Quiet;

/// A small database file, and the same zstd-compressed, in `dir`.
fn backups(dir: &Path) -> [(std::path::PathBuf, Vec<u8>); 2] {
    let plain = dir.join("app.db");
    let conn = rusqlite::Connection::open(&plain).unwrap();
    conn.execute_batch(
        "CREATE TABLE pages (id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO pages (body) SELECT hex(randomblob(40)) FROM n;",
    )
    .unwrap();
    drop(conn);
    let bytes = std::fs::read(&plain).unwrap();
    let compressed = zstd::encode_all(bytes.as_slice(), 3).unwrap();
    [
        (dir.join("plain.db"), bytes),
        (dir.join("packed.db.zst"), compressed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn flipped_and_truncated_backups_are_refused_or_whole(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..4),
        keep in 0.0f64..=1.0,
        compressed in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let [plain, packed] = backups(dir.path());
        let (path, mut bytes) = if compressed { packed } else { plain };
        std::fs::write(&path, &bytes).unwrap();
        let original = sha256_file(&path).unwrap();
        for (at, mask) in &flips {
            let at = at % bytes.len();
            bytes[at] ^= mask;
        }
        let kept = ((bytes.len() as f64) * keep) as usize;
        bytes.truncate(kept);
        std::fs::write(&path, &bytes).unwrap();
        let changed = sha256_file(&path).unwrap() != original;
        let catalogued = verify_file(&path, Some(&original), VerifyLevel::Full, dir.path(), &mut Quiet);
        prop_assert_eq!(catalogued.is_ok(), !changed);
        let uncatalogued = verify_file(&path, None, VerifyLevel::Full, dir.path(), &mut Quiet);
        if uncatalogued.is_ok() && !compressed {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
            prop_assert_eq!(check, "ok");
        }
    }
}

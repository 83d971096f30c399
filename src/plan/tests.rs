//! Tests of the pure plan: hand-built observed and desired states.
use super::*;

fn db(name: &str, pragmas: PersistentPragmas) -> DesiredDatabase {
    DesiredDatabase {
        name: DbName::new(name).unwrap(),
        path: PathBuf::from(format!("/data/{name}.db")),
        pragmas,
        restore_if_missing: false,
        migrations: None,
        columns: Vec::new(),
    }
}

fn wal() -> PersistentPragmas {
    PersistentPragmas {
        journal_mode: Some(JournalMode::Wal),
        ..Default::default()
    }
}

fn facts(wal: bool, page_count: u64) -> FileFacts {
    FileFacts {
        wal,
        auto_vacuum: AutoVacuum::None,
        page_size: PageSize::new(4096).unwrap(),
        application_id: 0,
        page_count,
    }
}

fn observed(files: &[(&str, ObservedFile)]) -> Observed {
    Observed {
        files: files
            .iter()
            .map(|(n, f)| (PathBuf::from(format!("/data/{n}.db")), *f))
            .collect(),
        managed: Vec::new(),
        expectations: BTreeMap::new(),
        identities: BTreeMap::new(),
        holds: BTreeMap::new(),
        dated_in_future: BTreeMap::new(),
        pending_migrations: BTreeMap::new(),
        tables: BTreeMap::new(),
        unreadable: BTreeMap::new(),
        unadopted: BTreeMap::new(),
    }
}

#[test]
fn an_unreadable_database_is_left_alone_and_reported_while_the_others_converge() {
    let desired = Desired {
        databases: vec![db("a", wal()), db("b", wal())],
    };
    let mut seen = observed(&[]);
    seen.unreadable
        .insert("a".into(), "/data/a.db: not a SQLite database".into());
    let plan = diff(&seen, &desired);
    assert_eq!(plan.changes.len(), 1);
    assert_eq!(plan.changes[0].database(), "b", "{plan:?}");
    assert_eq!(
        plan.unreadable,
        vec![Unreadable {
            database: "a".into(),
            error: "/data/a.db: not a SQLite database".into(),
        }]
    );
}

#[test]
fn startup_from_nothing_creates_every_database() {
    let desired = Desired {
        databases: vec![db("a", wal()), db("b", PersistentPragmas::default())],
    };
    let plan = diff(&Observed::default(), &desired);
    assert_eq!(
        plan.counts(),
        Counts {
            create: 2,
            ..Counts::default()
        }
    );
    assert_eq!(
        plan.changes[0],
        Change::CreateDatabase {
            database: DbName::new("a").unwrap(),
            path: "/data/a.db".into(),
            pragmas: vec![PragmaValue::JournalMode(JournalMode::Wal)],
        }
    );
}

#[test]
fn converged_state_has_an_empty_plan() {
    let desired = Desired {
        databases: vec![db("a", wal())],
    };
    let plan = diff(
        &observed(&[("a", ObservedFile::Present(facts(true, 10)))]),
        &desired,
    );
    assert!(plan.is_empty());
}

#[test]
fn journal_mode_drift_is_reported_from_delete_to_wal() {
    let desired = Desired {
        databases: vec![db("a", wal())],
    };
    let plan = diff(
        &observed(&[("a", ObservedFile::Present(facts(false, 10)))]),
        &desired,
    );
    assert_eq!(plan.changes.len(), 1);
    assert!(
        plan.changes[0]
            .to_string()
            .ends_with("journal_mode delete -> wal"),
        "{}",
        plan.changes[0]
    );
}

#[test]
fn rollback_modes_do_not_drift_against_each_other() {
    let truncate = PersistentPragmas {
        journal_mode: Some(JournalMode::Truncate),
        ..Default::default()
    };
    let desired = Desired {
        databases: vec![db("a", truncate)],
    };
    assert!(
        diff(
            &observed(&[("a", ObservedFile::Present(facts(false, 10)))]),
            &desired
        )
        .is_empty()
    );
}

#[test]
fn page_size_change_needs_vacuum_only_on_a_non_empty_file_and_precedes_journal_mode() {
    let want = PersistentPragmas {
        page_size: Some(PageSize::new(8192).unwrap()),
        ..wal()
    };
    let desired = Desired {
        databases: vec![db("a", want)],
    };
    let plan = diff(
        &observed(&[("a", ObservedFile::Present(facts(false, 10)))]),
        &desired,
    );
    assert!(matches!(
        plan.changes[0],
        Change::SetPragma {
            needs_vacuum: true,
            to: PragmaValue::PageSize(_),
            ..
        }
    ));
    assert!(matches!(
        plan.changes[1],
        Change::SetPragma {
            to: PragmaValue::JournalMode(_),
            ..
        }
    ));
    let plan = diff(
        &observed(&[("a", ObservedFile::Present(facts(false, 0)))]),
        &desired,
    );
    assert!(matches!(
        plan.changes[0],
        Change::SetPragma {
            needs_vacuum: false,
            ..
        }
    ));
}

#[test]
fn switching_between_full_and_incremental_needs_no_vacuum() {
    let want = PersistentPragmas {
        auto_vacuum: Some(AutoVacuum::Incremental),
        ..Default::default()
    };
    let desired = Desired {
        databases: vec![db("a", want)],
    };
    let full = FileFacts {
        auto_vacuum: AutoVacuum::Full,
        ..facts(true, 10)
    };
    let plan = diff(&observed(&[("a", ObservedFile::Present(full))]), &desired);
    assert!(matches!(
        plan.changes[0],
        Change::SetPragma {
            needs_vacuum: false,
            ..
        }
    ));
    let plan = diff(
        &observed(&[("a", ObservedFile::Present(facts(true, 10)))]),
        &desired,
    );
    assert!(matches!(
        plan.changes[0],
        Change::SetPragma {
            needs_vacuum: true,
            ..
        }
    ));
}

#[test]
fn missing_file_with_restore_if_missing_and_a_backup_is_restored_not_created() {
    let mut want = db("a", wal());
    want.restore_if_missing = true;
    let desired = Desired {
        databases: vec![want.clone()],
    };
    let mut observed = observed(&[]);
    assert!(
        matches!(
            diff(&observed, &desired).changes[0],
            Change::CreateDatabase { .. }
        ),
        "no backup: create"
    );
    observed.expectations.insert(
        "a".into(),
        Expectation {
            backups: 1,
            verified: 1,
            newest_verified: Some(KnownBackup {
                path: "/b/a/a-20261129T000000Z.db.zst".into(),
                created_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
                source: None,
                offsite: false,
            }),
            ..Expectation::default()
        },
    );
    let plan = diff(&observed, &desired);
    assert_eq!(
        plan.changes[0].to_string(),
        "+ a: restore /data/a.db from /b/a/a-20261129T000000Z.db.zst (file missing)"
    );
    want.restore_if_missing = false;
    let plan = diff(
        &observed,
        &Desired {
            databases: vec![want],
        },
    );
    assert!(plan.changes.is_empty(), "opt-in only, and never created");
    assert!(
        plan.problems[0]
            .to_string()
            .starts_with("! a: /data/a.db is missing (1 verified backup, newest 2027-01-15 08:00:00Z) — restore it with `litewarden restore a`"),
        "{}",
        plan.problems[0]
    );
}

#[test]
fn a_managed_database_that_is_missing_is_never_created_and_nothing_else_runs() {
    let mut want = db("a", wal());
    want.migrations = Some(MigrationApply::Auto);
    let desired = Desired {
        databases: vec![want],
    };
    let mut observed = observed(&[]);
    observed
        .pending_migrations
        .insert("a".into(), vec!["0001_init".into()]);
    observed.expectations.insert(
        "a".into(),
        Expectation {
            managed: true,
            ..Expectation::default()
        },
    );
    let plan = diff(&observed, &desired);
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert!(matches!(plan.problems[..], [Problem::Missing { .. }]));
    assert!(
        plan.problems[0]
            .to_string()
            .contains("litewarden will not create it empty")
    );
}

#[test]
fn a_database_that_no_longer_fits_its_identity_is_left_alone() {
    let desired = Desired {
        databases: vec![db("a", wal())],
    };
    let mut observed = observed(&[("a", ObservedFile::Present(facts(true, 0)))]);
    let before = identity::Identity {
        page_size: 4096,
        page_count: 10,
        tables: ["t".to_string()].into(),
        ..identity::Identity::default()
    };
    observed.expectations.insert(
        "a".into(),
        Expectation {
            identity: Some(before),
            ..Expectation::default()
        },
    );
    observed
        .identities
        .insert("/data/a.db".into(), identity::Identity::default());
    let plan = diff(&observed, &desired);
    assert!(plan.changes.is_empty());
    assert_eq!(
        plan.problems[0].to_string(),
        "! a: /data/a.db does not fit what litewarden last saw: it is empty now (it had 1 table: t) — its backups from before are kept; run `litewarden accept a` once the new content is right, or `litewarden restore a` to bring the old one back"
    );
}

#[test]
fn databases_removed_from_the_file_are_unmanaged_not_deleted() {
    let mut observed = observed(&[]);
    observed.managed = vec![ManagedDatabase {
        name: "old".into(),
        path: "/data/old.db".into(),
    }];
    let plan = diff(&observed, &Desired::default());
    assert_eq!(
        plan.counts(),
        Counts {
            unmanage: 1,
            ..Counts::default()
        }
    );
    assert_eq!(
        plan.changes[0].to_string(),
        "- old: stop managing /data/old.db (file kept)"
    );
}

#[test]
fn unmanaged_pragmas_never_drift() {
    let desired = Desired {
        databases: vec![db("a", PersistentPragmas::default())],
    };
    let odd = FileFacts {
        application_id: 7,
        auto_vacuum: AutoVacuum::Full,
        ..facts(true, 10)
    };
    assert!(diff(&observed(&[("a", ObservedFile::Present(odd))]), &desired).is_empty());
}

//! What `plan` knows of a database that has tables but no migration
//! history: which migration version its schema is, found by replaying the
//! migrations (see `jobs::migrations::detect`, which fills these values).
//! Plain values: `plan` owns its input types.

use serde::Serialize;

/// What replaying the migrations found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    /// The version whose schema equals the live one, if one does.
    pub matched: Option<i64>,
    /// Otherwise the closest version (`None`: no migration gets closer than
    /// an empty database).
    pub closest: Option<i64>,
    /// How the closest version differs from the live database.
    pub differences: Vec<String>,
    /// Objects the migrations create that the database already has.
    pub conflicts: Vec<Conflict>,
}

/// An object a migration creates that the database already has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// `table crawled_pages`.
    pub object: String,
    /// The first migration version that creates it.
    pub version: i64,
    /// Columns only the database's table has.
    pub only_in_database: Vec<String>,
    /// Columns only the migrations' table has.
    pub only_in_migrations: Vec<String>,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "migration {} creates {}, which the database already has",
            self.version, self.object
        )?;
        if !self.only_in_database.is_empty() {
            write!(
                f,
                "; only the database has column{} {}",
                if self.only_in_database.len() == 1 {
                    ""
                } else {
                    "s"
                },
                self.only_in_database.join(", ")
            )?;
        }
        if !self.only_in_migrations.is_empty() {
            write!(
                f,
                "; only the migrations give column{} {}",
                if self.only_in_migrations.len() == 1 {
                    ""
                } else {
                    "s"
                },
                self.only_in_migrations.join(", ")
            )?;
        }
        Ok(())
    }
}

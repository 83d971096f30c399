//! Helpers for tests that run the real `litewarden` binary in a fresh
//! temporary directory.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// Environment variables the shipped jobs.yaml reads; cleared so the
/// developer's own environment never leaks into a test.
const SEED_VARIABLES: &[&str] = &[
    "DATABASE1_PATH",
    "DATABASE2_PATH",
    "DATABASE3_PATH",
    "BACKUP_DIR",
    "ENABLE_AUTO_BACKUP",
    "BACKUP_RETENTION_DAYS",
    "DB_UPDATE_INTERVAL",
    "SMTP_HOST",
    "SMTP_PASSWORD",
    "LITEWARDEN_CONFIG",
    "RUST_LOG",
];

/// A temporary directory holding a `jobs.yaml`.
pub struct Project {
    dir: tempfile::TempDir,
}

/// What a finished command printed.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Project {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a temp dir"),
        }
    }

    /// A project whose jobs.yaml holds `config`.
    pub fn with_config(config: &str) -> Self {
        let project = Self::new();
        project.write("jobs.yaml", config.as_bytes());
        project
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, bytes: &[u8]) {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(path, bytes).expect("write a test file");
    }

    /// The binary, run in the project directory with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("litewarden").expect("the litewarden binary");
        command.current_dir(self.path()).args(args);
        for name in SEED_VARIABLES {
            command.env_remove(name);
        }
        command.env("RUST_LOG", "warn");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.command(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().expect("run litewarden");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Every path below the project directory, relative and sorted.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let path = entry.expect("dir entry").path();
                out.push(
                    path.strip_prefix(self.path())
                        .unwrap()
                        .display()
                        .to_string(),
                );
                if path.is_dir() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Opens a database in the test process (not the binary that wrote it).
pub fn open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open a database")
}

pub fn pragma<T: rusqlite::types::FromSql>(path: &Path, name: &str) -> T {
    open(path)
        .pragma_query_value(None, name, |row| row.get(0))
        .expect("read a pragma")
}

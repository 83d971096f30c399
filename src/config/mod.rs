//! Loading `jobs.yaml`: bytes to a validated [`Config`] plus warnings, or
//! every error as `file:line:col: field: message`.
//!
//! Owns the load pipeline and the [`Diagnostic`] type. The stages, each in
//! its own module:
//! 1. UTF-8 and emptiness checks on the raw bytes (here);
//! 2. [`locate::Document`]: marked-yaml parse that refuses duplicate keys,
//!    anchors, aliases, merge keys and tags, and keeps positions;
//! 3. serde_yaml into [`raw`] types, `${VAR}` expanded per scalar by
//!    [`interpolate`]; serde stops at its first error, reported with its
//!    position and a "did you mean" for misspelled keys;
//! 4. [`validate`]: merged defaults and semantic checks, all reported;
//! 5. [`preflight`]: read-only file-system checks (directories that cannot be
//!    created, backups on the database's file system).

pub mod columns;
pub mod interpolate;
pub mod locate;
pub mod model;
pub mod preflight;
pub mod raw;
pub mod schema;
pub mod secret;
pub mod validate;
pub mod values;
pub mod watch;

use std::fmt;
use std::path::Path;

pub use interpolate::Environment;
pub use locate::Position;
pub use model::*;

use locate::{Document, FieldPath};
use values::did_you_mean;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file cannot be used.
    Error,
    /// The file works, but probably not as intended.
    Warning,
}

/// One problem in `jobs.yaml`, printed as `file:line:col: field: message`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The config file as the user named it.
    pub file: String,
    /// Where in the file.
    #[serde(flatten)]
    pub position: Position,
    /// The key path, e.g. `databases.website_crawler.path` (may be empty).
    pub field: String,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

impl Diagnostic {
    fn at_start(file: &str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.to_string(),
            position: Position::START,
            field: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.file, self.position.line, self.position.column
        )?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// A loaded configuration and its warnings.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Warnings, in file order.
    pub warnings: Vec<Diagnostic>,
    /// The databases' names in the order the file lists them (the
    /// application's default database is the first).
    pub database_order: Vec<DbName>,
    /// Faults of the environment (a directory that cannot be created):
    /// empty from [`load`], which refuses them; read-only commands load
    /// with [`load_reporting_faults`] and report them.
    pub faults: Vec<Diagnostic>,
}

/// Why the config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `jobs.yaml` is invalid; every problem found, in file order.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// `jobs.yaml` could not be read.
    #[error("{}: cannot read the config file: {source} (pass another file with -c FILE)", crate::paths::display(.path))]
    Read {
        /// The config file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: crate::regular::OpenError,
    },
}

/// The largest config file read (bytes): far above any real one (200,000
/// databases take 7 MiB), it bounds the memory a wrong path (a log file, a
/// disk image) can make the loader use.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Reads, parses, validates and preflights the config file at `file`.
///
/// `file` is shown in messages as given; relative paths inside the file are
/// resolved against its directory.
pub fn load(file: &Path, environment: &Environment) -> Result<Loaded, LoadError> {
    let loaded = load_reporting_faults(file, environment)?;
    if !loaded.faults.is_empty() {
        return Err(LoadError::Invalid(loaded.faults));
    }
    Ok(loaded)
}

/// [`load`] for a command that only reads: a fault of the environment (the
/// backup disk gone, a directory replaced by a file) does not make the
/// configuration invalid; it is returned in [`Loaded::faults`] for the
/// command to report.
pub fn load_reporting_faults(file: &Path, environment: &Environment) -> Result<Loaded, LoadError> {
    let bytes =
        crate::regular::read_at_most(file, MAX_CONFIG_BYTES).map_err(|source| LoadError::Read {
            path: file.to_path_buf(),
            source,
        })?;
    let label = file.display().to_string();
    let (config, warnings, document) =
        parse(&bytes, &label, file, environment).map_err(LoadError::Invalid)?;
    let preflight = preflight::check(&config, &document, &label);
    let (errors, preflight_warnings): (Vec<_>, Vec<_>) = preflight
        .diagnostics
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(LoadError::Invalid(errors));
    }
    let mut warnings: Vec<_> = warnings.into_iter().chain(preflight_warnings).collect();
    warnings.sort_by_key(|d| d.position);
    let mut database_order: Vec<DbName> = config.databases.keys().cloned().collect();
    database_order
        .sort_by_key(|name| document.locate_key(&FieldPath::root("databases").key(name.as_str())));
    Ok(Loaded {
        config,
        warnings,
        database_order,
        faults: preflight.faults,
    })
}

/// Parses and validates `bytes` without touching the file system.
pub fn parse(
    bytes: &[u8],
    label: &str,
    file: &Path,
    environment: &Environment,
) -> Result<(Config, Vec<Diagnostic>, Document), Vec<Diagnostic>> {
    let text = decode(bytes, label)?;
    if text
        .lines()
        .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'))
    {
        return Err(vec![Diagnostic::at_start(
            label,
            "the file is empty; it needs at least `version: 1` and `databases:`",
        )]);
    }
    let document = Document::parse(text).map_err(|e| {
        vec![Diagnostic {
            severity: Severity::Error,
            file: label.to_string(),
            position: e.position,
            field: String::new(),
            message: e.message,
        }]
    })?;
    let secrets = secret::Secrets::of(&document, environment);
    let redact = |diagnostics: Vec<Diagnostic>| -> Vec<Diagnostic> {
        diagnostics
            .into_iter()
            .map(|d| Diagnostic {
                message: secrets.redact(&d.message),
                ..d
            })
            .collect()
    };
    let raw: raw::RawConfig =
        interpolate::with_environment(environment, || serde_yaml::from_str(text))
            .map_err(|e| redact(vec![serde_diagnostic(&e, label, &document, text)]))?;
    let validated = validate::validate(raw, &document, label, file).map_err(redact)?;
    Ok((validated.config, redact(validated.warnings), document))
}

fn decode<'a>(bytes: &'a [u8], label: &str) -> Result<&'a str, Vec<Diagnostic>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        vec![Diagnostic {
            severity: Severity::Error,
            file: label.to_string(),
            position: Position { line, column },
            field: String::new(),
            message: format!(
                "the file is not valid UTF-8 (byte 0x{:02x}); save it as UTF-8",
                bytes[e.valid_up_to()]
            ),
        }]
    })
}

/// The position of the first `${` at or after `scalar` on its line: an
/// error about an interpolated value points at the variable, not at the
/// quote that opens its scalar.
fn at_variable(text: &str, scalar: Position) -> Position {
    let Some(line) = text.lines().nth(scalar.line.saturating_sub(1)) else {
        return scalar;
    };
    let start: usize = line
        .chars()
        .take(scalar.column.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    match line[start..].find("${") {
        Some(offset) => Position {
            line: scalar.line,
            column: line[..start + offset].chars().count() + 1,
        },
        None => scalar,
    }
}

/// Converts serde_yaml's first error into a diagnostic, splitting off its
/// key path and adding "did you mean" to unknown-field errors.
fn serde_diagnostic(
    error: &serde_yaml::Error,
    label: &str,
    document: &Document,
    document_text: &str,
) -> Diagnostic {
    let position = error
        .location()
        .map(|l| Position {
            line: l.line(),
            column: l.column(),
        })
        .unwrap_or(Position::START);
    let mut text = error.to_string();
    if let Some(location) = error.location() {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(stripped) = text.strip_suffix(&suffix) {
            text = stripped.to_string();
        }
    }
    let (mut field, message) = split_field(&text);
    let message = match message.strip_prefix("invalid type: unit value, expected ") {
        Some(expected) => format!("a value is missing here: expected {expected}"),
        None => message,
    };
    let position = if message.contains("(`${") {
        at_variable(document_text, position)
    } else {
        position
    };
    if message.contains("more than one document") {
        return Diagnostic {
            severity: Severity::Error,
            file: label.to_string(),
            position: second_document(document_text),
            field,
            message: "the file holds more than one YAML document (`---`); keep everything in one"
                .into(),
        };
    }
    let message = match parse_unknown_field(&message) {
        Some((unknown, expected)) => {
            field = if field.is_empty() {
                unknown.clone()
            } else {
                format!("{field}.{unknown}")
            };
            unknown_field_message(&unknown, &expected)
        }
        None => message,
    };
    let position = if position == Position::START && !field.is_empty() {
        document.locate(&field_path(&field))
    } else {
        position
    };
    Diagnostic {
        severity: Severity::Error,
        file: label.to_string(),
        position,
        field,
        message,
    }
}

/// The position of the `---` that starts the second document.
fn second_document(text: &str) -> Position {
    let content = |line: &&str| {
        let line = line.trim_start();
        !(line.is_empty() || line.starts_with('#') || line.starts_with('%'))
    };
    let opens_with_marker = text
        .lines()
        .find(content)
        .is_some_and(|line| line.starts_with("---"));
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.starts_with("---"))
        .nth(usize::from(opens_with_marker))
        .map_or(Position::START, |(index, _)| Position {
            line: index + 1,
            column: 1,
        })
}

/// serde_yaml prefixes messages with the key path (`databases.a: ...`).
fn split_field(text: &str) -> (String, String) {
    if let Some((head, rest)) = text.split_once(": ") {
        let is_path = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'));
        if is_path {
            return (head.to_string(), rest.to_string());
        }
    }
    (String::new(), text.to_string())
}

fn field_path(text: &str) -> FieldPath {
    let mut path = FieldPath::default();
    for part in text.split('.') {
        let (key, indices) = part
            .split_once('[')
            .map_or((part, ""), |(k, rest)| (k, rest));
        path = path.key(key);
        for index in indices
            .split('[')
            .filter_map(|i| i.trim_end_matches(']').parse().ok())
        {
            path = path.index(index);
        }
    }
    path
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`".
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((unknown.to_string(), expected))
}

fn unknown_field_message(unknown: &str, expected: &[String]) -> String {
    if unknown == "password" {
        return "unknown field `password`: never write a password into jobs.yaml; use `password_env` or `password_file`".into();
    }
    let list = expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match did_you_mean(unknown, expected.iter().map(String::as_str)) {
        Some(close) => {
            format!("unknown field `{unknown}` (did you mean `{close}`?); expected one of {list}")
        }
        None if expected.is_empty() => format!("unknown field `{unknown}`"),
        None => format!("unknown field `{unknown}`; expected one of {list}"),
    }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

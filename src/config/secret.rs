//! Secret fields of `jobs.yaml` and keeping their values out of every
//! diagnostic.
//!
//! Owns [`VariableName`] (the type of `smtp.password_env`) and [`Secrets`],
//! the values a load must never print. A secret field names where the
//! password is (an environment variable, a file); the password itself never
//! enters a `Config`. An environment variable used in a secret field is a
//! secret wherever else the file uses it, so every diagnostic of a load is
//! passed through [`Secrets::redact`] before anyone sees it: `check`, the
//! daemon's log, `state.db`, `status`, `/status` and `/healthz` all print
//! diagnostics made here.
//!
//! Must not: read the process environment (the load's [`Environment`] is
//! the only source), or quote a secret field's text in an error.

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::interpolate::{Environment, variables_in};
use super::locate::{Document, FieldPath};

/// The name of an environment variable, written `NAME` or `${NAME}` (the
/// form every other field uses; here it names the variable and is never
/// expanded, so its value cannot reach a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableName(pub String);

impl VariableName {
    /// `NAME` or `${NAME}` as the bare name, or `None` when `text` is
    /// neither.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let name = text
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap_or(text);
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        valid.then(|| Self(name.to_string()))
    }
}

/// Never names what was written: the text may be a pasted password.
const NOT_A_NAME: &str = "takes the name of an environment variable (letters, digits and `_`, e.g. `SMTP_PASSWORD`), never the password itself; the value written here is not shown";

impl<'de> Deserialize<'de> for VariableName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = VariableName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an environment variable name")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                VariableName::parse(text).ok_or_else(|| E::custom(NOT_A_NAME))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom(NOT_A_NAME))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom(NOT_A_NAME))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom(NOT_A_NAME))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::custom(NOT_A_NAME))
            }
        }
        deserializer.deserialize_any(NameVisitor)
    }
}

impl JsonSchema for VariableName {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VariableName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(\\$\\{)?[A-Za-z_][A-Za-z0-9_]*\\}?$"
        })
    }
}

/// The values one load must never print: those of the environment
/// variables that `smtp.password_env`, `smtp.password_file` and each
/// `offsite.secret_access_key_env` name or use.
#[derive(Debug, Default)]
pub struct Secrets {
    values: Vec<String>,
}

/// The variable an `offsite:` block reads its secret key from by default.
pub const DEFAULT_SECRET_ACCESS_KEY_ENV: &str = "AWS_SECRET_ACCESS_KEY";

/// The variable an `offsite:` block reads its access key id from by default.
pub const DEFAULT_ACCESS_KEY_ID_ENV: &str = "AWS_ACCESS_KEY_ID";

/// Every `offsite:` block of the file: `settings.offsite`,
/// `defaults.backup.offsite` and each database's `backup.offsite`.
fn offsite_blocks(document: &Document) -> Vec<FieldPath> {
    let databases = FieldPath::root("databases");
    let mut blocks = vec![
        FieldPath::root("settings").key("offsite"),
        FieldPath::root("defaults").key("backup").key("offsite"),
    ];
    blocks.extend(
        document
            .keys(&databases)
            .into_iter()
            .map(|name| databases.key(name).key("backup").key("offsite")),
    );
    blocks.retain(|block| document.is_mapping(block));
    blocks
}

/// What a secret value is replaced by in a message.
pub const REDACTED: &str = "<redacted>";

impl Secrets {
    /// The secret values of the file parsed into `document`.
    pub fn of(document: &Document, environment: &Environment) -> Self {
        let smtp = FieldPath::root("smtp");
        let mut names: Vec<String> = Vec::new();
        if let Some(text) = document.scalar(&smtp.key("password_env")) {
            names.extend(VariableName::parse(text).map(|name| name.0));
            names.extend(variables_in(text).into_iter().map(|(n, _)| n.to_string()));
        }
        if let Some(text) = document.scalar(&smtp.key("password_file")) {
            names.extend(variables_in(text).into_iter().map(|(n, _)| n.to_string()));
        }
        for offsite in offsite_blocks(document) {
            let field = offsite.key("secret_access_key_env");
            match document.scalar(&field) {
                Some(text) => {
                    names.extend(VariableName::parse(text).map(|name| name.0));
                    names.extend(variables_in(text).into_iter().map(|(n, _)| n.to_string()));
                }
                None => names.push(DEFAULT_SECRET_ACCESS_KEY_ENV.to_string()),
            }
            if let Some(text) = document.scalar(&offsite.key("secret_access_key_file")) {
                names.extend(variables_in(text).into_iter().map(|(n, _)| n.to_string()));
            }
        }
        let mut values: Vec<String> = names
            .iter()
            .filter_map(|name| environment.get(name))
            .filter(|value| !value.trim().is_empty())
            .map(str::to_string)
            .collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        values.dedup();
        Self { values }
    }

    /// `message` with every secret value replaced by [`REDACTED`].
    pub fn redact(&self, message: &str) -> String {
        let mut out = message.to_string();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_name_accepts_the_bare_name_and_the_dollar_brace_form() {
        assert_eq!(
            VariableName::parse("SMTP_PASSWORD").unwrap().0,
            "SMTP_PASSWORD"
        );
        assert_eq!(
            VariableName::parse("${SMTP_PASSWORD}").unwrap().0,
            "SMTP_PASSWORD"
        );
        assert!(VariableName::parse("Sup3r$ecret!pw#42").is_none());
        assert!(VariableName::parse("${A:-x}").is_none());
        assert!(VariableName::parse("").is_none());
    }

    #[test]
    fn redact_replaces_every_value_of_a_variable_a_secret_field_uses() {
        let text = "smtp:\n  password_env: ${P}\n  password_file: ${DIR}/pw\n";
        let document = Document::parse(text).unwrap();
        let environment =
            Environment::from_pairs([("P", "hunter22"), ("DIR", "/run/s"), ("X", "x")]);
        let secrets = Secrets::of(&document, &environment);
        assert_eq!(
            secrets.redact("a hunter22 b /run/s/pw x"),
            "a <redacted> b <redacted>/pw x"
        );
    }

    #[test]
    fn the_secret_keys_of_every_offsite_block_are_redacted() {
        let text = "settings:\n  offsite:\n    url: s3://b\ndatabases:\n  app:\n    backup:\n      offsite:\n        url: s3://c\n        secret_access_key_env: APP_SECRET\n";
        let document = Document::parse(text).unwrap();
        let environment = Environment::from_pairs([
            ("AWS_SECRET_ACCESS_KEY", "default-secret"),
            ("APP_SECRET", "app-secret"),
        ]);
        let secrets = Secrets::of(&document, &environment);
        assert_eq!(
            secrets.redact("default-secret app-secret"),
            "<redacted> <redacted>"
        );
    }
}

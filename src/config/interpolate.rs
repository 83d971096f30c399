//! `${VAR}` and `${VAR:-default}` expansion inside scalar values.
//!
//! Owns the [`Environment`] snapshot a load reads variables from and the
//! [`Expanded`] wrapper that every scalar field of `jobs.yaml` is made of.
//!
//! Invariants:
//! - Expansion happens after YAML parsing, on one scalar's text at a time, so
//!   a variable's value can never change the structure of the file
//!   (`DATABASE1_PATH='a: b #c'` stays a path).
//! - [`Expanded`] expands and converts *inside* the serde visitor. serde_yaml
//!   then attaches the scalar's own `line:column` to any error, which is how
//!   every interpolation or type error gets an exact position.
//!
//! serde gives a visitor no context argument, so [`with_environment`] lends
//! the environment to the visitors of one parse through a thread-local that
//! is set for exactly that call and cleared by a drop guard afterwards. No
//! environment outlives the parse that was handed it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::values::ScalarValue;

/// The environment variables a load may read: a snapshot, injected by the
/// caller, so tests never touch the process environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    variables: HashMap<String, String>,
}

impl Environment {
    /// A snapshot of this process's environment (non-UTF-8 entries skipped).
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// An environment holding exactly these variables.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            variables: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }
}

/// Why a scalar could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${NAME}` without a default, and `NAME` is not set.
    #[error("environment variable `{0}` is not set (give a default with `${{{0}:-value}}`)")]
    Unset(String),
    /// `${` without its closing `}`.
    #[error("`${{` at byte {0} has no closing `}}`")]
    Unterminated(usize),
    /// The text between `${` and `}` is not a variable name.
    #[error(
        "`{0}` is not a variable name (use letters, digits and `_`, e.g. `${{BACKUP_DIR:-backups}}`)"
    )]
    BadName(String),
}

/// Expands `${VAR}` and `${VAR:-default}` in `text`.
///
/// `:-` uses the default when the variable is unset *or empty*, as in POSIX
/// shells and docker compose. `$${` writes a literal `${`. A `$` not followed
/// by `{` is kept as it is.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let offset = text.len() - after.len();
            let close = tail.find('}').ok_or(ExpandError::Unterminated(offset))?;
            let body = &tail[..close];
            let (name, default) = match body.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (body, None),
            };
            if !is_variable_name(name) {
                return Err(ExpandError::BadName(body.to_string()));
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(ExpandError::Unset(name.to_string())),
            }
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

thread_local! {
    static SCOPED_ENVIRONMENT: RefCell<Option<Environment>> = const { RefCell::new(None) };
}

/// Runs `parse` with `environment` visible to every [`Expanded`] visitor on
/// this thread, and only for the duration of the call.
pub fn with_environment<R>(environment: &Environment, parse: impl FnOnce() -> R) -> R {
    struct Restore(Option<Environment>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SCOPED_ENVIRONMENT.with(|slot| *slot.borrow_mut() = previous);
        }
    }
    let previous = SCOPED_ENVIRONMENT.with(|slot| slot.replace(Some(environment.clone())));
    let _restore = Restore(previous);
    parse()
}

fn expand_in_scope(text: &str) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    SCOPED_ENVIRONMENT.with(|slot| {
        let scope = slot.borrow();
        let environment = scope
            .as_ref()
            .ok_or("`${...}` can only be expanded while loading jobs.yaml")?;
        expand(text, |name| environment.get(name).map(str::to_string)).map_err(|e| e.to_string())
    })
}

/// The error for a value that expanded from `template` into `expanded` but
/// did not convert: it names the variables that went into it, and when a
/// variable's value already carries a unit that the template appends again
/// (`DB_UPDATE_INTERVAL=1h` in `${DB_UPDATE_INTERVAL}s` is `1hs`), what to
/// write instead.
fn explain(template: &str, expanded: &str, error: impl fmt::Display) -> String {
    if template == expanded {
        return error.to_string();
    }
    let used = SCOPED_ENVIRONMENT.with(|slot| {
        let scope = slot.borrow();
        variables_in(template)
            .into_iter()
            .filter_map(|(name, suffix)| {
                let value = scope.as_ref()?.get(name)?.to_string();
                Some((name.to_string(), value, suffix))
            })
            .collect::<Vec<_>>()
    });
    for (name, value, suffix) in &used {
        if let Some((unit, seconds)) = unit_of(suffix)
            && let Ok(duration) = humantime::parse_duration(value)
        {
            let whole = duration.as_secs() / seconds;
            let write = if duration.as_secs() % seconds == 0 && duration.subsec_nanos() == 0 {
                format!("; write {whole}")
            } else {
                String::new()
            };
            return format!("{name} is \"{value}\" but is used as {unit} (`{template}`){write}");
        }
    }
    let whole_variable =
        variables_in(template).len() == 1 && template.starts_with("${") && template.ends_with('}');
    match used.as_slice() {
        [] => format!("{error} (`{template}` expanded to `{expanded}`)"),
        [(name, value, _)] if whole_variable => format!("{error} (from {name}=\"{value}\")"),
        _ => format!(
            "{error} (`{template}` expanded to `{expanded}` from {})",
            used.iter()
                .map(|(name, value, _)| format!("{name}=\"{value}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Each `${NAME…}` in `template` with the letters that follow its `}`.
pub(crate) fn variables_in(template: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let tail = &rest[start + 2..];
        let Some(close) = tail.find('}') else { break };
        let name = tail[..close].split(":-").next().unwrap_or_default();
        let after = &tail[close + 1..];
        let suffix_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        found.push((name, &after[..suffix_len]));
        rest = after;
    }
    found
}

/// The unit a duration suffix means, and its length in seconds.
fn unit_of(suffix: &str) -> Option<(&'static str, u64)> {
    match suffix {
        "s" => Some(("seconds", 1)),
        "m" => Some(("minutes", 60)),
        "h" => Some(("hours", 3600)),
        "d" => Some(("days", 86_400)),
        "w" => Some(("weeks", 604_800)),
        _ => None,
    }
}

/// A scalar field after `${...}` expansion and conversion to `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded<T>(pub T);

impl<T> Expanded<T> {
    /// The converted value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<'de, T: ScalarValue> Deserialize<'de> for Expanded<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ExpandedVisitor(PhantomData))
    }
}

struct ExpandedVisitor<T>(PhantomData<T>);

impl<T: ScalarValue> ExpandedVisitor<T> {
    fn convert<E: de::Error>(text: &str) -> Result<Expanded<T>, E> {
        T::parse_scalar(text).map(Expanded).map_err(E::custom)
    }
}

impl<T: ScalarValue> Visitor<'_> for ExpandedVisitor<T> {
    type Value = Expanded<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        let expanded = expand_in_scope(text).map_err(E::custom)?;
        T::parse_scalar(&expanded)
            .map(Expanded)
            .map_err(|error| E::custom(explain(text, &expanded, error)))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Self::convert(if value { "true" } else { "false" })
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Self::convert(&value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Self::convert(&value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Self::convert(&value.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom(format_args!(
            "a value is missing here: expected {}",
            T::EXPECTING
        )))
    }
}

impl<T: ScalarValue> JsonSchema for Expanded<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Expanded_{}", T::EXPECTING).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let typed = T::typed_schema(generator);
        if T::IS_STRING {
            return typed;
        }
        json_schema!({
            "anyOf": [
                typed,
                {
                    "type": "string",
                    "pattern": "\\$\\{",
                    "description": "a string with ${VAR} or ${VAR:-default}, expanded when loaded"
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn expands_set_variable_and_uses_default_when_unset_or_empty() {
        let lookup = env(&[("A", "x"), ("EMPTY", "")]);
        assert_eq!(
            expand("${A}/${B:-b}/${EMPTY:-e}", &lookup).unwrap(),
            "x/b/e"
        );
    }

    #[test]
    fn unset_variable_without_default_names_the_variable() {
        let err = expand("${DATABASE1_PATH}", env(&[])).unwrap_err();
        assert_eq!(err, ExpandError::Unset("DATABASE1_PATH".into()));
        assert!(err.to_string().contains("`DATABASE1_PATH` is not set"));
    }

    #[test]
    fn empty_default_is_allowed() {
        assert_eq!(expand("a${X:-}b", env(&[])).unwrap(), "ab");
    }

    #[test]
    fn dollar_dollar_brace_is_a_literal() {
        assert_eq!(expand("$${A}", env(&[("A", "x")])).unwrap(), "${A}");
    }

    #[test]
    fn lone_dollar_is_kept() {
        assert_eq!(expand("cost $5 $", env(&[])).unwrap(), "cost $5 $");
    }

    #[test]
    fn unterminated_and_bad_names_are_errors() {
        assert_eq!(expand("ab${A", env(&[])), Err(ExpandError::Unterminated(2)));
        assert!(matches!(
            expand("${1A}", env(&[])),
            Err(ExpandError::BadName(_))
        ));
        assert!(matches!(
            expand("${}", env(&[])),
            Err(ExpandError::BadName(_))
        ));
    }

    #[test]
    fn values_are_inserted_verbatim_even_when_they_look_like_yaml() {
        let lookup = env(&[("P", "a: b #c")]);
        assert_eq!(expand("${P}", &lookup).unwrap(), "a: b #c");
    }

    #[test]
    fn expanded_outside_a_scope_is_an_error_not_a_process_env_read() {
        assert!(expand_in_scope("${HOME}").is_err());
        assert_eq!(expand_in_scope("plain").unwrap(), "plain");
    }

    #[test]
    fn scope_is_cleared_after_the_call() {
        let environment = Environment::from_pairs([("A", "1")]);
        assert_eq!(
            with_environment(&environment, || expand_in_scope("${A}")).unwrap(),
            "1"
        );
        assert!(expand_in_scope("${A}").is_err());
    }

    proptest! {
        #[test]
        fn text_without_dollar_expands_to_itself(text in "[^$]*") {
            prop_assert_eq!(expand(&text, env(&[])).unwrap(), text);
        }

        #[test]
        fn any_value_round_trips_through_a_variable(value in ".*", prefix in "[^$]*") {
            let pairs = [("V", value.as_str())];
            let lookup = env(&pairs);
            let expanded = expand(&format!("{prefix}${{V}}"), &lookup).unwrap();
            let expected = if value.is_empty() { prefix.clone() } else { format!("{prefix}{value}") };
            prop_assert_eq!(expanded, expected);
        }

        #[test]
        fn expand_never_panics(text in ".*") {
            let _ = expand(&text, env(&[("A", "1")]));
        }
    }
}

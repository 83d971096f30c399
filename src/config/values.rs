//! The typed scalar values of `jobs.yaml`: sizes, durations, cron patterns,
//! time zones and the small enums.
//!
//! Owns no state. Each type converts from the (already expanded) text of one
//! scalar through [`ScalarValue::parse_scalar`], whose error is a short
//! lowercase message; the caller adds the file position and field path.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use schemars::{Schema, SchemaGenerator, json_schema};

/// A value that one YAML scalar converts into.
pub trait ScalarValue: Sized {
    /// What the value looks like, for messages and the schema name.
    const EXPECTING: &'static str;
    /// Whether the typed form is itself a string (then `${...}` needs no
    /// alternative in the schema).
    const IS_STRING: bool = false;
    /// Converts the expanded text of the scalar.
    fn parse_scalar(text: &str) -> Result<Self, String>;
    /// The JSON schema of the typed form.
    fn typed_schema(generator: &mut SchemaGenerator) -> Schema;
}

/// The candidate closest to `input`, when it is close enough to be a likely
/// typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(input, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

impl ScalarValue for String {
    const EXPECTING: &'static str = "a string";
    const IS_STRING: bool = true;

    /// Any string but one holding a NUL byte (a YAML `"\0"`): no path,
    /// name, address or SQL text can hold one, and the operating system
    /// would cut a path at it.
    fn parse_scalar(text: &str) -> Result<Self, String> {
        if text.contains('\0') {
            return Err("a NUL byte (`\\0`) cannot be part of a value; remove it".into());
        }
        Ok(text.to_string())
    }

    fn typed_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

impl ScalarValue for bool {
    const EXPECTING: &'static str = "true or false";

    fn parse_scalar(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            other => Err(format!("expected true or false, found `{other}`")),
        }
    }

    fn typed_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "boolean" })
    }
}

macro_rules! integer_scalar {
    ($($ty:ty),*) => {$(
        impl ScalarValue for $ty {
            const EXPECTING: &'static str = "an integer";

            fn parse_scalar(text: &str) -> Result<Self, String> {
                text.trim().parse::<$ty>().map_err(|_| {
                    format!(
                        "expected an integer from {} to {}, found `{}`",
                        <$ty>::MIN, <$ty>::MAX, text
                    )
                })
            }

            fn typed_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "integer", "minimum": <$ty>::MIN, "maximum": <$ty>::MAX })
            }
        }
    )*};
}
integer_scalar!(u16, u32, i32);

/// A byte count written as `256MiB`, `1GiB`, `512KB` or plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const SIZE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

impl ByteSize {
    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl ScalarValue for ByteSize {
    const EXPECTING: &'static str = "a size like 256MiB";

    fn parse_scalar(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let multiplier = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, m)| *m)
                .ok_or_else(|| {
                    format!("unknown size unit `{unit}` in `{text}` (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)")
                })?
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("expected a size like 256MiB, found `{text}`"))?;
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
            return Err(format!("size `{text}` is too large"));
        }
        Ok(ByteSize(bytes.round() as u64))
    }

    fn typed_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([KMGT]i?B|B|[kmgt]i?b|b)?\\s*$" }
            ]
        })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        const BINARY: &[(&str, u64)] = &[
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in BINARY {
            if self.0 >= *size && self.0.is_multiple_of(*size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// A duration written the humantime way: `90s`, `5m`, `2h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl ScalarValue for HumanDuration {
    const EXPECTING: &'static str = "a duration like 90s, 5m or 7d";

    fn parse_scalar(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "`{trimmed}` has no unit: write `{trimmed}s` for seconds"
            ));
        }
        humantime::parse_duration(trimmed)
            .map(HumanDuration)
            .map_err(|e| format!("expected a duration like 90s, 5m or 7d, found `{text}` ({e})"))
    }

    fn typed_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^\\s*([0-9]+\\s*[a-zA-Zµ]+\\s*)+$" })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A standard 5-field crontab pattern (minute hour day-of-month month
/// day-of-week, Sunday = 0 or 7) or a nickname such as `@hourly`.
#[derive(Clone)]
pub struct CronPattern {
    text: String,
    cron: croner::Cron,
}

impl CronPattern {
    /// The pattern as written in `jobs.yaml`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed pattern, for computing occurrences.
    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }
}

impl fmt::Debug for CronPattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CronPattern({:?})", self.text)
    }
}

impl PartialEq for CronPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CronPattern {}

impl ScalarValue for CronPattern {
    const EXPECTING: &'static str = "a 5-field cron pattern or @hourly";

    fn parse_scalar(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let normalized = match trimmed.to_ascii_lowercase().as_str() {
            "@midnight" => "@daily".to_string(),
            "@reboot" => {
                return Err(
                    "`@reboot` is not a schedule here: jobs run when `litewarden run` starts and then on their schedule".into(),
                );
            }
            _ => trimmed.to_string(),
        };
        let fields = normalized.split_whitespace().count();
        if !normalized.starts_with('@') && fields != 5 {
            return Err(format!(
                "`{trimmed}` has {fields} fields; use the standard 5: minute hour day-of-month month day-of-week (seconds and years are not supported)"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&normalized)
            .map_err(|e| format!("invalid cron pattern `{trimmed}`: {e}"))?;
        let reference = Utc
            .with_ymd_and_hms(2001, 1, 1, 0, 0, 0)
            .single()
            .ok_or("invalid reference time")?;
        cron.find_next_occurrence(&reference, false)
            .map_err(|_| format!("cron pattern `{trimmed}` never fires"))?;
        Ok(CronPattern {
            text: trimmed.to_string(),
            cron,
        })
    }

    fn typed_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "5-field crontab pattern (minute hour day-of-month month day-of-week) or @yearly, @monthly, @weekly, @daily, @midnight, @hourly"
        })
    }
}

impl ScalarValue for chrono_tz::Tz {
    const EXPECTING: &'static str = "an IANA time zone like Europe/Berlin";

    fn parse_scalar(text: &str) -> Result<Self, String> {
        chrono_tz::Tz::from_str(text.trim()).map_err(|_| {
            let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
            match did_you_mean(text.trim(), names) {
                Some(name) => format!("unknown time zone `{text}` (did you mean `{name}`?)"),
                None => format!(
                    "unknown time zone `{text}`; use an IANA name such as UTC or Europe/Berlin"
                ),
            }
        })
    }

    fn typed_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "description": "IANA time zone name" })
    }
}

impl ScalarValue for SocketAddr {
    const EXPECTING: &'static str = "an address like 127.0.0.1:9187";

    fn parse_scalar(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("expected an address like 127.0.0.1:9187, found `{text}`"))
    }

    fn typed_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "description": "IP address and port" })
    }
}

/// An email address (`local@domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(pub String);

impl ScalarValue for EmailAddress {
    const EXPECTING: &'static str = "an email address";

    fn parse_scalar(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        match trimmed.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !trimmed.contains(char::is_whitespace) =>
            {
                Ok(EmailAddress(trimmed.to_string()))
            }
            _ => Err(format!("`{text}` is not an email address")),
        }
    }

    fn typed_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "email" })
    }
}

/// Defines a lowercase-named enum read from a scalar, with "did you mean".
macro_rules! scalar_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every accepted spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name as written in `jobs.yaml`.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::config::values::ScalarValue for $name {
            const EXPECTING: &'static str = concat!("one of: ", $($text, " "),+);

            fn parse_scalar(text: &str) -> Result<Self, String> {
                let lowered = text.trim().to_ascii_lowercase();
                match lowered.as_str() {
                    $($text => Ok(Self::$variant),)+
                    _ => Err($crate::config::values::unknown_choice(text, Self::NAMES)),
                }
            }

            fn typed_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "enum": Self::NAMES })
            }
        }
    };
}
pub(crate) use scalar_enum;

/// The message for a value that is not one of `choices`.
pub fn unknown_choice(text: &str, choices: &[&str]) -> String {
    let list = choices
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match did_you_mean(text.trim(), choices.iter().copied()) {
        Some(close) => {
            format!("unknown value `{text}` (did you mean `{close}`?); expected one of {list}")
        }
        None => format!("unknown value `{text}`; expected one of {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!(ByteSize::parse_scalar("256MiB").unwrap().bytes(), 256 << 20);
        assert_eq!(ByteSize::parse_scalar("1 GiB").unwrap().bytes(), 1 << 30);
        assert_eq!(ByteSize::parse_scalar("2KB").unwrap().bytes(), 2000);
        assert_eq!(ByteSize::parse_scalar("4096").unwrap().bytes(), 4096);
        assert_eq!(ByteSize::parse_scalar("1.5KiB").unwrap().bytes(), 1536);
    }

    #[test]
    fn sizes_reject_unknown_units_and_garbage() {
        assert!(
            ByteSize::parse_scalar("5 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(ByteSize::parse_scalar("MiB").is_err());
        assert!(ByteSize::parse_scalar("").is_err());
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(
            HumanDuration::parse_scalar("7d").unwrap().get(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(
            HumanDuration::parse_scalar("3600s").unwrap().get(),
            Duration::from_secs(3600)
        );
        assert!(
            HumanDuration::parse_scalar("3600")
                .unwrap_err()
                .contains("write `3600s`")
        );
        assert!(HumanDuration::parse_scalar("soon").is_err());
    }

    #[test]
    fn cron_accepts_five_fields_and_nicknames() {
        for pattern in [
            "0 * * * *",
            "@hourly",
            "@midnight",
            "@weekly",
            "30 2 * * 0",
            "0 3 * * 7",
        ] {
            assert!(CronPattern::parse_scalar(pattern).is_ok(), "{pattern}");
        }
    }

    #[test]
    fn cron_rejects_seconds_reboot_and_never_firing_patterns() {
        assert!(
            CronPattern::parse_scalar("0 0 * * * *")
                .unwrap_err()
                .contains("6 fields")
        );
        assert!(
            CronPattern::parse_scalar("@reboot")
                .unwrap_err()
                .contains("@reboot")
        );
        assert!(
            CronPattern::parse_scalar("0 0 30 2 *")
                .unwrap_err()
                .contains("never fires")
        );
        assert!(CronPattern::parse_scalar("61 * * * *").is_err());
    }

    #[test]
    fn time_zone_suggests_the_closest_name() {
        let err = chrono_tz::Tz::parse_scalar("Europe/Berln").unwrap_err();
        assert!(err.contains("did you mean `Europe/Berlin`"), "{err}");
    }

    #[test]
    fn did_you_mean_ignores_distant_words() {
        assert_eq!(did_you_mean("pahts", ["path", "pragmas"]), Some("path"));
        assert_eq!(did_you_mean("zzzz", ["path", "pragmas"]), None);
    }

    proptest! {
        #[test]
        fn size_display_round_trips(bytes in 0u64..(1 << 50)) {
            let shown = ByteSize(bytes).to_string();
            prop_assert_eq!(ByteSize::parse_scalar(&shown).unwrap(), ByteSize(bytes));
        }

        #[test]
        fn scalar_parsers_never_panic(text in ".*") {
            let _ = ByteSize::parse_scalar(&text);
            let _ = HumanDuration::parse_scalar(&text);
            let _ = CronPattern::parse_scalar(&text);
        }
    }
}

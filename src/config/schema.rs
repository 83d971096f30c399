//! The JSON schema of `jobs.yaml`, generated from the [`crate::config::raw`]
//! types so it can never disagree with what the loader accepts.
//!
//! Owns no state. `litewarden schema` prints it; `schemas/jobs.schema.json`
//! is its committed copy, and a test fails when that copy is stale.

use crate::config::raw::RawConfig;

/// The schema as pretty-printed JSON with a trailing newline.
pub fn jobs_schema() -> String {
    let schema = schemars::schema_for!(RawConfig);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

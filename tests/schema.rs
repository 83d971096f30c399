//! The committed JSON schema and the README reference stay in step with the
//! config types.

use std::collections::BTreeSet;

use crate::common::Project;

fn root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_schema_is_up_to_date() {
    let output = Project::new().run(&["schema"]);
    assert_eq!(output.code, 0, "{output:?}");
    let committed =
        std::fs::read_to_string(root().join("schemas/jobs.schema.json")).unwrap_or_default();
    assert!(
        committed == output.stdout,
        "schemas/jobs.schema.json is stale: run `cargo run -- schema > schemas/jobs.schema.json`"
    );
}

/// Every key path of the schema, like `defaults.backup.retention.keep_last`.
fn schema_paths(
    schema: &serde_json::Value,
    node: &serde_json::Value,
    prefix: &str,
    out: &mut BTreeSet<String>,
) {
    let node = match node.get("$ref").and_then(|r| r.as_str()) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/$defs/");
            &schema["$defs"][name]
        }
        None => node,
    };
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(options) = node.get(key).and_then(|o| o.as_array()) {
            for option in options {
                schema_paths(schema, option, prefix, out);
            }
        }
    }
    if let Some(items) = node.get("items") {
        schema_paths(schema, items, prefix, out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        schema_paths(schema, values, &format!("{prefix}.<name>"), out);
    }
    if let Some(properties) = node.get("properties").and_then(|p| p.as_object()) {
        for (key, child) in properties {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.insert(path.clone());
            schema_paths(schema, child, &path, out);
        }
    }
}

#[test]
fn readme_reference_documents_every_schema_key() {
    let schema: serde_json::Value =
        serde_json::from_str(&Project::new().run(&["schema"]).stdout).unwrap();
    let mut paths = BTreeSet::new();
    schema_paths(&schema, &schema, "", &mut paths);
    assert!(paths.contains("databases.<name>.path"), "{paths:?}");
    let readme = std::fs::read_to_string(root().join("docs/reference.md")).unwrap();
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !readme.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reference.md's jobs.yaml reference lacks: {missing:?}"
    );
}

//! The layers of `src/` import downward only, as `shared/DESIGN.md` orders
//! them: this reads every `crate::` path of the library's code (comments
//! and test modules aside) and fails on a module importing a layer above
//! it, or one of the pairs the design forbids outright.

use std::collections::BTreeSet;
use std::path::Path;

/// Top to bottom. `error` is the command line's error type, so it sits
/// with `cli`; `main` and `lib` are the crate's roots.
const LAYERS: &[&[&str]] = &[
    &["main", "lib", "cli", "web", "http", "error"],
    &["reconcile", "live"],
    &["runner", "status"],
    &["apply", "observe", "alert"],
    &["jobs", "replicate", "advise"],
    &["store", "state"],
    &["db"],
    &["plan"],
    &["scheduler", "config"],
    &["durable", "paths", "clock", "regular", "limits"],
];

/// Imports the design forbids even where the order would allow them:
/// endpoints read and never act, the library needs no daemon.
const NEVER: &[(&str, &str)] = &[("http", "jobs"), ("web", "jobs"), ("live", "reconcile")];

/// Modules `config` may import (it sits on the base only).
const BASE: &[&str] = &["durable", "paths", "clock", "regular", "limits"];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level modules `source` (a file of `module`) reaches through
/// `crate::` paths, outside comments and its test module.
fn imports(source: &str) -> BTreeSet<String> {
    let code = source
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in code.lines().map(str::trim_start) {
        if line.starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let preceded = line[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            let name: String = line[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let root_item = line[at + "crate::".len()..].starts_with(char::is_uppercase);
            if preceded {
                continue;
            }
            if !name.is_empty() {
                found.insert(name);
            } else if root_item {
                // `crate::Error` and `crate::Result` are `error`'s, re-exported.
                found.insert("error".to_string());
            }
        }
    }
    found
}

/// Every import of `module` (from one of its files' `source`) that goes
/// up a layer or is forbidden, as `module -> target`.
fn violations(module: &str, source: &str) -> Vec<String> {
    let Some(own) = layer(module) else {
        return vec![format!("{module} is in no layer: add it to LAYERS")];
    };
    imports(source)
        .into_iter()
        .filter(|target| target != module)
        .filter(|target| {
            let upward = layer(target).is_some_and(|theirs| theirs < own);
            let never = NEVER.contains(&(module, target.as_str()));
            let config_above_base = module == "config" && !BASE.contains(&target.as_str());
            upward || never || config_above_base
        })
        .map(|target| format!("{module} -> {target}"))
        .collect()
}

/// The library's files that are not test modules, with their top-level
/// module.
fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, root, out);
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".rs") || name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let relative = path.strip_prefix(root).expect("under src");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("")
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("read a source file");
        out.push((relative.display().to_string(), module, text));
    }
}

#[test]
fn every_module_imports_only_its_layer_and_the_layers_below() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 50, "found the sources");
    let found: Vec<String> = files
        .iter()
        .flat_map(|(file, module, text)| {
            violations(module, text)
                .into_iter()
                .map(move |v| format!("src/{file}: {v}"))
        })
        .collect();
    assert!(
        found.is_empty(),
        "imports against the layers of shared/DESIGN.md:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_catches_a_planted_upward_import() {
    let planted = "//! a db helper\nuse crate::config::Database;\nuse crate::jobs::backup::take;\nfn g() -> crate::Result<()> { Ok(()) }\n// crate::reconcile in a comment is fine\nfn f() { crate::alert::rules::evaluate(); }\n#[cfg(test)]\nmod tests {\n    use crate::reconcile::Event;\n}\n";
    assert_eq!(
        violations("db", planted),
        ["db -> alert", "db -> error", "db -> jobs"]
    );
    assert_eq!(
        violations(
            "http",
            "use crate::jobs::backup;\nuse crate::state::StateDb;\n"
        ),
        ["http -> jobs"],
        "endpoints read, never act"
    );
    assert_eq!(
        violations(
            "config",
            "use crate::scheduler::next_due;\nuse crate::paths;\n"
        ),
        ["config -> scheduler"],
        "config sits on the base only"
    );
    assert!(violations("cli", planted).is_empty());
}

//! The layering of design.md §2, enforced: a module may name only the modules in its
//! row (plus `format::names`). One crate has no compiler-checked walls, so this test
//! reads `src/` and fails on any other `crate::…` path.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("format", &[][..]),
        ("storage", &[][..]),
        ("repo", &["format", "storage"][..]),
        ("engine", &["repo", "storage", "format", "audit"][..]),
        ("audit", &["format", "storage"][..]),
        ("plan", &["format"][..]),
        ("apply", &["plan", "engine", "repo", "storage", "audit"][..]),
        ("drill", &["plan", "apply", "audit"][..]),
        ("daemon", &["plan", "apply", "drill", "audit"][..]),
    ])
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::<module>` named in `text`, with `format::names` reported as such.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + 7..];
        let module: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let names = rest.starts_with("format::names");
        found.push(if names { "format::names".to_string() } else { module });
    }
    found
}

fn violations(root: &Path) -> Vec<String> {
    let table = allowed();
    let mut out = Vec::new();
    for (module, may) in &table {
        let mut files = Vec::new();
        rust_files(&root.join(module), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap_or_default();
            for used in crate_paths(&text) {
                let ok = used == *module || used == "format::names" || may.contains(&used.as_str());
                if !ok {
                    out.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let v = violations(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(v.is_empty(), "layering violations:\n{}", v.join("\n"));
}

#[test]
fn the_checker_notices_a_forbidden_use() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("plan")).unwrap();
    fs::write(
        dir.path().join("plan/x.rs"),
        "use crate::engine::backup;\nuse crate::format::names::Tag;\n",
    )
    .unwrap();
    assert_eq!(violations(dir.path()).len(), 1);
}

//! The layering of design.md §2, enforced. One crate has no compiler-checked walls, so
//! this test reads `src/` and fails on:
//! - any `crate::…` path to a module outside the user's row (plus `format::names`),
//!   also when the path reaches the item through another module's `pub use`;
//! - an external crate named outside the modules design.md gives it (HTTP clients,
//!   BLAKE3 and the AEADs, opendal, the HTTP server, clap, sled, cron, …);
//! - files of one module importing each other in a circle (`a → b → a`), which
//!   hides which of them is the lower one.
//!
//! It also keeps the repository's objects with one owner: only `repo` (and `storage`
//! itself) talks to the store, `storage` knows no object names, and byte codecs of
//! stored objects live in `format`. These rules read product code only, i.e. each
//! file up to its `#[cfg(test)]` module: tests may set a store up by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

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

/// Whether module `module` may name module `used` (one of the table's names).
fn may_use(table: &BTreeMap<&str, &[&str]>, module: &str, used: &str) -> bool {
    used == module || used == "format::names" || table.get(module).is_none_or(|may| may.contains(&used))
}

fn violations(root: &Path) -> Vec<String> {
    let table = allowed();
    let mut out = Vec::new();
    for module in table.keys() {
        let mut files = Vec::new();
        rust_files(&root.join(module), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap_or_default();
            for used in crate_paths(&text) {
                if !may_use(&table, module, &used) {
                    out.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Where each external crate may be named: design.md §2 gives every heavy dependency
/// one home. HTTP clients go where the design does network I/O of its own: probes,
/// endpoint providers and notifications in `drill`, alert webhooks in `apply`, the
/// daemon's API and its status client in `daemon`. S3 requests are opendal's and the AWS
/// SDK's, so `storage` names no HTTP client.
fn crate_homes() -> BTreeMap<&'static str, &'static [&'static str]> {
    const HTTP_CLIENT: &[&str] = &["apply", "drill", "daemon"];
    BTreeMap::from([
        ("opendal", &["storage"][..]),
        // AWS's own libraries: credentials and Object Lock, in one module of `storage`.
        ("aws_sdk_s3", &["storage::aws"][..]),
        ("aws_config", &["storage::aws"][..]),
        ("aws_credential_types", &["storage::aws"][..]),
        ("aws_smithy_types", &["storage::aws"][..]),
        ("reqsign_core", &["storage::aws"][..]),
        ("reqsign_aws_v4", &["storage::aws"][..]),
        ("reqwest", HTTP_CLIENT),
        ("http", &["drill", "daemon"][..]),
        ("hyper", &["daemon"][..]),
        ("hyper_util", &["daemon"][..]),
        ("axum", &["daemon"][..]),
        ("tokio_rustls", &["daemon"][..]),
        ("webpki", &["daemon::client_cert"][..]),
        ("sled", &["daemon"][..]),
        ("tracing_subscriber", &["daemon"][..]),
        ("hickory_net", &["drill"][..]),
        ("hickory_proto", &["drill"][..]),
        ("blake3", &["format"][..]),
        ("fastcdc", &["format"][..]),
        ("chacha20poly1305", &["format"][..]),
        ("aes_gcm", &["format"][..]),
        ("argon2", &["format"][..]),
        ("zstd", &["format"][..]),
        ("ring", &["format", "daemon::auth", "daemon::oidc"][..]),
        ("clap", &["cli"][..]),
        ("clap_complete", &["cli"][..]),
        ("clap_mangen", &["cli"][..]),
        ("indicatif", &["cli"][..]),
        ("cron", &["plan"][..]),
        ("toml", &["plan"][..]),
    ])
}

/// `text` without `//` comments, so prose about a path is not taken for a use of it.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `text` names the external crate `name` as a path root (`name::…`,
/// `use name;`, `use name as …`).
fn names_crate(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = &text[i + name.len()..];
        let root = before.is_none_or(|c| !is_ident(c) && c != ':');
        root && (after.starts_with("::") || (text[..i].ends_with("use ") && !after.starts_with(|c: char| is_ident(c))))
    })
}

/// Whether the module `path` (`storage::aws::lock`) is `home` or inside it.
fn is_inside(path: &str, home: &str) -> bool {
    path == home || path.strip_prefix(home).is_some_and(|rest| rest.starts_with("::"))
}

fn crate_violations(root: &Path) -> Vec<String> {
    let homes = crate_homes();
    let mut out = Vec::new();
    for file in all_files(root) {
        let module = module_path(root, &file).join("::");
        let text = code_only(&fs::read_to_string(&file).unwrap_or_default());
        for (name, home) in &homes {
            if names_crate(&text, name) && !home.iter().any(|h| is_inside(&module, h)) {
                out.push(format!(
                    "{} uses the crate {name} (allowed in {})",
                    file.display(),
                    home.join(", ")
                ));
            }
        }
    }
    out.sort();
    out
}

fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    files
}

/// `src/plan/sections/datasets.rs` → `[plan, sections, datasets]`; `mod.rs` is its folder.
fn module_path(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// Every path rooted at `crate`, `super` or `self` in `text`, with `use` groups
/// (`a::{b, c::d}`) expanded into one path per leaf.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for root in ["crate::", "super::", "self::"] {
        for (i, _) in text.match_indices(root) {
            if text[..i].chars().next_back().is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            let head = vec![root.trim_end_matches(':').to_string()];
            tree(&text[i + root.len()..], head, &mut out);
        }
    }
    out
}

/// Parse one use tree after `prefix::`; returns how many bytes it took.
fn tree(text: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    let mut pos = 0;
    loop {
        let rest = &text[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if let Some(group) = trimmed.strip_prefix('{') {
            pos += 1 + group_items(group, &path, out);
            return pos;
        }
        let ident: String = trimmed.chars().take_while(|c| is_ident(*c)).collect();
        if ident.is_empty() {
            out.push(path);
            return pos;
        }
        path.push(ident.clone());
        pos += ident.len();
        if text[pos..].starts_with("::") {
            pos += 2;
        } else {
            out.push(path);
            return pos;
        }
    }
}

/// The items of a `{…}` group (after the brace); returns the bytes up to and with `}`.
fn group_items(text: &str, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let c = rest.chars().next().unwrap_or('}');
        if c == '}' {
            return pos + 1;
        }
        if c == ',' || c.is_whitespace() || c == '*' {
            pos += c.len_utf8();
        } else if let Some(after) = rest.strip_prefix("as ") {
            let name = after.trim_start();
            pos += rest.len() - name.len() + name.chars().take_while(|c| is_ident(*c)).count();
        } else if is_ident(c) || c == '{' {
            pos += tree(rest, prefix.to_vec(), out).max(1);
        } else {
            pos += c.len_utf8();
        }
    }
    pos
}

/// An absolute module path for `path` as written in a file of module `here`
/// (`is_root`: the file is a `mod.rs`, so `self` is its folder).
fn absolute(path: &[String], here: &[String]) -> Vec<String> {
    let mut at: Vec<String> = here.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            at.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        _ => {}
    }
    while rest.first().map(String::as_str) == Some("super") {
        at.pop();
        rest = &rest[1..];
    }
    at.extend(rest.iter().cloned());
    at
}

/// The source of `src/` outside `#[cfg(test)]` modules, by module path.
fn sources(root: &Path) -> Vec<(PathBuf, Vec<String>, String)> {
    all_files(root)
        .into_iter()
        .filter(|f| !f.to_string_lossy().ends_with("_tests.rs"))
        .map(|f| {
            let text = code_only(&fs::read_to_string(&f).unwrap_or_default());
            let text = without_test_module(&text).to_string();
            let module = module_path(root, &f);
            (f, module, text)
        })
        .collect()
}

/// `text` up to its inline `#[cfg(test)] mod … {`, whose `super` is the file itself.
fn without_test_module(text: &str) -> &str {
    let inline = text.match_indices("#[cfg(test)]\nmod ").find(|(i, _)| {
        let line = text[i + 13..].lines().next().unwrap_or("");
        line.trim_end().ends_with('{')
    });
    inline.map_or(text, |(i, _)| &text[..i])
}

/// Each `pub use crate::…` item: (module path of the name it creates, where it comes from).
fn reexports(root: &Path) -> BTreeMap<Vec<String>, Vec<String>> {
    let mut out = BTreeMap::new();
    for (_, module, text) in sources(root) {
        for (i, _) in text.match_indices("pub use ") {
            let mut found = Vec::new();
            tree(&text[i + 8..], Vec::new(), &mut found);
            for path in found
                .into_iter()
                .filter(|p| p.first().is_some_and(|s| s == "crate" || s == "super"))
            {
                let origin = absolute(&path, &module);
                let mut name = module.clone();
                name.extend(origin.last().cloned());
                out.insert(name, origin);
            }
        }
    }
    out
}

/// Follow re-exports until the item's defining path.
fn origin_of(path: &[String], reexported: &BTreeMap<Vec<String>, Vec<String>>) -> Vec<String> {
    let mut at = path.to_vec();
    for _ in 0..8 {
        match reexported.get(&at) {
            Some(next) if *next != at => at = next.clone(),
            _ => break,
        }
    }
    at
}

/// Re-exports that are part of their module's interface on purpose: value types the
/// layer above needs to call it (a restore's options, a job's live counters, snapshot
/// ids), passed on so the caller names the layer it calls and nothing under it. Any
/// other `pub use` that carries an item across a forbidden line is a violation.
fn offered() -> BTreeSet<&'static str> {
    BTreeSet::from([
        "apply::Progress",
        "apply::observe::Progress",
        "apply::Placement",
        "apply::RestoreOptions",
        "repo::KdfParams",
        "repo::ReportName",
        "repo::SnapshotId",
        "repo::Snapshot",
        "repo::Summary",
        "repo::Verdict",
    ])
}

/// Uses that reach, through another module's `pub use`, a module the user may not name.
fn laundered(root: &Path) -> Vec<String> {
    let table = allowed();
    let offered = offered();
    let reexported = reexports(root);
    let mut out = Vec::new();
    for (file, module, text) in sources(root) {
        let Some(top) = module.first() else { continue };
        for path in paths(&text) {
            let named = absolute(&path, &module);
            let origin = origin_of(&named, &reexported);
            let Some(from) = origin.first() else { continue };
            let names = origin.get(1).is_some_and(|s| s == "names") && from == "format";
            let used = if names { "format::names" } else { from.as_str() };
            let declared = offered.contains(named.join("::").as_str());
            if origin != named && !declared && !may_use(&table, top, used) {
                out.push(format!(
                    "{} uses crate::{}, which is crate::{}",
                    file.display(),
                    named.join("::"),
                    origin.join("::")
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Import edges between sibling files: for each folder, file → the files it names.
fn sibling_graph(root: &Path) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let srcs = sources(root);
    let modules: BTreeSet<Vec<String>> = srcs.iter().map(|(_, m, _)| m.clone()).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (_, module, text) in &srcs {
        for path in paths(text) {
            let mut target = absolute(&path, module);
            while !target.is_empty() && !modules.contains(&target) {
                target.pop();
            }
            let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < module.len() && common < target.len() {
                let (from, to) = (module[common].clone(), target[common].clone());
                let folder = graph.entry(module[..common].to_vec()).or_default();
                folder.entry(from).or_default().insert(to);
            }
        }
    }
    graph
}

/// One circle in `edges`, as `a → b → a`, if there is any.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

/// Every circle among sibling files, one line each (a circle found is cut at its last
/// edge and the search repeated, so each independent circle is named).
fn circles(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (folder, mut edges) in sibling_graph(root) {
        let at = if folder.is_empty() {
            "src".to_string()
        } else {
            format!("src/{}", folder.join("/"))
        };
        while let Some(cycle) = find_cycle(&edges) {
            out.push(format!("{at}: {}", cycle.join(" → ")));
            let (from, to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
            edges.entry(from.clone()).or_default().remove(to);
        }
    }
    out
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let v = violations(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(v.is_empty(), "layering violations:\n{}", v.join("\n"));
}

#[test]
fn external_crates_stay_in_their_modules() {
    let v = crate_violations(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(v.is_empty(), "external crates outside their module:\n{}", v.join("\n"));
}

#[test]
fn no_module_reaches_a_forbidden_layer_through_a_reexport() {
    let v = laundered(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(v.is_empty(), "layering violations through pub use:\n{}", v.join("\n"));
}

#[test]
fn files_of_a_module_do_not_import_each_other_in_a_circle() {
    let v = circles(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(v.is_empty(), "circular imports:\n{}", v.join("\n"));
}

/// Writes `files` (path, text) under a fresh `src`-like folder.
fn tree_of(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn the_checker_notices_a_circle_between_sibling_files() {
    let dir = tree_of(&[
        ("cli/mod.rs", "mod a;\nmod b;\nmod c;\n"),
        ("cli/a.rs", "use super::b::B;\n"),
        ("cli/b.rs", "use super::{c::C, Ctx};\n"),
        (
            "cli/c.rs",
            "fn f() { crate::cli::a::run(); }\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
    ]);
    assert_eq!(circles(dir.path()), vec!["src/cli: a → b → c → a"]);
    fs::write(dir.path().join("cli/c.rs"), "// crate::cli::a::run() once lived here\n").unwrap();
    assert!(circles(dir.path()).is_empty());
}

#[test]
fn the_checker_notices_a_crate_outside_its_module() {
    let dir = tree_of(&[
        (
            "engine/x.rs",
            "fn f() -> [u8; 32] { *blake3::hash(b\"x\").as_bytes() }\n",
        ),
        ("drill/y.rs", "use reqwest::Client;\n"),
        ("cli/z.rs", "use my_blake3::hash; // blake3::hash in a comment\n"),
        ("storage/aws/lock.rs", "use aws_sdk_s3::Client;\n"),
        ("storage/address.rs", "fn f() { aws_config::defaults(); }\n"),
        ("storage/awsome.rs", "use aws_sdk_s3::Client;\n"),
    ]);
    let v = crate_violations(dir.path());
    assert_eq!(v.len(), 3, "{v:#?}");
    assert!(v[0].contains("engine/x.rs uses the crate blake3"), "{v:#?}");
    assert!(v[1].contains("storage/address.rs uses the crate aws_config"), "{v:#?}");
    assert!(v[2].contains("storage/awsome.rs uses the crate aws_sdk_s3"), "{v:#?}");
}

#[test]
fn the_checker_sees_through_a_reexport() {
    let dir = tree_of(&[
        ("engine/mod.rs", "pub struct Progress;\n"),
        ("apply/mod.rs", "pub mod observe;\n"),
        ("apply/observe.rs", "pub use crate::engine::Progress;\n"),
        ("daemon/shared.rs", "use crate::apply::{observe::Progress, run};\n"),
    ]);
    let v = laundered(dir.path());
    assert_eq!(v.len(), 0, "a declared re-export is allowed: {v:#?}");
    fs::write(
        dir.path().join("apply/observe.rs"),
        "pub use crate::engine::{Progress, backup::Stats};\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("daemon/shared.rs"),
        "use crate::apply::observe::{Progress, Stats};\n",
    )
    .unwrap();
    let v = laundered(dir.path());
    assert_eq!(v.len(), 1, "{v:#?}");
    assert!(
        v[0].ends_with("uses crate::apply::observe::Stats, which is crate::engine::backup::Stats"),
        "{v:#?}"
    );
}

#[test]
fn every_declared_reexport_exists() {
    let found = reexports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let names: BTreeSet<String> = found.keys().map(|k| k.join("::")).collect();
    let stale: Vec<_> = offered().into_iter().filter(|o| !names.contains(*o)).collect();
    assert!(stale.is_empty(), "declared re-exports that no longer exist: {stale:?}");
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

/// `cargo install` installs every binary target, so the only one is `lifeboat`: test
/// helpers (such as the drill tests' inference server) live under `tests/`.
#[test]
fn the_only_binary_is_lifeboat() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = toml::from_str(&fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let declared: Vec<String> = manifest
        .get("bin")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("name").and_then(|n| n.as_str()).map(String::from))
        .collect();
    assert_eq!(declared, ["lifeboat"]);
    let mut discovered = Vec::new();
    rust_files(&root.join("src/bin"), &mut discovered);
    assert!(
        discovered.is_empty(),
        "binaries cargo would find and install: {discovered:?}"
    );
}

/// Each Rust file under `dir`, with its text up to the first `#[cfg(test)]`, comment
/// lines left out.
fn product_code(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    files
        .into_iter()
        .map(|f| {
            let text = fs::read_to_string(&f).unwrap_or_default();
            let product = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: Vec<&str> = product.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
            let code = code.join("\n");
            (f.display().to_string(), code)
        })
        .collect()
}

/// Modules other than `repo` and `storage`, which must reach objects through `repo`.
fn above_repo(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.path().is_dir() && !["repo", "storage"].contains(&name.as_str()) {
            out.extend(product_code(&entry.path()));
        }
    }
    out
}

/// Where code above `repo` touches the store: calling `.store()`, or bringing the
/// `Store` trait into scope (which calling its methods on a concrete store needs). A
/// `dyn storage::Store` handle, opened from an address and given to `repo`, is allowed.
fn store_uses(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (file, code) in above_repo(root) {
        if code.contains(".store()") {
            out.push(format!("{file} calls .store()"));
        }
        if names_store_trait(&code) {
            out.push(format!("{file} names the Store trait"));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `storage::Store` other than after `dyn`, or `Store` in a `storage::{…}` import.
fn names_store_trait(code: &str) -> bool {
    let is_word_end = |rest: &str| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_');
    let path = code.match_indices("storage::Store").any(|(i, m)| {
        let before = code[..i].trim_end_matches("crate::");
        is_word_end(&code[i + m.len()..]) && !before.ends_with("dyn ")
    });
    let import = code.match_indices("storage::{").any(|(i, m)| {
        let group = code[i + m.len()..].split('}').next().unwrap_or_default();
        group.split(',').any(|item| {
            let item = item.trim();
            item == "Store" || item.starts_with("Store as ")
        })
    });
    path || import
}

/// String literals in `storage` that are (or begin with) a repository object name.
fn object_names_in_storage(root: &Path) -> Vec<String> {
    const NAMES: [&str; 9] = [
        "\"config\"",
        "\"keys/",
        "\"data/",
        "\"index/",
        "\"snapshots/",
        "\"locks/",
        "\"prune/",
        "\"retention/",
        "\"reports/",
    ];
    let mut out = Vec::new();
    for (file, code) in product_code(&root.join("storage")) {
        for name in NAMES.iter().filter(|n| code.contains(**n)) {
            out.push(format!("{file} names {name}"));
        }
    }
    out
}

/// Byte encoding or decoding of stored objects outside `format`.
fn codecs_outside_format(root: &Path) -> Vec<String> {
    const CODEC: [&str; 2] = ["serde_json::", "from_le_bytes"];
    let mut out = Vec::new();
    for module in ["storage", "repo", "engine", "apply"] {
        for (file, code) in product_code(&root.join(module)) {
            for pattern in CODEC.iter().filter(|p| code.contains(**p)) {
                out.push(format!("{file} uses {pattern}"));
            }
        }
    }
    out
}

#[test]
fn only_repo_talks_to_the_store() {
    let v = store_uses(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(v.is_empty(), "store used above repo:\n{}", v.join("\n"));
}

#[test]
fn storage_knows_no_object_names() {
    let v = object_names_in_storage(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(v.is_empty(), "object names in storage:\n{}", v.join("\n"));
}

#[test]
fn byte_codecs_live_in_format() {
    let v = codecs_outside_format(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(v.is_empty(), "codecs outside format:\n{}", v.join("\n"));
}

#[test]
fn the_object_checks_notice_offenders() {
    let dir = tempfile::tempdir().unwrap();
    for module in ["engine", "storage", "repo"] {
        fs::create_dir_all(dir.path().join(module)).unwrap();
    }
    fs::write(
        dir.path().join("engine/x.rs"),
        "fn f(r: &Repository) { r.store().list(\"data/\"); }\nuse crate::storage::{self, Store};\n\
         /// Store it.\nfn open() -> Arc<dyn storage::Store> { open_store() }\n\
         #[cfg(test)]\nmod tests { use crate::storage::Store; }\n",
    )
    .unwrap();
    fs::write(dir.path().join("storage/y.rs"), "const P: &str = \"snapshots/\";\n").unwrap();
    fs::write(dir.path().join("repo/z.rs"), "let v: T = serde_json::from_slice(b)?;\n").unwrap();
    fs::write(
        dir.path().join("repo/ok.rs"),
        "fn f(s: &dyn Store) { s.list(\"data/\"); }\n",
    )
    .unwrap();
    fs::create_dir_all(dir.path().join("daemon")).unwrap();
    fs::write(
        dir.path().join("daemon/ok.rs"),
        "enum E { Store { path: String } }\nfn f() -> Arc<dyn crate::storage::Store> { open() }\n",
    )
    .unwrap();
    fs::write(dir.path().join("daemon/bad.rs"), "use crate::storage::Store as S;\n").unwrap();
    assert_eq!(
        store_uses(dir.path()),
        vec![
            format!("{} names the Store trait", dir.path().join("daemon/bad.rs").display()),
            format!("{} calls .store()", dir.path().join("engine/x.rs").display()),
            format!("{} names the Store trait", dir.path().join("engine/x.rs").display()),
        ]
    );
    assert_eq!(object_names_in_storage(dir.path()).len(), 1);
    assert_eq!(codecs_outside_format(dir.path()).len(), 1);
}

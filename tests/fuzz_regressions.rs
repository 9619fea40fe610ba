//! Inputs that once broke a decoder stay fixed: every file under
//! `fuzz/regressions/<target>/` (a crash the fuzzer found, kept after the fix) and
//! every generated seed goes through the same target function the fuzzer runs, under
//! a plain `cargo test`. The targets live in `fuzz/src/`; see docs/fuzzing.md.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Count panics on every thread: the daemon behind `api_request` runs its handlers on
/// tokio tasks, whose panics never reach the caller.
fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

fn target(name: &str) -> harness::Target {
    let found = harness::TARGETS.iter().find(|(n, _)| *n == name);
    found
        .unwrap_or_else(|| panic!("fuzz/regressions/{name}: no fuzz target of that name"))
        .1
}

fn regression_files() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).expect("fuzz/regressions exists") {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            out.push((name.clone(), file.unwrap().path()));
        }
    }
    out.sort();
    out
}

/// Run `input` through `target`; the panics it caused on any thread, by name.
fn run(name: &str, what: &str, input: &[u8]) -> Option<String> {
    let before = PANICS.load(Ordering::SeqCst);
    let f = target(name);
    let caught = std::panic::catch_unwind(|| f(input)).is_err();
    // Give the daemon's tasks a moment to finish the connection they were serving.
    if name == "api_request" {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let panicked = caught || PANICS.load(Ordering::SeqCst) != before;
    panicked.then(|| format!("{name}: {what}"))
}

#[test]
fn every_saved_fuzz_crash_and_seed_passes_its_target() {
    count_panics();
    let files = regression_files();
    assert!(!files.is_empty(), "the saved inputs under fuzz/regressions are missing");
    let mut failed: Vec<String> = files
        .iter()
        .filter_map(|(name, path)| run(name, &path.display().to_string(), &std::fs::read(path).unwrap()))
        .collect();
    let seeds = harness::seeds::all();
    assert!(seeds.len() >= harness::TARGETS.len(), "every target has a seed");
    failed.extend(
        seeds
            .iter()
            .filter_map(|(name, seed, bytes)| run(name, &format!("seed {seed}"), bytes)),
    );
    assert!(
        failed.is_empty(),
        "inputs that break a decoder again:\n{}",
        failed.join("\n")
    );
}

#[test]
fn every_target_has_a_seed() {
    let seeds = harness::seeds::all();
    for (name, _) in harness::TARGETS {
        assert!(seeds.iter().any(|(t, _, _)| t == name), "no seed for {name}");
    }
}

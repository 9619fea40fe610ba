//! `restore --delete`: a target that held an older version ends up exactly the
//! snapshot, removing only entries inside the target and never following a symlink
//! planted there; `--dry-run` lists what would go and changes nothing.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use support::*;

/// A repository holding one snapshot of `src` (two files and a folder), and a target
/// that a restore of it filled, then gained stale entries.
fn standby() -> (Repo, PathBuf, PathBuf) {
    let repo = Repo::init(&[]);
    let src = repo.scratch("src");
    write_file(&src.join("shard-1.bin"), &random_bytes(70_000, 1));
    write_file(&src.join("sub/config.json"), b"{\"layers\": 4}");
    repo.backup(&[&src]);
    let target = repo.restore("standby");
    write_file(&target.join("src/shard-2.bin"), b"a shard the snapshot does not have");
    write_file(&target.join("src/old/nested/leftover"), b"stale");
    write_file(&target.join("stray-at-top"), b"stale");
    (repo, src, target)
}

fn restore_delete(repo: &Repo, target: &Path, extra: &[&str]) -> serde_json::Value {
    let out = repo
        .cmd()
        .args(["--json", "restore", "latest", "--delete", "--target"])
        .arg(target)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore --delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn restore_delete_leaves_exactly_the_snapshot() {
    let (repo, src, target) = standby();
    let out = restore_delete(&repo, &target, &[]);
    assert_eq!(
        out["deleted"],
        serde_json::json!(["src/old", "src/shard-2.bin", "stray-at-top"]),
        "{out}"
    );
    let mut expected = manifest(src.parent().unwrap());
    expected.retain(|p, _| p.starts_with("src"));
    assert_same_tree(&expected, &manifest(&target));
}

#[test]
fn restore_delete_removes_a_planted_symlink_not_what_it_points_at() {
    let (repo, _src, target) = standby();
    let outside = repo.scratch("outside");
    write_file(&outside.join("precious"), b"must survive");
    symlink(&outside, target.join("src/escape")).unwrap();
    symlink(outside.join("precious"), target.join("link-to-file")).unwrap();
    let out = restore_delete(&repo, &target, &[]);
    let deleted = out["deleted"].as_array().unwrap();
    assert!(deleted.contains(&"src/escape".into()), "{out}");
    assert!(deleted.contains(&"link-to-file".into()), "{out}");
    assert_eq!(fs::read(outside.join("precious")).unwrap(), b"must survive");
    assert!(fs::symlink_metadata(target.join("src/escape")).is_err());
    assert!(fs::symlink_metadata(target.join("link-to-file")).is_err());
}

#[test]
fn restore_delete_dry_run_lists_and_changes_nothing() {
    let (repo, _src, target) = standby();
    let before = manifest(&target);
    let out = restore_delete(&repo, &target, &["--dry-run"]);
    assert_eq!(out["dry_run"], true, "{out}");
    assert_eq!(
        out["deleted"],
        serde_json::json!(["src/old", "src/shard-2.bin", "stray-at-top"]),
        "{out}"
    );
    assert_eq!(manifest(&target), before, "a dry run changed the target");
}

#[test]
fn restore_delete_with_include_is_refused() {
    let (repo, _src, target) = standby();
    let out = repo
        .cmd()
        .args(["restore", "latest", "--delete", "--include", "src/sub/**", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(target.join("stray-at-top").exists());
}

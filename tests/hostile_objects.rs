//! A hostile or broken object in one region fails only itself.
//!
//! A plan backs up one dataset to two local regions, `a` and `b`. Each test replaces one
//! kind of object in region `a` — with garbage, a truncation, an oversized (sparse) file,
//! or the same object with its fields at their largest values — and runs the real binary:
//! it must never panic or abort (exit 101 or 134), must end with one clear `error:` line
//! naming the object, and region `b` must still restore the data exactly.

mod fs_util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fs_util::{contents, copy_tree};

const PASSWORD: &str = "hostile-objects-test-password";
const DATASET: &str = "docs";
/// Larger than every bound, and sparse, so writing it costs nothing but reading it
/// whole would need 5 GiB of memory.
const OVERSIZED: u64 = 5 << 30;

/// A plan directory with regions `a` and `b` holding two snapshots of `data/`, and a
/// pristine copy of region `a` to put back between cases.
struct Fleet {
    dir: tempfile::TempDir,
    pristine: PathBuf,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = format!(
            "version = 1\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\
             [regions.a]\naddress = \"regions/a\"\ncreate = true\n\
             [regions.b]\naddress = \"regions/b\"\ncreate = true\n\
             [datasets.{DATASET}]\npaths = [\"data\"]\nschedule = \"@hourly\"\nregions = [\"a\", \"b\"]\n\
             rpo = \"2h\"\nretention = {{ keep_last = 5 }}\n"
        );
        std::fs::write(dir.path().join("plan.toml"), plan).expect("plan");
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).expect("data dir");
        std::fs::write(data.join("a.txt"), b"first file\n").expect("file");
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(data.join("sub/big.bin"), big).expect("file");
        let fleet = Fleet {
            pristine: dir.path().join("pristine-a"),
            dir,
        };
        fleet.expect(&["apply", "plan.toml"], 0);
        std::fs::write(data.join("a.txt"), b"first file, changed\n").expect("file");
        fleet.expect(&["apply", "plan.toml", "--force"], 0);
        copy_tree(&fleet.region("a"), &fleet.pristine);
        fleet
    }

    fn region(&self, name: &str) -> PathBuf {
        self.dir.path().join("regions").join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(args)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env_remove("LIFEBOAT_REPO")
            .current_dir(self.dir.path())
            .output()
            .expect("run lifeboat")
    }

    fn expect(&self, args: &[&str], code: i32) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "lifeboat {args:?}\n{}", text(&out));
        out
    }

    /// Put region `a` back as it was after the two backups.
    fn reset(&self) {
        std::fs::remove_dir_all(self.region("a")).expect("remove a");
        copy_tree(&self.pristine, &self.region("a"));
    }

    /// Objects of region `a` under `prefix`, sorted.
    fn objects(&self, prefix: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = contents(&self.region("a").join(prefix))
            .into_iter()
            .filter(|(_, bytes)| bytes.is_some())
            .map(|(rel, _)| self.region("a").join(prefix).join(rel))
            .collect();
        out.sort();
        out
    }

    /// Region `b` restores the dataset exactly, whatever happened to `a`.
    fn assert_b_restores_exactly(&self, case: &str) {
        let target = self.dir.path().join(format!("restored-{case}"));
        let t = target.to_str().expect("utf-8");
        let args = [
            "restore",
            "--plan",
            "plan.toml",
            "--dataset",
            DATASET,
            "--region",
            "b",
            "--target",
            t,
        ];
        self.expect(&args, 0);
        assert_eq!(
            contents(&target.join("data")),
            contents(&self.dir.path().join("data")),
            "{case}"
        );
        std::fs::remove_dir_all(&target).expect("remove restore");
    }
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The command failed with `code`, without a panic or abort, and its last stderr line is
/// one `error:` line naming `name`.
fn assert_clear_error(out: &Output, code: i32, name: &str, case: &str) {
    let status = out.status.code();
    assert!(
        !matches!(status, Some(101 | 134) | None),
        "{case}: crashed\n{}",
        text(out)
    );
    assert_eq!(status, Some(code), "{case}\n{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:") && last.contains(name),
        "{case}: {last:?}\n{}",
        text(out)
    );
    assert!(!stderr.contains("panicked"), "{case}\n{}", text(out));
}

/// The ways one object is replaced; `max_fields` rewrites it with its fields at their
/// largest values (a kind-specific edit of the original bytes).
fn variants(original: &[u8], max_fields: Vec<u8>) -> Vec<(&'static str, Option<Vec<u8>>)> {
    let garbage: Vec<u8> = (0..original.len().max(64)).map(|i| (i * 131 % 251) as u8).collect();
    vec![
        ("garbage", Some(garbage)),
        ("truncated", Some(original[..original.len() / 2].to_vec())),
        ("oversized", None),
        ("max-fields", Some(max_fields)),
    ]
}

/// Write `bytes` at `path`, or make it a sparse file of [`OVERSIZED`] bytes.
fn plant(path: &Path, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => std::fs::write(path, b).expect("write object"),
        None => {
            let f = std::fs::OpenOptions::new().write(true).open(path).expect("open object");
            f.set_len(OVERSIZED).expect("grow object");
        }
    }
}

fn name_of(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).expect("name").to_string()
}

fn json_with(original: &[u8], edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(original).expect("json object");
    edit(&mut v);
    serde_json::to_vec_pretty(&v).expect("json")
}

#[test]
fn a_hostile_config_fails_only_its_region() {
    let fleet = Fleet::new();
    let path = fleet.region("a").join("config");
    let original = std::fs::read(&path).expect("config");
    let mut max = original.clone();
    max[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    for (case, bytes) in variants(&original, max) {
        fleet.reset();
        plant(&path, bytes.as_deref());
        let out = fleet.run(&["snapshots", "--repo", "regions/a"]);
        let code = if case == "max-fields" { 2 } else { 3 };
        let name = if case == "max-fields" { "regions/a" } else { "config" };
        assert_clear_error(&out, code, name, case);
        let out = fleet.run(&["plan", "plan.toml"]);
        assert_eq!(out.status.code(), Some(4), "{case}: plan is degraded\n{}", text(&out));
        fleet.assert_b_restores_exactly(case);
    }
}

#[test]
fn a_hostile_key_object_fails_only_its_region() {
    let fleet = Fleet::new();
    let path = fleet.objects("keys").remove(0);
    let original = std::fs::read(&path).expect("key");
    let max = json_with(&original, |v| {
        v["kdf"]["memory_kib"] = u32::MAX.into();
        v["kdf"]["iterations"] = u32::MAX.into();
        v["kdf"]["parallelism"] = u32::MAX.into();
    });
    for (case, bytes) in variants(&original, max) {
        fleet.reset();
        plant(&path, bytes.as_deref());
        let out = fleet.run(&["snapshots", "--repo", "regions/a"]);
        assert_clear_error(&out, 3, &name_of(&path), case);
        let out = fleet.run(&["plan", "plan.toml"]);
        assert_eq!(out.status.code(), Some(4), "{case}: plan is degraded\n{}", text(&out));
        fleet.assert_b_restores_exactly(case);
    }
}

/// The attack as reported: one more key object with a huge Argon2 memory cost and an
/// old `created`, under its correct name. It must be skipped with a warning.
#[test]
fn a_planted_key_with_huge_kdf_memory_is_skipped_with_a_warning() {
    let fleet = Fleet::new();
    let original = std::fs::read(fleet.objects("keys").remove(0)).expect("key");
    let planted = json_with(&original, |v| {
        v["kdf"]["memory_kib"] = 4_294_967_295u32.into();
        v["created"] = "2001-01-01T00:00:00Z".into();
    });
    let name = blake3::hash(&planted).to_hex().to_string();
    std::fs::write(fleet.region("a").join("keys").join(&name), &planted).expect("plant key");
    let out = fleet.expect(&["--json", "snapshots", "--repo", "regions/a"], 0);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning:") && stderr.contains(&name), "{}", text(&out));
    fleet.expect(&["plan", "plan.toml"], 0);
}

#[test]
fn a_hostile_index_fails_only_its_region() {
    let fleet = Fleet::new();
    let path = fleet.objects("index").remove(0);
    let original = std::fs::read(&path).expect("index");
    let mut max = original.clone();
    let end = max.len();
    max[end - 20..].fill(0xff);
    for (case, bytes) in variants(&original, max) {
        fleet.reset();
        plant(&path, bytes.as_deref());
        let out = fleet.run(&["ls", "--repo", "regions/a", "latest"]);
        assert_clear_error(&out, 3, &name_of(&path), case);
        fleet.assert_b_restores_exactly(case);
    }
}

#[test]
fn a_hostile_pack_fails_only_its_region() {
    let fleet = Fleet::new();
    for (i, path) in fleet.objects("data").into_iter().enumerate() {
        let original = std::fs::read(&path).expect("pack");
        // The trailer names a header as long as the whole pack allows.
        let mut max = original.clone();
        let end = max.len();
        let claim = (end as u32 - 4).to_le_bytes();
        max[end - 4..].copy_from_slice(&claim);
        for (case, bytes) in variants(&original, max) {
            let case = format!("pack {i} {case}");
            fleet.reset();
            plant(&path, bytes.as_deref());
            let out = fleet.run(&["check", "--read-data", "--repo", "regions/a"]);
            assert!(
                !matches!(out.status.code(), Some(101 | 134) | None),
                "{case}\n{}",
                text(&out)
            );
            assert_eq!(out.status.code(), Some(3), "{case}\n{}", text(&out));
            assert!(
                text(&out).contains(&name_of(&path)),
                "{case}: names the pack\n{}",
                text(&out)
            );
            let target = fleet.dir.path().join("from-a");
            let t = target.to_str().expect("utf-8");
            // A restore reads only the ranges it needs: it may succeed on a grown pack,
            // but never crashes.
            let out = fleet.run(&["restore", "--repo", "regions/a", "latest", "--target", t]);
            assert!(
                !matches!(out.status.code(), Some(101 | 134) | None),
                "{case}\n{}",
                text(&out)
            );
            let _ = std::fs::remove_dir_all(&target);
            fleet.assert_b_restores_exactly(&case);
        }
    }
}

#[test]
fn a_hostile_snapshot_is_skipped_and_reported() {
    let fleet = Fleet::new();
    let snapshots = fleet.objects("snapshots");
    assert_eq!(snapshots.len(), 2);
    for path in &snapshots {
        let other = snapshots.iter().find(|p| *p != path).map(|p| name_of(p)).expect("two");
        let original = std::fs::read(path).expect("snapshot");
        let mut max = original.clone();
        let end = max.len();
        max[end - 8..].fill(0xff);
        for (case, bytes) in variants(&original, max) {
            fleet.reset();
            plant(path, bytes.as_deref());
            let out = fleet.run(&["--json", "snapshots", "--repo", "regions/a"]);
            assert_clear_error(&out, 3, &name_of(path), case);
            let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json list");
            let ids: Vec<&str> = listed
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|s| s["id"].as_str())
                .collect();
            assert_eq!(ids, [other.as_str()], "{case}: the other snapshot is listed");
            let target = fleet.dir.path().join("latest-from-a");
            let t = target.to_str().expect("utf-8");
            let out = fleet.run(&["restore", "--repo", "regions/a", "latest", "--target", t]);
            assert_clear_error(&out, 3, &name_of(path), case);
            assert!(
                target.join("data/sub/big.bin").is_file(),
                "{case}: the other snapshot restored"
            );
            std::fs::remove_dir_all(&target).expect("remove restore");
            let out = fleet.run(&["forget", "--repo", "regions/a", "--keep-last", "1", "--dry-run"]);
            assert_clear_error(&out, 3, &name_of(path), case);
            let out = fleet.run(&["check", "--repo", "regions/a"]);
            assert_eq!(out.status.code(), Some(3), "{case}\n{}", text(&out));
            assert!(text(&out).contains(&name_of(path)), "{case}\n{}", text(&out));
            let out = fleet.run(&["plan", "plan.toml"]);
            assert_eq!(out.status.code(), Some(4), "{case}: plan is degraded\n{}", text(&out));
            assert!(text(&out).contains(&name_of(path)), "{case}\n{}", text(&out));
            fleet.assert_b_restores_exactly(case);
        }
    }
}

#[test]
fn hostile_leases_are_ignored_and_removed_by_unlock() {
    let fleet = Fleet::new();
    let lease = serde_json::json!({
        "host": "elsewhere", "pid": 1, "kind": "exclusive", "purpose": "repair",
        "created": "2026-01-01T00:00:00Z", "expires": "9999-12-31T23:59:59Z",
    });
    let original = serde_json::to_vec(&lease).expect("json");
    let locks = fleet.region("a").join("locks");
    for (case, bytes) in variants(&original, original.clone()) {
        fleet.reset();
        std::fs::create_dir_all(&locks).expect("locks dir");
        let path = locks.join("0123456789abcdef0123456789abcdef");
        std::fs::write(&path, b"").expect("lease");
        plant(&path, bytes.as_deref());
        fleet.expect(&["prune", "--repo", "regions/a", "--dry-run"], 0);
        fleet.expect(&["unlock", "--repo", "regions/a"], 0);
        assert!(!path.exists(), "{case}: unlock removes it");
        fleet.assert_b_restores_exactly(case);
    }
}

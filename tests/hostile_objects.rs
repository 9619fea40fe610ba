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
             rpo = \"2h\"\nretention = {{ keep_last = 5 }}\n\
             [playbooks.p]\nrto = \"5m\"\nsteps = [{{ kind = \"probe\", command = [\"true\"] }}]\n"
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

/// Seal `plain` with region `a`'s key, as a host holding the password could.
fn sealed_for_a(fleet: &Fleet, plain: &[u8]) -> Vec<u8> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = lifeboat::storage::open(fleet.region("a").to_str().expect("utf-8")).expect("store");
    let repo = rt
        .block_on(lifeboat::repo::Repository::open(store, PASSWORD.as_bytes()))
        .expect("open a");
    repo.seal(plain, repo.compression())
}

/// What `lifeboat reports --json` said: reports listed as (region, object name),
/// objects skipped as (region, object).
struct Listed {
    reports: Vec<(String, String)>,
    skipped: Vec<(String, String)>,
    out: Output,
}

fn stored_reports(fleet: &Fleet, extra: &[&str]) -> Listed {
    let mut args = vec!["--json", "reports", "--plan", "plan.toml"];
    args.extend(extra);
    let out = fleet.run(&args);
    assert!(
        !matches!(out.status.code(), Some(101 | 134) | None),
        "crashed\n{}",
        text(&out)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reports JSON");
    let pairs = |key: &str, name: &str| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = doc[key]
            .as_array()
            .expect("array")
            .iter()
            .map(|r| {
                (
                    r["region"].as_str().expect("region").into(),
                    r[name].as_str().expect("name").into(),
                )
            })
            .collect();
        v.sort();
        v
    };
    Listed {
        reports: pairs("reports", "name"),
        skipped: pairs("skipped", "object"),
        out,
    }
}

/// Drill and failover reports under `reports/`: whoever can write to one region's
/// storage (or holds the key) replaces one with garbage, a truncation, a 5 GiB sparse
/// file, sealed JSON with absurd values, a huge string, deep nesting or fields that do
/// not give its name, or adds an object whose name no report has. `lifeboat reports`
/// passes over exactly that object with one warning naming it, lists every other
/// report, and ends with exit 3 naming it; region `b` alone is unaffected.
#[test]
fn hostile_report_objects_are_skipped_by_name_and_the_others_listed() {
    let fleet = Fleet::new();
    for _ in 0..2 {
        fleet.expect(&["drill", "--plan", "plan.toml", "p"], 0);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let reports: Vec<PathBuf> = fleet
        .objects("reports")
        .into_iter()
        .filter(|p| name_of(p).ends_with(".json"))
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let clean = stored_reports(&fleet, &[]);
    let all = clean.reports;
    assert_eq!(clean.out.status.code(), Some(0), "{}", text(&clean.out));
    assert_eq!((clean.skipped.len(), all.len()), (0, 4), "{}", text(&clean.out));
    std::fs::remove_dir_all(&fleet.pristine).expect("remove pristine");
    copy_tree(&fleet.region("a"), &fleet.pristine);

    let victim = &reports[0];
    let original = std::fs::read(victim).expect("report");
    let state = fleet.dir.path().join(".lifeboat-state/reports").join(name_of(victim));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("local report")).expect("report json");
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut r = report.clone();
        edit(&mut r);
        sealed_for_a(&fleet, &serde_json::to_vec(&r).expect("json"))
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        (
            "garbage",
            Some((0..original.len()).map(|i| (i * 131 % 251) as u8).collect()),
            "damaged",
        ),
        ("truncated", Some(original[..original.len() / 2].to_vec()), "damaged"),
        ("oversized", None, "bytes"),
        (
            "absurd values",
            Some(edited(&|r| r["outcome"] = "exploded".into())),
            "not a report",
        ),
        (
            "absurd numbers",
            Some(edited(&|r| r["rto"]["measured_ms"] = (-1).into())),
            "not a report",
        ),
        (
            "huge string",
            Some(edited(&|r| r["playbook"] = "p".repeat(40 << 20).into())),
            "bytes long",
        ),
        (
            "deep nesting",
            Some(sealed_for_a(&fleet, deep.as_bytes())),
            "not a report",
        ),
        (
            "not its name",
            Some(edited(&|r| r["playbook"] = "other".into())),
            "name it",
        ),
    ];
    for (case, bytes, why) in cases.drain(..) {
        fleet.reset();
        plant(victim, bytes.as_deref());
        let listed = stored_reports(&fleet, &[]);
        let object = format!("reports/{}", name_of(victim));
        assert_eq!(
            listed.skipped,
            [("a".to_string(), object.clone())],
            "{case}\n{}",
            text(&listed.out)
        );
        let others: Vec<_> = all
            .iter()
            .filter(|(r, n)| !(r == "a" && *n == name_of(victim)))
            .cloned()
            .collect();
        assert_eq!(listed.reports, others, "{case}: every other report is listed");
        assert_clear_error(&listed.out, 3, &object, case);
        let stderr = String::from_utf8_lossy(&listed.out.stderr);
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(warnings.len(), 1, "{case}: one warning\n{}", text(&listed.out));
        assert!(
            warnings[0].contains(&object) && warnings[0].contains(why),
            "{case}: {}",
            warnings[0]
        );
        let only_b = stored_reports(&fleet, &["--region", "b"]);
        assert_eq!(
            only_b.out.status.code(),
            Some(0),
            "{case}: region b alone is unaffected"
        );
        assert_eq!(only_b.reports.len(), 2, "{case}");
    }

    // Objects whose names no report has.
    for name in ["bad name!", "evil\nname.json", "x".repeat(201).as_str()] {
        fleet.reset();
        std::fs::write(fleet.region("a").join("reports").join(name), b"whatever").expect("plant");
        let listed = stored_reports(&fleet, &[]);
        let shown = format!("reports/{name:?}");
        assert_clear_error(&listed.out, 3, &shown, name);
        assert_eq!(listed.reports, all, "{name:?}: every report is listed");
        assert_eq!(listed.skipped, [("a".to_string(), shown.clone())], "{name:?}");
        let stderr = String::from_utf8_lossy(&listed.out.stderr);
        let warning = format!("warning: skipped region a: {shown}: not a report name");
        assert!(stderr.contains(&warning), "{}", text(&listed.out));
    }
}

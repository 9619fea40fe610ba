//! The plan-driven cycle end to end on a copy of the quick start: validate, plan, apply
//! to two local regions, restore by plan, and what happens when a region is lost.

mod fs_util;
use fs_util::{contents, copy_tree};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const PASSWORD: &str = "plan-apply-test-password";
const DATASET: &str = "example-data";

/// A copy of `examples/quickstart.toml` and `examples/data`, so regions are created here.
struct Quickstart {
    dir: tempfile::TempDir,
}

impl Quickstart {
    fn new() -> Quickstart {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(examples.join("quickstart.toml"), dir.path().join("quickstart.toml")).expect("copy plan");
        copy_tree(&examples.join("data"), &dir.path().join("data"));
        Quickstart { dir }
    }

    fn plan(&self) -> PathBuf {
        self.dir.path().join("quickstart.toml")
    }

    fn region(&self, name: &str) -> PathBuf {
        self.dir.path().join("regions").join(name)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
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

    /// Runs `lifeboat ARGS PLAN` and asserts the exit code.
    fn with_plan(&self, cmd: &str, extra: &[&str], code: i32) -> Output {
        let plan = self.plan();
        let mut args = vec![cmd, plan.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        expect_code(self.run(&args), code, &args)
    }

    fn apply_json(&self, extra: &[&str], code: i32) -> Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        parse(&self.with_plan("apply", &args, code))
    }

    fn snapshots_in(&self, region: &str) -> Vec<Value> {
        let repo = self.region(region);
        let args = ["--json", "snapshots", "--repo", repo.to_str().expect("utf-8")];
        let out = expect_code(self.run(&args), 0, &args);
        parse(&out).as_array().expect("a list of snapshots").clone()
    }

    fn restore(&self, extra: &[&str]) -> (PathBuf, Value) {
        let target = self.dir.path().join(format!("restored-{}", extra.join("-")));
        let plan = self.plan();
        let mut args = vec!["--json", "restore", "--plan", plan.to_str().expect("utf-8")];
        args.extend_from_slice(&["--dataset", DATASET, "--target", target.to_str().expect("utf-8")]);
        args.extend_from_slice(extra);
        let out = expect_code(self.run(&args), 0, &args);
        (target, parse(&out))
    }
}

fn expect_code(out: Output, code: i32, args: &[&str]) -> Output {
    assert_eq!(
        out.status.code(),
        Some(code),
        "lifeboat {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn parse(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
}

fn assert_same_tree(expected: &Path, got: &Path) {
    let (want, have) = (contents(expected), contents(got));
    assert!(!want.is_empty(), "{} is empty", expected.display());
    let want_names: Vec<_> = want.keys().collect();
    let have_names: Vec<_> = have.keys().collect();
    assert_eq!(want_names, have_names, "restored names differ");
    assert!(want == have, "restored bytes differ from {}", expected.display());
}

fn regions_of(report: &Value) -> Vec<Value> {
    let datasets = report["datasets"].as_array().expect("datasets");
    assert_eq!(datasets.len(), 1, "{report}");
    assert_eq!(datasets[0]["dataset"], DATASET);
    datasets[0]["regions"].as_array().expect("regions").clone()
}

fn region_row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["region"] == name)
        .unwrap_or_else(|| panic!("no region {name} in {rows:?}"))
}

fn hour_now() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.expect("clock after 1970").as_secs() / 3600
}

#[test]
fn quickstart_validates_applies_once_and_restores_from_either_region() {
    let q = Quickstart::new();
    q.with_plan("validate", &[], 0);
    q.with_plan("plan", &[], 4);
    assert!(!q.region("a").exists(), "plan must not create regions");

    let applied_hour = hour_now();
    let first = q.apply_json(&[], 0);
    for row in regions_of(&first) {
        assert_eq!(row["skipped"], false, "{row}");
        assert!(row["snapshot"].is_string(), "{row}");
        assert!(row["error"].is_null(), "{row}");
    }
    for region in ["a", "b"] {
        assert!(q.region(region).join("config").is_file(), "region {region} not created");
        let snaps = q.snapshots_in(region);
        assert_eq!(snaps.len(), 1, "region {region}: {snaps:?}");
        assert_eq!(snaps[0]["snapshot"]["dataset"], DATASET);
    }

    let status = parse(&q.with_plan("plan", &["--json"], 0));
    assert_eq!(status["violated"], false, "{status}");
    for row in regions_of(&status) {
        assert_eq!(
            (row["reachable"].clone(), row["within_rpo"].clone()),
            (true.into(), true.into()),
            "{row}"
        );
        assert_eq!(row["snapshots"], 1, "{row}");
    }

    let again = q.apply_json(&[], 0);
    // @hourly: an apply in the next hour is due again, so only a same-hour apply must skip.
    let again_rows = regions_of(&again);
    if hour_now() == applied_hour {
        for row in &again_rows {
            assert_eq!(row["skipped"], true, "second apply did work: {row}");
            assert!(row["snapshot"].is_null(), "{row}");
        }
    }
    let made_again = usize::from(region_row(&again_rows, "a")["snapshot"].is_string());
    assert_eq!(q.snapshots_in("a").len(), 1 + made_again);

    let forced = q.apply_json(&["--force"], 0);
    for row in regions_of(&forced) {
        assert_eq!(row["skipped"], false, "{row}");
        assert!(row["snapshot"].is_string(), "{row}");
    }
    assert_eq!(q.snapshots_in("a").len(), 2 + made_again);
    assert_eq!(q.snapshots_in("b").len(), 2 + made_again);

    let (target, _) = q.restore(&[]);
    assert_same_tree(&q.data(), &target.join("data"));
    let (from_b, report) = q.restore(&["--region", "b"]);
    assert_eq!(report["region"], "b", "{report}");
    assert_same_tree(&q.data(), &from_b.join("data"));
}

#[test]
fn both_regions_open_with_the_plan_password_and_check_clean() {
    let q = Quickstart::new();
    q.apply_json(&[], 0);
    for region in ["a", "b"] {
        let repo = q.region(region);
        let args = ["check", "--read-data", "--repo", repo.to_str().expect("utf-8")];
        expect_code(q.run(&args), 0, &args);
    }
    let repo = q.region("a");
    let args = ["snapshots", "--repo", repo.to_str().expect("utf-8")];
    let wrong = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env("LIFEBOAT_PASSWORD", "not-the-password")
        .output()
        .expect("run lifeboat");
    assert_eq!(wrong.status.code(), Some(2), "a wrong password must be refused");
}

#[test]
fn restore_by_plan_uses_region_b_when_region_a_is_gone() {
    let q = Quickstart::new();
    q.apply_json(&[], 0);
    std::fs::remove_dir_all(q.region("a")).expect("remove region a");
    let (target, report) = q.restore(&[]);
    assert_eq!(report["region"], "b", "{report}");
    assert_same_tree(&q.data(), &target.join("data"));
    assert!(!q.region("a").exists(), "restore must not recreate a region");
}

#[test]
fn plan_reports_an_unreachable_region_as_degraded() {
    let q = Quickstart::new();
    q.apply_json(&[], 0);
    std::fs::remove_dir_all(q.region("a")).expect("remove region a");
    let status = parse(&q.with_plan("plan", &["--json"], 4));
    let rows = regions_of(&status);
    assert_eq!(region_row(&rows, "a")["reachable"], false, "{status}");
    assert_eq!(region_row(&rows, "b")["within_rpo"], true, "{status}");
}

#[test]
fn apply_with_region_a_replaced_by_a_file_is_degraded_and_still_backs_up_to_b() {
    let q = Quickstart::new();
    std::fs::create_dir_all(q.dir.path().join("regions")).expect("mkdir regions");
    std::fs::write(q.region("a"), b"not a repository").expect("plain file for region a");
    let report = q.apply_json(&[], 4);
    assert_eq!(
        (report["degraded"].clone(), report["failed"].clone()),
        (true.into(), false.into())
    );
    let rows = regions_of(&report);
    assert!(region_row(&rows, "a")["error"].is_string(), "{report}");
    assert!(region_row(&rows, "b")["snapshot"].is_string(), "{report}");
    assert_eq!(std::fs::read(q.region("a")).expect("still a file"), b"not a repository");
    assert_eq!(q.snapshots_in("b").len(), 1);
    let (target, _) = q.restore(&["--region", "b"]);
    assert_same_tree(&q.data(), &target.join("data"));
}

#[test]
fn apply_with_region_a_unwritable_is_degraded_and_still_backs_up_to_b() {
    let q = Quickstart::new();
    q.apply_json(&[], 0);
    let before = contents(&q.region("a"));
    let report = {
        let _frozen = Unwritable::new(&q.region("a"));
        q.apply_json(&["--force"], 4)
    };
    assert_eq!(report["degraded"], true, "{report}");
    let rows = regions_of(&report);
    assert!(region_row(&rows, "a")["error"].is_string(), "{report}");
    assert!(region_row(&rows, "b")["snapshot"].is_string(), "{report}");
    assert!(contents(&q.region("a")) == before, "region a changed while unwritable");
    assert_eq!(q.snapshots_in("b").len(), 2);
}

#[test]
fn plan_shows_what_a_lagging_region_misses_and_sync_catches_it_up() {
    let q = Quickstart::new();
    q.apply_json(&[], 0);
    // A new incompressible MiB, backed up while region a cannot be written.
    let mut fresh = vec![0u8; 1 << 20];
    rand::RngCore::fill_bytes(
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5),
        &mut fresh,
    );
    std::fs::write(q.data().join("fresh.bin"), &fresh).expect("write fresh data");
    {
        let _frozen = Unwritable::new(&q.region("a"));
        q.apply_json(&["--force"], 4);
    }
    let status = parse(&q.with_plan("plan", &["--json"], 0));
    let rows = regions_of(&status);
    let (a, b) = (region_row(&rows, "a"), region_row(&rows, "b"));
    assert_eq!(
        (a["snapshots"].clone(), b["snapshots"].clone()),
        (1.into(), 2.into()),
        "{status}"
    );
    assert_eq!(
        (a["behind"].clone(), b["behind"].clone()),
        (1.into(), 0.into()),
        "{status}"
    );
    assert_eq!(b["bytes_behind"], 0, "{status}");
    let missed = a["bytes_behind"].as_u64().expect("bytes_behind measured");
    assert!(
        (1 << 20..(1 << 20) + 64 * 1024).contains(&missed),
        "a misses {missed} bytes: {status}"
    );
    let text = String::from_utf8_lossy(&q.with_plan("plan", &[], 0).stdout).into_owned();
    let line = text.lines().find(|l| l.contains(" a ")).expect("a row for region a");
    assert!(line.contains("1 snapshot(s), 1.00 MiB"), "{text}");

    let sync = ["sync", "--plan", q.plan().to_str().expect("utf-8")].map(str::to_string);
    let args: Vec<&str> = sync.iter().map(String::as_str).collect();
    expect_code(q.run(&args), 0, &args);
    let rows = regions_of(&parse(&q.with_plan("plan", &["--json"], 0)));
    let a = region_row(&rows, "a");
    assert_eq!(
        (a["snapshots"].clone(), a["behind"].clone(), a["bytes_behind"].clone()),
        (2.into(), 0.into(), 0.into())
    );
    let (target, _) = q.restore(&["--region", "a"]);
    assert_same_tree(&q.data(), &target.join("data"));
}

/// A folder tree nothing may write to, not even root (`chattr +i`), until dropped.
struct Unwritable(PathBuf);

impl Unwritable {
    fn new(path: &Path) -> Unwritable {
        let (cmd, flag) = if is_root() { ("chattr", "+i") } else { ("chmod", "a-w") };
        let status = Command::new(cmd).args(["-R", flag]).arg(path).status();
        assert!(status.is_ok_and(|s| s.success()), "{cmd} -R {flag} failed");
        Unwritable(path.to_path_buf())
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let (cmd, flag) = if is_root() { ("chattr", "-i") } else { ("chmod", "u+w") };
        let _ = Command::new(cmd).args(["-R", flag]).arg(&self.0).status();
    }
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

#[test]
fn apply_refuses_a_dataset_the_plan_does_not_have() {
    let q = Quickstart::new();
    let out = q.with_plan("apply", &["--dataset", "nope"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    assert!(
        !q.dir.path().join("regions").exists(),
        "a refused apply created regions"
    );
}

#[test]
fn apply_of_a_plan_with_a_syntax_error_creates_nothing() {
    let q = Quickstart::new();
    let plan = std::fs::read_to_string(q.plan()).expect("read plan");
    std::fs::write(q.plan(), plan.replace("[regions.b]", "[regions.b")).expect("break plan");
    let out = q.with_plan("apply", &[], 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("quickstart.toml:"),
        "diagnostic names the file"
    );
    q.with_plan("validate", &[], 2);
    assert!(
        !q.dir.path().join("regions").exists(),
        "a rejected plan created regions"
    );
}

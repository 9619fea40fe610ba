//! `lifeboat forget` end to end: which snapshots a policy keeps and why, the filters
//! that narrow it, dry runs that change nothing, and forget + prune freeing space
//! while every kept snapshot still restores exactly.

mod fs_util;
use fs_util::{contents, copy_tree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

const PASSWORD: &str = "forget-test-password";

/// A repository and a source folder beside it, both in one folder.
struct Repo {
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// One snapshot made by the fixture: its id and a copy of what it was made from.
struct Made {
    id: String,
    copy: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo::empty();
        repo.ok(&["init"]);
        repo
    }

    /// A folder without a repository yet.
    fn empty() -> Repo {
        let temp = tempfile::tempdir().expect("tempdir");
        Repo {
            root: temp.path().to_path_buf(),
            _temp: Some(temp),
        }
    }

    fn path(&self) -> PathBuf {
        self.root.join("repo")
    }

    fn source(&self) -> PathBuf {
        self.root.join("src")
    }

    /// Runs `lifeboat ARGS --repo REPO`.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(args)
            .arg("--repo")
            .arg(self.path())
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .output()
            .expect("run lifeboat")
    }

    fn code(&self, args: &[&str], code: i32) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "lifeboat {args:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> Output {
        self.code(args, 0)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// Writes snapshot `n`'s files (a shared file and one unique to `n`), backs them
    /// up with `flags`, and keeps a copy of the source for later comparison.
    fn backup(&self, n: u64, flags: &[&str]) -> Made {
        let src = self.source();
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(src.join("sub")).expect("mkdir src");
        std::fs::write(src.join("shared.bin"), noise(1, 96 * 1024)).expect("write");
        std::fs::write(src.join("sub").join("unique.bin"), noise(100 + n, 160 * 1024)).expect("write");
        std::fs::write(src.join("n.txt"), format!("snapshot {n}\n")).expect("write");
        let copy = self.root.join(format!("copy-{n}"));
        copy_tree(&src, &copy);
        let mut args = vec!["backup"];
        args.extend_from_slice(flags);
        let src_arg = src.to_str().expect("utf-8").to_string();
        args.push(&src_arg);
        let out = self.json(&args);
        let id = out["id"].as_str().expect("snapshot id").to_string();
        Made { id, copy }
    }

    fn snapshot_ids(&self) -> BTreeSet<String> {
        let list = self.json(&["snapshots"]);
        let list = list.as_array().expect("list");
        list.iter().map(|s| s["id"].as_str().expect("id").to_string()).collect()
    }

    fn restore_matches(&self, made: &Made) {
        let target = self.root.join(format!("restored-{}", &made.id[..12]));
        self.ok(&["restore", &made.id, "--target", target.to_str().expect("utf-8")]);
        assert_eq!(
            contents(&made.copy),
            contents(&target.join("src")),
            "snapshot {}",
            made.id
        );
    }

    fn data_bytes(&self) -> u64 {
        contents(&self.path().join("data"))
            .values()
            .map(|v| v.as_ref().map_or(0, |b| b.len() as u64))
            .sum()
    }

    /// Every object in the repository (except leases) with its bytes.
    fn objects(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut all = contents(&self.path());
        all.retain(|p, _| !p.starts_with("locks"));
        all
    }
}

/// Deterministic incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Six snapshots of dataset `alpha` (the second tagged `release`, the rest `daily`)
/// and two of dataset `beta`, made once per test run and copied for each test.
fn eight_snapshots() -> (Repo, &'static [Made], &'static [Made]) {
    static TEMPLATE: OnceLock<(Repo, Vec<Made>, Vec<Made>)> = OnceLock::new();
    let (template, alpha, beta) = TEMPLATE.get_or_init(|| {
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for old in std::fs::read_dir(scratch).into_iter().flatten().flatten() {
            if old.file_name().to_string_lossy().starts_with("forget-eight-") {
                let _ = std::fs::remove_dir_all(old.path()); // left by an earlier run
            }
        }
        let root = scratch.join(format!("forget-eight-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("mkdir template");
        let repo = Repo { root, _temp: None };
        repo.ok(&["init"]);
        let alpha = (1..=6)
            .map(|n| {
                let tag = if n == 2 { "release" } else { "daily" };
                repo.backup(n, &["--dataset", "alpha", "--tag", tag])
            })
            .collect();
        let beta = (7..=8).map(|n| repo.backup(n, &["--dataset", "beta"])).collect();
        (repo, alpha, beta)
    });
    let repo = Repo::empty();
    copy_tree(&template.path(), &repo.path());
    (repo, alpha, beta)
}

fn ids(made: &[&Made]) -> BTreeSet<String> {
    made.iter().map(|m| m.id.clone()).collect()
}

/// Verdicts from `forget --json`, by snapshot id: (keep, reasons).
fn verdicts(report: &Value) -> BTreeMap<String, (bool, Vec<String>)> {
    let list = report["snapshots"].as_array().expect("snapshots");
    list.iter()
        .map(|v| {
            let reasons = v["reasons"].as_array().expect("reasons");
            let reasons = reasons
                .iter()
                .map(|r| r.as_str().expect("reason").to_string())
                .collect();
            (v["id"].as_str().expect("id").to_string(), (v["keep"] == true, reasons))
        })
        .collect()
}

#[test]
fn forget_without_any_keep_option_is_refused() {
    let repo = Repo::new();
    let made = repo.backup(1, &[]);
    let out = repo.code(&["forget"], 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--keep"),
        "error names the fix"
    );
    repo.code(&["forget", "--dataset", "x", "--prune"], 2);
    assert_eq!(repo.snapshot_ids(), ids(&[&made]));
}

#[test]
fn dry_run_gives_every_snapshot_a_verdict_and_changes_nothing() {
    let (repo, alpha, beta) = eight_snapshots();
    let before = repo.objects();

    let report = repo.json(&["forget", "--keep-last", "2", "--dry-run"]);
    assert_eq!(report["dry_run"], true);
    assert!(report["prune"].is_null(), "{report}");
    for v in report["snapshots"].as_array().expect("snapshots") {
        for field in ["id", "time", "group", "keep", "reasons"] {
            assert!(!v[field].is_null(), "verdict lacks {field}: {v}");
        }
    }
    let got = verdicts(&report);
    assert_eq!(got.len(), 8, "{report}");
    let kept: Vec<&Made> = vec![&alpha[4], &alpha[5], &beta[0], &beta[1]];
    for (id, (keep, reasons)) in &got {
        assert_eq!(*keep, ids(&kept).contains(id), "{id}: {reasons:?}");
        assert_eq!(reasons.is_empty(), !keep, "{id}: {reasons:?}");
        if *keep {
            assert_eq!(reasons, &["last snapshot"]);
        }
    }

    let text = String::from_utf8(repo.ok(&["forget", "--keep-last", "2", "--dry-run"]).stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("keep ")).count(), 4, "{text}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("remove ")).count(), 4, "{text}");
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("keep "))
            .all(|l| l.ends_with("last snapshot"))
    );
    assert_eq!(lines.last(), Some(&"would remove 4 of 8 snapshot(s)"), "{text}");

    repo.json(&["forget", "--keep-last", "1", "--dry-run", "--prune"]);
    assert_eq!(repo.snapshot_ids().len(), 8);
    assert!(repo.objects() == before, "a dry run changed the repository");
}

#[test]
fn keep_last_keeps_the_newest_of_each_dataset() {
    let (repo, alpha, beta) = eight_snapshots();
    let report = repo.json(&["forget", "--keep-last", "1"]);
    assert_eq!(report["dry_run"], false);
    assert_eq!(repo.snapshot_ids(), ids(&[&alpha[5], &beta[1]]));
    let groups: BTreeSet<&str> = report["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|v| v["group"].as_str().expect("group"))
        .collect();
    assert_eq!(groups.len(), 2, "one group per dataset: {groups:?}");
}

#[test]
fn keep_tag_keeps_every_tagged_snapshot_besides_the_last() {
    let (repo, alpha, beta) = eight_snapshots();
    let report = repo.json(&["forget", "--keep-last", "1", "--keep-tag", "release"]);
    let got = verdicts(&report);
    assert_eq!(got[&alpha[1].id], (true, vec!["tagged release".to_string()]));
    assert_eq!(got[&alpha[5].id], (true, vec!["last snapshot".to_string()]));
    assert_eq!(repo.snapshot_ids(), ids(&[&alpha[1], &alpha[5], &beta[1]]));
}

#[test]
fn dataset_and_tag_filters_limit_which_snapshots_are_considered() {
    let (repo, alpha, beta) = eight_snapshots();

    let report = repo.json(&["forget", "--keep-last", "1", "--dataset", "beta"]);
    let got = verdicts(&report);
    assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), ids(&[&beta[0], &beta[1]]));
    let mut left: Vec<&Made> = alpha.iter().collect();
    left.push(&beta[1]);
    assert_eq!(repo.snapshot_ids(), ids(&left));

    let report = repo.json(&["forget", "--keep-last", "1", "--tag", "daily"]);
    let daily: Vec<&Made> = alpha.iter().filter(|m| m.id != alpha[1].id).collect();
    assert_eq!(verdicts(&report).keys().cloned().collect::<BTreeSet<_>>(), ids(&daily));
    assert_eq!(repo.snapshot_ids(), ids(&[&alpha[1], &alpha[5], &beta[1]]));
}

#[test]
fn forget_with_prune_frees_unique_data_and_kept_snapshots_restore_exactly() {
    let repo = Repo::new();
    let made: Vec<Made> = (1..=5).map(|n| repo.backup(n, &["--tag", "t"])).collect();
    let size_before = repo.data_bytes();

    let report = repo.json(&["forget", "--keep-last", "2", "--prune"]);
    let prune = &report["prune"];
    assert!(prune["deleted"].as_u64().expect("deleted") > 0, "{report}");
    assert!(prune["bytes_freed"].as_u64().expect("bytes_freed") > 0, "{report}");
    assert_eq!(repo.snapshot_ids(), ids(&[&made[3], &made[4]]));
    let size_after = repo.data_bytes();
    // Three snapshots each had 160 KiB of their own, incompressible.
    assert!(
        size_after + 3 * 160 * 1024 <= size_before,
        "{size_before} -> {size_after}"
    );

    repo.ok(&["check", "--read-data"]);
    repo.restore_matches(&made[3]);
    repo.restore_matches(&made[4]);
}

//! Prune must never lose data a snapshot needs: not when it repacks, not when a backup
//! runs beside it, not when it is killed at any moment, and not while a backup that
//! started before the condemnation still holds its lease.

mod fs_util;
use fs_util::{contents, copy_tree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use lifeboat::engine::audit;
use lifeboat::engine::prune::{PruneOptions, prune};
use lifeboat::format::audit::{Action, Record};
use lifeboat::format::ids::SnapshotId;
use lifeboat::repo::Repository;
use lifeboat::repo::lock::{LeaseInfo, LeaseKind};
use lifeboat::storage::{ObjectMeta, Store};

const PASSWORD: &str = "prune-test-password";

/// A repository, a source folder and saved copies, in one temporary directory.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new(init_flags: &[&str]) -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let mut args = vec!["init"];
        args.extend_from_slice(init_flags);
        repo.ok(&args);
        repo
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn source(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        cmd.args(args).arg("--repo").arg(self.path());
        cmd.env("LIFEBOAT_PASSWORD", PASSWORD);
        cmd
    }

    fn code(&self, args: &[&str], code: i32) -> Output {
        let out = self.command(args).output().expect("run lifeboat");
        assert_eq!(out.status.code(), Some(code), "lifeboat {args:?}\n{}", describe(&out));
        out
    }

    fn ok(&self, args: &[&str]) -> Output {
        self.code(args, 0)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_slice(&self.ok(&all).stdout).expect("JSON output")
    }

    fn spawn(&self, args: &[&str]) -> Child {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().expect("spawn lifeboat")
    }

    /// Backs up the source folder; returns the snapshot id and a copy of what it saw.
    fn backup(&self, label: &str) -> (String, PathBuf) {
        let copy = self.save_copy(label);
        let out = self.json(&["backup", self.source().to_str().expect("utf-8")]);
        (out["id"].as_str().expect("snapshot id").to_string(), copy)
    }

    /// Puts the source folder back as it was when `copy` was saved.
    fn reset_source(&self, copy: &Path) {
        let _ = std::fs::remove_dir_all(self.source());
        copy_tree(copy, &self.source());
    }

    fn save_copy(&self, label: &str) -> PathBuf {
        let copy = self.dir.path().join("copies").join(label);
        copy_tree(&self.source(), &copy);
        copy
    }

    fn snapshot_ids(&self) -> BTreeSet<String> {
        let list = self.json(&["snapshots"]);
        let list = list.as_array().expect("list");
        list.iter().map(|s| s["id"].as_str().expect("id").to_string()).collect()
    }

    fn restore_matches(&self, id: &str, copy: &Path) {
        let target = self.dir.path().join("restored").join(&id[..16]);
        let _ = std::fs::remove_dir_all(&target);
        self.ok(&["restore", id, "--target", target.to_str().expect("utf-8")]);
        assert!(
            contents(copy) == contents(&target.join("src")),
            "snapshot {id} restored differently"
        );
    }

    fn check_read_data(&self) -> Value {
        let report = self.json(&["check", "--read-data"]);
        assert_eq!(report["errors"], Value::Array(Vec::new()), "{report}");
        report
    }

    fn prune(&self, extra: &[&str]) -> Value {
        let mut args = vec!["prune"];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// Every object in the repository except leases, with its bytes.
    fn objects(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut all = contents(&self.path());
        all.retain(|p, _| !p.starts_with("locks"));
        all
    }

    fn data_bytes(&self) -> u64 {
        let data = contents(&self.path().join("data"));
        data.values().map(|v| v.as_ref().map_or(0, |b| b.len() as u64)).sum()
    }
}

fn describe(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn n(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or_else(|| panic!("no number {field} in {v}"))
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

/// Replaces the source folder with files `name-seed` of `len` bytes for every seed.
fn write_source(src: &Path, seeds: impl IntoIterator<Item = u64>, len: usize) {
    let _ = std::fs::remove_dir_all(src);
    std::fs::create_dir_all(src.join("nested")).expect("mkdir src");
    for seed in seeds {
        let dir = if seed % 4 == 0 {
            src.join("nested")
        } else {
            src.to_path_buf()
        };
        std::fs::write(dir.join(format!("f-{seed}")), noise(seed, len)).expect("write");
    }
}

/// Two snapshots, the first forgotten: its 40 files of 24 KiB are garbage, its other
/// 40 files are shared with the kept one. Returns the kept snapshot and its copy.
fn garbage_beside_a_kept_snapshot(repo: &Repo) -> (String, PathBuf) {
    write_source(&repo.source(), 0..80, 24 * 1024);
    repo.backup("old");
    write_source(&repo.source(), (40..80).chain(200..240), 24 * 1024);
    let kept = repo.backup("kept");
    repo.ok(&["forget", "--keep-last", "1"]);
    kept
}

#[test]
fn prune_with_nothing_to_do_changes_nothing() {
    let repo = Repo::new(&[]);
    write_source(&repo.source(), 0..10, 10_000);
    let (id, copy) = repo.backup("only");
    let before = repo.objects();
    let report = repo.prune(&[]);
    for field in [
        "condemned",
        "repacked",
        "deleted",
        "waiting",
        "resurrected",
        "bytes_freed",
    ] {
        assert_eq!(n(&report, field), 0, "{field}: {report}");
    }
    assert!(
        repo.objects() == before,
        "prune with nothing to do changed the repository"
    );
    repo.restore_matches(&id, &copy);
}

#[test]
fn prune_dry_run_reports_the_work_and_changes_nothing() {
    let repo = Repo::new(&["--pack-size", "1MiB"]);
    garbage_beside_a_kept_snapshot(&repo);
    let before = repo.objects();
    let report = repo.prune(&["--dry-run"]);
    assert_eq!(report["dry_run"], true);
    assert!(n(&report, "condemned") > 0, "{report}");
    assert_eq!(n(&report, "deleted"), 0, "{report}");
    assert!(repo.objects() == before, "a dry run changed the repository");
}

#[test]
fn prune_deletes_data_only_forgotten_snapshots_used() {
    let repo = Repo::new(&[]);
    write_source(&repo.source(), [1, 2, 3], 200 * 1024);
    let (old_id, old_copy) = repo.backup("old");
    write_source(&repo.source(), [1, 4], 200 * 1024);
    let (kept_id, kept_copy) = repo.backup("kept");
    repo.ok(&["forget", "--keep-last", "1"]);
    let size_before = repo.data_bytes();

    let report = repo.prune(&[]);
    assert!(n(&report, "deleted") > 0 && n(&report, "bytes_freed") > 0, "{report}");
    assert!(
        repo.data_bytes() + 2 * 200 * 1024 <= size_before,
        "files 2 and 3 were not freed"
    );
    repo.check_read_data();
    repo.restore_matches(&kept_id, &kept_copy);

    // Backing the old files up again must store files 2 and 3 anew: they were gone.
    repo.reset_source(&old_copy);
    let again = repo.json(&["backup", repo.source().to_str().expect("utf-8")]);
    assert!(
        n(&again["snapshot"]["summary"], "bytes_added") >= 2 * 200 * 1024,
        "{again}"
    );
    let again_id = again["id"].as_str().expect("id");
    assert_ne!(again_id, old_id);
    repo.restore_matches(again_id, &old_copy);
}

#[test]
fn prune_repacks_partly_used_packs_and_keeps_every_used_blob() {
    let repo = Repo::new(&["--pack-size", "1MiB"]);
    write_source(&repo.source(), 0..160, 20 * 1024);
    repo.backup("all");
    write_source(&repo.source(), (0..160).filter(|s| s % 2 == 0), 20 * 1024);
    let (id, copy) = repo.backup("even");
    repo.ok(&["forget", "--keep-last", "1"]);
    let size_before = repo.data_bytes();

    let report = repo.prune(&[]);
    assert!(n(&report, "repacked") > 0, "{report}");
    assert!(n(&report, "deleted") >= n(&report, "repacked"), "{report}");
    assert!(
        repo.data_bytes() + 60 * 20 * 1024 < size_before,
        "half the files were not freed"
    );
    repo.check_read_data();
    repo.restore_matches(&id, &copy);

    let second = repo.prune(&[]);
    assert_eq!((n(&second, "condemned"), n(&second, "repacked")), (0, 0), "{second}");
}

/// Generation `g` of the racing data set: fixed files, files whose content recurs
/// every third generation (so a backup may deduplicate against condemned data) and
/// files new in this generation.
fn generation(g: u64) -> Vec<u64> {
    let fixed = 0..12;
    let recurring = (0..8).map(move |k| 1000 + (g % 3) * 8 + k);
    let fresh = (0..4).map(move |k| 5000 + g * 4 + k);
    fixed.chain(recurring).chain(fresh).collect()
}

#[test]
fn backups_racing_forget_and_prune_leave_every_snapshot_restorable() {
    let repo = Repo::new(&["--pack-size", "1MiB"]);
    let mut copies: BTreeMap<String, PathBuf> = BTreeMap::new();
    write_source(&repo.source(), generation(0), 48 * 1024);
    let (id, copy) = repo.backup("gen-0");
    copies.insert(id, copy);
    // Delays before forget + prune start, so they meet the backup in different phases.
    for (g, delay_ms) in (1..).zip([0u64, 150, 250, 300, 350, 450]) {
        write_source(&repo.source(), generation(g), 48 * 1024);
        let copy = repo.save_copy(&format!("gen-{g}"));
        let backup = repo.spawn(&["--json", "backup", repo.source().to_str().expect("utf-8")]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        repo.ok(&["forget", "--keep-last", "1"]);
        repo.prune(&[]);
        let out = backup.wait_with_output().expect("wait for backup");
        assert!(
            out.status.success(),
            "backup {g} beside prune failed\n{}",
            describe(&out)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).expect("backup JSON");
        copies.insert(doc["id"].as_str().expect("id").to_string(), copy);
    }
    repo.prune(&[]);
    repo.check_read_data();
    let left = repo.snapshot_ids();
    assert!(!left.is_empty());
    for id in left {
        let copy = copies
            .get(&id)
            .unwrap_or_else(|| panic!("snapshot {id} was not made by this test"));
        repo.restore_matches(&id, copy);
    }
}

/// How long the binary takes to start and open the repository (key derivation).
fn open_time(repo: &Repo) -> Duration {
    let start = Instant::now();
    repo.ok(&["snapshots"]);
    start.elapsed()
}

#[test]
fn prune_killed_at_any_moment_leaves_a_consistent_repository() {
    let repo = Repo::new(&["--pack-size", "1MiB"]);
    write_source(&repo.source(), 0..120, 16 * 1024);
    repo.backup("first");
    write_source(
        &repo.source(),
        (0..120).filter(|s| s % 2 == 0).chain(300..330),
        16 * 1024,
    );
    let second = repo.backup("second");
    write_source(
        &repo.source(),
        (0..120).filter(|s| s % 4 == 0).chain(400..420),
        16 * 1024,
    );
    let third = repo.backup("third");
    repo.ok(&["forget", "--keep-last", "2"]);
    let kept = [second, third];

    let open = open_time(&repo).as_millis() as u64;
    let fine = (0..60).map(|k| open * 3 / 4 + k * 15);
    let mut verified = repo.objects();
    let (mut kills, mut completed) = (0, false);
    for delay in [0, 20, 50, 100].into_iter().chain(fine) {
        let mut child = repo.spawn(&["prune"]);
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().expect("poll prune").is_some() {
            let out = child.wait_with_output().expect("prune output");
            assert!(
                out.status.success(),
                "prune failed after earlier kills\n{}",
                describe(&out)
            );
            completed = true;
            break;
        }
        child.kill().expect("SIGKILL prune");
        eprintln!("killed prune after {delay} ms");
        child.wait().expect("reap prune");
        kills += 1;
        repo.ok(&["unlock"]);
        let now = repo.objects();
        if now == verified {
            continue; // killed before it changed anything: this state was verified already
        }
        repo.check_read_data();
        for (id, copy) in &kept {
            repo.restore_matches(id, copy);
        }
        verified = now;
    }
    assert!(kills > 0, "prune was never interrupted");
    assert!(completed, "prune never finished within the delays tried");

    repo.prune(&[]);
    let report = repo.check_read_data();
    assert_eq!(n(&report, "unindexed_packs"), 0, "{report}");
    let last = repo.prune(&[]);
    assert_eq!((n(&last, "condemned"), n(&last, "waiting")), (0, 0), "{last}");
    assert!(
        contents(&repo.path().join("prune")).is_empty(),
        "prune records left behind"
    );
    for (id, copy) in &kept {
        repo.restore_matches(id, copy);
    }
}

/// Writes a lease as a live backup on this host (this test process) would hold it.
fn write_backup_lease(repo: &Repo, name: &str, created: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let info = LeaseInfo {
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .expect("hostname")
            .trim()
            .to_string(),
        pid: std::process::id(),
        kind: LeaseKind::Backup,
        purpose: "backup".into(),
        created,
        expires: chrono::Utc::now() + chrono::Duration::minutes(5),
    };
    let path = repo.path().join("locks").join(name);
    std::fs::create_dir_all(path.parent().expect("locks folder")).expect("mkdir locks");
    std::fs::write(&path, serde_json::to_vec(&info).expect("lease JSON")).expect("write lease");
    path
}

#[test]
fn prune_waits_for_backups_older_than_the_condemnation() {
    let repo = Repo::new(&["--pack-size", "1MiB"]);
    let (id, copy) = garbage_beside_a_kept_snapshot(&repo);
    let older = write_backup_lease(&repo, "older-backup", chrono::Utc::now() - chrono::Duration::seconds(1));
    let size_before = repo.data_bytes();

    let first = repo.prune(&[]);
    assert!(n(&first, "condemned") > 0 && n(&first, "waiting") > 0, "{first}");
    assert_eq!(n(&first, "deleted"), 0, "{first}");
    assert!(
        repo.data_bytes() >= size_before,
        "condemned packs deleted while an older backup runs"
    );
    repo.check_read_data();
    repo.restore_matches(&id, &copy);

    let again = repo.prune(&[]);
    assert_eq!(n(&again, "deleted"), 0, "{again}");
    assert!(n(&again, "waiting") > 0, "{again}");

    // A backup that started after the condemnation cannot have used condemned data.
    std::fs::remove_file(older).expect("end the older backup");
    let newer = write_backup_lease(&repo, "newer-backup", chrono::Utc::now());
    let last = repo.prune(&[]);
    assert!(n(&last, "deleted") > 0 && n(&last, "bytes_freed") > 0, "{last}");
    assert_eq!(n(&last, "waiting"), 0, "{last}");
    std::fs::remove_file(newer).expect("end the newer backup");
    repo.check_read_data();
    repo.restore_matches(&id, &copy);
}

/// A prune killed after writing its replacement index but before deleting the old
/// ones leaves superseded indexes behind; the next prune then deletes the condemned
/// packs. Those old indexes must never come back into force.
#[test]
fn superseded_indexes_left_by_a_killed_prune_never_return() {
    let repo = Repo::new(&[]);
    write_source(&repo.source(), [1, 2], 200 * 1024);
    let (_, old_copy) = repo.backup("old");
    write_source(&repo.source(), [3], 200 * 1024);
    repo.backup("middle");
    repo.ok(&["forget", "--keep-last", "1"]);
    let old_indexes = contents(&repo.path().join("index"));
    repo.prune(&[]);
    for (name, bytes) in &old_indexes {
        let bytes = bytes.as_ref().expect("index object");
        std::fs::write(repo.path().join("index").join(name), bytes).expect("leave old index behind");
    }
    repo.check_read_data();

    write_source(&repo.source(), [4], 200 * 1024);
    repo.backup("new");
    repo.ok(&["forget", "--keep-last", "1"]);
    repo.prune(&[]);
    // The first snapshot's data again: it must be stored anew, not deduplicated
    // against packs that were deleted.
    repo.reset_source(&old_copy);
    let (id, _) = repo.backup("old-again");
    repo.restore_matches(&id, &old_copy);
    repo.check_read_data();
}

/// A store that, the first time leases are listed after snapshots were listed, first
/// lets a waiting backup finish: its snapshot is written and its lease removed.
#[derive(Debug)]
struct BackupFinishesMidPrune {
    inner: Arc<dyn Store>,
    snapshots_listed: AtomicBool,
    finish: Mutex<Option<(String, Bytes, String)>>,
}

#[async_trait::async_trait]
impl Store for BackupFinishesMidPrune {
    fn address(&self) -> &str {
        self.inner.address()
    }
    async fn put(&self, key: &str, data: Bytes) -> lifeboat::storage::Result<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> lifeboat::storage::Result<bool> {
        self.inner.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str) -> lifeboat::storage::Result<Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> lifeboat::storage::Result<Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn list(&self, prefix: &str) -> lifeboat::storage::Result<Vec<ObjectMeta>> {
        if prefix.starts_with("snapshots") {
            self.snapshots_listed.store(true, Ordering::SeqCst);
        }
        let due = prefix.starts_with("locks") && self.snapshots_listed.load(Ordering::SeqCst);
        let finish = if due {
            self.finish.lock().expect("lock").take()
        } else {
            None
        };
        if let Some((snapshot_key, snapshot, lease_key)) = finish {
            self.inner.put(&snapshot_key, snapshot).await?;
            self.inner.delete(&lease_key).await?;
        }
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> lifeboat::storage::Result<()> {
        self.inner.delete(key).await
    }
    async fn stat(&self, key: &str) -> lifeboat::storage::Result<Option<ObjectMeta>> {
        self.inner.stat(key).await
    }
}

/// A backup that started before the condemnation deduplicated against condemned data
/// and finishes while a later prune runs: that prune must keep (or put back) the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_finishing_during_prune_keeps_the_data_it_deduplicated() {
    let repo = Repo::new(&[]);
    write_source(&repo.source(), [1, 2], 200 * 1024);
    let (dedup_id, dedup_copy) = repo.backup("deduplicated");
    write_source(&repo.source(), [3], 200 * 1024);
    repo.backup("other");
    let snapshot_key = format!("snapshots/{dedup_id}");
    let snapshot = std::fs::read(repo.path().join(&snapshot_key)).expect("snapshot object");
    repo.ok(&["forget", "--keep-last", "1"]);
    write_backup_lease(
        &repo,
        "running-backup",
        chrono::Utc::now() - chrono::Duration::seconds(1),
    );
    let first = repo.prune(&[]);
    assert!(n(&first, "waiting") > 0 && n(&first, "deleted") == 0, "{first}");

    // The running backup's snapshot is the forgotten one's twin: same files, same blobs.
    let inner = lifeboat::storage::open(repo.path().to_str().expect("utf-8")).expect("open store");
    let store = Arc::new(BackupFinishesMidPrune {
        inner,
        snapshots_listed: AtomicBool::new(false),
        finish: Mutex::new(Some((
            snapshot_key,
            Bytes::from(snapshot),
            "locks/running-backup".into(),
        ))),
    });
    let opened = Repository::open(store.clone(), PASSWORD.as_bytes())
        .await
        .expect("open repo");
    let result = prune(&opened, &PruneOptions::default()).await;
    assert!(
        store.finish.lock().expect("lock").is_none(),
        "the backup never finished"
    );
    // A backup records the snapshot it wrote in the audit trail; so does this one, or
    // its twin of the forgotten snapshot would read as put back behind Lifeboat's back.
    let id = SnapshotId::from_hex(&dedup_id).expect("snapshot id");
    let record = Record {
        written: vec![id],
        ..audit::event(Action::Backup)
    };
    audit::append(&opened, record).await.expect("audit event");

    tokio::task::spawn_blocking(move || {
        repo.check_read_data();
        repo.restore_matches(&dedup_id, &dedup_copy);
    })
    .await
    .expect("checks");
    result.expect("prune after the backup finished");
}

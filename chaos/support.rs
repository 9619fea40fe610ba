//! Shared helpers for the fault scenarios: a repository on a fault-injecting memory
//! store, a small source tree, and the checks every scenario ends with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat::engine::backup::{BackupOptions, BackupOutcome, backup};
use lifeboat::engine::check::{CheckOptions, CheckReport, check};
use lifeboat::engine::restore::{RestoreOptions, RestoreOutcome, restore};
use lifeboat::engine::{EngineError, Progress};
use lifeboat::format::crypto::KdfParams;
use lifeboat::format::ids::SnapshotId;
use lifeboat::repo::{InitOptions, Repository};
use lifeboat::storage::{FaultStore, OpendalStore, Store};
use tempfile::TempDir;

use crate::tree::{Manifest, assert_same_tree, manifest, random_bytes, write_file};

pub const PASSWORD: &[u8] = b"chaos";

/// Every source file is smaller than the chunker's minimum (512 KiB), so each is one
/// blob, and larger than the pack target, so each data blob closes its own pack: a
/// backup makes several puts whatever the repository's random chunker seed.
const PACK_SIZE: u32 = 256 * 1024;

/// A repository on a `FaultStore` over a fresh memory store, and a source tree.
pub struct Bench {
    pub fault: Arc<FaultStore>,
    pub repo: Repository,
    pub tmp: TempDir,
    /// The directory backed up (`tmp/in/src`).
    pub src: PathBuf,
    /// What an exact restore of `src` reproduces under `<target>/src`.
    pub expected: Manifest,
}

impl Bench {
    pub async fn new() -> Bench {
        static STORES: AtomicU64 = AtomicU64::new(0);
        let address = format!("memory://chaos-{}", STORES.fetch_add(1, Ordering::SeqCst));
        let inner: Arc<dyn Store> = Arc::new(OpendalStore::memory(address).unwrap());
        let fault = Arc::new(FaultStore::new(inner));
        let opts = InitOptions {
            kdf: KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            pack_size: PACK_SIZE,
            ..Default::default()
        };
        let repo = Repository::init(fault.clone(), PASSWORD, &opts).await.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("in/src");
        source_tree(&src);
        let expected = manifest(&tmp.path().join("in"));
        Bench {
            fault,
            repo,
            tmp,
            src,
            expected,
        }
    }

    pub async fn backup(&self) -> Result<BackupOutcome, EngineError> {
        self.backup_with(false).await
    }

    pub async fn backup_with(&self, force_read: bool) -> Result<BackupOutcome, EngineError> {
        let opts = BackupOptions {
            paths: vec![self.src.clone()],
            force_read,
            ..Default::default()
        };
        backup(&self.repo, &opts, progress()).await
    }

    /// Restore `id` into a new directory `name` under the scratch space.
    pub async fn restore(&self, id: &SnapshotId, name: &str) -> (PathBuf, Result<RestoreOutcome, EngineError>) {
        let target = self.tmp.path().join(name);
        let opts = RestoreOptions {
            target: target.clone(),
            include: Vec::new(),
            only: None,
            ..Default::default()
        };
        let out = restore(&self.repo, id, &opts, progress()).await;
        (target, out)
    }

    /// Restore the latest snapshot and assert it reproduces the source exactly.
    pub async fn assert_latest_restores_exactly(&self, name: &str) {
        let (id, _) = self.repo.find_snapshot("latest").await.unwrap();
        let (target, out) = self.restore(&id, name).await;
        out.unwrap();
        assert_same_tree(&self.expected, &manifest(&target));
    }

    /// Check with every pack read; returns the report after asserting it found nothing.
    pub async fn assert_consistent(&self, context: &str) -> CheckReport {
        let opts = CheckOptions {
            read_data_percent: 100.0,
        };
        let report = check(&self.repo, &opts, progress()).await.unwrap();
        assert!(report.is_clean(), "{context}: check found {:?}", report.errors);
        report
    }

    /// The one recovery every scenario demands: faults cleared, the repository checks
    /// clean, a new backup succeeds and restores exactly.
    pub async fn assert_recovers(&self, context: &str) {
        self.fault.clear_faults();
        self.fault.set_latency(std::time::Duration::ZERO);
        self.assert_consistent(context).await;
        let out = self.backup().await;
        assert!(out.is_ok(), "{context}: backup after the fault failed: {:?}", out.err());
        self.assert_latest_restores_exactly(&format!("restore-{}", self.fault.puts_seen()))
            .await;
    }
}

pub fn progress() -> Arc<Progress> {
    Arc::new(Progress::default())
}

/// Four single-blob files, small and empty files, nested and empty dirs, a symlink.
fn source_tree(src: &Path) {
    for (i, len) in [300_000usize, 340_000, 380_000, 420_000].into_iter().enumerate() {
        write_file(&src.join(format!("shard-{i}.bin")), &random_bytes(len, i as u64));
    }
    write_file(&src.join("conf/model.toml"), b"layers = 4\n");
    write_file(&src.join("conf/deep/er/notes.txt"), &random_bytes(5000, 9));
    write_file(&src.join("conf/empty.txt"), b"");
    std::fs::create_dir_all(src.join("empty-dir")).unwrap();
    std::os::unix::fs::symlink("conf/model.toml", src.join("current")).unwrap();
}

/// Which kind of object an error's storage location names (`data/`, `index/`, ...).
pub fn object_kind(err: &EngineError) -> &'static str {
    let text = err.to_string();
    ["locks/", "data/", "index/", "snapshots/", "keys/", "audit/"]
        .into_iter()
        .find(|k| text.contains(&format!("/{k}")))
        .unwrap_or("unknown")
}

//! Prune and check agree on a pack whose every blob another pack already holds: check
//! counts it as not read from, and prune condemns and deletes it.

use std::sync::Arc;

use crate::engine::backup::{BackupOptions, backup};
use crate::engine::check::{CheckOptions, CheckReport, check};
use crate::engine::prune::{PruneOptions, prune};
use crate::format::index::{IndexFile, IndexedPack};
use crate::repo::packer::PackBuilder;
use crate::repo::{Repository, test_init_options};
use crate::storage::OpendalStore;

async fn repo_with_backup(dir: &tempfile::TempDir) -> Repository {
    let store = Arc::new(OpendalStore::memory(format!("prune-{}", rand::random::<u64>())).unwrap());
    let repo = Repository::init(store, b"pw", &test_init_options()).await.unwrap();
    std::fs::write(dir.path().join("weights.bin"), vec![7u8; 300_000]).unwrap();
    let backup_opts = BackupOptions {
        paths: vec![dir.path().to_path_buf()],
        ..Default::default()
    };
    backup(&repo, &backup_opts, Default::default()).await.unwrap();
    repo
}

/// Store every blob of one pack a second time, in a new pack, and index that pack.
async fn copy_a_pack(repo: &Repository) {
    let index = repo.load_index().await.unwrap();
    let (pack, entries) = index.by_pack().into_iter().next().unwrap();
    let bytes = repo.read_pack(&pack, None).await.unwrap();
    let mut builder = PackBuilder::new(repo.config().pack_size as usize);
    for e in &entries {
        let sealed = bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec();
        builder.add(e.kind, e.id, e.raw_length, sealed);
    }
    let copy = builder.finish(repo);
    repo.save_pack(&copy.id, copy.bytes).await.unwrap();
    let file = IndexFile {
        supersedes: Vec::new(),
        packs: vec![IndexedPack {
            id: copy.id,
            blobs: copy.entries,
        }],
    };
    repo.save_index(&file).await.unwrap();
}

async fn checked(repo: &Repository) -> CheckReport {
    let opts = CheckOptions {
        read_data_percent: 100.0,
    };
    let report = check(repo, &opts, Arc::default()).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.errors);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_whose_blobs_another_pack_holds_is_reported_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_backup(&dir).await;
    let packs = repo.list_packs().await.unwrap().len();
    copy_a_pack(&repo).await;
    assert_eq!(checked(&repo).await.unindexed_packs, 1);

    let pruned = prune(&repo, &PruneOptions::default()).await.unwrap();
    assert_eq!((pruned.condemned, pruned.deleted), (1, 1), "{pruned:?}");
    assert_eq!(repo.list_packs().await.unwrap().len(), packs);
    assert_eq!(checked(&repo).await.unindexed_packs, 0);
    let again = prune(&repo, &PruneOptions::default()).await.unwrap();
    assert_eq!(again.condemned, 0, "{again:?}");
}

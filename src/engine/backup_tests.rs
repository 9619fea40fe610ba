//! The no-change path of backup: a folder whose entries all match the parent
//! snapshot keeps the parent's tree id, and any changed field still reaches the root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::engine::backup::{BackupOptions, backup};
use crate::format::ids::BlobId;
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::BlobKind;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::repo::packer::PackBuilder;
use crate::repo::{Repository, test_init_options};
use crate::storage::OpendalStore;

async fn empty_repo() -> Repository {
    let store = Arc::new(OpendalStore::memory(format!("backup-{}", rand::random::<u64>())).unwrap());
    Repository::init(store, b"pw", &test_init_options()).await.unwrap()
}

fn source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in [("a/x.txt", "x"), ("b/y.txt", "y"), ("b/c/z.txt", "z")] {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

async fn backup_of(repo: &Repository, dir: &tempfile::TempDir) -> BlobId {
    let opts = BackupOptions {
        paths: vec![dir.path().to_path_buf()],
        ..Default::default()
    };
    backup(repo, &opts, Default::default()).await.unwrap().snapshot.tree
}

async fn tree(repo: &Repository, id: &BlobId) -> Tree {
    repo.load_tree(&repo.load_index().await.unwrap(), id).await.unwrap()
}

/// The subtree id of entry `name` in tree `id`.
async fn child(repo: &Repository, id: &BlobId, name: &str) -> BlobId {
    let t = tree(repo, id).await;
    let node = t
        .find(std::ffi::OsStr::new(name))
        .unwrap_or_else(|| panic!("no {name}"));
    node.subtree.unwrap()
}

/// The source folder's tree in a snapshot whose root is `root`.
async fn top(repo: &Repository, root: &BlobId) -> BlobId {
    tree(repo, root).await.nodes[0].subtree.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_mode_deep_down_changes_every_tree_above_it_and_no_other() {
    let (repo, dir) = (empty_repo().await, source());
    let first = backup_of(&repo, &dir).await;
    assert_eq!(backup_of(&repo, &dir).await, first, "nothing changed");
    let z = dir.path().join("b/c/z.txt");
    std::fs::set_permissions(&z, std::fs::Permissions::from_mode(0o640)).unwrap();
    let second = backup_of(&repo, &dir).await;
    let (old_top, new_top) = (top(&repo, &first).await, top(&repo, &second).await);
    assert_ne!(old_top, new_top);
    assert_eq!(child(&repo, &old_top, "a").await, child(&repo, &new_top, "a").await);
    let (old_b, new_b) = (child(&repo, &old_top, "b").await, child(&repo, &new_top, "b").await);
    assert_ne!(old_b, new_b);
    let c = tree(&repo, &child(&repo, &new_b, "c").await).await;
    assert_eq!(c.find(std::ffi::OsStr::new("z.txt")).unwrap().mode, 0o640);
}

/// Store `tree` encoded another way than the backup encodes it (with leading white
/// space, as a different or older writer might), in a pack of its own; its new id.
async fn store_pretty(repo: &Repository, tree: &Tree) -> BlobId {
    let bytes = [b"\n ".as_slice(), &tree.clone().encode()].concat();
    let (id, sealed) = repo.seal_blob(&bytes);
    let mut pack = PackBuilder::new(1 << 20);
    pack.add(BlobKind::Tree, id, bytes.len() as u32, sealed);
    let pack = pack.finish(repo);
    repo.save_pack(&pack.id, pack.bytes).await.unwrap();
    let blobs = pack.entries;
    let packs = vec![IndexedPack { id: pack.id, blobs }];
    repo.save_index(&IndexFile {
        supersedes: Vec::new(),
        packs,
    })
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_folder_keeps_the_parent_tree_id_without_encoding_it_again() {
    let (repo, dir) = (empty_repo().await, source());
    let first = backup_of(&repo, &dir).await;
    let encoded = top(&repo, &first).await;
    // A parent whose source folder was stored in an encoding this backup would not
    // produce: only reusing the parent's id can give that id back.
    let pretty = store_pretty(&repo, &tree(&repo, &encoded).await).await;
    assert_ne!(pretty, encoded);
    let mut root = tree(&repo, &first).await;
    root.nodes[0].subtree = Some(pretty);
    let (_, mut snap) = repo.find_snapshot("latest").await.unwrap();
    snap.tree = store_pretty(&repo, &root).await;
    snap.time += chrono::Duration::seconds(1);
    repo.save_snapshot(&snap).await.unwrap();
    let next = backup_of(&repo, &dir).await;
    assert_eq!(top(&repo, &next).await, pretty);
    // Touched, the folder is encoded afresh.
    std::fs::write(dir.path().join("a/x.txt"), "x2").unwrap();
    let changed = top(&repo, &backup_of(&repo, &dir).await).await;
    assert_ne!(changed, pretty);
    assert_ne!(changed, encoded);
}

/// More folders than are listed ahead of the walk, nested, each with a file left out
/// by `*.tmp` and names whose byte order differs from their creation order; and a
/// symlink to one of the folders.
fn wide_source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in (0..12).rev() {
        let folder = dir.path().join(format!("d{i:02}"));
        std::fs::create_dir_all(folder.join("inner")).unwrap();
        for (name, text) in [("inner/f.txt", "f"), ("skip.tmp", "t"), ("b.txt", "b"), ("B.txt", "B")] {
            std::fs::write(folder.join(name), format!("{text}{i}")).unwrap();
        }
    }
    std::os::unix::fs::symlink("d00", dir.path().join("link")).unwrap();
    dir
}

/// Every stored tree below `top` is in the canonical encoding and lists its folder's
/// entries (less `*.tmp`) in name-byte order with their metadata, symlinks not followed.
async fn assert_trees_match_disk(repo: &Repository, top: BlobId, path: &Path) {
    let index = repo.load_index().await.unwrap();
    let mut stack = vec![(top, path.to_path_buf())];
    let mut folders = 0;
    while let Some((id, dir)) = stack.pop() {
        let bytes = repo.read_blob(&index, &id).await.unwrap();
        let mut tree = Tree::decode(&bytes).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| !n.to_string_lossy().ends_with(".tmp"))
            .collect();
        names.sort();
        let stored: Vec<_> = tree.nodes.iter().map(Node::os_name).collect();
        assert_eq!(stored, names, "{}", dir.display());
        for node in &tree.nodes {
            let meta = std::fs::symlink_metadata(dir.join(&node.name)).unwrap();
            assert_eq!((node.inode, node.mtime_ns / 1_000_000_000), (meta.ino(), meta.mtime()));
            match node.kind {
                NodeKind::Dir => stack.push((node.subtree.unwrap(), dir.join(&node.name))),
                NodeKind::Symlink => assert!(meta.file_type().is_symlink() && node.subtree.is_none()),
                NodeKind::File => assert_eq!(node.size, meta.len()),
            }
        }
        assert_eq!(tree.encode(), bytes, "{} stored canonically", dir.display());
        folders += 1;
    }
    assert_eq!(folders, 1 + 12 * 2, "every folder once, the symlink's target not again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walk_stores_every_folder_in_name_order_first_and_unchanged() {
    let (repo, dir) = (empty_repo().await, wide_source());
    let opts = BackupOptions {
        paths: vec![dir.path().to_path_buf()],
        excludes: vec!["*.tmp".into()],
        ..Default::default()
    };
    let quiet = || Arc::new(crate::engine::Progress::unwatched());
    let first = backup(&repo, &opts, Default::default()).await.unwrap().snapshot;
    assert_eq!((first.summary.files_new, first.summary.dirs), (36, 25));
    assert_trees_match_disk(&repo, top(&repo, &first.tree).await, dir.path()).await;
    let again = backup(&repo, &opts, quiet()).await.unwrap().snapshot;
    assert_eq!((again.tree, again.summary.files_unchanged), (first.tree, 36));
    std::fs::write(dir.path().join("d07/inner/f.txt"), "changed").unwrap();
    let changed = backup(&repo, &opts, quiet()).await.unwrap().snapshot;
    assert_eq!(
        (changed.summary.files_changed, changed.summary.files_unchanged),
        (1, 35)
    );
    assert_trees_match_disk(&repo, top(&repo, &changed.tree).await, dir.path()).await;
}

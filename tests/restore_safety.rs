//! Restore writes only inside its target, with the real binary: symlinks in snapshots
//! or planted in the target are replaced, never followed; hostile tree names are damage
//! (exit 3) before anything is written; files are owner-only until complete; a
//! non-empty target is an explicit choice; drills restore beside their target.

mod support;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;

use lifeboat::format::ids::BlobId;
use lifeboat::format::index::{IndexFile, IndexedPack};
use lifeboat::format::pack::BlobKind;
use lifeboat::format::tree::{Node, NodeKind, Tree};
use lifeboat::repo::packer::PackBuilder;
use support::{Repo, lifeboat, write_file};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every path under `dir` (relative), to prove nothing was written there.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.strip_prefix(dir).unwrap().to_path_buf());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(entries(&p).into_iter().map(|c| p.strip_prefix(dir).unwrap().join(c)));
        }
    }
    out.sort();
    out
}

fn restore(repo: &Repo, snapshot: &str, target: &Path, extra: &[&str]) -> Output {
    repo.cmd()
        .args(["restore", snapshot, "--target"])
        .arg(target)
        .args(extra)
        .output()
        .unwrap()
}

fn latest_id(repo: &Repo) -> String {
    let out = repo.cmd().args(["--json", "snapshots"]).output().unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.last().unwrap()["id"].as_str().unwrap().to_string()
}

#[test]
fn symlink_then_directory_snapshots_never_write_outside_the_target() {
    let repo = Repo::init(&[]);
    let (src, outside, target) = (repo.scratch("src"), repo.scratch("outside"), repo.scratch("target"));
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(&src).unwrap();
    symlink(&outside, src.join("x")).unwrap();
    repo.backup(&[&src]);
    let first = latest_id(&repo);
    fs::remove_file(src.join("x")).unwrap();
    write_file(&src.join("x/pwned"), b"#!/bin/sh\necho owned\n");
    fs::set_permissions(src.join("x/pwned"), fs::Permissions::from_mode(0o4755)).unwrap();
    repo.backup(&[&src]);
    let second = latest_id(&repo);

    let out = restore(&repo, &first, &target, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_link(target.join("src/x")).unwrap(), outside);
    let out = restore(&repo, &second, &target, &["--overwrite"]);
    assert!(out.status.success(), "{}", stderr(&out));

    assert_eq!(
        entries(&outside),
        Vec::<PathBuf>::new(),
        "nothing may land outside the target"
    );
    let x = fs::symlink_metadata(target.join("src/x")).unwrap();
    assert!(x.is_dir(), "the symlink is replaced by the snapshot's directory");
    assert_eq!(
        fs::read(target.join("src/x/pwned")).unwrap(),
        b"#!/bin/sh\necho owned\n"
    );
    let mode = fs::metadata(target.join("src/x/pwned")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o4755, "the recorded mode is given, inside the target");

    // And back: the directory (with its file) gives way to the symlink, still not followed.
    let out = restore(&repo, &first, &target, &["--overwrite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_link(target.join("src/x")).unwrap(), outside);
    assert_eq!(entries(&outside), Vec::<PathBuf>::new());
}

#[test]
fn symlinks_planted_deep_in_the_target_are_replaced_not_followed() {
    let repo = Repo::init(&[]);
    let (src, outside, target) = (repo.scratch("src"), repo.scratch("outside"), repo.scratch("target"));
    write_file(&src.join("a/b/c/deep.txt"), b"deep content");
    write_file(&src.join("a/top.txt"), b"top content");
    repo.backup(&[&src]);
    let out = restore(&repo, "latest", &target, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    write_file(&outside.join("victim.txt"), b"must stay");
    fs::remove_dir_all(target.join("src/a/b")).unwrap();
    symlink(&outside, target.join("src/a/b")).unwrap();
    fs::remove_file(target.join("src/a/top.txt")).unwrap();
    symlink(outside.join("victim.txt"), target.join("src/a/top.txt")).unwrap();

    let out = restore(&repo, "latest", &target, &["--overwrite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(&outside), vec![PathBuf::from("victim.txt")]);
    assert_eq!(fs::read(outside.join("victim.txt")).unwrap(), b"must stay");
    assert!(fs::symlink_metadata(target.join("src/a/b")).unwrap().is_dir());
    assert_eq!(fs::read(target.join("src/a/b/c/deep.txt")).unwrap(), b"deep content");
    assert!(fs::symlink_metadata(target.join("src/a/top.txt")).unwrap().is_file());
    assert_eq!(fs::read(target.join("src/a/top.txt")).unwrap(), b"top content");
}

#[test]
fn a_non_empty_target_needs_overwrite() {
    let repo = Repo::init(&[]);
    let (src, target) = (repo.scratch("src"), repo.scratch("target"));
    write_file(&src.join("f.txt"), b"from the snapshot");
    repo.backup(&[&src]);
    write_file(&target.join("src/f.txt"), b"already here");

    let out = restore(&repo, "latest", &target, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error:") && err.contains(target.to_str().unwrap()) && err.contains("--overwrite"));
    assert_eq!(fs::read(target.join("src/f.txt")).unwrap(), b"already here");

    // The same by plan.
    let plan = repo.scratch("plan.toml");
    let body = format!(
        "version = 1\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n[regions.a]\naddress = \"{}\"\n\
         [datasets.d]\npaths = [\"{}\"]\nschedule = \"@hourly\"\nregions = [\"a\"]\nrpo = \"2h\"\n\
         retention = {{ keep_last = 5 }}\n",
        repo.path.display(),
        src.display()
    );
    fs::write(&plan, body).unwrap();
    lifeboat().arg("apply").arg(&plan).assert().success();
    let by_plan = |extra: &[&str]| {
        lifeboat()
            .args(["restore", "--dataset", "d", "--plan"])
            .arg(&plan)
            .arg("--target")
            .arg(&target)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = by_plan(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--overwrite"), "{}", stderr(&out));
    assert_eq!(fs::read(target.join("src/f.txt")).unwrap(), b"already here");
    let out = by_plan(&["--overwrite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(target.join("src/f.txt")).unwrap(), b"from the snapshot");
}

/// Mode bits of every file and directory under `dir`.
fn modes(dir: &Path) -> Vec<(PathBuf, u32, bool)> {
    entries(dir)
        .into_iter()
        .map(|p| {
            let m = fs::symlink_metadata(dir.join(&p)).unwrap();
            (p, m.mode() & 0o7777, m.is_dir())
        })
        .collect()
}

fn source_with_modes(repo: &Repo) -> PathBuf {
    let src = repo.scratch("src");
    for (name, seed, mode) in [
        ("a/open.bin", 1, 0o644),
        ("b/secret.bin", 2, 0o600),
        ("c/tool", 3, 0o4755),
    ] {
        write_file(&src.join(name), &support::random_bytes(3 << 20, seed));
        fs::set_permissions(src.join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    src
}

/// The pack files holding the latest snapshot's trees.
fn tree_packs(repo: &Repo) -> Vec<PathBuf> {
    let (rt, r) = repo.open();
    rt.block_on(async {
        let index = r.load_index().await.unwrap();
        let (_, snap) = r.find_snapshot("latest").await.unwrap();
        let (mut out, mut stack) = (Vec::new(), vec![snap.tree]);
        while let Some(id) = stack.pop() {
            let pack = index.pack_id(index.get(&id).unwrap().pack).to_hex();
            out.push(repo.path.join("data").join(&pack[..2]).join(&pack));
            let tree = r.load_tree(&index, &id).await.unwrap();
            stack.extend(tree.nodes.iter().filter_map(|n| n.subtree));
        }
        out
    })
}

#[test]
fn an_aborted_restore_leaves_only_owner_only_files() {
    let repo = Repo::init(&["--pack-size", "1MiB"]);
    let src = source_with_modes(&repo);
    repo.backup(&[&src]);
    // A data pack (holding no tree, so planning succeeds) that cannot be read at all,
    // not merely missing, stops the restore after other files were written.
    // Any pack will do: packs mix the blobs of several files and the directory trees
    // finished between them, so a file's first chunk may share its pack with a tree;
    // 9 MiB of data in 1 MiB packs leaves several packs with file data only.
    let trees = tree_packs(&repo);
    let pack = support::listing(&repo.path.join("data"))
        .into_keys()
        .map(|p| repo.path.join("data").join(p))
        .find(|p| !trees.contains(p))
        .expect("a pack without trees");
    fs::remove_file(&pack).unwrap();
    fs::create_dir(&pack).unwrap();

    let target = repo.scratch("target");
    let out = restore(&repo, "latest", &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let found = modes(&target);
    assert_eq!(found.iter().filter(|(_, _, dir)| !dir).count(), 3, "{found:?}");
    for (path, mode, dir) in found {
        let wanted = if dir { 0o700 } else { 0o600 };
        assert_eq!(mode, wanted, "{} is {mode:o} in an unfinished restore", path.display());
    }
}

#[test]
fn a_damaged_blob_removes_its_file_and_the_rest_get_their_modes_only_when_complete() {
    let repo = Repo::init(&[]);
    let src = source_with_modes(&repo);
    repo.backup(&[&src]);
    let (pack, offset, _) = repo.locate_first_chunk(Path::new("src/c/tool"));
    support::flip_byte(&pack, offset + 40);

    let target = repo.scratch("target");
    let out = restore(&repo, "latest", &target, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("c/tool"), "{}", stderr(&out));
    assert!(!target.join("src/c/tool").exists(), "a damaged file is never left");
    let mode = |p: &str| fs::metadata(target.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("src/a/open.bin"), 0o644);
    assert_eq!(mode("src/b/secret.bin"), 0o600);
}

/// Seal `trees` (each a list of nodes) into one pack, index it, and store a snapshot
/// whose root holds `src` pointing at the first tree. Returns the snapshot id (hex).
fn hostile_snapshot(repo: &Repo, content: &Node, names: &[&[u8]]) -> String {
    let (rt, r) = repo.open();
    rt.block_on(async {
        let mut nodes: Vec<Node> = names
            .iter()
            .map(|n| {
                let mut node = content.clone();
                let os = std::ffi::OsStr::from_bytes(n);
                let fresh = Node::new(os, NodeKind::File);
                (node.name, node.name_hex) = (fresh.name, fresh.name_hex);
                node
            })
            .collect();
        let mut builder = PackBuilder::new(1 << 20);
        let mut seal = |json: Vec<u8>| -> BlobId {
            let (id, sealed) = r.seal_blob(&json);
            builder.add(BlobKind::Tree, id, json.len() as u32, sealed);
            id
        };
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let inner = seal(serde_json::to_vec(&Tree { nodes }).unwrap());
        let mut dir = Node::new(std::ffi::OsStr::new("src"), NodeKind::Dir);
        dir.mode = 0o755;
        dir.subtree = Some(inner);
        let root = seal(serde_json::to_vec(&Tree { nodes: vec![dir] }).unwrap());
        let pack = builder.finish(&r);
        r.save_pack(&pack.id, pack.bytes).await.unwrap();
        let packs = vec![IndexedPack {
            id: pack.id,
            blobs: pack.entries,
        }];
        r.save_index(&IndexFile {
            supersedes: vec![],
            packs,
        })
        .await
        .unwrap();
        let (_, mut snap) = r.find_snapshot("latest").await.unwrap();
        snap.tree = root;
        snap.time += chrono::Duration::seconds(1);
        r.save_snapshot(&snap).await.unwrap().to_hex()
    })
}

#[test]
fn hostile_tree_names_are_damage_naming_snapshot_and_path_and_nothing_is_written() {
    let repo = Repo::init(&[]);
    let (src, outside) = (repo.scratch("src"), repo.scratch("outside"));
    write_file(&src.join("payload"), b"written by a hostile tree");
    fs::create_dir_all(&outside).unwrap();
    repo.backup(&[&src]);
    let content = {
        let (rt, r) = repo.open();
        rt.block_on(async {
            let index = r.load_index().await.unwrap();
            let (_, snap) = r.find_snapshot("latest").await.unwrap();
            let root = r.load_tree(&index, &snap.tree).await.unwrap();
            let inner = r.load_tree(&index, &root.nodes[0].subtree.unwrap()).await.unwrap();
            inner.nodes[0].clone()
        })
    };
    let escape = outside.join("x");
    let hostile: [&[u8]; 7] = [
        b"..",
        b".",
        b"",
        b"a/b",
        escape.as_os_str().as_bytes(),
        b"../../outside/y",
        b"x\0y",
    ];
    for name in hostile {
        let id = hostile_snapshot(&repo, &content, &[b"fine", name]);
        let target = repo.scratch(&format!("target-{}", &id[..8]));
        for args in [
            vec!["restore", id.as_str(), "--target", target.to_str().unwrap()],
            vec!["ls", id.as_str()],
        ] {
            let out = repo.cmd().args(&args).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(3), "{args:?} with name {name:?}: {err}");
            assert!(err.contains(&id[..8]) && err.contains("at /src"), "{args:?}: {err}");
        }
        assert!(
            !target.exists() || entries(&target).is_empty(),
            "{:?}",
            entries(&target)
        );
        assert_eq!(entries(&outside), Vec::<PathBuf>::new(), "name {name:?}");
        assert!(!repo.scratch("y").exists());
    }
    let out = repo.cmd().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(report.matches("at /src").count(), hostile.len(), "{report}");
}

/// A plan with one local region, one dataset of `src`, and a playbook that restores it
/// into `target` and checks a file came back.
fn drill_plan(repo: &Repo, src: &Path, target: &Path) -> PathBuf {
    let plan = repo.scratch("plan.toml");
    let body = format!(
        r#"version = 1
[key]
env = "LIFEBOAT_PASSWORD"
[regions.a]
address = "{repo}"
[datasets.d]
paths = ["{src}"]
schedule = "@hourly"
regions = ["a"]
rpo = "2h"
retention = {{ keep_last = 5 }}
[playbooks.p]
rto = "5m"
steps = [
  {{ kind = "restore", dataset = "d", region = "a", target = "{target}" }},
  {{ kind = "probe", command = ["test", "-s", "{target}/src/sub/file.txt"] }},
]
"#,
        repo = repo.path.display(),
        src = src.display(),
        target = target.display()
    );
    fs::write(&plan, body).unwrap();
    plan
}

fn drill(repo: &Repo, plan: &Path) {
    let out = lifeboat()
        .args(["drill", "--state"])
        .arg(repo.scratch("state"))
        .arg("--plan")
        .arg(plan)
        .arg("p")
        .output()
        .unwrap();
    assert!(out.status.success(), "drill: {}", stderr(&out));
}

#[test]
fn two_drills_with_a_symlink_planted_between_never_write_outside() {
    let repo = Repo::init(&[]);
    let (src, outside) = (repo.scratch("src"), repo.scratch("outside"));
    let target = repo.scratch("serving/models");
    fs::create_dir_all(&outside).unwrap();
    write_file(&src.join("sub/file.txt"), b"model v1");
    symlink(&outside, src.join("x")).unwrap();
    let plan = drill_plan(&repo, &src, &target);
    lifeboat().arg("apply").arg(&plan).assert().success();
    drill(&repo, &plan);
    assert_eq!(fs::read_link(target.join("src/x")).unwrap(), outside);
    let first_inode = fs::metadata(&target).unwrap().ino();

    // The data changes (x becomes a directory), and something in the served tree plants
    // a symlink where the snapshot has a directory.
    fs::remove_file(src.join("x")).unwrap();
    write_file(&src.join("x/pwned"), b"planted");
    write_file(&src.join("sub/file.txt"), b"model v2");
    lifeboat().args(["apply", "--force"]).arg(&plan).assert().success();
    fs::remove_dir_all(target.join("src/sub")).unwrap();
    symlink(&outside, target.join("src/sub")).unwrap();
    drill(&repo, &plan);

    assert_eq!(
        entries(&outside),
        Vec::<PathBuf>::new(),
        "nothing may land outside the target"
    );
    assert!(fs::symlink_metadata(target.join("src/x")).unwrap().is_dir());
    assert!(fs::symlink_metadata(target.join("src/sub")).unwrap().is_dir());
    assert_eq!(fs::read(target.join("src/sub/file.txt")).unwrap(), b"model v2");
    assert_ne!(
        fs::metadata(&target).unwrap().ino(),
        first_inode,
        "a fresh directory was swapped in"
    );
    let left: Vec<PathBuf> = entries(&repo.scratch("serving"));
    assert!(
        left.iter().all(|p| p.starts_with("models")),
        "only the target remains: {left:?}"
    );
}

#[test]
fn verify_restores_into_a_fresh_private_directory_and_removes_it() {
    let repo = Repo::init(&[]);
    let src = repo.scratch("src");
    write_file(&src.join("sub/file.txt"), b"verified");
    let scratch = repo.scratch("scratch");
    let plan = drill_plan(&repo, &src, &repo.scratch("unused"));
    let body = fs::read_to_string(&plan).unwrap();
    let verify = format!(
        "[verify.v]\nschedule = \"@daily\"\nscratch = \"{}\"\n",
        scratch.display()
    );
    fs::write(&plan, body + &verify).unwrap();
    lifeboat().arg("apply").arg(&plan).assert().success();
    // Something planted in the shared scratch space is neither used nor followed.
    fs::create_dir_all(&scratch).unwrap();
    fs::create_dir_all(repo.scratch("outside")).unwrap();
    symlink(repo.scratch("outside"), scratch.join("planted")).unwrap();
    let out = lifeboat().args(["verify", "--plan"]).arg(&plan).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        entries(&scratch),
        vec![PathBuf::from("planted")],
        "the run's directory is removed"
    );
    assert_eq!(entries(&repo.scratch("outside")), Vec::<PathBuf>::new());
}

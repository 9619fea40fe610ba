//! Shared helpers for the command-line tests: a repository in a temporary directory,
//! the real `lifeboat` binary pointed at it, random data, and an exact description
//! of a directory tree (bytes, modes, mtimes, symlink targets) to compare restores.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use lifeboat::format::ids::BlobId;
use lifeboat::format::tree::NodeKind;
use lifeboat::repo::Repository;
use rand::{RngCore, SeedableRng, rngs::StdRng};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";

/// The `lifeboat` binary with a password and nothing inherited from the caller's environment.
pub fn lifeboat() -> Command {
    let mut cmd = Command::cargo_bin("lifeboat").unwrap();
    cmd.env("LIFEBOAT_PASSWORD", PASSWORD)
        .env_remove("LIFEBOAT_REPO")
        .env_remove("LIFEBOAT_NEW_PASSWORD")
        .env_remove("LIFEBOAT_TO_PASSWORD")
        .arg("--quiet");
    cmd
}

/// A repository directory (`root/repo`) next to scratch space for sources and restores.
pub struct Repo {
    pub tmp: TempDir,
    pub path: PathBuf,
}

impl Repo {
    /// A fresh repository created with `lifeboat init` and `extra` arguments.
    pub fn init(extra: &[&str]) -> Repo {
        let repo = Repo::uninitialised();
        repo.cmd().arg("init").args(extra).assert().success();
        repo
    }

    pub fn uninitialised() -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("repo");
        Repo { tmp, path }
    }

    /// A scratch path beside the repository.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `lifeboat` aimed at this repository (through `LIFEBOAT_REPO`).
    pub fn cmd(&self) -> Command {
        let mut cmd = lifeboat();
        cmd.env("LIFEBOAT_REPO", &self.path);
        cmd
    }

    /// Run `backup --json` of `paths` and return the snapshot summary.
    pub fn backup(&self, paths: &[&Path]) -> serde_json::Value {
        let out = self.cmd().arg("--json").arg("backup").args(paths).output().unwrap();
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["snapshot"]["summary"].clone()
    }

    /// Restore `latest` into a new scratch directory called `name`, which is returned.
    pub fn restore(&self, name: &str) -> PathBuf {
        let target = self.scratch(name);
        self.cmd()
            .args(["restore", "latest", "--target"])
            .arg(&target)
            .assert()
            .success();
        target
    }

    /// Object paths (relative to the repository root) under `prefix`, sorted.
    pub fn objects(&self, prefix: &str) -> Vec<PathBuf> {
        let base = self.path.join(prefix);
        listing(&base).into_keys().map(|p| Path::new(prefix).join(p)).collect()
    }

    /// Total size of the packs under `data/`.
    pub fn data_size(&self) -> u64 {
        listing(&self.path.join("data")).values().map(|(len, _)| len).sum()
    }

    /// Open the repository through the library, for tests that must find one blob.
    pub fn open(&self) -> (tokio::runtime::Runtime, Repository) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store = lifeboat::storage::open(self.path.to_str().unwrap()).unwrap();
        let repo = rt.block_on(Repository::open(store, PASSWORD.as_bytes())).unwrap();
        (rt, repo)
    }

    /// The pack file and byte range holding the first chunk of `file` (a path inside
    /// the latest snapshot, e.g. `src/big.bin`).
    pub fn locate_first_chunk(&self, file: &Path) -> (PathBuf, u64, u64) {
        let (rt, repo) = self.open();
        rt.block_on(async {
            let index = repo.load_index().await.unwrap();
            let (_, snap) = repo.find_snapshot("latest").await.unwrap();
            let mut tree_id: BlobId = snap.tree;
            let parts: Vec<_> = file.iter().collect();
            for (i, part) in parts.iter().enumerate() {
                let tree = repo.load_tree(&index, &tree_id).await.unwrap();
                let node = tree
                    .find(part)
                    .unwrap_or_else(|| panic!("{part:?} not in snapshot"))
                    .clone();
                if i + 1 < parts.len() {
                    tree_id = node.subtree.unwrap();
                    continue;
                }
                assert_eq!(node.kind, NodeKind::File);
                let loc = index.get(&node.content[0]).unwrap();
                let pack = index.pack_id(loc.pack).to_hex();
                let path = self.path.join("data").join(&pack[..2]).join(&pack);
                return (path, loc.offset as u64, loc.length as u64);
            }
            unreachable!("empty path")
        })
    }
}

/// `len` bytes of seeded random data.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}

pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap();
}

/// Invert one byte of a file in place.
pub fn flip_byte(path: &Path, offset: u64) {
    let data = fs::read(path).unwrap();
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[!data[offset as usize]]).unwrap();
}

/// Every regular file under `dir` (recursively) with its size and mtime; empty if `dir` is missing.
pub fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let key = p.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(key, (m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec()));
            }
        }
    }
    out
}

/// What a restore must reproduce of one directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        mode: u32,
        mtime_ns: i64,
        len: u64,
        hash: [u8; 32],
    },
    Dir {
        mode: u32,
        mtime_ns: i64,
    },
    Symlink {
        target: OsString,
    },
}

/// An exact description of the tree under `root`, keyed by path relative to it.
pub type Manifest = BTreeMap<PathBuf, Entry>;

pub fn manifest(root: &Path) -> Manifest {
    let mut out = Manifest::new();
    add_entries(root, root, &mut out);
    out
}

fn add_entries(root: &Path, dir: &Path, out: &mut Manifest) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        let mtime_ns = m.mtime() * 1_000_000_000 + m.mtime_nsec();
        let entry = if m.file_type().is_symlink() {
            Entry::Symlink {
                target: fs::read_link(&p).unwrap().into_os_string(),
            }
        } else if m.is_dir() {
            add_entries(root, &p, out);
            Entry::Dir { mode, mtime_ns }
        } else {
            let data = fs::read(&p).unwrap();
            Entry::File {
                mode,
                mtime_ns,
                len: data.len() as u64,
                hash: *blake3::hash(&data).as_bytes(),
            }
        };
        out.insert(p.strip_prefix(root).unwrap().to_path_buf(), entry);
    }
}

/// Assert two manifests are identical, naming the first differing path.
pub fn assert_same_tree(expected: &Manifest, actual: &Manifest) {
    for (path, want) in expected {
        match actual.get(path) {
            Some(got) => assert_eq!(got, want, "{} differs after restore", path.display()),
            None => panic!("{} is missing after restore", path.display()),
        }
    }
    let extra: Vec<_> = actual.keys().filter(|p| !expected.contains_key(*p)).collect();
    assert!(extra.is_empty(), "unexpected entries after restore: {extra:?}");
}

/// Whether this process runs as root (root reads files whatever their mode).
pub fn running_as_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Back `src` up with `repo`, which must succeed, and return the `warning:` lines.
pub fn backup_warnings(repo: &Repo, src: &Path) -> Vec<String> {
    let out = repo.cmd().arg("backup").arg(src).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(String::from)
        .collect()
}

/// `n` float32 values uniform in [1, 2): the sign and exponent byte is always 0x3F, the
/// next byte holds 7 random bits and the two low bytes are noise, so the data holds
/// 23 bits in every 32 (71.9%). Byte planes store it in about that; zstd on the byte
/// stream cannot go below 6.75 bits a byte (84%), the entropy of its byte histogram.
pub fn unit_range_floats(n: usize, seed: u64) -> Vec<u8> {
    random_bytes(n * 4, seed)
        .chunks_exact(4)
        .flat_map(|b| (0x3F80_0000 | (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x007F_FFFF)).to_le_bytes())
        .collect()
}

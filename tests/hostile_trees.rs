//! Hostile tree blobs, correctly sealed: whoever holds the repository key (every
//! backed-up host) can write trees nested deeper than any file system, a tree whose
//! entries all lead to one subtree that does the same again (billions of paths from a
//! few thousand entries), entries naming blobs that do not exist, and a tree stored
//! under an id that makes it its own subtree. `ls`, `restore` and `check`, the real
//! binary with limited memory and time, must end with damage (exit 3) naming the
//! snapshot, never loop, overflow the stack or abort, and restore writes nothing.

mod support;

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lifeboat::engine::audit;
use lifeboat::engine::tree_bounds::MAX_DEPTH;
use lifeboat::format::audit::{Action, Record};
use lifeboat::format::ids::BlobId;
use lifeboat::format::index::{IndexFile, IndexedPack};
use lifeboat::format::pack::BlobKind;
use lifeboat::format::tree::{Node, NodeKind, Tree};
use lifeboat::repo::Repository;
use lifeboat::repo::packer::PackBuilder;
use support::{PASSWORD, Repo, write_file};

/// Address space each command may use: far more than these small repositories need,
/// far less than expanding a hostile tree would take.
const MEMORY_KIB: u64 = 3 << 20;
/// Time each command may take.
const DEADLINE: Duration = Duration::from_secs(180);

/// Run `lifeboat` against `repo` with [`MEMORY_KIB`] of address space, killing it at
/// [`DEADLINE`].
fn run(repo: &Repo, args: &[&str]) -> Output {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("LIFEBOAT_REPO", &repo.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(child.wait_with_output()));
    match receive.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("lifeboat {args:?} still running after {DEADLINE:?}");
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Sealed trees collected into one pack, then indexed and made a snapshot's root.
struct Forge<'a> {
    repo: &'a Repository,
    pack: PackBuilder,
}

impl Forge<'_> {
    fn add(&mut self, id: Option<BlobId>, nodes: Vec<Node>) -> BlobId {
        let json = serde_json::to_vec(&Tree { nodes }).unwrap();
        let (own, sealed) = self.repo.seal_blob(&json);
        let id = id.unwrap_or(own);
        self.pack.add(BlobKind::Tree, id, json.len() as u32, sealed);
        id
    }

    fn tree(&mut self, nodes: Vec<Node>) -> BlobId {
        self.add(None, nodes)
    }

    /// Store `nodes` under `id`, which is not the id of their content.
    fn tree_as(&mut self, id: BlobId, nodes: Vec<Node>) {
        self.add(Some(id), nodes);
    }
}

fn dir(name: &str, subtree: BlobId) -> Node {
    let mut node = Node::new(OsStr::new(name), NodeKind::Dir);
    node.mode = 0o755;
    node.subtree = Some(subtree);
    node
}

fn file(name: &str, content: Vec<BlobId>, size: u64) -> Node {
    let mut node = Node::new(OsStr::new(name), NodeKind::File);
    node.mode = 0o644;
    node.content = content;
    node.size = size;
    node
}

/// A repository holding one honest snapshot, and a snapshot whose root tree `build`
/// makes. Returns the repository and the hostile snapshot's id (hex).
fn hostile(build: impl FnOnce(&mut Forge) -> BlobId) -> (Repo, String) {
    let repo = Repo::init(&[]);
    let src = repo.scratch("src");
    write_file(&src.join("honest.txt"), b"an honest file");
    repo.backup(&[&src]);
    let (rt, r) = repo.open();
    let id = rt.block_on(async {
        let mut forge = Forge {
            repo: &r,
            pack: PackBuilder::new(64 << 20),
        };
        let root = build(&mut forge);
        let pack = forge.pack.finish(&r);
        r.save_pack(&pack.id, pack.bytes).await.unwrap();
        let packs = vec![IndexedPack {
            id: pack.id,
            blobs: pack.entries,
        }];
        let index = IndexFile {
            supersedes: vec![],
            packs,
        };
        r.save_index(&index).await.unwrap();
        let (_, mut snap) = r.find_snapshot("latest").await.unwrap();
        snap.tree = root;
        snap.time += chrono::Duration::seconds(1);
        let id = r.save_snapshot(&snap).await.unwrap();
        // A key holder writes the snapshot's audit event too, as a backup does.
        let event = Record {
            written: vec![id],
            ..audit::event(Action::Backup)
        };
        audit::append(&r, event).await.unwrap();
        id.to_hex()
    });
    (repo, id)
}

/// `out` is damage (exit 3, no crash) whose `error:` line names the snapshot and `what`.
fn assert_damage(out: &Output, snapshot: &str, what: &str, case: &str) {
    assert!(
        !matches!(out.status.code(), Some(101 | 134) | None),
        "{case}: crashed\n{}",
        text(out)
    );
    assert_eq!(out.status.code(), Some(3), "{case}\n{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("error:"), "{case}: {last}");
    assert!(
        last.contains(&snapshot[..8]) && last.contains(what),
        "{case}: {last:?} should name {} and {what:?}",
        &snapshot[..8]
    );
}

/// `ls` and `restore` of `snapshot` are damage naming `what`; nothing is restored, and
/// `check` reports the snapshot with `what` too.
fn assert_refused_everywhere(repo: &Repo, snapshot: &str, what: &str) {
    let out = run(repo, &["ls", snapshot]);
    assert_damage(&out, snapshot, what, "ls");
    let target = repo.scratch("target");
    let out = run(repo, &["restore", snapshot, "--target", target.to_str().unwrap()]);
    assert_damage(&out, snapshot, what, "restore");
    let written: Vec<_> = std::fs::read_dir(&target).map(|d| d.collect()).unwrap_or_default();
    assert!(written.is_empty(), "restore wrote {written:?}");
    let out = run(repo, &["check"]);
    assert_eq!(out.status.code(), Some(3), "check\n{}", text(&out));
    let report = text(&out);
    assert!(
        report.lines().any(|l| l.contains(&snapshot[..8]) && l.contains(what)),
        "check names {} and {what:?}\n{report}",
        &snapshot[..8]
    );
    assert_honest_snapshot_restores(repo, snapshot);
}

/// The snapshot other than `hostile` restores exactly.
fn assert_honest_snapshot_restores(repo: &Repo, hostile: &str) {
    let out = run(repo, &["--json", "snapshots"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let honest = ids.iter().find(|i| **i != hostile).unwrap();
    let target = repo.scratch("honest");
    let out = run(repo, &["restore", honest, "--target", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read(target.join("src/honest.txt")).unwrap(), b"an honest file");
}

/// A chain of `levels` directories `d/d/d/…` below the root, the deepest one empty.
fn chain(forge: &mut Forge, levels: usize) -> BlobId {
    let mut inner = forge.tree(vec![]);
    for _ in 0..levels {
        inner = forge.tree(vec![dir("d", inner)]);
    }
    inner
}

#[test]
fn trees_nested_deeper_than_any_file_system_are_damage() {
    // The root is level 0; its chain reaches a directory at level MAX_DEPTH + 1.
    let (repo, id) = hostile(|f| chain(f, MAX_DEPTH + 1));
    assert_refused_everywhere(&repo, &id, "levels deep");
}

#[test]
fn trees_exactly_as_deep_as_the_bound_are_listed_and_checked() {
    let (repo, id) = hostile(|f| chain(f, MAX_DEPTH));
    let out = run(&repo, &["--json", "ls", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), MAX_DEPTH, "one directory per level");
    let deepest = listed.iter().filter_map(|e| e["path"].as_str()).max_by_key(|p| p.len());
    assert_eq!(deepest.map(|p| p.matches('d').count()), Some(MAX_DEPTH));
    let out = run(&repo, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn subtrees_repeated_into_billions_of_paths_are_damage() {
    // 2000 entries in each of three trees, every directory entry leading to the same
    // subtree: 8 × 10⁹ paths.
    let (repo, id) = hostile(|f| {
        let names = |p: &'static str| (0..2000).map(move |i| format!("{p}{i:04}"));
        let leaf = f.tree(names("f").map(|n| file(&n, vec![], 0)).collect());
        let middle = f.tree(names("m").map(|n| dir(&n, leaf)).collect());
        f.tree(names("r").map(|n| dir(&n, middle)).collect())
    });
    assert_refused_everywhere(&repo, &id, "repeat so often");
}

#[test]
fn entries_naming_missing_blobs_are_damage() {
    let gone = BlobId([7; 32]);
    let (repo, id) = hostile(|f| {
        let inner = f.tree(vec![file("gone.bin", vec![gone], 10), file("kept.txt", vec![], 0)]);
        f.tree(vec![dir("src", inner)])
    });
    let out = run(&repo, &["ls", &id]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the trees themselves are there\n{}",
        text(&out)
    );
    let target = repo.scratch("target");
    let out = run(&repo, &["restore", &id, "--target", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("gone.bin") && text(&out).contains(&gone.to_hex()),
        "{}",
        text(&out)
    );
    assert!(!target.join("src/gone.bin").exists());
    let out = run(&repo, &["check"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains(&gone.short()), "{}", text(&out));

    // A directory whose tree does not exist.
    let (repo, id) = hostile(|f| {
        let inner = f.tree(vec![dir("lost", gone)]);
        f.tree(vec![dir("src", inner)])
    });
    assert_refused_everywhere(&repo, &id, "/src/lost");
}

#[test]
fn a_tree_stored_as_its_own_subtree_is_damage_not_a_loop() {
    // Under id `x` a tree whose only entry leads back to `x`: were ids not checked on
    // every read, every walk would go round forever.
    let x = BlobId([9; 32]);
    let (repo, id) = hostile(|f| {
        f.tree_as(x, vec![dir("again", x)]);
        f.tree(vec![dir("loop", x)])
    });
    assert_refused_everywhere(&repo, &id, "/loop");
}

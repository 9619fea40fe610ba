use std::time::{Duration, Instant};

use super::*;

fn names(listed: &[Listed]) -> Vec<String> {
    listed.iter().map(|e| e.name.to_str().unwrap().to_string()).collect()
}

fn tree(rels: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for rel in rels {
        let path = dir.path().join(rel);
        if rel.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
        } else {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, rel).unwrap();
        }
    }
    dir
}

/// Wait until no folder is being listed and the counts stay put (the threads stopped
/// for want of room or of folders).
fn settled(lister: &Lister) -> (usize, usize, usize) {
    let start = Instant::now();
    let mut last = lister.held();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = lister.held();
        if now == last && now.0 == 0 {
            return now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the lister never settled: {now:?}"
        );
        last = now;
    }
}

/// A lister of `root` with no exclude patterns and the given bounds.
fn limited(root: &Path, folders: usize, entries: usize) -> Lister {
    let limits = Limits { folders, entries };
    Lister::spawn_with(vec![root.to_path_buf()], Excludes::new(&[]).unwrap(), limits)
}

/// Walk `dir` depth first as the backup does, checking every listing against a
/// direct one; returns the folders entered, in order.
fn walk(lister: &mut Lister, dir: &Path, base: &Path, ex: &Excludes, seen: &mut Vec<PathBuf>) {
    let listed = lister.take(dir, base, ex).unwrap();
    let direct = list_folder(dir, base, ex).unwrap();
    assert_eq!(names(&listed), names(&direct), "{}", dir.display());
    for (a, b) in listed.iter().zip(&direct) {
        assert_eq!((&a.path, a.meta.ino()), (&b.path, b.meta.ino()));
    }
    seen.push(dir.to_path_buf());
    for sub in listed.iter().filter(|e| e.meta.is_dir()) {
        walk(lister, &sub.path, base, ex, seen);
    }
}

use std::os::unix::fs::MetadataExt;

#[test]
fn every_folder_is_handed_out_as_listed_directly_in_walk_order() {
    let mut rels = vec!["top.txt", "skip.tmp", "empty/"];
    let owned: Vec<String> = (0..12)
        .flat_map(|i| (0..4).map(move |j| format!("d{i:02}/e{j}/f-{i}-{j}.txt")))
        .collect();
    rels.extend(owned.iter().map(String::as_str));
    rels.extend(["d03/e1/deeper/x.tmp", "d03/e1/deeper/y"]);
    let dir = tree(&rels);
    std::os::unix::fs::symlink("d00", dir.path().join("link")).unwrap();
    let (root, base) = (dir.path().to_path_buf(), dir.path().parent().unwrap());
    let ex = Excludes::new(&["*.tmp".into()]).unwrap();
    let mut lister = Lister::spawn(vec![root.clone()], ex.clone());
    let mut seen = Vec::new();
    walk(&mut lister, &root, base, &ex, &mut seen);
    assert_eq!(seen.len(), 1 + 1 + 12 + 12 * 4 + 1, "{seen:?}");
    let top = list_folder(&root, base, &ex).unwrap();
    assert!(!names(&top).contains(&"skip.tmp".to_string()), "excluded");
    let link = top.iter().find(|e| e.name == "link").unwrap();
    assert!(link.meta.file_type().is_symlink(), "a symlink is not followed");
    assert_eq!(lister.held().1, 0, "nothing left waiting for the walk");
}

#[test]
fn asked_out_of_order_it_still_gives_each_folder_its_own_entries() {
    let dir = tree(&["b/y/", "a/x/", "a/w/", "c/", "a/n.tmp", "a/w/f"]);
    let (root, base) = (dir.path().to_path_buf(), dir.path().parent().unwrap());
    let ex = Excludes::new(&["*.tmp".into()]).unwrap();
    let mut lister = Lister::spawn(vec![root.clone()], ex.clone());
    assert_eq!(names(&lister.take(&root, base, &ex).unwrap()), ["a", "b", "c"]);
    assert_eq!(names(&lister.take(&root.join("a"), base, &ex).unwrap()), ["w", "x"]);
    // `a/w` comes next in the walk; `c` first leaves everything before it behind.
    assert!(lister.take(&root.join("c"), base, &ex).unwrap().is_empty());
    assert_eq!(names(&lister.take(&root.join("a/w"), base, &ex).unwrap()), ["f"]);
    assert_eq!(names(&lister.take(&root.join("b"), base, &ex).unwrap()), ["y"]);
    let missing = lister.take(&root.join("gone"), base, &ex).unwrap_err();
    assert!(missing.to_string().contains("gone"), "{missing}");
}

#[test]
fn no_more_folders_than_the_limit_wait_for_the_walk() {
    let owned: Vec<String> = (0..40).map(|i| format!("d{i:02}/f")).collect();
    let dir = tree(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    let (root, base) = (dir.path().to_path_buf(), dir.path().parent().unwrap());
    let ex = Excludes::new(&[]).unwrap();
    let mut lister = limited(&root, 5, 1_000);
    assert_eq!(lister.take(&root, base, &ex).unwrap().len(), 40);
    assert_eq!(settled(&lister), (0, 5, 35), "five listed ahead, the rest waiting");
    for i in 0..3 {
        assert_eq!(
            names(&lister.take(&root.join(format!("d{i:02}")), base, &ex).unwrap()),
            ["f"]
        );
    }
    assert_eq!(
        settled(&lister),
        (0, 5, 32),
        "each folder taken makes room for one more"
    );
    // Skipping ahead drops what the walk went past.
    assert_eq!(lister.take(&root.join("d30"), base, &ex).unwrap().len(), 1);
    assert_eq!(settled(&lister), (0, 5, 4));
}

#[test]
fn a_folder_of_many_entries_holds_the_threads_back() {
    let owned: Vec<String> = (0..30)
        .map(|i| format!("a/f{i:02}"))
        .chain(["b/f".into(), "c/f".into()])
        .collect();
    let dir = tree(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    let (root, base) = (dir.path().to_path_buf(), dir.path().parent().unwrap());
    let ex = Excludes::new(&[]).unwrap();
    let mut lister = limited(&root, 8, 20);
    lister.take(&root, base, &ex).unwrap();
    // `a` alone holds more than 20 entries: nothing else starts until it is taken
    // (`b` and `c` may have started beside it).
    let (_, done, waiting) = settled(&lister);
    assert!(done >= 1 && done + waiting == 3, "{done} {waiting}");
    assert_eq!(lister.take(&root.join("a"), base, &ex).unwrap().len(), 30);
    assert_eq!(settled(&lister), (0, 2, 0));
}

#[test]
fn a_folder_gone_before_its_listing_is_named_when_taken() {
    let dir = tree(&["a/f", "b/g"]);
    let (root, base) = (dir.path().to_path_buf(), dir.path().parent().unwrap());
    let ex = Excludes::new(&[]).unwrap();
    let mut lister = limited(&root, 1, 1_000);
    assert_eq!(names(&lister.take(&root, base, &ex).unwrap()), ["a", "b"]);
    // With room for one folder, `b` cannot start before `a` is taken.
    fs::remove_dir_all(root.join("b")).unwrap();
    assert_eq!(names(&lister.take(&root.join("a"), base, &ex).unwrap()), ["f"]);
    let err = lister.take(&root.join("b"), base, &ex).unwrap_err();
    assert!(err.to_string().contains(&root.join("b").display().to_string()), "{err}");
}

#[test]
fn roots_are_listed_in_the_order_given_and_a_file_root_is_skipped() {
    let dir = tree(&["one/x", "two/y", "file"]);
    let roots = vec![dir.path().join("two"), dir.path().join("file"), dir.path().join("one")];
    let ex = Excludes::new(&[]).unwrap();
    let mut lister = Lister::spawn(roots.clone(), ex.clone());
    let base = dir.path();
    assert_eq!(names(&lister.take(&roots[0], base, &ex).unwrap()), ["y"]);
    assert_eq!(names(&lister.take(&roots[2], base, &ex).unwrap()), ["x"]);
    assert_eq!(lister.held(), (0, 0, 0));
}

//! Reads that return altered bytes: restore refuses them and never writes wrong content.

use std::path::Path;

use lifeboat::engine::EngineError;
use lifeboat::repo::RepoError;

use crate::support::Bench;
use crate::tree::{Entry, manifest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_on_read_fails_restore_naming_the_file_and_writes_nothing_wrong() {
    let bench = Bench::new().await;
    let id = bench.backup().await.unwrap().id;
    let mut named_files = 0;
    // Blobs sit in a random order in their pack, so many positions are tried: some land
    // in headers or tree blobs, enough always land in file data.
    for (i, at) in (0..24u64).map(|k| 7 + k * 12_497).enumerate() {
        bench.fault.flip_byte_on_get("data/", at);
        let (target, out) = bench.restore(&id, &format!("out-{i}")).await;
        bench.fault.clear_faults();
        let restored = if target.exists() {
            manifest(&target)
        } else {
            Default::default()
        };
        for (path, entry) in &restored {
            if let Entry::File { .. } = entry {
                assert_eq!(
                    Some(entry),
                    bench.expected.get(path),
                    "byte {at}: {} is wrong",
                    path.display()
                );
            }
        }
        match out {
            Ok(_) => assert_eq!(restored, bench.expected, "byte {at}: restore succeeded inexactly"),
            Err(EngineError::Damage { message, files }) => {
                assert!(!files.is_empty(), "{message}");
                for f in &files {
                    assert!(message.contains(f.as_str()), "{message} does not name {f}");
                    assert!(!target.join(f).exists(), "damaged {f} left in the target");
                }
                named_files += files.len();
            }
            Err(EngineError::Repo(e)) => assert!(e.is_damage(), "byte {at}: {e}"),
            Err(other) => panic!("byte {at}: unexpected error {other}"),
        }
    }
    assert!(named_files > 0, "no flipped byte ever landed in file data");
    bench.assert_consistent("after read faults").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_reading_the_index_or_snapshot_is_reported_as_damage() {
    let bench = Bench::new().await;
    let id = bench.backup().await.unwrap().id;
    for prefix in ["index/", "snapshots/"] {
        bench.fault.flip_byte_on_get(prefix, 40);
        let (target, out) = bench.restore(&id, prefix.trim_end_matches('/')).await;
        bench.fault.clear_faults();
        match out {
            Err(EngineError::Repo(e @ RepoError::Damaged { .. })) => {
                assert!(e.to_string().contains(&prefix[..prefix.len() - 2]), "{e}")
            }
            other => panic!("{prefix}: expected damage, got {other:?}"),
        }
        assert!(
            !Path::new(&target).join("src").exists(),
            "{prefix}: restore wrote files"
        );
    }
}

//! Reads that return altered bytes: restore refuses them and never writes wrong content.

use std::path::Path;

use lifeboat::engine::EngineError;
use lifeboat::repo::RepoError;
use lifeboat::repo::layout;

use crate::support::Bench;
use crate::tree::{Entry, manifest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_on_read_fails_restore_naming_the_file_and_writes_nothing_wrong() {
    let bench = Bench::new().await;
    let id = bench.backup().await.unwrap().id;
    // Each shard file is a single blob (smaller than the chunker's minimum, and of a
    // length no other file has); the index says where each sits in its pack. Flipping a
    // byte inside one of them must fail exactly that file and no other.
    let index = bench.repo.load_index().await.unwrap();
    let mut shards: Vec<(String, String, u64, u64)> = index
        .iter()
        .filter(|(_, loc)| loc.raw_length >= 300_000)
        .map(|(_, loc)| {
            let n = [300_000, 340_000, 380_000, 420_000]
                .iter()
                .position(|&len| len == loc.raw_length)
                .expect("a shard's length");
            (
                format!("src/shard-{n}.bin"),
                layout::pack(&index.pack_id(loc.pack)),
                u64::from(loc.offset),
                u64::from(loc.length),
            )
        })
        .collect();
    shards.sort();
    assert_eq!(shards.len(), 4, "one blob per shard file");
    for (i, at) in (0..24u64).map(|k| 7 + k * 12_007).enumerate() {
        let (shard, pack, offset, length) = &shards[i % shards.len()];
        bench.fault.flip_byte_on_get(pack, offset + at % length);
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
                    "byte {at} of {pack}: {} is wrong",
                    path.display()
                );
            }
        }
        match out {
            Err(EngineError::Damage { message, files }) => {
                assert_eq!(
                    files.as_slice(),
                    std::slice::from_ref(shard),
                    "byte {at} of {pack}: {message}"
                );
                let f = &files[0];
                assert!(message.contains(f.as_str()), "{message} does not name {f}");
                assert!(!target.join(f).exists(), "damaged {f} left in the target");
                // Every other file still came back.
                let others = bench
                    .expected
                    .keys()
                    .filter(|p| !p.ends_with(f.as_str()) && !restored.contains_key(*p))
                    .count();
                assert_eq!(others, 0, "byte {at} of {pack}: other files missing");
            }
            other => panic!("byte {at} of {pack}: expected damage naming a file, got {other:?}"),
        }
    }
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

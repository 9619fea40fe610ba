//! Writes that fail or tear: every interruption point of a backup leaves a repository
//! that checks clean, and the next backup completes and restores exactly.

use std::collections::BTreeSet;

use lifeboat::engine::prune::{PruneOptions, prune};
use lifeboat::engine::repair::{RepairOptions, repair_index};
use lifeboat::storage::{ErrorKind, Store};

use crate::support::{Bench, object_kind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_failing_at_every_put_leaves_a_consistent_repository_that_recovers() {
    let mut interrupted = BTreeSet::new();
    for n in 1.. {
        let bench = Bench::new().await;
        bench.fault.fail_nth_put(n, ErrorKind::Transient);
        let err = match bench.backup().await {
            Ok(_) => break, // the backup made fewer than `n` puts: every point is covered
            Err(e) => e,
        };
        assert!(
            bench.repo.snapshot_ids().await.unwrap().is_empty(),
            "put {n}: snapshot saved"
        );
        interrupted.insert(object_kind(&err));
        bench.assert_recovers(&format!("put {n} failed ({err})")).await;
        assert!(n < 50, "backup keeps failing after {n} puts");
    }
    // Two sealing threads feed the packer, so pack boundaries (and the number of packs)
    // vary between runs and the nth put is not always the same kind of object. Any kind
    // the sweep happened to miss is failed on purpose.
    let all: BTreeSet<&str> = ["locks/", "data/", "index/", "snapshots/", "audit/"].into();
    for kind in all.difference(&interrupted.clone()) {
        let bench = Bench::new().await;
        bench.fault.fail_puts_with_prefix(kind, ErrorKind::Transient);
        let err = bench.backup().await.expect_err("every put of this kind fails");
        assert!(
            bench.repo.snapshot_ids().await.unwrap().is_empty(),
            "{kind}: snapshot saved"
        );
        bench.fault.clear_faults();
        interrupted.insert(object_kind(&err));
        bench.assert_recovers(&format!("{kind} puts failed ({err})")).await;
    }
    assert_eq!(interrupted, all, "not every kind of write was interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_with_a_torn_pack_at_every_position_leaves_a_consistent_repository() {
    let mut torn_packs = 0;
    for n in 1.. {
        let bench = Bench::new().await;
        bench.fault.tear_nth_put(n);
        let err = bench.backup().await.expect_err("a torn write must fail the backup");
        match object_kind(&err) {
            "data/" => torn_packs += 1,
            "locks/" => {}
            // Packs are all written before the index and the snapshot.
            _ => break,
        }
        bench.assert_recovers(&format!("put {n} torn ({err})")).await;
        assert!(n < 50, "backup keeps tearing packs after {n} puts");
    }
    assert!(torn_packs >= 4, "only {torn_packs} packs were torn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_index_write_leaves_packs_unindexed_but_the_repository_consistent() {
    let bench = Bench::new().await;
    bench.fault.fail_puts_with_prefix("index/", ErrorKind::PermissionDenied);
    let err = bench.backup().await.expect_err("index write failed");
    assert_eq!(object_kind(&err), "index/", "{err}");
    bench.fault.clear_faults();
    let report = bench.assert_consistent("after failed index write").await;
    assert!(report.unindexed_packs >= 4, "{report:?}");
    assert_eq!(report.snapshots, 0);
    bench.assert_recovers("failed index write").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_snapshot_write_keeps_the_indexed_data_for_the_next_backup() {
    let bench = Bench::new().await;
    bench.fault.fail_puts_with_prefix("snapshots/", ErrorKind::Transient);
    let err = bench.backup().await.expect_err("snapshot write failed");
    assert_eq!(object_kind(&err), "snapshots/", "{err}");
    bench.fault.clear_faults();
    let report = bench.assert_consistent("after failed snapshot write").await;
    assert_eq!(report.snapshots, 0);
    let retry = bench.backup().await.unwrap();
    let summary = &retry.snapshot.summary;
    assert!(summary.bytes_added < 16 * 1024, "data stored again: {summary:?}");
    bench.assert_latest_restores_exactly("restored").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_index_salvages_a_failed_backup_and_survives_its_own_failed_write() {
    let bench = Bench::new().await;
    bench.fault.fail_puts_with_prefix("index/", ErrorKind::PermissionDenied);
    bench.backup().await.expect_err("index write failed");
    // The repair's own index write fails too: it reports the error and changes nothing.
    let err = repair_index(&bench.repo, &RepairOptions::default())
        .await
        .expect_err("repair's index write failed");
    assert_eq!(object_kind(&err), "index/", "{err}");
    bench.fault.clear_faults();
    let before = bench.assert_consistent("after the failed repair").await;
    assert!(before.unindexed_packs >= 4, "{before:?}");

    let report = repair_index(&bench.repo, &RepairOptions::default()).await.unwrap();
    assert!(report.rewritten, "{report:?}");
    assert_eq!(report.packs_added, before.unindexed_packs, "{report:?}");
    assert_eq!((report.packs_missing, report.packs_unreadable), (0, 0), "{report:?}");
    let after = bench.assert_consistent("after the repair").await;
    assert_eq!(after.unindexed_packs, 0, "{after:?}");

    // The failed backup's data is reused, not stored again.
    let retry = bench.backup().await.unwrap();
    let summary = &retry.snapshot.summary;
    assert!(summary.bytes_added < 16 * 1024, "data stored again: {summary:?}");
    bench.assert_latest_restores_exactly("restored").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_index_leaves_the_packs_of_an_unfinished_prune_to_that_prune() {
    let bench = Bench::new().await;
    let id = bench.backup().await.unwrap().id;
    let indexed = bench.repo.load_index().await.unwrap().pack_ids().len();
    // Nothing uses the data any more; the prune records its condemned packs, then fails
    // to write the replacement index, so the old index still lists them.
    bench.fault.delete(&format!("snapshots/{id}")).await.unwrap();
    bench.fault.fail_puts_with_prefix("index/", ErrorKind::Transient);
    prune(&bench.repo, &PruneOptions::default())
        .await
        .expect_err("the replacement index could not be written");
    bench.fault.clear_faults();

    let opts = RepairOptions {
        read_all_packs: true,
        dry_run: false,
    };
    let report = repair_index(&bench.repo, &opts).await.unwrap();
    assert_eq!(report.packs, indexed, "{report:?}");
    assert!(!report.rewritten, "{report:?}");
    assert_eq!(bench.repo.load_index().await.unwrap().pack_ids().len(), indexed);

    // The prune then finishes its work, and the repository is consistent.
    let done = prune(&bench.repo, &PruneOptions::default()).await.unwrap();
    assert_eq!(done.deleted, indexed, "{done:?}");
    bench.assert_consistent("after the prune").await;
}

//! A store that goes dark or slows down: an outage fails the operation and leaves the
//! repository consistent; latency changes nothing but time.

use std::time::Duration;

use crate::support::Bench;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_during_backup_fails_it_and_leaves_the_repository_consistent() {
    let mut failed = 0;
    for delay_ms in [0u64, 15, 40, 80, 160, 320] {
        let bench = Bench::new().await;
        bench.fault.set_latency(Duration::from_millis(4));
        let fault = bench.fault.clone();
        let switch = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            fault.set_outage(true);
        });
        let out = bench.backup().await;
        switch.await.unwrap();
        if let Err(e) = &out {
            assert!(e.to_string().contains("region unreachable"), "{e}");
            failed += 1;
        }
        bench.assert_recovers(&format!("outage after {delay_ms} ms")).await;
    }
    assert!(failed >= 3, "only {failed} backups met the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_does_not_change_what_is_stored_or_restored() {
    let bench = Bench::new().await;
    bench.fault.set_latency(Duration::from_millis(3));
    let slow = bench.backup().await.unwrap();
    bench.assert_latest_restores_exactly("slow").await;
    bench.fault.set_latency(Duration::ZERO);
    let fast = bench.backup_with(true).await.unwrap();
    assert_eq!(slow.snapshot.tree, fast.snapshot.tree);
    assert_eq!(fast.snapshot.summary.blobs_added, 0, "{:?}", fast.snapshot.summary);
    bench.assert_consistent("after slow and fast backups").await;
}

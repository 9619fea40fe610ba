//! Object Lock of the snapshots open anomalies pin.
//!
//! A snapshot object is locked once, at upload, for `N + slack` days. Retention keeps
//! the snapshot an open anomaly pins (the last one before it) however old it grows,
//! but once its lock has run out a stolen credential could delete it — the very
//! snapshot the incident needs. So while the anomaly is open, each run that keeps a
//! region's locks also keeps the pinned snapshot's own object locked until at least
//! `now + N` days, raising it to `now + N + slack` when the ledger does not know it to
//! last that long; keys and `config` follow a raise, as they follow the packs'.
//!
//! Its packs need no walk of its tree: every pack in the index is kept locked that
//! long (`immutable`), and retention keeping the pinned snapshot keeps prune from
//! taking its packs out of the index. That upkeep is run here too, so it also happens
//! on runs that wrote no snapshot.
//!
//! The ledger's `snapshots` section remembers the dates, so an incident costs one
//! request per region about once per slack period; entries of snapshots no longer
//! pinned are dropped when it is next written. After the anomaly is acknowledged
//! nothing raises the lock any more, and it runs out on its own.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::immutable::{Known, LockReport, keep_packs_locked};
use super::{EngineError, Result};
use crate::format::ids::SnapshotId;
use crate::repo::Repository;
use crate::repo::objects::lock_until;

/// One pinned snapshot's lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PinLock {
    pub snapshot: SnapshotId,
    /// Its object is locked at least until then.
    pub until: DateTime<Utc>,
}

/// What keeping the pinned snapshots locked did in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PinReport {
    /// Pinned snapshots whose retention was raised, and to when.
    pub extended: Vec<PinLock>,
    /// Pinned snapshots already known to be locked long enough, and until when.
    pub kept: Vec<PinLock>,
    /// Keeping every indexed pack locked, the pinned snapshots' packs among them.
    pub packs: LockReport,
}

/// The error for a region where a pinned snapshot's lock could not be extended.
pub fn pins_not_extended(e: EngineError) -> EngineError {
    EngineError::Internal(format!(
        "snapshot stored, but the Object Lock retention of the snapshot an open anomaly pins could not be extended: {e} — \
         run the command again once the region is reachable"
    ))
}

/// Keep each snapshot of `pins` (all held by `repo`) and every indexed pack locked
/// until at least `now + N` days, when the store locks objects. Returns `None` for
/// stores without Object Lock and when nothing is pinned.
pub async fn keep_pins_locked(repo: &Repository, pins: &[SnapshotId], now: DateTime<Utc>) -> Result<Option<PinReport>> {
    let Some(days) = repo.lock_days() else {
        return Ok(None);
    };
    if pins.is_empty() {
        return Ok(None);
    }
    let index = repo.load_index().await?;
    let packs = keep_packs_locked(repo, index.pack_ids(), &HashSet::new(), now, now).await?;
    let ledger = Known::load(repo).await?;
    let (stale, kept) = due(pins, &ledger.snapshots, now, days);
    let until = lock_until(now, days);
    for id in &stale {
        repo.extend_snapshot_lock(id, until).await?;
    }
    if !stale.is_empty() {
        repo.extend_key_and_config_locks(until).await?;
    }
    let extended: Vec<PinLock> = stale.into_iter().map(|snapshot| PinLock { snapshot, until }).collect();
    let current: HashMap<SnapshotId, DateTime<Utc>> =
        kept.iter().chain(&extended).map(|p| (p.snapshot, p.until)).collect();
    if ledger.names.len() != 1 || current != ledger.snapshots {
        ledger.replace(repo, &ledger.packs, &current).await?;
    }
    Ok(Some(PinReport {
        extended,
        kept,
        packs: packs.unwrap_or_default(),
    }))
}

/// The pins whose known lock ends before `now + days` (unknown ones too), and the
/// others with the date they are known to be locked until.
fn due(
    pins: &[SnapshotId],
    known: &HashMap<SnapshotId, DateTime<Utc>>,
    now: DateTime<Utc>,
    days: u32,
) -> (Vec<SnapshotId>, Vec<PinLock>) {
    let needed = now + Duration::days(i64::from(days));
    let mut stale = Vec::new();
    let mut kept = Vec::new();
    for pin in pins.iter().copied().collect::<std::collections::BTreeSet<_>>() {
        match known.get(&pin) {
            Some(until) if *until >= needed => kept.push(PinLock {
                snapshot: pin,
                until: *until,
            }),
            _ => stale.push(pin),
        }
    }
    (stale, kept)
}

#[cfg(test)]
mod tests {
    use super::super::immutable::{Locking, backup_once, locked_repo_with_backup};
    use super::*;
    use crate::repo::layout;
    use crate::storage::Store;
    use std::sync::atomic::Ordering;

    #[test]
    fn only_pins_locked_too_briefly_or_unknown_are_due() {
        let now = Utc::now();
        let (a, b, c) = (SnapshotId([1; 32]), SnapshotId([2; 32]), SnapshotId([3; 32]));
        let known = HashMap::from([(a, now + Duration::days(31)), (b, now + Duration::days(29))]);
        let (stale, kept) = due(&[c, b, a, c], &known, now, 30);
        assert_eq!(stale, vec![b, c], "too short and unknown, each once");
        assert_eq!(
            kept,
            vec![PinLock {
                snapshot: a,
                until: now + Duration::days(31)
            }]
        );
    }

    /// The keys of the objects raised since the last call, sorted, and their dates.
    fn take_raised(store: &Locking) -> Vec<(String, DateTime<Utc>)> {
        let mut raised = std::mem::take(&mut *store.raised.lock().unwrap());
        raised.sort();
        raised
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pinned_snapshot_is_raised_once_then_kept_and_later_raised_with_its_packs() {
        let (store, repo, _dir) = locked_repo_with_backup().await;
        let (pin, _) = repo.snapshots().await.unwrap().remove(0);
        take_raised(&store);
        let now = Utc::now();

        // Unknown to the ledger: raised to now + 4 + 1 days, with the keys and config.
        let first = keep_pins_locked(&repo, &[pin], now).await.unwrap().unwrap();
        let until = now + Duration::days(5);
        assert_eq!(first.extended, vec![PinLock { snapshot: pin, until }]);
        assert_eq!((first.kept.len(), first.packs.extended), (0, 0));
        let keys: Vec<String> = take_raised(&store)
            .into_iter()
            .map(|(k, d)| {
                assert_eq!(d, until, "{k}");
                k
            })
            .collect();
        let key = store.list(layout::KEYS).await.unwrap().remove(0).key;
        assert_eq!(keys, ["config".to_string(), key, layout::snapshot(&pin)]);

        // Known now: nothing is requested, and the ledger is not rewritten.
        let ledgers = store.list(layout::RETENTION).await.unwrap();
        let again = keep_pins_locked(&repo, &[pin], now + Duration::hours(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.kept, vec![PinLock { snapshot: pin, until }]);
        assert!(again.extended.is_empty() && take_raised(&store).is_empty());
        assert_eq!(store.list(layout::RETENTION).await.unwrap(), ledgers);

        // Two days on, the pin and every pack it uses are due again, together.
        let later = now + Duration::days(2);
        let raised = keep_pins_locked(&repo, &[pin], later).await.unwrap().unwrap();
        assert_eq!(raised.extended[0].until, later + Duration::days(5));
        let packs = repo.load_index().await.unwrap().pack_ids().len();
        assert_eq!(
            raised.packs,
            LockReport {
                extended: packs,
                kept: 0
            }
        );
        let keys: Vec<String> = take_raised(&store).into_iter().map(|r| r.0).collect();
        assert!(keys.contains(&layout::snapshot(&pin)), "{keys:?}");
        assert_eq!(keys.iter().filter(|k| k.starts_with("data/")).count(), packs);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_pinned_costs_nothing_and_a_failed_raise_is_an_error() {
        let (store, repo, _dir) = locked_repo_with_backup().await;
        take_raised(&store);
        let ledgers = store.list(layout::RETENTION).await.unwrap();
        assert_eq!(keep_pins_locked(&repo, &[], Utc::now()).await.unwrap(), None);
        assert!(take_raised(&store).is_empty());
        assert_eq!(store.list(layout::RETENTION).await.unwrap(), ledgers);

        let (pin, _) = repo.snapshots().await.unwrap().remove(0);
        store.fail.store(true, Ordering::SeqCst);
        let err = keep_pins_locked(&repo, &[pin], Utc::now()).await.unwrap_err();
        let err = pins_not_extended(err).to_string();
        assert!(
            err.contains("open anomaly pins") && err.contains("AccessDenied"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unpinned_snapshot_leaves_the_ledger_and_backups_carry_pins_over() {
        let (store, repo, dir) = locked_repo_with_backup().await;
        let (pin, _) = repo.snapshots().await.unwrap().remove(0);
        let now = Utc::now();
        keep_pins_locked(&repo, &[pin], now).await.unwrap();
        // A backup rewriting the ledger for its packs keeps the pin's entry.
        std::fs::write(dir.path().join("more.bin"), vec![3u8; 200_000]).unwrap();
        backup_once(&repo, &dir).await.unwrap();
        let (_, ledger) = repo.ledgers().await.unwrap().remove(0);
        assert_eq!(ledger.unwrap().snapshots.values().flatten().collect::<Vec<_>>(), [&pin]);
        take_raised(&store);
        let again = keep_pins_locked(&repo, &[pin], now).await.unwrap().unwrap();
        assert!(again.extended.is_empty(), "{again:?}");

        // Another pin replaces it: the first one's entry is dropped.
        let (other, _) = repo.snapshots().await.unwrap().pop().unwrap();
        keep_pins_locked(&repo, &[other], now).await.unwrap();
        let (_, ledger) = repo.ledgers().await.unwrap().remove(0);
        assert_eq!(
            ledger.unwrap().snapshots.values().flatten().collect::<Vec<_>>(),
            [&other]
        );
    }
}

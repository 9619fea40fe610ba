//! Immutable regions: every snapshot stays locked for the region's full retention.
//!
//! A store opened with `object_lock_days=N` uploads each pack with an S3 Object Lock
//! (COMPLIANCE) of `N + slack` days. A later snapshot that deduplicates against an old
//! pack would be protected only until that pack's lock runs out, so after each backup
//! into such a store every pack in the index whose lock ends before `now + N` has its
//! retention raised to `now + N + slack`. The slack (a quarter of `N`, at least one day)
//! means a pack in long use is raised about once per slack period, not on every backup.
//! Key objects and `config` cannot be rebuilt and no pack can be decrypted without
//! them, so whenever a run locks a pack later than before they are raised to the same
//! date.
//!
//! What is known about each lock is kept in a *ledger*: sealed objects under
//! `retention/` mapping retain-until dates to pack ids. A ledger that is missing or
//! unreadable only costs extra requests — its packs count as unknown and are raised
//! again — and a forged one cannot be written without the master key. Packs uploaded
//! in the run itself are entered at the run's start plus `N + slack` (a lower bound of
//! what their upload set).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::{EngineError, Result};
use crate::format::ids::{PackId, SnapshotId};
use crate::format::ledger::Ledger;
use crate::repo::Repository;
use crate::repo::objects::slack_days;

/// Retention requests in flight at once per region.
const CONCURRENT: usize = 8;

/// What keeping the locks did in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LockReport {
    /// Packs whose retention was raised.
    pub extended: usize,
    /// Packs already locked long enough.
    pub kept: usize,
}

/// The error for stored snapshots whose packs' locks could not be extended.
pub fn locks_not_extended(e: EngineError) -> EngineError {
    EngineError::Internal(format!(
        "snapshot stored, but the Object Lock retention of the packs it uses could not be extended: {e} — \
         run the command again once the region is reachable"
    ))
}

/// Make sure every pack of `repo` stays locked until at least `now + N` days, when the
/// store locks objects. `held` are the packs its index listed when the run that
/// started at `started` began, `uploaded` the packs that run wrote; a snapshot of the
/// run uses no others. Returns `None` for stores without Object Lock.
pub async fn keep_packs_locked(
    repo: &Repository,
    held: &[PackId],
    uploaded: &HashSet<PackId>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<LockReport>> {
    let Some(days) = repo.lock_days() else {
        return Ok(None);
    };
    let packs: Vec<PackId> = held
        .iter()
        .chain(uploaded)
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let ledger = Known::load(repo).await?;
    let mut known = ledger.packs.clone();
    let lock_days = Duration::days(i64::from(days + slack_days(days)));
    for pack in uploaded {
        let date = started + lock_days;
        known.entry(*pack).and_modify(|d| *d = (*d).max(date)).or_insert(date);
    }
    let (stale, report) = plan(&packs, &known, now, days);
    let raised_to = now + lock_days;
    raise(repo, &stale, raised_to).await?;
    if !stale.is_empty() || !uploaded.is_empty() {
        repo.extend_key_and_config_locks(raised_to).await?;
    }
    let mut current: HashMap<PackId, DateTime<Utc>> =
        packs.iter().filter_map(|p| known.get(p).map(|d| (*p, *d))).collect();
    for pack in &stale {
        current.insert(*pack, raised_to);
    }
    if ledger.names.len() != 1 || current != ledger.packs {
        // Pinned snapshots' entries are carried over as they are.
        ledger.replace(repo, &current, &ledger.snapshots).await?;
    }
    Ok(Some(report))
}

/// Raise the lock of every pack in `packs` to `until`, `CONCURRENT` at a time.
async fn raise(repo: &Repository, packs: &[PackId], until: DateTime<Utc>) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending = packs.iter().copied();
    loop {
        while tasks.len() < CONCURRENT {
            let Some(pack) = pending.next() else { break };
            let repo = repo.clone();
            tasks.spawn(async move { repo.extend_pack_lock(&pack, until).await });
        }
        match tasks.join_next().await {
            None => return Ok(()),
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => return Err(e.into()),
            Some(Err(e)) => return Err(EngineError::Internal(e.to_string())),
        }
    }
}

/// The packs of `packs` whose known lock ends before `now + days` (unknown ones too).
fn plan(
    packs: &[PackId],
    known: &HashMap<PackId, DateTime<Utc>>,
    now: DateTime<Utc>,
    days: u32,
) -> (Vec<PackId>, LockReport) {
    let needed = now + Duration::days(i64::from(days));
    let mut stale = Vec::new();
    let mut report = LockReport::default();
    for pack in packs {
        if known.get(pack).is_some_and(|until| *until >= needed) {
            report.kept += 1;
        } else {
            stale.push(*pack);
            report.extended += 1;
        }
    }
    (stale, report)
}

/// What the ledgers of a region know: the latest retain-until date of each pack and of
/// each pinned snapshot, and the names of the ledgers it was read from.
#[derive(Debug, Default)]
pub(super) struct Known {
    pub packs: HashMap<PackId, DateTime<Utc>>,
    pub snapshots: HashMap<SnapshotId, DateTime<Utc>>,
    pub names: Vec<String>,
}

impl Known {
    /// Every readable ledger of `repo` merged (latest date per object).
    pub async fn load(repo: &Repository) -> Result<Known> {
        let mut known = Known::default();
        for (name, ledger) in repo.ledgers().await? {
            known.names.push(name);
            // An unreadable ledger only means its objects are raised again.
            if let Some(ledger) = ledger {
                ledger.merge_all_into(&mut known.packs, &mut known.snapshots);
            }
        }
        Ok(known)
    }

    /// Write one ledger with `packs` and `snapshots`, then remove the ones this was
    /// read from.
    pub async fn replace(
        &self,
        repo: &Repository,
        packs: &HashMap<PackId, DateTime<Utc>>,
        snapshots: &HashMap<SnapshotId, DateTime<Utc>>,
    ) -> Result<()> {
        let name = repo.save_ledger(&Ledger::from_maps(packs, snapshots)).await?;
        for other in self.names.iter().filter(|k| **k != name) {
            // A ledger left behind is merged next time; it never lowers a date.
            let _ = repo.delete_ledger(other).await;
        }
        Ok(())
    }
}

/// The Object Lock test store, for the tests of `pinned_lock`.
#[cfg(test)]
pub(super) use tests::{Locking, backup_once, locked_repo_with_backup};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::crypto::KdfParams;
    use crate::repo::InitOptions;
    use crate::repo::layout;
    use crate::storage::{Capabilities, ObjectMeta, OpendalStore, PutOptions, StorageError, Store};
    use bytes::Bytes;
    use std::ops::Range;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// A memory store that claims Object Lock: it records every retention raise, and
    /// fails them on demand.
    #[derive(Debug)]
    pub(crate) struct Locking {
        inner: OpendalStore,
        pub raised: Mutex<Vec<(String, DateTime<Utc>)>>,
        pub fail: AtomicBool,
    }

    #[async_trait::async_trait]
    impl Store for Locking {
        fn address(&self) -> &str {
            self.inner.address()
        }
        async fn put(&self, key: &str, data: Bytes) -> crate::storage::Result<()> {
            self.inner.put(key, data).await
        }
        async fn put_if_absent(&self, key: &str, data: Bytes) -> crate::storage::Result<bool> {
            self.inner.put_if_absent(key, data).await
        }
        async fn get(&self, key: &str) -> crate::storage::Result<Bytes> {
            self.inner.get(key).await
        }
        async fn get_range(&self, key: &str, range: Range<u64>) -> crate::storage::Result<Bytes> {
            self.inner.get_range(key, range).await
        }
        async fn list(&self, prefix: &str) -> crate::storage::Result<Vec<ObjectMeta>> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &str) -> crate::storage::Result<()> {
            self.inner.delete(key).await
        }
        async fn stat(&self, key: &str) -> crate::storage::Result<Option<ObjectMeta>> {
            self.inner.stat(key).await
        }
        async fn put_with(&self, key: &str, data: Bytes, opts: PutOptions) -> crate::storage::Result<bool> {
            // Memory cannot lock: the write is stored plainly, as asked otherwise.
            let plain = PutOptions {
                retain_until: None,
                ..opts
            };
            self.inner.put_with(key, data, plain).await
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities { lock_days: Some(4) }
        }
        async fn extend_lock(&self, key: &str, until: DateTime<Utc>) -> crate::storage::Result<()> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(StorageError::new(
                    crate::storage::ErrorKind::PermissionDenied,
                    key,
                    "AccessDenied",
                ));
            }
            self.raised.lock().unwrap().push((key.to_string(), until));
            Ok(())
        }
    }

    pub(crate) async fn locked_repo_with_backup() -> (Arc<Locking>, Repository, tempfile::TempDir) {
        let store = Arc::new(Locking {
            inner: OpendalStore::memory(format!("immutable-{}", rand::random::<u64>())).unwrap(),
            raised: Mutex::new(Vec::new()),
            fail: AtomicBool::new(false),
        });
        let opts = InitOptions {
            kdf: KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..InitOptions::default()
        };
        let repo = Repository::init(store.clone(), b"pw", &opts).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("weights.bin"), vec![7u8; 300_000]).unwrap();
        backup_once(&repo, &dir).await.unwrap();
        (store, repo, dir)
    }

    pub(crate) async fn backup_once(repo: &Repository, dir: &tempfile::TempDir) -> Result<()> {
        let opts = crate::engine::backup::BackupOptions {
            paths: vec![dir.path().to_path_buf()],
            force_read: true,
            ..Default::default()
        };
        crate::engine::backup::backup(repo, &opts, Default::default())
            .await
            .map(|_| ())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn packs_are_raised_when_their_known_lock_runs_short() {
        let (store, repo, _dir) = locked_repo_with_backup().await;
        let ledgers = store.list(layout::RETENTION).await.unwrap();
        assert_eq!(ledgers.len(), 1, "a backup leaves one ledger");
        assert_eq!(packs_raised(&store), Vec::<String>::new(), "new packs need no raise");
        // The keys and the config follow the new packs' lock (upload time + 4 + 1 days).
        let mut raised = store.raised.lock().unwrap().clone();
        raised.sort();
        let key = store.list(layout::KEYS).await.unwrap().remove(0).key;
        let names: Vec<&str> = raised.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ["config", key.as_str()]);
        let left = raised[0].1 - Utc::now();
        assert!(
            left > Duration::days(5) - Duration::minutes(1) && left <= Duration::days(5),
            "{left}"
        );
        assert_eq!(raised[0].1, raised[1].1);
        store.raised.lock().unwrap().clear();
        let held = repo.load_index().await.unwrap().pack_ids().to_vec();
        let packs = held.len();

        // Upload locks run 4 + 1 days and must cover 4 days from "now": half a day
        // later nothing is due, two days later everything is.
        let now = Utc::now();
        let none = keep_packs_locked(&repo, &held, &HashSet::new(), now, now + Duration::hours(12)).await;
        assert_eq!(
            none.unwrap(),
            Some(LockReport {
                extended: 0,
                kept: packs
            })
        );
        let later = now + Duration::days(2);
        let all = keep_packs_locked(&repo, &held, &HashSet::new(), now, later)
            .await
            .unwrap();
        assert_eq!(
            all,
            Some(LockReport {
                extended: packs,
                kept: 0
            })
        );
        let raised = store.raised.lock().unwrap().clone();
        assert_eq!(raised.len(), packs + 2, "the packs, the key and the config: {raised:?}");
        assert!(raised.iter().all(|(_, until)| *until == later + Duration::days(5)));
        assert_eq!(packs_raised(&store).len(), packs);
        store.raised.lock().unwrap().clear();
        // The ledger now knows the new dates: asking again raises nothing.
        let again = keep_packs_locked(&repo, &held, &HashSet::new(), now, later)
            .await
            .unwrap();
        assert_eq!(
            again,
            Some(LockReport {
                extended: 0,
                kept: packs
            })
        );
        assert_eq!(store.list(layout::RETENTION).await.unwrap().len(), 1);
        assert!(
            store.raised.lock().unwrap().is_empty(),
            "nothing moved, so neither do keys"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_raise_fails_the_region_and_a_lost_ledger_is_rebuilt() {
        let (store, repo, dir) = locked_repo_with_backup().await;
        for ledger in store.list(layout::RETENTION).await.unwrap() {
            store.delete(&ledger.key).await.unwrap();
        }
        store.fail.store(true, Ordering::SeqCst);
        let err = backup_once(&repo, &dir).await.unwrap_err().to_string();
        assert!(
            err.contains("Object Lock retention") && err.contains("AccessDenied"),
            "{err}"
        );
        store.fail.store(false, Ordering::SeqCst);
        backup_once(&repo, &dir).await.unwrap();
        let packs = repo.load_index().await.unwrap().pack_ids().len();
        assert_eq!(packs_raised(&store).len(), packs, "unknown locks are raised");
        assert_eq!(store.list(layout::RETENTION).await.unwrap().len(), 1);
    }

    /// The pack keys whose retention was raised, sorted.
    fn packs_raised(store: &Locking) -> Vec<String> {
        let raised = store.raised.lock().unwrap();
        let mut packs: Vec<String> = raised
            .iter()
            .map(|r| r.0.clone())
            .filter(|k| k.starts_with("data/"))
            .collect();
        packs.sort();
        packs
    }

    fn quick_kdf() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    async fn forget_ledgers(store: &Locking) {
        for ledger in store.list(layout::RETENTION).await.unwrap() {
            store.delete(&ledger.key).await.unwrap();
        }
        store.raised.lock().unwrap().clear();
    }

    /// Raised pack keys, sorted, against every pack `repo` indexes.
    async fn raised_and_indexed(store: &Locking, repo: &Repository) -> (Vec<String>, Vec<String>) {
        let raised = packs_raised(store);
        let index = repo.load_index().await.unwrap();
        let mut packs: Vec<String> = index.pack_ids().iter().map(layout::pack).collect();
        packs.sort();
        (raised, packs)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_into_a_locked_region_raises_the_packs_the_copied_snapshots_use() {
        let (store, dst, dir) = locked_repo_with_backup().await;
        // A replica without Object Lock backs up the same data: its snapshot is new to
        // `dst`, but every blob it uses is already in packs of `dst`.
        let plain = Arc::new(OpendalStore::memory(format!("plain-{}", rand::random::<u64>())).unwrap());
        let src = Repository::init_replica(plain, &dst, b"pw", quick_kdf()).await.unwrap();
        backup_once(&src, &dir).await.unwrap();
        forget_ledgers(&store).await;

        let report = crate::engine::sync::sync(&src, &dst, None).await.unwrap();
        assert_eq!((report.snapshots, report.packs), (1, 0), "{report:?}");
        let (raised, packs) = raised_and_indexed(&store, &dst).await;
        assert!(!packs.is_empty());
        assert_eq!(raised, packs, "every pack the synced snapshot uses is raised");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copy_into_a_locked_region_raises_the_packs_the_copied_snapshots_use() {
        let (store, dst, dir) = locked_repo_with_backup().await;
        let plain = Arc::new(OpendalStore::memory(format!("other-{}", rand::random::<u64>())).unwrap());
        let opts = InitOptions {
            kdf: quick_kdf(),
            ..InitOptions::default()
        };
        let src = Repository::init(plain, b"other", &opts).await.unwrap();
        backup_once(&src, &dir).await.unwrap();
        forget_ledgers(&store).await;

        let report = crate::engine::copy::copy(&src, &dst, &[]).await.unwrap();
        assert_eq!(report.snapshots.len(), 1);
        assert_eq!(report.blobs, 0, "the data re-keyed for `dst` is already there");
        let (raised, packs) = raised_and_indexed(&store, &dst).await;
        assert!(!packs.is_empty());
        assert_eq!(raised, packs, "every pack the copied snapshot uses is raised");

        // Nothing new to copy: nothing to raise either.
        store.raised.lock().unwrap().clear();
        let again = crate::engine::copy::copy(&src, &dst, &[]).await.unwrap();
        assert_eq!((again.snapshots.len(), again.skipped), (0, 1));
        assert!(store.raised.lock().unwrap().is_empty());
    }

    #[test]
    fn only_packs_locked_too_briefly_or_unknown_are_raised() {
        let now = Utc::now();
        let (a, b, c) = (PackId([1; 32]), PackId([2; 32]), PackId([3; 32]));
        let known = HashMap::from([(a, now + Duration::days(40)), (b, now + Duration::days(10))]);
        let (stale, report) = plan(&[a, b, c], &known, now, 30);
        let stale: HashSet<_> = stale.into_iter().collect();
        assert_eq!(stale, HashSet::from([b, c]));
        assert_eq!(report, LockReport { extended: 2, kept: 1 });
    }
}

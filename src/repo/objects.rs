//! What kind of object a key holds, and how each kind is written.
//!
//! The repository, not the store, decides which objects are locked: on a store that
//! can lock (S3 Object Lock, `object_lock_days=N`), the objects that make up a snapshot
//! (packs, snapshots and their signed manifests), the audit trail's segments, and those without which nothing can be decrypted and which
//! cannot be rebuilt (key objects and `config`) are written with a COMPLIANCE retention
//! of `N + slack` days. Everything else (index objects, leases, prune records,
//! retention ledgers, reports) is replaced or removed in normal operation, or can be
//! rebuilt, and is written without a lock. The slack (a quarter of `N`, at least one
//! day) means a pack in long use needs its retention raised about once per slack
//! period, not on every backup (`engine::immutable`).

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};

use super::error::Result;
use crate::storage::{PutOptions, Store};

/// The kinds of object a repository holds (docs/format.md, section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lease,
    PruneRecord,
    RetentionLedger,
    Report,
    Manifest,
    AuditSegment,
}

impl ObjectKind {
    /// Whether objects of this kind are written under Object Lock where the store can.
    pub fn locked(self) -> bool {
        use ObjectKind::*;
        matches!(self, Config | Key | Pack | Snapshot | Manifest | AuditSegment)
    }
}

/// Extra lock days beyond the promised `days`: a quarter of them, at least one.
pub fn slack_days(days: u32) -> u32 {
    (days / 4).max(1)
}

/// How long a lock set at `now` lasts in a store promising `days`.
pub fn lock_until(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now + Duration::days(i64::from(days + slack_days(days)))
}

/// The put options for an object of `kind` written now into `store`.
pub(crate) fn put_options(store: &dyn Store, kind: ObjectKind, if_absent: bool) -> PutOptions {
    let days = store.capabilities().lock_days.filter(|_| kind.locked());
    PutOptions {
        if_absent,
        retain_until: days.map(|days| lock_until(Utc::now(), days)),
    }
}

/// Write (or replace) the object `key` of `kind`.
pub(crate) async fn put(store: &dyn Store, kind: ObjectKind, key: &str, data: Bytes) -> Result<()> {
    store.put_with(key, data, put_options(store, kind, false)).await?;
    Ok(())
}

/// Write the object `key` of `kind` only if absent; `false` when it existed.
pub(crate) async fn put_if_absent(store: &dyn Store, kind: ObjectKind, key: &str, data: Bytes) -> Result<bool> {
    Ok(store.put_with(key, data, put_options(store, kind, true)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ids::{PackId, SnapshotId};
    use crate::repo::lock::LeaseKind;
    use crate::repo::{Repository, test_init_options};
    use crate::storage::{Capabilities, ObjectMeta, OpendalStore};
    use std::ops::Range;
    use std::sync::{Arc, Mutex};

    /// A memory store claiming Object Lock for 30 days: it stores every write plainly
    /// and records which keys were asked to be locked.
    #[derive(Debug)]
    struct Claims(OpendalStore, Mutex<Vec<(String, bool)>>);

    impl Claims {
        fn new(name: &str) -> Self {
            Self(OpendalStore::memory(name).unwrap(), Mutex::default())
        }

        /// Whether the last write of a key starting with `prefix` was locked.
        fn locked(&self, prefix: &str) -> bool {
            let writes = self.1.lock().unwrap();
            let last = writes.iter().rev().find(|(k, _)| k.starts_with(prefix));
            last.unwrap_or_else(|| panic!("no write under {prefix}")).1
        }
    }

    #[async_trait::async_trait]
    impl Store for Claims {
        fn address(&self) -> &str {
            self.0.address()
        }
        async fn put(&self, key: &str, data: Bytes) -> crate::storage::Result<()> {
            self.0.put(key, data).await
        }
        async fn put_if_absent(&self, key: &str, data: Bytes) -> crate::storage::Result<bool> {
            self.0.put_if_absent(key, data).await
        }
        async fn get(&self, key: &str) -> crate::storage::Result<Bytes> {
            self.0.get(key).await
        }
        async fn get_range(&self, key: &str, range: Range<u64>) -> crate::storage::Result<Bytes> {
            self.0.get_range(key, range).await
        }
        async fn list(&self, prefix: &str) -> crate::storage::Result<Vec<ObjectMeta>> {
            self.0.list(prefix).await
        }
        async fn delete(&self, key: &str) -> crate::storage::Result<()> {
            self.0.delete(key).await
        }
        async fn stat(&self, key: &str) -> crate::storage::Result<Option<ObjectMeta>> {
            self.0.stat(key).await
        }
        async fn put_with(&self, key: &str, data: Bytes, opts: PutOptions) -> crate::storage::Result<bool> {
            self.1
                .lock()
                .unwrap()
                .push((key.to_string(), opts.retain_until.is_some()));
            let plain = PutOptions {
                retain_until: None,
                ..opts
            };
            self.0.put_with(key, data, plain).await
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities { lock_days: Some(30) }
        }
    }

    #[tokio::test]
    async fn a_repository_locks_exactly_the_kinds_it_cannot_rebuild() {
        let store = Arc::new(Claims::new("memory://objects-repo"));
        let repo = Repository::init(store.clone(), b"pw", &test_init_options())
            .await
            .unwrap();
        repo.save_pack(&PackId([1; 32]), Bytes::from_static(b"pack"))
            .await
            .unwrap();
        repo.save_index(&Default::default()).await.unwrap();
        repo.put_snapshot(&SnapshotId([2; 32]), Bytes::from_static(b"snap"))
            .await
            .unwrap();
        repo.put_manifest(&SnapshotId([2; 32]), Bytes::from_static(b"manifest"))
            .await
            .unwrap();
        repo.lease(LeaseKind::Backup, "test")
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        for locked in ["config", "keys/", "data/", "snapshots/", "manifests/"] {
            assert!(store.locked(locked), "{locked} is locked");
        }
        for plain in ["index/", "locks/"] {
            assert!(!store.locked(plain), "{plain} is not locked");
        }
    }

    #[test]
    fn snapshot_data_keys_and_config_are_locked_the_rest_not() {
        use ObjectKind::*;
        let store = Claims::new("memory://objects-policy");
        let before = Utc::now();
        for kind in [Config, Key, Pack, Snapshot, Manifest, AuditSegment] {
            let opts = put_options(&store, kind, false);
            let until = opts.retain_until.expect("locked kind");
            // 30 days plus a slack of 7.
            assert!(until >= before + Duration::days(37) && until <= Utc::now() + Duration::days(37));
        }
        for kind in [Index, Lease, PruneRecord, RetentionLedger, Report] {
            assert_eq!(
                put_options(&store, kind, true),
                PutOptions {
                    if_absent: true,
                    retain_until: None
                }
            );
        }
        let plain = OpendalStore::memory("memory://objects-plain").unwrap();
        assert_eq!(put_options(&plain, Pack, false).retain_until, None);
    }

    #[test]
    fn slack_is_a_quarter_and_at_least_a_day() {
        assert_eq!(
            (slack_days(1), slack_days(4), slack_days(30), slack_days(365)),
            (1, 1, 7, 91)
        );
    }
}

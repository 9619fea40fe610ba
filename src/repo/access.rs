//! Typed access to packs, index objects, snapshots and leases beyond reading and
//! sealing them (`mod.rs`): listing, ranged reads, deletion, byte-for-byte copies to a
//! replica, and the Object Lock upkeep of packs.
//!
//! Layers above name objects by id and never by key, so what a name looks like and
//! how each kind is written (locked or not) is decided here only.

use std::collections::HashMap;
use std::ops::Range;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::bounded::{MAX_SEALED_OBJECT, read_bounded};
use super::error::{RepoError, Result};
use super::lock::{self, Lease, LeaseInfo, LeaseKind};
use super::objects::ObjectKind;
use super::{Repository, layout};
use crate::format::ids::{IndexId, PackId, SnapshotId};

impl Repository {
    /// Every stored pack and its size.
    pub async fn list_packs(&self) -> Result<HashMap<PackId, u64>> {
        let listed = self.store.list(layout::DATA).await?;
        Ok(listed
            .into_iter()
            .filter_map(|m| PackId::from_hex(layout::id_part(&m.key)).ok().map(|id| (id, m.size)))
            .collect())
    }

    /// Bytes `range` of a pack (shorter if the pack is).
    pub async fn read_pack_range(&self, id: &PackId, range: Range<u64>) -> Result<Bytes> {
        Ok(self.store.get_range(&layout::pack(id), range).await?)
    }

    pub async fn delete_pack(&self, id: &PackId) -> Result<()> {
        Ok(self.store.delete(&layout::pack(id)).await?)
    }

    pub async fn delete_index(&self, id: &IndexId) -> Result<()> {
        Ok(self.store.delete(&layout::index(id)).await?)
    }

    /// Delete snapshot `id`, then its signed manifest if it has one.
    pub async fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.store.delete(&layout::snapshot(id)).await?;
        self.delete_manifest(id).await
    }

    /// Copy pack `id` byte for byte into the replica `dst`; returns its length.
    pub async fn copy_pack_to(&self, dst: &Repository, id: &PackId) -> Result<u64> {
        let key = layout::pack(id);
        self.copy_object(dst, ObjectKind::Pack, &key, id.0, self.max_pack_len())
            .await
    }

    /// Copy snapshot `id` byte for byte into the replica `dst`, after its signed
    /// manifest if it has one; returns the snapshot's length.
    pub async fn copy_snapshot_to(&self, dst: &Repository, id: &SnapshotId) -> Result<u64> {
        self.copy_manifest_to(dst, id).await?;
        let key = layout::snapshot(id);
        self.copy_object(dst, ObjectKind::Snapshot, &key, id.0, MAX_SEALED_OBJECT)
            .await
    }

    /// Copy one object whose name is the BLAKE3 hash of its bytes, verifying that hash,
    /// so damage in the source is never replicated.
    async fn copy_object(
        &self,
        dst: &Repository,
        kind: ObjectKind,
        key: &str,
        name: [u8; 32],
        max: u64,
    ) -> Result<u64> {
        let bytes = read_bounded(self.store.as_ref(), key, None, max).await?;
        if PackId::of_bytes(&bytes).0 != name {
            return Err(RepoError::damaged(
                format!("{}/{key}", self.address()),
                "content does not match its name; not copied",
            ));
        }
        let n = bytes.len() as u64;
        dst.put(kind, key, bytes).await?;
        Ok(n)
    }

    /// Take a lease of `kind` on this repository (see `lock`).
    pub async fn lease(&self, kind: LeaseKind, purpose: &str) -> Result<Lease> {
        Lease::acquire(self.store.clone(), kind, purpose).await
    }

    /// The leases whose holders are alive.
    pub async fn live_leases(&self) -> Result<Vec<LeaseInfo>> {
        lock::live_leases(self.store.as_ref(), None).await
    }

    /// Remove stale and unreadable leases; returns how many.
    pub async fn remove_stale_leases(&self) -> Result<usize> {
        lock::remove_stale(self.store.as_ref()).await
    }

    /// The stale leases (expired, holder gone, or unreadable), removing none.
    pub async fn stale_leases(&self) -> Result<Vec<lock::StaleLease>> {
        lock::stale_leases(self.store.as_ref()).await
    }

    /// Remove only the leases whose holder is a process on this host that is gone.
    pub async fn remove_abandoned_leases(&self) -> Result<usize> {
        lock::remove_abandoned(self.store.as_ref()).await
    }

    /// Days of S3 Object Lock retention this repository's packs and snapshots get;
    /// `None` when its store does not lock.
    pub fn lock_days(&self) -> Option<u32> {
        self.store.capabilities().lock_days
    }

    /// Raise the Object Lock retention of pack `id` to at least `until`.
    pub async fn extend_pack_lock(&self, id: &PackId, until: DateTime<Utc>) -> Result<()> {
        Ok(self.store.extend_lock(&layout::pack(id), until).await?)
    }

    /// Raise the Object Lock retention of snapshot `id` to at least `until`.
    pub async fn extend_snapshot_lock(&self, id: &SnapshotId, until: DateTime<Utc>) -> Result<()> {
        Ok(self.store.extend_lock(&layout::snapshot(id), until).await?)
    }

    /// Raise the Object Lock retention of every key object and of the config to at
    /// least `until`: they cannot be rebuilt, and no pack can be decrypted without them.
    pub async fn extend_key_and_config_locks(&self, until: DateTime<Utc>) -> Result<()> {
        for key in self.store.list(layout::KEYS).await? {
            self.store.extend_lock(&key.key, until).await?;
        }
        Ok(self.store.extend_lock(layout::CONFIG, until).await?)
    }
}

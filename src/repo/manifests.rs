//! Typed access to signed snapshot manifests (`manifests/<snapshot id>`).
//!
//! A manifest is stored beside its snapshot in every region, sealed like every object
//! (file names are as private as the data), written before the snapshot so that a
//! signed dataset's snapshot never appears without it, and locked under Object Lock
//! like the snapshot itself (`objects.rs`). Reading is bounded by the manifest limit
//! of `format::manifest`; the signature inside is checked by the caller, which knows
//! the trusted keys.

use bytes::Bytes;

use super::bounded::{MAX_SEALED_OBJECT, read_bounded};
use super::error::{RepoError, Result};
use super::objects::ObjectKind;
use super::{Repository, layout};
use crate::format::ids::SnapshotId;
use crate::format::manifest::StoredManifest;
use crate::storage::ErrorKind;

impl Repository {
    /// Seal a manifest once, so identical bytes can go to every region.
    pub fn seal_manifest(&self, manifest: &StoredManifest) -> Bytes {
        Bytes::from(self.seal(&manifest.encode(), self.compression()))
    }

    /// Store the sealed manifest of snapshot `id`.
    pub async fn put_manifest(&self, id: &SnapshotId, sealed: Bytes) -> Result<()> {
        self.put(ObjectKind::Manifest, &layout::manifest(id), sealed).await
    }

    /// The manifest stored for snapshot `id`, or `None` when there is none.
    pub async fn load_manifest(&self, id: &SnapshotId) -> Result<Option<StoredManifest>> {
        let key = layout::manifest(id);
        let raw = match read_bounded(self.store.as_ref(), &key, None, MAX_SEALED_OBJECT).await {
            Ok(raw) => raw,
            Err(RepoError::Storage(e)) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let what = format!("{}/{key}", self.address());
        let plain = self.open_sealed(&what, &raw)?;
        let manifest = StoredManifest::decode(&plain).map_err(|e| RepoError::damaged(what, e))?;
        Ok(Some(manifest))
    }

    /// Copy the manifest of snapshot `id`, if it has one, into the replica `dst`. It is
    /// opened first, so a damaged manifest is never replicated.
    pub async fn copy_manifest_to(&self, dst: &Repository, id: &SnapshotId) -> Result<()> {
        if let Some(manifest) = self.load_manifest(id).await? {
            dst.put_manifest(id, dst.seal_manifest(&manifest)).await?;
        }
        Ok(())
    }

    pub async fn delete_manifest(&self, id: &SnapshotId) -> Result<()> {
        Ok(self.store.delete(&layout::manifest(id)).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::format::dsse::Envelope;
    use crate::repo::test_init_options;
    use crate::storage::{OpendalStore, Store};

    async fn repo() -> (Arc<dyn Store>, Repository) {
        let store: Arc<dyn Store> =
            Arc::new(OpendalStore::memory(format!("manifests-{}", rand::random::<u64>())).unwrap());
        let repo = Repository::init(store.clone(), b"pw", &test_init_options())
            .await
            .unwrap();
        (store, repo)
    }

    fn manifest() -> StoredManifest {
        StoredManifest {
            version: StoredManifest::VERSION,
            snapshot: Envelope {
                payload: "e30=".into(),
                payload_type: "application/vnd.in-toto+json".into(),
                signatures: Vec::new(),
            },
            models: Vec::new(),
            copied_from: None,
        }
    }

    #[tokio::test]
    async fn manifests_round_trip_sealed_and_missing_is_none() {
        let (store, repo) = repo().await;
        let id = SnapshotId([3; 32]);
        assert_eq!(repo.load_manifest(&id).await.unwrap(), None);
        repo.put_manifest(&id, repo.seal_manifest(&manifest())).await.unwrap();
        assert_eq!(repo.load_manifest(&id).await.unwrap(), Some(manifest()));
        let raw = store.get(&format!("manifests/{id}")).await.unwrap();
        assert!(!raw.windows(4).any(|w| w == b"e30="), "stored manifests are sealed");
    }

    #[tokio::test]
    async fn a_garbled_manifest_is_damage_naming_it() {
        let (store, repo) = repo().await;
        let id = SnapshotId([4; 32]);
        store
            .put(&format!("manifests/{id}"), Bytes::from_static(b"garbage"))
            .await
            .unwrap();
        let err = repo.load_manifest(&id).await.unwrap_err();
        assert!(err.is_damage() && err.to_string().contains("manifests/"), "{err}");
    }
}

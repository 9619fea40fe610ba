//! One repository: open or create it, unwrap its key, and read and write its objects.
//!
//! A `Repository` holds an open store and the unwrapped master key; it seals and opens
//! every object so layers above never handle keys or nonces. It is the only owner of
//! the repository's objects: the store is private to this module, layers above reach
//! each kind of object through typed calls (`access`, `records`), and which kinds are
//! written under Object Lock is decided here (`objects`), not by callers or the store. Packs are produced as
//! bytes (`packer`) and written by the caller, so one pack can be uploaded
//! byte-identically to several regions.

mod access;
pub mod audit;
pub mod bounded;
pub mod error;
pub mod index;
pub mod keys;
pub mod layout;
pub mod lock;
mod manifests;
pub mod objects;
pub mod packer;
mod records;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rand::RngCore;

use crate::format::blob::{self, Compression};
use crate::format::byteplanes::Elements;
use crate::format::config::{ChunkerParams, Config, ConfigError};
pub use crate::format::crypto::KdfParams;
use crate::format::crypto::{Cipher, MasterKey};
use crate::format::ids::{BlobId, IndexId, KeyId, PackId, RepoId};
use crate::format::index::IndexFile;
use crate::format::tree::Tree;
use crate::storage::Store;
use objects::ObjectKind;

pub use crate::format::anomaly::Verdict;
/// Value types that layers above the repository name (they may not reach into `format`).
pub use crate::format::ids::SnapshotId;
pub use crate::format::report::ReportName;
pub use crate::format::snapshot::{Snapshot, Summary};
pub use error::{RepoError, Result};
pub use index::Index;

/// Options for creating a repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub cipher: Cipher,
    pub kdf: KdfParams,
    pub compression: i32,
    pub pack_size: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            cipher: Cipher::XChaCha20Poly1305,
            kdf: KdfParams::default(),
            // Level 1: a tenth less CPU than 3 on text for about 1.3% more of it stored
            // (docs/decisions/0013); float tensors use level 1 in any case.
            compression: 1,
            pack_size: 16 * 1024 * 1024,
        }
    }
}

/// Options for test repositories: the cheapest key derivation, so tests stay fast.
#[cfg(test)]
pub(crate) fn test_init_options() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    }
}

/// A key object older than this in a place without a config is taken for the remains
/// of an interrupted `init` and deleted by the next one.
const ABANDONED_KEY_MINUTES: i64 = 15;

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Arc<dyn Store>,
    key: MasterKey,
    config: Config,
    key_id: KeyId,
    skipped: Arc<Mutex<Vec<Skipped>>>,
}

/// What a skipped object was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SkippedKind {
    /// A key object: only its own password is locked out; nothing else is lost.
    Key,
    /// A snapshot: it cannot be listed or restored, which is damage found.
    Snapshot,
}

/// An object passed over as damaged so the others stay usable; the caller reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub kind: SkippedKind,
    /// The object, e.g. `snapshot 3fa4…` or `key 9c1e…` (full id); the repository is
    /// the one it was found in.
    pub what: String,
    pub detail: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.detail)
    }
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::thread_rng().fill_bytes(&mut out);
    out
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Where a new repository's key file comes from.
enum KeySource {
    /// Wrap the master key afresh (new salt).
    New,
    /// A copy of this key file of a peer repository, when known to open with the password.
    Peer(Arc<dyn Store>, KeyId),
}

impl Repository {
    /// Create a new repository with a fresh master key protected by `password`.
    pub async fn init(store: Arc<dyn Store>, password: &[u8], opts: &InitOptions) -> Result<Self> {
        let key = MasterKey::from_bytes(random());
        let config = Config {
            id: RepoId(random()),
            chunker: ChunkerParams::with_seed(rand::random()),
            compression: opts.compression,
            pack_size: opts.pack_size,
            cipher: Some(opts.cipher),
        };
        Self::create(store, key, config, password, opts.kdf).await
    }

    /// Create a repository that shares `peer`'s master key and chunker, so packs are
    /// byte-identical across both (a replica in another region).
    ///
    /// When this process opened `peer` with `password`, the replica gets a copy of the
    /// peer's key file, so that opening all regions of a plan derives the key once.
    pub async fn init_replica(
        store: Arc<dyn Store>,
        peer: &Repository,
        password: &[u8],
        kdf: KdfParams,
    ) -> Result<Self> {
        let shared = KeySource::Peer(peer.store.clone(), peer.key_id);
        Self::create_with(store, peer.key.clone(), peer.config.clone(), password, kdf, shared).await
    }

    async fn create(
        store: Arc<dyn Store>,
        key: MasterKey,
        config: Config,
        password: &[u8],
        kdf: KdfParams,
    ) -> Result<Self> {
        Self::create_with(store, key, config, password, kdf, KeySource::New).await
    }

    async fn create_with(
        store: Arc<dyn Store>,
        key: MasterKey,
        config: Config,
        password: &[u8],
        kdf: KdfParams,
        key_source: KeySource,
    ) -> Result<Self> {
        if store.stat(layout::CONFIG).await?.is_some() {
            return Err(RepoError::AlreadyExists(store.address().to_string()));
        }
        store.check_setup().await?;
        // The config's create-only write is what keeps two concurrent inits from both
        // succeeding (the second would replace the first's master key); a server that
        // ignores `If-None-Match` cannot give that, so no repository is made there.
        if !crate::storage::probe_conditional_writes(store.as_ref()).await? {
            return Err(RepoError::Invalid(format!(
                "{} does not honour conditional writes (If-None-Match: a second create-only write of one \
                 key replaced the first) — a repository there could be overwritten by a concurrent init; \
                 use a server that supports conditional writes",
                store.address()
            )));
        }
        // Keys without a config are left by an init that was interrupted; they wrap a
        // master key nothing was ever encrypted with.
        keys::remove_abandoned(store.as_ref(), chrono::Duration::minutes(ABANDONED_KEY_MINUTES)).await?;
        let copied = match &key_source {
            KeySource::Peer(peer, id) => keys::copy_key_file(peer.as_ref(), id, store.as_ref(), password).await?,
            KeySource::New => None,
        };
        let key_id = match copied {
            Some(id) => id,
            None => keys::write_key(store.as_ref(), &key, password, kdf, "initial").await?,
        };
        let bytes = config.encode(&key, &random::<24>()[..config.cipher().nonce_len()]);
        // The config is written last and only if absent: a repository exists once it
        // is complete, and two concurrent inits cannot both win.
        if !objects::put_if_absent(store.as_ref(), ObjectKind::Config, layout::CONFIG, Bytes::from(bytes)).await? {
            store.delete(&layout::key(&key_id)).await?;
            return Err(RepoError::AlreadyExists(store.address().to_string()));
        }
        Ok(Self {
            store,
            key,
            config,
            key_id,
            skipped: Arc::default(),
        })
    }

    /// Open an existing repository with `password`.
    pub async fn open(store: Arc<dyn Store>, password: &[u8]) -> Result<Self> {
        let addr = store.address().to_string();
        let raw = match bounded::read_bounded(store.as_ref(), layout::CONFIG, None, bounded::MAX_CONFIG).await {
            Ok(b) => b,
            Err(RepoError::Storage(e)) if e.is_not_found() => return Err(RepoError::NotFound(addr)),
            Err(e) => return Err(e),
        };
        Config::peek(&raw).map_err(|source| match source {
            ConfigError::Magic => RepoError::damaged(format!("{addr}/config"), source),
            source => RepoError::Unsupported {
                addr: addr.clone(),
                source,
            },
        })?;
        store.check_setup().await?;
        let (key_id, key, skipped) =
            keys::find_key(store.as_ref(), password, |k| Config::decode(&raw, k).is_ok()).await?;
        let config = Config::decode(&raw, &key).map_err(|e| match e {
            ConfigError::Body(_) | ConfigError::Json(_) | ConfigError::OutOfBounds(_) => {
                RepoError::damaged(format!("{addr}/config"), e)
            }
            other => RepoError::Unsupported {
                addr: addr.clone(),
                source: other,
            },
        })?;
        Ok(Self {
            store,
            key,
            config,
            key_id,
            skipped: Arc::new(Mutex::new(skipped)),
        })
    }

    /// Objects passed over as damaged since this repository was opened (damaged key
    /// objects at open, unreadable snapshots when listing), each named once.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.skipped.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn skip(&self, item: Skipped) {
        if let Ok(mut list) = self.skipped.lock()
            && !list.iter().any(|s| s.what == item.what)
        {
            list.push(item);
        }
    }

    pub fn address(&self) -> &str {
        self.store.address()
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn key(&self) -> &MasterKey {
        &self.key
    }
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }
    pub fn cipher(&self) -> Cipher {
        self.config.cipher()
    }
    pub fn compression(&self) -> Compression {
        Compression(self.config.compression)
    }

    fn nonce(&self) -> Vec<u8> {
        random::<24>()[..self.cipher().nonce_len()].to_vec()
    }

    /// Seal a value for storage (compressed when that helps, then encrypted).
    pub fn seal(&self, data: &[u8], level: Compression) -> Vec<u8> {
        self.seal_as(data, level, None)
    }

    /// [`Repository::seal`] of a chunk of float `elements` (byte-plane compression).
    pub fn seal_as(&self, data: &[u8], level: Compression, elements: Option<Elements>) -> Vec<u8> {
        blob::seal_as(&self.key, self.cipher(), &self.nonce(), data, level, elements)
    }

    /// Id and sealed bytes of a blob.
    pub fn seal_blob(&self, data: &[u8]) -> (BlobId, Vec<u8>) {
        (self.key.blob_id(data), self.seal(data, self.compression()))
    }

    /// Open a stored value, naming `what` when it fails.
    pub fn open_sealed(&self, what: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        blob::open(&self.key, self.cipher(), sealed).map_err(|e| RepoError::damaged(what, e))
    }

    /// Write (or replace) an object of `kind`, locked if the kind and the store say so.
    async fn put(&self, kind: ObjectKind, key: &str, bytes: Bytes) -> Result<()> {
        objects::put(self.store.as_ref(), kind, key, bytes).await
    }

    pub async fn save_pack(&self, id: &PackId, bytes: Bytes) -> Result<()> {
        self.put(ObjectKind::Pack, &layout::pack(id), bytes).await
    }

    pub async fn save_index(&self, index: &IndexFile) -> Result<IndexId> {
        let sealed = self.seal(&index.encode(), Compression::OFF);
        let id = IndexId::of_bytes(&sealed);
        self.put(ObjectKind::Index, &layout::index(&id), Bytes::from(sealed))
            .await?;
        Ok(id)
    }

    pub async fn load_index_file(&self, id: &IndexId) -> Result<IndexFile> {
        let key = layout::index(id);
        let raw = bounded::read_bounded(self.store.as_ref(), &key, None, bounded::MAX_INDEX).await?;
        let what = format!("index {id}");
        if IndexId::of_bytes(&raw) != *id {
            return Err(RepoError::damaged(what, "content does not match its name"));
        }
        IndexFile::decode(&self.open_sealed(&what, &raw)?).map_err(|e| RepoError::damaged(what, e))
    }

    pub async fn save_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        let (id, sealed) = self.seal_snapshot(snap);
        self.put_snapshot(&id, sealed).await?;
        Ok(id)
    }

    /// Seal a snapshot once, so identical bytes (and id) can go to every region.
    pub fn seal_snapshot(&self, snap: &Snapshot) -> (SnapshotId, Bytes) {
        let sealed = self.seal(&snap.encode(), self.compression());
        (SnapshotId::of_bytes(&sealed), Bytes::from(sealed))
    }

    pub async fn put_snapshot(&self, id: &SnapshotId, sealed: Bytes) -> Result<()> {
        self.put(ObjectKind::Snapshot, &layout::snapshot(id), sealed).await
    }

    /// Whether `other` shares this repository's master key and chunker (a replica).
    pub fn is_replica_of(&self, other: &Repository) -> bool {
        self.key.raw() == other.key.raw() && self.config.chunker == other.config.chunker
    }

    pub async fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let key = layout::snapshot(id);
        let raw = match bounded::read_bounded(self.store.as_ref(), &key, None, bounded::MAX_SEALED_OBJECT).await {
            Err(RepoError::Storage(e)) if e.is_not_found() => return Err(RepoError::NoSnapshot(id.to_hex())),
            other => other?,
        };
        let what = format!("snapshot {id}");
        if SnapshotId::of_bytes(&raw) != *id {
            return Err(RepoError::damaged(what, "content does not match its name"));
        }
        Snapshot::decode(&self.open_sealed(&what, &raw)?).map_err(|e| RepoError::damaged(what, e))
    }

    /// The names under `prefix` that are ids (64 hex characters), sorted.
    async fn list_ids(&self, prefix: &str) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .store
            .list(prefix)
            .await?
            .into_iter()
            .map(|m| layout::id_part(&m.key).to_string())
            .filter(|s| s.len() == 64)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The names of the index objects, sorted (each a 64-character hex id).
    pub async fn index_names(&self) -> Result<Vec<String>> {
        self.list_ids(layout::INDEX).await
    }

    pub async fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let ids = self.list_ids(layout::SNAPSHOTS).await?;
        Ok(ids.iter().filter_map(|s| SnapshotId::from_hex(s).ok()).collect())
    }

    /// All readable snapshots, oldest first. A snapshot that is damaged (unreadable,
    /// undecodable, too large) is passed over and recorded in [`Repository::skipped`],
    /// so one bad object does not hide the others; one removed since the listing is
    /// left out.
    pub async fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let (good, bad) = self.read_snapshots().await?;
        for item in bad {
            self.skip(item);
        }
        Ok(good)
    }

    /// All snapshots, oldest first, or an error naming every damaged one: for callers
    /// that must not act on a partial list, such as a plan judging one region (which
    /// then fails that region only).
    pub async fn all_snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let (good, bad) = self.read_snapshots().await?;
        if bad.is_empty() {
            return Ok(good);
        }
        let names: Vec<String> = bad.iter().map(|s| s.what.clone()).collect();
        Err(RepoError::damaged(
            format!("{} in {}", names.join(", "), self.address()),
            bad.iter().map(|s| s.detail.as_str()).collect::<Vec<_>>().join("; "),
        ))
    }

    async fn read_snapshots(&self) -> Result<(Vec<(SnapshotId, Snapshot)>, Vec<Skipped>)> {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for id in self.snapshot_ids().await? {
            match self.load_snapshot(&id).await {
                Ok(snap) => good.push((id, snap)),
                Err(RepoError::NoSnapshot(_)) => continue,
                Err(e) if e.is_damage() => bad.push(Skipped {
                    kind: SkippedKind::Snapshot,
                    what: format!("snapshot {id}"),
                    detail: match e {
                        RepoError::Damaged { detail, .. } => detail,
                        other => other.to_string(),
                    },
                }),
                Err(e) => return Err(e),
            }
        }
        good.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((good, bad))
    }

    /// Resolve `latest` or a (prefix of a) snapshot id.
    pub async fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            let all = self.snapshots().await?;
            return all.into_iter().last().ok_or_else(|| RepoError::NoSnapshot(spec.into()));
        }
        let ids = self.snapshot_ids().await?;
        let matches: Vec<_> = ids.iter().filter(|id| id.to_hex().starts_with(spec)).collect();
        match matches.as_slice() {
            [one] => Ok((**one, self.load_snapshot(one).await?)),
            [] => Err(RepoError::NoSnapshot(spec.into())),
            _ => Err(RepoError::AmbiguousSnapshot(spec.into())),
        }
    }

    /// The longest object under `data/` this repository's writers produce.
    pub fn max_pack_len(&self) -> u64 {
        crate::format::pack::max_pack_len(self.config.pack_size)
    }

    /// Read a whole pack, refusing one longer than any pack of this repository can be.
    /// `size` is its length from a listing, if known.
    pub async fn read_pack(&self, id: &PackId, size: Option<u64>) -> Result<Bytes> {
        bounded::read_bounded(self.store.as_ref(), &layout::pack(id), size, self.max_pack_len()).await
    }

    /// Read one blob through the index, verifying its authenticity and id.
    pub async fn read_blob(&self, index: &Index, id: &BlobId) -> Result<Vec<u8>> {
        let loc = index.get(id).ok_or_else(|| RepoError::MissingBlob(id.to_hex()))?;
        let pack = index.pack_id(loc.pack);
        let range = loc.offset as u64..(loc.offset + loc.length) as u64;
        let sealed = self.store.get_range(&layout::pack(&pack), range).await?;
        blob::open_verified(&self.key, self.cipher(), id, &sealed)
            .map_err(|e| RepoError::damaged(format!("blob {} in pack {}", id.short(), pack.short()), e))
    }

    pub async fn load_tree(&self, index: &Index, id: &BlobId) -> Result<Tree> {
        let bytes = self.read_blob(index, id).await?;
        Tree::decode(&bytes).map_err(|e| RepoError::damaged(format!("tree {}", id.short()), e))
    }

    /// Load every index object into memory.
    pub async fn load_index(&self) -> Result<Index> {
        let mut files = Vec::new();
        for hex in self.index_names().await? {
            let id = IndexId::from_hex(&hex).map_err(|e| RepoError::damaged(format!("index {hex}"), e))?;
            match self.load_index_file(&id).await {
                Ok(file) => files.push((id, file)),
                // Deleted by a prune between listing and reading: its replacement is listed.
                Err(RepoError::Storage(e)) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Index::from_files(&files))
    }
}

//! Passwords: each `keys/` object wraps the master key under one password.

use bytes::Bytes;

use super::bounded::{MAX_KEY, read_bounded};
use super::error::{RepoError, Result};
use super::objects::{self, ObjectKind};
use super::{Repository, Skipped, SkippedKind, hostname, layout, random};
use crate::format::config::{ConfigError, KeyFile};
use crate::format::crypto::{KdfParams, MasterKey, digest};
use crate::format::ids::KeyId;
use crate::storage::Store;

/// One listed key, for `lifeboat key list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: KeyId,
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub label: String,
    pub current: bool,
}

/// Master keys this process has unwrapped or wrapped, by key file content and password,
/// so that replicas sharing one key file (see `copy_key_file`) cost one key derivation
/// per process instead of one per region. Holds nothing the opened repositories do
/// not hold already.
static UNLOCKED: std::sync::Mutex<Vec<([u8; 32], MasterKey)>> = std::sync::Mutex::new(Vec::new());

fn cache_slot(key_file: &[u8], password: &[u8]) -> [u8; 32] {
    digest("lifeboat key cache v1", &[key_file, password])
}

fn cached(key_file: &[u8], password: &[u8]) -> Option<MasterKey> {
    let slot = cache_slot(key_file, password);
    let cache = UNLOCKED.lock().ok()?;
    cache.iter().find(|(s, _)| *s == slot).map(|(_, k)| k.clone())
}

#[cfg(test)]
fn forget(key_file: &[u8], password: &[u8]) {
    let slot = cache_slot(key_file, password);
    if let Ok(mut cache) = UNLOCKED.lock() {
        cache.retain(|(s, _)| *s != slot);
    }
}

fn remember(key_file: &[u8], password: &[u8], key: &MasterKey) {
    let slot = cache_slot(key_file, password);
    if let Ok(mut cache) = UNLOCKED.lock()
        && !cache.iter().any(|(s, _)| *s == slot)
    {
        cache.push((slot, key.clone()));
    }
}

/// Give `store` a copy of the key file `key_id` of `from`, when this process knows that
/// `password` opens it: a replica then opens with the same derivation as its peer.
/// Returns `None` (and writes nothing) when the key file is not known here.
pub(crate) async fn copy_key_file(
    from: &dyn Store,
    key_id: &KeyId,
    store: &dyn Store,
    password: &[u8],
) -> Result<Option<KeyId>> {
    let raw = read_bounded(from, &layout::key(key_id), None, MAX_KEY).await?;
    if cached(&raw, password).is_none() {
        return Ok(None);
    }
    let id = KeyId::of_bytes(&raw);
    objects::put(store, ObjectKind::Key, &layout::key(&id), raw).await?;
    Ok(Some(id))
}

pub(crate) async fn write_key(
    store: &dyn Store,
    key: &MasterKey,
    password: &[u8],
    kdf: KdfParams,
    label: &str,
) -> Result<KeyId> {
    let kf = KeyFile::wrap(
        key,
        password,
        kdf,
        random(),
        random(),
        chrono::Utc::now(),
        &hostname(),
        label,
    )
    .map_err(|e| RepoError::Invalid(e.to_string()))?;
    let bytes = kf.encode();
    let id = KeyId::of_bytes(&bytes);
    remember(&bytes, password, key);
    objects::put(store, ObjectKind::Key, &layout::key(&id), Bytes::from(bytes)).await?;
    Ok(id)
}

/// Before a repository is created at `store`: delete key objects that an interrupted
/// `init` left more than `age` ago. Younger ones may belong to an `init` running right
/// now, whose config would be unusable without its key; they are kept, and `open`
/// passes over a key that does not fit the config. Unreadable key objects are kept.
pub(crate) async fn remove_abandoned(store: &dyn Store, age: chrono::Duration) -> Result<usize> {
    let cutoff = chrono::Utc::now() - age;
    let mut removed = 0;
    for meta in store.list(layout::KEYS).await? {
        if meta.size > MAX_KEY {
            continue;
        }
        let raw = store.get(&meta.key).await?;
        if KeyFile::decode(&raw).is_ok_and(|kf| kf.created < cutoff) {
            store.delete(&meta.key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The key objects of `store`, cheapest to try first (Argon2 memory × passes, then
/// oldest first), and those that are damaged (too large, content not matching the name,
/// not decodable, or Argon2 parameters beyond the caps): one damaged or planted key
/// object must not lock out the passwords of the others, nor make every open pay for it.
async fn read_keys(store: &dyn Store) -> Result<(Vec<(KeyId, KeyFile, Bytes)>, Vec<Skipped>)> {
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    for meta in store.list(layout::KEYS).await? {
        let Ok(id) = KeyId::from_hex(layout::id_part(&meta.key)) else {
            continue;
        };
        match read_key(store, &meta, &id).await {
            Ok(Ok((kf, raw))) => out.push((id, kf, raw)),
            Ok(Err(detail)) => damaged.push(Skipped {
                kind: SkippedKind::Key,
                what: format!("key {id}"),
                detail,
            }),
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|(_, k, _)| (k.kdf.cost(), k.created));
    Ok((out, damaged))
}

/// One key object, or why it is damaged; storage errors other than its size stop.
async fn read_key(
    store: &dyn Store,
    meta: &crate::storage::ObjectMeta,
    id: &KeyId,
) -> Result<std::result::Result<(KeyFile, Bytes), String>> {
    let raw = match read_bounded(store, &meta.key, Some(meta.size), MAX_KEY).await {
        Ok(raw) => raw,
        Err(RepoError::Damaged { detail, .. }) => return Ok(Err(detail)),
        Err(e) => return Err(e),
    };
    if KeyId::of_bytes(&raw) != *id {
        return Ok(Err("content does not match its name".into()));
    }
    Ok(KeyFile::decode(&raw).map(|kf| (kf, raw)).map_err(|e| e.to_string()))
}

/// Find the key that `password` opens and that `fits` the repository (opens its
/// config). A key that opens but does not fit is one an interrupted `init` left behind
/// before its config was written; it is passed over. When no opened key fits, the first
/// one opened is returned, so the caller reports the config as damaged. Also returns the
/// damaged key objects that were passed over.
pub(crate) async fn find_key(
    store: &dyn Store,
    password: &[u8],
    fits: impl Fn(&MasterKey) -> bool,
) -> Result<(KeyId, MasterKey, Vec<Skipped>)> {
    let (keys, damaged) = read_keys(store).await?;
    // A key file this process already opened with this password needs no derivation,
    // wherever it sits in the list.
    if let Some((id, key)) = keys
        .iter()
        .find_map(|(id, _, raw)| cached(raw, password).map(|k| (*id, k)))
        .filter(|(_, k)| fits(k))
    {
        return Ok((id, key, damaged));
    }
    let mut unfit = None;
    for (id, kf, raw) in keys {
        let pw = password.to_vec();
        let opened = tokio::task::spawn_blocking(move || kf.unwrap_key(&pw))
            .await
            .map_err(|e| RepoError::Invalid(e.to_string()))?;
        match opened {
            Ok(key) if fits(&key) => {
                remember(&raw, password, &key);
                return Ok((id, key, damaged));
            }
            Ok(key) => {
                unfit.get_or_insert((id, key));
            }
            Err(ConfigError::WrongPassword) => continue,
            Err(e) => return Err(RepoError::damaged(format!("key {id}"), e)),
        }
    }
    match (unfit, damaged.first()) {
        (Some((id, key)), _) => Ok((id, key, damaged)),
        // The password may be that of the damaged key object.
        (None, Some(_)) => Err(RepoError::KeyDamaged {
            addr: store.address().to_string(),
            detail: damaged.iter().map(Skipped::to_string).collect::<Vec<_>>().join("; "),
        }),
        (None, None) => Err(RepoError::WrongPassword(store.address().to_string())),
    }
}

impl Repository {
    /// Add a password; data stays as it is.
    pub async fn add_key(&self, password: &[u8], kdf: KdfParams, label: &str) -> Result<KeyId> {
        write_key(self.store.as_ref(), &self.key, password, kdf, label).await
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        Ok(read_keys(self.store.as_ref())
            .await?
            .0
            .into_iter()
            .map(|(id, kf, _)| KeyInfo {
                current: id == self.key_id,
                id,
                created: kf.created,
                host: kf.host,
                label: kf.label,
            })
            .collect())
    }

    /// Remove a password. The key in use cannot be removed, so at least one always remains.
    pub async fn remove_key(&self, prefix: &str) -> Result<KeyId> {
        let keys = self.list_keys().await?;
        let found: Vec<_> = keys.iter().filter(|k| k.id.to_hex().starts_with(prefix)).collect();
        let key = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(RepoError::Invalid(format!(
                    "no key matches {prefix:?} — see `lifeboat key list`"
                )));
            }
            _ => {
                return Err(RepoError::Invalid(format!(
                    "key prefix {prefix:?} is ambiguous — give more characters"
                )));
            }
        };
        if key.current {
            return Err(RepoError::Invalid(format!(
                "key {} is the one this password opened — open with another password to remove it",
                key.id.short()
            )));
        }
        self.store.delete(&layout::key(&key.id)).await?;
        Ok(key.id)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::repo::InitOptions;
    use crate::storage::OpendalStore;

    fn memory() -> Arc<dyn Store> {
        Arc::new(OpendalStore::memory(format!("keys-{}", rand::random::<u64>())).unwrap())
    }

    fn cheap() -> InitOptions {
        crate::repo::test_init_options()
    }

    async fn key_names(store: &dyn Store) -> Vec<String> {
        let mut names: Vec<String> = store
            .list(layout::KEYS)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        names.sort();
        names
    }

    /// A key object as an `init` stopped before its config leaves it, made `age` ago.
    async fn abandoned_key(store: &dyn Store, age: chrono::Duration) -> String {
        let kf = KeyFile::wrap(
            &MasterKey::from_bytes(random()),
            b"pw",
            cheap().kdf,
            random(),
            random(),
            chrono::Utc::now() - age,
            "host",
            "initial",
        )
        .unwrap();
        let bytes = kf.encode();
        let key = layout::key(&KeyId::of_bytes(&bytes));
        store.put(&key, Bytes::from(bytes)).await.unwrap();
        key
    }

    #[tokio::test]
    async fn init_removes_old_abandoned_keys_and_open_passes_over_young_ones() {
        let store = memory();
        let old = abandoned_key(store.as_ref(), chrono::Duration::hours(2)).await;
        let young = abandoned_key(store.as_ref(), chrono::Duration::seconds(5)).await;
        let repo = Repository::init(store.clone(), b"pw", &cheap()).await.unwrap();
        let names = key_names(store.as_ref()).await;
        assert!(!names.contains(&old), "an abandoned key of two hours ago is removed");
        assert!(
            names.contains(&young),
            "a key a running init may have just written is kept"
        );
        assert_eq!(names.len(), 2);
        // The young key opens with the same password, is older than the new one, and
        // does not fit the config: open must pass over it.
        let new_key = store.get(&layout::key(repo.key_id())).await.unwrap();
        forget(&new_key, b"pw");
        let opened = Repository::open(store, b"pw").await.unwrap();
        assert_eq!(opened.key_id(), repo.key_id());
    }

    #[tokio::test]
    async fn a_replica_made_here_shares_its_peers_key_file() {
        let (a, b) = (memory(), memory());
        let peer = Repository::init(a.clone(), b"pw", &cheap()).await.unwrap();
        let replica = Repository::init_replica(b.clone(), &peer, b"pw", cheap().kdf)
            .await
            .unwrap();
        assert_eq!(key_names(a.as_ref()).await, key_names(b.as_ref()).await);
        assert!(replica.is_replica_of(&peer));
        let reopened = Repository::open(b.clone(), b"pw").await.unwrap();
        assert_eq!(reopened.key.raw(), peer.key.raw());
        // The cache never opens a repository for another password.
        let err = Repository::open(b, b"not-pw").await.unwrap_err();
        assert!(matches!(err, RepoError::WrongPassword(_)), "{err}");
    }

    #[tokio::test]
    async fn no_repository_is_made_where_conditional_writes_are_ignored() {
        let store = Arc::new(crate::storage::FaultStore::new(memory()));
        store.ignore_conditional_writes();
        let err = Repository::init(store.clone(), b"pw", &cheap())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not honour conditional writes"), "{err}");
        assert!(store.list("").await.unwrap().is_empty(), "nothing is left behind");
    }

    #[tokio::test]
    async fn a_replica_for_another_password_gets_its_own_key_file() {
        let (a, b) = (memory(), memory());
        let peer = Repository::init(a.clone(), b"pw", &cheap()).await.unwrap();
        Repository::init_replica(b.clone(), &peer, b"other", cheap().kdf)
            .await
            .unwrap();
        assert_ne!(key_names(a.as_ref()).await, key_names(b.as_ref()).await);
        assert!(Repository::open(b.clone(), b"other").await.is_ok());
        assert!(Repository::open(b, b"pw").await.is_err());
    }
}

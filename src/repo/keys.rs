//! Passwords: each `keys/` object wraps the master key under one password.

use bytes::Bytes;

use super::error::{RepoError, Result};
use super::{Repository, hostname, layout, random};
use crate::format::config::{ConfigError, KeyFile};
use crate::format::crypto::{KdfParams, MasterKey};
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
    store.put(&layout::key(&id), Bytes::from(bytes)).await?;
    Ok(id)
}

async fn read_keys(store: &dyn Store) -> Result<Vec<(KeyId, KeyFile)>> {
    let mut out = Vec::new();
    for meta in store.list(layout::KEYS).await? {
        let Ok(id) = KeyId::from_hex(layout::id_part(&meta.key)) else {
            continue;
        };
        let raw = store.get(&meta.key).await?;
        let kf = KeyFile::decode(&raw).map_err(|e| RepoError::damaged(format!("key {id}"), e))?;
        out.push((id, kf));
    }
    out.sort_by_key(|(_, k)| k.created);
    Ok(out)
}

/// Find the key that `password` opens.
pub(crate) async fn find_key(store: &dyn Store, password: &[u8]) -> Result<(KeyId, MasterKey)> {
    for (id, kf) in read_keys(store).await? {
        let pw = password.to_vec();
        let opened = tokio::task::spawn_blocking(move || kf.unwrap_key(&pw))
            .await
            .map_err(|e| RepoError::Invalid(e.to_string()))?;
        match opened {
            Ok(key) => return Ok((id, key)),
            Err(ConfigError::WrongPassword) => continue,
            Err(e) => return Err(RepoError::damaged(format!("key {id}"), e)),
        }
    }
    Err(RepoError::WrongPassword(store.address().to_string()))
}

impl Repository {
    /// Add a password; data stays as it is.
    pub async fn add_key(&self, password: &[u8], kdf: KdfParams, label: &str) -> Result<KeyId> {
        write_key(self.store.as_ref(), &self.key, password, kdf, label).await
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        Ok(read_keys(self.store.as_ref())
            .await?
            .into_iter()
            .map(|(id, kf)| KeyInfo {
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

//! The repository `config` object and the wrapped keys in `keys/`.
//!
//! `config` = `"LIFEBOAT"` (8 bytes) || format version (u32 LE) || cipher code (u8) ||
//! sealed JSON body. The magic, version and cipher are readable without a password,
//! so an unknown version is reported before anyone is asked for one; the body holds
//! the chunker secret and is sealed under the master key.
//!
//! A key object is plaintext JSON: Argon2id parameters, salt, and the master key sealed
//! with XChaCha20-Poly1305 under the key-encryption key derived from the password.

use serde::{Deserialize, Serialize};

use super::blob::{self, BlobError, Compression};
use super::crypto::{self, Cipher, CryptoError, KdfParams, MasterKey};
use super::ids::RepoId;

pub const MAGIC: &[u8; 8] = b"LIFEBOAT";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("not a Lifeboat repository (bad magic)")]
    Magic,
    #[error("repository format version {0} is not supported by this build (supports {FORMAT_VERSION})")]
    Version(u32),
    #[error("unknown cipher code {0}")]
    Cipher(u8),
    #[error("config body: {0}")]
    Body(#[from] BlobError),
    #[error("config body is malformed: {0}")]
    Json(String),
    #[error("wrong password")]
    WrongPassword,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Content-defined chunking parameters; the seed keys the gear table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    pub seed: u64,
}

impl ChunkerParams {
    /// 512 KiB / 1 MiB / 8 MiB: large enough to keep the index small for
    /// multi-gigabyte checkpoints, small enough to dedup partial changes.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 8 * 1024 * 1024,
            seed,
        }
    }
}

/// The sealed body of `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub id: RepoId,
    pub chunker: ChunkerParams,
    /// zstd level; 0 stores everything raw.
    pub compression: i32,
    /// Target size of a pack in bytes.
    pub pack_size: u32,
    #[serde(skip)]
    pub cipher: Option<Cipher>,
}

impl Config {
    pub fn cipher(&self) -> Cipher {
        self.cipher.unwrap_or(Cipher::XChaCha20Poly1305)
    }

    pub fn encode(&self, key: &MasterKey, nonce: &[u8]) -> Vec<u8> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(13 + body.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.push(self.cipher().code());
        out.extend_from_slice(&blob::seal(key, self.cipher(), nonce, &body, Compression::OFF));
        out
    }

    /// Read the unencrypted prefix: checks magic and version, returns the cipher.
    pub fn peek(bytes: &[u8]) -> Result<Cipher, ConfigError> {
        if bytes.len() < 13 || &bytes[..8] != MAGIC {
            return Err(ConfigError::Magic);
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != FORMAT_VERSION {
            return Err(ConfigError::Version(version));
        }
        Cipher::from_code(bytes[12]).ok_or(ConfigError::Cipher(bytes[12]))
    }

    pub fn decode(bytes: &[u8], key: &MasterKey) -> Result<Self, ConfigError> {
        let cipher = Self::peek(bytes)?;
        let body = blob::open(key, cipher, &bytes[13..])?;
        let mut cfg: Config = serde_json::from_slice(&body).map_err(|e| ConfigError::Json(e.to_string()))?;
        if !cfg.chunker.valid() {
            return Err(ConfigError::Json("chunker parameters are out of range".into()));
        }
        cfg.cipher = Some(cipher);
        Ok(cfg)
    }
}

/// One password's way in: the master key wrapped under Argon2id(password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    #[serde(default)]
    pub label: String,
    pub kdf: KdfParams,
    pub salt: String,
    pub sealed_master: String,
}

impl KeyFile {
    /// Wrap `master` under `password`; `salt` (16 bytes) and `nonce` (24) are random.
    #[allow(clippy::too_many_arguments)]
    pub fn wrap(
        master: &MasterKey,
        password: &[u8],
        kdf: KdfParams,
        salt: [u8; 16],
        nonce: [u8; 24],
        created: chrono::DateTime<chrono::Utc>,
        host: &str,
        label: &str,
    ) -> Result<Self, ConfigError> {
        let kek = crypto::derive_kek(password, &salt, kdf)?;
        let sealed = crypto::seal(Cipher::XChaCha20Poly1305, &kek, &nonce, master.raw());
        Ok(Self {
            created,
            host: host.to_string(),
            label: label.to_string(),
            kdf,
            salt: hex::encode(salt),
            sealed_master: hex::encode(sealed),
        })
    }

    /// Recover the master key; [`ConfigError::WrongPassword`] if it does not open.
    pub fn unwrap_key(&self, password: &[u8]) -> Result<MasterKey, ConfigError> {
        let salt = hex::decode(&self.salt).map_err(|e| ConfigError::Json(e.to_string()))?;
        let sealed = hex::decode(&self.sealed_master).map_err(|e| ConfigError::Json(e.to_string()))?;
        let kek = crypto::derive_kek(password, &salt, self.kdf)?;
        let raw = crypto::open(Cipher::XChaCha20Poly1305, &kek, &sealed).map_err(|_| ConfigError::WrongPassword)?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| ConfigError::Json("master key length".into()))?;
        Ok(MasterKey::from_bytes(raw))
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ConfigError> {
        serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn key_wrap_round_trip_and_wrong_password() {
        let mk = MasterKey::from_bytes([4; 32]);
        let kf = KeyFile::wrap(&mk, b"pw", cheap(), [1; 16], [2; 24], chrono::Utc::now(), "h", "").unwrap();
        let back = KeyFile::decode(&kf.encode()).unwrap();
        assert_eq!(back.unwrap_key(b"pw").unwrap().raw(), mk.raw());
        assert_eq!(back.unwrap_key(b"px").unwrap_err(), ConfigError::WrongPassword);
    }

    #[test]
    fn config_round_trip_and_version_check() {
        let mk = MasterKey::from_bytes([4; 32]);
        let cfg = Config {
            id: RepoId([8; 32]),
            chunker: ChunkerParams::with_seed(42),
            compression: 3,
            pack_size: 16 << 20,
            cipher: Some(Cipher::Aes256Gcm),
        };
        let mut bytes = cfg.encode(&mk, &[0; 12]);
        assert_eq!(Config::decode(&bytes, &mk).unwrap(), cfg);
        bytes[8] = 9;
        assert_eq!(Config::peek(&bytes), Err(ConfigError::Version(9)));
        assert_eq!(Config::peek(b"garbage-garbage"), Err(ConfigError::Magic));
    }

    #[test]
    fn out_of_range_chunker_is_refused() {
        let mk = MasterKey::from_bytes([4; 32]);
        let mut chunker = ChunkerParams::with_seed(42);
        chunker.max_size = 64 << 20;
        let cfg = Config {
            id: RepoId([8; 32]),
            chunker,
            compression: 3,
            pack_size: 16 << 20,
            cipher: Some(Cipher::XChaCha20Poly1305),
        };
        let err = Config::decode(&cfg.encode(&mk, &[0; 24]), &mk).unwrap_err();
        assert!(matches!(err, ConfigError::Json(m) if m.contains("chunker")));
    }
}

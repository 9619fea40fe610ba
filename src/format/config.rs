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

/// Largest `config` object read (an honest one is a few hundred bytes).
pub const MAX_CONFIG_LEN: usize = 64 * 1024;
/// Largest key object read (an honest one is about 500 bytes; the label is free text).
pub const MAX_KEY_LEN: usize = 64 * 1024;
/// Largest pack target a config may name; `init` allows 1 MiB to 1 GiB.
pub const MAX_PACK_SIZE: u32 = 1 << 30;
/// Highest zstd level a config may name (zstd's own maximum).
pub const MAX_COMPRESSION: i32 = 22;
/// Salt lengths a key object may carry (Argon2 needs at least 8 bytes; init writes 16).
const SALT_LEN: std::ops::RangeInclusive<usize> = 8..=64;
/// Length of the sealed master key: XChaCha20 nonce, 32-byte key, tag.
const SEALED_MASTER_LEN: usize = 24 + 32 + crypto::TAG_LEN;

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
    #[error("{0}")]
    OutOfBounds(String),
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
        if bytes.len() > MAX_CONFIG_LEN {
            return Err(too_long("config", bytes.len(), MAX_CONFIG_LEN));
        }
        let body = blob::open(key, cipher, &bytes[13..])?;
        let mut cfg: Config = serde_json::from_slice(&body).map_err(|e| ConfigError::Json(e.to_string()))?;
        if !cfg.chunker.valid() {
            return Err(ConfigError::Json("chunker parameters are out of range".into()));
        }
        cfg.check_bounds()?;
        cfg.cipher = Some(cipher);
        Ok(cfg)
    }

    /// Values that size buffers (pack target) or pick costs (zstd level) stay within
    /// what `init` can write.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_PACK_SIZE).contains(&self.pack_size) {
            return Err(ConfigError::OutOfBounds(format!(
                "pack_size {} is outside 1..={MAX_PACK_SIZE}",
                self.pack_size
            )));
        }
        if !(0..=MAX_COMPRESSION).contains(&self.compression) {
            return Err(ConfigError::OutOfBounds(format!(
                "compression {} is outside 0..={MAX_COMPRESSION}",
                self.compression
            )));
        }
        Ok(())
    }
}

fn too_long(what: &str, len: usize, max: usize) -> ConfigError {
    ConfigError::OutOfBounds(format!(
        "{what} object is {len} bytes, more than the {max} any honest one needs"
    ))
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

    /// Decode and bound a key object: its size, its Argon2 parameters (which decide what
    /// every client that tries it allocates), and the lengths of salt and sealed key.
    pub fn decode(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() > MAX_KEY_LEN {
            return Err(too_long("key", bytes.len(), MAX_KEY_LEN));
        }
        let kf: KeyFile = serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        kf.kdf
            .check()
            .map_err(|e| ConfigError::OutOfBounds(format!("Argon2 parameters beyond the caps: {e}")))?;
        if !SALT_LEN.contains(&(kf.salt.len() / 2)) || kf.sealed_master.len() != 2 * SEALED_MASTER_LEN {
            return Err(ConfigError::OutOfBounds(
                "salt or sealed master key has the wrong length".into(),
            ));
        }
        Ok(kf)
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

    fn encoded_key_with(edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
        let kf = KeyFile::wrap(
            &MasterKey::from_bytes([4; 32]),
            b"pw",
            cheap(),
            [1; 16],
            [2; 24],
            chrono::Utc::now(),
            "h",
            "",
        )
        .unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&kf.encode()).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn key_objects_beyond_the_bounds_are_refused() {
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: [(&str, Edit); 5] = [
            ("memory", Box::new(|v| v["kdf"]["memory_kib"] = 4_294_967_295u32.into())),
            ("passes", Box::new(|v| v["kdf"]["iterations"] = u32::MAX.into())),
            ("lanes", Box::new(|v| v["kdf"]["parallelism"] = u32::MAX.into())),
            ("salt", Box::new(|v| v["salt"] = "ab".repeat(1000).into())),
            ("sealed", Box::new(|v| v["sealed_master"] = "ab".into())),
        ];
        for (what, edit) in cases {
            let err = KeyFile::decode(&encoded_key_with(edit)).unwrap_err();
            assert!(matches!(err, ConfigError::OutOfBounds(_)), "{what}: {err}");
        }
        assert!(KeyFile::decode(&encoded_key_with(|_| ())).is_ok());
        let huge = encoded_key_with(|v| v["label"] = "x".repeat(MAX_KEY_LEN).into());
        assert!(matches!(KeyFile::decode(&huge), Err(ConfigError::OutOfBounds(m)) if m.contains("bytes")));
    }

    #[test]
    fn config_with_out_of_bounds_pack_size_or_level_is_refused() {
        let mk = MasterKey::from_bytes([4; 32]);
        let base = Config {
            id: RepoId([8; 32]),
            chunker: ChunkerParams::with_seed(42),
            compression: 3,
            pack_size: 16 << 20,
            cipher: Some(Cipher::XChaCha20Poly1305),
        };
        for cfg in [
            Config {
                pack_size: u32::MAX,
                ..base.clone()
            },
            Config {
                pack_size: 0,
                ..base.clone()
            },
            Config {
                compression: i32::MAX,
                ..base.clone()
            },
            Config {
                compression: -1,
                ..base.clone()
            },
        ] {
            let err = Config::decode(&cfg.encode(&mk, &[0; 24]), &mk).unwrap_err();
            assert!(matches!(err, ConfigError::OutOfBounds(_)), "{cfg:?}: {err}");
        }
        let mut long = base.encode(&mk, &[0; 24]);
        long.resize(MAX_CONFIG_LEN + 1, 0);
        assert!(matches!(Config::decode(&long, &mk), Err(ConfigError::OutOfBounds(_))));
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

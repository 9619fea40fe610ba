//! Keys and authenticated encryption.
//!
//! A repository has one random 256-bit master key. Two subkeys are derived from it
//! with BLAKE3's key derivation: one for the AEAD, one for keyed blob ids. The master
//! key itself is stored only wrapped: each `keys/` object seals it under
//! Argon2id(password, salt), so a password can rotate without touching any data.
//!
//! Every sealed value is `nonce || ciphertext || tag`; the nonce is random (24 bytes
//! for XChaCha20-Poly1305, 12 for AES-256-GCM) and comes in from the caller so this
//! module stays pure.

use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit, Nonce, Tag};
use serde::{Deserialize, Serialize};

use super::ids::BlobId;

pub const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("authentication failed: the data was altered or the key is wrong")]
    Auth,
    #[error("sealed value too short ({0} bytes)")]
    TooShort(usize),
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// The AEAD a repository uses for everything but key wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cipher {
    #[serde(rename = "xchacha20-poly1305")]
    XChaCha20Poly1305,
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

impl Cipher {
    pub fn nonce_len(self) -> usize {
        match self {
            Cipher::XChaCha20Poly1305 => 24,
            Cipher::Aes256Gcm => 12,
        }
    }
    /// Bytes a sealed value adds to its plaintext.
    pub fn overhead(self) -> usize {
        self.nonce_len() + TAG_LEN
    }
    pub fn code(self) -> u8 {
        match self {
            Cipher::XChaCha20Poly1305 => 1,
            Cipher::Aes256Gcm => 2,
        }
    }
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Cipher::XChaCha20Poly1305),
            2 => Some(Cipher::Aes256Gcm),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Cipher::XChaCha20Poly1305 => "xchacha20-poly1305",
            Cipher::Aes256Gcm => "aes-256-gcm",
        }
    }
    pub fn parse(name: &str) -> Option<Self> {
        [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm]
            .into_iter()
            .find(|c| c.name() == name)
    }
}

/// Seal `plain` under `key`: returns `nonce || ciphertext || tag`.
pub fn seal(cipher: Cipher, key: &[u8; 32], nonce: &[u8], plain: &[u8]) -> Vec<u8> {
    seal_parts(cipher, key, nonce, &[], plain)
}

/// Seal `prefix || body` without first copying them into one plaintext buffer:
/// the output is built once and encrypted in place. Same format as [`seal`].
pub fn seal_parts(cipher: Cipher, key: &[u8; 32], nonce: &[u8], prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let n = nonce.len();
    let mut out = Vec::with_capacity(n + prefix.len() + body.len() + TAG_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(prefix);
    out.extend_from_slice(body);
    seal_after_nonce(cipher, key, n, out)
}

/// Seal a buffer that holds the nonce (`nonce_len` bytes) followed by the plaintext:
/// the plaintext is encrypted where it lies and the tag appended. Same format as
/// [`seal`], for callers that build the plaintext in its final place.
pub fn seal_after_nonce(cipher: Cipher, key: &[u8; 32], nonce_len: usize, mut out: Vec<u8>) -> Vec<u8> {
    debug_assert_eq!(nonce_len, cipher.nonce_len());
    let at = nonce_len.min(out.len());
    let (nonce, plain) = out.split_at_mut(at);
    let tag = match cipher {
        Cipher::XChaCha20Poly1305 => encrypt_in_place::<XChaCha20Poly1305>(key, nonce, plain),
        Cipher::Aes256Gcm => encrypt_in_place::<Aes256Gcm>(key, nonce, plain),
    };
    // Encryption fails only for a nonce of the wrong length (the callers draw it at
    // `nonce_len`) or a plaintext beyond the cipher's limit (2^38 bytes, far above any
    // blob); the value then has no tag and can never be opened.
    if let Some(tag) = tag {
        out.extend_from_slice(&tag);
    }
    out
}

/// Where the ciphertext lies in a sealed value of `len` bytes (after the nonce,
/// before the tag); too short a value is refused.
fn ciphertext(cipher: Cipher, len: usize) -> Result<std::ops::Range<usize>, CryptoError> {
    let n = cipher.nonce_len();
    if len < n + TAG_LEN {
        return Err(CryptoError::TooShort(len));
    }
    Ok(n..len - TAG_LEN)
}

/// Decrypt `buf` in place with `cipher`; false unless `tag` authenticates it.
fn decrypt(cipher: Cipher, key: &[u8; 32], nonce: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
    match cipher {
        Cipher::XChaCha20Poly1305 => decrypt_in_place::<XChaCha20Poly1305>(key, nonce, buf, tag),
        Cipher::Aes256Gcm => decrypt_in_place::<Aes256Gcm>(key, nonce, buf, tag),
    }
}

/// Open a value produced by [`seal`], failing if a single bit was changed.
pub fn open(cipher: Cipher, key: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let ct = ciphertext(cipher, sealed.len())?;
    let mut plain = sealed[ct.clone()].to_vec();
    let opened = decrypt(cipher, key, &sealed[..ct.start], &mut plain, &sealed[ct.end..]);
    opened.then_some(plain).ok_or(CryptoError::Auth)
}

/// [`open`] where the value lies, in a buffer the caller owns and gives up: the
/// ciphertext is decrypted over itself and returned, without a copy. After a failure
/// the buffer's content is unspecified.
pub fn open_in_place<'a>(cipher: Cipher, key: &[u8; 32], sealed: &'a mut [u8]) -> Result<&'a mut [u8], CryptoError> {
    let ct = ciphertext(cipher, sealed.len())?;
    let (nonce, rest) = sealed.split_at_mut(ct.start);
    let (body, tag) = rest.split_at_mut(ct.len());
    if decrypt(cipher, key, nonce, body, tag) {
        Ok(body)
    } else {
        Err(CryptoError::Auth)
    }
}

/// Encrypt `buf` in place with cipher `A`, returning the tag.
fn encrypt_in_place<A: AeadInOut + KeyInit>(key: &[u8; 32], nonce: &[u8], buf: &mut [u8]) -> Option<Tag<A>> {
    let nonce = <&Nonce<A>>::try_from(nonce).ok()?;
    let aead = A::new_from_slice(key).ok()?;
    aead.encrypt_inout_detached(nonce, b"", buf.into()).ok()
}

/// Decrypt `buf` in place with cipher `A`; false unless `tag` authenticates it.
fn decrypt_in_place<A: AeadInOut + KeyInit>(key: &[u8; 32], nonce: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
    let (Ok(nonce), Ok(tag)) = (<&Nonce<A>>::try_from(nonce), <&Tag<A>>::try_from(tag)) else {
        return false;
    };
    A::new_from_slice(key).is_ok_and(|aead| aead.decrypt_inout_detached(nonce, b"", buf.into(), tag).is_ok())
}

/// The secret root of a repository and the subkeys derived from it.
#[derive(Clone)]
pub struct MasterKey {
    raw: [u8; 32],
    data: [u8; 32],
    id: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn from_bytes(raw: [u8; 32]) -> Self {
        Self {
            raw,
            data: blake3::derive_key("lifeboat v1 data encryption", &raw),
            id: blake3::derive_key("lifeboat v1 blob id", &raw),
        }
    }
    pub fn raw(&self) -> &[u8; 32] {
        &self.raw
    }
    pub fn data_key(&self) -> &[u8; 32] {
        &self.data
    }
    /// The keyed-BLAKE3 id of a blob's plaintext.
    pub fn blob_id(&self, plain: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.id, plain).as_bytes())
    }
    /// A streaming hasher producing the same ids as [`MasterKey::blob_id`].
    pub fn id_hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.id)
    }
}

/// Argon2id cost parameters stored with each wrapped key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB and 3 passes: about a quarter second on one core, per opening.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// Largest Argon2 memory a key object may ask for: 4 GiB, 64 times the default.
/// A key object is plaintext that anyone with write access to storage can plant, and
/// its parameters decide how much memory every client that tries it allocates.
pub const MAX_KDF_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Most Argon2 passes a key object may ask for (the default is 3).
pub const MAX_KDF_ITERATIONS: u32 = 16;
/// Most Argon2 lanes a key object may ask for (the default is 1).
pub const MAX_KDF_PARALLELISM: u32 = 64;

impl KdfParams {
    /// Refuse parameters beyond the caps above, or below Argon2's own minimums.
    pub fn check(&self) -> Result<(), CryptoError> {
        let bad =
            |what: &str, value: u32, range: &str| Err(CryptoError::Kdf(format!("{what} {value} is outside {range}")));
        if !(1..=MAX_KDF_PARALLELISM).contains(&self.parallelism) {
            return bad("parallelism", self.parallelism, "1..=64");
        }
        if !(1..=MAX_KDF_ITERATIONS).contains(&self.iterations) {
            return bad("iterations", self.iterations, "1..=16");
        }
        let least = 8 * self.parallelism;
        if !(least..=MAX_KDF_MEMORY_KIB).contains(&self.memory_kib) {
            return bad("memory_kib", self.memory_kib, "8 × parallelism..=4194304 (4 GiB)");
        }
        Ok(())
    }

    /// Relative cost of one derivation (memory × passes), for trying cheap keys first.
    pub fn cost(&self) -> u64 {
        u64::from(self.memory_kib) * u64::from(self.iterations)
    }
}

/// A digest of `parts` in BLAKE3's key-derivation mode under `context`, each part
/// length-prefixed so that two different splits of the same bytes never meet. For
/// in-process lookups (a cache slot), never for stored names.
pub fn digest(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    for part in parts {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    *h.finalize().as_bytes()
}

/// Derive the key-encryption key from a password.
///
/// The parameters are checked against the caps first, and Argon2's working memory is
/// reserved fallibly, so a host without that much memory gets an error, not an abort.
pub fn derive_kek(password: &[u8], salt: &[u8], p: KdfParams) -> Result<[u8; 32], CryptoError> {
    p.check()?;
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let mut blocks: Vec<argon2::Block> = Vec::new();
    blocks
        .try_reserve_exact(params.block_count())
        .map_err(|_| CryptoError::Kdf(format!("cannot reserve {} MiB for key derivation", p.memory_kib / 1024)))?;
    blocks.resize(params.block_count(), argon2::Block::default());
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into_with_memory(password, salt, &mut out, &mut blocks)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_both_ciphers() {
        for c in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
            let key = [7u8; 32];
            let nonce = vec![1u8; c.nonce_len()];
            let sealed = seal(c, &key, &nonce, b"hello");
            assert_eq!(sealed.len(), 5 + c.overhead());
            assert_eq!(open(c, &key, &sealed).unwrap(), b"hello");
        }
    }

    #[test]
    fn seal_parts_matches_seal_of_the_joined_plaintext() {
        for c in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
            let nonce = vec![3u8; c.nonce_len()];
            assert_eq!(
                seal_parts(c, &[5; 32], &nonce, b"\x01", b"body"),
                seal(c, &[5; 32], &nonce, b"\x01body")
            );
        }
    }

    /// Sealed bytes computed with another implementation (OpenSSL's ChaCha20-Poly1305
    /// and AES-256-GCM, XChaCha20's subkey by HChaCha20 as its draft specifies): any
    /// version of the AEAD crates must produce and open exactly these, so repositories
    /// written with an older one stay readable.
    #[test]
    fn sealed_bytes_match_known_answers_for_both_ciphers() {
        let plain: Vec<u8> = (0..100u8).collect();
        let cases = [
            (
                Cipher::XChaCha20Poly1305,
                concat!(
                    "00070e151c232a31383f464d545b626970777e858c939aa16fc4c3994ad5f4727bc6d8aa323c9555e08a966066dd7a0e",
                    "492323fe08125b42ae561bb3db0be37ee6600b13cd9600646d1b643ba46e95bd305135726eac15298d18862642be0b23",
                    "1028b51456fdf43f1e011c9598e1a695dbe125e7cf38fa699e15e4cb39060fc0d482c447358ad67b0466cd3e"
                ),
            ),
            (
                Cipher::Aes256Gcm,
                concat!(
                    "00070e151c232a31383f464dad63811dc1720cb2ebc3aea454332f651057395ba02d65fb149f7b97d63b0ca6b86c9831",
                    "717c094e4018cf98e610eaa6cf3cd6286c062ae487f4ee65568adeea61bb57422dd4623f2be73fb7c587c53a13aabe56",
                    "3f34e924c0e94800e19d087474b5223ac4ca4205bd1597c85bdbe4fd4726ef18"
                ),
            ),
        ];
        for (c, expected) in cases {
            let nonce: Vec<u8> = (0..c.nonce_len() as u8).map(|i| i.wrapping_mul(7)).collect();
            let sealed = seal(c, &[0x42; 32], &nonce, &plain);
            let hex: String = sealed.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, expected, "{}", c.name());
            assert_eq!(seal_parts(c, &[0x42; 32], &nonce, &plain[..1], &plain[1..]), sealed);
            assert_eq!(open(c, &[0x42; 32], &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn open_refuses_flipped_bit_and_wrong_key() {
        let c = Cipher::XChaCha20Poly1305;
        let mut sealed = seal(c, &[1; 32], &[0; 24], b"data");
        assert_eq!(open(c, &[2; 32], &sealed), Err(CryptoError::Auth));
        sealed[30] ^= 1;
        assert_eq!(open(c, &[1; 32], &sealed), Err(CryptoError::Auth));
    }

    #[test]
    fn opening_in_place_gives_what_open_gives_and_refuses_the_same_damage() {
        for c in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
            let nonce = vec![9u8; c.nonce_len()];
            let plain: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = seal(c, &[4; 32], &nonce, &plain);
            let mut buf = sealed.clone();
            assert_eq!(open_in_place(c, &[4; 32], &mut buf).unwrap(), &plain[..]);
            let mut wrong_key = sealed.clone();
            assert_eq!(open_in_place(c, &[5; 32], &mut wrong_key), Err(CryptoError::Auth));
            for at in [0, c.nonce_len(), sealed.len() - 1] {
                let mut flipped = sealed.clone();
                flipped[at] ^= 0x10;
                assert_eq!(
                    open_in_place(c, &[4; 32], &mut flipped),
                    Err(CryptoError::Auth),
                    "byte {at}"
                );
            }
            let mut short = sealed[..c.overhead() - 1].to_vec();
            assert_eq!(
                open_in_place(c, &[4; 32], &mut short),
                Err(CryptoError::TooShort(c.overhead() - 1))
            );
        }
    }

    #[test]
    fn kdf_parameters_beyond_the_caps_are_refused_before_any_allocation() {
        let ok = KdfParams::default();
        assert_eq!(ok.check(), Ok(()));
        let cases = [
            KdfParams {
                memory_kib: u32::MAX,
                ..ok
            },
            KdfParams {
                memory_kib: MAX_KDF_MEMORY_KIB + 1,
                ..ok
            },
            KdfParams {
                iterations: MAX_KDF_ITERATIONS + 1,
                ..ok
            },
            KdfParams { iterations: 0, ..ok },
            KdfParams {
                parallelism: MAX_KDF_PARALLELISM + 1,
                ..ok
            },
            KdfParams { parallelism: 0, ..ok },
            KdfParams {
                memory_kib: 8,
                parallelism: 2,
                iterations: 1,
            },
        ];
        for p in cases {
            let err = derive_kek(b"pw", &[0; 16], p).unwrap_err();
            assert!(
                matches!(&err, CryptoError::Kdf(m) if m.contains("outside")),
                "{p:?}: {err}"
            );
        }
        let edge = KdfParams {
            memory_kib: 16,
            iterations: MAX_KDF_ITERATIONS,
            parallelism: 2,
        };
        assert!(derive_kek(b"pw", &[0; 16], edge).is_ok());
    }

    #[test]
    fn subkeys_differ_from_master_and_each_other() {
        let mk = MasterKey::from_bytes([9; 32]);
        assert_ne!(mk.data_key(), mk.raw());
        assert_ne!(mk.blob_id(b"x").0, *blake3::hash(b"x").as_bytes());
        let mut h = mk.id_hasher();
        h.update(b"x");
        assert_eq!(mk.blob_id(b"x").0, *h.finalize().as_bytes());
    }
}

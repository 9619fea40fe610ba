//! Signing keys for snapshot manifests: ECDSA on P-256 with SHA-256.
//!
//! P-256 because the ecosystem's model-signature verifier (OpenSSF model signing, the
//! `key` method) accepts elliptic-curve keys only, and because every TLS library reads
//! it. Private keys are PKCS#8 documents in PEM (`-----BEGIN PRIVATE KEY-----`), public
//! keys SubjectPublicKeyInfo in PEM (`-----BEGIN PUBLIC KEY-----`), as OpenSSL writes
//! them, so a key made elsewhere works here and ours work elsewhere. Signatures are
//! ASN.1 DER, the form DSSE verifiers expect for ECDSA.
//!
//! A public key is named by its key id: the SHA-256 of its SubjectPublicKeyInfo DER,
//! in hex. Signing draws its nonce from the operating system's generator (ECDSA needs
//! a fresh secret per signature); nothing here reads a clock or a file.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};

/// The DER prefix of a P-256 SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier
/// { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }, followed by the
/// 65-byte uncompressed point `04 || X || Y`.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const POINT_LEN: usize = 65;
/// Longest PEM text read as a key: real P-256 keys are a few hundred bytes.
pub const MAX_PEM_LEN: usize = 16 * 1024;
/// Longest DER signature accepted (a P-256 ECDSA signature is at most 72 bytes).
pub const MAX_SIGNATURE_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM {0} block (expected `-----BEGIN {0}-----`)")]
    NotPem(&'static str),
    #[error("the PEM text is longer than {MAX_PEM_LEN} bytes, more than any key")]
    TooLong,
    #[error("the PEM body is not base64")]
    Base64,
    #[error("not an ECDSA P-256 public key (SubjectPublicKeyInfo)")]
    NotP256Public,
    #[error("not an unencrypted ECDSA P-256 private key (PKCS#8): {0}")]
    NotP256Private(String),
    #[error("the operating system's random generator failed")]
    Random,
}

/// A public key that verifies manifest signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    point: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", &self.key_id()[..16])
    }
}

impl PublicKey {
    /// Reads a `-----BEGIN PUBLIC KEY-----` block holding a P-256 key.
    pub fn from_pem(text: &[u8]) -> Result<Self, KeyError> {
        let der = pem_decode(text, "PUBLIC KEY")?;
        Self::from_spki_der(&der)
    }

    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let point = der.strip_prefix(&SPKI_P256_PREFIX[..]).ok_or(KeyError::NotP256Public)?;
        if point.len() != POINT_LEN || point[0] != 0x04 {
            return Err(KeyError::NotP256Public);
        }
        Ok(Self { point: point.to_vec() })
    }

    pub fn spki_der(&self) -> Vec<u8> {
        [&SPKI_P256_PREFIX[..], &self.point].concat()
    }

    /// The key in PEM exactly as OpenSSL writes it (64-character lines).
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.spki_der())
    }

    /// SHA-256 of the SubjectPublicKeyInfo DER, in hex: how manifests name their signer.
    pub fn key_id(&self) -> String {
        hex::encode(super::digest::sha256(&self.spki_der()).0)
    }

    /// Whether `signature` (ASN.1 DER) is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        if signature.len() > MAX_SIGNATURE_LEN {
            return false;
        }
        let key = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point);
        key.verify(message, signature).is_ok()
    }
}

/// A private signing key, loaded from PKCS#8.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({:?})", self.public)
    }
}

impl SigningKey {
    /// Reads a `-----BEGIN PRIVATE KEY-----` block holding an unencrypted P-256 key.
    pub fn from_pem(text: &[u8]) -> Result<Self, KeyError> {
        let der = pem_decode(text, "PRIVATE KEY")?;
        Self::from_pkcs8_der(&der)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pair = EcdsaKeyPair::from_pkcs8(alg, der, &SystemRandom::new())
            .map_err(|e| KeyError::NotP256Private(e.to_string()))?;
        let public = PublicKey {
            point: pair.public_key().as_ref().to_vec(),
        };
        Ok(Self { pair, public })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The ASN.1 DER ECDSA signature of `message` (SHA-256 digest).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| KeyError::Random)?;
        Ok(sig.as_ref().to_vec())
    }
}

/// A new key pair: the private key as PKCS#8 PEM, and its public key.
pub fn generate() -> Result<(String, PublicKey), KeyError> {
    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let doc = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).map_err(|_| KeyError::Random)?;
    let key = SigningKey::from_pkcs8_der(doc.as_ref())?;
    Ok((pem_encode("PRIVATE KEY", doc.as_ref()), key.public))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside the first `label` block of `text`.
fn pem_decode(text: &[u8], label: &'static str) -> Result<Vec<u8>, KeyError> {
    if text.len() > MAX_PEM_LEN {
        return Err(KeyError::TooLong);
    }
    let text = std::str::from_utf8(text).map_err(|_| KeyError::NotPem(label))?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or(KeyError::NotPem(label))? + begin.len();
    let len = text[start..].find(&end).ok_or(KeyError::NotPem(label))?;
    let body: String = text[start..start + len].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| KeyError::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify_and_survive_pem() {
        let (private_pem, public) = generate().unwrap();
        let key = SigningKey::from_pem(private_pem.as_bytes()).unwrap();
        assert_eq!(key.public(), &public);
        let sig = key.sign(b"message").unwrap();
        let reread = PublicKey::from_pem(public.to_pem().as_bytes()).unwrap();
        assert!(reread.verify(b"message", &sig));
        assert!(!reread.verify(b"messagf", &sig));
        assert_eq!(reread.key_id().len(), 64);
    }

    #[test]
    fn another_keys_signature_is_refused() {
        let (pem, _) = generate().unwrap();
        let (_, other) = generate().unwrap();
        let sig = SigningKey::from_pem(pem.as_bytes()).unwrap().sign(b"m").unwrap();
        assert!(!other.verify(b"m", &sig));
    }

    #[test]
    fn pem_of_the_wrong_kind_is_refused_by_name() {
        let (private_pem, public) = generate().unwrap();
        let err = PublicKey::from_pem(private_pem.as_bytes()).unwrap_err();
        assert_eq!(err, KeyError::NotPem("PUBLIC KEY"));
        assert!(SigningKey::from_pem(public.to_pem().as_bytes()).is_err());
        let garbled = public.to_pem().replace('A', "!");
        assert!(PublicKey::from_pem(garbled.as_bytes()).is_err());
    }

    #[test]
    fn public_pem_lines_are_sixty_four_characters_like_openssl() {
        let (_, public) = generate().unwrap();
        let pem = public.to_pem();
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN PUBLIC KEY-----"));
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.len(), 4);
    }
}

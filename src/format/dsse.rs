//! DSSE envelopes (Dead Simple Signing Envelope, v1): a payload, its type, signatures.
//!
//! What is signed is not the payload alone but its pre-authentication encoding
//! `PAE(type, payload) = "DSSEv1" SP len(type) SP type SP len(payload) SP payload`
//! (lengths in ASCII decimal), so a signature over one payload type can never be
//! taken for a signature over another. The JSON form is the standard one
//! (`payload` and `sig` in standard base64), as Sigstore bundles embed it.
//!
//! Verification is strict: the payload type must be the one expected, and at least one
//! signature must verify under one of the trusted keys; the key that did is returned,
//! so callers can say who signed.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::signing::{KeyError, PublicKey, SigningKey};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Most signatures an envelope may carry (ours carry one).
pub const MAX_SIGNATURES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub sig: String,
    #[serde(default)]
    pub keyid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    #[error("the payload type is {0:?}, not {IN_TOTO_PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error("the envelope is not valid base64")]
    Base64,
    #[error("the envelope carries {0} signatures, more than {MAX_SIGNATURES}")]
    TooManySignatures(usize),
    #[error("no signature in the envelope verifies under a trusted key")]
    Untrusted,
    #[error("signing failed: {0}")]
    Key(#[from] KeyError),
}

/// The pre-authentication encoding that is actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let head = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len());
    [head.as_bytes(), payload].concat()
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Envelope {
    /// Sign an in-toto statement with `key`; the signature names the key by its id.
    pub fn sign(payload: &[u8], key: &SigningKey) -> Result<Self, DsseError> {
        let sig = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, payload))?;
        Ok(Self {
            payload: b64().encode(payload),
            payload_type: IN_TOTO_PAYLOAD_TYPE.to_string(),
            signatures: vec![Signature {
                sig: b64().encode(sig),
                keyid: key.public().key_id(),
            }],
        })
    }

    /// The payload, once a signature verifies under one of `trusted`; with the key.
    pub fn verify<'k>(&self, trusted: &'k [PublicKey]) -> Result<(Vec<u8>, &'k PublicKey), DsseError> {
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(DsseError::PayloadType(self.payload_type.clone()));
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::TooManySignatures(self.signatures.len()));
        }
        let payload = b64().decode(&self.payload).map_err(|_| DsseError::Base64)?;
        let signed = pae(&self.payload_type, &payload);
        for s in &self.signatures {
            let Ok(sig) = b64().decode(&s.sig) else { continue };
            if let Some(key) = trusted.iter().find(|k| k.verify(&signed, &sig)) {
                return Ok((payload, key));
            }
        }
        Err(DsseError::Untrusted)
    }

    /// The key ids the signatures claim (unverified: for messages only), at most
    /// [`MAX_SIGNATURES`] of them, each cut to 64 characters.
    pub fn claimed_signers(&self) -> Vec<String> {
        let ids = self.signatures.iter().take(MAX_SIGNATURES);
        ids.map(|s| s.keyid.chars().take(64).collect()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::signing::generate;

    fn key() -> SigningKey {
        SigningKey::from_pem(generate().unwrap().0.as_bytes()).unwrap()
    }

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        let got = pae("http://example.com/HelloWorld", b"hello world");
        assert_eq!(got, b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec());
    }

    #[test]
    fn signed_envelope_verifies_only_under_its_key() {
        let k = key();
        let env = Envelope::sign(b"{\"a\":1}", &k).unwrap();
        let trusted = [k.public().clone()];
        let (payload, signer) = env.verify(&trusted).unwrap();
        assert_eq!(payload, b"{\"a\":1}");
        assert_eq!(signer, k.public());
        assert_eq!(env.verify(&[key().public().clone()]), Err(DsseError::Untrusted));
    }

    #[test]
    fn another_payload_type_is_refused_even_when_signed() {
        let k = key();
        let mut env = Envelope::sign(b"x", &k).unwrap();
        env.payload_type = "text/plain".into();
        assert!(matches!(
            env.verify(&[k.public().clone()]),
            Err(DsseError::PayloadType(_))
        ));
    }
}

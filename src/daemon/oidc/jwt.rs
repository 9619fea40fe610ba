//! A JWT as the daemon reads it: split, decoded and checked against one public key,
//! plus the provider's key set (JWKS) turned into keys `ring` can verify with.
//!
//! Everything here is pure: no clock, no network. Only asymmetric algorithms are
//! known (RS256, ES256, EdDSA), so `none` and the HMAC family fail at parsing, before
//! any key is looked up — an HMAC "signed" with the provider's public key is the
//! classic way to forge a token for a verifier that lets the token pick its algorithm.
//! A header that brings its own key (`jwk`, `jku`, `x5u`, `x5c`) or asks for
//! extensions (`crit`) is refused: keys come from the provider only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;

/// Most keys kept from one key set.
const MAX_KEYS: usize = 64;
/// Header fields that would let a token choose the key that verifies it.
const KEY_FIELDS: [&str; 5] = ["jwk", "jku", "x5u", "x5c", "crit"];

/// A public key from the provider's key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed P-256 point (`04 || x || y`).
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// A key and the id the provider gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    pub key: Key,
}

/// The signature algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    fn parse(name: &str) -> Result<Alg, String> {
        match name {
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            "EdDSA" => Ok(Alg::EdDsa),
            other => Err(format!("algorithm {other:?} is not accepted (RS256, ES256, EdDSA)")),
        }
    }

    fn fits(self, key: &Key) -> bool {
        matches!(
            (self, key),
            (Alg::Rs256, Key::Rsa { .. }) | (Alg::Es256, Key::P256(_)) | (Alg::EdDsa, Key::Ed25519(_))
        )
    }
}

/// A token split and decoded, not yet trusted.
#[derive(Debug)]
pub struct Jwt {
    pub alg: Alg,
    pub kid: Option<String>,
    signed: Vec<u8>,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

fn decode(part: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "a JWT part is not base64url".to_string())
}

impl Jwt {
    /// Split and decode `token` (at most `max_len` bytes) and check its header.
    pub fn parse(token: &str, max_len: usize) -> Result<Jwt, String> {
        if token.len() > max_len {
            return Err(format!("token longer than {max_len} bytes"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("not a JWT (three dot-separated parts)".into());
        };
        let header: Value = serde_json::from_slice(&decode(h)?).map_err(|e| format!("JWT header: {e}"))?;
        if let Some(field) = KEY_FIELDS.iter().find(|f| header.get(**f).is_some()) {
            return Err(format!(
                "the JWT header carries {field:?}; keys come from the issuer only"
            ));
        }
        let alg = header["alg"].as_str().ok_or("the JWT header names no alg")?;
        let kid = match header.get("kid") {
            None => None,
            Some(k) => Some(k.as_str().ok_or("the JWT header's kid is not text")?.to_string()),
        };
        Ok(Jwt {
            alg: Alg::parse(alg)?,
            kid,
            signed: format!("{h}.{p}").into_bytes(),
            signature: decode(s)?,
            payload: decode(p)?,
        })
    }

    /// The key of `keys` this token names: its `kid` (any key when it names none)
    /// and a type its algorithm uses.
    pub fn key_in<'a>(&self, keys: &'a [Jwk]) -> Option<&'a Key> {
        keys.iter()
            .filter(|k| self.kid.is_none() || k.kid == self.kid)
            .find(|k| self.alg.fits(&k.key))
            .map(|k| &k.key)
    }

    /// The claims, once the signature is good.
    pub fn verified_claims(&self, key: &Key) -> Result<Value, String> {
        if !self.alg.fits(key) || !self.signature_ok(key) {
            return Err("bad signature".into());
        }
        let claims: Value = serde_json::from_slice(&self.payload).map_err(|e| format!("JWT claims: {e}"))?;
        match claims.is_object() {
            true => Ok(claims),
            false => Err("JWT claims are not an object".into()),
        }
    }

    fn signature_ok(&self, key: &Key) -> bool {
        let (msg, sig) = (&self.signed[..], &self.signature[..]);
        match key {
            Key::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            Key::P256(point) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok(),
            Key::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x).verify(msg, sig).is_ok(),
        }
    }
}

/// The keys of a JWKS document this daemon can use (signing keys of a known type);
/// others are skipped, and at most `MAX_KEYS` are kept.
pub fn parse_jwks(set: &Value) -> Vec<Jwk> {
    let keys = set["keys"].as_array().map(Vec::as_slice).unwrap_or_default();
    keys.iter().filter_map(parse_jwk).take(MAX_KEYS).collect()
}

fn b64(v: &Value) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(v.as_str()?).ok()
}

fn parse_jwk(k: &Value) -> Option<Jwk> {
    if k.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let key = match (k["kty"].as_str()?, k["crv"].as_str()) {
        ("RSA", _) => Key::Rsa {
            n: b64(&k["n"])?,
            e: b64(&k["e"])?,
        },
        ("EC", Some("P-256")) => {
            let (x, y) = (b64(&k["x"])?, b64(&k["y"])?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            Key::P256([&[4u8][..], &x, &y].concat())
        }
        ("OKP", Some("Ed25519")) => {
            let x = b64(&k["x"])?;
            if x.len() != 32 {
                return None;
            }
            Key::Ed25519(x)
        }
        _ => return None,
    };
    Some(Jwk {
        kid: k["kid"].as_str().map(str::to_string),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn part(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn unsafe_headers_and_algorithms_are_refused_before_any_key_is_looked_up() {
        let body = part(&json!({"sub": "x"}));
        let cases = [
            (json!({"alg": "none"}), "not accepted"),
            (json!({"alg": "HS256"}), "not accepted"),
            (json!({"alg": "RS256", "jwk": {"kty": "RSA"}}), "\"jwk\""),
            (json!({"alg": "RS256", "jku": "https://evil/"}), "\"jku\""),
            (json!({"alg": "ES256", "x5c": ["AAAA"]}), "\"x5c\""),
            (json!({"alg": "ES256", "x5u": "https://evil/"}), "\"x5u\""),
            (json!({"alg": "ES256", "crit": ["b64"]}), "\"crit\""),
            (json!({"alg": "RS256", "kid": 7}), "kid"),
            (json!({"kid": "a"}), "no alg"),
        ];
        for (header, why) in cases {
            let err = Jwt::parse(&format!("{}.{body}.", part(&header)), 8192).unwrap_err();
            assert!(err.contains(why), "{header}: {err}");
        }
        assert!(Jwt::parse("a.b", 8192).unwrap_err().contains("three"));
        assert!(Jwt::parse(&"a".repeat(9000), 8192).unwrap_err().contains("longer"));
        let ok = Jwt::parse(&format!("{}.{body}.", part(&json!({"alg": "EdDSA", "kid": "k"}))), 8192).unwrap();
        assert_eq!((ok.alg, ok.kid.as_deref()), (Alg::EdDsa, Some("k")));
    }

    #[test]
    fn an_ed25519_signature_is_checked_against_the_named_key() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        use ring::signature::KeyPair;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let keys = parse_jwks(&json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        ]}));
        assert_eq!(keys.len(), 1, "only the signing key of a known type: {keys:?}");
        let signed = format!(
            "{}.{}",
            part(&json!({"alg": "EdDSA", "kid": "k1"})),
            part(&json!({"sub": "s"}))
        );
        let sig = URL_SAFE_NO_PAD.encode(pair.sign(signed.as_bytes()).as_ref());
        let jwt = Jwt::parse(&format!("{signed}.{sig}"), 8192).unwrap();
        let key = jwt.key_in(&keys).unwrap();
        assert_eq!(jwt.verified_claims(key).unwrap()["sub"], "s");
        let forged = Jwt::parse(&format!("{signed}x.{sig}"), 8192);
        assert!(forged.is_err() || forged.unwrap().verified_claims(key).is_err());
        let other = Jwt::parse(
            &format!(
                "{}.{}.{sig}",
                part(&json!({"alg": "EdDSA", "kid": "k2"})),
                part(&json!({}))
            ),
            8192,
        )
        .unwrap();
        assert!(other.key_in(&keys).is_none(), "another kid finds no key");
    }
}

//! Typed 256-bit identifiers for everything stored in a repository.
//!
//! Blob ids are keyed BLAKE3 hashes of plaintext (so the storage provider learns
//! nothing from them); pack, index, snapshot and key ids are plain BLAKE3 hashes of
//! the stored bytes, so every object's name proves its content.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Write 32 bytes as 64 lowercase hex characters, formatted on the stack: trees list
/// several ids per entry, and a directory of thousands of files is encoded on every
/// backup.
pub(crate) fn serialize_hex32<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    let mut out = [0u8; 64];
    hex::encode_to_slice(bytes, &mut out).map_err(serde::ser::Error::custom)?;
    s.serialize_str(std::str::from_utf8(&out).map_err(serde::ser::Error::custom)?)
}

/// The value of each byte as a hex digit (either case), or 0xff for any other byte.
static HEX_DIGITS: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 64 hex characters (either case) as 32 bytes, or `None` for any other text.
///
/// By table lookup, without a branch per character: every file of a tree carries two
/// ids, and decoding the parent snapshot's trees is most of a no-change backup's work
/// (the `hex` crate's decoder took 300 ns an id here, this one 25).
pub(crate) fn decode_hex32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (hi, lo) = (HEX_DIGITS[usize::from(pair[0])], HEX_DIGITS[usize::from(pair[1])]);
        invalid |= hi | lo;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    // A digit's value fits in four bits; only the 0xff of a non-digit sets the others.
    (invalid & 0xf0 == 0).then_some(out)
}

/// Read 64 hex characters into 32 bytes without copying the text first; `invalid`
/// words the error for text that is not exactly that.
pub(crate) fn deserialize_hex32<'de, D: Deserializer<'de>>(
    d: D,
    invalid: fn(&str) -> String,
) -> Result<[u8; 32], D::Error> {
    d.deserialize_str(Hex32(invalid))
}

struct Hex32(fn(&str) -> String);

impl serde::de::Visitor<'_> for Hex32 {
    type Value = [u8; 32];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("64 hexadecimal characters")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<[u8; 32], E> {
        decode_hex32(s.as_bytes()).ok_or_else(|| E::custom((self.0)(s)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {0:?}: expected 64 hexadecimal characters")]
pub struct IdError(pub String);

macro_rules! id_type {
    ($ty:ident) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(pub [u8; 32]);

        impl $ty {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            pub fn from_hex(s: &str) -> Result<Self, IdError> {
                decode_hex32(s.as_bytes())
                    .map(Self)
                    .ok_or_else(|| IdError(s.to_string()))
            }
            /// Hash of stored bytes, used to name write-once objects.
            pub fn of_bytes(bytes: &[u8]) -> Self {
                Self(*blake3::hash(bytes).as_bytes())
            }
            /// First eight hex characters, for people.
            pub fn short(&self) -> String {
                self.to_hex()[..8].to_string()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.short())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_hex32(&self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_hex32(d, |s| IdError(s.to_string()).to_string()).map(Self)
            }
        }
    };
}

id_type!(BlobId);
id_type!(PackId);
id_type!(IndexId);
id_type!(SnapshotId);
id_type!(KeyId);
id_type!(RepoId);
id_type!(ContentHash);
id_type!(ChainHash);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = PackId::of_bytes(b"pack");
        assert_eq!(PackId::from_hex(&id.to_hex()).unwrap(), id);
        assert!(PackId::from_hex("zz").is_err());
    }

    #[test]
    fn hex_decoding_agrees_with_the_hex_crate_on_every_byte_in_every_position() {
        let id = BlobId::of_bytes(b"reference");
        let text = id.to_hex().into_bytes();
        assert_eq!(decode_hex32(&text), Some(id.0));
        assert_eq!(decode_hex32(text.to_ascii_uppercase().as_slice()), Some(id.0));
        for pos in [0, 1, 31, 62, 63] {
            for b in 0..=255u8 {
                let mut t = text.clone();
                t[pos] = b;
                let mut want = [0u8; 32];
                let want = hex::decode_to_slice(&t, &mut want).ok().map(|()| want);
                assert_eq!(decode_hex32(&t), want, "byte {b:#04x} at {pos}");
            }
        }
        for len in [0, 2, 62, 63, 65, 66] {
            assert_eq!(decode_hex32(&vec![b'a'; len]), None, "length {len}");
        }
    }

    #[test]
    fn ids_serialize_as_hex_and_refuse_anything_else() {
        let id = BlobId::of_bytes(b"blob");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.to_hex()));
        assert_eq!(serde_json::from_str::<BlobId>(&json).unwrap(), id);
        // An escaped string cannot be borrowed from the input; it still decodes.
        let escaped = json.replacen('a', "\\u0061", 1);
        assert_ne!(escaped, json);
        assert_eq!(serde_json::from_str::<BlobId>(&escaped).unwrap(), id);
        let value = serde_json::Value::String(id.to_hex());
        assert_eq!(serde_json::from_value::<BlobId>(value).unwrap(), id);
        for bad in ["\"zz\"", "\"\"", "7", &format!("\"{}0\"", id.to_hex())] {
            let err = serde_json::from_str::<BlobId>(bad).unwrap_err().to_string();
            assert!(err.contains("hexadecimal"), "{bad}: {err}");
        }
    }
}

/// Streaming computation of a file's [`ContentHash`] (unkeyed BLAKE3).
#[derive(Default)]
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finalize(&self) -> ContentHash {
        ContentHash(*self.0.finalize().as_bytes())
    }
}

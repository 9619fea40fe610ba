//! Typed 256-bit identifiers for everything stored in a repository.
//!
//! Blob ids are keyed BLAKE3 hashes of plaintext (so the storage provider learns
//! nothing from them); pack, index, snapshot and key ids are plain BLAKE3 hashes of
//! the stored bytes, so every object's name proves its content.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| IdError(s.to_string()))?;
                Ok(Self(out))
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
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
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

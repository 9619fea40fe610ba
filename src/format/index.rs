//! Index objects: which blobs live in which pack, so no pack header must be read to
//! find a blob.
//!
//! Plaintext (sealed without compression; ids do not compress):
//! `version u8 = 1 || n_supersedes u32 || index_id[32]* || n_packs u32 ||
//!  (pack_id[32] || n_blobs u32 || (kind u8 || blob_id[32] || offset u32 || length u32 || raw_length u32)*)*`.
//! All integers are little-endian. `supersedes` names index objects whose content this
//! one fully contains; prune writes such indexes before deleting the old ones, so a
//! reader that sees both merely finds duplicates.

use super::ids::{BlobId, IndexId, PackId};
use super::pack::{BlobKind, PackEntry};

const VERSION: u8 = 1;

/// The blobs of one pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    pub id: PackId,
    pub blobs: Vec<PackEntry>,
}

/// Decoded content of one index object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexFile {
    pub supersedes: Vec<IndexId>,
    pub packs: Vec<IndexedPack>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index object is malformed: {0}")]
pub struct IndexError(pub &'static str);

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut out = Vec::with_capacity(9 + self.supersedes.len() * 32 + self.packs.len() * 36 + blobs * 45);
        out.push(VERSION);
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for id in &self.supersedes {
            out.extend_from_slice(&id.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id.0);
            out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for b in &p.blobs {
                out.push(b.kind.code());
                out.extend_from_slice(&b.id.0);
                out.extend_from_slice(&b.offset.to_le_bytes());
                out.extend_from_slice(&b.length.to_le_bytes());
                out.extend_from_slice(&b.raw_length.to_le_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.u8()? != VERSION {
            return Err(IndexError("unknown version"));
        }
        let n = r.u32()? as usize;
        let supersedes = (0..n).map(|_| r.id().map(IndexId)).collect::<Result<_, _>>()?;
        let n_packs = r.u32()? as usize;
        let mut packs = Vec::with_capacity(n_packs.min(1 << 20));
        for _ in 0..n_packs {
            let id = PackId(r.id()?);
            let n_blobs = r.u32()? as usize;
            let mut blobs = Vec::with_capacity(n_blobs.min(1 << 20));
            for _ in 0..n_blobs {
                let kind = BlobKind::from_code(r.u8()?).ok_or(IndexError("unknown blob kind"))?;
                let id = BlobId(r.id()?);
                let offset = r.u32()?;
                let length = r.u32()?;
                let raw_length = r.u32()?;
                blobs.push(PackEntry {
                    kind,
                    id,
                    offset,
                    length,
                    raw_length,
                });
            }
            packs.push(IndexedPack { id, blobs });
        }
        if r.pos != bytes.len() {
            return Err(IndexError("trailing bytes"));
        }
        Ok(Self { supersedes, packs })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], IndexError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(IndexError("truncated"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, IndexError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, IndexError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn id(&mut self) -> Result<[u8; 32], IndexError> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.take(32)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let f = IndexFile {
            supersedes: vec![IndexId([1; 32])],
            packs: vec![IndexedPack {
                id: PackId([2; 32]),
                blobs: vec![PackEntry {
                    kind: BlobKind::Tree,
                    id: BlobId([3; 32]),
                    offset: 7,
                    length: 9,
                    raw_length: 11,
                }],
            }],
        };
        let bytes = f.encode();
        assert_eq!(IndexFile::decode(&bytes).unwrap(), f);
        assert!(IndexFile::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}

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
use super::pack::{BlobKind, PackEntry, check_entry};

const VERSION: u8 = 1;
/// Encoded sizes of one superseded id, one pack (id and count) and one blob entry:
/// a count is refused unless that many entries can still follow in the input.
const SUPERSEDES_LEN: usize = 32;
const PACK_LEN: usize = 32 + 4;
const ENTRY_LEN: usize = 1 + 32 + 4 + 4 + 4;

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
        let n = r.count(SUPERSEDES_LEN)?;
        let supersedes = (0..n).map(|_| r.id().map(IndexId)).collect::<Result<_, _>>()?;
        let n_packs = r.count(PACK_LEN)?;
        let mut packs = Vec::with_capacity(n_packs);
        for _ in 0..n_packs {
            let id = PackId(r.id()?);
            let n_blobs = r.count(ENTRY_LEN)?;
            let mut blobs = Vec::with_capacity(n_blobs);
            for _ in 0..n_blobs {
                blobs.push(r.entry()?);
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
    /// A `u32` count of items of `item_len` bytes each, refused when the rest of the
    /// input is too short to hold them (so a count never sizes an allocation alone).
    fn count(&mut self, item_len: usize) -> Result<usize, IndexError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(item_len) > self.bytes.len() - self.pos {
            return Err(IndexError("count larger than the object"));
        }
        Ok(n)
    }
    fn entry(&mut self) -> Result<PackEntry, IndexError> {
        let kind = BlobKind::from_code(self.u8()?).ok_or(IndexError("unknown blob kind"))?;
        let id = BlobId(self.id()?);
        let (offset, length, raw_length) = (self.u32()?, self.u32()?, self.u32()?);
        check_entry(offset, length, raw_length).map_err(IndexError)?;
        Ok(PackEntry {
            kind,
            id,
            offset,
            length,
            raw_length,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::{MAX_BLOB, MAX_SEALED};

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

    fn one_entry(offset: u32, length: u32, raw_length: u32) -> IndexFile {
        IndexFile {
            supersedes: Vec::new(),
            packs: vec![IndexedPack {
                id: PackId([2; 32]),
                blobs: vec![PackEntry {
                    kind: BlobKind::Data,
                    id: BlobId([3; 32]),
                    offset,
                    length,
                    raw_length,
                }],
            }],
        }
    }

    #[test]
    fn counts_larger_than_the_object_are_refused() {
        let mut bytes = vec![VERSION];
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            IndexFile::decode(&bytes),
            Err(IndexError("count larger than the object"))
        );
        let mut bytes = one_entry(0, 10, 10).encode();
        // The blob count of the one pack sits after version, 0 supersedes, 1 pack, pack id.
        bytes[1 + 4 + 4 + 32..1 + 4 + 4 + 36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            IndexFile::decode(&bytes),
            Err(IndexError("count larger than the object"))
        );
        let mut bytes = one_entry(0, 10, 10).encode();
        bytes[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(IndexFile::decode(&bytes).is_err());
    }

    #[test]
    fn entries_beyond_the_blob_bounds_are_refused() {
        for (offset, length, raw) in [(u32::MAX, 1, 1), (0, u32::MAX, 1), (0, 1, u32::MAX)] {
            let err = IndexFile::decode(&one_entry(offset, length, raw).encode()).unwrap_err();
            assert!(err.0.contains("blob"), "{offset} {length} {raw}: {err}");
        }
        let max = one_entry(0, MAX_SEALED as u32, MAX_BLOB as u32);
        assert_eq!(IndexFile::decode(&max.encode()).unwrap(), max);
    }
}

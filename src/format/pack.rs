//! Packs: many sealed blobs in one object, followed by a sealed header.
//!
//! Layout: `blob_1 || … || blob_n || sealed_header || header_len (u32 LE)`.
//! The header lists each blob's kind, id, sealed length and plaintext length in
//! storage order; offsets
//! follow by summing lengths. Callers pass blobs in a shuffled order, so a pack does
//! not reveal file boundaries or the sequence of chunks in a file. The pack's id is
//! the BLAKE3 hash of all its bytes.

use bytes::Bytes;

use super::blob::{self, BlobError, Compression, MAX_BLOB, MAX_SEALED};
use super::crypto::{Cipher, MasterKey};
use super::ids::{BlobId, PackId};

const HEADER_VERSION: u8 = 1;
const ENTRY_LEN: usize = 1 + 32 + 4 + 4;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Data,
    Tree,
}

impl BlobKind {
    pub fn code(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// Where one blob sits inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: BlobId,
    pub offset: u32,
    /// Sealed length in the pack.
    pub length: u32,
    /// Length of the blob's plaintext (before compression and encryption).
    pub raw_length: u32,
}

/// A sealed blob waiting to be packed.
#[derive(Debug, Clone)]
pub struct PendingBlob {
    pub kind: BlobKind,
    pub id: BlobId,
    pub raw_length: u32,
    pub sealed: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("pack is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("pack header: {0}")]
    Header(#[from] BlobError),
    #[error("pack header is malformed: {0}")]
    Malformed(&'static str),
}

/// Build a pack from sealed blobs already in storage order; each blob's buffer is
/// released as soon as it has been copied into the pack.
pub fn assemble(
    key: &MasterKey,
    cipher: Cipher,
    header_nonce: &[u8],
    blobs: Vec<PendingBlob>,
) -> (PackId, Bytes, Vec<PackEntry>) {
    let total: usize = blobs.iter().map(|b| b.sealed.len()).sum();
    let (mut bytes, start) = page_aligned(total + blobs.len() * ENTRY_LEN + 64);
    let mut header = Vec::with_capacity(5 + blobs.len() * ENTRY_LEN);
    header.push(HEADER_VERSION);
    header.extend_from_slice(&(blobs.len() as u32).to_le_bytes());
    let mut entries = Vec::with_capacity(blobs.len());
    for b in blobs {
        entries.push(PackEntry {
            kind: b.kind,
            id: b.id,
            offset: (bytes.len() - start) as u32,
            length: b.sealed.len() as u32,
            raw_length: b.raw_length,
        });
        bytes.extend_from_slice(&b.sealed);
        header.push(b.kind.code());
        header.extend_from_slice(&b.id.0);
        header.extend_from_slice(&(b.sealed.len() as u32).to_le_bytes());
        header.extend_from_slice(&b.raw_length.to_le_bytes());
    }
    let sealed_header = blob::seal(key, cipher, header_nonce, &header, Compression::OFF);
    bytes.extend_from_slice(&sealed_header);
    bytes.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
    let id = PackId::of_bytes(&bytes[start..]);
    (id, Bytes::from(bytes).slice(start..), entries)
}

/// Where a pack starts in memory: on a page, so that a local disk can take it by
/// direct I/O without a copy into the page cache (`storage::local_write`).
pub const PACK_ALIGN: usize = 4096;

/// A buffer with room for `capacity` bytes after the returned start, which is the
/// first multiple of [`PACK_ALIGN`] in it (the bytes before it are zero padding).
fn page_aligned(capacity: usize) -> (Vec<u8>, usize) {
    let mut buf: Vec<u8> = Vec::with_capacity(capacity + PACK_ALIGN);
    let start = buf.as_ptr().addr().next_multiple_of(PACK_ALIGN) - buf.as_ptr().addr();
    buf.resize(start, 0);
    (buf, start)
}

/// Smallest sealed blob: a one-byte plaintext (the compression byte) under the cipher
/// with the shortest nonce (12) and the tag.
const MIN_SEALED: u64 = 1 + 12 + 16;

/// Largest pack a repository with target `pack_size` writes: blobs up to the target plus
/// one more blob of at most [`blob::MAX_SEALED`], and a header with at most one entry per
/// smallest sealed blob, sealed, plus the trailer. Longer objects under `data/` are not
/// read into memory.
pub fn max_pack_len(pack_size: u32) -> u64 {
    let data = u64::from(pack_size) + blob::MAX_SEALED as u64;
    let entries = data / MIN_SEALED + 1;
    data + 5 + entries * ENTRY_LEN as u64 + 1 + 24 + 16 + 4
}

/// Length of the sealed header plus trailer, read from a pack's last four bytes.
pub fn header_span(pack_len: usize, trailer: &[u8]) -> Result<usize, PackError> {
    let t: [u8; 4] = trailer.try_into().map_err(|_| PackError::Truncated(pack_len))?;
    let len = u32::from_le_bytes(t) as usize + 4;
    if len > pack_len {
        return Err(PackError::Truncated(pack_len));
    }
    Ok(len)
}

/// Decode the header of a whole pack and return its entries with offsets.
pub fn read_header(key: &MasterKey, cipher: Cipher, pack: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    read_header_from_tail(key, cipher, pack.len(), pack)
}

/// Decode the header of a pack of `pack_len` bytes from its last bytes, `tail`, which
/// must hold at least the sealed header and trailer (see `header_span`).
pub fn read_header_from_tail(
    key: &MasterKey,
    cipher: Cipher,
    pack_len: usize,
    tail: &[u8],
) -> Result<Vec<PackEntry>, PackError> {
    if tail.len() < 4 || tail.len() > pack_len {
        return Err(PackError::Truncated(pack_len));
    }
    let span = header_span(pack_len, &tail[tail.len() - 4..])?;
    if span > tail.len() {
        return Err(PackError::Truncated(tail.len()));
    }
    let header = blob::open(key, cipher, &tail[tail.len() - span..tail.len() - 4])?;
    let entries = parse_header(&header)?;
    let data_end = pack_len - span;
    match entries.last() {
        Some(e) if (e.offset + e.length) as usize != data_end => {
            Err(PackError::Malformed("blob lengths do not add up"))
        }
        None if data_end != 0 => Err(PackError::Malformed("data without entries")),
        _ => Ok(entries),
    }
}

fn parse_header(h: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    if h.len() < 5 || h[0] != HEADER_VERSION {
        return Err(PackError::Malformed("unknown header version"));
    }
    let count = u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if Some(h.len()) != count.checked_mul(ENTRY_LEN).and_then(|n| n.checked_add(5)) {
        return Err(PackError::Malformed("entry count does not match header size"));
    }
    let mut offset = 0u32;
    let mut entries = Vec::with_capacity(count);
    for chunk in h[5..].chunks_exact(ENTRY_LEN) {
        let kind = BlobKind::from_code(chunk[0]).ok_or(PackError::Malformed("unknown blob kind"))?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&chunk[1..33]);
        let length = u32::from_le_bytes([chunk[33], chunk[34], chunk[35], chunk[36]]);
        let raw_length = u32::from_le_bytes([chunk[37], chunk[38], chunk[39], chunk[40]]);
        check_entry(offset, length, raw_length).map_err(PackError::Malformed)?;
        entries.push(PackEntry {
            kind,
            id: BlobId(id),
            offset,
            length,
            raw_length,
        });
        offset = offset
            .checked_add(length)
            .ok_or(PackError::Malformed("pack larger than 4 GiB"))?;
    }
    Ok(entries)
}

/// Bounds every blob entry meets, in an index or a pack header: the blob ends within
/// 4 GiB and is no longer than the largest blob this format seals.
pub(super) fn check_entry(offset: u32, length: u32, raw_length: u32) -> Result<(), &'static str> {
    if offset.checked_add(length).is_none() {
        return Err("blob extends past 4 GiB");
    }
    if length as usize > MAX_SEALED || raw_length as usize > MAX_BLOB {
        return Err("blob length larger than any blob");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembled_pack_header_reads_back() {
        let key = MasterKey::from_bytes([5; 32]);
        let c = Cipher::XChaCha20Poly1305;
        let blobs: Vec<_> = (0..3u8)
            .map(|i| {
                let data = vec![i; 100 + i as usize];
                let sealed = blob::seal(&key, c, &[i; 24], &data, Compression::OFF);
                PendingBlob {
                    kind: BlobKind::Data,
                    id: key.blob_id(&data),
                    raw_length: data.len() as u32,
                    sealed,
                }
            })
            .collect();
        let (id, bytes, entries) = assemble(&key, c, &[9; 24], blobs);
        assert!(
            bytes.as_ptr().addr().is_multiple_of(PACK_ALIGN),
            "a pack starts on a page"
        );
        assert_eq!(id, PackId::of_bytes(&bytes));
        assert_eq!(entries[0].offset, 0);
        assert_eq!(read_header(&key, c, &bytes).unwrap(), entries);
        let e = entries[2];
        let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        assert_eq!(blob::open_verified(&key, c, &e.id, sealed).unwrap(), vec![2u8; 102]);
    }

    /// A pack with no blobs whose sealed header holds `header` as given.
    fn pack_with_header(key: &MasterKey, header: &[u8]) -> Vec<u8> {
        let mut bytes = blob::seal(key, Cipher::XChaCha20Poly1305, &[7; 24], header, Compression::OFF);
        let len = bytes.len() as u32;
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes
    }

    #[test]
    fn header_counts_and_lengths_beyond_the_bounds_are_refused() {
        let key = MasterKey::from_bytes([5; 32]);
        let c = Cipher::XChaCha20Poly1305;
        let mut huge_count = vec![HEADER_VERSION];
        huge_count.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = read_header(&key, c, &pack_with_header(&key, &huge_count)).unwrap_err();
        assert_eq!(err, PackError::Malformed("entry count does not match header size"));
        for (length, raw) in [(u32::MAX, 1u32), (1, u32::MAX)] {
            let mut h = vec![HEADER_VERSION, 1, 0, 0, 0, BlobKind::Data.code()];
            h.extend_from_slice(&[9; 32]);
            h.extend_from_slice(&length.to_le_bytes());
            h.extend_from_slice(&raw.to_le_bytes());
            let err = read_header(&key, c, &pack_with_header(&key, &h)).unwrap_err();
            assert!(matches!(err, PackError::Malformed(m) if m.contains("blob")), "{err}");
        }
    }

    #[test]
    fn the_largest_honest_pack_is_within_max_pack_len() {
        // Target reached, then one more maximal blob, all others the smallest possible.
        let target = 1u32 << 20;
        let data = u64::from(target) + blob::MAX_SEALED as u64;
        let header = 5 + (data / MIN_SEALED + 1) * ENTRY_LEN as u64 + 1 + 24 + 16 + 4;
        assert_eq!(max_pack_len(target), data + header);
        assert!(max_pack_len(crate::format::config::MAX_PACK_SIZE) < 4 << 30);
    }

    #[test]
    fn truncated_pack_is_refused() {
        let key = MasterKey::from_bytes([5; 32]);
        let (_, bytes, _) = assemble(&key, Cipher::Aes256Gcm, &[1; 12], Vec::new());
        assert!(read_header(&key, Cipher::Aes256Gcm, &bytes[1..]).is_err());
        assert!(read_header(&key, Cipher::Aes256Gcm, &bytes[..3]).is_err());
    }
}

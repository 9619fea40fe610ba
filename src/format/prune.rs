//! Prune records: the packs one prune has condemned, kept until it has deleted them.
//!
//! Plaintext (sealed without compression): `activated i64 LE || index body`, where
//! `activated` is the Unix time in milliseconds at which the record took effect, or
//! `-1` while the prune that wrote it has not yet replaced the index, and the index
//! body is an index object's plaintext (`index.rs`) listing the condemned packs with
//! their entries, so a pack that turns out to be needed can be put back.

use chrono::{DateTime, Utc};

use super::index::{IndexError, IndexFile};

/// Bytes before the index body.
const HEADER_LEN: usize = 8;
/// `activated` of a record not yet in effect.
const PENDING: i64 = -1;
/// Longest sealed prune record read: one index object's worth of entries (45 bytes per
/// blob, so about 95 million blobs), the same bound as for index objects.
pub const MAX_RECORD_LEN: u64 = 4 << 30;

/// Decoded content of one prune record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneRecord {
    /// When the record took effect; `None` while its prune has not replaced the index.
    pub activated: Option<DateTime<Utc>>,
    /// The condemned packs and their blobs (`supersedes` is empty).
    pub packs: IndexFile,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PruneRecordError {
    #[error("prune record is malformed: shorter than its {HEADER_LEN}-byte activation time")]
    Short,
    #[error("prune record is malformed: activation time {0} ms is out of range")]
    Time(i64),
    #[error("prune record is malformed: {0}")]
    Packs(#[from] IndexError),
}

impl PruneRecord {
    pub fn encode(&self) -> Vec<u8> {
        let ms = self.activated.map_or(PENDING, |t| t.timestamp_millis());
        let mut out = ms.to_le_bytes().to_vec();
        out.extend_from_slice(&self.packs.encode());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PruneRecordError> {
        let (head, body) = bytes.split_at_checked(HEADER_LEN).ok_or(PruneRecordError::Short)?;
        let ms = i64::from_le_bytes(head.try_into().map_err(|_| PruneRecordError::Short)?);
        let activated = match ms {
            PENDING => None,
            ms if ms >= 0 => Some(DateTime::from_timestamp_millis(ms).ok_or(PruneRecordError::Time(ms))?),
            ms => return Err(PruneRecordError::Time(ms)),
        };
        let packs = IndexFile::decode(body)?;
        Ok(Self { activated, packs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ids::{BlobId, PackId};
    use crate::format::index::IndexedPack;
    use crate::format::pack::{BlobKind, PackEntry};

    fn record(activated: Option<DateTime<Utc>>) -> PruneRecord {
        let entry = PackEntry {
            kind: BlobKind::Data,
            id: BlobId([7; 32]),
            offset: 0,
            length: 90,
            raw_length: 40,
        };
        PruneRecord {
            activated,
            packs: IndexFile {
                supersedes: Vec::new(),
                packs: vec![
                    IndexedPack {
                        id: PackId([1; 32]),
                        blobs: vec![entry],
                    },
                    IndexedPack {
                        id: PackId([2; 32]),
                        blobs: Vec::new(),
                    },
                ],
            },
        }
    }

    #[test]
    fn records_round_trip_pending_and_activated() {
        let pending = record(None);
        assert_eq!(&pending.encode()[..8], &(-1i64).to_le_bytes());
        assert_eq!(PruneRecord::decode(&pending.encode()).unwrap(), pending);
        let when = DateTime::from_timestamp_millis(1_764_000_000_123).unwrap();
        let active = record(Some(when));
        assert_eq!(&active.encode()[..8], &1_764_000_000_123i64.to_le_bytes());
        assert_eq!(PruneRecord::decode(&active.encode()).unwrap(), active);
    }

    #[test]
    fn truncated_or_garbled_records_are_refused() {
        let bytes = record(None).encode();
        for cut in [0, 3, 8, bytes.len() - 1] {
            assert!(PruneRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(PruneRecord::decode(&long), Err(PruneRecordError::Packs(_))));
        let mut early = bytes.clone();
        early[..8].copy_from_slice(&(-2i64).to_le_bytes());
        assert_eq!(PruneRecord::decode(&early), Err(PruneRecordError::Time(-2)));
        let mut far = bytes;
        far[..8].copy_from_slice(&i64::MAX.to_le_bytes());
        assert_eq!(PruneRecord::decode(&far), Err(PruneRecordError::Time(i64::MAX)));
    }
}

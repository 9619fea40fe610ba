//! The audit trail's codec: events, their hash chain, and sealed segments.
//!
//! Every operation appends events saying who did what to which snapshots, when, and
//! how it ended. Each event names the chain hash of the one before it, so removing,
//! changing or reordering one breaks every link after it; the chain hash is keyed
//! BLAKE3 under a key derived from the master key, so only a holder of the repository
//! key can compute a chain that verifies. Events are stored in segments (one per
//! operation), each sealed with the repository key and ending in a checkpoint: the
//! chain's size and head hash after its last event. Byte layout: docs/format.md,
//! "Audit segments".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::blob::{self, Compression};
use super::crypto::{Cipher, MasterKey};
use super::ids::{ChainHash, SnapshotId};

/// Segment format version written and read.
pub const SEGMENT_VERSION: u32 = 1;
/// Most events in one segment.
pub const MAX_EVENTS: usize = 1024;
/// Longest segment plaintext (JSON).
pub const MAX_SEGMENT_LEN: usize = 4 * 1024 * 1024;
/// Longest actor, detail or object name in an event.
pub const MAX_TEXT: usize = 4096;
/// Most snapshot ids or object names one event lists.
pub const MAX_NAMED: usize = 100_000;

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Init,
    KeyAdd,
    KeyRemove,
    Backup,
    Forget,
    Prune,
    Repair,
    Sync,
    Copy,
    Restore,
    Verify,
    Drill,
    Failover,
    /// Someone closed the anomaly of the snapshot named in `objects`.
    AnomalyAck,
}

/// How the operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
    Degraded,
    Damage,
    /// A drill or failover began; a later event of the same action says how it ended,
    /// and a run killed on the way has none.
    Started,
}

/// One event as its writer describes it, before it takes a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub time: DateTime<Utc>,
    /// `user@host` of the process, or `api:<subject>` for work the daemon's API asked for.
    pub actor: String,
    pub action: Action,
    /// Snapshots this operation wrote.
    #[serde(default)]
    pub written: Vec<SnapshotId>,
    /// Snapshots this operation removed (forgot).
    #[serde(default)]
    pub removed: Vec<SnapshotId>,
    /// Other objects the operation names (key ids, regions, targets).
    #[serde(default)]
    pub objects: Vec<String>,
    #[serde(default)]
    pub detail: String,
    pub outcome: Outcome,
}

/// An event in the chain: its position, the hash of the event before it, the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub prev: ChainHash,
    #[serde(flatten)]
    pub record: Record,
}

/// The chain's size (events) and the hash of its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub size: u64,
    pub head: ChainHash,
}

impl Checkpoint {
    /// The empty chain: the first event names the all-zero hash.
    pub const GENESIS: Checkpoint = Checkpoint {
        size: 0,
        head: ChainHash([0; 32]),
    };
}

/// Events of one operation and the checkpoint after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub version: u32,
    pub events: Vec<Event>,
    pub checkpoint: Checkpoint,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit segment cannot be authenticated with the repository key: {0}")]
    Sealed(#[from] blob::BlobError),
    #[error("audit segment is {0} bytes, more than the {MAX_SEGMENT_LEN} a segment holds")]
    TooLong(usize),
    #[error("audit segment is malformed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("audit segment has version {0}; this Lifeboat reads version {SEGMENT_VERSION}")]
    Version(u32),
    #[error("audit segment is invalid: {0}")]
    Invalid(String),
}

/// The key of the chain hash, derived from the master key.
#[derive(Clone)]
pub struct ChainKey([u8; 32]);

impl ChainKey {
    pub fn of(master: &MasterKey) -> Self {
        Self(blake3::derive_key("lifeboat v1 audit chain", master.raw()))
    }

    /// The chain hash of `event` (which names its predecessor's hash).
    pub fn hash(&self, event: &Event) -> ChainHash {
        // An event of ids, strings, numbers and a date always serialises.
        let bytes = serde_json::to_vec(event).unwrap_or_default();
        ChainHash(*blake3::keyed_hash(&self.0, &bytes).as_bytes())
    }
}

impl Segment {
    /// The segment that appends `records` to a chain ending at `after`.
    pub fn append(key: &ChainKey, after: Checkpoint, records: Vec<Record>) -> Segment {
        let mut head = after;
        let mut events = Vec::with_capacity(records.len());
        for record in records {
            let event = Event {
                seq: head.size,
                prev: head.head,
                record,
            };
            head = Checkpoint {
                size: head.size + 1,
                head: key.hash(&event),
            };
            events.push(event);
        }
        Segment {
            version: SEGMENT_VERSION,
            events,
            checkpoint: head,
        }
    }

    /// Where the chain stood before this segment's first event.
    pub fn start(&self) -> Checkpoint {
        match self.events.first() {
            Some(e) => Checkpoint {
                size: e.seq,
                head: e.prev,
            },
            None => self.checkpoint,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decode and check a segment's plaintext: bounds, consecutive events, every link
    /// inside it, and its checkpoint.
    pub fn decode(key: &ChainKey, bytes: &[u8]) -> Result<Segment, AuditError> {
        if bytes.len() > MAX_SEGMENT_LEN {
            return Err(AuditError::TooLong(bytes.len()));
        }
        let segment: Segment = serde_json::from_slice(bytes)?;
        if segment.version != SEGMENT_VERSION {
            return Err(AuditError::Version(segment.version));
        }
        segment.check(key)?;
        Ok(segment)
    }

    fn check(&self, key: &ChainKey) -> Result<(), AuditError> {
        let invalid = |what: String| Err(AuditError::Invalid(what));
        if self.events.is_empty() || self.events.len() > MAX_EVENTS {
            return invalid(format!("{} events (1 to {MAX_EVENTS} expected)", self.events.len()));
        }
        let mut head = self.start();
        for event in &self.events {
            check_bounds(&event.record)?;
            if event.seq != head.size || event.prev != head.head {
                return invalid(format!("event {} does not follow event {}", event.seq, head.size));
            }
            head = Checkpoint {
                size: head.size + 1,
                head: key.hash(event),
            };
        }
        if head != self.checkpoint {
            return invalid(format!("its checkpoint does not match event {}", head.size - 1));
        }
        Ok(())
    }
}

fn check_bounds(record: &Record) -> Result<(), AuditError> {
    let long = [&record.actor, &record.detail]
        .into_iter()
        .chain(&record.objects)
        .any(|s| s.len() > MAX_TEXT);
    let many = [record.written.len(), record.removed.len(), record.objects.len()]
        .into_iter()
        .any(|n| n > MAX_NAMED);
    match long || many {
        true => Err(AuditError::Invalid(format!(
            "an event lists more than {MAX_NAMED} names or a text longer than {MAX_TEXT} bytes"
        ))),
        false => Ok(()),
    }
}

/// Longest remembered checkpoint read back (a few hundred bytes are written).
pub const MAX_REMEMBERED_LEN: u64 = 64 * 1024;

/// The newest whole checkpoint a client has read of one repository, kept by the client
/// (docs/format.md, "Audit segments": checkpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    pub repository: String,
    pub size: u64,
    pub head: ChainHash,
    pub seen: DateTime<Utc>,
}

impl Remembered {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The remembered checkpoint in `bytes`, if they hold one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        (bytes.len() as u64 <= MAX_REMEMBERED_LEN)
            .then(|| serde_json::from_slice(bytes).ok())
            .flatten()
    }
}

/// Seal `segment` with the repository key (compressed, authenticated).
pub fn seal(key: &MasterKey, cipher: Cipher, nonce: &[u8], segment: &Segment) -> Vec<u8> {
    blob::seal(key, cipher, nonce, &segment.encode(), Compression::DEFAULT)
}

/// Open a sealed segment and check it: any changed byte is refused.
pub fn open(key: &MasterKey, cipher: Cipher, sealed: &[u8]) -> Result<Segment, AuditError> {
    let plain = blob::open(key, cipher, sealed)?;
    Segment::decode(&ChainKey::of(key), &plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> MasterKey {
        MasterKey::from_bytes([7; 32])
    }

    fn record(n: u8) -> Record {
        Record {
            time: DateTime::from_timestamp(1_764_000_000 + i64::from(n), 0).unwrap_or_default(),
            actor: "alice@host".into(),
            action: Action::Backup,
            written: vec![SnapshotId([n; 32])],
            removed: Vec::new(),
            objects: vec![format!("region-{n}")],
            detail: String::new(),
            outcome: Outcome::Ok,
        }
    }

    #[test]
    fn segments_chain_onto_each_other() {
        let chain = ChainKey::of(&key());
        let first = Segment::append(&chain, Checkpoint::GENESIS, vec![record(1), record(2)]);
        let second = Segment::append(&chain, first.checkpoint, vec![record(3)]);
        assert_eq!(first.checkpoint.size, 2);
        assert_eq!(second.start(), first.checkpoint);
        assert_eq!(second.events[0].seq, 2);
        assert_eq!(second.events[0].prev, chain.hash(&first.events[1]));
    }

    #[test]
    fn an_altered_or_reordered_event_is_refused() {
        let chain = ChainKey::of(&key());
        let good = Segment::append(&chain, Checkpoint::GENESIS, vec![record(1), record(2)]);
        let mut altered = good.clone();
        altered.events[0].record.outcome = Outcome::Failed;
        assert!(Segment::decode(&chain, &altered.encode()).is_err());
        let mut swapped = good.clone();
        swapped.events.swap(0, 1);
        assert!(Segment::decode(&chain, &swapped.encode()).is_err());
        let other = ChainKey::of(&MasterKey::from_bytes([8; 32]));
        assert!(Segment::decode(&other, &good.encode()).is_err());
        assert_eq!(Segment::decode(&chain, &good.encode()).unwrap(), good);
    }

    #[test]
    fn oversized_and_empty_segments_are_refused() {
        let chain = ChainKey::of(&key());
        let empty = Segment::append(&chain, Checkpoint::GENESIS, Vec::new());
        assert!(Segment::decode(&chain, &empty.encode()).is_err());
        let huge = vec![b' '; MAX_SEGMENT_LEN + 1];
        assert!(matches!(Segment::decode(&chain, &huge), Err(AuditError::TooLong(_))));
        let mut long = record(1);
        long.detail = "x".repeat(MAX_TEXT + 1);
        let seg = Segment::append(&chain, Checkpoint::GENESIS, vec![long]);
        assert!(Segment::decode(&chain, &seg.encode()).is_err());
    }

    proptest! {
        #[test]
        fn sealed_segments_round_trip(n in 1u8..20, size in 0u64..1000, nonce in any::<[u8; 24]>()) {
            let chain = ChainKey::of(&key());
            let after = Checkpoint { size, head: ChainHash([n; 32]) };
            let seg = Segment::append(&chain, after, (0..n).map(record).collect());
            let sealed = seal(&key(), Cipher::XChaCha20Poly1305, &nonce, &seg);
            prop_assert_eq!(open(&key(), Cipher::XChaCha20Poly1305, &sealed).unwrap(), seg);
        }

        #[test]
        fn any_flipped_byte_is_refused(at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let chain = ChainKey::of(&key());
            let seg = Segment::append(&chain, Checkpoint::GENESIS, vec![record(1), record(2)]);
            let mut sealed = seal(&key(), Cipher::Aes256Gcm, &[3; 12], &seg);
            let i = at.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(open(&key(), Cipher::Aes256Gcm, &sealed).is_err());
        }
    }
}

//! Retention ledgers: what a region knows about how long each pack, and each snapshot
//! an open anomaly pins, is locked.
//!
//! Plaintext (sealed and compressed): compact JSON `{"until":{"<RFC 3339 date>":
//! ["<pack id hex>", …], …}, "snapshots":{"<RFC 3339 date>":["<snapshot id hex>", …]}}`,
//! grouping ids by the date their S3 Object Lock retention runs until, ids sorted
//! within a date; `snapshots` is left out when empty (ledgers written before it
//! existed read as having none). A ledger only saves requests: an object it does not
//! name is treated as unknown and its lock is raised again, so a reader passes over a
//! ledger that does not decode.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::blob::MAX_BLOB;
use super::ids::{PackId, SnapshotId};

/// Longest ledger plaintext read (about a million packs at 70 bytes each).
pub const MAX_LEDGER_LEN: usize = MAX_BLOB;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Retain-until date → packs locked at least until then.
    pub until: BTreeMap<DateTime<Utc>, Vec<PackId>>,
    /// Retain-until date → pinned snapshots locked at least until then.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snapshots: BTreeMap<DateTime<Utc>, Vec<SnapshotId>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("retention ledger is {0} bytes, more than the {MAX_LEDGER_LEN} a ledger holds")]
    TooLong(usize),
    #[error("retention ledger is malformed: {0}")]
    Json(#[from] serde_json::Error),
}

impl Ledger {
    /// The ledger of `map` (pack → retain-until date), naming no snapshot.
    pub fn from_map(map: &HashMap<PackId, DateTime<Utc>>) -> Self {
        Self::from_maps(map, &HashMap::new())
    }

    /// The ledger of `packs` and `snapshots` (id → retain-until date).
    pub fn from_maps(packs: &HashMap<PackId, DateTime<Utc>>, snapshots: &HashMap<SnapshotId, DateTime<Utc>>) -> Self {
        Ledger {
            until: by_date(packs),
            snapshots: by_date(snapshots),
        }
    }

    /// Enter every pack of this ledger into `known`, keeping the later date of two.
    pub fn merge_into(self, known: &mut HashMap<PackId, DateTime<Utc>>) {
        merge(self.until, known);
    }

    /// Enter every pack and every snapshot of this ledger into `packs` and
    /// `snapshots`, keeping the later date of two.
    pub fn merge_all_into(
        self,
        packs: &mut HashMap<PackId, DateTime<Utc>>,
        snapshots: &mut HashMap<SnapshotId, DateTime<Utc>>,
    ) {
        merge(self.until, packs);
        merge(self.snapshots, snapshots);
    }

    pub fn encode(&self) -> Vec<u8> {
        // A map of dates to id lists always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, LedgerError> {
        if bytes.len() > MAX_LEDGER_LEN {
            return Err(LedgerError::TooLong(bytes.len()));
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Ids grouped by date, sorted within a date.
fn by_date<I: Ord + Copy>(map: &HashMap<I, DateTime<Utc>>) -> BTreeMap<DateTime<Utc>, Vec<I>> {
    let mut out: BTreeMap<DateTime<Utc>, Vec<I>> = BTreeMap::new();
    for (id, date) in map {
        out.entry(*date).or_default().push(*id);
    }
    for ids in out.values_mut() {
        ids.sort();
    }
    out
}

fn merge<I: Eq + std::hash::Hash>(grouped: BTreeMap<DateTime<Utc>, Vec<I>>, known: &mut HashMap<I, DateTime<Utc>>) {
    for (date, ids) in grouped {
        for id in ids {
            known.entry(id).and_modify(|d| *d = (*d).max(date)).or_insert(date);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_groups_packs_by_date_and_round_trips() {
        let now = DateTime::from_timestamp_millis(1_764_000_000_000).unwrap();
        let (a, b, c) = (PackId([1; 32]), PackId([2; 32]), PackId([3; 32]));
        let later = now + chrono::Duration::days(3);
        let map = HashMap::from([(b, now), (a, now), (c, later)]);
        let ledger = Ledger::from_map(&map);
        assert_eq!(ledger.until.len(), 2);
        assert_eq!(ledger.until[&now], vec![a, b]);
        let back = Ledger::decode(&ledger.encode()).unwrap();
        assert_eq!(back, ledger);
        let mut known = HashMap::from([(a, later), (c, now)]);
        back.merge_into(&mut known);
        assert_eq!(known, HashMap::from([(a, later), (b, now), (c, later)]));
    }

    #[test]
    fn pinned_snapshots_round_trip_and_old_ledgers_name_none() {
        let now = DateTime::from_timestamp_millis(1_764_000_000_000).unwrap();
        let later = now + chrono::Duration::days(2);
        let packs = HashMap::from([(PackId([1; 32]), now)]);
        let pins = HashMap::from([(SnapshotId([7; 32]), later), (SnapshotId([5; 32]), later)]);
        let ledger = Ledger::from_maps(&packs, &pins);
        assert_eq!(ledger.snapshots[&later], vec![SnapshotId([5; 32]), SnapshotId([7; 32])]);
        let (mut p, mut s) = (HashMap::new(), HashMap::from([(SnapshotId([7; 32]), now)]));
        Ledger::decode(&ledger.encode()).unwrap().merge_all_into(&mut p, &mut s);
        assert_eq!((p, s), (packs.clone(), pins));
        // A ledger without pins is written as before, and such a ledger reads as none.
        let plain = Ledger::from_map(&packs).encode();
        assert!(!String::from_utf8_lossy(&plain).contains("snapshots"));
        assert!(Ledger::decode(&plain).unwrap().snapshots.is_empty());
    }

    #[test]
    fn garbage_truncated_and_oversized_ledgers_are_refused() {
        let now = DateTime::from_timestamp_millis(1_764_000_000_000).unwrap();
        let bytes = Ledger::from_map(&HashMap::from([(PackId([9; 32]), now)])).encode();
        assert!(Ledger::decode(&bytes[..bytes.len() - 2]).is_err());
        assert!(Ledger::decode(b"\xff not json").is_err());
        assert!(Ledger::decode(br#"{"until":{"yesterday":[]}}"#).is_err());
        assert!(Ledger::decode(br#"{"until":{"2026-01-01T00:00:00Z":["abc"]}}"#).is_err());
        let huge = vec![b' '; MAX_LEDGER_LEN + 1];
        assert!(matches!(Ledger::decode(&huge), Err(LedgerError::TooLong(_))));
    }
}

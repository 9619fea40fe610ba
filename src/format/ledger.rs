//! Retention ledgers: what a region knows about how long each pack is locked.
//!
//! Plaintext (sealed and compressed): compact JSON `{"until":{"<RFC 3339 date>":
//! ["<pack id hex>", …], …}}`, grouping pack ids by the date their S3 Object Lock
//! retention runs until, ids sorted within a date. A ledger only saves requests: a
//! pack it does not name is treated as unknown and its lock is raised again, so a
//! reader passes over a ledger that does not decode.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::blob::MAX_BLOB;
use super::ids::PackId;

/// Longest ledger plaintext read (about a million packs at 70 bytes each).
pub const MAX_LEDGER_LEN: usize = MAX_BLOB;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Retain-until date → packs locked at least until then.
    pub until: BTreeMap<DateTime<Utc>, Vec<PackId>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("retention ledger is {0} bytes, more than the {MAX_LEDGER_LEN} a ledger holds")]
    TooLong(usize),
    #[error("retention ledger is malformed: {0}")]
    Json(#[from] serde_json::Error),
}

impl Ledger {
    /// The ledger of `map` (pack → retain-until date).
    pub fn from_map(map: &HashMap<PackId, DateTime<Utc>>) -> Self {
        let mut until: BTreeMap<DateTime<Utc>, Vec<PackId>> = BTreeMap::new();
        for (pack, date) in map {
            until.entry(*date).or_default().push(*pack);
        }
        for packs in until.values_mut() {
            packs.sort();
        }
        Ledger { until }
    }

    /// Enter every pack of this ledger into `known`, keeping the later date of two.
    pub fn merge_into(self, known: &mut HashMap<PackId, DateTime<Utc>>) {
        for (date, packs) in self.until {
            for pack in packs {
                known.entry(pack).and_modify(|d| *d = (*d).max(date)).or_insert(date);
            }
        }
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

//! Object names inside a repository — the one place that knows them.

use crate::format::ids::{IndexId, KeyId, PackId, SnapshotId};

pub const CONFIG: &str = "config";
pub const KEYS: &str = "keys/";
pub const DATA: &str = "data/";
pub const INDEX: &str = "index/";
pub const SNAPSHOTS: &str = "snapshots/";
pub const LOCKS: &str = "locks/";
/// Records of packs a prune has taken out of the index and will delete later.
pub const PRUNE: &str = "prune/";
/// Ledgers of how long each pack is locked (stores with S3 Object Lock only).
pub const RETENTION: &str = "retention/";
/// Drill and failover reports.
pub const REPORTS: &str = "reports/";
/// Signed manifests of snapshots, named by their snapshot's id.
pub const MANIFESTS: &str = "manifests/";
/// Audit segments, named by the position of their first event (20 decimal digits).
pub const AUDIT: &str = "audit/";
/// Copies of the other regions' audit segments, under the copied region's plan name:
/// `audit-copies/<region>/<position>`.
pub const AUDIT_COPIES: &str = "audit-copies/";
/// Checkpoints of the trail signed with the plan's signing key, by the trail's size.
pub const AUDIT_CHECKPOINTS: &str = "audit-checkpoints/";

pub fn key(id: &KeyId) -> String {
    format!("{KEYS}{id}")
}

/// Packs are fanned out over 256 folders by their first byte.
pub fn pack(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("{DATA}{}/{hex}", &hex[..2])
}

pub fn index(id: &IndexId) -> String {
    format!("{INDEX}{id}")
}

pub fn snapshot(id: &SnapshotId) -> String {
    format!("{SNAPSHOTS}{id}")
}

pub fn manifest(id: &SnapshotId) -> String {
    format!("{MANIFESTS}{id}")
}

pub fn prune_record(id: &str) -> String {
    format!("{PRUNE}{id}")
}

pub fn retention_ledger(name: &str) -> String {
    format!("{RETENTION}{name}")
}

pub fn report(name: &str) -> String {
    format!("{REPORTS}{name}")
}

pub fn audit_segment(seq: u64) -> String {
    format!("{AUDIT}{seq:020}")
}

/// The signed checkpoint of the trail at `size` events.
pub fn audit_checkpoint(size: u64) -> String {
    format!("{AUDIT_CHECKPOINTS}{size:020}")
}

/// Where the copy of `region`'s trail is kept.
pub fn audit_copies(region: &str) -> String {
    format!("{AUDIT_COPIES}{region}/")
}

/// The copy of `region`'s segment at position `seq`.
pub fn audit_copy_segment(region: &str, seq: u64) -> String {
    format!("{}{seq:020}", audit_copies(region))
}

/// The position an audit segment's name gives, if it is one a writer chose.
pub fn audit_seq(name: &str) -> Option<u64> {
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

pub fn lock(name: &str) -> String {
    format!("{LOCKS}{name}")
}

/// The id at the end of an object key (`data/ab/<hex>` → `<hex>`).
pub fn id_part(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_keys_are_fanned_out_and_parse_back() {
        let id = PackId([0xab; 32]);
        let key = pack(&id);
        assert!(key.starts_with("data/ab/abab"));
        assert_eq!(PackId::from_hex(id_part(&key)).unwrap(), id);
    }
}

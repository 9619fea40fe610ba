//! Snapshot manifests: the root of one backup.
//!
//! JSON, sealed and compressed. A snapshot is written last, after every pack and index
//! it needs, so its presence proves that everything it references is stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{BlobId, SnapshotId};
use super::names::{DatasetName, Tag};

/// What one backup did; recorded in its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub duration_ms: u64,
    /// Files backed up in a weaker way than their name or content asked for (a
    /// checkpoint with a malformed header stored as plain bytes), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: DateTime<Utc>,
    pub host: String,
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetName>,
    pub tree: BlobId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    #[serde(default)]
    pub summary: Summary,
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Snapshot {
            time: DateTime::from_timestamp(1_700_000_000, 123).unwrap(),
            host: "h".into(),
            paths: vec!["/data".into()],
            tags: vec![Tag::new("nightly").unwrap()],
            dataset: Some(DatasetName::new("models").unwrap()),
            tree: BlobId([1; 32]),
            parent: None,
            summary: Summary::default(),
        };
        assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
    }
}

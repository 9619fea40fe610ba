//! Snapshot manifests: the root of one backup.
//!
//! JSON, sealed and compressed. A snapshot is written last, after every pack and index
//! it needs, so its presence proves that everything it references is stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::anomaly::{Counts, Signals, Verdict};
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
    /// What changed, for anomaly detection (absent in snapshots of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Signals>,
    /// How those changes compare with the dataset's history (absent when not judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<Verdict>,
}

impl Summary {
    /// The share-relevant counts of this run.
    pub fn counts(&self) -> Counts {
        Counts {
            files_new: self.files_new,
            files_changed: self.files_changed,
            files_unchanged: self.files_unchanged,
        }
    }

    /// Judged suspect by the backup that wrote it.
    pub fn suspect(&self) -> bool {
        self.anomaly.as_ref().is_some_and(|a| a.suspect)
    }
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

    #[test]
    fn summary_without_anomaly_fields_still_reads() {
        let old = br#"{"files_new":1,"files_changed":0,"files_unchanged":0,"dirs":1,"bytes_read":5,"bytes_total":5,"blobs_added":1,"bytes_added":9,"duration_ms":3}"#;
        let s: Summary = serde_json::from_slice(old).unwrap();
        assert_eq!((&s.signals, &s.anomaly), (&None, &None));
        assert!(!s.suspect());
    }
}

//! Signed snapshot manifests: what a signed dataset's snapshot holds, in a form a third
//! party can check.
//!
//! A manifest is an in-toto Statement v1 whose predicate (type [`SNAPSHOT_PREDICATE`])
//! names the snapshot id and dataset and lists every regular file: its path inside the
//! snapshot (as restore lays it out: the source folder's name, then the path below it),
//! size, SHA-256 and BLAKE3. The statement is signed in a DSSE envelope at backup time.
//! The subject is the snapshot, with the SHA-256 over the listed files' SHA-256 digests
//! in order, the convention OpenSSF model signatures use for a directory.
//!
//! The stored object (`manifests/<snapshot id>`, sealed like every object) holds that
//! envelope and, for model datasets, one OpenSSF model signature envelope per source
//! folder (`oms.rs`), kept ready for export.
//!
//! Everything decoded here comes from storage: lengths, counts and paths are checked
//! before use, and the statement must name exactly the snapshot it is stored for.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::digest::{Sha256, Sha256Hasher};
use super::dsse::Envelope;
use super::ids::{ContentHash, SnapshotId};
use super::names::DatasetName;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SNAPSHOT_PREDICATE: &str = "https://lifeboat.dev/snapshot-manifest/v1";
/// Longest stored manifest object (plaintext): one sealed value.
pub const MAX_MANIFEST_LEN: usize = super::blob::MAX_BLOB;
/// Longest path of one listed file.
pub const MAX_PATH_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {0} bytes, more than the {MAX_MANIFEST_LEN} a manifest may hold")]
    TooLong(usize),
    #[error("manifest is not valid JSON of its kind: {0}")]
    Json(String),
    #[error("manifest version {0} is not supported by this Lifeboat")]
    Version(u32),
    #[error("statement type is {0:?}, not an in-toto Statement v1")]
    StatementType(String),
    #[error("predicate type is {0:?}, not {SNAPSHOT_PREDICATE:?}")]
    PredicateType(String),
    #[error("statement must have exactly one subject")]
    Subject,
    #[error("listed file {0:?} has a path that is empty, absolute, too long, or steps out with `..`")]
    BadPath(String),
    #[error("listed files are not in strictly increasing path order at {0:?}")]
    Order(String),
    #[error("the subject's digest does not match the listed files")]
    SubjectDigest,
}

/// A subject of an in-toto statement: a name and its digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub name: String,
    pub digest: std::collections::BTreeMap<String, String>,
}

/// An in-toto Statement v1 with predicate `P`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement<P> {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: P,
}

/// One regular file of a signed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: Sha256,
    pub blake3: ContentHash,
}

/// The predicate of a snapshot manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotManifest {
    pub snapshot: SnapshotId,
    pub dataset: DatasetName,
    pub host: String,
    pub time: DateTime<Utc>,
    pub files: Vec<ManifestFile>,
}

/// SHA-256 over the digests in order: the subject digest of a file list.
pub fn root_digest<'a>(digests: impl IntoIterator<Item = &'a Sha256>) -> Sha256 {
    let mut h = Sha256Hasher::default();
    for d in digests {
        h.update(&d.0);
    }
    h.finalize()
}

/// Whether `path` is a relative path that stays inside the folder it is read from.
pub fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH_LEN
        && !path.starts_with('/')
        && !path.contains('\0')
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

impl SnapshotManifest {
    /// The in-toto statement for this manifest, as JSON (the payload that is signed).
    /// `files` must be in increasing path order, as a snapshot walk yields them.
    pub fn statement(&self) -> Vec<u8> {
        let root = root_digest(self.files.iter().map(|f| &f.sha256));
        let statement = Statement {
            statement_type: STATEMENT_TYPE.to_string(),
            subject: vec![Subject {
                name: format!("snapshot/{}", self.snapshot),
                digest: [("sha256".to_string(), root.to_hex())].into(),
            }],
            predicate_type: SNAPSHOT_PREDICATE.to_string(),
            predicate: self,
        };
        serde_json::to_vec(&statement).unwrap_or_default()
    }

    /// Reads and checks a statement payload (already verified as signed).
    pub fn from_statement(payload: &[u8]) -> Result<Self, ManifestError> {
        if payload.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLong(payload.len()));
        }
        let st: Statement<SnapshotManifest> =
            serde_json::from_slice(payload).map_err(|e| ManifestError::Json(e.to_string()))?;
        if st.statement_type != STATEMENT_TYPE {
            return Err(ManifestError::StatementType(st.statement_type));
        }
        if st.predicate_type != SNAPSHOT_PREDICATE {
            return Err(ManifestError::PredicateType(st.predicate_type));
        }
        let [subject] = &st.subject[..] else {
            return Err(ManifestError::Subject);
        };
        st.predicate.check_files()?;
        let root = root_digest(st.predicate.files.iter().map(|f| &f.sha256));
        if subject.digest.get("sha256") != Some(&root.to_hex()) {
            return Err(ManifestError::SubjectDigest);
        }
        Ok(st.predicate)
    }

    fn check_files(&self) -> Result<(), ManifestError> {
        let mut last: Option<&str> = None;
        for f in &self.files {
            if !safe_relative(&f.path) {
                return Err(ManifestError::BadPath(f.path.clone()));
            }
            if last.is_some_and(|l| l >= f.path.as_str()) {
                return Err(ManifestError::Order(f.path.clone()));
            }
            last = Some(&f.path);
        }
        Ok(())
    }
}

/// An OpenSSF model signature kept for one source folder of a model dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSignature {
    /// The folder's name at the snapshot root (the source folder's last component).
    pub path: String,
    /// The signer's key as Sigstore bundles name it (`oms::key_hint`).
    pub hint: String,
    pub envelope: Envelope,
}

/// The stored manifest object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredManifest {
    pub version: u32,
    pub snapshot: Envelope,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelSignature>,
    /// Set when this manifest was carried over by `copy` with its original signature:
    /// the snapshot the statement was signed for (version 2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<SnapshotId>,
}

impl StoredManifest {
    pub const VERSION: u32 = 1;
    /// The version of a manifest carried over by `copy` (it has `copied_from`).
    pub const COPIED_VERSION: u32 = 2;

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLong(bytes.len()));
        }
        let m: Self = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        let expected = match m.copied_from {
            None => Self::VERSION,
            Some(_) => Self::COPIED_VERSION,
        };
        if m.version != expected {
            return Err(ManifestError::Version(m.version));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SnapshotManifest {
        let file = |path: &str, byte: u8| ManifestFile {
            path: path.to_string(),
            size: 5,
            sha256: Sha256([byte; 32]),
            blake3: ContentHash([byte; 32]),
        };
        SnapshotManifest {
            snapshot: SnapshotId([7; 32]),
            dataset: DatasetName::new("models").unwrap(),
            host: "h".into(),
            time: DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
            files: vec![file("m/a.bin", 1), file("m/sub/b", 2)],
        }
    }

    #[test]
    fn statement_round_trips_and_names_the_snapshot() {
        let m = sample();
        let payload = m.statement();
        assert_eq!(SnapshotManifest::from_statement(&payload).unwrap(), m);
        let text = String::from_utf8(payload).unwrap();
        assert!(text.contains("\"_type\":\"https://in-toto.io/Statement/v1\""));
        assert!(text.contains(&format!("snapshot/{}", m.snapshot)));
    }

    #[test]
    fn paths_that_leave_the_snapshot_or_repeat_are_refused() {
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            let mut m = sample();
            m.files[0].path = bad.to_string();
            let err = SnapshotManifest::from_statement(&m.statement()).unwrap_err();
            assert!(
                matches!(err, ManifestError::BadPath(_) | ManifestError::Order(_)),
                "{bad}: {err}"
            );
        }
        let mut m = sample();
        m.files[1].path = m.files[0].path.clone();
        let err = SnapshotManifest::from_statement(&m.statement()).unwrap_err();
        assert!(matches!(err, ManifestError::Order(_)));
    }

    fn stored(version: u32, copied_from: Option<SnapshotId>) -> StoredManifest {
        let envelope = Envelope {
            payload: "e30=".into(),
            payload_type: "application/vnd.in-toto+json".into(),
            signatures: Vec::new(),
        };
        StoredManifest {
            version,
            snapshot: envelope,
            models: Vec::new(),
            copied_from,
        }
    }

    #[test]
    fn a_copied_manifest_is_version_2_and_only_then_names_its_origin() {
        let copied = stored(StoredManifest::COPIED_VERSION, Some(SnapshotId([9; 32])));
        assert_eq!(StoredManifest::decode(&copied.encode()).unwrap(), copied);
        let plain = stored(StoredManifest::VERSION, None);
        assert!(!String::from_utf8(plain.encode()).unwrap().contains("copied_from"));
        for bad in [
            stored(StoredManifest::VERSION, Some(SnapshotId([9; 32]))),
            stored(StoredManifest::COPIED_VERSION, None),
        ] {
            let err = StoredManifest::decode(&bad.encode()).unwrap_err();
            assert!(matches!(err, ManifestError::Version(_)), "{err}");
        }
    }

    #[test]
    fn a_subject_digest_that_does_not_match_the_files_is_refused() {
        let m = sample();
        let text = String::from_utf8(m.statement()).unwrap();
        let root = root_digest(m.files.iter().map(|f| &f.sha256)).to_hex();
        let forged = text.replace(&root, &"0".repeat(64));
        let err = SnapshotManifest::from_statement(forged.as_bytes()).unwrap_err();
        assert_eq!(err, ManifestError::SubjectDigest);
    }
}

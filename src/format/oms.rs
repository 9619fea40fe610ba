//! OpenSSF model signatures (OMS v1.0) for the model folders of a signed snapshot.
//!
//! An OMS signature is a Sigstore bundle (media type v0.3, JSON) whose DSSE envelope
//! holds an in-toto statement with predicate `https://model_signing/signature/v1.0`:
//! the model folder's files by relative path, each with its SHA-256 (`resources`), how
//! the folder was serialised (`method = "files"`, SHA-256, no symlinks, the ignored
//! top-level git paths), and a single subject named after the folder whose digest is the
//! SHA-256 over the resources' digests in order. The bundle's verification material
//! names the public key by the SHA-256 of its PEM text (`hint`).
//!
//! That is the form the `model_signing` tool (`verify key`) checks against a folder on
//! disk, so a model restored from a snapshot can be verified by someone who trusts the
//! public key and nothing of Lifeboat. The statement is made and signed at backup time
//! from the snapshot's manifest, so exporting needs no private key.

use serde::{Deserialize, Serialize};

use super::digest::{Sha256, sha256};
use super::dsse::Envelope;
use super::manifest::{ManifestFile, Statement, Subject, root_digest};
use super::signing::PublicKey;

pub const OMS_PREDICATE: &str = "https://model_signing/signature/v1.0";
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Paths at the top of a model folder that model signing ignores by default.
pub const IGNORED: [&str; 4] = [".gitattributes", ".gitignore", ".git", ".github"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serialization {
    pub method: String,
    pub hash_type: String,
    pub allow_symlinks: bool,
    pub ignore_paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub algorithm: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPredicate {
    pub serialization: Serialization,
    pub resources: Vec<Resource>,
}

/// The files of `files` below folder `folder` (a snapshot-root name), relative to it,
/// without the paths model signing ignores.
fn model_files<'a>(files: &'a [ManifestFile], folder: &str) -> Vec<(&'a str, &'a Sha256)> {
    let prefix = format!("{folder}/");
    files
        .iter()
        .filter_map(|f| f.path.strip_prefix(&prefix).map(|rel| (rel, &f.sha256)))
        .filter(|(rel, _)| !IGNORED.contains(&rel.split('/').next().unwrap_or_default()))
        .collect()
}

/// The OMS statement (JSON payload) for model folder `folder` of a manifest's files.
pub fn statement(files: &[ManifestFile], folder: &str) -> Vec<u8> {
    let listed = model_files(files, folder);
    let resources = listed
        .iter()
        .map(|(name, digest)| Resource {
            name: name.to_string(),
            algorithm: "sha256".into(),
            digest: digest.to_hex(),
        })
        .collect();
    let statement = Statement {
        statement_type: super::manifest::STATEMENT_TYPE.to_string(),
        subject: vec![Subject {
            name: folder.to_string(),
            digest: [("sha256".to_string(), root_digest(listed.iter().map(|l| l.1)).to_hex())].into(),
        }],
        predicate_type: OMS_PREDICATE.to_string(),
        predicate: ModelPredicate {
            serialization: Serialization {
                method: "files".into(),
                hash_type: "sha256".into(),
                allow_symlinks: false,
                ignore_paths: IGNORED.iter().map(|s| s.to_string()).collect(),
            },
            resources,
        },
    };
    serde_json::to_vec(&statement).unwrap_or_default()
}

/// How a bundle names its public key: SHA-256 of the key's PEM text, in hex.
pub fn key_hint(key: &PublicKey) -> String {
    sha256(key.to_pem().as_bytes()).to_hex()
}

/// The Sigstore bundle (JSON) that carries `envelope`, signed by the key named by `hint`.
pub fn bundle(envelope: &Envelope, hint: &str) -> Vec<u8> {
    let value = serde_json::json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": { "publicKey": { "hint": hint }, "tlogEntries": [] },
        "dsseEnvelope": envelope,
    });
    serde_json::to_vec_pretty(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::digest::sha256;
    use crate::format::ids::ContentHash;

    fn file(path: &str, data: &[u8]) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            size: data.len() as u64,
            sha256: sha256(data),
            blake3: ContentHash([0; 32]),
        }
    }

    #[test]
    fn statement_lists_the_folder_relative_and_matches_the_reference_digest() {
        // The reference values come from `model_signing sign key` over a folder with
        // a.bin = "hello", empty = "", sub/b.txt = "world!".
        let files = [
            file("model/a.bin", b"hello"),
            file("model/empty", b""),
            file("model/sub/b.txt", b"world!"),
            file("other/x", b"x"),
            file("model/.git/HEAD", b"ref"),
        ];
        let mut sorted = files.to_vec();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        let st: Statement<ModelPredicate> = serde_json::from_slice(&statement(&sorted, "model")).unwrap();
        let names: Vec<&str> = st.predicate.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a.bin", "empty", "sub/b.txt"]);
        assert_eq!(
            st.subject[0].digest["sha256"],
            "e5b38e4be0412b0ae2f116517b07b3a900ea045288cf9d36d85e67c21e5b4f82"
        );
        assert_eq!(st.predicate_type, OMS_PREDICATE);
    }
}

//! Signed manifests of snapshots: made at backup, checked before a snapshot is trusted.
//!
//! At backup of a signed dataset the walker records every regular file with its size,
//! BLAKE3 and SHA-256; [`signed_manifest`] turns that list into the in-toto statement of
//! `format::manifest`, signs it in a DSSE envelope, adds an OpenSSF model signature per
//! source folder for model datasets, and seals the result once for every region.
//!
//! [`check_snapshot`] is what restore, verify, drills and failovers ask before they
//! trust a snapshot: the manifest must exist, carry a signature by one of the trusted
//! keys, name this very snapshot and dataset, and list exactly the files the snapshot's
//! trees hold with the same sizes and hashes. [`check_restored`] then compares restored
//! bytes with the signed SHA-256 digests.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use bytes::Bytes;

use std::sync::Arc;

use super::restore::{RestoreOptions, RestoreOutcome, restore};
use super::{EngineError, Progress, Result, ls};
use crate::format::digest::{Sha256, Sha256Hasher};
use crate::format::dsse::Envelope;
use crate::format::ids::SnapshotId;
use crate::format::manifest::{ManifestFile, ModelSignature, SnapshotManifest, StoredManifest};
use crate::format::oms;
use crate::format::signing::{MAX_PEM_LEN, PublicKey, SigningKey};
use crate::format::snapshot::Snapshot;
use crate::format::tree::NodeKind;
use crate::repo::{Index, Repository};

/// How a signed dataset's snapshots are signed.
#[derive(Debug)]
pub struct Signing {
    pub key: SigningKey,
    /// Also keep an OpenSSF model signature for each source folder (model datasets).
    pub models: bool,
}

impl Signing {
    /// A signing key from its PEM text; `source` names where it came from in errors.
    pub fn from_pem(pem: &[u8], source: &str, models: bool) -> Result<Self> {
        let key = SigningKey::from_pem(pem).map_err(|e| {
            EngineError::BadInput(format!(
                "signing key from {source}: {e} — make one with `lifeboat signing-key generate --out FILE`"
            ))
        })?;
        Ok(Self { key, models })
    }
}

/// The public keys whose signatures are accepted.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    /// Reads every PEM public key file; an unreadable or malformed one is named.
    pub fn load(paths: &[std::path::PathBuf]) -> Result<Self> {
        let mut keys = Vec::new();
        for path in paths {
            let bad = |e: String| EngineError::BadInput(format!("trusted key {}: {e}", path.display()));
            let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
            if meta.len() > MAX_PEM_LEN as u64 {
                return Err(bad(format!("{} bytes is too long for a public key", meta.len())));
            }
            let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            keys.push(PublicKey::from_pem(&text).map_err(|e| bad(e.to_string()))?);
        }
        Ok(Self(keys))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These keys and `key`.
    pub fn and(mut self, key: &PublicKey) -> Self {
        self.0.push(key.clone());
        self
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.0
    }
}

/// The sealed manifest of snapshot `id`, signed with `signing`'s key.
pub fn signed_manifest(
    repo: &Repository,
    id: &SnapshotId,
    snapshot: &Snapshot,
    files: Vec<ManifestFile>,
    signing: &Signing,
) -> Result<Bytes> {
    let dataset = snapshot
        .dataset
        .clone()
        .ok_or_else(|| EngineError::BadInput("a signed snapshot must belong to a dataset".into()))?;
    let manifest = SnapshotManifest {
        snapshot: *id,
        dataset,
        host: snapshot.host.clone(),
        time: snapshot.time,
        files,
    };
    let folders = if signing.models {
        root_names(snapshot)
    } else {
        Vec::new()
    };
    Ok(repo.seal_manifest(&sign_manifest(&manifest, folders, &signing.key)?))
}

/// `manifest` signed with `key`, with an OpenSSF model signature for each of `folders`.
pub(super) fn sign_manifest(
    manifest: &SnapshotManifest,
    folders: Vec<String>,
    key: &SigningKey,
) -> Result<StoredManifest> {
    let sign = |payload: &[u8]| Envelope::sign(payload, key).map_err(|e| EngineError::Internal(e.to_string()));
    let mut stored = StoredManifest {
        version: StoredManifest::VERSION,
        snapshot: sign(&manifest.statement())?,
        models: Vec::new(),
        copied_from: None,
    };
    for folder in folders {
        let envelope = sign(&oms::statement(&manifest.files, &folder))?;
        let hint = oms::key_hint(key.public());
        stored.models.push(ModelSignature {
            path: folder,
            hint,
            envelope,
        });
    }
    Ok(stored)
}

/// The names of the snapshot's top-level entries: each source path's last component.
fn root_names(snapshot: &Snapshot) -> Vec<String> {
    let names = snapshot.paths.iter().filter_map(|p| Path::new(p).file_name());
    names.map(|n| n.to_string_lossy().into_owned()).collect()
}

/// What a snapshot's signature says, once checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Signed by a trusted key, and the manifest matches the snapshot. `copied_from`:
    /// the signature was made for that snapshot and carried over by `copy` to this
    /// copy of it (same dataset, host, time and files).
    Signed {
        signer: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        copied_from: Option<SnapshotId>,
    },
    /// No manifest is stored for the snapshot.
    Unsigned,
    /// A manifest exists but no trusted key's signature verifies it.
    Untrusted { claimed: Vec<String> },
    /// The signature verifies, but the manifest does not match this snapshot.
    Mismatch { detail: String },
    /// A manifest is stored, claiming these signers; not checked (no trusted keys).
    Unchecked { claimed: Vec<String> },
}

impl Verdict {
    pub fn trusted(&self) -> bool {
        matches!(self, Verdict::Signed { .. })
    }

    /// Whether a manifest is stored at all.
    pub fn signed(&self) -> bool {
        !matches!(self, Verdict::Unsigned)
    }

    /// A word for tables: `yes`, `no`, `unchecked`, or `BAD`.
    pub fn short(&self) -> &'static str {
        match self {
            Verdict::Signed { .. } => "yes",
            Verdict::Unsigned => "no",
            Verdict::Unchecked { .. } => "unchecked",
            Verdict::Untrusted { .. } | Verdict::Mismatch { .. } => "BAD",
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Signed { signer, copied_from } => {
                let by = format!("signed by key {}", short_keys(std::slice::from_ref(signer)));
                match copied_from {
                    None => by,
                    Some(from) => format!("{by} (the original signature of snapshot {}, copied)", from.short()),
                }
            }
            Verdict::Unsigned => "unsigned (no manifest)".into(),
            Verdict::Untrusted { claimed } => format!(
                "signature does not verify under any trusted key (claims key {})",
                short_keys(claimed)
            ),
            Verdict::Mismatch { detail } => format!("signed manifest does not match the snapshot: {detail}"),
            Verdict::Unchecked { claimed } => format!(
                "signed, claims key {} (not checked: no trusted key given)",
                short_keys(claimed)
            ),
        }
    }
}

/// The verdict on snapshot `id`: checked against `trusted`, or only whether a
/// manifest is stored and whom it names when no key is trusted.
pub async fn signature_of(
    repo: &Repository,
    index: Option<&Index>,
    id: &SnapshotId,
    snapshot: &Snapshot,
    trusted: &TrustedKeys,
) -> Result<Verdict> {
    if !trusted.is_empty() {
        return Ok(check_snapshot(repo, index, id, snapshot, trusted).await?.0);
    }
    Ok(match repo.load_manifest(id).await? {
        None => Verdict::Unsigned,
        Some(stored) => Verdict::Unchecked {
            claimed: stored.snapshot.claimed_signers(),
        },
    })
}

/// Key ids for messages: the first 16 characters of each, anything but hex shown as
/// `?` (claimed ids come from storage and may be any text).
fn short_keys(ids: &[String]) -> String {
    let short = ids.iter().map(|k| {
        k.chars()
            .take(16)
            .map(|c| if c.is_ascii_hexdigit() { c } else { '?' })
            .collect::<String>()
    });
    short.collect::<Vec<_>>().join(", ")
}

/// The manifest of snapshot `id` with its verdict; the manifest only when trusted.
/// The index is loaded here when not given and only once a signature holds.
pub async fn check_snapshot(
    repo: &Repository,
    index: Option<&Index>,
    id: &SnapshotId,
    snapshot: &Snapshot,
    trusted: &TrustedKeys,
) -> Result<(Verdict, Option<SnapshotManifest>)> {
    let Some(stored) = repo.load_manifest(id).await? else {
        return Ok((Verdict::Unsigned, None));
    };
    let Ok((payload, signer)) = stored.snapshot.verify(&trusted.0) else {
        let claimed = stored.snapshot.claimed_signers();
        return Ok((Verdict::Untrusted { claimed }, None));
    };
    let signer = signer.key_id();
    let copied_from = stored.copied_from;
    let manifest = match SnapshotManifest::from_statement(&payload) {
        Ok(m) => m,
        Err(e) => return Ok((mismatch(e.to_string()), None)),
    };
    let loaded;
    let index = match index {
        Some(index) => index,
        None => {
            loaded = repo.load_index().await?;
            &loaded
        }
    };
    if let Err(detail) = matches_snapshot(repo, index, (id, snapshot), &manifest, copied_from).await? {
        return Ok((mismatch(detail), None));
    }
    Ok((Verdict::Signed { signer, copied_from }, Some(manifest)))
}

fn mismatch(detail: String) -> Verdict {
    Verdict::Mismatch { detail }
}

/// `Err(detail)` when the manifest is not this snapshot's or lists other files. A
/// manifest carried over by `copy` (`copied_from`) names the snapshot it was signed
/// for; it holds for a copy of that one: same host and time (and, below, dataset and
/// files).
async fn matches_snapshot(
    repo: &Repository,
    index: &Index,
    (id, snapshot): (&SnapshotId, &Snapshot),
    manifest: &SnapshotManifest,
    copied_from: Option<SnapshotId>,
) -> Result<std::result::Result<(), String>> {
    let a_copy =
        copied_from == Some(manifest.snapshot) && manifest.host == snapshot.host && manifest.time == snapshot.time;
    if manifest.snapshot != *id && !a_copy {
        return Ok(Err(format!("it was signed for snapshot {}", manifest.snapshot.short())));
    }
    if snapshot.dataset.as_ref() != Some(&manifest.dataset) {
        return Ok(Err(format!("it was signed for dataset {}", manifest.dataset)));
    }
    let entries = ls::list(repo, index, id, &snapshot.tree).await?;
    let files: BTreeMap<String, &ls::Entry> = entries
        .iter()
        .filter(|e| e.kind == NodeKind::File)
        .map(|e| (e.path.to_string_lossy().into_owned(), e))
        .collect();
    if files.len() != manifest.files.len() {
        return Ok(Err(format!(
            "the snapshot holds {} files, the manifest lists {}",
            files.len(),
            manifest.files.len()
        )));
    }
    for f in &manifest.files {
        let same = files
            .get(&f.path)
            .is_some_and(|e| e.size == f.size && e.hash == Some(f.blake3));
        if !same {
            return Ok(Err(format!("file {} differs from the signed one", f.path)));
        }
    }
    Ok(Ok(()))
}

/// Compare every restored file under `target` that the manifest lists and `restored`
/// selects with its signed size and SHA-256; returns the files that differ.
pub fn check_restored(
    target: &Path,
    manifest: &SnapshotManifest,
    restored: impl Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let mut bad = Vec::new();
    for f in manifest.files.iter().filter(|f| restored(&f.path)) {
        match sha256_file(&target.join(&f.path)) {
            Ok((size, digest)) if size == f.size && digest == f.sha256 => {}
            Ok(_) => bad.push((f.path.clone(), "content differs from the signed digest".into())),
            Err(e) => bad.push((f.path.clone(), format!("cannot read it back: {e}"))),
        }
    }
    bad
}

fn sha256_file(path: &Path) -> std::io::Result<(u64, Sha256)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((size, h.finalize()));
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
}

/// The OpenSSF model signature bundle for model folder `folder` of snapshot `id`;
/// with `trusted`, its signature must verify under one of those keys.
pub async fn export_model_signature(
    repo: &Repository,
    id: &SnapshotId,
    folder: &str,
    trusted: Option<&TrustedKeys>,
) -> Result<Vec<u8>> {
    let stored = repo
        .load_manifest(id)
        .await?
        .ok_or_else(|| EngineError::BadInput(format!("snapshot {} has no signed manifest", id.short())))?;
    let Some(model) = stored.models.iter().find(|m| m.path == folder.trim_matches('/')) else {
        let known: Vec<&str> = stored.models.iter().map(|m| m.path.as_str()).collect();
        return Err(EngineError::BadInput(format!(
            "snapshot {} has no model signature for {folder:?} — its model folders are: {}",
            id.short(),
            if known.is_empty() {
                "none (not a model dataset)".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if let Some(keys) = trusted
        && model.envelope.verify(&keys.0).is_err()
    {
        return Err(EngineError::Damage {
            message: format!(
                "the model signature of {folder} in snapshot {} does not verify under any trusted key — not exported",
                id.short()
            ),
            files: Vec::new(),
        });
    }
    Ok(oms::bundle(&model.envelope, &model.hint))
}

/// What a caller about to trust a snapshot knows about its dataset.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub keys: TrustedKeys,
    /// The dataset is signed (`sign = true`): an unsigned snapshot is refused.
    pub required: bool,
    /// Accept an unsigned or badly signed snapshot anyway (`--allow-unsigned`).
    pub allow_unsigned: bool,
}

/// A checked snapshot: the verdict, and the signed manifest when it is trusted.
#[derive(Debug, Clone)]
pub struct Checked {
    pub verdict: Verdict,
    pub manifest: Option<SnapshotManifest>,
}

/// Check snapshot `id` before trusting it. `None` when there is nothing to check (an
/// unsigned dataset and no trusted keys); refuses, as damage, a signed dataset's
/// snapshot whose manifest is missing, untrusted or wrong, unless allowed.
pub async fn gate(repo: &Repository, id: &SnapshotId, snapshot: &Snapshot, trust: &Trust) -> Result<Option<Checked>> {
    if !trust.required && trust.keys.is_empty() {
        return Ok(None);
    }
    let (verdict, manifest) = check_snapshot(repo, None, id, snapshot, &trust.keys).await?;
    if trust.required && !verdict.trusted() && !trust.allow_unsigned {
        return Err(refused(id, snapshot, &verdict));
    }
    Ok(Some(Checked { verdict, manifest }))
}

fn refused(id: &SnapshotId, snapshot: &Snapshot, verdict: &Verdict) -> EngineError {
    let dataset = snapshot.dataset.as_ref().map_or("?".to_string(), |d| d.to_string());
    EngineError::Damage {
        message: format!(
            "snapshot {} of signed dataset {dataset} is not trusted: {} — restore another snapshot, add the \
             signer's public key to [signing] trusted, or pass --allow-unsigned to accept it anyway",
            id.short(),
            verdict.describe()
        ),
        files: Vec::new(),
    }
}

/// After a restore into `target`: every signed file there must match its digest.
/// With `selected` false (a partial restore), files that are absent are not counted.
pub fn confirm_restored(target: &Path, checked: Option<&Checked>, complete: bool) -> Result<()> {
    let Some(manifest) = checked.and_then(|c| c.manifest.as_ref()) else {
        return Ok(());
    };
    let bad = check_restored(target, manifest, |p| complete || target.join(p).is_file());
    if bad.is_empty() {
        return Ok(());
    }
    let files: Vec<String> = bad.iter().map(|(p, why)| format!("{p}: {why}")).collect();
    Err(EngineError::Damage {
        message: format!(
            "{} restored files do not match the signed manifest ({}) — the repository or the target was changed; \
             do not use them",
            bad.len(),
            files.join("; ")
        ),
        files: bad.into_iter().map(|(p, _)| p).collect(),
    })
}

/// Restore snapshot `id` as `restore` does, trusting it only as `trust` allows: the
/// signature is checked before anything is written and the restored files are compared
/// with the signed digests after. Returns the verdict when there was one to check.
pub async fn restore_checked(
    repo: &Repository,
    id: &SnapshotId,
    snapshot: &Snapshot,
    opts: &RestoreOptions,
    trust: &Trust,
    progress: Arc<Progress>,
) -> Result<(RestoreOutcome, Option<Verdict>)> {
    let checked = gate(repo, id, snapshot, trust).await?;
    let outcome = restore(repo, id, opts, progress).await?;
    // A dry run wrote nothing to compare.
    if !opts.dry_run {
        let complete = opts.include.is_empty() && opts.only.is_none();
        confirm_restored(&opts.target, checked.as_ref(), complete)?;
    }
    Ok((outcome, checked.map(|c| c.verdict)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::digest::sha256;
    use crate::format::ids::ContentHash;
    use crate::format::names::DatasetName;

    fn manifest(files: &[(&str, &[u8])]) -> SnapshotManifest {
        let files = files.iter().map(|(path, data)| ManifestFile {
            path: path.to_string(),
            size: data.len() as u64,
            sha256: sha256(data),
            blake3: ContentHash::of_bytes(data),
        });
        SnapshotManifest {
            snapshot: SnapshotId([1; 32]),
            dataset: DatasetName::new("d").unwrap(),
            host: "h".into(),
            time: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            files: files.collect(),
        }
    }

    #[test]
    fn restored_files_that_differ_from_their_signed_digest_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("m")).unwrap();
        std::fs::write(dir.path().join("m/a"), b"hello").unwrap();
        std::fs::write(dir.path().join("m/b"), b"hellO").unwrap();
        let m = manifest(&[("m/a", b"hello"), ("m/b", b"hello"), ("m/c", b"gone")]);
        let bad = check_restored(dir.path(), &m, |_| true);
        let names: Vec<&str> = bad.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["m/b", "m/c"]);
        let checked = Checked {
            verdict: Verdict::Signed {
                signer: "k".into(),
                copied_from: None,
            },
            manifest: Some(m),
        };
        let err = confirm_restored(dir.path(), Some(&checked), false).unwrap_err();
        assert!(
            matches!(&err, EngineError::Damage { files, .. } if files == &["m/b"]),
            "{err}"
        );
        assert!(confirm_restored(dir.path(), None, true).is_ok());
    }
}

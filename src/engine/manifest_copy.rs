//! Signed manifests across `copy`: a copy re-encrypts every blob, so it gets a new
//! snapshot id in the destination, and the original manifest names the old one.
//!
//! With a signing key (`copy --plan`, the plan's `[signing]` key) the source's manifest
//! is first checked against the trusted keys and that key, and the copy then gets a
//! fresh manifest: the same dataset, host, time and file digests (file digests are
//! unkeyed, so a copy does not change them), the new snapshot id, signed with the key.
//! A source manifest that does not hold is refused rather than re-signed: re-signing
//! vouches for it.
//!
//! Without a key the original signed statement is carried over as it is, marked with
//! the snapshot it was signed for (`copied_from`, format.md §12a). It verifies in the
//! destination only for a copy of that snapshot: same dataset, host, time and files,
//! checked as for any manifest; so it proves the same content, not the new id.

use bytes::Bytes;

use super::manifest::{TrustedKeys, check_snapshot, sign_manifest};
use super::{EngineError, Result};
use crate::format::ids::SnapshotId;
use crate::format::manifest::{SnapshotManifest, StoredManifest};
use crate::format::signing::SigningKey;
use crate::format::snapshot::Snapshot;
use crate::repo::{Index, Repository};

/// How `copy` treats signed snapshots.
#[derive(Debug, Default)]
pub struct CopySigning {
    /// Re-sign each copied signed snapshot with this key; `None` carries the
    /// original signature over.
    pub key: Option<SigningKey>,
    /// Keys a source manifest may be signed with before it is re-signed (the key's
    /// own public key is trusted as well).
    pub trusted: TrustedKeys,
}

/// What the copy of one snapshot gets as its manifest.
#[derive(Debug)]
pub(super) enum Carried<'k> {
    /// The source snapshot has no manifest.
    Unsigned,
    /// A checked manifest, to be signed anew for the copy (and its model folders).
    Resign {
        manifest: SnapshotManifest,
        folders: Vec<String>,
        key: &'k SigningKey,
    },
    /// The original signature, marked as copied.
    Original(Box<StoredManifest>),
}

/// Decide, before snapshot `id` is copied, what manifest its copy gets; refuses (as
/// damage) a signed snapshot whose manifest does not hold when it is to be re-signed.
pub(super) async fn prepare<'k>(
    src: &Repository,
    index: &Index,
    (id, snapshot): (&SnapshotId, &Snapshot),
    signing: &'k CopySigning,
) -> Result<Carried<'k>> {
    let Some(stored) = src.load_manifest(id).await? else {
        return Ok(Carried::Unsigned);
    };
    let Some(key) = &signing.key else {
        let copied_from = stored.copied_from.unwrap_or(*id);
        return Ok(Carried::Original(Box::new(StoredManifest {
            version: StoredManifest::COPIED_VERSION,
            copied_from: Some(copied_from),
            ..stored
        })));
    };
    let keys = signing.trusted.clone().and(key.public());
    let (verdict, manifest) = check_snapshot(src, Some(index), id, snapshot, &keys).await?;
    let Some(manifest) = manifest else {
        return Err(EngineError::Damage {
            message: format!(
                "snapshot {} in {} is not re-signed for the copy: {} — copy it without a signing key to carry its \
                 signature over as it is, or trust its signer",
                id.short(),
                src.address(),
                verdict.describe()
            ),
            files: Vec::new(),
        });
    };
    let folders = stored.models.iter().map(|m| m.path.clone()).collect();
    Ok(Carried::Resign { manifest, folders, key })
}

/// The sealed manifest of the copy `new_id` in `dst`, if it gets one.
pub(super) fn seal_for_copy(dst: &Repository, new_id: &SnapshotId, carried: Carried<'_>) -> Result<Option<Bytes>> {
    let stored = match carried {
        Carried::Unsigned => return Ok(None),
        Carried::Original(stored) => *stored,
        Carried::Resign { manifest, folders, key } => {
            let renamed = SnapshotManifest {
                snapshot: *new_id,
                ..manifest
            };
            sign_manifest(&renamed, folders, key)?
        }
    };
    Ok(Some(dst.seal_manifest(&stored)))
}

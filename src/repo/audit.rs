//! Typed access to the audit trail's segments under `audit/`.
//!
//! A segment is named by the position of its first event and written create-only:
//! two writers that read the same chain head race for the same name, and the store
//! lets exactly one of them have it, so the chain cannot fork silently; the loser
//! reads the new head and tries again (`engine::audit`). Segments are locked like
//! snapshots where the store can lock (`objects`).

use bytes::Bytes;

use super::bounded::read_bounded;
use super::error::{RepoError, Result};
use super::objects::{self, ObjectKind};
use super::{Repository, layout};
use crate::format::audit::{self, ChainKey, Checkpoint, MAX_SEGMENT_LEN, Record, Segment};

/// Largest sealed segment: the plaintext bound plus the compression byte, the longest
/// nonce and the tag.
const MAX_SEALED_SEGMENT: u64 = MAX_SEGMENT_LEN as u64 + 64;

/// What is stored under `audit/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditListing {
    /// Segments by the position of their first event, ascending, with their sizes.
    pub segments: Vec<(u64, u64)>,
    /// Names under `audit/` that no writer chose.
    pub foreign: Vec<String>,
}

impl Repository {
    /// Every object under `audit/`.
    pub async fn audit_listing(&self) -> Result<AuditListing> {
        let mut out = AuditListing::default();
        for meta in self.store.list(layout::AUDIT).await? {
            let name = layout::id_part(&meta.key);
            match layout::audit_seq(name) {
                Some(seq) => out.segments.push((seq, meta.size)),
                None => out.foreign.push(meta.key.clone()),
            }
        }
        out.segments.sort_unstable();
        Ok(out)
    }

    /// Read, open and check the segment stored at position `seq` (`size` from a listing).
    pub async fn load_audit_segment(&self, seq: u64, size: Option<u64>) -> Result<Segment> {
        let key = layout::audit_segment(seq);
        let raw = read_bounded(self.store.as_ref(), &key, size, MAX_SEALED_SEGMENT).await?;
        audit::open(&self.key, self.cipher(), &raw).map_err(|e| RepoError::damaged(self.audit_what(&key), e))
    }

    /// Append `records` to the chain that ends at `after`, as one segment. `None` when
    /// another writer appended at that position first.
    pub async fn append_audit(&self, after: Checkpoint, records: Vec<Record>) -> Result<Option<Segment>> {
        let segment = Segment::append(&ChainKey::of(&self.key), after, records);
        let sealed = audit::seal(&self.key, self.cipher(), &self.nonce(), &segment);
        let key = layout::audit_segment(after.size);
        let store = self.store.as_ref();
        let written = objects::put_if_absent(store, ObjectKind::AuditSegment, &key, Bytes::from(sealed)).await?;
        Ok(written.then_some(segment))
    }

    /// Copy the segment at `seq` byte for byte into the replica `dst`, after checking
    /// that it opens, so damage is not replicated. `false` when `dst` already has one there.
    pub async fn copy_audit_segment_to(&self, dst: &Repository, seq: u64) -> Result<bool> {
        let key = layout::audit_segment(seq);
        let raw = read_bounded(self.store.as_ref(), &key, None, MAX_SEALED_SEGMENT).await?;
        audit::open(&self.key, self.cipher(), &raw).map_err(|e| RepoError::damaged(self.audit_what(&key), e))?;
        objects::put_if_absent(dst.store.as_ref(), ObjectKind::AuditSegment, &key, raw).await
    }

    fn audit_what(&self, key: &str) -> String {
        format!("{}/{key}", self.address())
    }
}

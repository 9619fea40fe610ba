//! Typed access to the audit trail's segments under `audit/`.
//!
//! A segment is named by the position of its first event and written create-only:
//! two writers that read the same chain head race for the same name, and the store
//! lets exactly one of them have it, so the chain cannot fork silently; the loser
//! reads the new head and tries again (`engine::audit`). Segments are locked like
//! snapshots where the store can lock (`objects`).
//!
//! A region of a plan also keeps a copy of each other region's trail under
//! `audit-copies/<region>/`, segment for segment, byte for byte: an attacker who rolls
//! back or rewrites one region's trail then has to do the same in every other region
//! to go unnoticed (`engine::audit::copies`).

use bytes::Bytes;

use super::bounded::read_bounded;
use super::error::{RepoError, Result};
use super::objects::{self, ObjectKind};
use super::{Repository, layout};
use crate::format::audit::{self, ChainKey, Checkpoint, MAX_SEGMENT_LEN, Record, Segment};
use crate::format::audit_checkpoint;
use crate::format::dsse::Envelope;
use crate::format::names::RegionName;

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

/// Which trail of a repository: its own, or the copy it keeps of another region's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailOf {
    Own,
    CopyOf(RegionName),
}

impl TrailOf {
    fn prefix(&self) -> String {
        match self {
            TrailOf::Own => layout::AUDIT.to_string(),
            TrailOf::CopyOf(region) => layout::audit_copies(region.as_str()),
        }
    }

    fn segment(&self, seq: u64) -> String {
        match self {
            TrailOf::Own => layout::audit_segment(seq),
            TrailOf::CopyOf(region) => layout::audit_copy_segment(region.as_str(), seq),
        }
    }
}

impl Repository {
    /// Every object under `audit/`.
    pub async fn audit_listing(&self) -> Result<AuditListing> {
        self.audit_listing_of(&TrailOf::Own).await
    }

    /// Every object of the trail `which`.
    pub async fn audit_listing_of(&self, which: &TrailOf) -> Result<AuditListing> {
        let mut out = AuditListing::default();
        for meta in self.store.list(&which.prefix()).await? {
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
        self.load_audit_segment_of(&TrailOf::Own, seq, size).await
    }

    /// Read, open and check the segment at position `seq` of the trail `which`.
    pub async fn load_audit_segment_of(&self, which: &TrailOf, seq: u64, size: Option<u64>) -> Result<Segment> {
        let key = which.segment(seq);
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

    /// Copy this repository's own segment at `seq` byte for byte into `dst`'s copy of
    /// this region's trail (`region` is this repository's name in the plan), after
    /// checking that it opens, so damage is not copied. Create-only: a segment `dst`
    /// already holds there is never overwritten. Returns whether it was written and
    /// the position after the segment.
    pub async fn copy_audit_segment_to(&self, dst: &Repository, seq: u64, region: &RegionName) -> Result<(bool, u64)> {
        let key = layout::audit_segment(seq);
        let raw = read_bounded(self.store.as_ref(), &key, None, MAX_SEALED_SEGMENT).await?;
        let segment =
            audit::open(&self.key, self.cipher(), &raw).map_err(|e| RepoError::damaged(self.audit_what(&key), e))?;
        let to = TrailOf::CopyOf(region.clone()).segment(seq);
        let written = objects::put_if_absent(dst.store.as_ref(), ObjectKind::AuditSegment, &to, raw).await?;
        Ok((written, segment.checkpoint.size))
    }

    /// The signed checkpoints stored, by size ascending, with their object sizes; names
    /// that are not 20 digits are passed over.
    pub async fn signed_checkpoints(&self) -> Result<Vec<(u64, u64)>> {
        let listed = self.store.list(layout::AUDIT_CHECKPOINTS).await?;
        let mut out: Vec<(u64, u64)> = listed
            .iter()
            .filter_map(|m| Some((layout::audit_seq(layout::id_part(&m.key))?, m.size)))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Store the signed checkpoint of the trail at `size`, sealed, create-only: `false`
    /// when one is stored there already.
    pub async fn put_signed_checkpoint(&self, size: u64, envelope: &Envelope) -> Result<bool> {
        let sealed = Bytes::from(self.seal(&audit_checkpoint::encode(envelope), self.compression()));
        let key = layout::audit_checkpoint(size);
        objects::put_if_absent(self.store.as_ref(), ObjectKind::AuditSegment, &key, sealed).await
    }

    /// The envelope of the signed checkpoint at `size` (`len` from a listing); its
    /// signature is for the caller to check.
    pub async fn load_signed_checkpoint(&self, size: u64, len: Option<u64>) -> Result<Envelope> {
        let key = layout::audit_checkpoint(size);
        let bound = audit_checkpoint::MAX_SIGNED_CHECKPOINT_LEN as u64 + 64;
        let raw = read_bounded(self.store.as_ref(), &key, len, bound).await?;
        let what = self.audit_what(&key);
        let plain = self.open_sealed(&what, &raw)?;
        audit_checkpoint::decode(&plain).map_err(|e| RepoError::damaged(what, e))
    }

    fn audit_what(&self, key: &str) -> String {
        format!("{}/{key}", self.address())
    }
}

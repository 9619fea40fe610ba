//! Collects sealed blobs into packs of a target size.
//!
//! Blobs are shuffled before a pack is assembled, so the order inside a pack says
//! nothing about the order of chunks in a file (keyed-CDC chunk-size attacks need it).

use bytes::Bytes;
use rand::seq::SliceRandom;

use super::Repository;
use crate::format::ids::{BlobId, PackId};
use crate::format::pack::{self, BlobKind, PackEntry, PendingBlob};

/// A complete pack, ready to upload to one or more regions.
#[derive(Debug, Clone)]
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Bytes,
    pub entries: Vec<PackEntry>,
}

#[derive(Debug)]
pub struct PackBuilder {
    blobs: Vec<PendingBlob>,
    size: usize,
    target: usize,
}

impl PackBuilder {
    pub fn new(target: usize) -> Self {
        Self {
            blobs: Vec::new(),
            size: 0,
            target,
        }
    }

    /// Add a sealed blob; returns true once the pack has reached its target size.
    pub fn add(&mut self, kind: BlobKind, id: BlobId, raw_length: u32, sealed: Vec<u8>) -> bool {
        self.size += sealed.len();
        self.blobs.push(PendingBlob {
            kind,
            id,
            raw_length,
            sealed,
        });
        self.size >= self.target
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Assemble the pack from everything added so far and start a new one.
    pub fn finish(&mut self, repo: &Repository) -> FinishedPack {
        let mut blobs = std::mem::take(&mut self.blobs);
        self.size = 0;
        blobs.shuffle(&mut rand::thread_rng());
        let nonce = super::random::<24>();
        let (id, bytes, entries) =
            pack::assemble(repo.key(), repo.cipher(), &nonce[..repo.cipher().nonce_len()], blobs);
        FinishedPack { id, bytes, entries }
    }
}

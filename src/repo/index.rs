//! The in-memory index: blob id → pack and position.
//!
//! This is the one structure whose size grows with the repository: about 64 bytes per
//! blob (32-byte id, 17-byte location, hash-table overhead). Pack ids are stored once
//! and referred to by number.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::format::ids::{BlobId, IndexId, PackId};
use crate::format::index::IndexFile;
use crate::format::pack::{BlobKind, PackEntry};

/// Where one blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub kind: BlobKind,
}

#[derive(Debug, Default, Clone)]
pub struct Index {
    packs: Vec<PackId>,
    pack_numbers: HashMap<PackId, u32>,
    blobs: foldhash::HashMap<BlobId, Location>,
    files: Vec<IndexId>,
    superseded: HashSet<IndexId>,
    /// Bytes per pack (by number) of entries whose blob another pack already holds:
    /// copies nobody reads, which prune counts as unused.
    shadowed: HashMap<u32, u64>,
}

impl Index {
    /// Build the index from every index object read, leaving out the content of
    /// objects that another one supersedes: prune writes a replacement before it
    /// deletes the old objects, and a reader in between must see only the new one.
    pub fn from_files(files: &[(IndexId, IndexFile)]) -> Self {
        let mut index = Index::default();
        for (_, f) in files {
            index.superseded.extend(f.supersedes.iter().copied());
        }
        for (id, f) in files {
            if index.superseded.contains(id) {
                continue;
            }
            index.files.push(*id);
            for p in &f.packs {
                index.add_pack(p.id, &p.blobs);
            }
        }
        index
    }

    pub fn add_pack(&mut self, id: PackId, entries: &[PackEntry]) {
        let next = self.packs.len() as u32;
        let number = *self.pack_numbers.entry(id).or_insert(next);
        if number == next {
            self.packs.push(id);
        }
        self.blobs.reserve(entries.len());
        for e in entries {
            match self.blobs.entry(e.id) {
                Entry::Occupied(loc) if loc.get().pack != number => {
                    *self.shadowed.entry(number).or_default() += u64::from(e.length)
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(slot) => {
                    slot.insert(Location {
                        pack: number,
                        offset: e.offset,
                        length: e.length,
                        raw_length: e.raw_length,
                        kind: e.kind,
                    });
                }
            }
        }
    }

    /// Bytes of `pack` holding blobs that are read from another pack instead.
    pub fn shadowed_bytes(&self, pack: &PackId) -> u64 {
        self.pack_numbers
            .get(pack)
            .and_then(|n| self.shadowed.get(n))
            .copied()
            .unwrap_or(0)
    }

    /// Packs the index names but reads no blob from: every blob they hold is located
    /// in another pack, so they only take space.
    pub fn shadowed_packs(&self) -> Vec<PackId> {
        let located: HashSet<u32> = self.blobs.values().map(|l| l.pack).collect();
        (0..self.packs.len() as u32)
            .filter(|n| !located.contains(n))
            .map(|n| self.pack_id(n))
            .collect()
    }

    pub fn get(&self, id: &BlobId) -> Option<Location> {
        self.blobs.get(id).copied()
    }
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }
    pub fn pack_id(&self, number: u32) -> PackId {
        self.packs[number as usize]
    }
    pub fn has_pack(&self, id: &PackId) -> bool {
        self.pack_numbers.contains_key(id)
    }
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }
    pub fn pack_ids(&self) -> &[PackId] {
        &self.packs
    }
    /// Index objects currently in force (not superseded).
    pub fn files(&self) -> &[IndexId] {
        &self.files
    }
    pub fn superseded(&self) -> &HashSet<IndexId> {
        &self.superseded
    }
    pub fn iter(&self) -> impl Iterator<Item = (&BlobId, &Location)> {
        self.blobs.iter()
    }

    /// Entries of every pack, ordered by offset.
    pub fn by_pack(&self) -> HashMap<PackId, Vec<PackEntry>> {
        let mut out: HashMap<PackId, Vec<PackEntry>> = HashMap::new();
        for (id, loc) in &self.blobs {
            out.entry(self.pack_id(loc.pack)).or_default().push(PackEntry {
                kind: loc.kind,
                id: *id,
                offset: loc.offset,
                length: loc.length,
                raw_length: loc.raw_length,
            });
        }
        for entries in out.values_mut() {
            entries.sort_by_key(|e| e.offset);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::IndexedPack;

    #[test]
    fn blobs_resolve_to_their_pack_and_superseded_files_are_ignored() {
        let entry = PackEntry {
            kind: BlobKind::Data,
            id: BlobId([1; 32]),
            offset: 10,
            length: 20,
            raw_length: 30,
        };
        let file = IndexFile {
            supersedes: vec![IndexId([9; 32])],
            packs: vec![IndexedPack {
                id: PackId([2; 32]),
                blobs: vec![entry],
            }],
        };
        let old = IndexFile {
            supersedes: vec![],
            packs: vec![IndexedPack {
                id: PackId([7; 32]),
                blobs: vec![entry],
            }],
        };
        let idx = Index::from_files(&[(IndexId([3; 32]), file), (IndexId([9; 32]), old)]);
        let loc = idx.get(&BlobId([1; 32])).unwrap();
        assert_eq!(idx.pack_id(loc.pack), PackId([2; 32]));
        assert_eq!(idx.files(), &[IndexId([3; 32])]);
        assert_eq!(idx.by_pack()[&PackId([2; 32])], vec![entry]);
    }

    #[test]
    fn a_pack_whose_blobs_another_pack_holds_is_counted_as_shadowed() {
        let entry = |n: u8, length: u32| PackEntry {
            kind: BlobKind::Data,
            id: BlobId([n; 32]),
            offset: 0,
            length,
            raw_length: length,
        };
        let mut idx = Index::default();
        idx.add_pack(PackId([1; 32]), &[entry(1, 100), entry(2, 50)]);
        idx.add_pack(PackId([2; 32]), &[entry(2, 50)]);
        idx.add_pack(PackId([3; 32]), &[entry(1, 100), entry(3, 7)]);
        assert_eq!(idx.shadowed_packs(), vec![PackId([2; 32])]);
        assert_eq!(idx.shadowed_bytes(&PackId([2; 32])), 50);
        assert_eq!(idx.shadowed_bytes(&PackId([3; 32])), 100);
        assert_eq!(idx.shadowed_bytes(&PackId([1; 32])), 0);
        assert!(idx.has_pack(&PackId([2; 32])));
        assert!(!idx.by_pack().contains_key(&PackId([2; 32])));
    }
}

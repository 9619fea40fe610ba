//! Tree blobs: one per directory, listing its entries sorted by name.
//!
//! Trees are JSON (sealed and compressed like any blob), which keeps them readable by
//! an independent implementation. Because a directory's tree id is the keyed hash of
//! its encoding, an unchanged subtree encodes to the same id and is stored once.
//! Names that are not valid UTF-8 are kept losslessly in `name_hex`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use serde::{Deserialize, Serialize};

use super::ids::{BlobId, ContentHash};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
}

/// One directory entry and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_hex: Option<String>,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub size: u64,
    /// Data blobs, in file order (files only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// Unkeyed BLAKE3 of the whole file (files only), checked by verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<ContentHash>,
    /// The directory's tree blob (directories only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// Link target as hex of its bytes (symlinks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_hex: Option<String>,
}

impl Node {
    pub fn new(name: &OsStr, kind: NodeKind) -> Self {
        let (name, name_hex) = match name.to_str() {
            Some(s) => (s.to_string(), None),
            None => (name.to_string_lossy().into_owned(), Some(hex::encode(name.as_bytes()))),
        };
        Self {
            name,
            name_hex,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 0,
            content: Vec::new(),
            hash: None,
            subtree: None,
            target_hex: None,
        }
    }

    /// The exact file name as stored.
    pub fn os_name(&self) -> OsString {
        match self.name_hex.as_deref().and_then(|h| hex::decode(h).ok()) {
            Some(bytes) => OsString::from_vec(bytes),
            None => OsString::from(&self.name),
        }
    }

    pub fn set_target(&mut self, target: &OsStr) {
        self.target_hex = Some(hex::encode(target.as_bytes()));
    }

    pub fn target(&self) -> Option<OsString> {
        let bytes = hex::decode(self.target_hex.as_deref()?).ok()?;
        Some(OsString::from_vec(bytes))
    }
}

/// The entries of one directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Canonical encoding: entries sorted by name bytes.
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by_key(|n| n.os_name());
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn find(&self, name: &OsStr) -> Option<&Node> {
        self.nodes.iter().find(|n| n.os_name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_names_round_trip_exactly() {
        let raw = OsStr::from_bytes(b"caf\xe9.bin");
        let mut t = Tree {
            nodes: vec![
                Node::new(raw, NodeKind::File),
                Node::new(OsStr::new("ü-模型"), NodeKind::Dir),
            ],
        };
        let back = Tree::decode(&t.encode()).unwrap();
        assert_eq!(back, t);
        assert!(back.find(raw).is_some());
        assert!(back.find(OsStr::new("ü-模型")).is_some());
    }

    #[test]
    fn encoding_is_canonical_regardless_of_order() {
        let a = Node::new(OsStr::new("a"), NodeKind::File);
        let b = Node::new(OsStr::new("b"), NodeKind::File);
        let mut t1 = Tree {
            nodes: vec![a.clone(), b.clone()],
        };
        let mut t2 = Tree { nodes: vec![b, a] };
        assert_eq!(t1.encode(), t2.encode());
    }
}

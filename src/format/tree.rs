//! Tree blobs: one per directory, listing its entries sorted by name.
//!
//! Trees are JSON (sealed and compressed like any blob), which keeps them readable by
//! an independent implementation. Because a directory's tree id is the keyed hash of
//! its encoding, an unchanged subtree encodes to the same id and is stored once.
//! Names that are not valid UTF-8 are kept losslessly in `name_hex`.
//!
//! Decoding refuses entry names that could step out of the directory being restored
//! (empty, `.`, `..`, or holding `/` or NUL) and a name listed twice: a tree comes from
//! storage and from whichever host made the backup, so restore must never have to trust
//! it to name only children of its own directory.

use std::borrow::Cow;

use foldhash::{HashMap, HashMapExt};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use serde::{Deserialize, Serialize};

use super::digest::Sha256;
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
    /// SHA-256 of the whole file (files of signed datasets only), for signed manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
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
            sha256: None,
            subtree: None,
            target_hex: None,
        }
    }

    /// The exact file name as stored (borrowed unless it is not UTF-8).
    pub fn os_name(&self) -> Cow<'_, OsStr> {
        match self.name_hex.as_deref().and_then(|h| hex::decode(h).ok()) {
            Some(bytes) => Cow::Owned(OsString::from_vec(bytes)),
            None => Cow::Borrowed(OsStr::new(&self.name)),
        }
    }

    /// The name as stored, refused unless it names a child of its directory.
    pub fn checked_name(&self) -> Result<OsString, TreeError> {
        let name = match &self.name_hex {
            Some(h) => OsString::from_vec(hex::decode(h).map_err(|_| TreeError::BadHex(h.clone()))?),
            None => OsString::from(&self.name),
        };
        check_name(name.as_bytes())?;
        Ok(name)
    }

    pub fn set_target(&mut self, target: &OsStr) {
        self.target_hex = Some(hex::encode(target.as_bytes()));
    }

    pub fn target(&self) -> Option<OsString> {
        let bytes = hex::decode(self.target_hex.as_deref()?).ok()?;
        Some(OsString::from_vec(bytes))
    }
}

/// Why a tree blob was refused.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("not a tree: {0}")]
    Json(#[from] serde_json::Error),
    #[error("entry name {0} is not allowed: {1}")]
    BadName(String, &'static str),
    #[error("entry name_hex {0:?} is not hex")]
    BadHex(String),
    #[error("entry name {0} appears twice")]
    Duplicate(String),
}

/// A name as shown in errors: quoted, with anything unprintable escaped.
fn shown(name: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(name))
}

/// Refuse a directory entry name that is not a plain child name: empty, `.`, `..`,
/// or holding `/` or NUL. Joined to a path, any of these would leave the directory.
pub fn check_name(name: &[u8]) -> Result<(), TreeError> {
    let why = match name {
        [] => "it is empty",
        b"." | b".." => "it names a directory itself or its parent",
        _ if name.contains(&b'/') => "it contains '/'",
        _ if name.contains(&0) => "it contains a NUL byte",
        _ => return Ok(()),
    };
    Err(TreeError::BadName(shown(name), why))
}

/// The entries of one directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Canonical encoding: entries sorted by name bytes.
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.os_name().cmp(&b.os_name()));
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decode a tree and check every entry name (see [`check_name`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, TreeError> {
        let tree: Tree = serde_json::from_slice(bytes)?;
        let mut names = Vec::with_capacity(tree.nodes.len());
        for node in &tree.nodes {
            names.push(node.checked_name()?);
        }
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(TreeError::Duplicate(shown(pair[0].as_bytes())));
        }
        Ok(tree)
    }

    pub fn find(&self, name: &OsStr) -> Option<&Node> {
        self.nodes.iter().find(|n| n.os_name() == name)
    }

    /// Every entry by name, the first of any repeated name: for looking up many
    /// entries (a directory walk), where one [`Tree::find`] each would cost a scan.
    pub fn by_name(&self) -> HashMap<Cow<'_, OsStr>, &Node> {
        let mut out = HashMap::with_capacity(self.nodes.len());
        for node in &self.nodes {
            out.entry(node.os_name()).or_insert(node);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree_of(nodes: Vec<Node>) -> Vec<u8> {
        serde_json::to_vec(&Tree { nodes }).unwrap()
    }

    fn named(name: &[u8]) -> Node {
        Node::new(OsStr::from_bytes(name), NodeKind::File)
    }

    #[test]
    fn by_name_finds_what_find_finds_including_non_utf8_names() {
        let names: [&[u8]; 4] = [b"b", b"a", b"caf\xe9", b"b"];
        let mut first = named(b"b");
        first.size = 1;
        let mut nodes: Vec<Node> = names.iter().map(|n| named(n)).collect();
        nodes[0] = first;
        let tree = Tree { nodes };
        let map = tree.by_name();
        assert_eq!(map.len(), 3);
        for name in names {
            let name = OsStr::from_bytes(name);
            assert_eq!(map.get(name).copied(), tree.find(name), "{name:?}");
        }
        assert_eq!(map[OsStr::new("b")].size, 1, "the first of a repeated name");
        assert!(!map.contains_key(OsStr::new("c")));
    }

    #[test]
    fn decode_refuses_names_that_leave_the_directory() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc/x", b"../x", b"x\0y", b"a\0"] {
            let err = Tree::decode(&tree_of(vec![named(bad)])).unwrap_err();
            assert!(matches!(err, TreeError::BadName(..)), "{bad:?} gave {err}");
        }
    }

    #[test]
    fn decode_refuses_a_bad_name_hidden_in_name_hex() {
        let mut node = named(b"harmless");
        node.name_hex = Some(hex::encode(b"../../etc/cron.d/x"));
        let err = Tree::decode(&tree_of(vec![node.clone()])).unwrap_err();
        assert!(err.to_string().contains("../../etc/cron.d/x"), "{err}");
        node.name_hex = Some("zz".into());
        assert!(matches!(Tree::decode(&tree_of(vec![node])), Err(TreeError::BadHex(_))));
    }

    #[test]
    fn decode_refuses_a_name_listed_twice() {
        let mut dir = named(b"x");
        dir.kind = NodeKind::Dir;
        let err = Tree::decode(&tree_of(vec![dir, named(b"x")])).unwrap_err();
        assert!(matches!(err, TreeError::Duplicate(_)), "{err}");
    }

    #[test]
    fn decode_accepts_names_with_dots_inside() {
        let t = Tree::decode(&tree_of(vec![named(b"..."), named(b".hidden"), named(b"a..b")])).unwrap();
        assert_eq!(t.nodes.len(), 3);
    }

    proptest! {
        #[test]
        fn any_name_without_slash_or_nul_other_than_dots_round_trips(
            name in proptest::collection::vec(any::<u8>(), 1..40)
        ) {
            let ok = !name.contains(&b'/') && !name.contains(&0) && name != b"." && name != b"..";
            prop_assert_eq!(check_name(&name).is_ok(), ok);
            let mut t = Tree { nodes: vec![named(&name)] };
            let decoded = Tree::decode(&t.encode());
            prop_assert_eq!(decoded.is_ok(), ok);
            if let Ok(back) = decoded {
                prop_assert_eq!(back.nodes[0].os_name().into_owned().into_vec(), name);
            }
        }

        #[test]
        fn a_name_with_slash_or_nul_anywhere_is_refused(
            head in proptest::collection::vec(any::<u8>(), 0..10),
            bad in prop_oneof![Just(b'/'), Just(0u8)],
            tail in proptest::collection::vec(any::<u8>(), 0..10),
        ) {
            let name = [head, vec![bad], tail].concat();
            prop_assert!(Tree::decode(&tree_of(vec![named(&name)])).is_err());
        }
    }

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

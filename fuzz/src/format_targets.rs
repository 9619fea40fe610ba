//! Targets for the pure decoders in `lifeboat::format`.

use lifeboat::format::blob::{self, Compression};
use lifeboat::format::config::{Config, FORMAT_VERSION, KeyFile, MAGIC};
use lifeboat::format::crypto::Cipher;
use lifeboat::format::gguf as gguf_format;
use lifeboat::format::index::IndexFile;
use lifeboat::format::pack;
use lifeboat::format::safetensors;
use lifeboat::format::snapshot::Snapshot;
use lifeboat::format::tree::Tree;

use super::fuzz_key;

const CIPHERS: [Cipher; 2] = [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm];

/// Seal `plain` as an object of this repository would be sealed.
pub(crate) fn seal(cipher: Cipher, plain: &[u8]) -> Vec<u8> {
    let nonce = vec![9u8; cipher.nonce_len()];
    blob::seal(&fuzz_key(), cipher, &nonce, plain, Compression::OFF)
}

/// Input: a blob's plaintext (compression code and body); also opened as sealed bytes.
pub fn blob(data: &[u8]) {
    let _ = blob::unframe(data);
    for cipher in CIPHERS {
        let _ = blob::open(&fuzz_key(), cipher, data);
    }
}

/// Input: the start of a backed-up file, as the checkpoint detection reads it: the
/// declared header length, then the header JSON, checked against a file as long as the
/// input. A layout that is accepted must tile the data region exactly.
pub fn safetensors(data: &[u8]) {
    let Some(len) = safetensors::declared_header_len(data) else {
        return;
    };
    let Some(header) = data.get(8..).and_then(|h| h.get(..usize::try_from(len).ok()?)) else {
        return;
    };
    if let Ok(layout) = safetensors::parse(header, data.len() as u64) {
        let mut at = layout.data_start;
        for t in &layout.tensors {
            assert!(t.start == at && t.end > t.start, "tensors must tile the data region");
            at = t.end;
        }
        assert_eq!(at, data.len() as u64, "tensors must reach the end of the file");
    }
}

/// Input: the start of a backed-up file that claims GGUF, checked against a file as
/// long as the input. An accepted layout must keep its tensors in order, apart, and
/// inside the data region; a shorter prefix of the same file must not be accepted
/// with another layout.
pub fn gguf(data: &[u8]) {
    let Ok(layout) = gguf_format::parse(data, data.len() as u64) else {
        return;
    };
    let mut reached = layout.data_start;
    for t in &layout.tensors {
        assert!(
            t.start >= reached && t.end > t.start,
            "tensors must be in order and apart"
        );
        reached = t.end;
    }
    assert!(reached <= data.len() as u64, "tensors must lie inside the file");
    let half = &data[..data.len() / 2];
    if let Ok(again) = gguf_format::parse(half, data.len() as u64) {
        assert_eq!(again, layout, "a prefix holding the whole header gives the same layout");
    }
}

/// Input: `data_len u16 LE || header plaintext`. The header is sealed and put after
/// `data_len` bytes of blob data with its length trailer, as in a real pack.
pub fn pack_header(data: &[u8]) {
    let _ = pack::read_header(&fuzz_key(), Cipher::XChaCha20Poly1305, data);
    let Some((len, header)) = data.split_first_chunk::<2>() else {
        return;
    };
    let data_len = u16::from_le_bytes(*len) as usize;
    let sealed = seal(Cipher::XChaCha20Poly1305, header);
    let mut pack = vec![0u8; data_len];
    pack.extend_from_slice(&sealed);
    pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    let Ok(entries) = pack::read_header(&fuzz_key(), Cipher::XChaCha20Poly1305, &pack) else {
        return;
    };
    let mut end = 0u64;
    for e in &entries {
        assert_eq!(u64::from(e.offset), end, "entries must follow each other");
        end += u64::from(e.length);
    }
    assert_eq!(end, data_len as u64, "entries must cover exactly the blob data");
    let tail = &pack[data_len..];
    let from_tail = pack::read_header_from_tail(&fuzz_key(), Cipher::XChaCha20Poly1305, pack.len(), tail);
    assert_eq!(from_tail.as_ref().ok(), Some(&entries), "tail and whole pack disagree");
}

/// Input: an index object's plaintext. The encoding is canonical, so whatever
/// decodes must encode back to the same bytes.
pub fn index(data: &[u8]) {
    if let Ok(file) = IndexFile::decode(data) {
        assert!(file.encode() == data, "index does not re-encode to its bytes");
        let id = lifeboat::format::ids::IndexId::of_bytes(data);
        let _ = lifeboat::repo::Index::from_files(&[(id, file)]);
    }
}

/// Input: a tree blob's plaintext (JSON).
pub fn tree(data: &[u8]) {
    let Ok(mut tree) = Tree::decode(data) else {
        return;
    };
    for node in &tree.nodes {
        let _ = node.os_name();
        let _ = node.target();
    }
    let encoded = tree.encode();
    assert_eq!(
        Tree::decode(&encoded).ok(),
        Some(tree),
        "tree does not survive re-encoding"
    );
}

/// Input: a snapshot's plaintext (JSON).
pub fn snapshot(data: &[u8]) {
    if let Ok(snap) = Snapshot::decode(data) {
        let back = Snapshot::decode(&snap.encode()).ok();
        assert_eq!(back, Some(snap), "snapshot does not survive re-encoding");
    }
}

/// Input: `cipher code u8 || config body (JSON)`, sealed behind a valid prefix; the
/// raw input is also read as a whole config object.
pub fn config(data: &[u8]) {
    let _ = Config::peek(data);
    let _ = Config::decode(data, &fuzz_key());
    let Some((&code, body)) = data.split_first() else {
        return;
    };
    let cipher = CIPHERS[usize::from(code & 1)];
    let mut object = MAGIC.to_vec();
    object.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    object.push(cipher.code());
    object.extend_from_slice(&seal(cipher, body));
    if let Ok(cfg) = Config::decode(&object, &fuzz_key()) {
        assert_eq!(cfg.cipher(), cipher);
        let again = Config::decode(&cfg.encode(&fuzz_key(), &vec![1; cipher.nonce_len()]), &fuzz_key());
        assert_eq!(again.ok(), Some(cfg), "config does not survive re-encoding");
    }
}

/// Argon2 costs above these are not derived here: every derivation would take seconds
/// or gigabytes. Bounding the costs is the product's job (a key beyond its caps is
/// refused before derivation); this guard only keeps the fuzzer fast.
const FUZZ_MEMORY_KIB: u32 = 256;
const FUZZ_PASSES: u32 = 2;
const FUZZ_LANES: u32 = 2;

/// Input: a `keys/` object (JSON); unwrapped with a password when its costs are small.
pub fn key_file(data: &[u8]) {
    let Ok(kf) = KeyFile::decode(data) else {
        return;
    };
    let _ = KeyFile::decode(&kf.encode());
    let k = kf.kdf;
    if k.memory_kib <= FUZZ_MEMORY_KIB && k.iterations <= FUZZ_PASSES && k.parallelism <= FUZZ_LANES {
        let _ = kf.unwrap_key(b"fuzz password");
    }
}

//! Seed inputs for every target, made from real encoded objects by the library's own
//! encoders, so a fuzzing run starts from valid objects and mutates outward.
//! `cargo run --example seeds -- DIR` writes them as `DIR/<target>/<name>`.

use std::ffi::OsStr;

use lifeboat::format::blob::{self, Compression};
use lifeboat::format::byteplanes::Elements;
use lifeboat::format::config::{ChunkerParams, Config, KeyFile};
use lifeboat::format::crypto::{Cipher, KdfParams};
use lifeboat::format::ids::{BlobId, ContentHash, IndexId, PackId, RepoId, SnapshotId};
use lifeboat::format::index::{IndexFile, IndexedPack};
use lifeboat::format::names::{DatasetName, Tag};
use lifeboat::format::pack::{self, BlobKind, PendingBlob};
use lifeboat::format::snapshot::{Snapshot, Summary};
use lifeboat::format::tree::{Node, NodeKind, Tree};
use lifeboat::repo::lock::{LeaseInfo, LeaseKind};

use super::api::{OPERATOR_TOKEN, VIEWER_TOKEN};
use super::fuzz_key;

/// Named seeds of one target.
type Seeds = Vec<(String, Vec<u8>)>;

/// `(target, name, bytes)` for every seed.
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let groups: [(&str, Seeds); 14] = [
        ("blob", blobs()),
        ("safetensors", checkpoints()),
        ("gguf", gguf_files()),
        ("pack_header", pack_headers()),
        ("index", vec![("two-packs".into(), sample_index().encode())]),
        ("tree", trees()),
        ("snapshot", vec![("with-parent".into(), sample_snapshot().encode())]),
        ("config", configs()),
        ("key_file", key_files()),
        ("lease", leases()),
        ("prune_record", prune_records()),
        ("plan", plans()),
        ("address", addresses()),
        ("api_request", requests()),
    ];
    let mut out = Vec::new();
    for (target, seeds) in groups {
        out.extend(seeds.into_iter().map(|(name, bytes)| (target, name, bytes)));
    }
    out
}

fn id(n: u8) -> [u8; 32] {
    let mut id = [n; 32];
    id[0] = n.wrapping_mul(37);
    id
}

/// Checkpoint starts: a valid two-tensor file and one whose shape does not fit.
fn checkpoints() -> Seeds {
    let file = |json: &str, data: usize| {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.resize(out.len() + data, 0x3c);
        out
    };
    let valid = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]}}"#;
    let bad = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    vec![
        ("two-tensors".into(), file(valid, 24)),
        ("bad-shape".into(), file(bad, 8)),
    ]
}

fn gguf_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 file: a string, an array of strings and the alignment as metadata, an F32
/// tensor of 16 values and a Q8_0 tensor of one block; `q8_offset` places the second.
fn gguf_file(q8_offset: u64) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    [3u32.to_le_bytes().as_slice(), &2u64.to_le_bytes(), &3u64.to_le_bytes()]
        .iter()
        .for_each(|b| out.extend_from_slice(b));
    gguf_string(&mut out, "general.architecture");
    out.extend_from_slice(&8u32.to_le_bytes());
    gguf_string(&mut out, "llama");
    gguf_string(&mut out, "tokenizer.ggml.tokens");
    out.extend_from_slice(&9u32.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&2u64.to_le_bytes());
    gguf_string(&mut out, "<s>");
    gguf_string(&mut out, "hello");
    gguf_string(&mut out, "general.alignment");
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&32u32.to_le_bytes());
    for (name, dim, ty, offset) in [("w", 16u64, 0u32, 0u64), ("q", 32, 8, q8_offset)] {
        gguf_string(&mut out, name);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&dim.to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out.resize(out.len().next_multiple_of(32) + 64 + 34, 0x3c);
    out
}

fn gguf_files() -> Seeds {
    vec![("f32-and-q8".into(), gguf_file(64)), ("overlap".into(), gguf_file(32))]
}

fn blobs() -> Seeds {
    let text = b"a file of text, a file of text, a file of text, a file of text".repeat(4);
    let sealed = blob::seal(&fuzz_key(), Cipher::Aes256Gcm, &[3; 12], &text, Compression::DEFAULT);
    // Float32 weights near zero, the chunk starting one byte into an element.
    let floats: Vec<u8> = (0..512u32)
        .flat_map(|i| ((i % 17) as f32 * 0.001).to_le_bytes())
        .skip(1)
        .collect();
    let planes = Elements { width: 4, phase: 1 };
    vec![
        ("raw".into(), blob::frame(b"weights\x00\x01\x02", Compression::OFF)),
        ("zstd".into(), blob::frame(&text, Compression::DEFAULT)),
        ("sealed-aes".into(), sealed),
        (
            "byte-planes".into(),
            blob::frame_as(&floats, Compression::DEFAULT, Some(planes)),
        ),
    ]
}

fn pack_headers() -> Seeds {
    let key = fuzz_key();
    let cipher = Cipher::XChaCha20Poly1305;
    let blobs: Vec<PendingBlob> = (0..3u8)
        .map(|i| {
            let data = vec![i; 50 + usize::from(i)];
            PendingBlob {
                kind: if i == 0 { BlobKind::Tree } else { BlobKind::Data },
                id: key.blob_id(&data),
                raw_length: data.len() as u32,
                sealed: blob::seal(&key, cipher, &[i; 24], &data, Compression::OFF),
            }
        })
        .collect();
    let (_, bytes, _) = pack::assemble(&key, cipher, &[8; 24], blobs);
    let span = pack::header_span(bytes.len(), &bytes[bytes.len() - 4..]).unwrap_or(4);
    let data_len = bytes.len() - span;
    let header = blob::open(&key, cipher, &bytes[data_len..bytes.len() - 4]).unwrap_or_default();
    let mut seed = (data_len as u16).to_le_bytes().to_vec();
    seed.extend_from_slice(&header);
    vec![("three-blobs".into(), seed), ("whole-pack".into(), bytes.to_vec())]
}

fn sample_index() -> IndexFile {
    let entry = |n: u8, offset: u32| lifeboat::format::pack::PackEntry {
        kind: if n.is_multiple_of(2) {
            BlobKind::Data
        } else {
            BlobKind::Tree
        },
        id: BlobId(id(n)),
        offset,
        length: 100 + u32::from(n),
        raw_length: 90,
    };
    IndexFile {
        supersedes: vec![IndexId(id(1))],
        packs: vec![
            IndexedPack {
                id: PackId(id(2)),
                blobs: vec![entry(3, 0), entry(4, 103)],
            },
            IndexedPack {
                id: PackId(id(5)),
                blobs: vec![entry(6, 0)],
            },
        ],
    }
}

fn trees() -> Seeds {
    let mut file = Node::new(OsStr::new("model.safetensors"), NodeKind::File);
    file.mode = 0o640;
    file.size = 4096;
    file.content = vec![BlobId(id(1)), BlobId(id(2))];
    file.hash = Some(ContentHash(id(3)));
    let mut dir = Node::new(OsStr::new("checkpoints"), NodeKind::Dir);
    dir.subtree = Some(BlobId(id(4)));
    let mut link = Node::new(std::os::unix::ffi::OsStrExt::from_bytes(b"caf\xe9"), NodeKind::Symlink);
    link.set_target(OsStr::new("../shared/weights"));
    let mut tree = Tree {
        nodes: vec![file, dir, link],
    };
    vec![("file-dir-symlink".into(), tree.encode())]
}

fn sample_snapshot() -> Snapshot {
    Snapshot {
        time: chrono::DateTime::from_timestamp(1_790_000_000, 5).unwrap_or_default(),
        host: "gpu-node-1".into(),
        paths: vec!["/srv/models".into()],
        tags: Tag::new("nightly").into_iter().collect(),
        dataset: DatasetName::new("models").ok(),
        tree: BlobId(id(9)),
        parent: Some(SnapshotId(id(8))),
        summary: Summary {
            files_new: 3,
            bytes_read: 4096,
            ..Summary::default()
        },
    }
}

fn configs() -> Seeds {
    let cfg = Config {
        id: RepoId(id(6)),
        chunker: ChunkerParams::with_seed(42),
        compression: 3,
        pack_size: 16 << 20,
        cipher: Some(Cipher::Aes256Gcm),
    };
    let mut body = vec![1u8];
    body.extend_from_slice(&serde_json::to_vec(&cfg).unwrap_or_default());
    vec![
        ("body-aes".into(), body),
        ("whole-object".into(), cfg.encode(&fuzz_key(), &[4; 12])),
    ]
}

fn key_files() -> Seeds {
    let kdf = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let created = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
    let wrapped = KeyFile::wrap(
        &fuzz_key(),
        b"fuzz password",
        kdf,
        [1; 16],
        [2; 24],
        created,
        "h",
        "ops",
    );
    wrapped
        .map(|k| vec![("cheap".to_string(), k.encode())])
        .unwrap_or_default()
}

fn leases() -> Seeds {
    let at = |secs| chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let info = LeaseInfo {
        host: "backup-host".into(),
        pid: 4242,
        kind: LeaseKind::Prune,
        purpose: "prune".into(),
        created: at(1_790_000_000),
        expires: at(4_102_444_800),
    };
    vec![("prune".into(), serde_json::to_vec(&info).unwrap_or_default())]
}

fn prune_records() -> Seeds {
    let mut activated = 1_790_000_000_000i64.to_le_bytes().to_vec();
    activated.extend_from_slice(&sample_index().encode());
    let mut pending = (-1i64).to_le_bytes().to_vec();
    pending.extend_from_slice(&IndexFile::default().encode());
    vec![("activated".into(), activated), ("pending".into(), pending)]
}

fn plans() -> Seeds {
    // Both this crate and the main one (whose regression test includes this file) sit
    // at or under the project root, the folder holding `plans/`.
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(root) = here.ancestors().find(|p| p.join("plans").is_dir()) else {
        return Vec::new();
    };
    ["plans/ml-platform.toml", "examples/quickstart.toml"]
        .iter()
        .filter_map(|p| {
            let text = std::fs::read(root.join(p)).ok()?;
            let name = std::path::Path::new(p).file_stem()?.to_string_lossy().into_owned();
            Some((name, text))
        })
        .collect()
}

fn addresses() -> Seeds {
    [
        ("local", "/srv/backup/repo"),
        ("file", "file:///srv/backup/repo"),
        (
            "s3",
            "s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1",
        ),
        ("memory", "memory://scratch"),
    ]
    .iter()
    .map(|(n, a)| (n.to_string(), a.as_bytes().to_vec()))
    .collect()
}

fn requests() -> Seeds {
    let get =
        |path: &str, token: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    vec![
        ("healthz".into(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("metrics".into(), b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("status".into(), get("/v1/status", VIEWER_TOKEN).into_bytes()),
        ("jobs".into(), get("/v1/jobs", VIEWER_TOKEN).into_bytes()),
        (
            "trigger".into(),
            format!(
                "POST /v1/datasets/ml/models/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        ),
    ]
}

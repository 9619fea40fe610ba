//! Model checkpoints through the real binary: safetensors files are chunked at tensor
//! boundaries, so an unchanged tensor is stored once whatever happened to the header
//! or to the tensors before it, and a checkpoint with a malformed header is still
//! backed up (as plain bytes) with one warning naming it.

mod support;

use std::path::Path;

use support::*;

/// One tensor: name, safetensors dtype, bytes.
struct Tensor {
    name: String,
    dtype: &'static str,
    bytes: Vec<u8>,
}

fn tensor(name: &str, dtype: &'static str, len: usize, seed: u64) -> Tensor {
    Tensor {
        name: name.into(),
        dtype,
        bytes: random_bytes(len, seed),
    }
}

fn element_size(dtype: &str) -> usize {
    match dtype {
        "F32" => 4,
        "BF16" | "F16" => 2,
        _ => 1,
    }
}

/// The bytes of a safetensors file holding `tensors` in this order, with `metadata`
/// pairs; the header is padded with spaces to a multiple of 8, as the reference does.
fn safetensors(tensors: &[Tensor], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let meta: serde_json::Map<_, _> = metadata.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
        header.insert("__metadata__".into(), meta.into());
    }
    let mut at = 0;
    for t in tensors {
        let shape = [t.bytes.len() / element_size(t.dtype)];
        let entry = serde_json::json!({"dtype": t.dtype, "shape": shape, "data_offsets": [at, at + t.bytes.len()]});
        header.insert(t.name.clone(), entry);
        at += t.bytes.len();
    }
    let mut json = serde_json::to_vec(&header).unwrap();
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    tensors.iter().for_each(|t| out.extend_from_slice(&t.bytes));
    out
}

/// A small model: an embedding, blocks of weights and tiny biases, a head. About 2.6 MiB.
fn model() -> Vec<Tensor> {
    let mut out = vec![tensor("embed.weight", "F32", 900 * 1024, 1)];
    for b in 0..4u64 {
        out.push(tensor(&format!("block{b}.attn.weight"), "BF16", 300 * 1024, 10 + b));
        out.push(tensor(&format!("block{b}.attn.bias"), "F32", 3 * 1024, 20 + b));
        out.push(tensor(&format!("block{b}.norm.weight"), "F32", 1024, 30 + b));
    }
    out.push(tensor("head.weight", "F32", 400 * 1024, 2));
    out
}

fn added(summary: &serde_json::Value) -> (u64, u64) {
    (
        summary["blobs_added"].as_u64().unwrap(),
        summary["bytes_added"].as_u64().unwrap(),
    )
}

fn backup_model(repo: &Repo, src: &Path, bytes: &[u8]) -> serde_json::Value {
    write_file(&src.join("model.safetensors"), bytes);
    repo.backup(&[src])
}

/// The latest snapshot restores `src/<name>` to exactly `bytes`.
fn assert_restores(repo: &Repo, name: &str, bytes: &[u8]) {
    assert_restores_from(repo, "src", name, bytes);
}

#[test]
fn reordered_tensors_and_a_new_metadata_key_store_only_a_new_header() {
    let repo = Repo::init(&[]);
    let src = repo.scratch("src");
    let tensors = model();
    let first = backup_model(&repo, &src, &safetensors(&tensors, &[("format", "pt")]));
    // At least the header and one chunk per tensor.
    assert!(added(&first).0 > tensors.len() as u64, "{first}");

    let mut reordered = model();
    reordered.reverse();
    let v2 = safetensors(&reordered, &[("format", "pt"), ("step", "1200")]);
    let second = backup_model(&repo, &src, &v2);
    // The header chunk, the tree of `src` and the root tree: no tensor is stored again.
    let (blobs, bytes) = added(&second);
    assert_eq!(blobs, 3, "{second}");
    assert!(bytes < 8 * 1024, "{second}");
    assert_restores(&repo, "model.safetensors", &v2);
}

#[test]
fn one_changed_tensor_stores_only_that_tensor() {
    let repo = Repo::init(&[]);
    let src = repo.scratch("src");
    let mut tensors = model();
    backup_model(&repo, &src, &safetensors(&tensors, &[]));
    // Same size, new values: the header is unchanged too.
    tensors[4].bytes = random_bytes(tensors[4].bytes.len(), 99);
    let v2 = safetensors(&tensors, &[]);
    let second = backup_model(&repo, &src, &v2);
    let (blobs, bytes) = added(&second);
    assert_eq!(blobs, 3, "the changed tensor and two trees: {second}");
    let changed = tensors[4].bytes.len() as u64;
    assert!(bytes > changed && bytes < changed + 4096, "{second}");
    assert_restores(&repo, "model.safetensors", &v2);
}

#[test]
fn a_malformed_checkpoint_is_backed_up_as_plain_bytes_with_one_warning() {
    let repo = Repo::init(&[]);
    let src = repo.scratch("src");
    let mut bytes = safetensors(&model(), &[]);
    // The embedding's shape no longer matches its offsets.
    let at = bytes.windows(3).position(|w| w == b"[23").unwrap();
    bytes[at + 1] = b'9';
    write_file(&src.join("broken.safetensors"), &bytes);
    write_file(&src.join("fine.safetensors"), &safetensors(&model()[..3], &[]));
    let warnings = backup_warnings(&repo, &src);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("broken.safetensors") && warnings[0].contains("embed.weight"),
        "{warnings:?}"
    );
    assert_restores(&repo, "broken.safetensors", &bytes);
}

/// `n` little-endian floats of `width` bytes (4: F32, 2: BF16) around zero, as trained
/// weights are: exponents vary little, low mantissa bytes are noise.
fn weights(n: usize, width: usize, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .flat_map(|_| {
            let v: f32 = rng.gen_range(-0.05f32..0.05);
            v.to_le_bytes()[4 - width..].to_vec()
        })
        .collect()
}

#[test]
fn float_tensors_are_stored_smaller_as_byte_planes_and_restore_exactly() {
    for (dtype, width, most) in [("F32", 4, 0.92), ("BF16", 2, 0.80)] {
        let repo = Repo::init(&[]);
        let src = repo.scratch("src");
        let tensors: Vec<Tensor> = (0..3)
            .map(|i| Tensor {
                name: format!("layer{i}.weight"),
                dtype,
                bytes: weights(150_000 + i * 7, width, i as u64),
            })
            .collect();
        let bytes = safetensors(&tensors, &[]);
        let (_, stored) = added(&backup_model(&repo, &src, &bytes));
        let ratio = stored as f64 / bytes.len() as f64;
        assert!(ratio < most, "{dtype}: stored {stored} of {} bytes", bytes.len());
        assert_restores(&repo, "model.safetensors", &bytes);

        // The same file without compression is stored whole.
        let plain = Repo::init(&[]);
        write_file(&plain.scratch("src").join("model.safetensors"), &bytes);
        let out = plain
            .cmd()
            .args(["--json", "backup", "--no-compression"])
            .arg(plain.scratch("src"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(doc["snapshot"]["summary"]["bytes_added"].as_u64().unwrap() > bytes.len() as u64);
    }
}

/// The compression code of every data blob in `repo` (format.md §4.3).
fn data_blob_codes(repo: &Repo) -> Vec<u8> {
    let (rt, repo) = repo.open();
    rt.block_on(async {
        let index = repo.load_index().await.unwrap();
        let mut codes = Vec::new();
        for (_, loc) in index
            .iter()
            .filter(|(_, l)| l.kind == lifeboat::format::pack::BlobKind::Data)
        {
            let range = u64::from(loc.offset)..u64::from(loc.offset) + u64::from(loc.length);
            let sealed = repo.read_pack_range(&index.pack_id(loc.pack), range).await.unwrap();
            let plain = lifeboat::format::crypto::open(repo.cipher(), repo.key().data_key(), &sealed).unwrap();
            codes.push(plain[0]);
        }
        codes
    })
}

fn dir_size(dir: &Path) -> u64 {
    listing(dir).values().map(|(len, _)| len).sum()
}

#[test]
fn apply_of_a_model_dataset_stores_float_tensors_as_byte_planes() {
    let repo = Repo::uninitialised();
    let src = repo.scratch("weights");
    let tensors: Vec<Tensor> = (0..4)
        .map(|i| Tensor {
            name: format!("layer{i}.weight"),
            dtype: "F32",
            bytes: unit_range_floats(300_000 + i * 3, 40 + i as u64),
        })
        .collect();
    let bytes = safetensors(&tensors, &[("format", "pt")]);
    write_file(&src.join("model.safetensors"), &bytes);
    let plan = repo.scratch("plan.toml");
    let toml = "version = 1\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\
                [regions.local]\naddress = \"repo\"\ncreate = true\n\
                [datasets.llm]\nkind = \"model\"\npaths = [\"weights\"]\nregions = [\"local\"]\n\
                schedule = \"@hourly\"\nrpo = \"2h\"\nretention = { keep_last = 3 }\n";
    std::fs::write(&plan, toml).unwrap();
    lifeboat().arg("apply").arg(&plan).assert().success();

    let codes = data_blob_codes(&repo);
    let planes = codes.iter().filter(|&&c| c == 2).count();
    assert!(
        planes >= tensors.len(),
        "compression codes of the data blobs: {codes:?}"
    );
    // Everything the region holds (packs, index, snapshot, key, config) against the input.
    let stored = dir_size(&repo.path);
    let ratio = stored as f64 / bytes.len() as f64;
    assert!(ratio < 0.76, "stored {stored} of {} bytes ({ratio:.3})", bytes.len());
    assert_restores_from(&repo, "weights", "model.safetensors", &bytes);
}

/// The latest snapshot restores `<dir>/<name>` to exactly `bytes`.
fn assert_restores_from(repo: &Repo, dir: &str, name: &str, bytes: &[u8]) {
    let restored = repo.restore("out");
    assert_eq!(std::fs::read(restored.join(dir).join(name)).unwrap(), bytes, "{name}");
}

//! GGUF checkpoints (llama.cpp's format) through the real binary, in a `kind = "model"`
//! dataset: chunks are cut at tensor boundaries, so changing one tensor stores about
//! that tensor again and a longer header stores only the header; float tensors are
//! stored as byte planes, quantised ones as they are; a file with the GGUF magic but a
//! broken header is backed up as plain bytes with one warning naming it.

mod support;

use std::path::{Path, PathBuf};

use support::*;

const F32: u32 = 0;
const Q8_0: u32 = 8;

/// One tensor: name, ggml type, first dimension and bytes (F32: 4 a value; Q8_0: 34
/// for each block of 32 values).
struct Tensor {
    name: String,
    ggml_type: u32,
    bytes: Vec<u8>,
}

impl Tensor {
    fn elements(&self) -> u64 {
        match self.ggml_type {
            F32 => self.bytes.len() as u64 / 4,
            _ => self.bytes.len() as u64 / 34 * 32,
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 file: string metadata, then the tensors in this order, each at the next
/// multiple of 32 bytes of the data section, as llama.cpp writes them.
fn gguf(tensors: &[Tensor], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_string(&mut out, key);
        out.extend_from_slice(&8u32.to_le_bytes());
        put_string(&mut out, value);
    }
    let mut at = 0u64;
    for t in tensors {
        put_string(&mut out, &t.name);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&t.elements().to_le_bytes());
        out.extend_from_slice(&t.ggml_type.to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
        at = (at + t.bytes.len() as u64).next_multiple_of(32);
    }
    for t in tensors {
        out.resize(out.len().next_multiple_of(32), 0);
        out.extend_from_slice(&t.bytes);
    }
    out
}

/// A small quantised model: F32 embedding and norms, Q8_0 blocks. About 1.7 MiB.
fn model() -> Vec<Tensor> {
    let tensor = |name: &str, ggml_type, len, seed| Tensor {
        name: name.into(),
        ggml_type,
        bytes: random_bytes(len, seed),
    };
    let mut out = vec![tensor("token_embd.weight", F32, 400 * 1024, 1)];
    for b in 0..4u64 {
        out.push(tensor(&format!("blk.{b}.attn_norm.weight"), F32, 1024, 10 + b));
        out.push(tensor(&format!("blk.{b}.ffn_up.weight"), Q8_0, 34 * 9000, 20 + b));
    }
    out
}

/// Sources in `weights/`, one `kind = "model"` dataset backing them up to `repo`.
fn model_dataset(repo: &Repo) -> (PathBuf, PathBuf) {
    let src = repo.scratch("weights");
    let plan = repo.scratch("plan.toml");
    let toml = "version = 1\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\
                [regions.local]\naddress = \"repo\"\ncreate = true\n\
                [datasets.llm]\nkind = \"model\"\npaths = [\"weights\"]\nregions = [\"local\"]\n\
                schedule = \"@hourly\"\nrpo = \"2h\"\nretention = { keep_last = 9 }\n";
    std::fs::write(&plan, toml).unwrap();
    (src, plan)
}

/// Write the checkpoint, back the dataset up, and return how much the packs grew.
fn back_up(repo: &Repo, src: &Path, plan: &Path, bytes: &[u8]) -> u64 {
    let before = if repo.path.exists() { repo.data_size() } else { 0 };
    write_file(&src.join("model.gguf"), bytes);
    lifeboat().arg("apply").arg("--force").arg(plan).assert().success();
    repo.data_size() - before
}

fn assert_restores(repo: &Repo, bytes: &[u8]) {
    let restored = repo.restore("out");
    assert_eq!(std::fs::read(restored.join("weights/model.gguf")).unwrap(), bytes);
}

#[test]
fn one_changed_quantised_tensor_stores_about_that_tensor() {
    let repo = Repo::uninitialised();
    let (src, plan) = model_dataset(&repo);
    let mut tensors = model();
    let first = gguf(&tensors, &[("general.architecture", "llama")]);
    let stored = back_up(&repo, &src, &plan, &first);
    assert!(stored > first.len() as u64 * 9 / 10, "first backup stored {stored}");

    // Same size, new values: the header and every other tensor are unchanged.
    tensors[6].bytes = random_bytes(tensors[6].bytes.len(), 99);
    let second = gguf(&tensors, &[("general.architecture", "llama")]);
    let added = back_up(&repo, &src, &plan, &second);
    let changed = tensors[6].bytes.len() as u64;
    assert!(added > changed && added < changed + 8192, "added {added} for {changed}");
    assert_restores(&repo, &second);
}

#[test]
fn a_longer_header_stores_only_the_header() {
    let repo = Repo::uninitialised();
    let (src, plan) = model_dataset(&repo);
    let tensors = model();
    back_up(
        &repo,
        &src,
        &plan,
        &gguf(&tensors, &[("general.architecture", "llama")]),
    );
    // A new metadata key moves the data section, and with it every tensor's position.
    let meta = [
        ("general.architecture", "llama"),
        ("general.name", "tiny fine-tune, step 1200"),
    ];
    let moved = gguf(&tensors, &meta);
    let added = back_up(&repo, &src, &plan, &moved);
    assert!(added < 8192, "added {added}");
    assert_restores(&repo, &moved);
}

#[test]
fn float_tensors_are_stored_as_byte_planes_and_quantised_ones_as_they_are() {
    let repo = Repo::uninitialised();
    let (src, plan) = model_dataset(&repo);
    let floats: Vec<Tensor> = (0..3)
        .map(|i| Tensor {
            name: format!("blk.{i}.attn_q.weight"),
            ggml_type: F32,
            bytes: unit_range_floats(200_000, 40 + i),
        })
        .collect();
    let bytes = gguf(&floats, &[]);
    let stored = back_up(&repo, &src, &plan, &bytes);
    let ratio = stored as f64 / bytes.len() as f64;
    assert!(ratio < 0.78, "stored {stored} of {} bytes ({ratio:.3})", bytes.len());
    assert_restores(&repo, &bytes);
}

#[test]
fn a_broken_gguf_is_backed_up_as_plain_bytes_with_one_warning() {
    let repo = Repo::init(&[]);
    let src = repo.scratch("src");
    let mut bytes = gguf(&model(), &[]);
    // The embedding's element count, doubled: its bytes now run into the next tensor.
    let at = bytes.windows(17).position(|w| w == b"token_embd.weight").unwrap() + 17 + 4;
    let dim = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    bytes[at..at + 8].copy_from_slice(&(dim * 2).to_le_bytes());
    write_file(&src.join("broken.gguf"), &bytes);
    write_file(&src.join("fine.gguf"), &gguf(&model()[..3], &[]));
    let warnings = backup_warnings(&repo, &src);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("broken.gguf") && warnings[0].contains("overlap"),
        "{warnings:?}"
    );
    let restored = repo.restore("out");
    assert_eq!(std::fs::read(restored.join("src/broken.gguf")).unwrap(), bytes);
}

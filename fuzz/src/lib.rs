//! What each fuzz target does with its input, shared by the libFuzzer binaries in
//! `fuzz_targets/` and by the main crate's `tests/fuzz_regressions.rs`, which feeds
//! every saved crash and every seed through the same functions under `cargo test`.
//!
//! A target panics only on a real bug: a decoder that panics or aborts, or one that
//! accepts input and then breaks a promise its callers rely on (a decoded index that
//! does not re-encode to the same bytes, a plan diagnostic pointing outside the file).
//! Sealed objects are fuzzed behind the encryption: the target seals the fuzzer's bytes
//! with a fixed key first, as any host holding the repository key could, so the parser
//! after decryption sees every input instead of only authentication failures.

mod api;
mod format_targets;
mod repo_targets;
pub mod seeds;
mod text_targets;

pub use api::api_request;
pub use format_targets::{blob, config, gguf, index, key_file, pack_header, safetensors, snapshot, tree};
pub use repo_targets::{lease, prune_record};
pub use text_targets::{address, plan};

/// What every target is: a function of the fuzzer's input that panics on a bug.
pub type Target = fn(&[u8]);

/// Every target by its binary's name.
pub const TARGETS: &[(&str, Target)] = &[
    ("blob", blob),
    ("safetensors", safetensors),
    ("gguf", gguf),
    ("pack_header", pack_header),
    ("index", index),
    ("tree", tree),
    ("snapshot", snapshot),
    ("config", config),
    ("key_file", key_file),
    ("lease", lease),
    ("prune_record", prune_record),
    ("plan", plan),
    ("address", address),
    ("api_request", api_request),
];

/// The key every target seals with; the seed generator uses it too.
pub fn fuzz_key() -> lifeboat::format::crypto::MasterKey {
    lifeboat::format::crypto::MasterKey::from_bytes([7; 32])
}

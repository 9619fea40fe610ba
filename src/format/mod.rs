//! The repository format: pure, synchronous encoding and cryptography.
//!
//! Nothing here does I/O or reads a clock; values (nonces, times) come in as
//! arguments so every function can be property-tested. The byte-level specification
//! is `docs/format.md`.

pub mod anomaly;
pub mod audit;
pub mod audit_checkpoint;
pub mod blob;
pub mod byteplanes;
pub mod chunker;
pub mod config;
pub mod crypto;
pub mod digest;
pub mod dsse;
pub mod gguf;
pub mod ids;
pub mod index;
pub mod lease;
pub mod ledger;
pub mod manifest;
pub mod names;
pub mod oms;
pub mod pack;
pub mod prune;
pub mod report;
pub mod safetensors;
pub mod signing;
pub mod snapshot;
pub mod tensor_layout;
pub mod tree;

//! The repository format: pure, synchronous encoding and cryptography.
//!
//! Nothing here does I/O or reads a clock; values come in as arguments so every
//! function can be property-tested. The byte-level specification is `docs/format.md`.

pub mod names;

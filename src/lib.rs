//! Lifeboat: infrastructure-as-code backup and disaster recovery for AI platforms.
//!
//! Layers, lowest first (see `docs/architecture.md`): `format` (pure encoding and
//! crypto), `storage` (bytes by key), `repo` (one repository), `engine` (backup,
//! restore, check, prune), `plan` (validated TOML model), `apply` (carry out a plan),
//! `daemon` (schedule and serve plans), and `cli` on top.
#![forbid(unsafe_code)]

pub mod apply;
pub mod cli;
pub mod daemon;
pub mod drill;
pub mod engine;
pub mod format;
pub mod plan;
pub mod repo;
pub mod storage;

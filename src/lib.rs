//! Lifeboat: infrastructure-as-code backup and disaster recovery for AI platforms.
//!
//! Layers, lowest first (see `docs/architecture.md`): `format` (pure encoding and
//! crypto), `storage` (bytes by key), `repo` (one repository), `engine` (backup,
//! restore, check, prune), `plan` (validated TOML model), and `cli` on top.
#![forbid(unsafe_code)]

pub mod format;
pub mod plan;
pub mod storage;

//! Carry out a validated plan: open its regions, back up what is due, apply
//! retention, prune, and restore by plan. Shared by `lifeboat apply` and the daemon.

pub mod agree;
pub mod alerts;
pub mod anomaly;
pub mod audit;
pub mod child;
pub mod locks;
pub mod observe;
pub mod recover;
pub mod regions;
pub mod replicate;
pub mod reports;
pub mod retention;
pub mod run;
pub mod secrets;
pub mod session;
pub mod signing;
pub mod status;
pub mod trails;
pub mod verify;
pub mod verify_repo;

/// What `recover::restore_by_plan` takes, for callers above `apply` (drills).
pub use crate::engine::Progress;
pub use crate::engine::restore::{Placement, RestoreOptions};

use crate::engine::EngineError;
use crate::repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("region {region}: {source}")]
    Region { region: String, source: RepoError },
    #[error("{0}")]
    Secret(String),
    #[error("{0}")]
    BadInput(String),
}

impl ApplyError {
    /// Damage was found: a damaged object, or a signature that does not hold.
    pub fn is_damage(&self) -> bool {
        match self {
            ApplyError::Engine(EngineError::Damage { .. }) => true,
            ApplyError::Engine(EngineError::Repo(e)) | ApplyError::Region { source: e, .. } => e.is_damage(),
            _ => false,
        }
    }
}

impl From<RepoError> for ApplyError {
    fn from(e: RepoError) -> Self {
        ApplyError::Engine(EngineError::Repo(e))
    }
}

pub type Result<T> = std::result::Result<T, ApplyError>;

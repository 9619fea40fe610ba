//! One error type at the edge: a one-line message and an exit code from the contract.
//! The exit codes themselves are defined here and nowhere else.

use crate::apply::ApplyError;
use crate::engine::EngineError;
use crate::repo::RepoError;
use crate::storage::{ErrorKind, StorageError};

/// The command did what was asked.
pub const EXIT_OK: i32 = 0;
/// The operation failed (storage after retries, a lock held, a source unreadable).
pub const EXIT_FAILED: i32 = 1;
/// Bad input: usage, an invalid plan, a wrong or missing password.
pub const EXIT_BAD_INPUT: i32 = 2;
/// `check`, `verify` or `restore` found damage.
pub const EXIT_DAMAGE: i32 = 3;
/// Finished degraded: some region missed its work, or an objective is not met.
pub const EXIT_DEGRADED: i32 = 4;

/// What every command function returns: an exit code, or the error to print.
pub(super) type Result<T> = std::result::Result<T, CliError>;

/// Bad input, with `e` as its message.
pub(super) fn bad(e: impl std::fmt::Display) -> CliError {
    CliError::BadInput(e.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Failed(String),
}

/// A malformed or unsupported address is bad input; any other storage failure is a
/// failed operation.
fn storage_code(e: &StorageError) -> i32 {
    if e.kind == ErrorKind::InvalidAddress {
        EXIT_BAD_INPUT
    } else {
        EXIT_FAILED
    }
}

fn repo_code(e: &RepoError) -> i32 {
    match e {
        RepoError::NotFound(_)
        | RepoError::AlreadyExists(_)
        | RepoError::WrongPassword(_)
        | RepoError::Unsupported { .. }
        | RepoError::NoSnapshot(_)
        | RepoError::AmbiguousSnapshot(_)
        | RepoError::Invalid(_) => EXIT_BAD_INPUT,
        RepoError::Damaged { .. } | RepoError::KeyDamaged { .. } | RepoError::MissingBlob(_) => EXIT_DAMAGE,
        RepoError::Storage(s) => storage_code(s),
        RepoError::Locked { .. } => EXIT_FAILED,
    }
}

impl CliError {
    fn engine_code(e: &EngineError) -> i32 {
        match e {
            EngineError::Repo(r) => repo_code(r),
            EngineError::BadInput(_) => EXIT_BAD_INPUT,
            EngineError::Damage { .. } => EXIT_DAMAGE,
            _ => EXIT_FAILED,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Engine(e) => Self::engine_code(e),
            CliError::Repo(r) => repo_code(r),
            CliError::Apply(ApplyError::Engine(e)) => CliError::engine_code(e),
            CliError::Apply(ApplyError::Region { source, .. }) => repo_code(source),
            CliError::Apply(ApplyError::Secret(_) | ApplyError::BadInput(_)) => EXIT_BAD_INPUT,
            CliError::BadInput(_) => EXIT_BAD_INPUT,
            CliError::Storage(s) => storage_code(s),
            CliError::Failed(_) => EXIT_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(CliError::Repo(RepoError::WrongPassword("r".into())).exit_code(), 2);
        assert_eq!(CliError::Repo(RepoError::damaged("x", "y")).exit_code(), 3);
        let locked = RepoError::Locked {
            addr: "r".into(),
            detail: "d".into(),
        };
        assert_eq!(CliError::Engine(EngineError::Repo(locked)).exit_code(), 1);
        let ftp = crate::storage::RepositoryAddress::parse("ftp://host/x").unwrap_err();
        assert_eq!(CliError::Storage(ftp.clone()).exit_code(), 2);
        assert_eq!(CliError::Repo(RepoError::Storage(ftp)).exit_code(), 2);
    }
}

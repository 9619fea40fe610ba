//! Errors of the repository layer, each naming the repository or object involved.

use crate::format::blob::BlobError;
use crate::format::config::ConfigError;
use crate::storage::StorageError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RepoError {
    #[error("no repository at {0} — create one with `lifeboat init --repo {0}`")]
    NotFound(String),
    #[error("a repository already exists at {0} — use it, or choose another address")]
    AlreadyExists(String),
    #[error("wrong password for repository {0} — check LIFEBOAT_PASSWORD, --password-file or --password-command")]
    WrongPassword(String),
    #[error("repository {addr}: {source} — upgrade Lifeboat to read it")]
    Unsupported { addr: String, source: ConfigError },
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{what} is damaged: {detail} — run `lifeboat check --read-data` to see all damage")]
    Damaged { what: String, detail: String },
    #[error(
        "repository {addr}: {detail}, and this password opens none of its other keys — if it was that key's \
         password, open with another one and add it again with `lifeboat key add`"
    )]
    KeyDamaged { addr: String, detail: String },
    #[error("repository {addr} is locked: {detail}")]
    Locked { addr: String, detail: String },
    #[error("snapshot {0:?} not found — list them with `lifeboat snapshots`")]
    NoSnapshot(String),
    #[error("snapshot prefix {0:?} is ambiguous — give more characters")]
    AmbiguousSnapshot(String),
    #[error("blob {0} is not in the index — run `lifeboat check`; if packs are unindexed, `lifeboat repair index`")]
    MissingBlob(String),
    #[error("{0}")]
    Invalid(String),
}

impl RepoError {
    pub fn damaged(what: impl Into<String>, detail: impl ToString) -> Self {
        RepoError::Damaged {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    /// True when the failure is damage to stored data rather than an operational error.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            RepoError::Damaged { .. } | RepoError::KeyDamaged { .. } | RepoError::MissingBlob(_)
        )
    }
}

impl From<BlobError> for RepoError {
    fn from(e: BlobError) -> Self {
        RepoError::damaged("blob", e)
    }
}

pub type Result<T> = std::result::Result<T, RepoError>;

//! Storage: one narrow async trait that moves bytes by key, and nothing else.
//!
//! Everything above this layer (encryption, caching, naming) treats keys as opaque
//! `/`-separated strings such as `data/ab/abcdef…`. Backends are opendal operators
//! (local fs, S3, memory) chosen from a repository address; `FaultStore` wraps any
//! store to inject failures for tests and `chaos/`.
//!
//! Errors carry whether retrying can help (`StorageError::is_transient`), which is
//! what later decides "region degraded" versus "operation failed".

pub mod address;
pub mod cause;
pub mod fault;
pub mod object_lock;
pub mod opendal_store;

pub use address::{OpenOptions, RepositoryAddress, S3Address, open, open_with, probe_conditional_writes};
pub use cause::Cause;
pub use fault::FaultStore;
pub use opendal_store::{FS_TEMP_DIR, OpendalStore, map_opendal_error};

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

/// Size and name of one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// What went wrong with a storage call, and whether a retry may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    PermissionDenied,
    /// Network trouble, timeouts, throttling: a later attempt may succeed.
    Transient,
    /// Anything else that will not get better by retrying (full disk, bad config).
    Permanent,
    /// The repository address itself is wrong (unknown scheme, bad option): bad input.
    InvalidAddress,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}: {}", self.summary())]
pub struct StorageError {
    pub kind: ErrorKind,
    /// The backend address and key the call was about, e.g. `s3://bucket/prefix/config`.
    pub location: String,
    /// The storage library's own description; shown only when no [`Cause`] was recognised
    /// (the full chain is logged at debug level).
    pub message: String,
    pub cause: Option<Cause>,
    /// `host:port` of the server the failed request went to, when known.
    pub server: Option<String>,
}

impl StorageError {
    pub fn new(kind: ErrorKind, location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            location: location.into(),
            message: message.into(),
            cause: None,
            server: None,
        }
    }

    /// The same error, recognised as `cause` at `server`.
    pub fn with_cause(mut self, cause: Cause, server: Option<String>) -> Self {
        self.cause = Some(cause);
        self.server = server;
        self
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// One line: the recognised cause, the server and the fix, or the library's message.
    fn summary(&self) -> String {
        match (self.cause, &self.server) {
            (Some(c), Some(server)) => format!("{} at {server} — {}", c.what(), c.fix()),
            (Some(c), None) => format!("{} — {}", c.what(), c.fix()),
            (None, _) => self.message.clone(),
        }
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// The one storage interface every layer above uses.
///
/// Writes are whole-object and atomic from a reader's point of view: a reader sees
/// either nothing or the complete object, never a torn one.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Human-readable address of this store, used in error messages.
    fn address(&self) -> &str;
    /// Write an object, replacing any existing one with that key.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;
    /// Write an object only if no object has that key. Returns `false` (and writes
    /// nothing) when it already existed.
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool>;
    async fn get(&self, key: &str) -> Result<Bytes>;
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;
    /// Every object whose key starts with `prefix` (recursively), in no set order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// Remove an object; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// `None` when the object does not exist.
    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>>;

    /// Days of retention (S3 Object Lock) this store promises for packs and snapshots;
    /// `None` for stores that do not lock.
    fn lock_days(&self) -> Option<u32> {
        None
    }
    /// Raise the retention of a locked object to at least `until`.
    async fn extend_lock(&self, key: &str, until: chrono::DateTime<chrono::Utc>) -> Result<()> {
        let _ = until;
        Err(StorageError::new(
            ErrorKind::Permanent,
            format!("{}/{key}", self.address()),
            "this store does not lock objects",
        ))
    }
    /// Check that the store can keep what its address promises (for S3 Object Lock:
    /// that the bucket has it enabled). Called when a repository is created or opened.
    async fn check_setup(&self) -> Result<()> {
        Ok(())
    }
}

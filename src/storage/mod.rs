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
pub mod aws;
pub mod cause;
pub mod fault;
mod local_write;
pub mod opendal_store;

pub use address::{OpenOptions, RepositoryAddress, S3Address, open, open_with, probe_conditional_writes};
pub use aws::CredentialSource;
pub use cause::Cause;
pub use fault::FaultStore;
pub use opendal_store::{FS_TEMP_DIR, OpendalStore, map_opendal_error};

use std::ops::Range;
use std::time::Duration;

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

/// How a store retries and times out, whichever library sends its requests: opendal's
/// retry and timeout layers on the data path and the SDK's retry and timeout settings on
/// the S3 lock path both take it from here, so one store has one policy.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// Backoff before the first retry, doubling (with jitter) up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub connect_timeout: Duration,
    /// The longest one attempt may take.
    pub attempt_timeout: Duration,
    /// The longest a transfer may go without moving a byte.
    pub io_timeout: Duration,
}

/// The one retry policy every store uses.
pub const RETRY: RetryPolicy = RetryPolicy {
    attempts: 6,
    min_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(5),
    connect_timeout: Duration::from_secs(10),
    attempt_timeout: Duration::from_secs(60),
    io_timeout: Duration::from_secs(30),
};

/// How one object is written. Which objects are locked, and for how long, is the
/// caller's decision: the store only carries it out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Write only if no object has the key (`If-None-Match: *`).
    pub if_absent: bool,
    /// Keep the object undeletable and unchangeable until this time (S3 Object Lock,
    /// COMPLIANCE mode); `None` writes it without a lock.
    pub retain_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a store can do beyond moving bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The store can lock objects (S3 Object Lock), and its address asks for this many
    /// days of retention (`object_lock_days`); `None` when it does not lock.
    pub lock_days: Option<u32>,
}

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

    /// Write an object as `opts` says: create-only, and/or under S3 Object Lock until a
    /// date. Returns `false` (and writes nothing) when `if_absent` is set and the object
    /// existed. A store that cannot lock refuses a locked write rather than writing the
    /// object unlocked.
    async fn put_with(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<bool> {
        if opts.retain_until.is_some() {
            return Err(StorageError::new(
                ErrorKind::Permanent,
                format!("{}/{key}", self.address()),
                "this store does not lock objects",
            ));
        }
        match opts.if_absent {
            true => self.put_if_absent(key, data).await,
            false => self.put(key, data).await.map(|()| true),
        }
    }
    /// What this store can do beyond moving bytes.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    /// Raise the Object Lock retention of a stored object to at least `until`.
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

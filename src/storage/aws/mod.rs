//! Everything that speaks AWS's own libraries, in one place.
//!
//! The data path is opendal's; AWS crates come in for two jobs opendal does not do the
//! AWS way:
//!
//! * `credentials`: S3 credentials resolved as the AWS CLI resolves them (environment,
//!   shared profile, SSO, web identity, container and instance metadata) or as a plan's
//!   region names them, handed to opendal's signer and to the lock client alike, so both
//!   paths of one store sign as the same identity;
//! * `lock` (cargo feature `object-lock`, on by default): S3 Object Lock through
//!   aws-sdk-s3, which opendal cannot send. Built without the feature, a store whose
//!   address asks for a lock is refused when it is opened, never written unlocked.
//!
//! Keeping them here keeps the largest dependency of the build behind one feature and
//! out of every other file (checked by `tests/architecture.rs`).

pub mod credentials;
#[cfg(feature = "object-lock")]
pub mod lock;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

pub use credentials::{CredentialSource, Credentials};

use super::{ErrorKind, Result, StorageError};

/// Uploads with S3 Object Lock retention, and what goes with them, for one store.
#[async_trait]
pub trait ObjectLock: Send + Sync + std::fmt::Debug {
    /// The retention, in days, the store's address asks for.
    fn days(&self) -> u32;
    /// Upload `data` under `key`, locked (COMPLIANCE) until `until`. With `if_absent`,
    /// an existing object gives `ErrorKind::AlreadyExists`.
    async fn put(&self, key: &str, data: Bytes, if_absent: bool, until: DateTime<Utc>, location: &str) -> Result<()>;
    /// Raise the retention of `key` to `until`; S3 never lets a COMPLIANCE lock shrink.
    async fn extend(&self, key: &str, until: DateTime<Utc>, location: &str) -> Result<()>;
    /// Check that the bucket has Object Lock enabled, so locked uploads can work.
    async fn check_bucket(&self, location: &str) -> Result<()>;
}

/// Where a store's locked objects go.
#[derive(Debug, Clone)]
pub struct LockTarget {
    /// `None` means AWS itself, derived from the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`.
    pub prefix: String,
    pub days: u32,
    pub storage_class: Option<String>,
}

/// The Object Lock client for `target`, signing with `credentials`.
#[cfg(feature = "object-lock")]
pub fn object_lock(target: LockTarget, credentials: Credentials, _display: &str) -> Result<Arc<dyn ObjectLock>> {
    Ok(Arc::new(lock::LockClient::new(target, credentials)))
}

/// Built without the `object-lock` feature: a store that asks for a lock is refused.
#[cfg(not(feature = "object-lock"))]
pub fn object_lock(target: LockTarget, credentials: Credentials, display: &str) -> Result<Arc<dyn ObjectLock>> {
    let _ = credentials;
    Err(StorageError::new(
        ErrorKind::Permanent,
        display,
        format!(
            "this build has no S3 Object Lock support (built without the `object-lock` feature), so \
             object_lock_days={} cannot be honoured — use a build with the default features, or drop \
             object_lock_days/immutable_days",
            target.days
        ),
    ))
}

/// The error for a lock asked of a store that has no lock client.
pub fn not_locking(location: &str) -> StorageError {
    StorageError::new(ErrorKind::Permanent, location, "this store does not lock objects")
}

#[cfg(all(test, not(feature = "object-lock")))]
mod tests {
    #[test]
    fn without_the_feature_a_locked_address_is_refused_when_opened() {
        let address = "s3://bkt/p?endpoint=http://127.0.0.1:9&object_lock_days=3";
        let err = crate::storage::open(address).expect_err("opened a lock it cannot keep");
        assert!(err.message.contains("no S3 Object Lock support"), "{err}");
        assert!(err.message.contains("object_lock_days=3"), "{err}");
        let plain = "s3://bkt/p?endpoint=http://127.0.0.1:9";
        assert_eq!(crate::storage::open(plain).unwrap().capabilities().lock_days, None);
    }
}

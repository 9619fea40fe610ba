//! Reading whole objects only when their size is one an honest writer produces.
//!
//! Anyone with write access to one region's storage can replace an object with a very
//! large one; reading it whole would exhaust memory on every client that looks, so each
//! kind of object has a size limit (docs/format.md, "Bounds") checked from the listing
//! or a `stat` before any byte is fetched, and again on what arrives.

use bytes::Bytes;

use super::error::{RepoError, Result};
use crate::format::blob::MAX_SEALED;
use crate::format::config::{MAX_CONFIG_LEN, MAX_KEY_LEN};
use crate::format::lease::MAX_LEASE_LEN;
use crate::format::prune::MAX_RECORD_LEN;
use crate::storage::{ErrorKind, Store};

/// A sealed snapshot, retention ledger or stored report: one sealed value, so at most
/// one sealed blob long.
pub const MAX_SEALED_OBJECT: u64 = MAX_SEALED as u64;
/// An index object or prune record: 45 bytes per blob, so about 95 million blobs —
/// more than the in-memory index of one process holds (64 bytes per blob, 6 GiB).
pub const MAX_INDEX: u64 = MAX_RECORD_LEN;
/// A lease (a few hundred bytes of JSON).
pub const MAX_LEASE: u64 = MAX_LEASE_LEN as u64;
pub const MAX_CONFIG: u64 = MAX_CONFIG_LEN as u64;
pub const MAX_KEY: u64 = MAX_KEY_LEN as u64;

/// Read `key` whole if it is at most `max` bytes. `known` is its size from a listing;
/// without it the object is `stat`ed first. A longer object is reported as damaged,
/// named by its full location.
pub async fn read_bounded(store: &dyn Store, key: &str, known: Option<u64>, max: u64) -> Result<Bytes> {
    let size = match known {
        Some(size) => size,
        None => match store.stat(key).await {
            Ok(Some(meta)) => meta.size,
            // Let the read report the missing object as the store words it.
            Ok(None) => 0,
            // An S3 HEAD answer has no body, so a refusal does not say whether the
            // secret is wrong or a permission is missing: the read that follows fails
            // with the server's reason. (A store that refuses HEAD but allows GET is
            // read whole and checked after.)
            Err(e) if e.kind == ErrorKind::PermissionDenied => 0,
            Err(e) => return Err(e.into()),
        },
    };
    check_size(store, key, size, max)?;
    let bytes = store.get(key).await?;
    check_size(store, key, bytes.len() as u64, max)?;
    Ok(bytes)
}

/// Refuse an object longer than `max`, naming it.
pub fn check_size(store: &dyn Store, key: &str, size: u64, max: u64) -> Result<()> {
    if size > max {
        return Err(RepoError::damaged(
            format!("{}/{key}", store.address()),
            format!("it is {size} bytes, more than the {max} any honest object of its kind holds"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::OpendalStore;

    #[tokio::test]
    async fn objects_beyond_the_limit_are_refused_before_reading() {
        let store = OpendalStore::memory(format!("bounded-{}", rand::random::<u64>())).unwrap();
        store.put("snapshots/x", Bytes::from(vec![1u8; 100])).await.unwrap();
        assert_eq!(read_bounded(&store, "snapshots/x", None, 100).await.unwrap().len(), 100);
        let err = read_bounded(&store, "snapshots/x", None, 99).await.unwrap_err();
        assert!(err.is_damage(), "{err}");
        assert!(
            err.to_string().contains("snapshots/x") && err.to_string().contains("100 bytes"),
            "{err}"
        );
        // A listing that understated the size is caught on what arrives.
        let err = read_bounded(&store, "snapshots/x", Some(10), 99).await.unwrap_err();
        assert!(err.is_damage(), "{err}");
        let missing = read_bounded(&store, "snapshots/y", None, 99).await.unwrap_err();
        assert!(matches!(missing, RepoError::Storage(e) if e.is_not_found()));
    }
}

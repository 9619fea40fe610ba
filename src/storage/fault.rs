//! `FaultStore`: wraps any store and makes it misbehave on command.
//!
//! Recovery code is only trustworthy if its failure paths run, and real backends fail
//! rarely and at random. opendal's chaos layer only injects read errors, so tests and
//! `chaos/` use this wrapper for the failures a backup tool must survive: a refused or
//! torn write, a flipped byte on read, a slow link and a whole region going dark.
//!
//! Faults are deterministic (counters and prefixes, never randomness) so a failing
//! scenario replays exactly, and they are switched at runtime through `&self`, so a
//! test can break a store that is already shared with the code under test.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use super::{Capabilities, ErrorKind, ObjectMeta, PutOptions, Result, StorageError, Store};

/// What happens to one put that a fault selects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PutFault {
    /// Nothing is stored; the call fails with this kind.
    Fail(ErrorKind),
    /// The first half of the bytes is stored, then the call fails (Transient).
    Tear,
}

#[derive(Debug, Default)]
struct Faults {
    /// Put number (counted over the store's life, from 1) mapped to its fault.
    numbered_puts: Vec<(u64, PutFault)>,
    prefixed_puts: Vec<(String, PutFault)>,
    /// Gets of keys with this prefix return the object with byte `index % len` flipped.
    corrupt_reads: Vec<(String, u64)>,
    latency: Duration,
    /// `put_if_absent` overwrites and reports success, as servers that ignore
    /// `If-None-Match` do.
    ignore_conditions: bool,
}

/// A `Store` wrapper with programmable, deterministic faults.
#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn Store>,
    faults: Mutex<Faults>,
    puts_seen: AtomicU64,
    outage: AtomicBool,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            faults: Mutex::new(Faults::default()),
            puts_seen: AtomicU64::new(0),
            outage: AtomicBool::new(false),
        }
    }

    /// Puts (including `put_if_absent`) attempted so far.
    pub fn puts_seen(&self) -> u64 {
        self.puts_seen.load(Ordering::SeqCst)
    }

    /// Fail the `n`th put from now (`n = 1` is the next one) with `kind`.
    pub fn fail_nth_put(&self, n: u64, kind: ErrorKind) {
        self.arm_numbered_put(n, PutFault::Fail(kind));
    }

    /// Store only the first half of the `n`th put from now, then fail it as Transient.
    pub fn tear_nth_put(&self, n: u64) {
        self.arm_numbered_put(n, PutFault::Tear);
    }

    /// Fail every put whose key starts with `prefix` with `kind`, until cleared.
    pub fn fail_puts_with_prefix(&self, prefix: &str, kind: ErrorKind) {
        let fault = (prefix.to_string(), PutFault::Fail(kind));
        self.faults().prefixed_puts.push(fault);
    }

    /// Tear every put whose key starts with `prefix`, until cleared.
    pub fn tear_puts_with_prefix(&self, prefix: &str) {
        let fault = (prefix.to_string(), PutFault::Tear);
        self.faults().prefixed_puts.push(fault);
    }

    /// Reads of keys starting with `prefix` see byte `index` (modulo the object's
    /// length) inverted. The stored object is untouched.
    pub fn flip_byte_on_get(&self, prefix: &str, index: u64) {
        self.faults().corrupt_reads.push((prefix.to_string(), index));
    }

    /// Make `put_if_absent` behave like a server that ignores `If-None-Match`: it
    /// overwrites an existing object and reports that it wrote.
    pub fn ignore_conditional_writes(&self) {
        self.faults().ignore_conditions = true;
    }

    /// Delay every call by `latency` (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.faults().latency = latency;
    }

    /// While on, every call fails as Transient "region unreachable".
    pub fn set_outage(&self, unreachable: bool) {
        self.outage.store(unreachable, Ordering::SeqCst);
    }

    /// Remove every fault, latency and outage; the put counter keeps counting.
    pub fn clear_faults(&self) {
        *self.faults() = Faults::default();
        self.set_outage(false);
    }

    fn arm_numbered_put(&self, n: u64, fault: PutFault) {
        let target = self.puts_seen() + n.max(1);
        self.faults().numbered_puts.push((target, fault));
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        // Fault settings stay consistent even if a test panicked while holding the lock.
        self.faults.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn location(&self, key: &str) -> String {
        format!("{}/{}", self.inner.address(), key)
    }

    /// Common prologue of every call: the configured delay, then the outage switch.
    async fn enter(&self, key: &str) -> Result<()> {
        let latency = self.faults().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if self.outage.load(Ordering::SeqCst) {
            return Err(StorageError::new(
                ErrorKind::Transient,
                self.location(key),
                "region unreachable (injected outage)",
            ));
        }
        Ok(())
    }

    /// Count this put and take the fault it should suffer, if any.
    fn next_put_fault(&self, key: &str) -> Option<PutFault> {
        let number = self.puts_seen.fetch_add(1, Ordering::SeqCst) + 1;
        let mut faults = self.faults();
        if let Some(at) = faults.numbered_puts.iter().position(|(n, _)| *n == number) {
            return Some(faults.numbered_puts.swap_remove(at).1);
        }
        faults
            .prefixed_puts
            .iter()
            .find(|(prefix, _)| key.starts_with(prefix.as_str()))
            .map(|(_, fault)| fault.clone())
    }

    /// Carry out `fault` for a put of `data`; `exclusive` selects `put_if_absent`.
    async fn suffer(&self, key: &str, data: Bytes, fault: PutFault, exclusive: bool) -> StorageError {
        if fault == PutFault::Tear {
            let half = data.slice(..data.len() / 2);
            let stored = match exclusive {
                true => self.inner.put_if_absent(key, half).await.map(|_| ()),
                false => self.inner.put(key, half).await,
            };
            if let Err(err) = stored {
                return err;
            }
        }
        let (kind, message) = match fault {
            PutFault::Fail(kind) => (kind, "injected put failure"),
            PutFault::Tear => (ErrorKind::Transient, "connection lost mid-write (injected torn write)"),
        };
        StorageError::new(kind, self.location(key), message)
    }

    fn corrupt(&self, key: &str, data: Bytes, offset: u64, object_len: u64) -> Bytes {
        let flips: Vec<u64> = self
            .faults()
            .corrupt_reads
            .iter()
            .filter(|(prefix, _)| key.starts_with(prefix.as_str()))
            .map(|(_, index)| index % object_len.max(1))
            .collect();
        let mut bytes = BytesMut::from(data.as_ref());
        for index in flips {
            if let Some(byte) = index
                .checked_sub(offset)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| bytes.get_mut(i))
            {
                *byte = !*byte;
            }
        }
        bytes.freeze()
    }

    fn has_read_corruption(&self, key: &str) -> bool {
        let faults = self.faults();
        faults
            .corrupt_reads
            .iter()
            .any(|(prefix, _)| key.starts_with(prefix.as_str()))
    }
}

#[async_trait]
impl Store for FaultStore {
    fn address(&self) -> &str {
        self.inner.address()
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.enter(key).await?;
        match self.next_put_fault(key) {
            Some(fault) => Err(self.suffer(key, data, fault, false).await),
            None => self.inner.put(key, data).await,
        }
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        self.enter(key).await?;
        match self.next_put_fault(key) {
            Some(fault) => Err(self.suffer(key, data, fault, true).await),
            None if self.faults().ignore_conditions => self.inner.put(key, data).await.map(|()| true),
            None => self.inner.put_if_absent(key, data).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        self.enter(key).await?;
        let data = self.inner.get(key).await?;
        let len = data.len() as u64;
        match self.has_read_corruption(key) {
            true => Ok(self.corrupt(key, data, 0, len)),
            false => Ok(data),
        }
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.enter(key).await?;
        if !self.has_read_corruption(key) {
            return self.inner.get_range(key, range).await;
        }
        // The flipped position depends on the whole object's length.
        let object_len = self.inner.stat(key).await?.map_or(0, |meta| meta.size);
        let data = self.inner.get_range(key, range.clone()).await?;
        Ok(self.corrupt(key, data, range.start, object_len))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.enter(prefix).await?;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.enter(key).await?;
        self.inner.delete(key).await
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.enter(key).await?;
        self.inner.stat(key).await
    }

    async fn put_with(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<bool> {
        self.enter(key).await?;
        match self.next_put_fault(key) {
            Some(fault) => Err(self.suffer(key, data, fault, opts.if_absent).await),
            None if opts.if_absent && self.faults().ignore_conditions => {
                let overwrite = PutOptions {
                    if_absent: false,
                    ..opts
                };
                self.inner.put_with(key, data, overwrite).await.map(|_| true)
            }
            None => self.inner.put_with(key, data, opts).await,
        }
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn extend_lock(&self, key: &str, until: chrono::DateTime<chrono::Utc>) -> Result<()> {
        self.enter(key).await?;
        self.inner.extend_lock(key, until).await
    }

    async fn check_setup(&self) -> Result<()> {
        self.inner.check_setup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::OpendalStore;

    fn faulty() -> FaultStore {
        let inner = OpendalStore::memory("memory://fault-test").unwrap();
        FaultStore::new(Arc::new(inner))
    }

    fn bytes(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[tokio::test]
    async fn nth_put_fails_once_and_stores_nothing() {
        let store = faulty();
        store.put("before", bytes("x")).await.unwrap();
        store.fail_nth_put(2, ErrorKind::PermissionDenied);
        store.put("first", bytes("1")).await.unwrap();
        let err = store.put("second", bytes("2")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert_eq!(err.location, "memory://fault-test/second");
        assert!(store.stat("second").await.unwrap().is_none());
        store.put("second", bytes("2")).await.unwrap();
        assert_eq!(store.puts_seen(), 4);
    }

    #[tokio::test]
    async fn prefixed_puts_fail_until_cleared() {
        let store = faulty();
        store.fail_puts_with_prefix("locks/", ErrorKind::Transient);
        assert!(store.put("locks/a", bytes("l")).await.unwrap_err().is_transient());
        let refused = store.put_if_absent("locks/b", bytes("l")).await.unwrap_err();
        assert!(refused.is_transient());
        store.put("data/a", bytes("d")).await.unwrap();
        store.clear_faults();
        assert!(store.put_if_absent("locks/b", bytes("l")).await.unwrap());
    }

    #[tokio::test]
    async fn torn_put_leaves_the_first_half_and_errors() {
        let store = faulty();
        store.tear_nth_put(1);
        let err = store.put("pack", bytes("abcdefgh")).await.unwrap_err();
        assert!(err.is_transient());
        assert_eq!(store.get("pack").await.unwrap(), bytes("abcd"));
    }

    #[tokio::test]
    async fn flipped_byte_is_seen_by_get_and_covering_ranges_only() {
        let store = faulty();
        store.put("data/x", bytes("abcdef")).await.unwrap();
        store.flip_byte_on_get("data/", 8); // 8 % 6 == 2
        let whole = store.get("data/x").await.unwrap();
        assert_eq!(whole.as_ref(), [b'a', b'b', !b'c', b'd', b'e', b'f']);
        assert_eq!(store.get_range("data/x", 1..3).await.unwrap().as_ref(), [b'b', !b'c']);
        assert_eq!(store.get_range("data/x", 3..6).await.unwrap(), bytes("def"));
        store.clear_faults();
        assert_eq!(store.get("data/x").await.unwrap(), bytes("abcdef"));
    }

    #[tokio::test]
    async fn outage_fails_every_call_as_transient() {
        let store = faulty();
        store.put("k", bytes("v")).await.unwrap();
        store.set_outage(true);
        let err = store.get("k").await.unwrap_err();
        assert!(err.is_transient() && err.message.contains("region unreachable"));
        assert!(store.list("").await.unwrap_err().is_transient());
        assert!(store.stat("k").await.unwrap_err().is_transient());
        assert!(store.delete("k").await.unwrap_err().is_transient());
        store.set_outage(false);
        assert_eq!(store.get("k").await.unwrap(), bytes("v"));
    }

    #[tokio::test]
    async fn latency_delays_each_call() {
        let store = faulty();
        store.set_latency(Duration::from_millis(50));
        let started = tokio::time::Instant::now();
        assert!(store.stat("k").await.unwrap().is_none());
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}

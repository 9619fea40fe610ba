//! Rate limits for the API: a token bucket per key (a subject, or a client address
//! before authentication), kept in a table of fixed capacity.
//!
//! The table forgets its least recently used key when full, so a flood of new
//! addresses or subjects costs a bounded amount of memory. A forgotten key starts
//! again with a full bucket; the capacity is chosen far above the number of
//! subjects a daemon serves, so only a flood of addresses ever reaches it.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `burst` calls at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    /// A rate with a burst of a tenth of a minute's calls (at least 1).
    pub fn per_minute(n: u32) -> Rate {
        Rate {
            per_minute: n,
            burst: (n / 10).max(1),
        }
    }

    fn per_second(self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Take one call's worth at `now`; `Err(wait)` when empty.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second()).min(f64::from(rate.burst.max(1)));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let per_second = rate.per_second();
        let wait = if per_second > 0.0 {
            (1.0 - self.tokens) / per_second
        } else {
            3600.0
        };
        Err(Duration::from_secs_f64(wait.min(3600.0)))
    }
}

struct Table<K> {
    /// Key → its bucket and the stamp of its last use.
    buckets: HashMap<K, (Bucket, u64)>,
    /// Stamp → key, oldest first.
    order: BTreeMap<u64, K>,
    next: u64,
}

/// Buckets per key, at most `capacity` of them.
pub struct Limiter<K> {
    rate: Rate,
    capacity: usize,
    table: Mutex<Table<K>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: Rate, capacity: usize) -> Self {
        Self {
            rate,
            capacity: capacity.max(1),
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                order: BTreeMap::new(),
                next: 0,
            }),
        }
    }

    /// Take one call for `key`; `Err(retry_after)` when its bucket is empty.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut t = lock(&self.table);
        let stamp = t.next;
        t.next += 1;
        let full = Bucket {
            tokens: f64::from(self.rate.burst.max(1)),
            at: now,
        };
        let (mut bucket, old) = t.buckets.remove(key).unwrap_or((full, u64::MAX));
        t.order.remove(&old);
        let result = bucket.take(self.rate, now);
        t.buckets.insert(key.clone(), (bucket, stamp));
        t.order.insert(stamp, key.clone());
        while t.buckets.len() > self.capacity {
            let Some((_, oldest)) = t.order.pop_first() else { break };
            t.buckets.remove(&oldest);
        }
        result
    }

    /// Keys held now (never more than the capacity).
    pub fn len(&self) -> usize {
        lock(&self.table).buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_bucket() {
        let limiter = Limiter::new(
            Rate {
                per_minute: 60,
                burst: 2,
            },
            100,
        );
        let now = Instant::now();
        assert!(limiter.check_at(&"a", now).is_ok());
        assert!(limiter.check_at(&"a", now).is_ok());
        let wait = limiter.check_at(&"a", now).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limiter.check_at(&"b", now).is_ok(), "b is not a's bucket");
        assert!(limiter.check_at(&"a", now + Duration::from_secs(1)).is_ok(), "refilled");
    }

    #[test]
    fn the_table_never_outgrows_its_capacity_and_forgets_the_oldest() {
        let limiter = Limiter::new(
            Rate {
                per_minute: 1,
                burst: 1,
            },
            64,
        );
        let now = Instant::now();
        for i in 0..10_000u32 {
            let _ = limiter.check_at(&i, now);
            assert!(limiter.len() <= 64);
        }
        assert_eq!(limiter.len(), 64);
        assert!(limiter.check_at(&9_999, now).is_err(), "the newest is remembered");
        assert!(limiter.check_at(&0, now).is_ok(), "the oldest was forgotten");
    }

    #[test]
    fn a_zero_rate_waits_at_most_an_hour() {
        let limiter = Limiter::new(
            Rate {
                per_minute: 0,
                burst: 1,
            },
            4,
        );
        let now = Instant::now();
        assert!(limiter.check_at(&1, now).is_ok());
        assert_eq!(limiter.check_at(&1, now).unwrap_err(), Duration::from_secs(3600));
    }
}

//! Leases: the plaintext JSON of an object under `locks/`.
//!
//! `{"host":…,"pid":…,"kind":"backup"|"prune"|"exclusive","purpose":…,"created":…,
//! "expires":…}`, compact, not sealed (a lease must be readable by anyone deciding
//! whether to wait for it). Decoding is bounded: at most [`MAX_LEASE_LEN`] bytes, and a
//! lease that claims to last further ahead than a refreshed one can is refused, since
//! it would hold a repository for years. Whether a decoded lease is still alive needs
//! the host and its processes, which is `repo::lock`'s business.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long a lease lives without being refreshed.
pub const LEASE_TTL: Duration = Duration::from_secs(300);
/// Clock difference between hosts tolerated in a lease's `expires`. A lease that
/// claims to last longer than `LEASE_TTL` plus this is not one Lifeboat wrote (it
/// would hold a repository for years); it is treated like unreadable lease JSON.
pub const LEASE_CLOCK_SKEW: Duration = Duration::from_secs(3600);
/// Longest lease object (a few hundred bytes of JSON are written).
pub const MAX_LEASE_LEN: usize = 64 * 1024;

/// What a lease holder is doing, which decides what it excludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseKind {
    Backup,
    Prune,
    Exclusive,
}

impl LeaseKind {
    /// Whether a holder of `self` must not run beside a holder of `other`.
    pub fn conflicts_with(self, other: LeaseKind) -> bool {
        use LeaseKind::*;
        matches!((self, other), (Exclusive, _) | (_, Exclusive) | (Prune, Prune))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub host: String,
    pub pid: u32,
    pub kind: LeaseKind,
    pub purpose: String,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

impl LeaseInfo {
    /// Decode a lease object, bounded: at most [`MAX_LEASE_LEN`] bytes, and not expiring
    /// further ahead of `now` than a refreshed lease can.
    pub fn decode(raw: &[u8], now: DateTime<Utc>) -> Option<LeaseInfo> {
        if raw.len() > MAX_LEASE_LEN {
            return None;
        }
        let info: LeaseInfo = serde_json::from_slice(raw).ok()?;
        let longest = chrono::Duration::from_std(LEASE_TTL + LEASE_CLOCK_SKEW).ok()?;
        (info.expires <= now + longest).then_some(info)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Strings, numbers and dates always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(expires: DateTime<Utc>) -> LeaseInfo {
        LeaseInfo {
            host: "elsewhere".into(),
            pid: 1,
            kind: LeaseKind::Exclusive,
            purpose: "repair".into(),
            created: DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
            expires,
        }
    }

    #[test]
    fn leases_round_trip() {
        let now = Utc::now();
        let info = lease(now + chrono::Duration::seconds(300));
        assert_eq!(LeaseInfo::decode(&info.encode(), now), Some(info));
    }

    #[test]
    fn leases_expiring_implausibly_late_or_too_large_are_not_leases() {
        let now = Utc::now();
        assert!(LeaseInfo::decode(&lease(now + chrono::Duration::seconds(300)).encode(), now).is_some());
        assert!(LeaseInfo::decode(&lease(now + chrono::Duration::minutes(60)).encode(), now).is_some());
        assert!(LeaseInfo::decode(&lease(now + chrono::Duration::days(2)).encode(), now).is_none());
        assert!(LeaseInfo::decode(&lease(DateTime::<Utc>::MAX_UTC).encode(), now).is_none());
        let mut padded = lease(now).encode();
        padded.extend(std::iter::repeat_n(b' ', MAX_LEASE_LEN));
        assert!(LeaseInfo::decode(&padded, now).is_none());
        assert!(LeaseInfo::decode(b"\xff garbage", now).is_none());
        let whole = lease(now).encode();
        assert!(LeaseInfo::decode(&whole[..whole.len() - 1], now).is_none());
    }

    #[test]
    fn prune_excludes_prune_but_not_backup() {
        use LeaseKind::*;
        assert!(!Backup.conflicts_with(Backup));
        assert!(!Backup.conflicts_with(Prune));
        assert!(Prune.conflicts_with(Prune));
        assert!(Exclusive.conflicts_with(Backup));
        assert!(Backup.conflicts_with(Exclusive));
    }
}

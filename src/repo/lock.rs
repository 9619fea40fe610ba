//! Leases: time-limited locks kept as objects under `locks/`.
//!
//! A backup holds a `Backup` lease, which any number may hold at once. Prune holds a
//! `Prune` lease, which excludes other prunes but not backups: prune's two phases
//! (see `engine::prune`) make it safe beside running backups, so backups never wait
//! for it. Repairs hold an `Exclusive` lease, which excludes everything. A lease names its host and process and carries an expiry that its
//! holder pushes forward while it works; a lease past its expiry, or one from a dead
//! process on this host, is stale and ignored. After writing its own lease, a taker
//! lists again, so two conflicting takers racing each other both back off rather than
//! both proceeding.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::bounded::{MAX_LEASE, check_size};
use super::error::{RepoError, Result};
use super::objects::{self, ObjectKind};
use super::{hostname, layout, random};
pub use crate::format::lease::{LEASE_CLOCK_SKEW, LEASE_TTL, LeaseInfo, LeaseKind};
use crate::storage::Store;

/// Whether the holder of `lease` is gone: past its expiry, or a dead process on this host.
pub fn is_stale(lease: &LeaseInfo, now: DateTime<Utc>) -> bool {
    now > lease.expires || holder_gone(lease)
}

/// Whether the holder of `lease` is provably gone: a process on this host that no
/// longer exists. An expired lease from another host may still have a live holder whose
/// refreshes fail, so only this makes a lease safe to remove unattended.
pub fn holder_gone(lease: &LeaseInfo) -> bool {
    lease.host == hostname() && !std::path::Path::new(&format!("/proc/{}", lease.pid)).exists()
}

/// A lease under `locks/` that no holder keeps: past its expiry, from a process on this
/// host that is gone, or unreadable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleLease {
    pub key: String,
    /// `None` when the object is not a readable lease.
    pub holder: Option<LeaseInfo>,
    /// Its holder is a process on this host that is gone.
    pub holder_gone: bool,
}

impl std::fmt::Display for StaleLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(l) => write!(
                f,
                "{} ({} on {}, pid {}, expired {})",
                self.key,
                l.purpose,
                l.host,
                l.pid,
                l.expires.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            None => write!(f, "{} (not a readable lease)", self.key),
        }
    }
}

/// Every stale lease, for reports; nothing is removed.
pub async fn stale_leases(store: &dyn Store) -> Result<Vec<StaleLease>> {
    let now = Utc::now();
    let mut out = Vec::new();
    for meta in store.list(layout::LOCKS).await? {
        let holder = if meta.size > MAX_LEASE {
            None
        } else {
            match store.get(&meta.key).await {
                Ok(raw) => LeaseInfo::decode(&raw, now),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if holder.as_ref().is_some_and(|l| !is_stale(l, now)) {
            continue;
        }
        let holder_gone = holder.as_ref().is_some_and(holder_gone);
        out.push(StaleLease {
            key: meta.key,
            holder,
            holder_gone,
        });
    }
    Ok(out)
}

/// Remove the leases whose holder is provably gone (`holder_gone`), and no other;
/// returns how many.
pub async fn remove_abandoned(store: &dyn Store) -> Result<usize> {
    let mut removed = 0;
    for stale in stale_leases(store).await?.into_iter().filter(|s| s.holder_gone) {
        store.delete(&stale.key).await?;
        removed += 1;
    }
    Ok(removed)
}

/// A held lease; released on [`Lease::release`] or (best effort) when dropped.
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn Store>,
    key: String,
    refresher: tokio::task::JoinHandle<()>,
    created: DateTime<Utc>,
}

fn describe(l: &LeaseInfo) -> String {
    format!(
        "held by {} ({:?}) on {} (pid {}) since {}; it expires at {} if that process is gone",
        l.purpose,
        l.kind,
        l.host,
        l.pid,
        l.created.format("%Y-%m-%d %H:%M:%S UTC"),
        l.expires.format("%H:%M:%S UTC")
    )
}

/// Leases whose holders are alive, except the one at `except`.
pub async fn live_leases(store: &dyn Store, except: Option<&str>) -> Result<Vec<LeaseInfo>> {
    let now = Utc::now();
    let mut out = Vec::new();
    for meta in store.list(layout::LOCKS).await? {
        if Some(meta.key.as_str()) == except || check_size(store, &meta.key, meta.size, MAX_LEASE).is_err() {
            continue;
        }
        let raw = match store.get(&meta.key).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(info) = LeaseInfo::decode(&raw, now)
            && !is_stale(&info, now)
        {
            out.push(info);
        }
    }
    Ok(out)
}

fn conflict(kind: LeaseKind, others: &[LeaseInfo]) -> Option<&LeaseInfo> {
    others.iter().find(|o| kind.conflicts_with(o.kind))
}

fn lease_bytes(info: &mut LeaseInfo) -> Bytes {
    info.expires = Utc::now() + LEASE_TTL;
    Bytes::from(info.encode())
}

impl Lease {
    /// Take a lease, or fail naming who holds the conflicting one.
    pub async fn acquire(store: Arc<dyn Store>, kind: LeaseKind, purpose: &str) -> Result<Lease> {
        let addr = store.address().to_string();
        let locked = |l: &LeaseInfo| RepoError::Locked {
            addr: addr.clone(),
            detail: format!("{} — retry when it has finished", describe(l)),
        };
        if let Some(l) = conflict(kind, &live_leases(store.as_ref(), None).await?) {
            return Err(locked(l));
        }
        let key = layout::lock(&hex::encode(random::<16>()));
        let mut info = LeaseInfo {
            host: hostname(),
            pid: std::process::id(),
            kind,
            purpose: purpose.to_string(),
            created: Utc::now(),
            expires: Utc::now(),
        };
        // A create-only write (If-None-Match on S3): the name is random, so this never
        // meets an existing lease, and on a server that honours conditional writes a
        // retried request cannot overwrite one either.
        if !objects::put_if_absent(store.as_ref(), ObjectKind::Lease, &key, lease_bytes(&mut info)).await? {
            return Err(RepoError::Locked {
                addr: addr.clone(),
                detail: format!("lease name {key} is already taken — retry"),
            });
        }
        if let Some(l) = conflict(kind, &live_leases(store.as_ref(), Some(&key)).await?) {
            let err = locked(l);
            store.delete(&key).await?;
            return Err(err);
        }
        let info_created = info.created;
        let refresher = tokio::spawn(refresh(store.clone(), key.clone(), info));
        Ok(Lease {
            store,
            key,
            refresher,
            created: info_created,
        })
    }

    /// When this lease was taken.
    pub fn created(&self) -> DateTime<Utc> {
        self.created
    }

    pub async fn release(self) -> Result<()> {
        self.refresher.abort();
        self.store.delete(&self.key).await?;
        Ok(())
    }
}

async fn refresh(store: Arc<dyn Store>, key: String, mut info: LeaseInfo) {
    loop {
        tokio::time::sleep(LEASE_TTL / 4).await;
        // A failed refresh is retried at the next tick; the lease only lapses if
        // refreshing fails for the whole TTL.
        let _ = objects::put(store.as_ref(), ObjectKind::Lease, &key, lease_bytes(&mut info)).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// Remove stale leases (left by killed processes); returns how many.
pub async fn remove_stale(store: &dyn Store) -> Result<usize> {
    let now = Utc::now();
    let mut removed = 0;
    for meta in store.list(layout::LOCKS).await? {
        let stale = if meta.size > MAX_LEASE {
            true
        } else {
            let Ok(raw) = store.get(&meta.key).await else { continue };
            LeaseInfo::decode(&raw, now).is_none_or(|l| is_stale(&l, now))
        };
        if stale {
            store.delete(&meta.key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

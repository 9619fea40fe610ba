//! Keep the regions of a dataset alike before a backup.
//!
//! A region that was down or dropped from a run misses snapshots, and one that was
//! down while the others applied retention still holds snapshots they forgot. Before
//! the next backup, retention is decided once over the union of the regions'
//! snapshots and carried out in each, then `sync` copies into each region what it
//! still lacks, byte for byte. The backup that follows finds every blob in every
//! caught-up region, so it sends each region only what is new: a lagging region is
//! never caught up by a second backup that would store the same data twice in the
//! others.

use super::retention::{Filter, apply_retention_everywhere};
use crate::engine::fanout::Target;
use crate::engine::sync::sync;
use crate::plan::Dataset;
use chrono::{DateTime, Utc};

/// What catching up did in one region.
#[derive(Debug, Clone, Default)]
pub struct CaughtUp {
    /// Snapshots forgotten by the shared retention decision.
    pub forgotten: usize,
    /// Snapshots copied in from the other regions.
    pub synced: usize,
    /// Why the region could not be brought level; it then sits out the backup.
    pub error: Option<String>,
}

/// Decide retention over every target's snapshots of `ds`, then copy into each
/// target what another holds and it lacks. One entry per target, in order.
pub async fn catch_up(ds: &Dataset, targets: &[Target], now: DateTime<Utc>) -> Vec<CaughtUp> {
    let repos: Vec<_> = targets.iter().map(|t| &t.repo).collect();
    let filter = Filter {
        dataset: Some(ds.name.clone()),
        tag: None,
    };
    let forgotten = apply_retention_everywhere(&repos, &filter, &ds.retention, now).await;
    let mut out = Vec::new();
    for (dst, forgot) in targets.iter().zip(forgotten) {
        let mut row = CaughtUp::default();
        match forgot {
            Ok(kept) => row.forgotten = kept.forgotten,
            Err(e) => row.error = Some(format!("region {}: retention: {e}", dst.name)),
        }
        if row.error.is_none() {
            copy_into(ds, dst, targets, &mut row).await;
        }
        out.push(row);
    }
    out
}

/// Sync `dst` from every other target; the first failure is kept.
async fn copy_into(ds: &Dataset, dst: &Target, targets: &[Target], row: &mut CaughtUp) {
    for src in targets.iter().filter(|s| s.name != dst.name) {
        match sync(&src.repo, &dst.repo, Some(&ds.name)).await {
            Ok(r) => row.synced += r.snapshots,
            Err(e) => {
                row.error = Some(format!("region {}: catching up from {}: {e}", dst.name, src.name));
                return;
            }
        }
    }
}

//! `lifeboat sync --plan`: bring every reachable region of a plan up to date with
//! every other, copying what each lacks byte for byte, and bring up to date the copies
//! the regions keep of each other's audit trails (`trails`).

use super::session::Session;
use super::trails::{CopyRow, review_plan};
use crate::engine::manifest::TrustedKeys;
use crate::engine::sync::{SyncReport, sync};
use crate::format::names::DatasetName;

#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionSync {
    pub region: String,
    pub reachable: bool,
    /// What was copied into this region, and from where.
    pub copied: Vec<(String, SyncReport)>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanSync {
    pub regions: Vec<RegionSync>,
    /// Each region's audit trail against the copies the others keep of it.
    pub trail_copies: Vec<CopyRow>,
    /// Some region was unreachable or a copy failed.
    pub degraded: bool,
}

/// Sync every pair of reachable regions (of `dataset`'s regions, when given); the
/// session is opened with `Regions::Create`, so a missing region starts as a replica.
pub async fn sync_plan(session: &Session<'_>, dataset: Option<&DatasetName>) -> PlanSync {
    let plan = session.plan();
    let names = dataset
        .and_then(|d| plan.datasets.get(d))
        .map(|d| d.regions.clone())
        .unwrap_or_default();
    let regions: Vec<_> = session.selected(&names);
    let mut out = Vec::new();
    for dst in regions.iter().copied() {
        let mut row = RegionSync {
            region: dst.name.to_string(),
            reachable: dst.repo.is_ok(),
            copied: Vec::new(),
            errors: Vec::new(),
        };
        let Ok(dst_repo) = &dst.repo else {
            if let Err(e) = &dst.repo {
                row.errors.push(e.to_string());
            }
            out.push(row);
            continue;
        };
        for src in regions.iter().filter(|s| s.name != dst.name) {
            let Ok(src_repo) = &src.repo else { continue };
            match sync(src_repo, dst_repo, dataset).await {
                Ok(r) if r.snapshots > 0 => row.copied.push((src.name.to_string(), r)),
                Ok(_) => {}
                Err(e) => row.errors.push(format!("from {}: {e}", src.name)),
            }
        }
        out.push(row);
    }
    // Signed checkpoints are `audit verify --plan`'s to check.
    let trails = review_plan(session, &names, None, &TrustedKeys::default()).await;
    PlanSync {
        degraded: trails.degraded() || out.iter().any(|r| !r.reachable || !r.errors.is_empty()),
        regions: out,
        trail_copies: trails.copies,
    }
}

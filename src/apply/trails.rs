//! The audit trails of a plan's regions together: each region's trail read and judged,
//! then compared with the copy every other region keeps of it, lagging copies caught
//! up (`engine::audit::copies`). Used by `lifeboat audit log|verify|export --plan` and
//! by `lifeboat sync --plan`.

use std::path::Path;

use serde::Serialize;

use super::audit::inspect_region;
use super::regions::RegionRepo;
use super::session::Session;
use super::signing::checkpoint_signing;
use crate::engine::audit::copies::{self, CopyCheck, Pair};
use crate::engine::audit::review::{Problem, Trail};
use crate::engine::audit::signed::{self, SignedCheck};
use crate::engine::manifest::TrustedKeys;
use crate::format::names::RegionName;

/// One region's own trail.
#[derive(Debug, Clone, Serialize)]
pub struct RegionEvents {
    pub region: RegionName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail: Option<Trail>,
    /// Why the trail could not be read (the region is unreachable, or has no repository).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the checkpoint could not be remembered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The trail against its newest signed checkpoint, when trusted keys were given; a
    /// problem found there is also among the trail's problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedCheck>,
}

/// One region's trail compared with the copy another region keeps of it.
#[derive(Debug, Clone, Serialize)]
pub struct CopyRow {
    /// The region whose trail is copied.
    pub region: RegionName,
    /// The region keeping the copy.
    pub kept_in: RegionName,
    #[serde(flatten)]
    pub check: CopyCheck,
    /// Why the copy could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every selected region's trail and every copy of it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanTrails {
    pub regions: Vec<RegionEvents>,
    pub copies: Vec<CopyRow>,
}

impl PlanTrails {
    /// Every problem found, each region's own first, then those between trails and copies.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        let own = self
            .regions
            .iter()
            .filter_map(|r| r.trail.as_ref())
            .flat_map(|t| &t.problems);
        own.chain(self.copies.iter().flat_map(|c| &c.check.problems))
    }

    /// Whether some region or copy could not be read or caught up.
    pub fn degraded(&self) -> bool {
        let copies = self
            .copies
            .iter()
            .any(|c| c.error.is_some() || c.check.warning.is_some());
        copies || self.regions.iter().any(|r| r.error.is_some())
    }
}

/// Read and judge the trails of the regions `names` (all when empty), remembering
/// checkpoints in `memory` and checking signed checkpoints against `trusted` (when it
/// holds keys), then check and catch up the copies the regions keep of each other.
pub async fn review_plan(
    session: &Session<'_>,
    names: &[RegionName],
    memory: Option<&Path>,
    trusted: &TrustedKeys,
) -> PlanTrails {
    let mut regions = Vec::new();
    for region in session.selected(names) {
        let mut row = match inspect_region(region, memory).await {
            Ok((trail, warning)) => events(region, Some(trail), None, warning),
            Err(e) => events(region, None, Some(e), None),
        };
        if !trusted.is_empty() {
            check_signed(region, &mut row, trusted).await;
        }
        regions.push(row);
    }
    let copies = check_copies(session, &regions).await;
    PlanTrails { regions, copies }
}

fn events(region: &RegionRepo, trail: Option<Trail>, error: Option<String>, warning: Option<String>) -> RegionEvents {
    RegionEvents {
        region: region.name.clone(),
        trail,
        error,
        warning,
        signed: None,
    }
}

/// Check `row`'s trail against its newest signed checkpoint.
async fn check_signed(region: &RegionRepo, row: &mut RegionEvents, trusted: &TrustedKeys) {
    let (Some(trail), Ok(repo)) = (row.trail.as_mut(), &region.repo) else {
        return;
    };
    match signed::check_signed(repo, &region.name, trail, trusted.keys()).await {
        Ok(check) => {
            if let SignedCheck::Problem(p) = &check {
                trail.problems.push(p.clone());
            }
            row.signed = Some(check);
        }
        Err(e) => row.error = Some(format!("its signed checkpoints could not be read: {e}")),
    }
}

/// Compare each readable trail with the copy each other region keeps of it.
async fn check_copies(session: &Session<'_>, regions: &[RegionEvents]) -> Vec<CopyRow> {
    let mut out = Vec::new();
    for owner in regions {
        let (Some(trail), Ok(owner_repo)) = (&owner.trail, session.repo(&owner.region)) else {
            continue;
        };
        for holder in regions.iter().filter(|h| h.region != owner.region) {
            let Ok(holder_repo) = session.repo(&holder.region) else {
                continue;
            };
            let pair = Pair {
                owner: &owner.region,
                owner_repo,
                holder: &holder.region,
                holder_repo,
            };
            let (check, error) = match copies::check_copy(&pair, trail).await {
                Ok(check) => (check, None),
                Err(e) => (CopyCheck::default(), Some(e.to_string())),
            };
            out.push(CopyRow {
                region: owner.region.clone(),
                kept_in: holder.region.clone(),
                check,
                error,
            });
        }
    }
    out
}

/// After a run: bring every copy the session's opened regions (but those named in
/// `left_out`) keep of each other's trails up to date (`copies::follow`). Returns why a
/// copy could not be, per copy.
pub async fn follow_all(session: &Session<'_>, left_out: &[&str]) -> Vec<String> {
    let taking_part = session
        .regions()
        .iter()
        .filter(|r| !left_out.contains(&r.name.as_str()));
    let opened: Vec<_> = taking_part
        .filter_map(|r| Some((&r.name, r.repo.as_ref().ok()?)))
        .collect();
    let mut warnings = Vec::new();
    for &(owner, owner_repo) in &opened {
        for &(holder, holder_repo) in opened.iter().filter(|h| h.0 != owner) {
            let pair = Pair {
                owner,
                owner_repo,
                holder,
                holder_repo,
            };
            warnings.extend(copies::follow(&pair).await.1);
        }
    }
    warnings
}

/// After a run: sign the trail head of every opened region (but those in `left_out`)
/// with the plan's signing key, when it has one. Returns why a head was not signed.
pub async fn sign_heads(session: &Session<'_>, left_out: &[&str]) -> Vec<String> {
    let signing = match checkpoint_signing(session.plan()) {
        Ok(Some(signing)) => signing,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![format!("audit checkpoints were not signed: {e}")],
    };
    let mut warnings = Vec::new();
    for region in session
        .regions()
        .iter()
        .filter(|r| !left_out.contains(&r.name.as_str()))
    {
        let Ok(repo) = &region.repo else { continue };
        if let Err(e) = signed::sign_head(repo, &region.name, &signing.key).await {
            warnings.push(format!(
                "region {}: its audit checkpoint was not signed: {e}",
                region.name
            ));
        }
    }
    warnings
}

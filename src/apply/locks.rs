//! Stale leases in a plan's regions: objects under `locks/` that no holder keeps
//! (expired, from a process on this host that is gone, or unreadable). A killed backup
//! leaves one behind; nothing breaks (takers ignore stale leases), but they pile up
//! unseen. `lifeboat plan` and the daemon's status list them, and the daemon removes
//! those whose holder is provably gone — a process on this host that no longer exists.
//! An expired lease from another host may belong to a live process whose refreshes
//! fail, so it is reported and never removed unattended (`lifeboat unlock` does that
//! when a person says so).

use super::session::Session;

/// One reachable region's stale leases.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleLocks {
    pub region: String,
    /// Leases removed now because their holder was provably gone.
    pub removed: usize,
    /// The stale leases left, one line each (key, holder, expiry).
    pub stale: Vec<String>,
}

/// The stale leases of every region that opens and can be listed; removes nothing.
pub async fn stale(session: &Session<'_>) -> Vec<StaleLocks> {
    collect(session, false).await
}

/// Remove the leases whose holder is provably gone, then list the stale ones left.
pub async fn tidy(session: &Session<'_>) -> Vec<StaleLocks> {
    collect(session, true).await
}

async fn collect(session: &Session<'_>, remove: bool) -> Vec<StaleLocks> {
    let mut out = Vec::new();
    for r in session.regions() {
        let Ok(repo) = &r.repo else { continue };
        let removed = if remove {
            repo.remove_abandoned_leases().await.unwrap_or(0)
        } else {
            0
        };
        let Ok(stale) = repo.stale_leases().await else { continue };
        out.push(StaleLocks {
            region: r.name.to_string(),
            removed,
            stale: stale.iter().map(ToString::to_string).collect(),
        });
    }
    out
}

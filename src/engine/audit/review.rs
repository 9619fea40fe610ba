//! Reading a repository's audit trail back and judging it: is the chain whole, and do
//! the repository's snapshots agree with what the trail says was written and forgotten?
//!
//! A gap in positions is a missing event, a segment that does not open is an altered
//! one, and a segment whose first event is not where its name says, or does not name
//! the hash of the event before it, is out of order. A snapshot the trail says was
//! written and never forgotten but is gone was deleted outside Lifeboat; one the trail
//! says was forgotten but is present was replayed; one taken after the trail began that
//! no event wrote is unaccounted for (put there behind Lifeboat's back, or left by a
//! writer that died before its event).

use std::collections::{BTreeMap, HashSet};

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::super::Result;
use crate::format::audit::{Checkpoint, Event, Segment};
use crate::format::ids::{ChainHash, SnapshotId};
use crate::repo::audit::TrailOf;
use crate::repo::{Repository, Result as RepoResult};

/// Segments read at once.
const READS: usize = 16;

/// What is wrong with a trail, or between a trail and the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    Missing,
    Altered,
    Reordered,
    Foreign,
    RolledBack,
    Forked,
    /// A trail and the copy another region keeps of it differ.
    Diverged,
    /// A signed checkpoint whose signature no trusted key verifies.
    Untrusted,
    DeletedOutside,
    Replayed,
    /// A snapshot no event wrote.
    Unaccounted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The first event concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotId>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A trail as read: every event that could be read, in order, and what is wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Trail {
    pub repository: String,
    pub events: Vec<Event>,
    /// Where the last readable segment leaves the chain.
    pub checkpoint: Checkpoint,
    pub problems: Vec<Problem>,
    /// False after a segment that could not be read: the next one's link is unknown.
    #[serde(skip)]
    linked: bool,
}

impl Trail {
    /// The chain hash after its first `size` events, when the trail holds it.
    pub fn hash_at(&self, size: u64) -> Option<ChainHash> {
        if size == self.checkpoint.size {
            return Some(self.checkpoint.head);
        }
        self.events.iter().find(|e| e.seq == size).map(|e| e.prev)
    }

    /// Whether the chain was read whole, with nothing missing, altered or reordered.
    pub fn is_whole(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, kind: ProblemKind, event: Option<u64>, message: String) {
        self.problems.push(Problem {
            kind,
            event,
            snapshot: None,
            message,
        });
    }
}

/// Read every segment of `repo`'s trail and check the chain.
pub async fn read(repo: &Repository) -> Result<Trail> {
    read_of(repo, &TrailOf::Own).await
}

/// Read every segment of the trail `which` of `repo` and check the chain.
pub async fn read_of(repo: &Repository, which: &TrailOf) -> Result<Trail> {
    let listing = repo.audit_listing_of(which).await?;
    let repository = match which {
        TrailOf::Own => repo.address().to_string(),
        TrailOf::CopyOf(region) => format!("{} (its copy of region {region}'s trail)", repo.address()),
    };
    let mut trail = Trail {
        repository,
        events: Vec::new(),
        checkpoint: Checkpoint::GENESIS,
        problems: Vec::new(),
        linked: true,
    };
    for key in listing.foreign {
        let message = format!("{}/{key} is not an audit segment any writer names", repo.address());
        trail.problem(ProblemKind::Foreign, None, message);
    }
    let loaded: Vec<(u64, RepoResult<Segment>)> = stream::iter(listing.segments)
        .map(|(seq, size)| async move { (seq, repo.load_audit_segment_of(which, seq, Some(size)).await) })
        .buffered(READS)
        .collect()
        .await;
    let address = trail.repository.clone();
    for (seq, segment) in loaded {
        take_segment(&address, &mut trail, seq, segment)?;
    }
    Ok(trail)
}

fn take_segment(address: &str, trail: &mut Trail, seq: u64, loaded: RepoResult<Segment>) -> Result<()> {
    let at = trail.checkpoint;
    if seq > at.size {
        let message = format!("audit events {} to {} are missing from {address}", at.size, seq - 1);
        trail.problem(ProblemKind::Missing, Some(at.size), message);
    }
    let segment = match loaded {
        Ok(segment) => segment,
        Err(e) if e.is_damage() => {
            let message = format!("audit event {seq} was altered: {e}");
            trail.problem(ProblemKind::Altered, Some(seq), message);
            // Counted as one event (every writer writes one per segment).
            trail.checkpoint.size = trail.checkpoint.size.max(seq + 1);
            trail.linked = false;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let start = segment.start();
    if start.size != seq {
        let message = format!(
            "audit segment {seq} in {address} holds event {}: the trail was reordered",
            start.size
        );
        trail.problem(ProblemKind::Reordered, Some(seq), message);
    } else if seq < at.size || (seq == at.size && trail.linked && start.head != at.head) {
        let message = format!(
            "audit event {seq} in {address} does not follow event {}: the trail was reordered or rewritten",
            seq.saturating_sub(1)
        );
        trail.problem(ProblemKind::Reordered, Some(seq), message);
    }
    trail.events.extend(segment.events);
    trail.checkpoint = segment.checkpoint;
    trail.linked = true;
    Ok(())
}

/// The last event that wrote or removed one snapshot, and which of the two it did.
struct Fate<'a> {
    event: &'a Event,
    removed: bool,
}

/// Compare the snapshots present in `repo` with what `trail` records: the last event
/// naming a snapshot decides whether it should be there.
pub async fn snapshot_problems(repo: &Repository, trail: &Trail) -> Result<Vec<Problem>> {
    let present: HashSet<SnapshotId> = repo.snapshot_ids().await?.into_iter().collect();
    let mut fates: BTreeMap<SnapshotId, Fate> = BTreeMap::new();
    for event in &trail.events {
        for id in &event.record.written {
            fates.insert(*id, Fate { event, removed: false });
        }
        for id in &event.record.removed {
            fates.insert(*id, Fate { event, removed: true });
        }
    }
    let mut out = Vec::new();
    for (id, fate) in &fates {
        out.extend(judge(repo.address(), id, fate, present.contains(id)));
    }
    out.sort_by_key(|p| p.event);
    let mut unnamed: Vec<&SnapshotId> = present.iter().filter(|id| !fates.contains_key(id)).collect();
    unnamed.sort_unstable();
    out.extend(unaccounted(repo, trail, unnamed.into_iter()).await);
    Ok(out)
}

/// The snapshots among `unnamed` (present, named by no event) taken after the trail's
/// first event; older ones predate the trail (a repository created before audit
/// trails). A snapshot that cannot be read is left to `check`.
async fn unaccounted<'a>(
    repo: &Repository,
    trail: &Trail,
    unnamed: impl Iterator<Item = &'a SnapshotId>,
) -> Vec<Problem> {
    let Some(began) = trail.events.first().map(|e| e.record.time) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for id in unnamed {
        let Ok(snapshot) = repo.load_snapshot(id).await else {
            continue;
        };
        if snapshot.time >= began {
            out.push(Problem {
                kind: ProblemKind::Unaccounted,
                event: None,
                snapshot: Some(*id),
                message: format!(
                    "snapshot {id} in {} is unaccounted for: taken at {}, and no audit event wrote it",
                    repo.address(),
                    snapshot.time.format("%Y-%m-%d %H:%M:%S")
                ),
            });
        }
    }
    out
}

fn judge(address: &str, id: &SnapshotId, fate: &Fate, present: bool) -> Option<Problem> {
    let e = fate.event;
    let when = e.record.time.format("%Y-%m-%d %H:%M:%S");
    let (kind, message) = match (fate.removed, present) {
        (false, false) => (
            ProblemKind::DeletedOutside,
            format!(
                "snapshot {id} in {address} was deleted outside Lifeboat: written by {} at {when} (audit event {}) and never forgotten",
                e.record.actor, e.seq
            ),
        ),
        (true, true) => (
            ProblemKind::Replayed,
            format!(
                "snapshot {id} in {address} was replayed: forgotten by {} at {when} (audit event {}) but present again",
                e.record.actor, e.seq
            ),
        ),
        _ => return None,
    };
    Some(Problem {
        kind,
        event: Some(e.seq),
        snapshot: Some(*id),
        message,
    })
}

//! Each region of a plan keeps a copy of every other region's trail, and a region's
//! trail is checked against those copies.
//!
//! A region's trail records what was done to that region (a verification of one
//! region, a restore from it), so the trails of two regions differ by design and
//! cannot be compared with each other. What can be compared is a trail with the copy
//! another region keeps of it: segments are copied byte for byte, create-only, so a
//! copy is always a prefix of the trail it copies. A copy that is shorter is lagging
//! and is caught up; a trail shorter than a copy of it was rolled back or cut; an
//! event whose chain hash differs between the trail and a copy was rewritten in one of
//! the two. Either is tampering, and neither side is copied over the other: someone
//! with write access to one region's storage can no longer rewrite its history alone.

use std::collections::BTreeMap;

use serde::Serialize;

use super::super::Result;
use super::review::{self, Problem, ProblemKind, Trail};
use crate::format::ids::ChainHash;
use crate::format::names::RegionName;
use crate::repo::Repository;
use crate::repo::audit::TrailOf;

/// A region (the owner) and another region (the holder) that keeps a copy of its trail.
pub struct Pair<'a> {
    pub owner: &'a RegionName,
    pub owner_repo: &'a Repository,
    pub holder: &'a RegionName,
    pub holder_repo: &'a Repository,
}

/// How a copy compared with its trail, and what catching it up did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyCheck {
    /// Events in the owner's trail.
    pub events: u64,
    /// Events in the holder's copy before it was caught up.
    pub copied_before: u64,
    /// Segments copied into the holder's copy now.
    pub caught_up: usize,
    /// Tampering found: in the copy itself, or between the trail and the copy.
    pub problems: Vec<Problem>,
    /// Why catching up stopped before the copy was level (a write refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Compare the owner's `trail` (as `review::read` found it) with the holder's copy of
/// it, and bring a lagging copy level.
pub async fn check_copy(pair: &Pair<'_>, trail: &Trail) -> Result<CopyCheck> {
    let which = TrailOf::CopyOf(pair.owner.clone());
    let copy = review::read_of(pair.holder_repo, &which).await?;
    let mut check = CopyCheck {
        events: trail.checkpoint.size,
        copied_before: copy.checkpoint.size,
        problems: copy.problems.clone(),
        ..CopyCheck::default()
    };
    if let Some(problem) = compare(pair, trail, &copy) {
        check.problems.push(problem);
        return Ok(check);
    }
    if copy.checkpoint.size < trail.checkpoint.size {
        let until = trail.problems.iter().filter_map(|p| p.event).min();
        let (caught_up, warning) = catch_up(pair, copy.checkpoint.size, until).await;
        check.caught_up = caught_up;
        check.warning = warning;
    }
    Ok(check)
}

/// Bring the holder's copy up to date from the listings and the copy's last segment
/// alone, without reading either trail whole or comparing them (`check_copy` does):
/// what a backup run does when it is done, at one read per segment it copies.
pub async fn follow(pair: &Pair<'_>) -> (usize, Option<String>) {
    let which = TrailOf::CopyOf(pair.owner.clone());
    let last = match pair.holder_repo.audit_listing_of(&which).await {
        Ok(listing) => listing.segments.last().copied(),
        Err(e) => return (0, Some(stopped(pair, &e))),
    };
    let from = match last {
        None => 0,
        Some((seq, size)) => match pair.holder_repo.load_audit_segment_of(&which, seq, Some(size)).await {
            Ok(segment) => segment.checkpoint.size,
            Err(e) => return (0, Some(stopped(pair, &e))),
        },
    };
    catch_up(pair, from, None).await
}

/// Copy the owner's segments from position `from` into the holder's copy, in order,
/// stopping at a gap, at `until` (the owner's first damaged event) or at the first
/// refusal. Returns the segments written and why it stopped early, if it did.
pub async fn catch_up(pair: &Pair<'_>, from: u64, until: Option<u64>) -> (usize, Option<String>) {
    let listing = match pair.owner_repo.audit_listing().await {
        Ok(l) => l,
        Err(e) => return (0, Some(stopped(pair, &e))),
    };
    let mut next = from;
    let mut written = 0;
    for (seq, _) in listing.segments.into_iter().filter(|s| s.0 >= from) {
        if seq != next || until.is_some_and(|u| seq >= u) {
            break;
        }
        match pair
            .owner_repo
            .copy_audit_segment_to(pair.holder_repo, seq, pair.owner)
            .await
        {
            Ok((fresh, after)) => {
                written += usize::from(fresh);
                next = after;
            }
            Err(e) => return (written, Some(stopped(pair, &e))),
        }
    }
    (written, None)
}

fn stopped(pair: &Pair<'_>, e: &dyn std::fmt::Display) -> String {
    format!(
        "region {}'s copy of region {}'s audit trail could not be brought up to date: {e} — run `lifeboat sync --plan` again when the region is reachable",
        pair.holder, pair.owner
    )
}

/// Tampering between the owner's trail and the holder's copy, if any: an event whose
/// hash differs, or a trail shorter than its copy.
fn compare(pair: &Pair<'_>, trail: &Trail, copy: &Trail) -> Option<Problem> {
    let (owner, holder) = (pair.owner, pair.holder);
    if let Some(seq) = first_difference(trail, copy) {
        let message = format!(
            "audit event {seq} of region {owner} differs from the copy region {holder} keeps of it: one of the two trails was rewritten (tampered)"
        );
        return Some(problem(ProblemKind::Diverged, seq, message));
    }
    (copy.checkpoint.size > trail.checkpoint.size).then(|| {
        let message = format!(
            "the audit trail of region {owner} holds {} events, but region {holder} keeps a copy of {}: region {owner}'s trail was rolled back or cut (tampered) from event {}",
            trail.checkpoint.size, copy.checkpoint.size, trail.checkpoint.size
        );
        problem(ProblemKind::RolledBack, trail.checkpoint.size, message)
    })
}

fn problem(kind: ProblemKind, seq: u64, message: String) -> Problem {
    Problem {
        kind,
        event: Some(seq),
        snapshot: None,
        message,
    }
}

/// The first event whose chain hash both trails hold and differ on.
fn first_difference(a: &Trail, b: &Trail) -> Option<u64> {
    let theirs = hashes(b);
    hashes(a)
        .into_iter()
        .filter(|(size, _)| *size > 0)
        .find(|(size, hash)| theirs.get(size).is_some_and(|t| t != hash))
        .map(|(size, _)| size - 1)
}

/// The chain hash after each number of events that `trail` knows.
fn hashes(trail: &Trail) -> BTreeMap<u64, ChainHash> {
    let after_each = trail.events.iter().map(|e| (e.seq, e.prev));
    // After an unreadable last segment the checkpoint's hash is not that of its size.
    let readable = trail.events.last().is_none_or(|e| e.seq + 1 == trail.checkpoint.size);
    let head = readable.then_some((trail.checkpoint.size, trail.checkpoint.head));
    after_each.chain(head).collect()
}

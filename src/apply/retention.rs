//! Apply a retention policy to a repository's snapshots, or to the union of several
//! regions' snapshots (so every region keeps the same ones).
//!
//! Snapshots are grouped by dataset, host and paths (the same source backed up
//! over time) and the policy decides within each group, so one dataset's history
//! never pushes out another's.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::Result;
use super::anomaly::{Held, held_open};
use crate::engine::forget::forget;
use crate::format::names::{DatasetName, Tag};
use crate::plan::{Decision, Retention, SnapInfo};
use crate::repo::Repository;
use crate::repo::Snapshot;
use crate::repo::SnapshotId;

/// Which snapshots a retention run looks at.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub dataset: Option<DatasetName>,
    pub tag: Option<Tag>,
}

/// One snapshot's verdict, with its group and time for display.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    pub id: SnapshotId,
    pub time: DateTime<Utc>,
    pub group: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

fn group_of(s: &Snapshot) -> String {
    let ds = s.dataset.as_ref().map_or("-".to_string(), |d| d.to_string());
    format!("{ds} {} {}", s.host, s.paths.join(","))
}

fn selected(f: &Filter, s: &Snapshot) -> bool {
    f.dataset.as_ref().is_none_or(|d| s.dataset.as_ref() == Some(d))
        && f.tag.as_ref().is_none_or(|t| s.tags.contains(t))
}

/// Decide for every selected snapshot and, unless `dry_run`, forget those not kept.
pub async fn apply_retention(
    repo: &Repository,
    filter: &Filter,
    policy: &Retention,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Vec<Verdict>> {
    let snaps = repo.snapshots().await?;
    let held = held_open(&[repo], &snaps).await;
    let verdicts = keep_held(decide(snaps, filter, policy, now), &held.snapshots);
    if !dry_run {
        let gone: Vec<SnapshotId> = verdicts.iter().filter(|v| !v.keep).map(|v| v.id).collect();
        forget(repo, &gone).await?;
    }
    Ok(verdicts)
}

/// Retention decided once over the union of several regions' snapshots and carried
/// out in each: every region forgets the same snapshots, so regions never keep
/// different histories, and a region that missed a run (or was down while the others
/// forgot) gets the same decisions when it is reached again. Returns, per region in
/// `repos` order, what it forgot and which selected snapshots open anomalies pin in it,
/// or why it could not.
pub async fn apply_retention_everywhere(
    repos: &[&Repository],
    filter: &Filter,
    policy: &Retention,
    now: DateTime<Utc>,
) -> Vec<Result<Retained>> {
    let mut held = Vec::new();
    let mut union: BTreeMap<SnapshotId, Snapshot> = BTreeMap::new();
    for repo in repos {
        let listed = repo.snapshots().await;
        if let Ok(snaps) = &listed {
            union.extend(snaps.iter().cloned());
        }
        held.push(listed.map(|s| s.into_iter().map(|(id, _)| id).collect::<HashSet<_>>()));
    }
    let union: Vec<(SnapshotId, Snapshot)> = union.into_iter().collect();
    let open = held_open(repos, &union).await;
    let pinned = pinned_by_selected(&open, &union, filter);
    let gone: HashSet<SnapshotId> = keep_held(decide(union, filter, policy, now), &open.snapshots)
        .into_iter()
        .filter(|v| !v.keep)
        .map(|v| v.id)
        .collect();
    let mut out = Vec::new();
    for (repo, held) in repos.iter().zip(held) {
        out.push(match held {
            Ok(held) => forget_held(repo, &held, &gone).await.map(|forgotten| Retained {
                forgotten,
                pinned: pinned.iter().filter(|p| held.contains(p)).copied().collect(),
            }),
            Err(e) => Err(e.into()),
        });
    }
    out
}

/// What retention did in one region.
#[derive(Debug, Clone, Default)]
pub struct Retained {
    /// Snapshots forgotten.
    pub forgotten: usize,
    /// Snapshots the region holds that open anomalies of the selected snapshots pin.
    pub pinned: Vec<SnapshotId>,
}

/// The snapshots pinned by open anomalies whose suspect snapshot `filter` selects.
fn pinned_by_selected(open: &Held, snaps: &[(SnapshotId, Snapshot)], filter: &Filter) -> Vec<SnapshotId> {
    let selected_ids: HashSet<SnapshotId> = snaps
        .iter()
        .filter(|(_, s)| selected(filter, s))
        .map(|(id, _)| *id)
        .collect();
    let pins: std::collections::BTreeSet<SnapshotId> = (open.pins.iter())
        .filter(|(suspect, _)| selected_ids.contains(suspect))
        .map(|(_, pin)| *pin)
        .collect();
    pins.into_iter().collect()
}

async fn forget_held(repo: &Repository, held: &HashSet<SnapshotId>, gone: &HashSet<SnapshotId>) -> Result<usize> {
    let mine: Vec<SnapshotId> = gone.intersection(held).copied().collect();
    Ok(forget(repo, &mine).await?)
}

/// Keep what an open anomaly holds (the suspect snapshot and the one before it),
/// whatever the policy decided.
fn keep_held(mut verdicts: Vec<Verdict>, held: &HashSet<SnapshotId>) -> Vec<Verdict> {
    for v in verdicts.iter_mut().filter(|v| held.contains(&v.id)) {
        if !v.keep {
            v.keep = true;
            v.reasons.push("held by an open anomaly".into());
        }
    }
    verdicts
}

/// The policy's verdict on every selected snapshot, within its group.
fn decide(snaps: Vec<(SnapshotId, Snapshot)>, filter: &Filter, policy: &Retention, now: DateTime<Utc>) -> Vec<Verdict> {
    let mut groups: BTreeMap<String, Vec<(SnapshotId, Snapshot)>> = BTreeMap::new();
    for (id, s) in snaps {
        if selected(filter, &s) {
            groups.entry(group_of(&s)).or_default().push((id, s));
        }
    }
    let mut verdicts = Vec::new();
    for (group, snaps) in groups {
        verdicts.extend(decide_group(&group, snaps, policy, now));
    }
    verdicts
}

fn decide_group(
    group: &str,
    snaps: Vec<(SnapshotId, Snapshot)>,
    policy: &Retention,
    now: DateTime<Utc>,
) -> Vec<Verdict> {
    let infos: Vec<SnapInfo> = snaps
        .iter()
        .map(|(id, s)| SnapInfo {
            id: id.to_hex(),
            time: s.time,
            tags: s.tags.iter().map(|t| t.to_string()).collect(),
        })
        .collect();
    let decisions: BTreeMap<String, Decision> = policy
        .decide(&infos, now)
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();
    snaps
        .into_iter()
        .map(|(id, s)| {
            let d = decisions.get(&id.to_hex());
            Verdict {
                id,
                time: s.time,
                group: group.to_string(),
                keep: d.is_none_or(|d| d.keep),
                reasons: d.map(|d| d.reasons.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

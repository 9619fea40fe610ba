//! Apply a retention policy to a repository's snapshots.
//!
//! Snapshots are grouped by dataset, host and paths (the same source backed up
//! over time) and the policy decides within each group, so one dataset's history
//! never pushes out another's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Result;
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
    let mut groups: BTreeMap<String, Vec<(SnapshotId, Snapshot)>> = BTreeMap::new();
    for (id, s) in repo.snapshots().await? {
        if selected(filter, &s) {
            groups.entry(group_of(&s)).or_default().push((id, s));
        }
    }
    let mut verdicts = Vec::new();
    for (group, snaps) in groups {
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
        for (id, s) in snaps {
            let d = decisions.get(&id.to_hex());
            verdicts.push(Verdict {
                id,
                time: s.time,
                group: group.clone(),
                keep: d.is_none_or(|d| d.keep),
                reasons: d.map(|d| d.reasons.clone()).unwrap_or_default(),
            });
        }
    }
    if !dry_run {
        let gone: Vec<SnapshotId> = verdicts.iter().filter(|v| !v.keep).map(|v| v.id).collect();
        forget(repo, &gone).await?;
    }
    Ok(verdicts)
}

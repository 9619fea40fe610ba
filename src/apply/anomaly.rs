//! Suspect snapshots of a plan (`lifeboat anomalies`), closing one (`ack`), and the
//! snapshots open anomalies pin against retention.
//!
//! Nothing here is stored apart from what every region already carries: a snapshot's
//! verdict is in its own summary (written by the backup that judged it), and an
//! acknowledgement is an `anomaly-ack` event in each region's audit trail, which also
//! names who closed it. An anomaly is open until some region's trail holds its
//! acknowledgement, so a region that was down during `ack` cannot reopen it, and
//! one that was down during the backup cannot hide it.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::alerts::{Alert, fire};
use super::session::Session;
use super::{ApplyError, Result};
use crate::engine::audit::{self, AnomalyAck};
use crate::engine::pinned_lock::{PinReport, keep_pins_locked, pins_not_extended};
use crate::format::names::DatasetName;
use crate::plan::{Dataset, Plan};
use crate::repo::{Repository, Snapshot, SnapshotId, Verdict};

/// One suspect snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Anomaly {
    /// The suspect snapshot; also the anomaly's id.
    pub id: SnapshotId,
    pub dataset: String,
    pub time: DateTime<Utc>,
    pub score: f64,
    /// The share that stood out most.
    pub signal: String,
    /// The last snapshot before the anomaly, kept while it is open.
    pub pinned: Option<SnapshotId>,
    /// Regions holding the suspect snapshot.
    pub regions: Vec<String>,
    /// Who closed it and when, if someone did.
    pub acked: Option<Ack>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Ack {
    pub by: String,
    pub time: DateTime<Utc>,
}

/// The plan's anomalies, oldest first, and the regions that could not be read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Anomalies {
    pub anomalies: Vec<Anomaly>,
    pub unreadable: Vec<String>,
}

impl Anomalies {
    pub fn open(&self) -> impl Iterator<Item = &Anomaly> {
        self.anomalies.iter().filter(|a| a.acked.is_none())
    }
}

/// Every suspect snapshot in the plan's regions (of `dataset` only, if given).
pub async fn list(session: &Session<'_>, dataset: Option<&DatasetName>) -> Anomalies {
    let mut found: BTreeMap<SnapshotId, Anomaly> = BTreeMap::new();
    let mut out = Anomalies::default();
    let mut readable = Vec::new();
    for region in session.regions() {
        let read = match &region.repo {
            Ok(repo) => repo.snapshots().await.map(|s| (repo, s)).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match read {
            Ok((repo, snaps)) => {
                collect(&mut found, region.name.as_str(), snaps, dataset);
                readable.push(repo);
            }
            Err(e) => out.unreadable.push(format!("region {}: {e}", region.name)),
        }
    }
    if !found.is_empty() {
        let acks = acks_in(&readable, &mut out.unreadable).await;
        for (id, a) in found.iter_mut() {
            a.acked = acks.get(id).cloned();
        }
    }
    out.anomalies = found.into_values().collect();
    out.anomalies.sort_by_key(|a| a.time);
    out
}

fn collect(
    found: &mut BTreeMap<SnapshotId, Anomaly>,
    region: &str,
    snaps: Vec<(SnapshotId, Snapshot)>,
    dataset: Option<&DatasetName>,
) {
    let wanted = |s: &Snapshot| dataset.is_none_or(|d| s.dataset.as_ref() == Some(d));
    for (id, s) in snaps.iter().filter(|(_, s)| wanted(s)) {
        let Some(verdict) = s.summary.anomaly.as_ref().filter(|v| v.suspect) else {
            continue;
        };
        let entry = found.entry(*id).or_insert_with(|| Anomaly {
            id: *id,
            dataset: s.dataset.as_ref().map_or_else(String::new, |d| d.to_string()),
            time: s.time,
            score: verdict.score,
            signal: verdict.signal.clone(),
            pinned: verdict.pinned,
            regions: Vec::new(),
            acked: None,
        });
        entry.regions.push(region.to_string());
    }
}

/// Acknowledgements found in any of `repos`' audit trails, by snapshot.
pub async fn acks_in(repos: &[&Repository], problems: &mut Vec<String>) -> BTreeMap<SnapshotId, Ack> {
    let mut acks = BTreeMap::new();
    for repo in repos {
        match audit::anomaly_acks(repo).await {
            Ok(found) => acks.extend(found.into_iter().map(|a| {
                (
                    a.snapshot,
                    Ack {
                        by: a.actor,
                        time: a.time,
                    },
                )
            })),
            Err(e) => problems.push(format!("audit trail of {}: {e}", repo.address())),
        }
    }
    acks
}

/// A snapshot a backup just judged suspect, and the regions that stored it.
pub struct Suspect<'a> {
    pub id: SnapshotId,
    pub verdict: &'a Verdict,
    pub regions: Vec<&'a str>,
}

/// Tell the plan's alert hooks that a backup of `ds` was judged suspect; returns one
/// line per alert that could not be delivered.
pub async fn alert(plan: &Plan, ds: &Dataset, suspect: &Suspect<'_>) -> Vec<String> {
    let alert = Alert {
        kind: "anomaly".into(),
        plan: plan
            .file
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        dataset: ds.name.to_string(),
        region: suspect.regions.join(","),
        message: describe(&suspect.id, suspect.verdict),
    };
    fire(&plan.alerts, &alert).await
}

fn describe(id: &SnapshotId, v: &Verdict) -> String {
    let pin = v.pinned.map_or_else(
        || "no earlier snapshot to pin".to_string(),
        |p| {
            format!(
                "snapshot {} before it is kept until the anomaly is acknowledged",
                p.short()
            )
        },
    );
    format!(
        "snapshot {} is suspect: anomaly score {:.1} from `{}` against {} earlier backups; {pin} — inspect it, then `lifeboat anomalies ack {}`",
        id.short(),
        v.score,
        v.signal,
        v.history,
        id.short()
    )
}

/// What `ack` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Acked {
    pub anomaly: Anomaly,
    /// Regions whose audit trail now records the acknowledgement.
    pub recorded: Vec<String>,
    /// Regions that could not record it, and why.
    pub failed: Vec<String>,
}

/// Close the anomaly of snapshot `id` (its full id or a unique prefix): an
/// `anomaly-ack` event naming the current actor, in every region that can be reached.
pub async fn ack(session: &Session<'_>, id: &str) -> Result<Acked> {
    let listed = list(session, None).await;
    let anomaly = pick(&listed, id, session)?;
    let mut done = Acked {
        anomaly: anomaly.clone(),
        recorded: Vec::new(),
        failed: listed.unreadable.clone(),
    };
    let ack = AnomalyAck {
        snapshot: anomaly.id,
        actor: audit::actor(),
        time: Utc::now(),
    };
    for region in session.regions() {
        let Ok(repo) = &region.repo else { continue };
        match audit::record_anomaly_ack(repo, &ack, &anomaly.dataset).await {
            Ok(_) => done.recorded.push(region.name.to_string()),
            Err(e) => done.failed.push(format!("region {}: {e}", region.name)),
        }
    }
    if done.recorded.is_empty() {
        return Err(ApplyError::BadInput(format!(
            "no region of plan {} could record the acknowledgement of {} — {}",
            session.plan().file.display(),
            anomaly.id.short(),
            done.failed.join("; ")
        )));
    }
    Ok(done)
}

fn pick<'a>(listed: &'a Anomalies, id: &str, session: &Session<'_>) -> Result<&'a Anomaly> {
    let lower = id.to_ascii_lowercase();
    let matching: Vec<&Anomaly> = listed
        .anomalies
        .iter()
        .filter(|a| !lower.is_empty() && a.id.to_hex().starts_with(&lower))
        .collect();
    let plan = session.plan().file.display();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(ApplyError::BadInput(format!(
            "plan {plan} has no anomaly {id} — `lifeboat anomalies --plan {plan}` lists them"
        ))),
        _ => Err(ApplyError::BadInput(format!(
            "{id} names {} anomalies of plan {plan} — give more of the id",
            matching.len()
        ))),
    }
}

/// What the open anomalies among some snapshots hold.
#[derive(Debug, Default)]
pub struct Held {
    /// Each open anomaly's suspect snapshot (the evidence) and the snapshot it pins.
    pub snapshots: HashSet<SnapshotId>,
    /// Each open anomaly as (suspect, pinned snapshot).
    pub pins: Vec<(SnapshotId, SnapshotId)>,
}

/// The snapshots open anomalies among `snaps` hold, given the trails of `repos`: each
/// suspect snapshot and the snapshot it pins (the last one before it). Retention keeps
/// them whatever its policy says, and Object Lock regions keep the pinned ones locked.
/// A trail that cannot be read holds no acknowledgement: keeping too much is the safe
/// side.
pub async fn held_open(repos: &[&Repository], snaps: &[(SnapshotId, Snapshot)]) -> Held {
    let suspects: Vec<(SnapshotId, Option<SnapshotId>)> = snaps
        .iter()
        .filter_map(|(id, s)| Some((*id, s.summary.anomaly.as_ref().filter(|a| a.suspect)?.pinned)))
        .collect();
    if suspects.is_empty() {
        return Held::default();
    }
    let acks = acks_in(repos, &mut Vec::new()).await;
    let open = suspects.into_iter().filter(|(suspect, _)| !acks.contains_key(suspect));
    let mut held = Held::default();
    for (suspect, pin) in open {
        held.snapshots.extend(std::iter::once(suspect).chain(pin));
        held.pins.extend(pin.map(|p| (suspect, p)));
    }
    held
}

/// Keep the snapshots in `pins` locked in `repo` (an Object Lock region; otherwise
/// nothing happens): what was extended until when, or why it could not be.
pub async fn lock_pins(repo: &Repository, pins: &[SnapshotId]) -> std::result::Result<Option<PinReport>, String> {
    keep_pins_locked(repo, pins, Utc::now())
        .await
        .map_err(|e| pins_not_extended(e).to_string())
}

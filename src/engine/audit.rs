//! Appending to a repository's audit trail: who did what, to which snapshots, and how
//! it ended — one segment per operation.
//!
//! Operations call [`append`] (or [`note`] for read-only ones, whose event must not
//! turn a successful restore into a failure on read-only credentials). The actor is
//! the process's `user@host`, unless the caller runs the work inside [`as_actor`]
//! (the daemon does, naming the API subject that asked for it). Appending is
//! optimistic: read the head, write the next position create-only, and on losing that
//! race read the new head and try again; the chain never forks.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::{EngineError, Result};
use crate::format::audit::{Action, Checkpoint, Outcome, Record};
use crate::format::ids::SnapshotId;
use crate::repo::Repository;

pub mod copies;
pub mod memory;
pub mod review;
pub mod signed;

/// How often a writer tries to append before giving up to other writers.
const APPEND_TRIES: u32 = 16;

tokio::task_local! {
    static ACTOR: String;
}

/// Run `work` with every event it appends naming `actor`.
pub async fn as_actor<F: Future>(actor: String, work: F) -> F::Output {
    ACTOR.scope(actor, work).await
}

/// Who events appended now name: the scope's actor, or this process's `user@host`.
pub fn actor() -> String {
    ACTOR.try_with(Clone::clone).unwrap_or_else(|_| local_user())
}

fn local_user() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| format!("uid{}", rustix::process::getuid().as_raw()));
    format!("{user}@{}", crate::repo::hostname())
}

/// A successful event of `action` by the current actor, now; callers fill in the rest
/// with struct update syntax.
pub fn event(action: Action) -> Record {
    Record {
        time: Utc::now(),
        actor: actor(),
        action,
        written: Vec::new(),
        removed: Vec::new(),
        objects: Vec::new(),
        detail: String::new(),
        outcome: Outcome::Ok,
    }
}

/// The outcome an operation's result stands for.
pub fn outcome_of<T>(result: &Result<T>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(EngineError::Damage { .. }) => Outcome::Damage,
        Err(EngineError::Repo(e)) if e.is_damage() => Outcome::Damage,
        Err(_) => Outcome::Failed,
    }
}

/// `record` with the outcome (and, on failure, the error) of `result`.
pub fn finished<T>(record: Record, result: &Result<T>) -> Record {
    let detail = match result {
        Err(e) => e.to_string(),
        Ok(_) => record.detail.clone(),
    };
    Record {
        outcome: outcome_of(result),
        detail,
        ..record
    }
}

/// Append `record` to `repo`'s trail; returns the checkpoint after it.
pub async fn append(repo: &Repository, record: Record) -> Result<Checkpoint> {
    for _ in 0..APPEND_TRIES {
        let head = head(repo).await?;
        if let Some(segment) = repo.append_audit(head, vec![record.clone()]).await? {
            return Ok(segment.checkpoint);
        }
        let pause = rand::thread_rng().gen_range(10..200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Err(EngineError::Internal(format!(
        "could not append to the audit trail of {}: other writers took {APPEND_TRIES} positions in a row — try again",
        repo.address()
    )))
}

/// Record how an operation that changed `repo` ended and pass its result on: a
/// success whose event cannot be written fails (the trail must not miss a change); a
/// failure is recorded as well as the store allows and its own error is kept.
pub async fn after<T>(
    repo: &Repository,
    record: Record,
    result: Result<T>,
    describe: impl FnOnce(&T) -> String,
) -> Result<T> {
    let detail = result.as_ref().map(describe).unwrap_or_default();
    let record = finished(Record { detail, ..record }, &result);
    match result {
        Ok(value) => append(repo, record).await.map(|_| value),
        Err(e) => {
            let _ = append(repo, record).await;
            Err(e)
        }
    }
}

/// Record that `repo` was created (for layers above that create repositories).
pub async fn record_init(repo: &Repository) -> Result<()> {
    append(repo, event(Action::Init)).await.map(|_| ())
}

/// How a drill or failover ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Passed,
    ObjectivesMissed,
    Failed,
}

/// Record a drill (or, with `failover`, a failover) that reported to `repo`.
pub async fn record_run(repo: &Repository, failover: bool, objects: Vec<String>, end: RunEnd) -> Result<()> {
    let action = if failover { Action::Failover } else { Action::Drill };
    let outcome = match end {
        RunEnd::Passed => Outcome::Ok,
        RunEnd::ObjectivesMissed => Outcome::Degraded,
        RunEnd::Failed => Outcome::Failed,
    };
    append(
        repo,
        Record {
            objects,
            outcome,
            ..event(action)
        },
    )
    .await
    .map(|_| ())
}

/// Record that a drill (or, with `failover`, a failover) reporting to `repo` began.
pub async fn record_run_start(repo: &Repository, failover: bool, objects: Vec<String>) -> Result<()> {
    let action = if failover { Action::Failover } else { Action::Drill };
    let record = Record {
        objects,
        outcome: Outcome::Started,
        ..event(action)
    };
    append(repo, record).await.map(|_| ())
}

/// An acknowledged anomaly, as the trail records it.
#[derive(Debug, Clone)]
pub struct AnomalyAck {
    pub snapshot: SnapshotId,
    pub actor: String,
    pub time: DateTime<Utc>,
}

/// Record that `ack.actor` closed the anomaly of `ack.snapshot` (of `dataset`).
pub async fn record_anomaly_ack(repo: &Repository, ack: &AnomalyAck, dataset: &str) -> Result<()> {
    let record = Record {
        time: ack.time,
        actor: ack.actor.clone(),
        objects: vec![ack.snapshot.to_hex()],
        detail: format!("anomaly of dataset {dataset} acknowledged"),
        ..event(Action::AnomalyAck)
    };
    append(repo, record).await.map(|_| ())
}

/// Every anomaly acknowledgement in `repo`'s trail, oldest first.
pub async fn anomaly_acks(repo: &Repository) -> Result<Vec<AnomalyAck>> {
    let trail = review::read(repo).await?;
    let acks = trail
        .events
        .into_iter()
        .filter(|e| e.record.action == Action::AnomalyAck);
    Ok(acks
        .filter_map(|e| {
            let snapshot = SnapshotId::from_hex(e.record.objects.first()?).ok()?;
            Some(AnomalyAck {
                snapshot,
                actor: e.record.actor,
                time: e.record.time,
            })
        })
        .collect())
}

/// Append `record` where failing to must not fail the operation (reads: restore,
/// verify). Returns the reason when the event could not be written.
pub async fn note(repo: &Repository, record: Record) -> Option<String> {
    append(repo, record).await.err().map(|e| e.to_string())
}

/// Read `repo`'s trail and judge it: the chain, the checkpoint remembered in `memory`
/// (a directory; remembered anew when the chain is whole and longer), and the
/// snapshots present. Every problem found is in the trail's `problems`; the second
/// value says why the checkpoint could not be remembered, if so.
pub async fn inspect(repo: &Repository, memory: Option<&Path>) -> Result<(review::Trail, Option<String>)> {
    let mut trail = review::read(repo).await?;
    let (mut found, warning) = match memory {
        Some(dir) => memory::compare_and_remember(dir, repo, &trail),
        None => (Vec::new(), None),
    };
    found.extend(review::snapshot_problems(repo, &trail).await?);
    trail.problems.extend(found);
    Ok((trail, warning))
}

/// The checkpoint after the last stored segment.
async fn head(repo: &Repository) -> Result<Checkpoint> {
    let listing = repo.audit_listing().await?;
    match listing.segments.last() {
        None => Ok(Checkpoint::GENESIS),
        Some(&(seq, size)) => Ok(repo.load_audit_segment(seq, Some(size)).await?.checkpoint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::test_init_options;
    use crate::storage::OpendalStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_appends_keep_one_chain() {
        let store = Arc::new(OpendalStore::memory("memory://audit-race").unwrap());
        let repo = Repository::init(store, b"pw", &test_init_options()).await.unwrap();
        let writers = (0..6).map(|n| {
            let repo = repo.clone();
            let record = Record {
                detail: format!("writer {n}"),
                ..event(Action::Backup)
            };
            tokio::spawn(async move { append(&repo, record).await.unwrap() })
        });
        let mut sizes: Vec<u64> = Vec::new();
        for w in writers {
            sizes.push(w.await.unwrap().size);
        }
        sizes.sort_unstable();
        assert_eq!(sizes, (1..=6).collect::<Vec<_>>());
        let trail = review::read(&repo).await.unwrap();
        assert!(trail.problems.is_empty(), "{:?}", trail.problems);
        assert_eq!(trail.events.len(), 6);
    }

    #[tokio::test]
    async fn the_actor_of_a_scope_is_named() {
        let named = as_actor("api:ops-token".into(), async { event(Action::Verify).actor }).await;
        assert_eq!(named, "api:ops-token");
        assert!(event(Action::Verify).actor.contains('@'));
    }
}

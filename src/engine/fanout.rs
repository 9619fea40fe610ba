//! The upload stage of a backup, fanned out to every region of a replica set.
//!
//! Regions of one plan share their master key and chunker, so each pack is sealed
//! once and the same bytes go to every region. Each region is a *lane* with its own
//! bounded queue (`LANE_DEPTH` packs, `UPLOADS` of them in flight): a slow region does not slow
//! the others until its queue is full, and a region whose queue stays full for
//! `lag_wait` is dropped from this run as lagging rather than stalling the rest. A
//! region whose upload fails (after the storage layer's retries) is dropped as failed.
//! Either way the run completes on the remaining regions; `lifeboat sync` later copies
//! what a dropped region missed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::{EngineError, Result};
use crate::format::index::{IndexFile, IndexedPack};
use crate::repo::packer::FinishedPack;
use crate::repo::{Index, Repository};

/// Packs a region may have queued or in flight before it counts as lagging.
const LANE_DEPTH: usize = 2;
/// Concurrent uploads per region.
const UPLOADS: usize = 2;
/// Packs per index object, so an interrupted run leaves its work indexed.
const INDEX_EVERY: usize = 16;
/// Assembled packs alive at once, wherever they are (queued, uploading to any region):
/// the packer waits for a slot before it assembles the next one. With the pack being
/// filled, this bounds the backup's pack memory to `PACKS_IN_MEMORY + 1` pack sizes.
pub(crate) const PACKS_IN_MEMORY: usize = LANE_DEPTH + 1;

/// An assembled pack with its memory slot; the slot frees when every region is done with it.
pub(crate) struct Outgoing {
    pub pack: FinishedPack,
    pub slot: Arc<OwnedSemaphorePermit>,
}

/// One region taking part in a backup.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub repo: Repository,
}

/// Why a region left a run early.
#[derive(Debug)]
pub enum Dropped {
    Failed(EngineError),
    Lagging,
}

pub(crate) struct Lane {
    pub name: String,
    pub repo: Repository,
    inflight: JoinSet<Result<(IndexedPack, u64)>>,
    permits: Arc<Semaphore>,
    stored: Vec<IndexedPack>,
    /// The packs the region's index listed when the run began.
    pub held: Vec<crate::format::ids::PackId>,
    /// Every pack this lane stored in the run.
    pub uploaded: std::collections::HashSet<crate::format::ids::PackId>,
    /// Bytes of the packs this lane stored in the run.
    pub bytes_added: u64,
    /// The region's index when the run began: a pack whose every blob it already
    /// holds is not sent to it.
    pub index: Option<Arc<Index>>,
    pub dropped: Option<Dropped>,
}

impl Lane {
    pub fn new(target: &Target) -> Lane {
        Lane {
            name: target.name.clone(),
            repo: target.repo.clone(),
            inflight: JoinSet::new(),
            permits: Arc::new(Semaphore::new(UPLOADS)),
            stored: Vec::new(),
            held: Vec::new(),
            uploaded: Default::default(),
            bytes_added: 0,
            index: None,
            dropped: None,
        }
    }

    pub fn active(&self) -> bool {
        self.dropped.is_none()
    }

    pub fn drop_with(&mut self, why: Dropped) {
        self.inflight.abort_all();
        self.dropped.get_or_insert(why);
    }

    /// Whether the region already holds every blob of `pack` (a region that was
    /// caught up from another holds blobs this run's other regions lack).
    fn holds_all(&self, pack: &FinishedPack) -> bool {
        self.index
            .as_ref()
            .is_some_and(|i| pack.entries.iter().all(|e| i.contains(&e.id)))
    }

    fn spawn(&mut self, out: &Outgoing) {
        let (repo, permits, slot) = (self.repo.clone(), self.permits.clone(), out.slot.clone());
        let pack = &out.pack;
        let (id, bytes, blobs) = (pack.id, pack.bytes.clone(), pack.entries.clone());
        let size = bytes.len() as u64;
        self.inflight.spawn(async move {
            let _slot = slot;
            let _permit = permits
                .acquire()
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            repo.save_pack(&id, bytes).await?;
            Ok((IndexedPack { id, blobs }, size))
        });
    }

    fn settle(&mut self, done: std::result::Result<Result<(IndexedPack, u64)>, tokio::task::JoinError>) {
        match done {
            Ok(Ok((p, size))) => {
                self.bytes_added += size;
                self.uploaded.insert(p.id);
                self.stored.push(p);
            }
            Ok(Err(e)) => self.drop_with(Dropped::Failed(e)),
            Err(e) if e.is_cancelled() => {}
            Err(e) => self.drop_with(Dropped::Failed(EngineError::Internal(e.to_string()))),
        }
    }

    /// Take finished uploads without waiting.
    fn reap(&mut self) {
        while let Some(done) = self.inflight.try_join_next() {
            self.settle(done);
        }
    }

    /// Wait for room in the queue, at most `lag_wait`; drop the lane as lagging otherwise.
    async fn make_room(&mut self, lag_wait: Duration) {
        while self.active() && self.inflight.len() >= LANE_DEPTH {
            match tokio::time::timeout(lag_wait, self.inflight.join_next()).await {
                Ok(Some(done)) => self.settle(done),
                Ok(None) => break,
                Err(_) => self.drop_with(Dropped::Lagging),
            }
        }
    }

    async fn drain(&mut self) {
        while let Some(done) = self.inflight.join_next().await {
            self.settle(done);
        }
    }

    async fn write_index(&mut self, at_least: usize) {
        if !self.active() || self.stored.len() < at_least.max(1) {
            return;
        }
        let file = IndexFile {
            supersedes: Vec::new(),
            packs: std::mem::take(&mut self.stored),
        };
        if let Err(e) = self.repo.save_index(&file).await {
            self.drop_with(Dropped::Failed(e.into()));
        }
    }
}

/// Totals of what was uploaded (counted once, not per region).
#[derive(Debug, Default, Clone, Copy)]
pub struct Uploaded {
    pub blobs: u64,
    pub bytes: u64,
}

/// Upload every pack from `rx` to every active lane; index what each lane stored.
/// Returns an error only when no lane is left.
pub(crate) async fn upload_packs(
    lanes: &mut [Lane],
    mut rx: mpsc::Receiver<Outgoing>,
    lag_wait: Duration,
) -> Result<Uploaded> {
    let mut total = Uploaded::default();
    while let Some(out) = rx.recv().await {
        total.blobs += out.pack.entries.len() as u64;
        total.bytes += out.pack.bytes.len() as u64;
        for lane in lanes.iter_mut().filter(|l| l.active()) {
            lane.reap();
            lane.write_index(INDEX_EVERY).await;
            lane.make_room(lag_wait).await;
            if lane.active() && !lane.holds_all(&out.pack) {
                lane.spawn(&out);
            }
        }
        if !lanes.iter().any(Lane::active) {
            return Err(no_region_left(lanes));
        }
    }
    for lane in lanes.iter_mut().filter(|l| l.active()) {
        lane.drain().await;
        lane.write_index(1).await;
    }
    if lanes.iter().any(Lane::active) {
        Ok(total)
    } else {
        Err(no_region_left(lanes))
    }
}

/// The error when every region dropped out: the first failure, as it was.
pub(crate) fn no_region_left(lanes: &mut [Lane]) -> EngineError {
    if lanes.len() == 1
        && let Some(Dropped::Failed(e)) = lanes[0].dropped.take()
    {
        return e;
    }
    let why: Vec<String> = lanes
        .iter()
        .map(|l| match &l.dropped {
            Some(Dropped::Failed(e)) => format!("{}: {e}", l.name),
            Some(Dropped::Lagging) => format!("{}: too slow (lagging)", l.name),
            None => format!("{}: stopped", l.name),
        })
        .collect();
    EngineError::Internal(format!("no region accepted the backup ({})", why.join("; ")))
}

//! Verification: a real test restore that proves a snapshot comes back bit-exact.
//!
//! A share of the snapshot's files (all of them, or a random sample) is restored from
//! the repository alone into scratch space through the normal restore path, then each
//! restored file is hashed and compared with the whole-file hash recorded at backup.
//! The restore is timed, which gives the measured throughput and, scaled to the whole
//! snapshot, the recovery time to expect; the snapshot's age is the data loss to expect.
//! Each verification restores into its own new owner-only directory, removed afterwards.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;

use super::restore::{Placement, RestoreOptions, restore};
use super::{EngineError, Progress, Result, audit, ls};
use crate::format::audit::{Action, Outcome, Record};
use crate::format::ids::{ContentHash, ContentHasher, SnapshotId};
use crate::format::tree::NodeKind;
use crate::repo::Repository;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Parent folder for the scratch restore (a fresh subfolder is made and removed).
    pub scratch: PathBuf,
    /// Share of files to restore and compare, in (0, 1].
    pub sample_fraction: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub snapshot: SnapshotId,
    pub snapshot_time: DateTime<Utc>,
    pub files_total: u64,
    pub bytes_total: u64,
    pub files_checked: u64,
    pub bytes_checked: u64,
    /// Files that did not come back intact, with the reason.
    pub damaged: Vec<(String, String)>,
    pub restore_ms: u64,
    pub throughput_mib_s: f64,
    /// Time a full restore of this snapshot would take at the measured throughput.
    pub estimated_rto_seconds: f64,
    /// Age of the snapshot when verified: the data a recovery from it would lose.
    pub rpo_seconds: i64,
    pub passed: bool,
}

fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    let mut f = std::fs::File::open(path)?;
    let mut h = ContentHasher::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

/// Restore a sample of `id` into scratch space and compare every file with its hash.
pub async fn verify(
    repo: &Repository,
    id: &SnapshotId,
    opts: &VerifyOptions,
    now: DateTime<Utc>,
) -> Result<VerifyReport> {
    let result = sampled(repo, id, opts, now).await;
    let mut record = audit::finished(
        Record {
            objects: vec![format!("snapshot {id}")],
            ..audit::event(Action::Verify)
        },
        &result,
    );
    if result.as_ref().is_ok_and(|r| !r.passed) {
        record.outcome = Outcome::Damage;
    }
    audit::note(repo, record).await;
    result
}

async fn sampled(repo: &Repository, id: &SnapshotId, opts: &VerifyOptions, now: DateTime<Utc>) -> Result<VerifyReport> {
    if !(opts.sample_fraction > 0.0 && opts.sample_fraction <= 1.0) {
        return Err(EngineError::BadInput(format!(
            "sample fraction {} must be in (0, 1]",
            opts.sample_fraction
        )));
    }
    let snap = repo.load_snapshot(id).await?;
    let index = repo.load_index().await?;
    let mut files: Vec<ls::Entry> = ls::list(repo, &index, id, &snap.tree)
        .await?
        .into_iter()
        .filter(|e| e.kind == NodeKind::File)
        .collect();
    let (files_total, bytes_total) = (files.len() as u64, files.iter().map(|f| f.size).sum::<u64>());
    if opts.sample_fraction < 1.0 {
        files.shuffle(&mut rand::thread_rng());
        files.truncate(((files.len() as f64) * opts.sample_fraction).ceil() as usize);
    }
    let scratch = fresh_scratch(&opts.scratch)?;
    let result = restore_and_compare(repo, id, &files, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let (restore_ms, damaged) = result?;
    let bytes_checked: u64 = files.iter().map(|f| f.size).sum();
    let secs = (restore_ms as f64 / 1000.0).max(0.001);
    let throughput = bytes_checked as f64 / secs / (1024.0 * 1024.0);
    Ok(VerifyReport {
        snapshot: *id,
        snapshot_time: snap.time,
        files_total,
        bytes_total,
        files_checked: files.len() as u64,
        bytes_checked,
        passed: damaged.is_empty(),
        damaged,
        restore_ms,
        throughput_mib_s: throughput,
        estimated_rto_seconds: if bytes_checked == 0 {
            secs
        } else {
            secs * bytes_total as f64 / bytes_checked as f64
        },
        rpo_seconds: (now - snap.time).num_seconds(),
    })
}

/// A new, empty, owner-only directory for one verification under `parent`. Made with
/// one `mkdir` (never following a symlink in its place), so nothing left in shared
/// scratch space by anyone else is restored into or through.
fn fresh_scratch(parent: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::create_dir_all(parent).map_err(|e| EngineError::target_io(parent, e))?;
    let scratch = parent.join(format!("lifeboat-verify-{}", hex::encode(rand::random::<[u8; 6]>())));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&scratch)
        .map_err(|e| EngineError::target_io(&scratch, e))?;
    Ok(scratch)
}

async fn restore_and_compare(
    repo: &Repository,
    id: &SnapshotId,
    files: &[ls::Entry],
    scratch: &Path,
) -> Result<(u64, Vec<(String, String)>)> {
    let opts = RestoreOptions {
        target: scratch.to_path_buf(),
        include: Vec::new(),
        only: Some(files.iter().map(|f| f.path.clone()).collect::<HashSet<_>>()),
        placement: Placement::Empty,
        ..Default::default()
    };
    let started = Instant::now();
    let mut damaged = Vec::new();
    match restore(repo, id, &opts, Arc::new(Progress::default())).await {
        Ok(_) => {}
        Err(EngineError::Damage { message, files }) => {
            damaged.extend(files.into_iter().map(|f| (f, message.clone())));
        }
        Err(e) => return Err(e),
    }
    let restore_ms = started.elapsed().as_millis() as u64;
    let already: HashSet<String> = damaged.iter().map(|d| d.0.clone()).collect();
    for f in files {
        let shown = f.path.display().to_string();
        if already.contains(&shown) {
            continue;
        }
        match (hash_file(&scratch.join(&f.path)), f.hash) {
            (Ok(h), Some(expected)) if h == expected => {}
            (Ok(_), Some(_)) => damaged.push((shown, "content differs from the hash recorded at backup".into())),
            (Ok(_), None) => damaged.push((shown, "no hash was recorded for this file".into())),
            (Err(e), _) => damaged.push((shown, format!("not restored: {e}"))),
        }
    }
    Ok((restore_ms, damaged))
}

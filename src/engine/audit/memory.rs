//! The newest audit checkpoint a client has seen, per repository, kept outside it.
//!
//! Whoever can write a region's storage can put back an older copy of the whole trail
//! (and of the snapshots with it): every segment still opens and links. Only someone
//! who saw the newer chain can tell, so each client (the CLI in the user's cache
//! directory, the daemon in its state directory) remembers the longest whole chain it
//! has read: a trail now shorter is rolled back, one whose event at that position has
//! another hash was rewritten (forked).

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::review::{Problem, ProblemKind, Trail};
use crate::format::audit::{MAX_REMEMBERED_LEN, Remembered};
use crate::format::crypto::digest;
use crate::repo::Repository;

/// The memory file of `repo` in `dir` (one per repository id and address, since the
/// regions of a plan share an id).
fn file(dir: &Path, repo: &Repository) -> PathBuf {
    let id = digest(
        "lifeboat v1 audit memory",
        &[repo.config().id.0.as_slice(), repo.address().as_bytes()],
    );
    dir.join("audit").join(format!("{}.json", hex::encode(&id[..16])))
}

/// What `dir` remembers of `repo`, if anything readable.
pub fn recall(dir: &Path, repo: &Repository) -> Option<Remembered> {
    let path = file(dir, repo);
    let len = std::fs::metadata(&path).ok()?.len();
    if len > MAX_REMEMBERED_LEN {
        return None;
    }
    Remembered::decode(&std::fs::read(&path).ok()?)
}

/// Compare `trail` with what `dir` remembers of `repo`, and remember it when it is
/// whole and longer. Returns the problems found and, when the memory could not be
/// written, why.
pub fn compare_and_remember(dir: &Path, repo: &Repository, trail: &Trail) -> (Vec<Problem>, Option<String>) {
    let before = recall(dir, repo);
    let problems: Vec<Problem> = before.iter().filter_map(|b| compare(b, trail)).collect();
    let longer = before.as_ref().is_none_or(|b| trail.checkpoint.size > b.size);
    if !(problems.is_empty() && trail.is_whole() && longer && trail.checkpoint.size > 0) {
        return (problems, None);
    }
    let now = Remembered {
        repository: repo.address().to_string(),
        size: trail.checkpoint.size,
        head: trail.checkpoint.head,
        seen: Utc::now(),
    };
    (problems, write(&file(dir, repo), &now).err())
}

fn compare(before: &Remembered, trail: &Trail) -> Option<Problem> {
    let seen = before.seen.format("%Y-%m-%d %H:%M:%S");
    let (kind, message) = if trail.checkpoint.size < before.size {
        let message = format!(
            "the audit trail of {} was rolled back: it holds {} events, and this client saw {} on {seen} UTC",
            trail.repository, trail.checkpoint.size, before.size
        );
        (ProblemKind::RolledBack, message)
    } else if trail.hash_at(before.size) != Some(before.head) {
        let message = format!(
            "the audit trail of {} was rewritten (tampered): its first {} events differ from those this client saw on {seen} UTC",
            trail.repository, before.size
        );
        (ProblemKind::Forked, message)
    } else {
        return None;
    };
    Some(Problem {
        kind,
        event: Some(before.size.saturating_sub(1)),
        snapshot: None,
        message,
    })
}

fn write(path: &Path, value: &Remembered) -> Result<(), String> {
    let fail = |e: std::io::Error| {
        format!(
            "cannot remember the audit checkpoint in {}: {e} — make the cache directory writable (XDG_CACHE_HOME)",
            path.display()
        )
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, value.encode()).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

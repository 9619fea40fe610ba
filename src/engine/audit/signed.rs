//! Checkpoints of a region's trail signed with the plan's signing key, and a trail
//! checked against the newest of them.
//!
//! Everything else in the trail is authenticated with the repository key, which every
//! backed-up host holds; the signing key can be kept off those hosts. So a signed
//! checkpoint holds against a repository-key holder too: a trail rewritten or cut
//! behind it no longer matches a signature the writer cannot make. Signing happens
//! when `apply` is done (one checkpoint per region per run that moved the head).

use chrono::Utc;

use serde::Serialize;

use super::super::{EngineError, Result};
use super::review::{Problem, ProblemKind, Trail};
use crate::format::audit_checkpoint::CheckpointClaim;
use crate::format::dsse::Envelope;
use crate::format::names::RegionName;
use crate::format::signing::{PublicKey, SigningKey};
use crate::repo::Repository;

/// How a trail stands against its newest signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignedCheck {
    /// No checkpoint is stored.
    None,
    /// The newest checkpoint is signed by a trusted key and the trail agrees with it.
    Agrees { size: u64, signer: String },
    /// Something is wrong (counted with the trail's problems).
    Problem(Problem),
}

/// Sign the head of `repo`'s trail (the region `region`) with `key` and store it, unless
/// a checkpoint of that size is stored already. Returns the size signed; `None` for an
/// empty trail.
pub async fn sign_head(repo: &Repository, region: &RegionName, key: &SigningKey) -> Result<Option<u64>> {
    let head = super::head(repo).await?;
    if head.size == 0 {
        return Ok(None);
    }
    let claim = CheckpointClaim {
        region: region.clone(),
        size: head.size,
        head: head.head,
        time: Utc::now(),
    };
    let envelope = Envelope::sign(&claim.statement(), key)
        .map_err(|e| EngineError::Internal(format!("cannot sign the audit checkpoint of region {region}: {e}")))?;
    repo.put_signed_checkpoint(head.size, &envelope).await?;
    Ok(Some(head.size))
}

/// Check `trail` (region `region`'s, read from `repo`) against the newest checkpoint
/// signed for it: its signature under `trusted`, then the trail's size and hash there.
pub async fn check_signed(
    repo: &Repository,
    region: &RegionName,
    trail: &Trail,
    trusted: &[PublicKey],
) -> Result<SignedCheck> {
    let Some(&(size, len)) = repo.signed_checkpoints().await?.last() else {
        return Ok(SignedCheck::None);
    };
    let found = |kind, event, message| Ok(SignedCheck::Problem(problem(kind, event, message)));
    let what = format!("the signed audit checkpoint at {size} of region {region}");
    let envelope = match repo.load_signed_checkpoint(size, Some(len)).await {
        Ok(envelope) => envelope,
        Err(e) if e.is_damage() => return found(ProblemKind::Altered, size, format!("{what}: {e}")),
        Err(e) => return Err(e.into()),
    };
    let (payload, signer) = match envelope.verify(trusted) {
        Ok(verified) => verified,
        Err(e) => {
            let message =
                format!("{what} is not trusted: {e} (tampered, or signed with a key not in [signing] trusted)");
            return found(ProblemKind::Untrusted, size, message);
        }
    };
    let claim = match CheckpointClaim::from_statement(&payload) {
        Ok(c) if c.region == *region && c.size == size => c,
        Ok(_) => {
            return found(
                ProblemKind::Altered,
                size,
                format!("{what} names another region or size"),
            );
        }
        Err(e) => return found(ProblemKind::Altered, size, format!("{what}: {e}")),
    };
    let signer = signer.key_id();
    Ok(match judge(region, trail, &claim, &signer) {
        Some(p) => SignedCheck::Problem(p),
        None => SignedCheck::Agrees { size, signer },
    })
}

fn judge(region: &RegionName, trail: &Trail, claim: &CheckpointClaim, signer: &str) -> Option<Problem> {
    let seen = format!(
        "the checkpoint key {} signed on {} UTC",
        &signer[..signer.len().min(16)],
        claim.time.format("%Y-%m-%d %H:%M:%S")
    );
    if trail.checkpoint.size < claim.size {
        let message = format!(
            "the audit trail of region {region} was rolled back: it holds {} events, fewer than the {} of {seen}",
            trail.checkpoint.size, claim.size
        );
        return Some(problem(ProblemKind::RolledBack, trail.checkpoint.size, message));
    }
    (trail.hash_at(claim.size) != Some(claim.head)).then(|| {
        let message = format!(
            "the audit trail of region {region} was rewritten (tampered): its first {} events differ from {seen}",
            claim.size
        );
        problem(ProblemKind::Forked, claim.size.saturating_sub(1), message)
    })
}

fn problem(kind: ProblemKind, event: u64, message: String) -> Problem {
    Problem {
        kind,
        event: Some(event),
        snapshot: None,
        message,
    }
}

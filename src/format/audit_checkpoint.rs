//! Audit checkpoints signed with a plan's signing key.
//!
//! A trail's own checkpoints are authenticated with the repository key only, so anyone
//! holding a repository password (every backed-up host) can write a whole new trail
//! that verifies. A checkpoint signed with the plan's signing key, which backed-up
//! hosts need not hold, pins one region's trail at a size and head: a trail shorter
//! than a signed checkpoint was rolled back, one whose hash at that size differs was
//! rewritten, whoever wrote it. The claim is an in-toto Statement v1 in a DSSE
//! envelope, like a snapshot manifest. Byte layout: docs/format.md, "Audit segments".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::dsse::Envelope;
use super::ids::ChainHash;
use super::manifest::{STATEMENT_TYPE, Statement, Subject};
use super::names::RegionName;

/// The predicate type of a signed audit checkpoint.
pub const CHECKPOINT_PREDICATE: &str = "https://lifeboat.dev/audit-checkpoint/v1";
/// Longest stored signed checkpoint (a few hundred bytes are written).
pub const MAX_SIGNED_CHECKPOINT_LEN: usize = 64 * 1024;
/// The subject digest's algorithm: the trail's keyed BLAKE3 chain hash.
const DIGEST: &str = "blake3-keyed";

/// What a signed checkpoint says: region `region`'s trail held `size` events ending
/// in `head` at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointClaim {
    pub region: RegionName,
    pub size: u64,
    pub head: ChainHash,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("the signed checkpoint is {0} bytes, more than {MAX_SIGNED_CHECKPOINT_LEN}")]
    TooLong(usize),
    #[error("the signed checkpoint is malformed: {0}")]
    Json(String),
    #[error("the signed statement is not an audit checkpoint")]
    NotACheckpoint,
}

impl CheckpointClaim {
    /// The in-toto statement, as JSON: the payload that is signed.
    pub fn statement(&self) -> Vec<u8> {
        let statement = Statement {
            statement_type: STATEMENT_TYPE.to_string(),
            subject: vec![self.subject()],
            predicate_type: CHECKPOINT_PREDICATE.to_string(),
            predicate: self,
        };
        serde_json::to_vec(&statement).unwrap_or_default()
    }

    fn subject(&self) -> Subject {
        Subject {
            name: format!("audit-trail/{}/{}", self.region, self.size),
            digest: [(DIGEST.to_string(), self.head.to_string())].into(),
        }
    }

    /// Read and check a statement payload (already verified as signed).
    pub fn from_statement(payload: &[u8]) -> Result<Self, ClaimError> {
        if payload.len() > MAX_SIGNED_CHECKPOINT_LEN {
            return Err(ClaimError::TooLong(payload.len()));
        }
        let st: Statement<CheckpointClaim> =
            serde_json::from_slice(payload).map_err(|e| ClaimError::Json(e.to_string()))?;
        let claim = st.predicate;
        let expected = [claim.subject()];
        let right = st.statement_type == STATEMENT_TYPE
            && st.predicate_type == CHECKPOINT_PREDICATE
            && st.subject[..] == expected[..];
        right.then_some(claim).ok_or(ClaimError::NotACheckpoint)
    }
}

/// The stored form of a signed checkpoint: its DSSE envelope as JSON.
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    serde_json::to_vec(envelope).unwrap_or_default()
}

/// The envelope in `bytes`, bounded; its signature is checked by the caller.
pub fn decode(bytes: &[u8]) -> Result<Envelope, ClaimError> {
    if bytes.len() > MAX_SIGNED_CHECKPOINT_LEN {
        return Err(ClaimError::TooLong(bytes.len()));
    }
    serde_json::from_slice(bytes).map_err(|e| ClaimError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::signing::{SigningKey, generate};

    fn claim() -> CheckpointClaim {
        CheckpointClaim {
            region: RegionName::new("east").unwrap(),
            size: 12,
            head: ChainHash([9; 32]),
            time: DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn a_signed_claim_round_trips_and_verifies_only_under_its_key() {
        let (pem, public) = generate().unwrap();
        let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
        let envelope = Envelope::sign(&claim().statement(), &key).unwrap();
        let stored = decode(&encode(&envelope)).unwrap();
        let (payload, signer) = stored.verify(std::slice::from_ref(&public)).unwrap();
        assert_eq!(signer, &public);
        assert_eq!(CheckpointClaim::from_statement(&payload).unwrap(), claim());
        let (_, other) = generate().unwrap();
        assert!(stored.verify(&[other]).is_err());
    }

    #[test]
    fn a_claim_whose_subject_disagrees_with_its_predicate_is_refused() {
        let mut st: serde_json::Value = serde_json::from_slice(&claim().statement()).unwrap();
        st["predicate"]["size"] = 13.into();
        let bytes = serde_json::to_vec(&st).unwrap();
        assert_eq!(CheckpointClaim::from_statement(&bytes), Err(ClaimError::NotACheckpoint));
        assert!(matches!(
            decode(&vec![b' '; MAX_SIGNED_CHECKPOINT_LEN + 1]),
            Err(ClaimError::TooLong(_))
        ));
    }
}

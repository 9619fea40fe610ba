//! The plan's `[signing]` section made usable: the private key that signs a dataset's
//! manifests (resolved from its secret reference, whole, as PEM) and the trusted public
//! keys that restore, verify, drills and failovers check signatures with.

use std::sync::Arc;

use super::secrets::{describe, resolve_document};
use super::{ApplyError, Result};
use crate::engine::manifest::{Signing, TrustedKeys};
use crate::plan::{Dataset, DatasetKind, Plan};

/// How `ds` is signed at backup, or `None` when it is not signed.
pub fn signing_for(plan: &Plan, ds: &Dataset) -> Result<Option<Arc<Signing>>> {
    if !ds.sign {
        return Ok(None);
    }
    let Some(key) = plan.signing.as_ref().and_then(|s| s.key.as_ref()) else {
        return Err(ApplyError::BadInput(format!(
            "dataset {} has `sign = true` but the plan has no [signing] key — add one (`lifeboat validate` shows how)",
            ds.name
        )));
    };
    let pem = resolve_document(key, "signing key")?;
    let signing = Signing::from_pem(&pem, &describe(key), ds.kind == DatasetKind::Model)?;
    Ok(Some(Arc::new(signing)))
}

/// The plan's signing key, to sign audit checkpoints with; `None` when the plan has no
/// `[signing]` key.
pub fn checkpoint_signing(plan: &Plan) -> Result<Option<Signing>> {
    let Some(key) = plan.signing.as_ref().and_then(|s| s.key.as_ref()) else {
        return Ok(None);
    };
    let pem = resolve_document(key, "signing key")?;
    Ok(Some(Signing::from_pem(&pem, &describe(key), false)?))
}

/// The plan's trusted public keys (none when it has no `[signing]`).
pub fn trusted_keys(plan: &Plan) -> Result<TrustedKeys> {
    let paths = plan.signing.as_ref().map(|s| s.trusted.as_slice()).unwrap_or_default();
    Ok(TrustedKeys::load(paths)?)
}

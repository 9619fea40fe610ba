//! Check, before a plan command changes anything, that its password opens the plan's
//! regions. A wrong password is bad input (exit 2) wherever it shows, and a failover
//! must stop on it before the first step rather than move traffic and then fail to
//! store its report. Regions that cannot be reached or do not exist yet are left to
//! the command itself, which reports them as degraded or creates them.

use futures::future::join_all;

use super::regions::open_store;
use super::{ApplyError, Result};
use crate::plan::Plan;
use crate::repo::{RepoError, Repository};

/// Open every region of `plan` with `password` (concurrently, read-only) and fail on
/// the first that refuses it.
pub async fn check_password(plan: &Plan, password: &[u8]) -> Result<()> {
    let opens = plan.regions.iter().map(|(name, region)| async move {
        let opened = match open_store(region, false).await {
            Ok(store) => Repository::open(store, password).await.map(drop),
            Err(e) => Err(e.into()),
        };
        (name, opened)
    });
    for (name, opened) in join_all(opens).await {
        if let Err(source @ RepoError::WrongPassword(_)) = opened {
            return Err(ApplyError::Region {
                region: name.to_string(),
                source,
            });
        }
    }
    Ok(())
}

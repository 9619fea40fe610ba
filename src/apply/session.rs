//! One hold on a plan for one command or one daemon job: the plan, its repository
//! password (resolved once, off the async threads) and every region's repository,
//! opened once (which unlocks the shared master key in each).
//!
//! Before this, each entry point resolved the password and opened the regions again
//! for itself, and a command that checked the password first opened every region
//! twice. A session is opened first and handed to whatever the command does (status,
//! apply, verify, restore, sync, reports), so a region is opened once per command, and
//! what the password check saw is what the work uses.
//!
//! A region that cannot be opened is recorded with its error, never fatal to the
//! others: each operation reports it as that region's failure. Only a password that a
//! region refuses is an error of the whole session, and only for callers that ask
//! (`check_password`): the CLI and drills stop on it, the daemon records it per region.

use futures::future::join_all;

use super::regions::{RegionRepo, create_missing, open_one, region_url};
use super::{ApplyError, Result, secrets};
use crate::format::names::RegionName;
use crate::plan::Plan;
use crate::repo::{RepoError, Repository};

/// Whether opening a session may create the missing repositories of regions that say
/// `create = true` (as a replica of a region that exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regions {
    /// Only open what exists (status, verify, restore, reports).
    Existing,
    /// Also create the missing ones (apply, sync).
    Create,
}

/// A plan with its password resolved and its regions opened.
#[derive(Debug)]
pub struct Session<'p> {
    plan: &'p Plan,
    regions: Vec<RegionRepo>,
}

impl<'p> Session<'p> {
    /// Resolve the plan's password on a blocking thread, then open every region.
    pub async fn open(plan: &'p Plan, mode: Regions) -> Result<Session<'p>> {
        let password = secrets::plan_password(plan).await?;
        Ok(Self::with_password(plan, &password, mode).await)
    }

    /// Open every region of `plan` with a password already resolved, concurrently.
    /// Missing regions are created (with `Regions::Create`) only when no region
    /// refused the password: a replica needs a key this password opens.
    pub async fn with_password(plan: &'p Plan, password: &[u8], mode: Regions) -> Session<'p> {
        let create = mode == Regions::Create;
        let opens = plan.regions.iter().map(|(name, region)| async move {
            let address = region_url(region);
            let repo = open_one(region, create && region.create, password).await;
            RegionRepo {
                name: name.clone(),
                address,
                repo,
            }
        });
        let mut regions = join_all(opens).await;
        if create && !regions.iter().any(RegionRepo::wrong_password) {
            create_missing(plan, &mut regions, password).await;
        }
        Session { plan, regions }
    }

    pub fn plan(&self) -> &'p Plan {
        self.plan
    }

    /// Every region of the plan, in plan order, opened or not.
    pub fn regions(&self) -> &[RegionRepo] {
        &self.regions
    }

    /// The regions named in `names`, in plan order; every region when `names` is empty.
    pub fn selected(&self, names: &[RegionName]) -> Vec<&RegionRepo> {
        let wanted = |r: &&RegionRepo| names.is_empty() || names.contains(&r.name);
        self.regions.iter().filter(wanted).collect()
    }

    /// The repository of `region`, or why there is none (not in the plan, or it did
    /// not open).
    pub fn repo(&self, region: &RegionName) -> Result<&Repository> {
        let Some(found) = self.regions.iter().find(|r| &r.name == region) else {
            return Err(ApplyError::BadInput(format!("the plan has no region {region}")));
        };
        found.repo.as_ref().map_err(|source| ApplyError::Region {
            region: region.to_string(),
            source: source.clone(),
        })
    }

    /// Fail on the first region that refuses the password. A wrong password is bad
    /// input wherever it shows, and a failover must stop on it before its first step.
    /// Regions that cannot be reached or do not exist yet are left to the command.
    pub fn check_password(&self) -> Result<()> {
        for r in &self.regions {
            if let Err(source @ RepoError::WrongPassword(_)) = &r.repo {
                return Err(ApplyError::Region {
                    region: r.name.to_string(),
                    source: source.clone(),
                });
            }
        }
        Ok(())
    }
}

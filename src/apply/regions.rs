//! Open the repositories of a plan's regions, creating missing ones where allowed.
//!
//! All regions of a plan form a replica set: they share one master key and chunker,
//! so a pack is byte-identical everywhere. A missing region repository is created
//! as a replica of a region that exists; only when none exists is a new key made.
//!
//! Each S3 region signs with its own credentials when the plan names them (a profile,
//! or a key pair read from secret references), else with the AWS CLI's chain.

use std::sync::Arc;

use super::secrets;
use crate::format::names::RegionName;
use crate::plan::{KeySource, Plan, Region, RegionCredentials, RepoAddress};
use crate::repo::KdfParams;
use crate::repo::{InitOptions, RepoError, Repository};
use crate::storage::address::{OpenOptions, open_with};
use crate::storage::{CredentialSource, ErrorKind, StorageError};

/// One region and its repository, or why it could not be opened.
#[derive(Debug)]
pub struct RegionRepo {
    pub name: RegionName,
    pub address: String,
    pub repo: std::result::Result<Repository, RepoError>,
}

impl RegionRepo {
    /// Whether the region could not be opened because no key takes the password.
    pub fn wrong_password(&self) -> bool {
        matches!(self.repo, Err(RepoError::WrongPassword(_)))
    }
}

/// The storage address of a region, with its S3 options (storage class, Object Lock
/// retention for immutable regions) carried as address options.
pub fn region_url(region: &Region) -> String {
    let mut url = region.address.to_url();
    if !matches!(region.address, RepoAddress::S3 { .. }) {
        return url;
    }
    let mut extra = Vec::new();
    if let Some(class) = &region.storage_class {
        extra.push(format!("storage_class={class}"));
    }
    if let Some(days) = region.immutable_days {
        extra.push(format!("object_lock_days={days}"));
    }
    if !extra.is_empty() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&extra.join("&"));
    }
    url
}

/// The credentials `region` signs with. Secret references are resolved on a blocking
/// thread (a `command` runs a program); a failure names the region, never a value.
async fn region_credentials(region: &Region) -> std::result::Result<CredentialSource, StorageError> {
    let (id, secret) = match &region.credentials {
        RegionCredentials::Chain => return Ok(CredentialSource::Chain),
        RegionCredentials::Profile(name) => return Ok(CredentialSource::Profile(name.clone())),
        RegionCredentials::Keys {
            access_key_id,
            secret_access_key,
        } => (access_key_id.clone(), secret_access_key.clone()),
    };
    let failed = |why: String| {
        let message = format!("{why} — fix the region's `credentials` references");
        StorageError::new(ErrorKind::PermissionDenied, format!("region {}", region.name), message)
    };
    let lookup = tokio::task::spawn_blocking(move || {
        let text = |key: &KeySource, what: &str| -> std::result::Result<String, String> {
            let value = secrets::resolve_named(key, what).map_err(|e| e.to_string())?;
            String::from_utf8(value).map_err(|_| format!("the {what} is not UTF-8"))
        };
        Ok::<_, String>(CredentialSource::Keys {
            access_key_id: text(&id, "access_key_id")?,
            secret_access_key: text(&secret, "secret_access_key")?,
        })
    });
    match lookup.await {
        Ok(resolved) => resolved.map_err(failed),
        Err(e) => Err(failed(format!("the credentials lookup did not finish: {e}"))),
    }
}

/// Open the store of `region` with its credentials; `create` makes a missing local folder.
pub async fn open_store(
    region: &Region,
    create: bool,
) -> std::result::Result<Arc<dyn crate::storage::Store>, StorageError> {
    let credentials = region_credentials(region).await?;
    open_with(&region_url(region), OpenOptions { create, credentials })
}

pub(super) async fn open_one(
    region: &Region,
    create_dir: bool,
    password: &[u8],
) -> std::result::Result<Repository, RepoError> {
    let store = open_store(region, create_dir).await?;
    Repository::open(store, password).await
}

/// Create the missing repositories of `regions` whose region says `create = true`, each
/// as a replica of one that opened (a new key only when none did).
pub(super) async fn create_missing(plan: &Plan, regions: &mut [RegionRepo], password: &[u8]) {
    let mut peer: Option<Repository> = regions.iter().find_map(|r| r.repo.as_ref().ok().cloned());
    for r in regions.iter_mut() {
        let Some(region) = plan.regions.get(&r.name).filter(|reg| reg.create) else {
            continue;
        };
        if !matches!(r.repo, Err(RepoError::NotFound(_))) {
            continue;
        }
        let store = match open_store(region, true).await {
            Ok(s) => s,
            Err(e) => {
                r.repo = Err(e.into());
                continue;
            }
        };
        let created = match &peer {
            Some(p) => Repository::init_replica(store, p, password, KdfParams::default()).await,
            None => Repository::init(store, password, &InitOptions::default()).await,
        };
        if let Ok(repo) = &created {
            peer.get_or_insert_with(|| repo.clone());
            // Best effort: a region whose trail cannot be written fails its backup's event.
            let _ = crate::engine::audit::record_init(repo).await;
        }
        r.repo = created;
    }
}

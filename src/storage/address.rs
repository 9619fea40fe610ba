//! Repository addresses: the one string a user writes to say where a repository lives.
//!
//! Parsing is separate from opening so that a typo is reported before anything touches
//! the disk or the network, with a message listing the forms that are accepted. An
//! address never carries credentials: an S3 store signs with what `OpenOptions` names,
//! by default the AWS CLI's credential chain (`aws::credentials`).
//!
//! `memory://name` stores are process-global by name so that two opens in one test (or
//! a writer and a reader) see the same objects.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use url::Url;

use super::aws::{self, CredentialSource, Credentials, LockTarget};
use super::opendal_store::OpendalStore;
use super::{ErrorKind, Result, StorageError, Store};

const ACCEPTED_FORMS: &str = "expected a path, file:///path, memory://name or \
     s3://bucket/prefix?endpoint=URL&region=NAME (optional: &storage_class=CLASS&object_lock_days=N)";
const DEFAULT_REGION: &str = "us-east-1";
const CREDENTIALS_IN_ADDRESS: &str = "an address carries no credentials: remove the `user:password@` part \
     and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment instead";

/// Where a repository lives, parsed but not yet opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryAddress {
    Fs(PathBuf),
    Memory(String),
    S3(S3Address),
}

/// The parts of an `s3://bucket/prefix?endpoint=URL&region=NAME` address, with the
/// optional `storage_class=CLASS` (sent with every upload, e.g. `STANDARD_IA`) and
/// `object_lock_days=N` (packs and snapshots are uploaded with S3 Object Lock in
/// COMPLIANCE mode for N days; see `object_lock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Address {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// `None` means AWS itself, derived from the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub storage_class: Option<String>,
    /// Object Lock retention for packs and snapshots; `None` writes them unlocked.
    pub object_lock_days: Option<u32>,
}

/// How to open a repository address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Create a missing local directory (for `init`); otherwise a missing one is an error.
    pub create: bool,
    /// Where an S3 store's credentials come from; other stores need none.
    pub credentials: CredentialSource,
}

impl RepositoryAddress {
    pub fn parse(address: &str) -> Result<Self> {
        match address.split_once("://") {
            None => parse_plain_path(address),
            Some(("file", _)) => parse_file_url(address),
            Some(("memory", name)) => parse_memory_name(address, name),
            Some(("s3", _)) => parse_s3_url(address).map(Self::S3),
            Some(_) => Err(malformed(address, "unknown scheme")),
        }
    }

    /// The canonical form used in error locations, e.g. `s3://bucket/prefix`.
    pub fn display(&self) -> String {
        match self {
            Self::Fs(path) => format!("file://{}", path.display()),
            Self::Memory(name) => format!("memory://{name}"),
            Self::S3(s3) if s3.prefix.is_empty() => format!("s3://{}", s3.bucket),
            Self::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }
}

/// Open the repository store at `address`; a local directory must already exist.
pub fn open(address: &str) -> Result<Arc<dyn Store>> {
    open_with(address, OpenOptions::default())
}

/// Open the repository store at `address` with `options`.
pub fn open_with(address: &str, options: OpenOptions) -> Result<Arc<dyn Store>> {
    let parsed = RepositoryAddress::parse(address)?;
    let display = parsed.display();
    match parsed {
        RepositoryAddress::Fs(path) => open_fs(&path, display, &options),
        RepositoryAddress::Memory(name) => shared_memory_store(&name, display),
        RepositoryAddress::S3(s3) => open_s3(&s3, display, options.credentials),
    }
}

/// Whether `store` really refuses a second `put_if_absent` of the same key. Some
/// S3-compatible servers ignore `If-None-Match` and overwrite; locking built on
/// such a store would be unsound, so callers check once per repository.
pub async fn probe_conditional_writes(store: &dyn Store) -> Result<bool> {
    let key = format!("probe/conditional-write-{:016x}", rand::random::<u64>());
    let outcome = probe_with_key(store, &key).await;
    let cleanup = store.delete(&key).await;
    let enforced = outcome?;
    cleanup?;
    Ok(enforced)
}

async fn probe_with_key(store: &dyn Store, key: &str) -> Result<bool> {
    let first = Bytes::from_static(b"first");
    if !store.put_if_absent(key, first.clone()).await? {
        return Err(StorageError::new(
            ErrorKind::Permanent,
            format!("{}/{key}", store.address()),
            "a fresh random probe key already existed",
        ));
    }
    let second_written = store.put_if_absent(key, Bytes::from_static(b"second")).await?;
    let kept_first = store.get(key).await? == first;
    Ok(!second_written && kept_first)
}

fn parse_plain_path(address: &str) -> Result<RepositoryAddress> {
    if address.is_empty() {
        return Err(malformed(address, "empty address"));
    }
    Ok(RepositoryAddress::Fs(PathBuf::from(address)))
}

fn parse_file_url(address: &str) -> Result<RepositoryAddress> {
    let url = Url::parse(address).map_err(|err| malformed(address, &err.to_string()))?;
    let has_query = url.query().is_some() || url.fragment().is_some();
    match url.to_file_path() {
        Ok(path) if !has_query => Ok(RepositoryAddress::Fs(path)),
        _ => Err(malformed(address, "file URLs must be file:///absolute/path")),
    }
}

fn parse_memory_name(address: &str, name: &str) -> Result<RepositoryAddress> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(malformed(
            address,
            "memory store names use letters, digits, `-`, `_` and `.`",
        ));
    }
    Ok(RepositoryAddress::Memory(name.to_string()))
}

fn parse_s3_url(address: &str) -> Result<S3Address> {
    let url = Url::parse(address).map_err(|err| malformed(address, &err.to_string()))?;
    let bucket = url.host_str().unwrap_or_default().to_string();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(malformed(address, CREDENTIALS_IN_ADDRESS));
    }
    if bucket.is_empty() || url.port().is_some() {
        return Err(malformed(address, "s3 addresses need a bucket: s3://bucket/prefix"));
    }
    let mut s3 = S3Address {
        bucket,
        prefix: url.path().trim_matches('/').to_string(),
        endpoint: None,
        region: DEFAULT_REGION.to_string(),
        storage_class: None,
        object_lock_days: None,
    };
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "endpoint" => s3.endpoint = Some(parse_endpoint(address, &value)?),
            "region" if !value.is_empty() => s3.region = value.into_owned(),
            "storage_class" => s3.storage_class = Some(parse_storage_class(address, &value)?),
            "object_lock_days" => s3.object_lock_days = Some(parse_lock_days(address, &value)?),
            other => {
                let reason = format!(
                    "unknown or empty parameter `{other}` (known: endpoint, region, storage_class, object_lock_days)"
                );
                return Err(malformed(address, &reason));
            }
        }
    }
    Ok(s3)
}

fn parse_endpoint(address: &str, endpoint: &str) -> Result<String> {
    match Url::parse(endpoint) {
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            Err(malformed(address, CREDENTIALS_IN_ADDRESS))
        }
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
            Ok(endpoint.trim_end_matches('/').to_string())
        }
        _ => Err(malformed(address, "endpoint must be an http:// or https:// URL")),
    }
}

fn parse_storage_class(address: &str, class: &str) -> Result<String> {
    let valid = !class.is_empty()
        && class
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if valid {
        return Ok(class.to_string());
    }
    Err(malformed(
        address,
        "storage_class must be an S3 storage class such as STANDARD, STANDARD_IA or GLACIER_IR",
    ))
}

fn parse_lock_days(address: &str, days: &str) -> Result<u32> {
    match days.parse::<u32>() {
        Ok(days) if (1..=36_500).contains(&days) => Ok(days),
        _ => Err(malformed(
            address,
            "object_lock_days must be a whole number of days from 1 to 36500",
        )),
    }
}

fn malformed(address: &str, reason: &str) -> StorageError {
    StorageError::new(
        ErrorKind::InvalidAddress,
        redact(address),
        format!("invalid repository address ({reason}); {ACCEPTED_FORMS}"),
    )
}

/// `address` as it may be shown: the `user:password@` part and every query value
/// masked (an address that could not be parsed is shown only up to its query).
/// Errors name the address the user wrote, so a mistyped one must not leak what it held.
pub fn redact(address: &str) -> String {
    let Ok(mut url) = Url::parse(address) else {
        let end = address.find(['?', '#']).unwrap_or(address.len());
        let shown = &address[..end];
        return match shown
            .split_once("://")
            .and_then(|(_, rest)| rest.split('/').next()?.rfind('@'))
        {
            Some(_) => "(an address with credentials)".to_string(),
            None => shown.to_string(),
        };
    };
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_password(None);
        let _ = url.set_username("***");
    }
    let names: Vec<String> = url.query_pairs().map(|(name, _)| format!("{name}=***")).collect();
    url.set_query((!names.is_empty()).then(|| names.join("&")).as_deref());
    url.set_fragment(None);
    url.to_string()
}

fn open_fs(path: &Path, display: String, options: &OpenOptions) -> Result<Arc<dyn Store>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(StorageError::new(
                ErrorKind::Permanent,
                display,
                "repository path exists but is not a directory",
            ));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && options.create => {
            super::opendal_store::private_dirs(path).map_err(|err| io_error(&display, &err))?;
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::new(
                ErrorKind::NotFound,
                display,
                "repository directory does not exist (create it, or initialise a repository there)",
            ));
        }
        Err(err) => return Err(io_error(&display, &err)),
    }
    // Relative paths become absolute so error locations stay meaningful later.
    let root = std::fs::canonicalize(path).map_err(|err| io_error(&display, &err))?;
    let display = RepositoryAddress::Fs(root.clone()).display();
    Ok(Arc::new(OpendalStore::fs(&root, display)?))
}

fn io_error(display: &str, err: &std::io::Error) -> StorageError {
    let kind = match err.kind() {
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Permanent,
    };
    StorageError::new(kind, display, err.to_string())
}

/// The process-wide memory store called `name`, created on first use.
fn shared_memory_store(name: &str, display: String) -> Result<Arc<dyn Store>> {
    static STORES: LazyLock<Mutex<HashMap<String, Arc<dyn Store>>>> = LazyLock::new(Default::default);
    // A panic while holding this lock cannot leave the map half-updated.
    let mut stores = STORES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(store) = stores.get(name) {
        return Ok(store.clone());
    }
    let store: Arc<dyn Store> = Arc::new(OpendalStore::memory(display)?);
    stores.insert(name.to_string(), store.clone());
    Ok(store)
}

fn open_s3(s3: &S3Address, display: String, source: CredentialSource) -> Result<Arc<dyn Store>> {
    let credentials = Credentials::new(source, &s3.region);
    // opendal's own configuration loading stays off: the credentials above are the
    // only ones this store signs with.
    let mut builder = opendal::services::S3::default()
        .bucket(&s3.bucket)
        .root(&format!("/{}", s3.prefix))
        .region(&s3.region)
        .credential_provider_chain(credentials.for_opendal())
        .disable_config_load()
        .disable_ec2_metadata();
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.endpoint(endpoint);
    }
    if let Some(class) = &s3.storage_class {
        builder = builder.default_storage_class(class);
    }
    let mut store = OpendalStore::s3(builder, display.clone())?.with_credentials(credentials.clone());
    if let Some(days) = s3.object_lock_days {
        let target = LockTarget {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            bucket: s3.bucket.clone(),
            prefix: s3.prefix.clone(),
            days,
            storage_class: s3.storage_class.clone(),
        };
        store = store.with_object_lock(aws::object_lock(target, credentials, &display)?);
    }
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(address: &str) -> S3Address {
        match RepositoryAddress::parse(address).unwrap() {
            RepositoryAddress::S3(s3) => s3,
            other => panic!("{address} parsed as {other:?}"),
        }
    }

    #[test]
    fn plain_and_file_paths_are_local() {
        let expected = RepositoryAddress::Fs(PathBuf::from("/srv/repo"));
        assert_eq!(RepositoryAddress::parse("/srv/repo").unwrap(), expected);
        assert_eq!(RepositoryAddress::parse("file:///srv/repo").unwrap(), expected);
        let relative = RepositoryAddress::parse("backups/repo").unwrap();
        assert_eq!(relative, RepositoryAddress::Fs(PathBuf::from("backups/repo")));
    }

    #[test]
    fn memory_address_keeps_its_name() {
        let parsed = RepositoryAddress::parse("memory://region-a").unwrap();
        assert_eq!(parsed, RepositoryAddress::Memory("region-a".into()));
        assert_eq!(parsed.display(), "memory://region-a");
    }

    #[test]
    fn s3_address_with_endpoint_and_region() {
        let parsed = s3("s3://bkt/team/repo/?endpoint=http://127.0.0.1:9101/&region=eu-west-1");
        assert_eq!(parsed.bucket, "bkt");
        assert_eq!(parsed.prefix, "team/repo");
        assert_eq!(parsed.endpoint.as_deref(), Some("http://127.0.0.1:9101"));
        assert_eq!(parsed.region, "eu-west-1");
    }

    #[test]
    fn s3_address_defaults_to_us_east_1_and_aws() {
        let parsed = s3("s3://bkt");
        assert_eq!((parsed.prefix.as_str(), parsed.region.as_str()), ("", "us-east-1"));
        assert_eq!(parsed.endpoint, None);
        assert_eq!(RepositoryAddress::S3(parsed).display(), "s3://bkt");
    }

    #[test]
    fn s3_address_with_storage_class_and_object_lock() {
        let parsed = s3("s3://bkt/p?storage_class=STANDARD_IA&object_lock_days=30&endpoint=http://h:1");
        assert_eq!(parsed.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(parsed.object_lock_days, Some(30));
        let plain = s3("s3://bkt/p");
        assert_eq!((plain.storage_class, plain.object_lock_days), (None, None));
    }

    #[test]
    fn bad_addresses_say_which_forms_are_accepted() {
        for bad in [
            "",
            "ftp://host/x",
            "s3:///prefix",
            "s3://bkt/p?endpont=http://x",
            "s3://bkt/p?endpoint=not-a-url",
            "memory://",
            "memory://a/b",
            "file://relative/x",
            "s3://bkt/p?object_lock_days=0",
            "s3://bkt/p?object_lock_days=thirty",
            "s3://bkt/p?storage_class=",
            "s3://bkt/p?storage_class=standard ia",
        ] {
            let err = RepositoryAddress::parse(bad).expect_err(bad);
            assert_eq!(err.kind, ErrorKind::InvalidAddress, "{bad}");
            assert!(err.message.contains("s3://bucket/prefix"), "{bad}: {err}");
        }
    }

    #[test]
    fn credentials_in_an_address_are_refused_and_never_repeated() {
        for bad in [
            "s3://AKIDKEY:SECRETVALUE@bkt/p",
            "s3://bkt/p?endpoint=http://AKIDKEY:SECRETVALUE@h:1",
            "s3://bkt/p?endpont=SECRETVALUE",
        ] {
            let err = RepositoryAddress::parse(bad).expect_err(bad);
            let shown = err.to_string();
            assert!(!shown.contains("SECRETVALUE") && !shown.contains("AKIDKEY"), "{shown}");
        }
        let err = RepositoryAddress::parse("s3://k:s@bkt").unwrap_err();
        assert!(err.message.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        assert_eq!(redact("s3://k:s@b/p?token=t#f"), "s3://***@b/p?token=***");
        assert_eq!(redact("not a url?x=1"), "not a url");
    }

    #[test]
    fn missing_local_directory_is_created_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        let address = path.to_string_lossy().into_owned();
        let err = open(&address).expect_err("opened a missing directory");
        assert!(err.is_not_found());
        let create = OpenOptions {
            create: true,
            ..OpenOptions::default()
        };
        open_with(&address, create).unwrap();
        assert!(path.is_dir());
    }

    #[tokio::test]
    async fn same_memory_name_is_the_same_store() {
        let writer = open("memory://address-test-shared").unwrap();
        writer.put("k", Bytes::from_static(b"v")).await.unwrap();
        let reader = open("memory://address-test-shared").unwrap();
        assert_eq!(reader.get("k").await.unwrap(), Bytes::from_static(b"v"));
        let other = open("memory://address-test-other").unwrap();
        assert!(other.get("k").await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn probe_detects_enforced_conditional_writes() {
        let store = open("memory://address-test-probe").unwrap();
        assert!(probe_conditional_writes(store.as_ref()).await.unwrap());
        assert!(store.list("").await.unwrap().is_empty(), "probe left an object");
    }
}

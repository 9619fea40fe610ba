//! `OpendalStore`: the one `Store` implementation, over an opendal `Operator`.
//!
//! opendal already speaks local files, S3 and memory, and already knows how to retry
//! and time out, so this file only adds what Lifeboat's contract needs on top:
//!
//! * every error becomes a `StorageError` that names `<address>/<key>` and says whether a
//!   retry may help, so callers can tell "region degraded" from "operation failed";
//! * every operator gets the same retry (exponential backoff with jitter) and timeout
//!   layers, so no backend is accidentally left without them;
//! * writes are atomic for readers: the fs backend writes a temp file and renames it
//!   (`atomic_write_dir`), so a SIGKILL mid-write never leaves a torn object;
//! * `put_if_absent` is truly exclusive on every backend. S3 and memory do it natively
//!   (`If-None-Match: *`); opendal's fs emulation is a stat followed by a rename, which
//!   two writers can both pass, so on fs we write a temp file and `hard_link` it into
//!   place, which the kernel refuses when the target exists.
//!
//! * on fs every object is written owner-only (0600) and every directory the store
//!   creates is 0700: a repository holds its wrapped keys beside its data, and the
//!   store does not know which keys those are.
//!
//! A caveat that no client can remove: if a conditional S3 write succeeds but its
//! response is lost, the retry sees the object and reports "already existed".

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use opendal::layers::{RetryEvent, RetryLayer, TimeoutLayer};
use opendal::{EntryMode, Operator};

use super::aws::{Credentials, ObjectLock, not_locking};
use super::cause::{Cause, classify, server_in};
use super::local_write::write_synced;
use super::{Capabilities, ErrorKind, ObjectMeta, PutOptions, RETRY, Result, StorageError, Store};

/// Objects at least this large go to S3 as multipart uploads.
const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
const MULTIPART_CHUNK: usize = 8 * 1024 * 1024;
const MULTIPART_CONCURRENCY: usize = 4;

/// Directory under an fs root holding partly written objects. Keys never start with
/// `.`, so it cannot collide with an object, and `list` hides it.
pub const FS_TEMP_DIR: &str = ".lifeboat-tmp";

/// How `put_if_absent` is made exclusive on this backend.
#[derive(Debug, Clone)]
enum ExclusiveWrite {
    /// The service refuses the write itself (S3 `If-None-Match`, memory).
    Native,
    /// Local files: temp file plus `hard_link`, which fails if the target exists.
    HardLink { root: PathBuf, temp_dir: PathBuf },
}

/// A `Store` backed by an opendal operator (fs, S3 or memory).
#[derive(Debug, Clone)]
pub struct OpendalStore {
    operator: Operator,
    address: String,
    exclusive: ExclusiveWrite,
    multipart: bool,
    /// S3 only: uploads the writes that ask for a lock with Object Lock retention.
    object_lock: Option<Arc<dyn ObjectLock>>,
    /// S3 only: what requests sign with, asked why when signing failed.
    credentials: Option<Credentials>,
}

impl OpendalStore {
    /// A store in the local directory `root`, which must already exist.
    pub fn fs(root: &Path, address: impl Into<String>) -> Result<Self> {
        let address = address.into();
        let temp_dir = root.join(FS_TEMP_DIR);
        let builder = opendal::services::Fs::default()
            .root(&root.to_string_lossy())
            .atomic_write_dir(&temp_dir.to_string_lossy());
        let operator = build_operator(builder, &address)?;
        let exclusive = ExclusiveWrite::HardLink {
            root: root.to_path_buf(),
            temp_dir,
        };
        Ok(Self::from_parts(operator, address, exclusive, false))
    }

    /// A fresh, empty in-memory store (see `address::open` for shared named ones).
    pub fn memory(address: impl Into<String>) -> Result<Self> {
        let address = address.into();
        let operator = build_operator(opendal::services::Memory::default(), &address)?;
        Ok(Self::from_parts(operator, address, ExclusiveWrite::Native, false))
    }

    /// An S3 (or S3-compatible) store from a configured builder. Large objects are
    /// uploaded in parts.
    pub fn s3(builder: opendal::services::S3, address: impl Into<String>) -> Result<Self> {
        // Without auto-registration opendal has no HTTP client until one is installed.
        opendal::install_default();
        let address = address.into();
        let operator = build_operator(builder, &address)?;
        Ok(Self::from_parts(operator, address, ExclusiveWrite::Native, true))
    }

    fn from_parts(operator: Operator, address: String, exclusive: ExclusiveWrite, multipart: bool) -> Self {
        Self {
            operator,
            address: address.trim_end_matches('/').to_string(),
            exclusive,
            multipart,
            object_lock: None,
            credentials: None,
        }
    }

    /// Say why signing failed, in `credentials`' words, when a request could not be signed.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Upload the writes that ask for a lock through `lock`, with Object Lock retention.
    pub fn with_object_lock(mut self, lock: Arc<dyn ObjectLock>) -> Self {
        self.object_lock = Some(lock);
        self
    }

    fn location(&self, key: &str) -> String {
        format!("{}/{}", self.address, key)
    }

    fn map_err(&self, key: &str) -> impl FnOnce(opendal::Error) -> StorageError + '_ {
        let location = self.location(key);
        move |err| match self.signing_failure(&err) {
            Some(why) => StorageError::new(ErrorKind::PermissionDenied, location, why),
            None => map_opendal_error(&err, location),
        }
    }

    /// Why credentials could not be loaded, when `err` is a request that could not be signed.
    fn signing_failure(&self, err: &opendal::Error) -> Option<String> {
        let credentials = self.credentials.as_ref()?;
        err.to_string()
            .contains("reqsign::")
            .then(|| credentials.last_failure())?
    }

    /// The file behind `key` on the local-file backend. Reads go straight to it: opendal's
    /// fs reader zero-fills a buffer of the requested size before every read, megabytes
    /// for a small object read whole.
    fn local_path(&self, key: &str) -> Option<PathBuf> {
        match &self.exclusive {
            ExclusiveWrite::HardLink { root, .. } => Some(root.join(key)),
            ExclusiveWrite::Native => None,
        }
    }

    fn uses_multipart(&self, len: usize) -> bool {
        self.multipart && len >= MULTIPART_THRESHOLD
    }

    async fn write(&self, key: &str, data: Bytes, if_not_exists: bool) -> Result<()> {
        if self.uses_multipart(data.len()) {
            return self.write_multipart(key, data, if_not_exists).await;
        }
        self.operator
            .write_with(key, data)
            .if_not_exists(if_not_exists)
            .await
            .map(|_| ())
            .map_err(self.map_err(key))
    }

    async fn write_multipart(&self, key: &str, data: Bytes, if_not_exists: bool) -> Result<()> {
        let mut writer = self
            .operator
            .writer_with(key)
            .if_not_exists(if_not_exists)
            .chunk(MULTIPART_CHUNK)
            .concurrent(MULTIPART_CONCURRENCY)
            .await
            .map_err(self.map_err(key))?;
        let written = match writer.write(data).await {
            Ok(()) => writer.close().await.map(|_| ()),
            Err(err) => Err(err),
        };
        if written.is_err() {
            // Best effort: leaving parts behind costs money but not correctness.
            let _ = writer.abort().await;
        }
        written.map_err(self.map_err(key))
    }

    async fn native_put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        match self.write(key, data, true).await {
            Ok(()) => Ok(true),
            Err(err) if err.kind == ErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn hard_link_put_if_absent(&self, key: &str, data: Bytes, root: &Path, temp_dir: &Path) -> Result<bool> {
        let target = root.join(key);
        let temp_dir = temp_dir.to_path_buf();
        let location = self.location(key);
        let linked = tokio::task::spawn_blocking(move || link_new_file(&target, &temp_dir, &data))
            .await
            .map_err(|err| StorageError::new(ErrorKind::Permanent, &location, err.to_string()))?;
        linked.map_err(|err| map_io_error(&err, location))
    }

    /// Size of a listed entry; some services (memory) list names without sizes.
    async fn listed_size(&self, path: &str, meta: &opendal::Metadata) -> Result<u64> {
        if meta.mode() == EntryMode::FILE {
            return Ok(meta.content_length());
        }
        let stat = self.operator.stat(path).await.map_err(self.map_err(path))?;
        Ok(stat.content_length())
    }
}

#[async_trait]
impl Store for OpendalStore {
    fn address(&self) -> &str {
        &self.address
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        check_key(key, &self.location(key))?;
        if let ExclusiveWrite::HardLink { root, temp_dir } = &self.exclusive {
            let (target, temp_dir) = (root.join(key), temp_dir.clone());
            let location = self.location(key);
            return blocking(location.clone(), move || replace_file(&target, &temp_dir, &data))
                .await?
                .map_err(|err| map_io_error(&err, location));
        }
        self.write(key, data, false).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        check_key(key, &self.location(key))?;
        match &self.exclusive {
            ExclusiveWrite::Native => self.native_put_if_absent(key, data).await,
            ExclusiveWrite::HardLink { root, temp_dir } => {
                self.hard_link_put_if_absent(key, data, root, temp_dir).await
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        check_key(key, &self.location(key))?;
        if let Some(path) = self.local_path(key) {
            let location = self.location(key);
            return blocking(location.clone(), move || std::fs::read(&path).map(Bytes::from))
                .await?
                .map_err(|err| map_io_error(&err, location));
        }
        let buffer = self.operator.read(key).await.map_err(self.map_err(key))?;
        Ok(buffer.to_bytes())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        check_key(key, &self.location(key))?;
        check_range(&range, &self.location(key))?;
        if range.is_empty() {
            // A zero-length HTTP range is not expressible; still report a missing object.
            return self.stat_required(key).await.map(|_| Bytes::new());
        }
        if let Some(path) = self.local_path(key) {
            let location = self.location(key);
            let (start, end) = (range.start, range.end);
            return blocking(location.clone(), move || read_local_range(&path, start, end))
                .await?
                .map_err(|err| match err {
                    LocalRange::Io(err) => map_io_error(&err, location),
                    LocalRange::Short(size) => StorageError::new(
                        ErrorKind::Permanent,
                        location,
                        format!("range {start}..{end} exceeds object size {size}"),
                    ),
                });
        }
        match self.operator.read_with(key).range(range.clone()).await {
            Ok(buffer) => Ok(buffer.to_bytes()),
            Err(err) => Err(self.explain_range_failure(key, range, err).await),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let entries = self
            .operator
            .list_with(listing_dir(prefix))
            .recursive(true)
            .await
            .map_err(self.map_err(prefix))?;
        let mut objects = Vec::new();
        for entry in entries {
            let (path, meta) = entry.into_parts();
            if is_listed_object(&path, &meta, prefix) {
                let size = self.listed_size(&path, &meta).await?;
                objects.push(ObjectMeta { key: path, size });
            }
        }
        Ok(objects)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key, &self.location(key))?;
        self.operator.delete(key).await.map_err(self.map_err(key))
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>> {
        check_key(key, &self.location(key))?;
        match self.operator.stat(key).await {
            Ok(meta) if meta.is_dir() => Ok(None),
            Ok(meta) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: meta.content_length(),
            })),
            Err(err) if err.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.map_err(key)(err)),
        }
    }

    async fn put_with(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<bool> {
        let Some(until) = opts.retain_until else {
            return match opts.if_absent {
                true => self.put_if_absent(key, data).await,
                false => self.put(key, data).await.map(|()| true),
            };
        };
        check_key(key, &self.location(key))?;
        // One PUT whatever the size: S3 takes up to 5 GiB, and packs are far smaller.
        match self
            .lock_writer(key)?
            .put(key, data, opts.if_absent, until, &self.location(key))
            .await
        {
            Ok(()) => Ok(true),
            Err(err) if opts.if_absent && err.kind == ErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(err),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            lock_days: self.object_lock.as_ref().map(|lock| lock.days()),
        }
    }

    async fn extend_lock(&self, key: &str, until: chrono::DateTime<chrono::Utc>) -> Result<()> {
        check_key(key, &self.location(key))?;
        self.lock_writer(key)?.extend(key, until, &self.location(key)).await
    }

    async fn check_setup(&self) -> Result<()> {
        match &self.object_lock {
            Some(lock) => lock.check_bucket(&self.address).await,
            None => Ok(()),
        }
    }
}

impl OpendalStore {
    /// The Object Lock writer, or the error for a lock asked of a store without one.
    fn lock_writer(&self, key: &str) -> Result<&dyn ObjectLock> {
        self.object_lock
            .as_deref()
            .ok_or_else(|| not_locking(&self.location(key)))
    }

    /// Backends disagree on a range past the end (an error, a short read retried as
    /// if transient), so check the size and report that case the same way everywhere:
    /// as permanent, because a shorter object than expected will not grow back.
    async fn explain_range_failure(&self, key: &str, range: Range<u64>, err: opendal::Error) -> StorageError {
        let original = self.map_err(key)(err);
        if original.is_not_found() {
            return original;
        }
        match self.stat(key).await {
            Ok(Some(meta)) if range.end > meta.size => StorageError::new(
                ErrorKind::Permanent,
                self.location(key),
                format!("range {}..{} exceeds object size {}", range.start, range.end, meta.size),
            ),
            Ok(None) => StorageError::new(ErrorKind::NotFound, self.location(key), "object not found"),
            _ => original,
        }
    }

    async fn stat_required(&self, key: &str) -> Result<ObjectMeta> {
        self.stat(key)
            .await?
            .ok_or_else(|| StorageError::new(ErrorKind::NotFound, self.location(key), "object not found"))
    }
}

/// Build an operator with the retry and timeout layers every backend gets.
fn build_operator(builder: impl opendal::Builder, address: &str) -> Result<Operator> {
    let operator = Operator::new(builder).map_err(|err| map_opendal_error(&err, address))?;
    // opendal counts retries, not attempts.
    let retry = RetryLayer::new()
        .with_jitter()
        .with_max_times(RETRY.attempts.saturating_sub(1) as usize)
        .with_min_delay(RETRY.min_delay)
        .with_max_delay(RETRY.max_delay)
        .with_notify(log_retry);
    let timeout = TimeoutLayer::new()
        .with_timeout(RETRY.attempt_timeout)
        .with_io_timeout(RETRY.io_timeout);
    // Timeout inside retry: each attempt is timed out, and a timeout is retried.
    Ok(operator.layer(timeout).layer(retry))
}

/// Each retry at debug level and without a backtrace (opendal's default logs it at
/// warn with the error's debug form, which carries one when `RUST_BACKTRACE` is set): a
/// failure that outlasts the retries is reported once, by the caller, naming its region.
fn log_retry(event: RetryEvent<'_>) {
    let after_ms = u64::try_from(event.retry_after.as_millis()).unwrap_or(u64::MAX);
    tracing::debug!(operation = ?event.op, attempt = event.attempt, after_ms, "storage retry: {}", event.err);
}

/// Translate an opendal error into Lifeboat's storage error for `location`. A cause the
/// user can act on (connection refused, wrong secret, ...) is recognised so the message
/// can say what to do; the full chain goes to the debug log only.
pub fn map_opendal_error(err: &opendal::Error, location: impl Into<String>) -> StorageError {
    let location = location.into();
    // The debug form holds the context (URL) and the source chain, and may end in a
    // backtrace, whose function names (`timeout`, `tls`) must not be read as causes.
    let full = format!("{err:?}");
    let chain = full.split("\nBacktrace:").next().unwrap_or_default().trim_end();
    tracing::debug!(%location, "storage error: {chain}");
    let mapped = StorageError::new(opendal_error_kind(err), location, err.to_string());
    let cause = classify(chain).or((err.kind() == opendal::ErrorKind::PermissionDenied).then_some(Cause::AccessDenied));
    match cause {
        Some(cause) => mapped.with_cause(cause, server_in(chain)),
        None => mapped,
    }
}

fn opendal_error_kind(err: &opendal::Error) -> ErrorKind {
    use opendal::ErrorKind as Od;
    match err.kind() {
        Od::NotFound => ErrorKind::NotFound,
        Od::AlreadyExists | Od::ConditionNotMatch => ErrorKind::AlreadyExists,
        Od::PermissionDenied => ErrorKind::PermissionDenied,
        Od::RangeNotSatisfied => ErrorKind::Permanent,
        // `persistent` means "was temporary, and still failed after our retries".
        Od::RateLimited => ErrorKind::Transient,
        _ if err.is_temporary() || err.is_persistent() => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// Run blocking file I/O off the async workers.
async fn blocking<T: Send + 'static>(location: String, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| StorageError::new(ErrorKind::Permanent, location, err.to_string()))
}

enum LocalRange {
    Io(std::io::Error),
    /// The file is shorter than the range's end; its size.
    Short(u64),
}

/// Bytes `start..end` of a local file, read into spare capacity (no zero-filling).
fn read_local_range(path: &Path, start: u64, end: u64) -> std::result::Result<Bytes, LocalRange> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(LocalRange::Io)?;
    file.seek(SeekFrom::Start(start)).map_err(LocalRange::Io)?;
    let len = end - start;
    let mut out = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut out).map_err(LocalRange::Io)?;
    if (out.len() as u64) < len {
        let size = std::fs::metadata(path).map_err(LocalRange::Io)?.len();
        return Err(LocalRange::Short(size));
    }
    Ok(Bytes::from(out))
}

fn map_io_error(err: &std::io::Error, location: String) -> StorageError {
    use std::io::ErrorKind as Io;
    let kind = match err.kind() {
        Io::NotFound => ErrorKind::NotFound,
        Io::AlreadyExists => ErrorKind::AlreadyExists,
        Io::PermissionDenied => ErrorKind::PermissionDenied,
        Io::Interrupted | Io::TimedOut | Io::WouldBlock => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    StorageError::new(kind, location, err.to_string())
}

/// Keys are `/`-separated relative names; anything that could escape a root or
/// name a directory is refused the same way on every backend.
pub fn check_key(key: &str, location: &str) -> Result<()> {
    let bad_segment = key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if bad_segment || key.contains('\\') || key.contains('\0') {
        return Err(StorageError::new(
            ErrorKind::Permanent,
            location,
            "invalid key: expected `/`-separated names without empty, `.` or `..` parts",
        ));
    }
    Ok(())
}

fn check_range(range: &Range<u64>, location: &str) -> Result<()> {
    if range.start > range.end {
        return Err(StorageError::new(
            ErrorKind::Permanent,
            location,
            format!("invalid range {}..{}", range.start, range.end),
        ));
    }
    Ok(())
}

/// The directory to list recursively so that every key starting with `prefix` is
/// found: the prefix up to and including its last `/`, or the root.
fn listing_dir(prefix: &str) -> &str {
    match prefix.rfind('/') {
        Some(slash) => &prefix[..=slash],
        None => "/",
    }
}

fn is_listed_object(path: &str, meta: &opendal::Metadata, prefix: &str) -> bool {
    !meta.is_dir() && !path.ends_with('/') && path.starts_with(prefix) && !path.starts_with(FS_TEMP_DIR)
}

/// Create `target` with `data` only if it does not exist, atomically: the complete
/// content is written and synced under a temp name first, then hard-linked into place.
/// Returns `false` when `target` already existed.
fn link_new_file(target: &Path, temp_dir: &Path, data: &[u8]) -> std::io::Result<bool> {
    let temp = prepare_write(target, temp_dir)?;
    let linked = write_synced(&temp, data).and_then(|_| std::fs::hard_link(&temp, target));
    // The temp name is ours alone; failing to remove it leaves litter, not damage.
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => sync_parent(target).map(|()| true),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err),
    }
}

/// Create or replace `target` with `data` atomically: written and synced owner-only
/// under a temp name, then renamed into place.
fn replace_file(target: &Path, temp_dir: &Path, data: &[u8]) -> std::io::Result<()> {
    let temp = prepare_write(target, temp_dir)?;
    let renamed = write_synced(&temp, data).and_then(|_| std::fs::rename(&temp, target));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    renamed.and_then(|()| sync_parent(target))
}

/// Creates the directories a write needs (owner-only) and returns a fresh temp path.
fn prepare_write(target: &Path, temp_dir: &Path) -> std::io::Result<PathBuf> {
    if let Some(parent) = target.parent() {
        private_dirs(parent)?;
    }
    private_dirs(temp_dir)?;
    Ok(temp_dir.join(unique_temp_name()))
}

/// `create_dir_all` whose new directories are 0700.
pub fn private_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

fn unique_temp_name() -> String {
    format!("exclusive-{:032x}.tmp", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn od(kind: opendal::ErrorKind) -> opendal::Error {
        opendal::Error::new(kind, "boom")
    }

    #[test]
    fn error_kinds_map_to_storage_kinds() {
        use opendal::ErrorKind as Od;
        let cases = [
            (Od::NotFound, ErrorKind::NotFound),
            (Od::AlreadyExists, ErrorKind::AlreadyExists),
            (Od::ConditionNotMatch, ErrorKind::AlreadyExists),
            (Od::PermissionDenied, ErrorKind::PermissionDenied),
            (Od::RateLimited, ErrorKind::Transient),
            (Od::ConfigInvalid, ErrorKind::Permanent),
            (Od::RangeNotSatisfied, ErrorKind::Permanent),
            (Od::Unexpected, ErrorKind::Permanent),
        ];
        for (from, to) in cases {
            assert_eq!(opendal_error_kind(&od(from)), to, "{from:?}");
        }
    }

    #[test]
    fn temporary_and_exhausted_retries_are_transient() {
        let temporary = od(opendal::ErrorKind::Unexpected).set_temporary();
        assert_eq!(opendal_error_kind(&temporary), ErrorKind::Transient);
        let exhausted = od(opendal::ErrorKind::Unexpected).set_persistent();
        assert_eq!(opendal_error_kind(&exhausted), ErrorKind::Transient);
    }

    #[test]
    fn mapped_error_names_the_location() {
        let err = map_opendal_error(&od(opendal::ErrorKind::NotFound), "s3://b/p/config");
        assert_eq!(err.location, "s3://b/p/config");
        assert!(err.is_not_found());
        assert!(err.to_string().starts_with("s3://b/p/config: "));
    }

    #[test]
    fn keys_that_could_escape_the_root_are_refused() {
        for bad in ["", "/a", "a/", "a//b", "../a", "a/./b", "a\\b"] {
            assert!(check_key(bad, "x").is_err(), "{bad:?} accepted");
        }
        for good in ["config", "data/ab/abcdef", "locks/x.y"] {
            assert!(check_key(good, "x").is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn listing_starts_at_the_prefix_directory() {
        assert_eq!(listing_dir(""), "/");
        assert_eq!(listing_dir("data"), "/");
        assert_eq!(listing_dir("data/"), "data/");
        assert_eq!(listing_dir("data/ab"), "data/");
    }

    #[test]
    fn hard_link_write_refuses_an_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b");
        let temp = dir.path().join("tmp");
        assert!(link_new_file(&target, &temp, b"one").unwrap());
        assert!(!link_new_file(&target, &temp, b"two").unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        assert_eq!(std::fs::read_dir(&temp).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn local_objects_are_owner_only_and_so_are_their_folders() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = OpendalStore::fs(dir.path(), "file:///t").unwrap();
        store.put("keys/k1", Bytes::from_static(b"wrapped")).await.unwrap();
        store.put("keys/k1", Bytes::from_static(b"again")).await.unwrap();
        assert!(
            store
                .put_if_absent("data/ab/p1", Bytes::from_static(b"x"))
                .await
                .unwrap()
        );
        let mode = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("keys/k1"), mode("data/ab/p1")), (0o600, 0o600));
        assert_eq!((mode("keys"), mode("data"), mode("data/ab")), (0o700, 0o700, 0o700));
        assert_eq!(store.get("keys/k1").await.unwrap(), Bytes::from_static(b"again"));
    }
}

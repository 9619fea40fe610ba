//! S3 Object Lock uploads: `PUT` requests that carry a retention period.
//!
//! opendal 0.59's S3 writer can set a storage class, user metadata and an ACL, but not
//! `x-amz-object-lock-mode` / `x-amz-object-lock-retain-until-date`. For a store opened
//! with `?object_lock_days=N`, the objects that make up a snapshot (`data/` packs and
//! `snapshots/`) are therefore uploaded here instead: one signed single-part `PUT`
//! (SigV4 via reqsign, the signer opendal itself uses) with
//!
//! * `x-amz-object-lock-mode: COMPLIANCE` and a retain-until date `N` days from now, so
//!   no one, the account owner included, can delete or overwrite that version before
//!   the date;
//! * `Content-MD5`, which AWS requires on any `PUT` with Object Lock parameters;
//! * `If-None-Match: *` for `put_if_absent`, and the store's storage class if any.
//!
//! The bucket must have been created with Object Lock enabled (which also turns on
//! versioning); otherwise the server refuses the `PUT` and the error says so. Deleting
//! a locked key without a version id still "succeeds" by adding a delete marker, so
//! `forget` and `prune` keep working; the locked versions stay recoverable until their
//! retention ends. Everything else (`index/`, `locks/`, `keys/`, `config`) is written
//! through opendal without a lock, because those objects are replaced or removed in
//! normal operation.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest as _, Md5};
use reqsign_aws_v4::{Credential, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, Signer};

use super::{ErrorKind, Result, StorageError};

/// Key prefixes whose objects are written with a retention period.
const LOCKED_PREFIXES: [&str; 2] = ["data/", "snapshots/"];
const ATTEMPTS: u32 = 5;

/// Uploads objects of one S3 store with Object Lock retention.
#[derive(Clone)]
pub struct ObjectLockWriter {
    client: reqwest::Client,
    signer: Signer<Credential>,
    /// `https://endpoint/bucket`, path-style like the rest of the S3 store.
    bucket_url: url::Url,
    /// Key prefix inside the bucket, without leading or trailing `/`.
    prefix: String,
    days: u32,
    storage_class: Option<String>,
}

impl std::fmt::Debug for ObjectLockWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLockWriter")
            .field("bucket_url", &self.bucket_url.as_str())
            .field("prefix", &self.prefix)
            .field("days", &self.days)
            .field("storage_class", &self.storage_class)
            .finish_non_exhaustive()
    }
}

/// What an `ObjectLockWriter` needs to know about its store.
pub struct ObjectLockTarget<'a> {
    pub endpoint: Option<&'a str>,
    pub region: &'a str,
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub days: u32,
    pub storage_class: Option<&'a str>,
}

impl ObjectLockWriter {
    pub fn new(target: &ObjectLockTarget<'_>, display: &str) -> Result<Self> {
        let endpoint = target
            .endpoint
            .map(str::to_string)
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", target.region));
        let mut bucket_url = url::Url::parse(&endpoint)
            .map_err(|err| StorageError::new(ErrorKind::Permanent, display, format!("bad endpoint: {err}")))?;
        bucket_url
            .path_segments_mut()
            .map_err(|()| StorageError::new(ErrorKind::Permanent, display, "endpoint cannot take a path"))?
            .pop_if_empty()
            .push(target.bucket);
        let mut credentials = StaticCredentialProvider::new(target.access_key_id, target.secret_access_key);
        if let Some(token) = target.session_token {
            credentials = credentials.with_session_token(token);
        }
        let signer = Signer::new(Context::new(), credentials, RequestSigner::new("s3", target.region));
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|err| StorageError::new(ErrorKind::Permanent, display, format!("HTTP client: {err}")))?;
        Ok(Self {
            client,
            signer,
            bucket_url,
            prefix: target.prefix.trim_matches('/').to_string(),
            days: target.days,
            storage_class: target.storage_class.map(str::to_string),
        })
    }

    /// Whether `key` is written with a retention period.
    pub fn applies_to(key: &str) -> bool {
        LOCKED_PREFIXES.iter().any(|p| key.starts_with(p))
    }

    pub fn days(&self) -> u32 {
        self.days
    }

    /// Upload `data` under `key` with retention, retrying transient failures. With
    /// `if_not_exists`, an existing object gives `ErrorKind::AlreadyExists`.
    pub async fn put(&self, key: &str, data: Bytes, if_not_exists: bool, location: &str) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.put_once(key, data.clone(), if_not_exists, location).await {
                Err(err) if err.is_transient() && attempt < ATTEMPTS => {
                    let backoff = 100u64 << attempt.min(6);
                    let jitter = rand::random::<u64>() % backoff;
                    tokio::time::sleep(Duration::from_millis((backoff + jitter).min(5_000))).await;
                }
                outcome => return outcome,
            }
        }
    }

    fn object_url(&self, key: &str) -> url::Url {
        let mut url = self.bucket_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(self.prefix.split('/').filter(|s| !s.is_empty()));
            segments.extend(key.split('/'));
        }
        url
    }

    async fn put_once(&self, key: &str, data: Bytes, if_not_exists: bool, location: &str) -> Result<()> {
        let fail = |kind: ErrorKind, message: String| StorageError::new(kind, location, message);
        let retain_until = chrono::Utc::now() + chrono::Duration::days(i64::from(self.days));
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&data));
        let mut request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(self.object_url(key).as_str())
            .header(http::header::CONTENT_LENGTH, data.len().to_string())
            .header("content-md5", md5)
            .header("x-amz-object-lock-mode", "COMPLIANCE")
            .header(
                "x-amz-object-lock-retain-until-date",
                retain_until.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            );
        if if_not_exists {
            request = request.header(http::header::IF_NONE_MATCH, "*");
        }
        if let Some(class) = &self.storage_class {
            request = request.header("x-amz-storage-class", class.as_str());
        }
        let (mut parts, ()) = request
            .body(())
            .map_err(|err| fail(ErrorKind::Permanent, format!("cannot build request: {err}")))?
            .into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|err| fail(ErrorKind::PermissionDenied, format!("cannot sign request: {err}")))?;
        // reqwest sets Host from the URL (what was signed); a second one confuses servers.
        parts.headers.remove(http::header::HOST);
        let response = self
            .client
            .request(http::Method::PUT, parts.uri.to_string())
            .headers(parts.headers)
            .body(data)
            .send()
            .await
            .map_err(|err| fail(ErrorKind::Transient, format!("object-lock PUT failed: {err}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let kind = status_kind(status.as_u16(), if_not_exists);
        Err(fail(kind, describe_failure(status.as_u16(), &body, self.days)))
    }
}

fn status_kind(status: u16, if_not_exists: bool) -> ErrorKind {
    match status {
        412 if if_not_exists => ErrorKind::AlreadyExists,
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        // 409: a concurrent conditional write is in progress; the retry decides.
        408 | 409 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// The S3 error code and message from an XML error body, with a hint for the usual
/// misconfiguration (a bucket created without Object Lock).
fn describe_failure(status: u16, body: &str, days: u32) -> String {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(body[start..end].to_string())
    };
    let code = field("Code").unwrap_or_default();
    let message = field("Message").unwrap_or_default();
    let mut text = format!("object-lock PUT ({days} days, COMPLIANCE) refused: HTTP {status} {code} {message}");
    if status == 400 || code.contains("ObjectLock") || message.to_lowercase().contains("object lock") {
        text.push_str(
            " — is Object Lock enabled on this bucket? It can only be turned on when the bucket is created \
             (or by AWS support); without it drop `object_lock_days` from the address",
        );
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(endpoint: Option<&str>, prefix: &str) -> ObjectLockWriter {
        let target = ObjectLockTarget {
            endpoint,
            region: "eu-west-1",
            bucket: "bkt",
            prefix,
            access_key_id: "AK",
            secret_access_key: "SK",
            session_token: None,
            days: 30,
            storage_class: None,
        };
        ObjectLockWriter::new(&target, "s3://bkt").unwrap()
    }

    #[test]
    fn only_snapshot_data_is_locked() {
        assert!(ObjectLockWriter::applies_to("data/ab/abcdef"));
        assert!(ObjectLockWriter::applies_to("snapshots/abcdef"));
        for key in ["index/ab", "locks/x", "keys/k", "config", "probe/x"] {
            assert!(!ObjectLockWriter::applies_to(key), "{key}");
        }
    }

    #[test]
    fn object_urls_are_path_style_under_the_prefix() {
        let w = writer(Some("http://127.0.0.1:9000/"), "team/repo");
        assert_eq!(
            w.object_url("data/ab/cd").as_str(),
            "http://127.0.0.1:9000/bkt/team/repo/data/ab/cd"
        );
        let aws = writer(None, "");
        assert_eq!(
            aws.object_url("config").as_str(),
            "https://s3.eu-west-1.amazonaws.com/bkt/config"
        );
    }

    #[test]
    fn failures_are_classified_and_explained() {
        assert_eq!(status_kind(412, true), ErrorKind::AlreadyExists);
        assert_eq!(status_kind(403, false), ErrorKind::PermissionDenied);
        assert_eq!(status_kind(503, false), ErrorKind::Transient);
        assert_eq!(status_kind(400, false), ErrorKind::Permanent);
        let body =
            "<Error><Code>InvalidRequest</Code><Message>Bucket is missing Object Lock Configuration</Message></Error>";
        let text = describe_failure(400, body, 30);
        assert!(
            text.contains("InvalidRequest") && text.contains("is Object Lock enabled"),
            "{text}"
        );
    }
}

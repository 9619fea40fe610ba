//! S3 Object Lock uploads: `PUT` requests that carry a retention period.
//!
//! opendal 0.59's S3 writer can set a storage class, user metadata and an ACL, but not
//! `x-amz-object-lock-mode` / `x-amz-object-lock-retain-until-date`. A write whose put
//! options ask for a lock (`PutOptions::retain_until`) is therefore uploaded here
//! instead: one signed single-part `PUT` (SigV4 via reqsign, the signer opendal itself
//! uses) with
//!
//! * `x-amz-object-lock-mode: COMPLIANCE` and the retain-until date the caller chose, so
//!   no one, the account owner included, can delete or overwrite that version before
//!   the date;
//! * `Content-MD5`, which AWS requires on any `PUT` with Object Lock parameters;
//! * `If-None-Match: *` for a create-only write, and the store's storage class if any.
//!
//! Which objects are locked, and for how long, is decided above this layer (the
//! repository locks by kind of object); this file only knows keys. The bucket must have
//! been created with Object Lock enabled (which also turns on versioning);
//! `check_bucket` reads its configuration when a repository is created or opened, and
//! a bucket without it is refused with that reason. `extend` raises an object's
//! retention (`PUT ?retention`). Deleting a locked key without a version id still
//! "succeeds" by adding a delete marker; the locked version stays recoverable until its
//! retention ends.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use md5::{Digest as _, Md5};
use reqsign_aws_v4::{Credential, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, Signer};

use super::{ErrorKind, Result, StorageError};

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

    /// The retention, in days, the store's address asks for.
    pub fn days(&self) -> u32 {
        self.days
    }

    /// Raise the retention of `key` to `until` (COMPLIANCE). S3 refuses to shorten a
    /// COMPLIANCE lock, so this never weakens one.
    pub async fn extend(&self, key: &str, until: chrono::DateTime<chrono::Utc>, location: &str) -> Result<()> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode>\
             <RetainUntilDate>{}</RetainUntilDate></Retention>",
            until.format("%Y-%m-%dT%H:%M:%S%.3fZ")
        );
        let mut url = self.object_url(key);
        url.set_query(Some("retention"));
        let body = Bytes::from(body);
        retrying(|| async {
            let (status, text) = self
                .send(http::Method::PUT, &url, Vec::new(), body.clone(), location)
                .await?;
            if (200..300).contains(&status) {
                return Ok(());
            }
            let (code, message) = error_fields(&text);
            Err(StorageError::new(
                status_kind(status, false),
                location,
                format!("extending Object Lock retention refused: HTTP {status} {code} {message}")
                    .trim_end()
                    .to_string(),
            ))
        })
        .await
    }

    /// Check that the bucket has Object Lock enabled, so that locked uploads can work.
    pub async fn check_bucket(&self, location: &str) -> Result<()> {
        retrying(|| self.check_bucket_once(location)).await
    }

    async fn check_bucket_once(&self, location: &str) -> Result<()> {
        let mut url = self.bucket_url.clone();
        url.set_query(Some("object-lock"));
        let (status, text) = self
            .send(http::Method::GET, &url, Vec::new(), Bytes::new(), location)
            .await?;
        let enabled = (200..300).contains(&status) && text.contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>");
        if enabled {
            return Ok(());
        }
        let (code, message) = error_fields(&text);
        if status == 404 || code.contains("ObjectLockConfiguration") || (200..300).contains(&status) {
            return Err(StorageError::new(
                ErrorKind::Permanent,
                location,
                format!(
                    "the bucket has no Object Lock configuration, so object_lock_days={} cannot be honoured — \
                     create the bucket with Object Lock enabled, or drop object_lock_days from the address",
                    self.days
                ),
            ));
        }
        Err(StorageError::new(
            status_kind(status, false),
            location,
            format!("cannot read the bucket's Object Lock configuration: HTTP {status} {code} {message}")
                .trim_end()
                .to_string(),
        ))
    }

    /// One signed request (no retries); returns the status and body.
    async fn send(
        &self,
        method: http::Method,
        url: &url::Url,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
        location: &str,
    ) -> Result<(u16, String)> {
        let fail = |kind: ErrorKind, message: String| StorageError::new(kind, location, message);
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .header(http::header::CONTENT_LENGTH, body.len().to_string());
        if !body.is_empty() {
            request = request.header("content-md5", md5);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let (mut parts, ()) = request
            .body(())
            .map_err(|err| fail(ErrorKind::Permanent, format!("cannot build request: {err}")))?
            .into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|err| fail(ErrorKind::PermissionDenied, format!("cannot sign request: {err}")))?;
        parts.headers.remove(http::header::HOST);
        let response = self
            .client
            .request(method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|err| fail(ErrorKind::Transient, format!("request failed: {err}")))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// Upload `data` under `key` locked until `until`, retrying transient failures.
    /// With `if_not_exists`, an existing object gives `ErrorKind::AlreadyExists`.
    pub async fn put(
        &self,
        key: &str,
        data: Bytes,
        if_not_exists: bool,
        until: chrono::DateTime<chrono::Utc>,
        location: &str,
    ) -> Result<()> {
        retrying(|| self.put_once(key, data.clone(), if_not_exists, until, location)).await
    }

    fn object_url(&self, key: &str) -> url::Url {
        let mut url = self.bucket_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend(self.prefix.split('/').filter(|s| !s.is_empty()));
            segments.extend(key.split('/'));
        }
        url
    }

    async fn put_once(
        &self,
        key: &str,
        data: Bytes,
        if_not_exists: bool,
        retain_until: chrono::DateTime<chrono::Utc>,
        location: &str,
    ) -> Result<()> {
        let mut headers = vec![
            ("x-amz-object-lock-mode", "COMPLIANCE".to_string()),
            (
                "x-amz-object-lock-retain-until-date",
                retain_until.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            ),
        ];
        if if_not_exists {
            headers.push(("if-none-match", "*".to_string()));
        }
        if let Some(class) = &self.storage_class {
            headers.push(("x-amz-storage-class", class.clone()));
        }
        let (status, body) = self
            .send(http::Method::PUT, &self.object_url(key), headers, data, location)
            .await
            .map_err(|err| StorageError::new(err.kind, location, format!("object-lock PUT failed: {}", err.message)))?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        let kind = status_kind(status, if_not_exists);
        Err(StorageError::new(
            kind,
            location,
            describe_failure(status, &body, self.days),
        ))
    }
}

/// Run `call` until it succeeds, fails for good, or `ATTEMPTS` transient failures
/// (transport errors, 408/409/429/5xx) have happened, with jittered exponential backoff.
async fn retrying<F, Fut>(mut call: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(err) if err.is_transient() && attempt < ATTEMPTS => {
                let backoff = 100u64 << attempt.min(6);
                let jitter = rand::random::<u64>() % backoff;
                tokio::time::sleep(Duration::from_millis((backoff + jitter).min(5_000))).await;
            }
            outcome => return outcome,
        }
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

/// The `Code` and `Message` of an S3 XML error body (empty when absent).
fn error_fields(body: &str) -> (String, String) {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(body[start..end].to_string())
    };
    (field("Code").unwrap_or_default(), field("Message").unwrap_or_default())
}

/// The S3 error code and message from an XML error body, with a hint for the usual
/// misconfiguration (a bucket created without Object Lock).
fn describe_failure(status: u16, body: &str, days: u32) -> String {
    let (code, message) = error_fields(body);
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

//! S3 Object Lock through aws-sdk-s3: locked uploads, raised retention, and the bucket's
//! lock configuration.
//!
//! opendal's S3 writer cannot send `x-amz-object-lock-*`, so a write whose put options
//! ask for a lock comes here: `PutObject` with COMPLIANCE mode and the caller's
//! retain-until date (no one, the account owner included, can delete or overwrite that
//! version before it), `If-None-Match: *` for a create-only write, the store's storage
//! class, and a CRC32 checksum, which AWS requires on any upload with lock parameters.
//! `PutObjectRetention` raises a lock; `GetObjectLockConfiguration` tells, from its typed
//! answer, whether the bucket was created with Object Lock (which also turns on
//! versioning). Deleting a locked key without a version id still "succeeds" by adding a
//! delete marker; the locked version stays until its retention ends.
//!
//! Retries and timeouts are the SDK's, set from the store's one policy
//! (`storage::RETRY`), not a loop of our own on top.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object_lock_configuration::GetObjectLockConfigurationOutput;
use aws_sdk_s3::primitives::{ByteStream, DateTime as AwsDateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ObjectLockEnabled, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode, StorageClass,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::credentials::not_loaded_in;
use super::{Credentials, LockTarget, ObjectLock};
use crate::storage::cause::{classify, server_in};
use crate::storage::{ErrorKind, RETRY, Result, StorageError};

/// The lock client of one S3 store.
#[derive(Debug)]
pub struct LockClient {
    client: Client,
    target: LockTarget,
}

impl LockClient {
    pub fn new(target: LockTarget, credentials: Credentials) -> Self {
        let retry = RetryConfig::standard()
            .with_max_attempts(RETRY.attempts)
            .with_initial_backoff(RETRY.min_delay)
            .with_max_backoff(RETRY.max_delay);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(RETRY.connect_timeout)
            .operation_attempt_timeout(RETRY.attempt_timeout)
            .build();
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(target.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(true)
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(endpoint) = &target.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(config.build()),
            target,
        }
    }

    fn object_key(&self, key: &str) -> String {
        match self.target.prefix.as_str() {
            "" => key.to_string(),
            prefix => format!("{prefix}/{key}"),
        }
    }

    /// A storage error for a failed SDK call about `location`.
    fn failed<E>(&self, err: &SdkError<E>, location: &str, if_absent: bool, what: &str) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let full = DisplayErrorContext(err).to_string();
        tracing::debug!(%location, "{what}: {full}");
        if let Some(why) = not_loaded_in(&full) {
            return StorageError::new(ErrorKind::PermissionDenied, location, why);
        }
        let kind = match (err, status) {
            (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_), _) => ErrorKind::Transient,
            (_, Some(status)) => status_kind(status, if_absent),
            _ => ErrorKind::Permanent,
        };
        let message = match (status, err.code()) {
            (Some(status), Some(code)) => {
                format!(
                    "{what} refused: HTTP {status} {code} {}",
                    err.message().unwrap_or_default()
                )
            }
            _ => format!("{what} failed: {}", first_line(&full)),
        };
        let mapped = StorageError::new(kind, location, message.trim_end());
        let server = self
            .target
            .endpoint
            .as_deref()
            .and_then(server_in)
            .or_else(|| server_in(&full));
        match classify(&format!("{} {full}", err.code().unwrap_or_default())) {
            Some(cause) => mapped.with_cause(cause, server),
            None => mapped,
        }
    }

    fn not_configured(&self, location: &str) -> StorageError {
        StorageError::new(
            ErrorKind::Permanent,
            location,
            format!(
                "the bucket has no Object Lock configuration, so object_lock_days={} cannot be honoured — \
                 create the bucket with Object Lock enabled, or drop object_lock_days from the address",
                self.target.days
            ),
        )
    }
}

#[async_trait]
impl ObjectLock for LockClient {
    fn days(&self) -> u32 {
        self.target.days
    }

    async fn put(&self, key: &str, data: Bytes, if_absent: bool, until: DateTime<Utc>, location: &str) -> Result<()> {
        let request = self
            .client
            .put_object()
            .bucket(&self.target.bucket)
            .key(self.object_key(key))
            .body(ByteStream::from(data))
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(aws_date(until))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_if_none_match(if_absent.then(|| "*".to_string()))
            .set_storage_class(self.target.storage_class.as_deref().map(StorageClass::from));
        let what = format!("object-lock PUT ({} days, COMPLIANCE)", self.target.days);
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) => Err(explain_put(self.failed(&err, location, if_absent, &what))),
        }
    }

    async fn extend(&self, key: &str, until: DateTime<Utc>, location: &str) -> Result<()> {
        let retention = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::Compliance)
            .retain_until_date(aws_date(until))
            .build();
        let request = self
            .client
            .put_object_retention()
            .bucket(&self.target.bucket)
            .key(self.object_key(key))
            .retention(retention)
            .checksum_algorithm(ChecksumAlgorithm::Crc32);
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) => Err(self.failed(&err, location, false, "extending Object Lock retention")),
        }
    }

    async fn check_bucket(&self, location: &str) -> Result<()> {
        let answer = self
            .client
            .get_object_lock_configuration()
            .bucket(&self.target.bucket)
            .send()
            .await;
        match answer {
            Ok(out) if lock_enabled(&out) => Ok(()),
            Ok(_) => Err(self.not_configured(location)),
            Err(err)
                if err
                    .code()
                    .is_some_and(|c| c.starts_with("ObjectLockConfigurationNotFound")) =>
            {
                Err(self.not_configured(location))
            }
            Err(err) => Err(self.failed(&err, location, false, "reading the bucket's Object Lock configuration")),
        }
    }
}

/// Whether the bucket's typed lock configuration says `Enabled`.
fn lock_enabled(out: &GetObjectLockConfigurationOutput) -> bool {
    out.object_lock_configuration()
        .and_then(|config| config.object_lock_enabled())
        == Some(&ObjectLockEnabled::Enabled)
}

fn aws_date(at: DateTime<Utc>) -> AwsDateTime {
    AwsDateTime::from_millis(at.timestamp_millis())
}

fn status_kind(status: u16, if_absent: bool) -> ErrorKind {
    match status {
        412 if if_absent => ErrorKind::AlreadyExists,
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        // The SDK already retried what it considers transient; these stay so for callers.
        408 | 409 | 429 | 500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// A refused locked upload, with a hint for the usual misconfiguration (a bucket
/// created without Object Lock).
fn explain_put(mut err: StorageError) -> StorageError {
    let lower = err.message.to_lowercase();
    let about_lock = lower.contains("http 400") || lower.contains("objectlock") || lower.contains("object lock");
    if about_lock && err.cause.is_none() {
        err.message.push_str(
            " — is Object Lock enabled on this bucket? It can only be turned on when the bucket is created \
             (or by AWS support); without it drop `object_lock_days` from the address",
        );
    }
    err
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::types::ObjectLockConfiguration;

    #[test]
    fn failures_are_classified_and_explained() {
        assert_eq!(status_kind(412, true), ErrorKind::AlreadyExists);
        assert_eq!(status_kind(412, false), ErrorKind::Permanent);
        assert_eq!(status_kind(403, false), ErrorKind::PermissionDenied);
        assert_eq!(status_kind(503, false), ErrorKind::Transient);
        let refused = StorageError::new(
            ErrorKind::Permanent,
            "s3://b/p/data/ab/cd",
            "object-lock PUT (30 days, COMPLIANCE) refused: HTTP 400 InvalidRequest Bucket is missing Object Lock Configuration",
        );
        let text = explain_put(refused).to_string();
        assert!(
            text.contains("InvalidRequest") && text.contains("is Object Lock enabled"),
            "{text}"
        );
    }

    #[test]
    fn the_typed_configuration_decides_whether_the_bucket_locks() {
        let answer = |enabled: Option<ObjectLockEnabled>| {
            let config = ObjectLockConfiguration::builder()
                .set_object_lock_enabled(enabled)
                .build();
            GetObjectLockConfigurationOutput::builder()
                .object_lock_configuration(config)
                .build()
        };
        assert!(lock_enabled(&answer(Some(ObjectLockEnabled::Enabled))));
        assert!(!lock_enabled(&answer(None)));
        assert!(!lock_enabled(&GetObjectLockConfigurationOutput::builder().build()));
    }

    #[test]
    fn keys_go_under_the_prefix_and_dates_keep_milliseconds() {
        let target = |prefix: &str| LockTarget {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "us-east-1".into(),
            bucket: "bkt".into(),
            prefix: prefix.into(),
            days: 30,
            storage_class: None,
        };
        let credentials = Credentials::new(super::super::CredentialSource::Chain, "us-east-1");
        let client = LockClient::new(target("team/repo"), credentials.clone());
        assert_eq!(client.object_key("data/ab/cd"), "team/repo/data/ab/cd");
        assert_eq!(LockClient::new(target(""), credentials).object_key("config"), "config");
        let at = DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678Z")
            .unwrap()
            .to_utc();
        assert_eq!(aws_date(at).to_millis().unwrap(), at.timestamp_millis());
    }
}

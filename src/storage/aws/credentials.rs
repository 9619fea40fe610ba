//! S3 credentials for one store, resolved the way the AWS CLI resolves them unless the
//! region names its own, and shared by both of the store's request paths.
//!
//! The default is aws-config's chain — environment (`AWS_ACCESS_KEY_ID`, …), the shared
//! profile (`AWS_PROFILE`, `~/.aws/credentials` and `~/.aws/config`, including SSO,
//! `credential_process` and role assumption), web identity, container and instance
//! metadata — so whatever signs `aws s3 ls` signs Lifeboat's requests. A plan's region
//! may instead name a profile (used alone: the environment does not override it, as
//! with `aws --profile`) or give keys resolved from secret references.
//!
//! One `Credentials` per store feeds opendal's signer (through reqsign's provider
//! trait) and the Object Lock client (through aws-config's), so the data path and the
//! lock path sign as the same identity, and temporary credentials are refreshed by the
//! provider that issued them. Values never enter a message: errors name the source.

use std::fmt;
use std::sync::{Arc, Mutex};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_credential_types::Credentials as AwsCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use tokio::sync::OnceCell;

/// Marker that starts every message about credentials that could not be loaded, so the
/// storage error can recognise it wherever the HTTP library wraps it.
pub const NOT_LOADED: &str = "S3 credentials not loaded";

/// Where a store's S3 credentials come from.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum CredentialSource {
    /// The AWS CLI's chain (environment, shared profile, SSO, web identity, container
    /// and instance metadata).
    #[default]
    Chain,
    /// One profile of the shared config and credentials files, whatever the environment says.
    Profile(String),
    /// Keys given directly (resolved from a plan's secret references).
    Keys {
        access_key_id: String,
        secret_access_key: String,
    },
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl CredentialSource {
    /// Where the credentials come from, for messages: never a value.
    pub fn describe(&self) -> String {
        match self {
            Self::Chain => "the AWS credential chain (environment, AWS_PROFILE, SSO, web identity, metadata)".into(),
            Self::Profile(name) => format!("profile `{name}`"),
            Self::Keys { .. } => "the region's access_key_id and secret_access_key".into(),
        }
    }

    fn fix(&self) -> &'static str {
        match self {
            Self::Chain => {
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE to a profile in ~/.aws, \
                 or give the region `credentials`"
            }
            Self::Profile(_) => "define that profile in ~/.aws/credentials or ~/.aws/config, or name another",
            Self::Keys { .. } => "check the region's `credentials` references",
        }
    }
}

/// The credentials failure inside a storage library's error text, if that is what it is:
/// from the marker to the end of its fix, which has no quote, bracket or line break (the
/// libraries may follow it with a debug form of the same error).
pub fn not_loaded_in(text: &str) -> Option<&str> {
    let found = &text[text.find(NOT_LOADED)?..];
    let fix = found.find(" — ").unwrap_or(0);
    let end = [" (", "\n", "\""]
        .iter()
        .filter_map(|stop| found[fix..].find(stop))
        .min()
        .map_or(found.len(), |at| fix + at);
    Some(found[..end].trim_end())
}

/// The credentials of one store: resolved on first use, then refreshed by the provider.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

struct Inner {
    source: CredentialSource,
    region: String,
    provider: OnceCell<SharedCredentialsProvider>,
    /// Why the last lookup failed: opendal's signer drops the reason, so its store
    /// asks here to say it.
    last_failure: Mutex<Option<String>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from `source`; `region` is the one STS and SSO calls are made in.
    pub fn new(source: CredentialSource, region: &str) -> Self {
        let inner = Inner {
            source,
            region: region.to_string(),
            provider: OnceCell::new(),
            last_failure: Mutex::new(None),
        };
        Self { inner: Arc::new(inner) }
    }

    async fn provider(&self) -> &SharedCredentialsProvider {
        let inner = &self.inner;
        inner.provider.get_or_init(|| build(&inner.source, &inner.region)).await
    }

    /// The current credentials, or an error that names the source (never a value).
    pub async fn resolve(&self) -> Result<AwsCredentials, CredentialsError> {
        let loaded = self.provider().await.provide_credentials().await;
        let loaded = loaded.map_err(|err| self.explain(&err));
        let failure = loaded.as_ref().err().map(|err| chain(err));
        *self.inner.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = failure;
        loaded
    }

    /// Why the last lookup failed, when it did: one line naming the source and the fix.
    pub fn last_failure(&self) -> Option<String> {
        let failure = self.inner.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        failure.as_deref().and_then(not_loaded_in).map(str::to_string)
    }

    fn explain(&self, err: &CredentialsError) -> CredentialsError {
        let detail = chain(err);
        tracing::debug!("loading S3 credentials from {}: {detail}", self.inner.source.describe());
        let why = match err {
            CredentialsError::CredentialsNotLoaded(_) => "none found".to_string(),
            _ => first_line(&detail),
        };
        CredentialsError::not_loaded(format!(
            "{NOT_LOADED} from {}: {why} — {}",
            self.inner.source.describe(),
            self.inner.source.fix()
        ))
    }

    /// The provider chain opendal's S3 signer asks.
    pub fn for_opendal(&self) -> reqsign_core::ProvideCredentialChain<reqsign_aws_v4::Credential> {
        reqsign_core::ProvideCredentialChain::new().push(self.clone())
    }
}

/// An error and its sources, one after another.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first line of an error description, without the wrapping noise.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

async fn build(source: &CredentialSource, region: &str) -> SharedCredentialsProvider {
    match source {
        CredentialSource::Chain => {
            let region = aws_config::Region::new(region.to_string());
            SharedCredentialsProvider::new(DefaultCredentialsChain::builder().region(region).build().await)
        }
        CredentialSource::Profile(name) => {
            SharedCredentialsProvider::new(ProfileFileCredentialsProvider::builder().profile_name(name).build())
        }
        CredentialSource::Keys {
            access_key_id,
            secret_access_key,
        } => SharedCredentialsProvider::new(AwsCredentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "lifeboat-plan",
        )),
    }
}

impl ProvideCredentials for Credentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.resolve())
    }
}

impl reqsign_core::ProvideCredential for Credentials {
    type Credential = reqsign_aws_v4::Credential;

    async fn provide_credential(&self, _: &reqsign_core::Context) -> reqsign_core::Result<Option<Self::Credential>> {
        let loaded = self
            .resolve()
            .await
            .map_err(|err| reqsign_core::Error::credential_invalid(chain(&err)))?;
        Ok(Some(reqsign_aws_v4::Credential {
            access_key_id: loaded.access_key_id().to_string(),
            secret_access_key: loaded.secret_access_key().to_string(),
            session_token: loaded.session_token().map(str::to_string),
            expires_in: loaded.expiry().and_then(timestamp),
        }))
    }
}

/// An expiry as reqsign's timestamp; a time it cannot represent is treated as none.
fn timestamp(at: std::time::SystemTime) -> Option<reqsign_core::time::Timestamp> {
    let seconds = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    reqsign_core::time::Timestamp::from_second(i64::try_from(seconds).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_resolve_to_themselves_for_both_signers() {
        let source = CredentialSource::Keys {
            access_key_id: "AKIDUNITTEST".into(),
            secret_access_key: "unit-test-secret-value".into(),
        };
        let credentials = Credentials::new(source, "us-east-1");
        let aws = credentials.resolve().await.unwrap();
        assert_eq!(aws.access_key_id(), "AKIDUNITTEST");
        let ctx = reqsign_core::Context::new();
        let signed = reqsign_core::ProvideCredential::provide_credential(&credentials, &ctx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(signed.secret_access_key, "unit-test-secret-value");
        assert_eq!(signed.expires_in, None);
    }

    #[test]
    fn the_failure_is_found_inside_a_wrapped_error() {
        let line = format!("{NOT_LOADED} from profile `west`: no such \"profile\" — define that profile");
        let wrapped = format!("Unexpected at write => signing, source: {line} (DispatchFailure {{ .. }})\nmore");
        assert_eq!(not_loaded_in(&wrapped), Some(line.as_str()));
        assert_eq!(not_loaded_in("SignatureDoesNotMatch"), None);
    }

    #[test]
    fn a_source_is_shown_without_its_values() {
        let source = CredentialSource::Keys {
            access_key_id: "AKIDSHOWN".into(),
            secret_access_key: "never-shown-secret".into(),
        };
        let shown = format!("{source:?} {:?}", Credentials::new(source.clone(), "eu-west-1"));
        assert!(
            !shown.contains("never-shown-secret") && !shown.contains("AKIDSHOWN"),
            "{shown}"
        );
        assert_eq!(CredentialSource::Profile("west".into()).describe(), "profile `west`");
    }

    // aws-config names its profile-file types only through these deprecated aliases of
    // an aws-runtime type; depending on aws-runtime for one test is not worth it.
    #[allow(deprecated)]
    #[tokio::test]
    async fn a_missing_profile_names_the_profile_and_no_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[east]\naws_access_key_id = AKIDEAST\naws_secret_access_key = east-secret\n",
        )
        .unwrap();
        let files = aws_config::profile::profile_file::ProfileFiles::builder()
            .with_file(aws_config::profile::profile_file::ProfileFileKind::Credentials, &file)
            .build();
        let provider = ProfileFileCredentialsProvider::builder()
            .profile_files(files)
            .profile_name("west")
            .build();
        let credentials = Credentials::new(CredentialSource::Profile("west".into()), "us-east-1");
        credentials
            .inner
            .provider
            .set(SharedCredentialsProvider::new(provider))
            .unwrap();
        let err = chain(&credentials.resolve().await.unwrap_err());
        assert!(err.contains(NOT_LOADED) && err.contains("profile `west`"), "{err}");
        assert!(!err.contains("east-secret"), "{err}");
        let line = credentials.last_failure().expect("the failure is remembered");
        assert!(
            line.starts_with(NOT_LOADED) && line.contains("define that profile"),
            "{line}"
        );
    }
}

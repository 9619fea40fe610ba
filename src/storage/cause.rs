//! Recognising what a storage failure was about (connection refused, wrong secret,
//! missing bucket, ...) from the storage library's error text, so the one-line message
//! can name the cause, the server and the fix instead of quoting a long error chain.
//! opendal reports most of these as `Unexpected` or `PermissionDenied` with the useful
//! part (an S3 error code, an OS error) buried in its context or source chain.

/// A transport or service failure the user can act on, recognised from the storage
/// library's error so the message can say what to do instead of quoting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    ConnectionRefused,
    Timeout,
    HostNotFound,
    Tls,
    /// The server rejected the request signature: wrong secret key, clock skew, or an
    /// unknown access key id (S3 `SignatureDoesNotMatch`, `InvalidAccessKeyId`).
    Credentials,
    AccessDenied,
    BucketMissing,
    /// Object Lock is asked for but the bucket is not set up for it.
    LockConfiguration,
}

impl Cause {
    /// What happened, in a few words.
    pub fn what(self) -> &'static str {
        match self {
            Cause::ConnectionRefused => "connection refused",
            Cause::Timeout => "timed out",
            Cause::HostNotFound => "host not found",
            Cause::Tls => "TLS handshake failed",
            Cause::Credentials => "credentials rejected (SignatureDoesNotMatch or unknown access key)",
            Cause::AccessDenied => "access denied",
            Cause::BucketMissing => "bucket does not exist",
            Cause::LockConfiguration => "bucket has no Object Lock configuration",
        }
    }

    /// The likely fix.
    pub fn fix(self) -> &'static str {
        match self {
            Cause::ConnectionRefused => "is the server running, and is the address's endpoint= right?",
            Cause::Timeout => "check the network path to the server, or try again when it is less busy",
            Cause::HostNotFound => "check the host name in the address's endpoint=",
            Cause::Tls => "check the endpoint's scheme (http or https) and that its certificate is trusted",
            Cause::Credentials => {
                "check the credentials signing for this server (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 AWS_PROFILE, or the region's `credentials`), and the clock"
            }
            Cause::AccessDenied => "give these credentials read, write, list and delete on the bucket",
            Cause::BucketMissing => "create the bucket, or fix its name in the address",
            Cause::LockConfiguration => {
                "create the bucket with Object Lock enabled, or drop object_lock_days/immutable_days"
            }
        }
    }
}

/// Markers in an error's full text, checked in order: service error codes first, since
/// they are the most specific, then transport failures.
const MARKERS: [(&str, Cause); 16] = [
    ("signaturedoesnotmatch", Cause::Credentials),
    ("invalidaccesskeyid", Cause::Credentials),
    ("invalidclienttokenid", Cause::Credentials),
    ("expiredtoken", Cause::Credentials),
    ("nosuchbucket", Cause::BucketMissing),
    ("objectlockconfigurationnotfound", Cause::LockConfiguration),
    ("invalidbucketstate", Cause::LockConfiguration),
    ("accessdenied", Cause::AccessDenied),
    ("connection refused", Cause::ConnectionRefused),
    ("dns error", Cause::HostNotFound),
    ("failed to lookup address", Cause::HostNotFound),
    ("certificate", Cause::Tls),
    ("handshake", Cause::Tls),
    ("invalidcontenttype", Cause::Tls),
    ("timed out", Cause::Timeout),
    ("timeout", Cause::Timeout),
];

/// The cause named in an error's full text (error chain, S3 error body), if any.
pub fn classify(text: &str) -> Option<Cause> {
    let lower = text.to_ascii_lowercase();
    MARKERS
        .iter()
        .find(|(marker, _)| lower.contains(marker))
        .map(|&(_, cause)| cause)
}

/// The `host:port` of the first URL in `text` (the request the error is about).
pub fn server_in(text: &str) -> Option<String> {
    let (start, default_port) = match (text.find("http://"), text.find("https://")) {
        (Some(h), Some(s)) if s < h => (s + 8, 443),
        (Some(h), _) => (h + 7, 80),
        (None, Some(s)) => (s + 8, 443),
        (None, None) => return None,
    };
    let rest = &text[start..];
    let end = rest.find(['/', ' ', ')', '"', '?', ',', '}']).unwrap_or(rest.len());
    let authority = rest[..end].rsplit('@').next().unwrap_or("");
    if authority.is_empty() {
        return None;
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    Some(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{ErrorKind, StorageError};

    #[test]
    fn service_codes_and_transport_failures_are_recognised() {
        let cases = [
            (
                "PermissionDenied (permanent) ... <Code>SignatureDoesNotMatch</Code>",
                Cause::Credentials,
            ),
            ("<Code>InvalidAccessKeyId</Code>", Cause::Credentials),
            ("<Code>NoSuchBucket</Code>", Cause::BucketMissing),
            ("<Code>AccessDenied</Code>", Cause::AccessDenied),
            (
                "send http request: error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
                Cause::ConnectionRefused,
            ),
            ("dns error: failed to lookup address information", Cause::HostNotFound),
            ("invalid peer certificate: UnknownIssuer", Cause::Tls),
            ("operation timeout reached", Cause::Timeout),
        ];
        for (text, cause) in cases {
            assert_eq!(classify(text), Some(cause), "{text}");
        }
        assert_eq!(classify("disk quota exceeded"), None);
    }

    #[test]
    fn the_server_is_the_first_url_authority() {
        let text = "context: { uri: http://127.0.0.1:9/bucket/p/config, service: s3 } => send";
        assert_eq!(server_in(text).as_deref(), Some("127.0.0.1:9"));
        assert_eq!(
            server_in("url (https://s3.example.com/b)").as_deref(),
            Some("s3.example.com:443")
        );
        assert_eq!(server_in("no address here"), None);
    }

    #[test]
    fn a_recognised_cause_gives_one_short_line_with_server_and_fix() {
        let err = StorageError::new(ErrorKind::Transient, "s3://b/p/config", "x".repeat(700))
            .with_cause(Cause::ConnectionRefused, Some("127.0.0.1:9".into()));
        let line = err.to_string();
        assert!(
            line.starts_with("s3://b/p/config: connection refused at 127.0.0.1:9 — "),
            "{line}"
        );
        assert!(line.contains("endpoint="), "{line}");
        assert!(line.len() < 200, "{line}");
    }
}

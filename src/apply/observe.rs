//! What layers above `apply` (the daemon) need from below it, re-exported here so
//! they depend on `apply` alone and never reach into the engine, and how a failure is
//! classed for monitoring.

use crate::storage::cause::{Cause, classify};

/// Live counters of a running backup, polled by the daemon's job list.
pub use crate::engine::Progress;

/// How often a running job's progress is logged (see `engine::progress`).
pub fn progress_interval() -> std::time::Duration {
    crate::engine::progress::line_interval()
}

/// A short stable word for what a failure `message` (as `apply` reports it) was about,
/// for alert rules and metrics: the message is for people and changes with its details.
pub fn error_class(message: &str) -> &'static str {
    if let Some(cause) = classify(message) {
        return match cause {
            Cause::ConnectionRefused | Cause::Timeout | Cause::HostNotFound | Cause::Tls => "unreachable",
            Cause::Credentials => "credentials",
            Cause::AccessDenied => "access_denied",
            Cause::BucketMissing => "bucket_missing",
            Cause::LockConfiguration => "lock_configuration",
        };
    }
    const MARKERS: [(&str, &str); 7] = [
        ("wrong password", "wrong_password"),
        ("no repository at", "missing_repository"),
        ("no repository password", "secret"),
        ("permission denied", "access_denied"),
        ("is locked", "locked"),
        ("is damaged", "damaged"),
        ("is not in the index", "damaged"),
    ];
    let lower = message.to_ascii_lowercase();
    MARKERS
        .iter()
        .find(|(marker, _)| lower.contains(marker))
        .map_or("other", |(_, class)| class)
}

/// Whether a failure of class `class` means the region's storage could not be reached.
pub fn unreachable(class: &str) -> bool {
    matches!(class, "unreachable" | "missing_repository" | "bucket_missing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classed_by_what_they_were_about() {
        let cases = [
            (
                "region a: s3://b/p/config: connection refused at 127.0.0.1:9 — is the server running",
                "unreachable",
            ),
            (
                "region a: wrong password for repository /r — check LIFEBOAT_PASSWORD",
                "wrong_password",
            ),
            (
                "region b: no repository at /gone — create one with `lifeboat init --repo /gone`",
                "missing_repository",
            ),
            (
                "pack 3f2a is damaged: short read — run `lifeboat check --read-data`",
                "damaged",
            ),
            ("/r/config: Permission denied (os error 13)", "access_denied"),
            ("disk quota exceeded", "other"),
        ];
        for (message, class) in cases {
            assert_eq!(error_class(message), class, "{message}");
        }
        assert!(unreachable("unreachable") && unreachable("missing_repository"));
        assert!(!unreachable("damaged") && !unreachable("wrong_password"));
    }
}

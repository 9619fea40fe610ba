//! What a test does when a server or tool it needs (SeaweedFS, moto, knotd, nginx,
//! openssl) is missing. `tests/run.sh` starts or installs them all and sets
//! `LIFEBOAT_REQUIRE_SERVERS=1`; then a missing one is a failure, so the suite never
//! passes by skipping. A plain `cargo test` without that variable skips such a test
//! with the reason printed.

/// Whether `tests/run.sh` promised that every server is there.
pub fn required() -> bool {
    std::env::var("LIFEBOAT_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// Report that `test` cannot run because of `reason`: panics when the servers are
/// required, else prints the skip. Call it and then return from the test.
pub fn missing(test: &str, reason: &str) {
    assert!(
        !required(),
        "{test}: {reason}, but LIFEBOAT_REQUIRE_SERVERS=1 says tests/run.sh provided every server"
    );
    eprintln!("skipping {test}: {reason}");
}

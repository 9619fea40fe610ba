use serde_json::json;

use super::*;

fn oidc() -> Oidc {
    Oidc::new(OidcConfig {
        issuer: "https://idp.example".into(),
        audience: "lifeboat".into(),
        roles_claim: "lifeboat_roles".into(),
    })
    .unwrap()
}

#[test]
fn issuer_urls_must_be_https_off_loopback() {
    assert!(check_url("https://idp.example.com").is_ok());
    assert!(check_url("http://127.0.0.1:8080").is_ok());
    assert!(check_url("http://[::1]:8080").is_ok());
    assert!(check_url("http://localhost/x").is_ok());
    assert!(check_url("http://idp.example.com").is_err());
    assert!(check_url("http://10.0.0.1").is_err());
    assert!(check_url("file:///etc/passwd").is_err());
    let cfg = |issuer: &str, audience: &str| OidcConfig {
        issuer: issuer.into(),
        audience: audience.into(),
        roles_claim: "r".into(),
    };
    let err = Oidc::new(cfg("http://idp.example.com", "a")).err().unwrap().to_string();
    assert!(
        err.contains("--oidc-issuer http://idp.example.com") && err.contains(" — "),
        "{err}"
    );
    let err = Oidc::new(cfg("https://idp", " ")).err().unwrap().to_string();
    assert!(err.contains("--oidc-audience is empty"), "{err}");
}

#[test]
fn claims_are_checked_with_a_minute_of_skew() {
    let oidc = oidc();
    let now = 1_000_000;
    let good = json!({"iss": "https://idp.example", "aud": ["x", "lifeboat"], "exp": now - 30, "nbf": now + 30});
    assert_eq!(oidc.check_claims(&good, now as f64), Ok(()));
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        oidc.check_claims(&c, now as f64).unwrap_err()
    };
    assert_eq!(with("exp", (now - 61).into()), "expired");
    assert_eq!(with("exp", Value::Null), "no exp");
    assert_eq!(with("nbf", (now + 61).into()), "not yet valid");
    assert_eq!(with("iss", "https://other".into()), "wrong issuer");
    assert_eq!(with("aud", "other".into()), "wrong audience");
    assert_eq!(with("aud", json!(["a", "b"])), "wrong audience");
    let mut single = good.clone();
    single["aud"] = "lifeboat".into();
    assert_eq!(oidc.check_claims(&single, now as f64), Ok(()));
}

#[test]
fn the_subject_is_prefixed_and_the_roles_claim_gives_the_grants() {
    let oidc = oidc();
    let caller = oidc
        .caller(&json!({"sub": "svc", "lifeboat_roles": ["operator:ml", "viewer"]}))
        .unwrap();
    assert_eq!(
        (caller.subject.as_str(), caller.roles().as_str()),
        ("oidc:svc", "operator:ml,viewer")
    );
    let words = oidc
        .caller(&json!({"sub": "a@b", "lifeboat_roles": "viewer admin"}))
        .unwrap();
    assert_eq!(words.roles(), "viewer,admin");
    assert!(oidc.caller(&json!({"sub": "x"})).unwrap().grants.is_empty());
    for bad in [
        json!({"sub": "x", "lifeboat_roles": ["root"]}),
        json!({"sub": "x", "lifeboat_roles": [1]}),
        json!({"sub": "x", "lifeboat_roles": {"a": 1}}),
        json!({"sub": "two words", "lifeboat_roles": ["viewer"]}),
        json!({"sub": "", "lifeboat_roles": ["viewer"]}),
        json!({"sub": "x".repeat(256)}),
        json!({"lifeboat_roles": ["viewer"]}),
    ] {
        assert!(oidc.caller(&bad).is_err(), "{bad}");
    }
}

#[test]
fn unknown_kids_fetch_once_a_minute_and_old_keys_are_fetched_again() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let started = Fetches {
        attempted: Some(t0),
        forced: None,
    };
    assert_eq!(next_step(true, Some(t0), started, at(1)), Step::Use);
    assert_eq!(
        next_step(false, Some(t0), started, at(1)),
        Step::Fetch,
        "the start fetch does not count"
    );
    let forced = Fetches {
        attempted: Some(at(1)),
        forced: Some(at(1)),
    };
    assert_eq!(next_step(false, Some(at(1)), forced, at(30)), Step::Refuse);
    assert_eq!(next_step(false, Some(at(1)), forced, at(61)), Step::Fetch);
    assert_eq!(next_step(true, Some(t0), started, at(599)), Step::Use);
    assert_eq!(
        next_step(true, Some(t0), started, at(600)),
        Step::Fetch,
        "ten minutes old"
    );
    let failed = Fetches {
        attempted: Some(at(600)),
        forced: None,
    };
    assert_eq!(
        next_step(true, Some(t0), failed, at(630)),
        Step::Use,
        "the provider is down: old keys serve"
    );
    assert_eq!(next_step(true, Some(t0), failed, at(660)), Step::Fetch);
    assert_eq!(
        next_step(false, None, Fetches::default(), t0),
        Step::Fetch,
        "start fetch failed"
    );
}

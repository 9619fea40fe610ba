//! OIDC bearer tokens against an independent issuer (tests/servers/oidc_issuer.py,
//! built on the jwcrypto JOSE library): every route with every role (RS256, ES256 and
//! EdDSA), a scoped viewer seeing only its plan, the subject in the access log and
//! the audit trail, expired and not-yet-valid tokens, wrong issuer and audience,
//! `alg: none`, HS256 keyed with the public key, a header bringing its own key, and a
//! key rotated at the issuer (accepted after one fetch, and fetches rate limited).

mod servers;
mod support_api;
mod support_daemon;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use support_api::routes::{Caller, NO_LIMITS, assert_api_backup_audited_as, walk};
use support_api::{BIN, SUBJECTS, Site, poll, try_http};

const AUDIENCE: &str = "lifeboat-api";
const ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// The issuer process; killed when dropped.
struct Issuer {
    child: Child,
    port: u16,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Issuer {
    /// Start the issuer with the Python `tests/run.sh` installed jwcrypto for, or
    /// `None` (after reporting; a failure under `LIFEBOAT_REQUIRE_SERVERS=1`).
    fn start(test: &str) -> Option<Issuer> {
        let Ok(python) = std::env::var("LIFEBOAT_TEST_OIDC_PYTHON") else {
            servers::missing(
                test,
                "LIFEBOAT_TEST_OIDC_PYTHON is not set (tests/run.sh installs jwcrypto)",
            );
            return None;
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/oidc_issuer.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OIDC issuer");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("issuer stdout"))
            .read_line(&mut line)
            .expect("issuer port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("issuer printed {line:?}"));
        Some(Issuer { child, port })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn get(&self, path: &str) -> String {
        let (code, body) = try_http(self.port, "GET", path, None, "").expect("issuer answers");
        assert_eq!(code, 200, "{path}: {body}");
        body.trim().to_string()
    }

    fn token(&self, query: &str) -> String {
        self.get(&format!("/mint?{query}"))
    }

    fn jwks_fetches(&self) -> u64 {
        let stats: serde_json::Value = serde_json::from_str(&self.get("/stats")).expect("stats JSON");
        stats["jwks_fetches"].as_u64().expect("a count")
    }

    fn rotate(&self) {
        let (code, body) = try_http(self.port, "POST", "/rotate", None, "").expect("rotate");
        assert_eq!(code, 200, "{body}");
    }
}

fn start_daemon(site: &Site, issuer: &Issuer) -> support_api::Daemon {
    let url = issuer.url();
    let mut flags = vec!["--oidc-issuer", &url, "--oidc-audience", AUDIENCE];
    flags.extend_from_slice(NO_LIMITS);
    let d = site.start("127.0.0.1", &flags);
    assert!(
        poll(Duration::from_secs(10), || d.log().contains("OIDC keys fetched")),
        "the keys were not fetched at start; log:\n{}",
        d.log()
    );
    d
}

/// A token with `header`, the claims part `claims` and `signature` as its third part.
fn forged(header: serde_json::Value, claims: &str, signature: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    format!("{h}.{claims}.{signature}")
}

#[test]
fn every_route_answers_every_oidc_role_as_its_table_says() {
    let test = "every_route_answers_every_oidc_role_as_its_table_says";
    let Some(issuer) = Issuer::start(test) else { return };
    let site = Site::new();
    let d = start_daemon(&site, &issuer);
    // A garbage JWT (three parts) and a valid token without a role: 401 and 403.
    let mut callers = vec![
        Caller {
            roles: None,
            token: Some("e30.e30.AAAA".into()),
        },
        Caller {
            roles: Some(String::new()),
            token: Some(issuer.token("sub=no-role&roles=")),
        },
    ];
    for (i, (subject, roles)) in SUBJECTS.iter().enumerate() {
        let alg = ALGS[i % ALGS.len()];
        let token = issuer.token(&format!("alg={alg}&sub={subject}&roles={roles}"));
        callers.push(Caller {
            roles: Some(roles.to_string()),
            token: Some(token),
        });
    }
    assert_eq!(walk(&d, &callers), 8 * 2 * 7);
    let log = d.log();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("api request") && l.contains("admin-all"))
        .collect();
    assert!(!access.is_empty(), "no access line names the OIDC subject:\n{log}");
    assert!(
        access.iter().all(|l| l.contains("oidc:admin-all")),
        "an OIDC subject without its prefix: {access:?}"
    );
}

#[test]
fn an_oidc_viewer_scoped_to_a_plan_sees_only_it_and_an_operator_is_audited() {
    let test = "an_oidc_viewer_scoped_to_a_plan_sees_only_it_and_an_operator_is_audited";
    let Some(issuer) = Issuer::start(test) else { return };
    let site = Site::new();
    let d = start_daemon(&site, &issuer);
    let operator = issuer.token("alg=ES256&sub=team-ml&roles=operator:ml");
    assert_api_backup_audited_as(&site, &d, &operator, "api:oidc:team-ml via ");

    let viewer = issuer.token("alg=EdDSA&sub=ml-dashboard&roles=viewer:ml");
    let status = d.json("/v1/status", &viewer);
    let plans: Vec<&str> = status["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(plans, ["ml"], "{status}");
    let every = issuer.token("sub=all&roles=viewer");
    assert_eq!(d.json("/v1/status", &every)["plans"].as_array().map(Vec::len), Some(2));
}

#[test]
fn every_forged_or_misaddressed_token_is_refused() {
    let test = "every_forged_or_misaddressed_token_is_refused";
    let Some(issuer) = Issuer::start(test) else { return };
    let site = Site::new();
    let d = start_daemon(&site, &issuer);
    let genuine = issuer.token("roles=admin&sub=forger");
    let parts: Vec<&str> = genuine.split('.').collect();
    let admin_claims = |iss: String| {
        let claims = serde_json::json!({"iss": iss, "aud": AUDIENCE, "sub": "x", "exp": 4_000_000_000u64, "lifeboat_roles": ["admin"]});
        URL_SAFE_NO_PAD.encode(claims.to_string())
    };
    let refused = [
        ("expired", issuer.token("roles=admin&exp_in=-120")),
        ("not yet valid", issuer.token("roles=admin&nbf_in=120")),
        ("wrong issuer", issuer.token("roles=admin&iss=http://127.0.0.1:1")),
        ("wrong audience", issuer.token("roles=admin&aud=another-api")),
        (
            "HS256 keyed with the public key",
            issuer.get("/mint-hs256-public-key?roles=admin"),
        ),
        (
            "alg none",
            forged(serde_json::json!({"alg": "none"}), &admin_claims(issuer.url()), ""),
        ),
        (
            "its own jwk in the header",
            forged(
                serde_json::json!({"alg": "RS256", "kid": "rsa-1", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}),
                parts[1],
                parts[2],
            ),
        ),
        (
            "tampered claims",
            format!("{}.{}.{}", parts[0], admin_claims(issuer.url()), parts[2]),
        ),
    ];
    for (why, token) in &refused {
        let (code, body) = d.call("GET", "/v1/status", Some(token), "");
        assert_eq!(code, 401, "{why} was not refused: {body}");
    }
    // Within the skew a token is still good, and the untouched token works.
    assert_eq!(
        d.call("GET", "/v1/status", Some(&issuer.token("roles=viewer&exp_in=-30")), "")
            .0,
        200
    );
    assert_eq!(d.call("GET", "/v1/status", Some(&genuine), "").0, 200);
    let log = d.log();
    assert!(
        !log.contains(&genuine) && !log.contains(parts[2]),
        "a token reached the log"
    );
}

#[test]
fn a_key_rotated_at_the_issuer_is_fetched_at_once_and_refetches_are_rate_limited() {
    let test = "a_key_rotated_at_the_issuer_is_fetched_at_once_and_refetches_are_rate_limited";
    let Some(issuer) = Issuer::start(test) else { return };
    let site = Site::new();
    let d = start_daemon(&site, &issuer);
    let call = |token: &str| d.call("GET", "/v1/status", Some(token), "").0;
    assert_eq!(call(&issuer.token("sub=svc&roles=viewer")), 200);
    assert_eq!(issuer.jwks_fetches(), 1, "keys are fetched at start and cached");

    issuer.rotate();
    let second = issuer.token("sub=svc&roles=viewer");
    assert_eq!(call(&second), 200, "the rotated key was not fetched; log:\n{}", d.log());
    assert_eq!(issuer.jwks_fetches(), 2, "one fetch for the new key id");
    for _ in 0..5 {
        assert_eq!(call(&second), 200);
    }

    issuer.rotate();
    let third = issuer.token("sub=svc&roles=viewer");
    for _ in 0..20 {
        assert_eq!(call(&third), 401, "a new key id within the minute");
    }
    let made_up = forged(
        serde_json::json!({"alg": "RS256", "kid": "made-up"}),
        third.split('.').nth(1).unwrap_or_default(),
        "AAAA",
    );
    assert_eq!(call(&made_up), 401);
    assert_eq!(issuer.jwks_fetches(), 2, "unknown key ids fetch at most once a minute");
    assert_eq!(call(&second), 200, "keys still cached serve meanwhile");
}

#[test]
fn an_issuer_that_is_not_https_off_loopback_is_refused_at_start() {
    let site = Site::new();
    let (code, err) = site.refused(&["--oidc-issuer", "http://idp.example.com", "--oidc-audience", AUDIENCE]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("error: --oidc-issuer http://idp.example.com") && err.contains("https://"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["daemon", "--plans", "p", "--state", "s", "--oidc-issuer", "https://idp"])
        .output()
        .expect("run the daemon");
    assert_eq!(out.status.code(), Some(2), "--oidc-issuer needs --oidc-audience");
}

//! Roles and scopes on the real daemon: every route of the route table called by every
//! role (scoped roles on their own and on another plan's routes), scoped viewers seeing
//! only their plans, failover only for admins and only when confirmed, hashed tokens
//! and their reload on SIGHUP, and the API subject named in the audit trail.

mod support_api;
mod support_daemon;

use std::process::Command;
use std::time::Duration;

use support_api::routes::{Caller, NO_LIMITS, assert_api_backup_audited_as, walk};
use support_api::{BIN, SUBJECTS, Site, hash_line, poll, token_of};

#[test]
fn every_route_answers_every_role_as_its_table_says() {
    let site = Site::new();
    let d = site.start("127.0.0.1", NO_LIMITS);
    let mut callers = vec![
        Caller {
            roles: None,
            token: None,
        },
        Caller {
            roles: None,
            token: Some("not-a-known-token-at-all".into()),
        },
    ];
    callers.extend(SUBJECTS.iter().map(|(s, r)| Caller {
        roles: Some(r.to_string()),
        token: Some(token_of(s)),
    }));
    let walked = walk(&d, &callers);
    assert_eq!(walked, 8 * 2 * 7);
}

#[test]
fn scoped_viewers_see_only_their_plans_and_metrics_need_a_token_off_loopback() {
    let site = Site::new();
    // A third plan file that does not load: only unscoped viewers count its error.
    std::fs::write(site.path("plans/broken.toml"), "[plan\n").unwrap();
    let mut extra = NO_LIMITS.to_vec();
    extra.push("--insecure-http");
    let d = site.start("0.0.0.0", &extra);
    let all = token_of("viewer-all");
    let ml = token_of("viewer-ml");
    let ok = poll(Duration::from_secs(60), || {
        d.json("/v1/jobs", &all)["jobs"]
            .as_array()
            .is_some_and(|j| j.iter().filter(|j| j["outcome"] == "success").count() >= 2)
    });
    assert!(ok, "first backups did not finish; log:\n{}", d.log());

    let names = |st: serde_json::Value| -> Vec<String> {
        st["plans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(d.json("/v1/status", &all)), ["ml", "web"]);
    assert_eq!(names(d.json("/v1/status", &ml)), ["ml"]);
    let jobs = d.json("/v1/jobs", &ml);
    let plans: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["plan"].as_str().unwrap())
        .collect();
    assert!(!plans.is_empty() && plans.iter().all(|p| *p == "ml"), "{jobs}");

    // Not on loopback: /metrics needs a viewer, and shows it only its plans.
    assert_eq!(d.call("GET", "/metrics", None, "").0, 401);
    let (code, every) = d.call("GET", "/metrics", Some(&all), "");
    assert_eq!(code, 200);
    assert!(
        every.contains("plan=\"web\"") && every.contains("plan=\"ml\""),
        "{every}"
    );
    let (code, mine) = d.call("GET", "/metrics", Some(&ml), "");
    assert_eq!(code, 200);
    assert!(mine.contains("lifeboat_rpo_seconds{plan=\"ml\""), "{mine}");
    assert!(!mine.contains("plan=\"web\""), "{mine}");
    // Daemon-wide gauges count the caller's plans only, as /v1/status does.
    assert!(every.contains("lifeboat_plan_load_errors{} 1"), "{every}");
    assert!(mine.contains("lifeboat_plan_load_errors{} 0"), "{mine}");
    assert_eq!(
        d.json("/v1/status", &ml)["plan_errors"].as_array().map(Vec::len),
        Some(0)
    );
}

#[test]
fn plain_http_off_loopback_needs_insecure_http() {
    let site = Site::new();
    let (code, err) = site.refused(&["--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("plain HTTP on 0.0.0.0:0") && err.contains("--insecure-http"),
        "{err}"
    );
}

#[test]
fn failover_needs_an_admin_and_a_confirmation_and_names_the_subject() {
    let site = Site::new();
    let d = site.start("127.0.0.1", NO_LIMITS);
    let path = "/v1/plans/ml/playbooks/check/failover";
    let admin = token_of("admin-all");
    assert_eq!(
        d.call("POST", path, Some(&token_of("operator-all")), "{\"confirm\": true}")
            .0,
        403
    );
    let (code, body) = d.call("POST", path, Some(&admin), "{\"confirm\": false}");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("confirm"), "{body}");
    assert_eq!(d.call("POST", path, Some(&admin), "not json").0, 400);
    let (code, body) = d.call("POST", path, Some(&admin), "{\"confirm\": true}");
    assert_eq!(code, 202, "{body}");
    assert!(body.contains("\"mode\":\"failover\""), "{body}");
    let ran = poll(Duration::from_secs(30), || {
        d.log().contains("playbook passed") && d.log().contains("mode=failover")
    });
    assert!(ran, "the failover did not run; log:\n{}", d.log());
    let line = d
        .log()
        .lines()
        .find(|l| l.contains("playbook started through the API"))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("subject=admin-all"), "{line}");
}

#[test]
fn an_api_backup_is_audited_under_its_subject() {
    let site = Site::new();
    let d = site.start("127.0.0.1", NO_LIMITS);
    let operator = token_of("operator-ml");
    assert_api_backup_audited_as(&site, &d, &operator, "api:operator-ml via ");
    let tokens = std::fs::read_to_string(site.path("tokens")).unwrap();
    assert!(!tokens.contains(&operator));
}

#[test]
fn a_revoked_token_stops_working_after_sighup_and_a_broken_file_keeps_the_old_tokens() {
    let site = Site::new();
    let d = site.start("127.0.0.1", NO_LIMITS);
    let (alice, bob) = (token_of("alice"), token_of("bob"));
    let alice_line = hash_line("viewer", "alice", &alice);
    site.write_tokens(&format!("{alice_line}\n{}", hash_line("viewer", "bob", &bob)));
    assert_eq!(
        d.call("GET", "/v1/status", Some(&alice), "").0,
        401,
        "not before SIGHUP"
    );
    d.signal("HUP");
    assert!(poll(Duration::from_secs(10), || d
        .call("GET", "/v1/status", Some(&alice), "")
        .0
        == 200));
    assert_eq!(d.call("GET", "/v1/status", Some(&token_of("viewer-all")), "").0, 401);

    site.write_tokens(&alice_line);
    d.signal("HUP");
    assert!(
        poll(Duration::from_secs(10), || d
            .call("GET", "/v1/status", Some(&bob), "")
            .0
            == 401),
        "bob's revoked token still works; log:\n{}",
        d.log()
    );
    assert_eq!(d.call("GET", "/v1/status", Some(&alice), "").0, 200);

    site.write_tokens("viewer carol sha256:nothex");
    d.signal("HUP");
    assert!(poll(Duration::from_secs(10), || d
        .log()
        .contains("API tokens not reloaded")));
    assert_eq!(
        d.call("GET", "/v1/status", Some(&alice), "").0,
        200,
        "the old tokens stay"
    );
}

#[test]
fn plain_text_tokens_still_work_with_a_deprecation_warning() {
    let site = Site::new();
    let legacy = "legacy-plain-token-0123456789";
    site.write_tokens(&format!("operator {legacy}"));
    let d = site.start("127.0.0.1", NO_LIMITS);
    assert_eq!(d.call("GET", "/v1/status", Some(legacy), "").0, 200);
    let log = d.log();
    assert!(
        log.contains("plain-text token (deprecated)") && log.contains("line=2"),
        "{log}"
    );
    assert!(!log.contains(legacy), "the token itself is never logged");
}

#[test]
fn token_hash_refuses_short_tokens_and_unknown_roles() {
    for (roles, token) in [("viewer", "short"), ("root", "long-enough-token-0123456789")] {
        let out = Command::new(BIN)
            .args(["token", "hash", "--roles", roles, "--subject", "x"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(token.as_bytes())?;
                c.wait_with_output()
            })
            .expect("run token hash");
        assert_eq!(out.status.code(), Some(2), "{roles} {token}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    }
    let line = hash_line("operator:ml,viewer", "alice", "alice-token-0123456789abcdef");
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[..2], ["operator:ml,viewer", "alice"]);
    assert!(words[2].starts_with("sha256:") && words[2].len() == 7 + 64, "{line}");
}

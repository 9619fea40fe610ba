//! The walk of every API route with every caller, shared by the static-token and the
//! OIDC tests so both kinds of identity are held to one table: what each role may do
//! is written here, independently of the daemon's own table, and every route the
//! daemon lists must be in it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{BIN, Daemon, PASSWORD, Site, poll};

/// Limits high enough that a walk is never rate limited.
pub const NO_LIMITS: &[&str] = &[
    "--address-rate",
    "1000000",
    "--subject-rate",
    "1000000",
    "--trigger-rate",
    "1000000",
];

/// A caller of the walk: its roles (`None`: no valid identity, `""`: an identity
/// without a role) and its bearer token (`None`: no header).
pub struct Caller {
    pub roles: Option<String>,
    pub token: Option<String>,
}

/// What a caller may do: `None` roles is no identity, `""` an identity without a
/// role. Whether `route` on plan `plan` is allowed, or `None` for a route this table
/// does not know.
fn allowed(roles: Option<&str>, route: &str, plan: &str) -> Option<bool> {
    let roles = match roles {
        None | Some("") => return Some(matches!(route, "/healthz" | "/metrics")),
        Some(r) => r,
    };
    let (level, scope) = match roles.split_once(':') {
        Some((l, s)) => (l, Some(s)),
        None => (roles, None),
    };
    let rank = ["viewer", "operator", "admin"].iter().position(|r| *r == level)?;
    let on_plan = scope.is_none_or(|s| s == plan);
    Some(match route {
        "/healthz" | "/metrics" | "/v1/status" | "/v1/jobs" => true,
        "/v1/datasets/{plan}/{dataset}/backup"
        | "/v1/datasets/{plan}/{dataset}/verify"
        | "/v1/plans/{plan}/playbooks/{playbook}/drill" => rank >= 1 && on_plan,
        "/v1/plans/{plan}/playbooks/{playbook}/failover" => rank >= 2 && on_plan,
        _ => return None,
    })
}

fn concrete(template: &str, plan: &str) -> String {
    template
        .replace("{plan}", plan)
        .replace("{dataset}", "docs")
        .replace("{playbook}", "check")
}

/// The answers an allowed call may get: work queued or started, a drill already
/// running, or a failover refused for want of its confirmation.
fn admitted(route: &str, code: u16) -> bool {
    match route {
        "/v1/plans/{plan}/playbooks/{playbook}/drill" => code == 202 || code == 409,
        "/v1/plans/{plan}/playbooks/{playbook}/failover" => code == 400,
        r if r.starts_with("/v1/datasets/") => code == 202,
        _ => code == 200,
    }
}

/// Call every route of the daemon's table, on plans `ml` and `web`, as every caller;
/// an allowed call must be admitted, a known caller refused 403, anyone else 401.
/// Returns the number of calls.
pub fn walk(d: &Daemon, callers: &[Caller]) -> usize {
    let routes = lifeboat::daemon::api_routes();
    assert_eq!(
        routes.len(),
        8,
        "a route was added or removed: extend this walk: {routes:?}"
    );
    let mut walked = 0;
    for (method, template, need) in &routes {
        for plan in ["ml", "web"] {
            let path = concrete(template, plan);
            for c in callers {
                let (code, body) = d.call(method, &path, c.token.as_deref(), "");
                let may = allowed(c.roles.as_deref(), template, plan)
                    .unwrap_or_else(|| panic!("route {template} ({need}) is not in this test's table"));
                let ok = match (may, &c.token, &c.roles) {
                    (true, _, _) => admitted(template, code),
                    (false, Some(_), Some(_)) => code == 403,
                    (false, _, _) => code == 401,
                };
                assert!(ok, "{method} {path} as {:?}: {code} {body}", c.roles);
                walked += 1;
            }
        }
    }
    walked
}

/// The actors of the audit trail of the region repository at `repo`.
pub fn audit_actors(repo: &Path) -> Vec<String> {
    let out = Command::new(BIN)
        .args(["audit", "log", "--json", "--repo"])
        .arg(repo)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .output()
        .expect("run audit log");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    doc["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["actor"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Once the first scheduled backup of plan `ml` is in its region `a`'s audit trail,
/// ask for a backup as `token` and wait until an event names `actor_prefix`; panics
/// (with the log) if it never does.
pub fn assert_api_backup_audited_as(site: &Site, d: &Daemon, token: &str, actor_prefix: &str) {
    let repo = site.path("regions/ml-a");
    let first = poll(Duration::from_secs(60), || {
        audit_actors(&repo).iter().any(|a| a.contains('@'))
    });
    assert!(first, "no scheduled backup; log:\n{}", d.log());
    let (code, body) = d.call("POST", "/v1/datasets/ml/docs/backup", Some(token), "");
    assert_eq!(code, 202, "{body}");
    let named = poll(Duration::from_secs(60), || {
        audit_actors(&repo).iter().any(|a| a.starts_with(actor_prefix))
    });
    assert!(named, "actors: {:?}; log:\n{}", audit_actors(&repo), d.log());
    assert!(!d.log().contains(token), "a token reached the log");
}

//! Preflight and read-back with real parts: a checkpoint backed up to two local-folder
//! regions, a real nginx whose upstream fragment is the `file` endpoint, a `command`
//! endpoint with a `verify` program. Each preflight case runs `failover --confirm` and
//! checks that nothing changed: the restore target stays empty and the endpoint as it
//! was. A failed `nginx -t` is put back and rolled back; the swap itself is tested in
//! `drill_file_swap.rs`.
//!
//! nginx is needed: missing, the tests say so and pass, unless `LIFEBOAT_REQUIRE_SERVERS=1`
//! (set by `tests/run.sh`), where they fail.

mod servers;
mod support_drill;

use support_drill::free_port;
use support_drill::gateway::{self, ORIGINAL, World};

fn dns_endpoint_and_playbook() -> String {
    r#"
[endpoints.dns]
provider = "dns"
server = "127.0.0.1:1"
zone = "example.test."
record = "infer.example.test."
tsig_key_name = "ddns-key"
tsig_secret = { env = "LIFEBOAT_TSIG_SECRET" }
targets = { primary = "127.0.0.10", standby = "127.0.0.20" }

[playbooks.with-dns]
rto = "5m"
primary = "primary"
standby = "standby"
steps = [
  { kind = "restore", dataset = "models", target = "RESTORED" },
  { kind = "repoint", endpoint = "gateway", to = "standby" },
  { kind = "repoint", endpoint = "dns", to = "standby" },
]
"#
    .to_string()
}

#[test]
fn failover_with_the_tsig_secret_unset_stops_before_anything_changes() {
    let Some(bin) = gateway::nginx("drill_preflight") else {
        return;
    };
    let w = World::new(&bin, "127.0.0.1:1002", "");
    let extra = dns_endpoint_and_playbook().replace("RESTORED", &format!("{}/restored", w.dir.display()));
    w.write_plan("127.0.0.1:1002", &extra);
    w.apply();

    let (code, out, err) = w.failover("with-dns", &[]);
    assert_eq!(code, 2, "a missing secret is bad input: {out}{err}");
    assert!(err.starts_with("error: preflight of playbook with-dns failed"), "{err}");
    assert!(
        err.contains("TSIG secret of endpoint dns") && err.contains("LIFEBOAT_TSIG_SECRET"),
        "the message names the missing secret: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(w.restored_nothing(), "nothing was restored");
    assert_eq!(w.upstream(), ORIGINAL, "the gateway was not touched");
    let report = w.last_report();
    assert_eq!(report["outcome"], "failed");
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["phase"] == "preflight"), "{report:#}");
    let failed: Vec<&str> = steps
        .iter()
        .filter(|s| s["status"] == "failed")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["secret: TSIG secret of endpoint dns"], "{report:#}");

    // The dry run makes the same checks, and fails the same way.
    let plan = w.plan.display().to_string();
    let (code, _, err) = w.lifeboat(&["failover", "--plan", &plan, "--dry-run", "with-dns"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("LIFEBOAT_TSIG_SECRET"), "{err}");
    // With the secret set, the DNS server is asked next: nothing answers on its port.
    let secret = [("LIFEBOAT_TSIG_SECRET", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")];
    let (code, out, err) = w.lifeboat(&["failover", "--plan", &plan, "--dry-run", "with-dns"], &secret);
    assert_eq!(code, 1, "an unreachable DNS server is a failure: {out}{err}");
    assert!(
        err.contains("endpoint dns to standby: UDP to 127.0.0.1:1: Connection refused"),
        "{err}"
    );
    assert!(!err.contains("TSIG secret of endpoint dns"), "{err}");
    let (code, out, err) = w.lifeboat(&["failover", "--plan", &plan, "--dry-run", "recover"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("preflight ok: secret: repository password: resolved")
            && out.contains("preflight ok: restore of models: region standby opens")
            && out.contains("preflight ok: endpoint gateway to standby: upstream inference { server 127.0.0.1:1001; }")
            && out.contains("re-point gateway to standby"),
        "{out}"
    );
    assert!(w.restored_nothing(), "the dry run restored nothing");
    assert_eq!(w.upstream(), ORIGINAL);
}

#[test]
fn failover_with_a_wrong_repository_password_stops_before_anything_changes() {
    let Some(bin) = gateway::nginx("drill_preflight") else {
        return;
    };
    let w = World::new(&bin, "127.0.0.1:1002", "");
    w.apply();
    let (code, out, err) = w.failover("recover", &[("LIFEBOAT_PASSWORD", "not the password")]);
    assert_eq!(code, 2, "a wrong password is exit 2: {out}{err}");
    assert!(
        err.starts_with("error: wrong password for region ") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(w.restored_nothing());
    assert_eq!(w.upstream(), ORIGINAL);
}

#[test]
fn failover_with_an_unreachable_http_api_stops_before_anything_changes() {
    let Some(bin) = gateway::nginx("drill_preflight") else {
        return;
    };
    let closed = free_port();
    let w = World::new(&bin, "127.0.0.1:1002", "");
    let extra = format!(
        r#"
[endpoints.lb]
provider = "http"
url = "http://127.0.0.1:{closed}/pool"
method = "PUT"
body = '{{"backend": "{{target}}"}}'
targets = {{ primary = "10.0.0.1", standby = "10.0.0.2" }}

[playbooks.with-api]
rto = "5m"
primary = "primary"
standby = "standby"
steps = [
  {{ kind = "restore", dataset = "models", target = "{d}/restored" }},
  {{ kind = "repoint", endpoint = "gateway", to = "standby" }},
  {{ kind = "repoint", endpoint = "lb", to = "standby" }},
]
"#,
        d = w.dir.display()
    );
    w.write_plan("127.0.0.1:1002", &extra);
    w.apply();
    let (code, out, err) = w.failover("with-api", &[]);
    assert_eq!(code, 1, "an unreachable API is a failure, not bad input: {out}{err}");
    assert!(
        err.contains("endpoint lb to standby") && err.contains(&format!("http://127.0.0.1:{closed}/pool")),
        "the message names the API: {err}"
    );
    assert!(w.restored_nothing());
    assert_eq!(w.upstream(), ORIGINAL);
}

#[test]
fn a_failed_nginx_check_puts_the_old_file_back_and_rolls_back() {
    let Some(bin) = gateway::nginx("drill_preflight") else {
        return;
    };
    // `nginx -t` refuses this port, after the file was written.
    let w = World::new(&bin, "127.0.0.1:notaport", "");
    w.apply();
    let (code, out, err) = w.failover("recover", &[]);
    assert_eq!(code, 1, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let repoint = steps
        .iter()
        .find(|s| s["phase"] == "steps" && s["kind"] == "repoint")
        .unwrap();
    assert_eq!(repoint["status"], "failed");
    let detail = repoint["detail"].as_str().unwrap();
    assert!(
        detail.contains("-t") && detail.contains("the old file is back"),
        "{detail}"
    );
    let rollback = support_drill::rollback_records(&report);
    assert_eq!(
        rollback,
        ["gateway back to primary passed"],
        "a failed re-point counts as re-pointed for rollback"
    );
    assert_eq!(w.upstream(), ORIGINAL);
}

#[test]
fn a_command_endpoint_whose_verify_fails_is_failed_and_rolled_back() {
    let Some(bin) = gateway::nginx("drill_preflight") else {
        return;
    };
    let w = World::new(&bin, "127.0.0.1:1002", "");
    let route = w.dir.join("route");
    std::fs::write(&route, "10.0.0.1").unwrap();
    let extra = format!(
        r#"
[endpoints.router]
provider = "command"
command = ["sh", "-c", "printf %s \"$1\" > {route}", "set-route"]
verify = ["sh", "-c", "grep -qx \"$1\" {route} && test \"$1\" != 10.0.0.2", "check-route"]
targets = {{ primary = "10.0.0.1", standby = "10.0.0.2", third = "10.0.0.3" }}

[regions.third]
address = "{d}/repo-third"
create = true

[playbooks.move-router]
rto = "5m"
primary = "primary"
steps = [{{ kind = "repoint", endpoint = "router", to = "standby" }}]

[playbooks.move-router-third]
rto = "5m"
primary = "primary"
steps = [{{ kind = "repoint", endpoint = "router", to = "third" }}]
"#,
        route = route.display(),
        d = w.dir.display()
    );
    w.write_plan("127.0.0.1:1002", &extra);
    w.apply();

    // The verify program refuses 10.0.0.2: the step fails although the command ran,
    // and rollback puts the route back on the primary.
    let (code, out, err) = w.failover("move-router", &[]);
    assert_eq!(code, 1, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let detail = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["phase"] == "steps")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("the verify command failed"), "{detail}");
    assert_eq!(std::fs::read_to_string(&route).unwrap(), "10.0.0.1");

    let (code, out, err) = w.failover("move-router-third", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("confirmed it"), "{out}");
    assert_eq!(std::fs::read_to_string(&route).unwrap(), "10.0.0.3");
}

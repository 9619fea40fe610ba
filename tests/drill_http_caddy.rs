//! The `http` provider against a real gateway: Caddy, configured through its JSON admin
//! API on a loopback port, proxying to one of two backends. A failover re-points the
//! upstream with a PATCH and reads it back with a GET (`verify_url`, `verify_json`);
//! an endpoint whose change lands elsewhere (the gateway accepts it, the route that
//! serves traffic does not change) fails its read-back and is rolled back.
//!
//! Caddy is needed: missing, the tests say so and pass, unless
//! `LIFEBOAT_REQUIRE_SERVERS=1` (set by `tests/run.sh`, which installs it), where they fail.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

mod servers;
mod support_drill;

use support_drill::{Procs, free_port, tools};

/// A backend answering every request with its own name.
fn backend(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            );
            let _ = (&stream).write_all(reply.as_bytes());
        }
    });
    port
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    support_drill::http_exchange(port, &req)
}

/// Caddy, stopped when the test ends.
struct Caddy {
    _procs: Procs,
    admin: u16,
    gateway: u16,
}

/// The upstream `dial` of route `route` (0: the decoy route under /decoy, 1: all else).
fn upstream_path(route: usize) -> String {
    format!("/config/apps/http/servers/gw/routes/{route}/handle/0/upstreams")
}

fn start_caddy(bin: &Path, dir: &Path, primary: u16) -> Caddy {
    let (admin, gateway) = (free_port(), free_port());
    let proxy = |port: u16| serde_json::json!([{ "handler": "reverse_proxy", "upstreams": [{ "dial": format!("127.0.0.1:{port}") }] }]);
    let config = serde_json::json!({
        "admin": { "listen": format!("127.0.0.1:{admin}") },
        "apps": { "http": { "servers": { "gw": {
            "listen": [format!("127.0.0.1:{gateway}")],
            "automatic_https": { "disable": true },
            "routes": [
                { "match": [{ "path": ["/decoy*"] }], "handle": proxy(primary) },
                { "handle": proxy(primary) },
            ],
        }}}},
    });
    let mut procs = Procs::default();
    let ready = || get(gateway, "/").is_some_and(|(s, _)| s == 200);
    support_drill::start_caddy(&mut procs, bin, dir, &config, ready);
    Caddy {
        _procs: procs,
        admin,
        gateway,
    }
}

fn dial(caddy: &Caddy, route: usize) -> String {
    let (status, body) = get(caddy.admin, &upstream_path(route)).unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v[0]["dial"].as_str().unwrap().to_string()
}

fn write_plan(dir: &Path, caddy: &Caddy, primary: u16, standby: u16) -> PathBuf {
    let admin = caddy.admin;
    let endpoint = |name: &str, route: usize| {
        format!(
            r#"
[endpoints.{name}]
provider = "http"
url = "http://127.0.0.1:{admin}{path}/0/dial"
method = "PATCH"
body = '"{{target}}"'
verify_url = "http://127.0.0.1:{admin}{verify}"
verify_json = {{ "/0/dial" = "{{target}}" }}
targets = {{ primary = "127.0.0.1:{primary}", standby = "127.0.0.1:{standby}" }}
"#,
            path = upstream_path(route),
            verify = upstream_path(1),
        )
    };
    let playbook = |name: &str, endpoint: &str| {
        format!(
            "\n[playbooks.{name}]\nrto = \"1m\"\nprimary = \"primary\"\nsteps = [{{ kind = \"repoint\", endpoint = \"{endpoint}\", to = \"standby\" }}]\n"
        )
    };
    let text = format!(
        r#"{head}{gateway}{decoy}{good}{bad}"#,
        head = support_drill::plan_head(dir, "conf", "src"),
        gateway = endpoint("gateway", 1),
        decoy = endpoint("misrouted", 0),
        good = playbook("move", "gateway"),
        bad = playbook("move-misrouted", "misrouted"),
    );
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, text).unwrap();
    plan
}

fn lifeboat(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("lifeboat")
        .unwrap()
        .args(args)
        .env("LIFEBOAT_PASSWORD", "caddy-test-password")
        .current_dir(dir)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn caddy_upstream_is_repointed_and_read_back_and_a_misrouted_change_is_rolled_back() {
    let found = tools(
        "drill_http_caddy",
        &[("caddy", "LIFEBOAT_TEST_CADDY")],
        "apt-get install caddy",
    );
    let Some(bin) = found.and_then(|t| t.into_iter().next()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (primary, standby) = (backend("primary"), backend("standby"));
    let caddy = start_caddy(&bin, dir, primary);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/app.conf"), "x").unwrap();
    let plan = write_plan(dir, &caddy, primary, standby);
    let plan = plan.display().to_string();
    let (code, out, err) = lifeboat(dir, &["apply", &plan]);
    assert_eq!(code, 0, "apply: {out}{err}");

    // The gateway accepts a change to the decoy route, but the route serving traffic
    // keeps the primary: the read-back fails the step, rollback puts the decoy back.
    let (code, out, err) = lifeboat(
        dir,
        &["--json", "failover", "--plan", &plan, "--confirm", "move-misrouted"],
    );
    assert_eq!(code, 1, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let step = steps.iter().find(|s| s["phase"] == "steps").unwrap();
    assert_eq!(step["status"], "failed");
    let detail = step["detail"].as_str().unwrap();
    assert!(
        detail.contains("answered 200, but the change did not show") && detail.contains("/0/dial"),
        "{detail}"
    );
    let rollback = support_drill::rollback_records(&report);
    assert_eq!(rollback, ["misrouted back to primary passed"], "{report:#}");
    assert_eq!(
        dial(&caddy, 0),
        format!("127.0.0.1:{primary}"),
        "the decoy was put back"
    );
    assert_eq!(get(caddy.gateway, "/").unwrap().1, "primary");

    // The real re-point: PATCHed, read back, and traffic follows.
    let (code, out, err) = lifeboat(dir, &["--json", "failover", "--plan", &plan, "--confirm", "move"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let pre = steps
        .iter()
        .find(|s| s["phase"] == "preflight" && s["name"] == "endpoint gateway to standby")
        .unwrap();
    assert!(
        pre["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("/0/dial = \"127.0.0.1:{primary}\"")),
        "the preflight read the current upstream: {pre}"
    );
    let step = steps.iter().find(|s| s["phase"] == "steps").unwrap();
    assert!(step["detail"].as_str().unwrap().contains("read back from"), "{step}");
    assert_eq!(dial(&caddy, 1), format!("127.0.0.1:{standby}"));
    assert_eq!(get(caddy.gateway, "/").unwrap().1, "standby");
}

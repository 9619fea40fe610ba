//! Preflight and read-back with real parts: a checkpoint backed up to two local-folder
//! regions, a real nginx whose upstream fragment is the `file` endpoint, a `command`
//! endpoint with a `verify` program. Each preflight case runs `failover --confirm` and
//! checks that nothing changed: the restore target stays empty and the endpoint as it
//! was. A failed `nginx -t` is put back and rolled back; the swap itself is tested in
//! `drill_file_swap.rs`.
//!
//! nginx is needed: missing, the tests say so and pass, unless `LIFEBOAT_REQUIRE_SERVERS=1`
//! (set by `tests/run.sh`), where they fail.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

const PASSWORD: &str = "preflight-password";

fn nginx_binary() -> Option<PathBuf> {
    let from_env = std::env::var_os("LIFEBOAT_TEST_NGINX").map(PathBuf::from);
    let found = from_env.or_else(|| {
        ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("LIFEBOAT_REQUIRE_SERVERS").as_deref() != Ok("1"),
            "nginx is required (LIFEBOAT_REQUIRE_SERVERS=1) but not installed"
        );
        eprintln!("skipping: nginx is needed (apt-get install nginx-light; tests/run.sh does it)");
    }
    found
}

/// nginx stopped (SIGQUIT, then SIGKILL) when the test ends.
struct Nginx {
    child: Child,
    cmd: Vec<String>,
    upstream: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_nginx(bin: &Path, dir: &Path) -> Nginx {
    for d in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let port = free_port();
    let upstream = dir.join("upstream.conf");
    std::fs::write(&upstream, "upstream inference { server 127.0.0.1:1001; }\n").unwrap();
    let d = dir.display();
    let conf = format!(
        "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/logs/error.log notice;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log {d}/logs/access.log;\n\
         client_body_temp_path {d}/tmp/cb; proxy_temp_path {d}/tmp/p; fastcgi_temp_path {d}/tmp/f;\n\
         uwsgi_temp_path {d}/tmp/u; scgi_temp_path {d}/tmp/s;\n\
         include {d}/upstream.conf;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://inference; }} }} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let cmd: Vec<String> = vec![
        bin.display().to_string(),
        "-p".into(),
        d.to_string(),
        "-c".into(),
        format!("{d}/nginx.conf"),
        "-e".into(),
        format!("{d}/logs/error.log"),
    ];
    let child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "nginx did not start; see {d}/logs/error.log");
        std::thread::sleep(Duration::from_millis(100));
    }
    Nginx { child, cmd, upstream }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    plan: PathBuf,
    nginx: Nginx,
}

impl World {
    /// Regions, a backed-up dataset, the nginx gateway endpoint, and `extra` plan text.
    fn new(nginx_bin: &Path, standby_target: &str, extra: &str) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let nginx = start_nginx(nginx_bin, &dir.join("nginx"));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/weights.bin"), vec![7u8; 50_000]).unwrap();
        let plan = dir.join("plan.toml");
        let w = World {
            _tmp: tmp,
            dir,
            plan,
            nginx,
        };
        w.write_plan(standby_target, extra);
        w
    }

    fn write_plan(&self, standby_target: &str, extra: &str) {
        let d = self.dir.display();
        let mut check = self.nginx.cmd.clone();
        check.push("-t".into());
        let mut reload = self.nginx.cmd.clone();
        reload.extend(["-s".into(), "reload".into()]);
        let text = format!(
            r#"[key]
env = "LIFEBOAT_PASSWORD"

[regions.primary]
address = "{d}/repo-primary"
create = true

[regions.standby]
address = "{d}/repo-standby"
create = true

[datasets.models]
kind = "model"
paths = ["{d}/src"]
schedule = "@hourly"
regions = ["primary", "standby"]
rpo = "1h"
retention = {{ keep_last = 3 }}

[endpoints.gateway]
provider = "file"
path = "{upstream}"
template = "upstream inference {{ server {{target}}; }}\n"
check = {check}
reload = {reload}
targets = {{ primary = "127.0.0.1:1001", standby = "{standby_target}" }}

[playbooks.recover]
rto = "5m"
primary = "primary"
standby = "standby"
steps = [
  {{ kind = "restore", dataset = "models", target = "{d}/restored" }},
  {{ kind = "repoint", endpoint = "gateway", to = "standby" }},
]
{extra}
"#,
            upstream = self.nginx.upstream.display(),
            check = toml_list(&check),
            reload = toml_list(&reload),
        );
        std::fs::write(&self.plan, text).unwrap();
    }

    fn lifeboat(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = Command::cargo_bin("lifeboat").unwrap();
        cmd.args(args)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env_remove("LIFEBOAT_TSIG_SECRET")
            .current_dir(&self.dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    fn apply(&self) {
        let plan = self.plan.display().to_string();
        let (code, out, err) = self.lifeboat(&["apply", &plan], &[]);
        assert_eq!(code, 0, "apply: {out}{err}");
    }

    fn failover(&self, playbook: &str, env: &[(&str, &str)]) -> (i32, String, String) {
        let plan = self.plan.display().to_string();
        self.lifeboat(&["--json", "failover", "--plan", &plan, "--confirm", playbook], env)
    }

    fn upstream(&self) -> String {
        std::fs::read_to_string(&self.nginx.upstream).unwrap()
    }

    fn restored_nothing(&self) -> bool {
        std::fs::read_dir(self.dir.join("restored")).map_or(true, |mut d| d.next().is_none())
    }

    /// The newest JSON report kept in the state folder.
    fn last_report(&self) -> serde_json::Value {
        let dir = self.dir.join(".lifeboat-state/reports");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let last = files.last().expect("a report is kept");
        serde_json::from_slice(&std::fs::read(last).unwrap()).unwrap()
    }
}

const ORIGINAL: &str = "upstream inference { server 127.0.0.1:1001; }\n";

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
    let Some(bin) = nginx_binary() else { return };
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
    let Some(bin) = nginx_binary() else { return };
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
    let Some(bin) = nginx_binary() else { return };
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
    let Some(bin) = nginx_binary() else { return };
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
    let rollback: Vec<String> = steps
        .iter()
        .filter(|s| s["phase"] == "rollback")
        .map(|s| format!("{} {}", s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rollback,
        ["gateway back to primary passed"],
        "a failed re-point counts as re-pointed for rollback"
    );
    assert_eq!(w.upstream(), ORIGINAL);
}

#[test]
fn a_command_endpoint_whose_verify_fails_is_failed_and_rolled_back() {
    let Some(bin) = nginx_binary() else { return };
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

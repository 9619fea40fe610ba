//! The real servers the drill tests re-point: nginx (a `file` endpoint's gateway), Knot
//! (an authoritative DNS server taking TSIG-signed updates) and Caddy (an `http`
//! endpoint's admin API), each started on free loopback ports in a temporary folder and
//! stopped when the test ends, pass or fail. Also: finding the programs (from
//! `tests/run.sh`'s `LIFEBOAT_TEST_*` variables or the PATH; a missing one skips the
//! test, or fails it under `LIFEBOAT_REQUIRE_SERVERS=1`, see `tests/servers/mod.rs`),
//! free ports, and a direct DNS lookup that does not go through the code under test.
//!
//! A test using this declares `mod servers;` as well.
#![allow(dead_code)]

pub mod gateway;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// A program from `env` when set, else from the PATH, `/usr/sbin` or `/sbin`.
pub fn tool(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Every `(program, variable)` of `wanted`, or `None` after reporting the missing ones
/// for `test` (a failure when the suite requires its servers). `install` says how to get them.
pub fn tools(test: &str, wanted: &[(&str, &str)], install: &str) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = wanted.iter().map(|(n, e)| tool(n, e)).collect();
    if found.iter().all(Option::is_some) {
        return Some(found.into_iter().flatten().collect());
    }
    let names: Vec<&str> = wanted.iter().map(|(n, _)| *n).collect();
    let reason = format!("{} needed ({install}; tests/run.sh does it)", names.join(", "));
    crate::servers::missing(test, &reason);
    None
}

/// A loopback port free for both TCP and UDP.
pub fn free_port() -> u16 {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    UdpSocket::bind(("127.0.0.1", port)).map_or_else(|_| free_port(), |_| port)
}

/// Wait until something accepts TCP connections on `port` (15 s at most).
pub fn wait_port(port: u16) {
    let end = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Programs started by a test, stopped when it ends: each gets its signal (SIGQUIT lets
/// nginx's master stop its workers), 5 s, then SIGKILL.
#[derive(Default)]
pub struct Procs(Vec<(Child, &'static str)>);

impl Procs {
    /// Keep `child`, to be stopped with `signal` (e.g. "TERM").
    pub fn keep(&mut self, child: Child, signal: &'static str) {
        self.0.push((child, signal));
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (c, signal) in &mut self.0 {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &c.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start `program args...` with stderr in `log`, kept in `procs` to be stopped with `signal`.
pub fn spawn(procs: &mut Procs, program: &Path, args: &[&str], log: &Path, signal: &'static str) {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    procs.keep(child, signal);
}

/// What `name` holds for `rtype` at the server on `port`, asked directly over UDP.
pub fn lookup(port: u16, name: &str, rtype: RecordType) -> Result<Vec<String>, String> {
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    socket.send_to(&query.to_vec().unwrap(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let len = socket.recv(&mut buf).map_err(|e| e.to_string())?;
    let answer = Message::from_vec(&buf[..len]).map_err(|e| e.to_string())?;
    let code = answer.metadata.response_code;
    if code != ResponseCode::NoError {
        return Err(format!("{code}"));
    }
    let mut values: Vec<String> = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| r.data.to_string())
        .collect();
    values.sort();
    Ok(values)
}

/// The A records of `infer.example.test.`, the name the tests re-point.
pub fn infer(port: u16) -> Result<Vec<String>, String> {
    lookup(port, "infer.example.test.", RecordType::A)
}

/// Wait until the DNS server on `port` answers (20 s at most; `log` is its log).
pub fn wait_answering(port: u16, log: &Path) {
    let end = Instant::now() + Duration::from_secs(20);
    while infer(port).is_err() {
        assert!(
            Instant::now() < end,
            "the DNS server did not answer; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The test zone: `infer` and `web` at 127.0.0.10.
pub const ZONE: &str = "$ORIGIN example.test.\n$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\ninfer A 127.0.0.10\nweb A 127.0.0.10\n";

/// A TSIG key block printed by `keymgr -t NAME ALG`, and its secret.
fn knot_key(keymgr: &Path, name: &str, alg: &str) -> (String, String) {
    let out = Command::new(keymgr).args(["-t", name, alg]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let secret = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .expect("keymgr prints a secret")
        .to_string();
    let block: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("key:"))
        .collect();
    (block.join("\n") + "\n", secret)
}

/// Knot serving [`ZONE`] with `ddns-key` (HMAC-SHA256) allowed to update it; returns
/// its port and the key's secret.
pub fn start_knot(procs: &mut Procs, knotd: &Path, keymgr: &Path, dir: &Path) -> (u16, String) {
    for d in ["run", "db", "zones"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let (block, secret) = knot_key(keymgr, "ddns-key", "hmac-sha256");
    std::fs::write(dir.join("zones/example.test.zone"), ZONE).unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "server:\n    rundir: \"{d}/run\"\n    listen: 127.0.0.1@{port}\ndatabase:\n    storage: \"{d}/db\"\n\
         log:\n  - target: stderr\n    any: info\nkey:\n{block}acl:\n  - id: ddns\n    key: ddns-key\n    action: update\n\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    zonefile-sync: 0\n    journal-content: all\n\
         zone:\n  - domain: example.test\n    acl: ddns\n"
    );
    std::fs::write(dir.join("knot.conf"), conf).unwrap();
    let conf = dir.join("knot.conf").display().to_string();
    spawn(procs, knotd, &["-c", &conf], &dir.join("knot.log"), "TERM");
    wait_answering(port, &dir.join("knot.log"));
    (port, secret)
}

/// nginx proxying a port to the upstream in its `upstream.conf`, the file an endpoint
/// rewrites. `cmd` runs this nginx (add `-t` to check, `-s reload` to reload).
pub struct Nginx {
    pub cmd: Vec<String>,
    pub port: u16,
    pub upstream: PathBuf,
}

impl Nginx {
    /// Plan text for the `file` endpoint `gateway` rewriting this nginx's upstream to
    /// `primary` or `standby` (`host:port`), checked with `-t` and reloaded.
    pub fn endpoint(&self, primary: &str, standby: &str) -> String {
        let mut check = self.cmd.clone();
        check.push("-t".into());
        let mut reload = self.cmd.clone();
        reload.extend(["-s".into(), "reload".into()]);
        format!(
            r#"[endpoints.gateway]
provider = "file"
path = "{}"
template = "upstream inference {{ server {{target}}; }}\n"
check = {}
reload = {}
targets = {{ primary = "{primary}", standby = "{standby}" }}
"#,
            self.upstream.display(),
            toml_list(&check),
            toml_list(&reload),
        )
    }
}

/// Start nginx in `dir` with upstream `inference` at `backend` (`host:port`).
pub fn start_nginx(procs: &mut Procs, bin: &Path, dir: &Path, backend: &str) -> Nginx {
    for d in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let port = free_port();
    let upstream = dir.join("upstream.conf");
    std::fs::write(&upstream, format!("upstream inference {{ server {backend}; }}\n")).unwrap();
    let d = dir.display();
    let conf = format!(
        "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/logs/error.log notice;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log {d}/logs/access.log;\n\
         client_body_temp_path {d}/tmp/cb; proxy_temp_path {d}/tmp/p; fastcgi_temp_path {d}/tmp/f;\n\
         uwsgi_temp_path {d}/tmp/u; scgi_temp_path {d}/tmp/s;\n\
         include {d}/upstream.conf;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://inference; proxy_next_upstream off; }} }} }}\n"
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
    let args: Vec<&str> = cmd[1..].iter().map(String::as_str).collect();
    spawn(procs, bin, &args, &dir.join("logs/start.log"), "QUIT");
    wait_port(port);
    Nginx { cmd, port, upstream }
}

/// Caddy run with the JSON `config` (its admin API on a loopback port the config names);
/// ready once `ready()` holds.
pub fn start_caddy(procs: &mut Procs, bin: &Path, dir: &Path, config: &serde_json::Value, ready: impl Fn() -> bool) {
    let file = dir.join("caddy.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let log = std::fs::File::create(dir.join("caddy.log")).unwrap();
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&file)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    procs.keep(child, "TERM");
    let end = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(
            Instant::now() < end,
            "caddy did not start; see {}",
            dir.join("caddy.log").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The start of a test plan: the password from `LIFEBOAT_PASSWORD`, regions `primary`
/// and `standby` (folders in `dir` that `apply` creates) and dataset `dataset` backing
/// up `dir/source` to both.
pub fn plan_head(dir: &Path, dataset: &str, source: &str) -> String {
    let d = dir.display();
    format!(
        r#"[key]
env = "LIFEBOAT_PASSWORD"

[regions.primary]
address = "{d}/repo-primary"
create = true

[regions.standby]
address = "{d}/repo-standby"
create = true

[datasets.{dataset}]
kind = "model"
paths = ["{d}/{source}"]
schedule = "@hourly"
regions = ["primary", "standby"]
rpo = "1h"
retention = {{ keep_last = 3 }}
"#
    )
}

/// A TOML array of strings.
pub fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Send one raw HTTP `request` to loopback `port` and read the answer to the end (the
/// request asks the server to close): its status and body, or `None` when nothing or
/// no HTTP answer came back within five seconds.
pub fn http_exchange(port: u16, request: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// A `--json` report's rollback records as "name status", in order.
pub fn rollback_records(report: &serde_json::Value) -> Vec<String> {
    let steps = report["steps"].as_array().expect("report steps");
    steps
        .iter()
        .filter(|s| s["phase"] == "rollback")
        .map(|s| {
            format!(
                "{} {}",
                s["name"].as_str().unwrap_or("?"),
                s["status"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

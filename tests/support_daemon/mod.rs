//! What the daemon tests share: token file lines, a minimal HTTP client for the daemon's API, and the rule
//! that `/metrics` says what `/v1/status` says (every flag, count and time of every plan,
//! dataset, region and drill).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon process started by a test, killed when it goes out of scope.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token file line `lifeboat token hash` prints for `token`.
pub fn hash_line(roles: &str, subject: &str, token: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["token", "hash", "--roles", roles, "--subject", subject])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run token hash");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{token}\n").as_bytes())
        .expect("write token");
    let out = child.wait_with_output().expect("token hash output");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub fn poll(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// One HTTP/1.1 request over a plain TCP connection: (status, body).
pub fn try_http(port: u16, method: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let code = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok())?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

pub fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    try_http(port, method, path, token).expect("HTTP request to the daemon")
}

/// Every sample line is `name{labels} value`; every comment is HELP or TYPE.
/// The value of the one sample of `series` (name and labels) in `metrics`.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

pub fn flag(v: &serde_json::Value) -> f64 {
    if v.as_bool().unwrap_or(false) { 1.0 } else { 0.0 }
}

/// The samples `/metrics` must hold for what `status` says, as (series, value); and the
/// error-class series prefixes that must be absent.
pub fn expected_metrics(status: &serde_json::Value) -> (Vec<(String, f64)>, Vec<String>) {
    let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    let errors = list(&status["plan_errors"]).len() as f64;
    let mut want = vec![("lifeboat_plan_load_errors{}".to_string(), errors)];
    let mut absent = Vec::new();
    for p in list(&status["plans"]) {
        let plan = p["name"].as_str().unwrap_or_default();
        want.push((format!("lifeboat_plan_stale{{plan=\"{plan}\"}}"), flag(&p["stale"])));
        for d in list(&p["datasets"]) {
            let l = format!(
                "plan=\"{plan}\",dataset=\"{}\"",
                d["dataset"].as_str().unwrap_or_default()
            );
            want.push((format!("lifeboat_objective_violated{{{l}}}"), flag(&d["violated"])));
            match d["anomaly"]["score"].as_f64() {
                Some(score) => {
                    want.push((format!("lifeboat_anomaly_score{{{l}}}"), score));
                    let suspect = flag(&d["anomaly"]["suspect"]);
                    want.push((format!("lifeboat_anomaly_suspect{{{l}}}"), suspect));
                }
                None => absent.push(format!("lifeboat_anomaly_score{{{l}}}")),
            }
            for r in list(&d["regions"]) {
                let l = format!("{l},region=\"{}\"", r["region"].as_str().unwrap_or_default());
                want.push((format!("lifeboat_region_lagging{{{l}}}"), flag(&r["lagging"])));
                want.push((format!("lifeboat_region_reachable{{{l}}}"), flag(&r["reachable"])));
                let failures = r["consecutive_failures"].as_f64().unwrap_or(-1.0);
                want.push((format!("lifeboat_region_consecutive_failures{{{l}}}"), failures));
                let stale = r["stale_locks"].as_f64().unwrap_or(-1.0);
                want.push((format!("lifeboat_region_stale_locks{{{l}}}"), stale));
                if let Some(t) = r["last_success"]
                    .as_str()
                    .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                {
                    want.push((
                        format!("lifeboat_last_success_timestamp_seconds{{{l}}}"),
                        t.timestamp() as f64,
                    ));
                }
                match r["last_error_class"].as_str() {
                    Some(class) => want.push((
                        format!("lifeboat_region_last_error_class{{{l},class=\"{class}\"}}"),
                        1.0,
                    )),
                    None => absent.push(format!("lifeboat_region_last_error_class{{{l},")),
                }
            }
        }
    }
    for dr in list(&status["drills"]) {
        let (plan, playbook) = (
            dr["plan"].as_str().unwrap_or_default(),
            dr["playbook"].as_str().unwrap_or_default(),
        );
        let passed = if dr["outcome"] == "passed" { 1.0 } else { 0.0 };
        want.push((
            format!("lifeboat_drill_passed{{plan=\"{plan}\",playbook=\"{playbook}\"}}"),
            passed,
        ));
    }
    (want, absent)
}

/// Why `metrics` disagrees with `status`, if it does: every flag, count and time above,
/// and `violated` exactly for the datasets `violations` lists.
pub fn disagreement(status: &serde_json::Value, metrics: &str) -> Option<String> {
    let (want, absent) = expected_metrics(status);
    for (series, value) in want {
        let found = metric(metrics, &series);
        if found != Some(value) {
            return Some(format!("{series}: metrics say {found:?}, status {value}"));
        }
    }
    if let Some(series) = absent.iter().find(|prefix| metrics.contains(prefix.as_str())) {
        return Some(format!("{series}…: in metrics, not in status"));
    }
    let listed = status["violations"].as_array().cloned().unwrap_or_default();
    for p in status["plans"].as_array().cloned().unwrap_or_default() {
        for d in p["datasets"].as_array().cloned().unwrap_or_default() {
            let prefix = format!(
                "{}/{}:",
                p["name"].as_str().unwrap_or_default(),
                d["dataset"].as_str().unwrap_or_default()
            );
            let named = listed
                .iter()
                .any(|v| v.as_str().is_some_and(|v| v.starts_with(&prefix)));
            if named != (d["violated"] == true) {
                return Some(format!("{prefix} violated={} but violations {listed:?}", d["violated"]));
            }
        }
    }
    None
}

/// Why `/metrics` and `/v1/status` of the daemon on `port` disagree, if they do. They are
/// read back to back; a job that ends in between may change both, so a disagreement is
/// read again (5 times at most). `None` also when the daemon does not answer (it may be
/// restarting): only answers are compared.
pub fn metrics_status_disagreement(port: u16, token: &str) -> Option<String> {
    let mut why = None;
    for _ in 0..5 {
        let (Some((200, status)), Some((200, metrics))) = (
            try_http(port, "GET", "/v1/status", Some(token)),
            try_http(port, "GET", "/metrics", None),
        ) else {
            return None;
        };
        let status: serde_json::Value = serde_json::from_str(&status).ok()?;
        why = Some(disagreement(&status, &metrics)?);
        std::thread::sleep(Duration::from_millis(300));
    }
    why
}

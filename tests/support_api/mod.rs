//! A daemon for the API tests: two plans (`ml` and `web`), each with one dataset in two
//! local regions and a one-probe playbook, and a token file written with
//! `lifeboat token hash`, so tests see the API exactly as a client does.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use crate::support_daemon::{Daemon, free_port, hash_line, poll};

pub mod routes;

pub const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");
pub const PASSWORD: &str = "api-test-passphrase";
pub const PLANS: [&str; 2] = ["ml", "web"];

/// Subjects, their roles, and their tokens.
pub const SUBJECTS: &[(&str, &str)] = &[
    ("viewer-all", "viewer"),
    ("operator-all", "operator"),
    ("admin-all", "admin"),
    ("viewer-ml", "viewer:ml"),
    ("operator-ml", "operator:ml"),
];

pub fn token_of(subject: &str) -> String {
    format!("{subject}-secret-token-0123456789")
}

pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        let site = Site {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::create_dir_all(site.path("data")).expect("data dir");
        std::fs::write(site.path("data/f.txt"), "protected\n".repeat(50)).expect("data");
        std::fs::create_dir_all(site.path("plans")).expect("plans dir");
        for plan in PLANS {
            std::fs::write(site.path(&format!("plans/{plan}.toml")), site.plan_text(plan)).expect("plan");
        }
        let lines: Vec<String> = SUBJECTS.iter().map(|(s, r)| hash_line(r, s, &token_of(s))).collect();
        site.write_tokens(&lines.join("\n"));
        site
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn plan_text(&self, plan: &str) -> String {
        let root = self.dir.path().display();
        format!(
            "version = 1\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\
             [regions.a]\naddress = \"{root}/regions/{plan}-a\"\ncreate = true\n\
             [regions.b]\naddress = \"{root}/regions/{plan}-b\"\ncreate = true\n\
             [datasets.docs]\npaths = [\"{root}/data\"]\nschedule = \"0 0 0 1 1 *\"\n\
             regions = [\"a\", \"b\"]\nrpo = \"400d\"\nretention = {{ keep_last = 5 }}\n\
             [playbooks.check]\nrto = \"5m\"\n\
             steps = [{{ kind = \"probe\", command = [\"true\"], timeout = \"5s\" }}]\n"
        )
    }

    pub fn write_tokens(&self, text: &str) {
        let tmp = self.path("tokens.tmp");
        std::fs::write(&tmp, format!("# roles subject hash\n{text}\n")).expect("tokens");
        std::fs::rename(&tmp, self.path("tokens")).expect("rename tokens");
    }

    /// Start a daemon listening on `host` with `extra` flags; wait until it answers.
    pub fn start(&self, host: &str, extra: &[&str]) -> Daemon {
        let port = free_port();
        let log = self.path(&format!("daemon-{port}.log"));
        let child = self.spawn(&format!("{host}:{port}"), &log, extra);
        let d = Daemon { child, port, log };
        let ok = poll(Duration::from_secs(30), || {
            try_http(port, "GET", "/healthz", None, "").is_some_and(|(c, _)| c == 200)
        });
        assert!(ok, "daemon did not become healthy; log:\n{}", d.log());
        d
    }

    /// Run a daemon with `extra` flags that it refuses to start with: its exit code
    /// and standard error.
    pub fn refused(&self, extra: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(BIN)
            .args(["daemon", "--plans"])
            .arg(self.path("plans"))
            .arg("--state")
            .arg(self.path("state"))
            .args(extra)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .output()
            .expect("run the daemon");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub fn spawn(&self, listen: &str, log: &Path, extra: &[&str]) -> Child {
        let stderr = std::fs::File::create(log).expect("log file");
        Command::new(BIN)
            .args(["daemon", "--plans"])
            .arg(self.path("plans"))
            .arg("--state")
            .arg(self.path("state"))
            .args(["--listen", listen, "--tokens"])
            .arg(self.path("tokens"))
            .args(extra)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the daemon")
    }
}

impl Daemon {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        try_http(self.port, method, path, token, body).expect("HTTP request to the daemon")
    }

    pub fn json(&self, path: &str, token: &str) -> serde_json::Value {
        let (code, body) = self.call("GET", path, Some(token), "");
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

/// One HTTP/1.1 request: (status, headers and body as sent).
pub fn raw_http(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let code = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok())?;
    Some((code, raw))
}

/// One HTTP/1.1 request: (status, body).
pub fn try_http(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> Option<(u16, String)> {
    let (code, raw) = raw_http(port, method, path, token, body)?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

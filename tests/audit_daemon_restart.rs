//! Rollback of a region's audit trail behind a restarted daemon's back: the daemon
//! remembers, in its state directory, the newest checkpoint it read of each region's
//! trail. Stopped, restarted, and shown a region whose `audit/` was replaced by an
//! older copy of itself, it reports that region's trail as rolled back — in its log
//! (naming the region) and in `/v1/status` (the region's `last_error`, with the sizes
//! it saw) — while the other region stays clean.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod support_daemon;

use support_daemon::{Daemon, free_port, hash_line, http, poll, try_http};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");
const PASSWORD: &str = "daemon rollback password";
const VIEWER: &str = "viewer-token-rollback-0123456789";

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let site = Site {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(site.path("data")).unwrap();
        std::fs::create_dir_all(site.path("plans")).unwrap();
        let line = hash_line("viewer", "viewer", VIEWER);
        std::fs::write(site.path("tokens"), format!("{line}\n")).unwrap();
        let root = site.dir.path().display();
        let plan = format!(
            "version = 1\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\
             [regions.a]\naddress = \"{root}/regions/a\"\ncreate = true\n\
             [regions.b]\naddress = \"{root}/regions/b\"\ncreate = true\n\
             [datasets.docs]\npaths = [\"{root}/data\"]\nschedule = \"@daily\"\n\
             regions = [\"a\", \"b\"]\nrpo = \"2d\"\nretention = {{ keep_last = 5 }}\n"
        );
        std::fs::write(site.path("plans/site.toml"), plan).unwrap();
        site
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn backup(&self, name: &str) {
        std::fs::write(self.path(&format!("data/{name}")), name.repeat(100)).unwrap();
        let out = Command::new(BIN)
            .args(["apply", "--force"])
            .arg(self.path("plans/site.toml"))
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("XDG_CACHE_HOME", self.path("cache"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    fn start(&self) -> Daemon {
        let port = free_port();
        let log = self.path(&format!("daemon-{port}.log"));
        let child = Command::new(BIN)
            .args(["daemon", "--plans"])
            .arg(self.path("plans"))
            .arg("--state")
            .arg(self.path("state"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--tokens"])
            .arg(self.path("tokens"))
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon { child, port, log };
        let up = poll(Duration::from_secs(30), || {
            try_http(d.port, "GET", "/healthz", None).is_some_and(|(code, _)| code == 200)
        });
        assert!(up, "the daemon did not come up: {}", d.log());
        d
    }

    /// The checkpoints the daemon remembers in its state directory.
    fn remembered(&self) -> Vec<PathBuf> {
        let dir = self.path("state/audit");
        let found = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect());
        let mut found: Vec<PathBuf> = found.unwrap_or_default();
        found.retain(|p| p.extension().is_some_and(|x| x == "json"));
        found
    }
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `last_error` of each region of dataset `docs`, as `/v1/status` shows it.
    fn region_errors(&self) -> Vec<(String, Option<String>)> {
        let (code, body) = http(self.port, "GET", "/v1/status", Some(VIEWER));
        assert_eq!(code, 200, "{body}");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        let regions = status["plans"][0]["datasets"][0]["regions"].as_array().cloned();
        let regions = regions.unwrap_or_default();
        let row = |r: &serde_json::Value| {
            let error = r["last_error"].as_str().map(String::from);
            (r["region"].as_str().unwrap_or("?").to_string(), error)
        };
        regions.iter().map(row).collect()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_restarted_daemon_names_the_region_whose_trail_was_rolled_back() {
    let site = Site::new();
    site.backup("first");
    let older = site.path("older-audit-of-a");
    copy_dir(&site.path("regions/a/audit"), &older);
    site.backup("second");

    let first = site.start();
    let seen = poll(Duration::from_secs(60), || site.remembered().len() == 2);
    assert!(seen, "the daemon remembered no checkpoints: {}", first.log());
    assert!(
        first.region_errors().iter().all(|(_, e)| e.is_none()),
        "{:?}",
        first.region_errors()
    );
    drop(first);

    std::fs::remove_dir_all(site.path("regions/a/audit")).unwrap();
    copy_dir(&older, &site.path("regions/a/audit"));
    let second = site.start();
    let mut errors = Vec::new();
    let found = poll(Duration::from_secs(60), || {
        errors = second.region_errors();
        errors.iter().any(|(_, e)| e.is_some())
    });
    assert!(found, "the rollback was not reported: {errors:?}\n{}", second.log());
    let (a, b) = (&errors[0], &errors[1]);
    assert_eq!((a.0.as_str(), b.0.as_str()), ("a", "b"));
    let message = a.1.clone().unwrap_or_default();
    assert!(message.starts_with("audit trail: the audit trail of"), "{message}");
    assert!(
        message.contains("regions/a") && message.contains("was rolled back"),
        "{message}"
    );
    assert!(message.contains("and this client saw"), "{message}");
    assert_eq!(b.1, None, "region b's trail is whole");
    let log = second.log();
    assert!(
        log.lines()
            .any(|l| l.contains("audit trail problem") && l.contains("region=a") && l.contains("rolled back")),
        "{log}"
    );
}

//! The daemon end to end: the real binary, local-folder regions, a 3-second schedule,
//! signals, restarts, the API with tokens, TLS and metrics. Every wait polls with a
//! deadline; nothing sleeps for a fixed long time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod servers;
mod support_daemon;

use support_daemon::*;

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");
const PASSWORD: &str = "daemon-test-passphrase";
const VIEWER: &str = "viewer-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";

/// A test site: data to protect, plans, state and two regions in one temp dir.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(schedule: &str, rpo: &str) -> Site {
        let site = Site {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let data = site.path("data");
        std::fs::create_dir_all(data.join("sub")).expect("data dir");
        for i in 0..5 {
            std::fs::write(data.join(format!("f{i}.txt")), format!("file {i}\n").repeat(100)).expect("write");
        }
        std::fs::write(data.join("sub/deep.bin"), vec![7u8; 4096]).expect("write");
        std::fs::create_dir_all(site.path("plans")).expect("plans dir");
        std::fs::write(
            site.path("tokens"),
            format!(
                "# roles subject hash\n{}\n{}\n",
                hash_line("viewer", "viewer", VIEWER),
                hash_line("operator", "operator", OPERATOR)
            ),
        )
        .expect("tokens");
        site.write_plan(&site.plan_text(schedule, rpo, &["docs"]));
        site
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn plan_text(&self, schedule: &str, rpo: &str, datasets: &[&str]) -> String {
        let root = self.dir.path().display();
        let mut text = format!(
            "version = 1\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\
             [regions.a]\naddress = \"{root}/regions/a\"\ncreate = true\n\
             [regions.b]\naddress = \"{root}/regions/b\"\ncreate = true\n"
        );
        for ds in datasets {
            text.push_str(&format!(
                "[datasets.{ds}]\npaths = [\"{root}/data\"]\nschedule = \"{schedule}\"\n\
                 regions = [\"a\", \"b\"]\nrpo = \"{rpo}\"\nretention = {{ keep_last = 5 }}\n"
            ));
        }
        text
    }

    fn write_plan(&self, text: &str) {
        // Write beside and rename, so the daemon never reads half a file.
        let tmp = self.path("plans/site.toml.tmp");
        std::fs::write(&tmp, text).expect("write plan");
        std::fs::rename(&tmp, self.path("plans/site.toml")).expect("rename plan");
    }

    /// Replace the plan but keep the old file's modification time, so that the
    /// daemon's file watcher (which compares times) cannot see the change: only a
    /// SIGHUP makes the daemon read it.
    fn write_plan_unseen(&self, text: &str) {
        let file = self.path("plans/site.toml");
        let mtime = std::fs::metadata(&file).and_then(|m| m.modified()).expect("plan mtime");
        self.write_plan(text);
        let opened = std::fs::File::options().write(true).open(&file).expect("open plan");
        opened.set_modified(mtime).expect("restore plan mtime");
    }

    fn start(&self, extra: &[&str]) -> Daemon {
        let port = free_port();
        let log = self.path(&format!("daemon-{port}.log"));
        let child = self.spawn(port, &log, extra);
        let d = Daemon { child, port, log };
        d.wait_healthy();
        d
    }

    fn spawn(&self, port: u16, log: &Path, extra: &[&str]) -> Child {
        let stderr = std::fs::File::create(log).expect("log file");
        let grace: &[&str] = if extra.contains(&"--shutdown-grace") {
            &[]
        } else {
            &["--shutdown-grace", "20s"]
        };
        Command::new(BIN)
            .args(["daemon", "--plans"])
            .arg(self.path("plans"))
            .arg("--state")
            .arg(self.path("state"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--tokens"])
            .arg(self.path("tokens"))
            .args(grace)
            .args(extra)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("RUST_LOG", "info")
            // Set, it must still add no backtrace to any line.
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the daemon")
    }

    /// Snapshot ids in a region, through the CLI.
    fn snapshot_ids(&self, region: &str) -> Vec<String> {
        let out = Command::new(BIN)
            .args(["snapshots", "--json", "--repo"])
            .arg(self.path(&format!("regions/{region}")))
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .output()
            .expect("run snapshots");
        if !out.status.success() {
            return Vec::new();
        }
        let docs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("snapshots JSON");
        docs.as_array()
            .map(|a| a.iter().filter_map(|d| d["id"].as_str().map(String::from)).collect())
            .unwrap_or_default()
    }
}

impl Daemon {
    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        http(self.port, "GET", path, token)
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.get(path, Some(VIEWER));
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_healthy(&self) {
        let ok = poll(Duration::from_secs(30), || {
            try_http(self.port, "GET", "/healthz", None).is_some_and(|(code, _)| code == 200)
        });
        assert!(ok, "daemon did not become healthy; log:\n{}", self.log());
    }

    /// Finished jobs of `dataset` with outcome `success`.
    fn successes(&self, dataset: &str) -> Vec<serde_json::Value> {
        let jobs = self.json("/v1/jobs");
        jobs["jobs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|j| j["dataset"] == dataset && j["outcome"] == "success")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn wait_successes(&self, dataset: &str, n: usize, within: Duration) {
        let ok = poll(within, || self.successes(dataset).len() >= n);
        assert!(ok, "fewer than {n} successful jobs of {dataset}; log:\n{}", self.log());
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `/metrics` and `/v1/status` agree (see `metrics_status_disagreement`).
fn assert_metrics_match_status(d: &Daemon) {
    d.json("/v1/status"); // it answers: a silent daemon is not agreement
    if let Some(why) = metrics_status_disagreement(d.port, VIEWER) {
        panic!("/metrics disagrees with /v1/status: {why}; log:\n{}", d.log());
    }
}

fn assert_prometheus_text(text: &str) {
    assert!(text.contains("lifeboat_jobs_total{"), "{text}");
    let mut family = String::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(comment.starts_with("HELP ") || comment.starts_with("TYPE "), "{line}");
            if let Some(rest) = comment.strip_prefix("TYPE ") {
                family = rest.split(' ').next().unwrap_or("").to_string();
            }
            continue;
        }
        assert!(line.starts_with(&family), "{line} is outside its family {family}");
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = series.split_once('{').expect("labels");
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let labels = labels.strip_suffix('}').expect("closing brace");
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line}"));
            assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
            assert!(!v.trim_end_matches('"').contains('"'), "{line}");
        }
    }
}

#[test]
fn scheduled_backups_run_reload_and_stop_cleanly() {
    let site = Site::new("*/3 * * * * *", "1h");
    let mut d = site.start(&[]);
    d.wait_successes("docs", 2, Duration::from_secs(30));
    assert!(site.snapshot_ids("a").len() >= 2 && site.snapshot_ids("b").len() >= 2);
    assert_metrics_match_status(&d);

    // A valid change, announced with SIGHUP, takes effect. The file watcher cannot see
    // it (same modification time): several of its 2-second polls pass without a
    // reload, so the reload that follows is the signal's.
    site.write_plan_unseen(&site.plan_text("*/3 * * * * *", "1h", &["docs", "more"]));
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        d.successes("more").is_empty(),
        "reloaded before SIGHUP; log:\n{}",
        d.log()
    );
    assert!(!d.log().contains("SIGHUP"), "{}", d.log());
    d.signal("HUP");
    d.wait_successes("more", 1, Duration::from_secs(20));
    assert!(d.log().contains("SIGHUP"), "reload not logged as SIGHUP's: {}", d.log());

    // A broken plan is refused and shown; the previous plan keeps running.
    site.write_plan_unseen(&site.plan_text("every three seconds", "1h", &["docs", "more"]));
    d.signal("HUP");
    let refused = poll(Duration::from_secs(10), || {
        d.json("/v1/status")["plan_errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    });
    assert!(refused, "plan error not shown; log:\n{}", d.log());
    let status = d.json("/v1/status");
    assert!(
        status["plan_errors"][0]["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("site.toml"),
        "{status}"
    );
    assert_eq!(status["plan_errors"][0]["previous_kept"], true);
    assert_eq!(status["plans"][0]["stale"], true, "{status}");
    assert!(d.log().contains("plan refused"), "{}", d.log());
    assert_metrics_match_status(&d);
    let before = d.successes("docs").len();
    d.wait_successes("docs", before + 1, Duration::from_secs(20));

    // `lifeboat status` renders the same for a person.
    std::fs::write(site.path("viewer"), VIEWER).expect("token file");
    let out = Command::new(BIN)
        .args([
            "status",
            "--daemon",
            &format!("http://127.0.0.1:{}", d.port),
            "--token-file",
        ])
        .arg(site.path("viewer"))
        .output()
        .expect("run status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("plan site") && text.contains("refused plan"), "{text}");
    assert!(text.contains("STALE") && !text.contains("all objectives met"), "{text}");

    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(25));
    assert_eq!(status.code(), Some(0), "log:\n{}", d.log());
    assert!(d.log().contains("daemon stopped"), "{}", d.log());
}

#[test]
fn api_requires_tokens_and_roles_and_operators_trigger_backups() {
    // Yearly: after the first backup, only a trigger starts another.
    let site = Site::new("0 0 0 1 1 *", "400d");
    let d = site.start(&["--trigger-rate", "1"]);
    d.wait_successes("docs", 1, Duration::from_secs(30));

    let post = "/v1/datasets/site/docs/backup";
    assert_eq!(d.get("/v1/status", None).0, 401);
    assert_eq!(d.get("/v1/jobs", Some("not-a-real-token-xyz")).0, 401);
    let (code, body) = http(d.port, "POST", post, Some(VIEWER));
    assert_eq!(code, 403);
    assert!(
        !body.contains("viewer") && !body.contains("operator"),
        "no detail leaked: {body}"
    );
    assert_eq!(http(d.port, "POST", post, None).0, 401);
    assert_eq!(
        http(d.port, "POST", "/v1/datasets/site/nope/backup", Some(OPERATOR)).0,
        404
    );
    assert!(d.log().contains("API request refused"));

    let (code, body) = http(d.port, "POST", post, Some(OPERATOR));
    assert_eq!(code, 202, "{body}");
    d.wait_successes("docs", 2, Duration::from_secs(20));
    let jobs = d.successes("docs");
    assert_eq!(jobs[0]["reason"], "manual", "{jobs:?}");

    // The bucket holds 5 calls and refills at 1 a minute.
    let codes: Vec<u16> = (0..6).map(|_| http(d.port, "POST", post, Some(OPERATOR)).0).collect();
    assert!(codes.contains(&429), "{codes:?}");

    let (code, metrics) = d.get("/metrics", None);
    assert_eq!(code, 200);
    assert_prometheus_text(&metrics);
    for name in [
        "lifeboat_job_duration_seconds_sum",
        "lifeboat_last_success_timestamp_seconds",
        "lifeboat_snapshot_age_seconds",
        "lifeboat_build_info{version=",
        "lifeboat_region_lagging",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
}

#[test]
fn a_killed_daemon_resumes_a_second_is_refused_and_lost_state_is_rebuilt() {
    let site = Site::new("*/3 * * * * *", "1h");
    let mut first = site.start(&[]);
    first.wait_successes("docs", 1, Duration::from_secs(30));

    // A second daemon on the same state directory fails with a clear error.
    let log = site.path("second.log");
    let mut second = site.spawn(free_port(), &log, &[]);
    let status = poll_exit(&mut second, Duration::from_secs(15));
    assert_eq!(status.code(), Some(1));
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(err.contains("another lifeboat daemon"), "{err}");
    assert!(first.get("/healthz", None).0 == 200, "the first keeps running");

    // SIGKILL, then a restart resumes the schedule: the restarted daemon itself
    // finishes a job that started after the restart, and it made a new snapshot.
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    let before = site.snapshot_ids("a");
    assert!(!before.is_empty(), "the first daemon's snapshots are listed");
    let restart = chrono::Utc::now();
    let restarted = site.start(&[]);
    let own_job = poll(Duration::from_secs(30), || {
        restarted.successes("docs").iter().any(|j| {
            let started = j["started"]
                .as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
            started.is_some_and(|t| t > restart)
        })
    });
    assert!(own_job, "no job run by the restarted daemon; log:\n{}", restarted.log());
    let resumed = site.snapshot_ids("a").iter().any(|id| !before.contains(id));
    assert!(resumed, "no new snapshot after restart; log:\n{}", restarted.log());
    drop(restarted);

    // A deleted state directory is rebuilt from the repositories.
    std::fs::remove_dir_all(site.path("state")).expect("remove state");
    let rebuilt = site.start(&["--log-format", "json"]);
    let restored = poll(Duration::from_secs(20), || {
        rebuilt.json("/v1/status")["plans"][0]["datasets"][0]["regions"][0]["last_success"].is_string()
    });
    assert!(restored, "region state not rebuilt; log:\n{}", rebuilt.log());
    let log = rebuilt.log();
    assert!(log.contains("rebuilding the state from the repositories"), "{log}");
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(entry["level"].is_string() && entry["message"].is_string(), "{line}");
    }
}

fn started_after(job: &serde_json::Value, since: chrono::DateTime<chrono::Utc>) -> bool {
    let started = job["started"]
        .as_str()
        .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
    started.is_some_and(|t| t > since)
}

/// Ids of the jobs the daemon lists: those started before `since`, and after.
fn job_ids(d: &Daemon, since: chrono::DateTime<chrono::Utc>) -> (Vec<u64>, Vec<u64>) {
    let jobs = d.json("/v1/jobs");
    let list = jobs["jobs"].as_array().cloned().unwrap_or_default();
    let (after, before): (Vec<_>, Vec<_>) = list.iter().partition(|j| started_after(j, since));
    let ids = |l: Vec<&serde_json::Value>| l.iter().filter_map(|j| j["id"].as_u64()).collect();
    (ids(before), ids(after))
}

#[test]
fn a_daemon_restarted_with_an_invalid_plan_keeps_running_its_last_valid_version() {
    let site = Site::new("*/3 * * * * *", "1h");
    let mut first = site.start(&[]);
    first.wait_successes("docs", 1, Duration::from_secs(30));
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(25)).code(), Some(0));

    // Restarted with a broken file: the last valid version runs, flagged stale.
    site.write_plan(&site.plan_text("every three seconds", "1h", &["docs"]));
    let restart = chrono::Utc::now();
    let d = site.start(&[]);
    let ran = poll(Duration::from_secs(30), || {
        d.successes("docs").iter().any(|j| started_after(j, restart))
    });
    assert!(ran, "the stale plan did not run; log:\n{}", d.log());
    let status = d.json("/v1/status");
    assert_eq!(status["plans"][0]["stale"], true, "{status}");
    assert_eq!(status["plan_errors"][0]["previous_kept"], true, "{status}");
    let (_, metrics) = d.get("/metrics", None);
    assert_prometheus_text(&metrics);
    assert!(metrics.contains("lifeboat_plan_stale{plan=\"site\"} 1"), "{metrics}");
    let series = "lifeboat_last_success_timestamp_seconds{plan=\"site\",dataset=\"docs\",region=\"a\"}";
    assert!(metrics.contains(series), "per-dataset series kept:\n{metrics}");
    assert_metrics_match_status(&d);
    assert!(d.log().contains("plan refused"), "{}", d.log());

    // Job ids go on from the first daemon's, without a jump.
    let (before, after) = job_ids(&d, restart);
    let last = before.iter().copied().max().unwrap_or(0);
    assert!(last > 0 && !after.is_empty(), "{before:?} {after:?}");
    assert!(
        after.iter().all(|id| *id > last && *id <= last + 50),
        "ids after {last}: {after:?}"
    );

    // Fixed, the file runs again; removed on purpose, the plan stops.
    site.write_plan(&site.plan_text("*/3 * * * * *", "1h", &["docs"]));
    let fixed = poll(Duration::from_secs(15), || {
        d.json("/v1/status")["plans"][0]["stale"] == false
    });
    assert!(fixed, "still stale; log:\n{}", d.log());
    std::fs::remove_file(site.path("plans/site.toml")).expect("remove plan");
    let stopped = poll(Duration::from_secs(15), || {
        d.json("/v1/status")["plans"].as_array().is_some_and(|p| p.is_empty())
    });
    assert!(stopped, "a removed plan keeps running; log:\n{}", d.log());
}

/// A lease object as a backup writes it, held by `pid` on `host`, expiring at `expires`.
fn plant_lease(region: &Path, name: &str, host: &str, pid: u32, expires: chrono::DateTime<chrono::Utc>) {
    let lease = serde_json::json!({
        "host": host, "pid": pid, "kind": "backup", "purpose": "backup",
        "created": (expires - chrono::Duration::minutes(10)).to_rfc3339(),
        "expires": expires.to_rfc3339(),
    });
    std::fs::create_dir_all(region.join("locks")).expect("locks dir");
    std::fs::write(region.join("locks").join(name), lease.to_string()).expect("plant lease");
}

/// A lease whose process on this host is gone is removed by the daemon; an expired one
/// from another host is only reported, by `/v1/status`, `/metrics` and `lifeboat plan`.
#[test]
fn stale_locks_are_reported_and_only_those_of_dead_local_processes_removed() {
    let site = Site::new("*/3 * * * * *", "1h");
    let d = site.start(&[]);
    d.wait_successes("docs", 1, Duration::from_secs(30));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let mut gone = Command::new("true").spawn().expect("run true");
    let dead_pid = gone.id();
    gone.wait().expect("wait true");
    let now = chrono::Utc::now();
    let b = site.path("regions/b");
    plant_lease(
        &b,
        "dead-local",
        host.trim(),
        dead_pid,
        now + chrono::Duration::minutes(4),
    );
    plant_lease(
        &b,
        "expired-remote",
        "elsewhere",
        1,
        now - chrono::Duration::minutes(30),
    );

    let tidied = poll(Duration::from_secs(30), || {
        !b.join("locks/dead-local").exists() && region_status(&d, "b")["stale_locks"] == 1
    });
    assert!(tidied, "{}; log:\n{}", region_status(&d, "b"), d.log());
    assert!(
        b.join("locks/expired-remote").exists(),
        "a lease from another host is never removed"
    );
    assert!(
        d.log().contains("removed locks whose process on this host is gone"),
        "{}",
        d.log()
    );
    let (_, metrics) = d.get("/metrics", None);
    let series = "lifeboat_region_stale_locks{plan=\"site\",dataset=\"docs\",region=\"b\"} 1";
    assert!(metrics.contains(series), "{metrics}");
    assert_metrics_match_status(&d);

    let out = Command::new(BIN)
        .arg("plan")
        .arg(site.path("plans/site.toml"))
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .output()
        .expect("run plan");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("region b: 1 stale lock(s)") && text.contains("expired-remote (backup on elsewhere, pid 1"),
        "{text}"
    );
}

fn poll_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("second daemon did not exit");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_api_serves_tls13_with_a_self_signed_certificate() {
    if !openssl_available() {
        let reason = "openssl is not on PATH, so no certificate can be made";
        return servers::missing("the_api_serves_tls13_with_a_self_signed_certificate", reason);
    }
    let site = Site::new("0 0 0 1 1 *", "400d");
    let conf = site.path("openssl.cnf");
    std::fs::write(
        &conf,
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = localhost\n\
         [leaf]\nbasicConstraints = critical,CA:FALSE\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n\
         keyUsage = digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .expect("openssl config");
    let (cert, key) = (site.path("cert.pem"), site.path("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-config".as_ref(),
            conf.as_os_str(),
            "-extensions".as_ref(),
            "leaf".as_ref(),
        ])
        .args(["-keyout".as_ref(), key.as_os_str(), "-out".as_ref(), cert.as_os_str()])
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    let port = free_port();
    let log = site.path("tls.log");
    let child = site.spawn(
        port,
        &log,
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let d = Daemon { child, port, log };
    std::fs::write(site.path("viewer"), format!("viewer {VIEWER}\n")).expect("token file");
    let status = |url: &str| {
        Command::new(BIN)
            .args(["status", "--json", "--daemon", url, "--ca-cert"])
            .arg(&cert)
            .arg("--token-file")
            .arg(site.path("viewer"))
            .output()
            .expect("run status")
    };
    let url = format!("https://127.0.0.1:{port}");
    let ok = poll(Duration::from_secs(30), || status(&url).stdout.starts_with(b"{"));
    assert!(ok, "status over TLS failed: {:?}; log:\n{}", status(&url), d.log());
    let doc: serde_json::Value = serde_json::from_slice(&status(&url).stdout).expect("status JSON");
    assert_eq!(doc["plans"][0]["name"], "site");

    // The same client completes a TLS 1.3 handshake, so its TLS 1.2 failure below is
    // the server's refusal and not a broken client or address.
    let handshake = |version: &str| {
        Command::new("openssl")
            .args(["s_client", version, "-connect", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .output()
            .expect("run s_client")
    };
    let current = handshake("-tls1_3");
    let shown = String::from_utf8_lossy(&current.stdout);
    assert!(current.status.success(), "TLS 1.3 handshake failed: {shown}");
    assert!(shown.contains("TLSv1.3"), "{shown}");
    // TLS 1.2 is refused.
    let old = handshake("-tls1_2");
    assert!(!old.status.success(), "TLS 1.2 handshake should fail");
    assert!(
        !String::from_utf8_lossy(&old.stdout).contains("TLSv1.2, Cipher is"),
        "TLS 1.2 was accepted"
    );
}

#[test]
fn shutdown_waits_a_bounded_time_and_a_second_signal_exits_at_once() {
    let site = Site::new("0 0 0 1 1 *", "400d");
    // A password command that takes a while keeps each job running for 5 s.
    let slow = site.plan_text("0 0 0 1 1 *", "400d", &["docs"]).replace(
        "env = \"LIFEBOAT_PASSWORD\"",
        &format!("command = [\"sh\", \"-c\", \"sleep 5; echo {PASSWORD}\"]"),
    );
    site.write_plan(&slow);
    let job_running = |d: &Daemon| poll(Duration::from_secs(30), || d.log().contains("job started"));

    let mut d = site.start(&[]);
    assert!(job_running(&d), "no job started; log:\n{}", d.log());
    d.signal("TERM");
    assert!(poll(Duration::from_secs(5), || d.log().contains("stopping")));
    let second = Instant::now();
    d.signal("INT");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(1));
    assert!(second.elapsed() < Duration::from_secs(3), "took {:?}", second.elapsed());
    assert!(d.log().contains("second signal"), "{}", d.log());
    drop(d);

    let mut d = site.start(&["--shutdown-grace", "1s"]);
    assert!(job_running(&d), "no job started; log:\n{}", d.log());
    let term = Instant::now();
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(term.elapsed() < Duration::from_secs(4), "took {:?}", term.elapsed());
    assert!(d.log().contains("did not finish within the grace time"), "{}", d.log());
}

/// Verify policies and playbooks with a `drill_schedule` run on their own schedules;
/// their latest results appear in the status and the metrics.
#[test]
fn scheduled_verification_and_drills_report_their_results() {
    let site = Site::new("*/2 * * * * *", "1h");
    let root = site.dir.path().display().to_string();
    let mut text = site.plan_text("*/2 * * * * *", "1h", &["docs"]);
    text.push_str(&format!(
        "[verify.often]\nschedule = \"*/3 * * * * *\"\nsample_fraction = 1.0\n\
         [endpoints.app]\nprovider = \"file\"\npath = \"{root}/upstream.conf\"\n\
         targets = {{ a = \"server 127.0.0.1:1;\", b = \"server 127.0.0.1:2;\" }}\n\
         [playbooks.rehearse]\nrto = \"5m\"\nprimary = \"a\"\nstandby = \"b\"\n\
         drill_schedule = \"*/4 * * * * *\"\n\
         steps = [\n  {{ kind = \"restore\", dataset = \"docs\", region = \"b\", target = \"{root}/drill-restore\" }},\n\
           {{ kind = \"probe\", command = [\"test\", \"-s\", \"{root}/drill-restore/data/f0.txt\"] }},\n\
           {{ kind = \"repoint\", endpoint = \"app\", to = \"b\" }},\n]\n\
         [playbooks.broken]\nrto = \"5m\"\ndrill_schedule = \"*/5 * * * * *\"\n\
         steps = [{{ kind = \"probe\", command = [\"false\"], timeout = \"1s\" }}]\n"
    ));
    site.write_plan(&text);
    let daemon = site.start(&[]);
    daemon.wait_healthy();
    daemon.wait_successes("docs", 1, Duration::from_secs(60));
    let verified = poll(Duration::from_secs(60), || {
        let st = daemon.json("/v1/status");
        let regions = st["plans"][0]["datasets"][0]["regions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        regions.len() == 2 && regions.iter().all(|r| r["verification"]["passed"] == true)
    });
    assert!(
        verified,
        "no passing verification in both regions; log:\n{}",
        daemon.log()
    );
    let drilled = poll(Duration::from_secs(60), || {
        let st = daemon.json("/v1/status");
        st["drills"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["outcome"] == "passed"))
    });
    assert!(drilled, "no passing scheduled drill; log:\n{}", daemon.log());
    let failed = poll(Duration::from_secs(60), || {
        let st = daemon.json("/v1/status");
        st["drills"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["playbook"] == "broken" && d["outcome"] == "failed"))
    });
    assert!(failed, "the broken drill did not fail; log:\n{}", daemon.log());
    assert_metrics_match_status(&daemon);
    let (_, metrics) = daemon.get("/metrics", None);
    assert_prometheus_text(&metrics);
    assert!(metrics.contains("lifeboat_verification_passed{"), "{metrics}");
    assert!(
        metrics.contains("lifeboat_drill_passed{plan=\"site\",playbook=\"rehearse\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lifeboat_drill_passed{plan=\"site\",playbook=\"broken\"} 0"),
        "{metrics}"
    );
    // Traffic is back on the primary after the drill.
    let upstream = std::fs::read_to_string(site.path("upstream.conf")).unwrap_or_default();
    assert!(upstream.contains("127.0.0.1:1;"), "{upstream}");
}

/// What `/v1/status` says of region `region` of the one dataset.
fn region_status(daemon: &Daemon, region: &str) -> serde_json::Value {
    let st = daemon.json("/v1/status");
    let regions = st["plans"][0]["datasets"][0]["regions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    regions.into_iter().find(|r| r["region"] == region).unwrap_or_default()
}

/// Region `a` is degraded in `/v1/status`, naming `why`, and region `b` passed a
/// scheduled verification and took a new snapshot after `since`, while the daemon
/// keeps running.
fn assert_only_a_suffers(site: &Site, daemon: &mut Daemon, since: chrono::DateTime<chrono::Utc>, why: &str) {
    let before: Vec<String> = site.snapshot_ids("b");
    let b_goes_on = poll(Duration::from_secs(60), || {
        let fresh = site.snapshot_ids("b").iter().filter(|id| !before.contains(id)).count();
        let verified = region_status(daemon, "b")["verification"].clone();
        let at = verified["at"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
        fresh >= 2 && verified["passed"] == true && at.is_some_and(|t| t > since)
    });
    assert!(b_goes_on, "region b stalled; log:\n{}", daemon.log());
    let a_degraded = poll(Duration::from_secs(30), || {
        let a = region_status(daemon, "a");
        a["degraded"] == true && a["last_error"].as_str().is_some_and(|e| e.contains(why))
    });
    assert!(
        a_degraded,
        "region a not degraded by {why:?}: {}; log:\n{}",
        region_status(daemon, "a"),
        daemon.log()
    );
    assert_eq!(region_status(daemon, "b")["degraded"], false);
    let a = region_status(daemon, "a");
    assert!(a["consecutive_failures"].as_u64().is_some_and(|n| n >= 1), "{a}");
    assert!(a["last_error_class"].is_string(), "{a}");
    assert_metrics_match_status(daemon);
    assert!(
        daemon.child.try_wait().expect("try_wait").is_none(),
        "the daemon exited"
    );
    let log = daemon.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.to_lowercase().contains("backtrace"), "{log}");
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("region failed")).collect();
    assert!(!failures.is_empty(), "{log}");
    assert!(
        failures
            .iter()
            .all(|l| l.contains("region=a") && l.contains("class=") && l.contains("failures=")),
        "{failures:#?}"
    );
}

/// One region's storage turns hostile under a running daemon, then the daemon is
/// restarted with the hostile objects in place: a key object with a huge Argon2 cost,
/// a garbage snapshot, garbage and unreadable reports, then a garbage config. The daemon
/// never exits, panics or aborts; `/v1/status` names region `a` as degraded with the
/// object's reason; region `b` keeps getting scheduled backups and verifications.
#[test]
fn a_hostile_region_degrades_only_itself_and_the_daemon_keeps_serving() {
    let site = Site::new("*/3 * * * * *", "1h");
    let mut text = site.plan_text("*/3 * * * * *", "1h", &["docs"]);
    text.push_str("[verify.often]\nschedule = \"*/3 * * * * *\"\nsample_fraction = 1.0\n");
    site.write_plan(&text);
    let mut daemon = site.start(&[]);
    daemon.wait_successes("docs", 1, Duration::from_secs(60));
    let a = site.path("regions/a");

    // A key with a huge KDF cost, a garbage snapshot and hostile reports.
    let key = std::fs::read_dir(a.join("keys"))
        .expect("keys")
        .next()
        .expect("a key")
        .expect("entry")
        .path();
    let mut planted: serde_json::Value = serde_json::from_slice(&std::fs::read(&key).expect("key")).expect("key JSON");
    planted["kdf"]["memory_kib"] = u32::MAX.into();
    planted["created"] = "2001-01-01T00:00:00Z".into();
    let planted = serde_json::to_vec(&planted).expect("json");
    let name = blake3::hash(&planted).to_hex().to_string();
    std::fs::write(a.join("keys").join(name), planted).expect("plant key");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 131 % 251) as u8).collect();
    let snapshot = "5".repeat(64);
    std::fs::write(a.join("snapshots").join(&snapshot), &garbage).expect("plant snapshot");
    std::fs::create_dir_all(a.join("reports")).expect("reports dir");
    std::fs::write(a.join("reports/bad name!"), &garbage).expect("plant report");
    std::fs::write(a.join("reports/20260101T000000.000Z-p-drill.json"), &garbage).expect("plant report");
    let big = std::fs::File::create(a.join("reports/20260101T000001.000Z-p-drill.json")).expect("report");
    big.set_len(5 << 30).expect("sparse report");
    assert_only_a_suffers(&site, &mut daemon, chrono::Utc::now(), &snapshot[..8]);

    // The config itself: region a cannot be opened at all.
    std::fs::write(a.join("config"), &garbage).expect("plant config");
    assert_only_a_suffers(&site, &mut daemon, chrono::Utc::now(), "config");

    // A restart with all of it in place comes up and carries on the same way.
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(60)).success(), "{}", daemon.log());
    let mut restarted = site.start(&[]);
    assert_only_a_suffers(&site, &mut restarted, chrono::Utc::now(), "config");
}

/// A run that looks like ransomware (most files rewritten as random bytes under a new
/// extension, the originals gone) is shown as suspect in `/v1/status` and `/metrics`,
/// which agree before and after; the next quiet run is judged normal again.
#[test]
fn a_suspect_snapshot_shows_in_status_and_metrics_alike() {
    let site = Site::new("*/2 * * * * *", "1h");
    let more = site.path("data/more");
    std::fs::create_dir_all(&more).expect("data dir");
    for i in 0..30 {
        let text = format!("row {i}, some words that compress well\n").repeat(200);
        std::fs::write(more.join(format!("notes-{i}.txt")), text).expect("write");
    }
    let text = site
        .plan_text("*/2 * * * * *", "1h", &["docs"])
        .replace("keep_last = 5 }", "keep_last = 30 }\nanomaly = { min_history = 3 }");
    site.write_plan(&text);
    let d = site.start(&[]);
    d.wait_successes("docs", 5, Duration::from_secs(60));
    let dataset = |d: &Daemon| d.json("/v1/status")["plans"][0]["datasets"][0].clone();
    let quiet = dataset(&d);
    assert_eq!(quiet["anomaly"]["suspect"], false, "{quiet}");
    assert_metrics_match_status(&d);

    let mut seed = 7u64;
    for i in 0..20 {
        let noise: Vec<u8> = (0..8000)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        std::fs::write(more.join(format!("notes-{i}.txt.locked")), noise).expect("write");
        std::fs::remove_file(more.join(format!("notes-{i}.txt"))).expect("remove");
    }
    let caught = poll(Duration::from_secs(60), || dataset(&d)["anomaly"]["suspect"] == true);
    let seen = dataset(&d);
    assert!(caught, "no suspect snapshot: {seen}; log:\n{}", d.log());
    assert!(seen["anomaly"]["score"].as_f64().unwrap_or(0.0) > 5.0, "{seen}");
    let (_, metrics) = d.get("/metrics", Some(VIEWER));
    assert!(
        metrics.contains("lifeboat_anomaly_suspect{plan=\"site\",dataset=\"docs\"} 1"),
        "{metrics}"
    );
    assert_metrics_match_status(&d);

    let calm = poll(Duration::from_secs(30), || dataset(&d)["anomaly"]["suspect"] == false);
    assert!(calm, "a quiet run after the anomaly is still suspect: {}", dataset(&d));
    assert_metrics_match_status(&d);
}

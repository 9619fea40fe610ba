//! Soak: the daemon on a three-second schedule over two SeaweedFS regions while one
//! region is stopped and restarted, the daemon is killed (-9) and restarted with an
//! invalid plan in place (it keeps running the last valid version until the file is
//! fixed), and retention runs throughout. `/metrics` and `/v1/status` are sampled every
//! second and must agree at every sample; the logs carry no backtrace and only a few
//! lines per outage. At the end both regions hold the same snapshots and, within one
//! pack, the same packs, and a restore from each region alone is exact.
//!
//! Needs the servers `tests/run.sh` starts (`bash tests/run.sh --servers cargo test
//! --test soak`); without them the test prints why it is skipped and passes, except
//! under `LIFEBOAT_REQUIRE_SERVERS=1`, where it fails. Bounded to about three minutes.

mod servers;
mod support_daemon;
mod support_s3;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support_daemon::{metrics_status_disagreement, try_http};
use support_s3::*;

const DATASET: &str = "models";
const KEEP_LAST: usize = 4;
const VIEWER: &str = "soak-viewer-token-0123456789";

struct Soak {
    env: WeedEnv,
    dir: tempfile::TempDir,
    buckets: [String; 2],
}

/// The daemon process; killed when dropped, so a failed assertion leaves none behind.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// weed2 stopped; restarted when dropped, whatever the test did meanwhile.
struct Weed2Down<'a>(&'a WeedEnv);

impl Drop for Weed2Down<'_> {
    fn drop(&mut self) {
        self.0.restart(1);
    }
}

impl Soak {
    fn new(env: WeedEnv) -> Soak {
        let dir = tempfile::tempdir().unwrap();
        let buckets = [
            env.new_bucket(0, "soak-one", false),
            env.new_bucket(1, "soak-two", false),
        ];
        let soak = Soak { env, dir, buckets };
        write_random_files(&soak.source().join("base"), 2, 512 * 1024);
        std::fs::create_dir_all(soak.path("plans")).unwrap();
        let line = support_daemon::hash_line("viewer", "viewer", VIEWER);
        std::fs::write(soak.path("tokens"), format!("{line}\n")).unwrap();
        soak.write_plan("*/3 * * * * *");
        soak
    }

    /// The plan, on `schedule`; written beside and renamed so the daemon never reads
    /// half a file.
    fn write_plan(&self, schedule: &str) {
        let mut plan = String::from("version = 1\n\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\n");
        for (i, name) in ["weed1", "weed2"].iter().enumerate() {
            let address = self.env.address(i, &self.buckets[i], "repo");
            plan.push_str(&format!("[regions.{name}]\naddress = \"{address}\"\ncreate = true\n\n"));
        }
        plan.push_str(&format!(
            "[datasets.{DATASET}]\npaths = [\"{}\"]\nschedule = \"{schedule}\"\nregions = [\"weed1\", \"weed2\"]\n\
             rpo = \"1h\"\nretention = {{ keep_last = {KEEP_LAST} }}\n",
            self.source().display()
        ));
        std::fs::write(self.path("plans/soak.toml.tmp"), plan).unwrap();
        std::fs::rename(self.path("plans/soak.toml.tmp"), self.path("plans/soak.toml")).unwrap();
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn source(&self) -> PathBuf {
        self.path("source")
    }

    fn start_daemon(&self, n: usize, port: u16) -> Daemon {
        let log = std::fs::File::create(self.path(&format!("daemon-{n}.log"))).unwrap();
        let (plans, state, tokens) = (self.path("plans"), self.path("state"), self.path("tokens"));
        let listen = format!("127.0.0.1:{port}");
        let child = self
            .env
            .command(
                &[
                    "daemon",
                    "--plans",
                    plans.to_str().unwrap(),
                    "--state",
                    state.to_str().unwrap(),
                    "--listen",
                    &listen,
                    "--tokens",
                    tokens.to_str().unwrap(),
                ],
                &self.env.secret,
            )
            .env("RUST_LOG", "info")
            // Set, it must still add no backtrace to any line.
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon(child)
    }

    fn objects(&self, weed: usize, prefix: &str) -> BTreeMap<String, String> {
        under(&self.env.object_hashes(weed, &self.buckets[weed], "repo/"), prefix)
    }

    /// Snapshot names only: the daemon may forget one while they are listed.
    fn snapshots(&self, weed: usize) -> BTreeSet<String> {
        self.env.object_names(weed, &self.buckets[weed], "repo/snapshots/")
    }

    /// Wait (at most `limit`) until both regions hold the same snapshots and `done`
    /// holds for them.
    fn settle(&self, limit: Duration, done: impl Fn(&BTreeSet<String>) -> bool) -> BTreeSet<String> {
        let deadline = Instant::now() + limit;
        loop {
            let (one, two) = (self.snapshots(0), self.snapshots(1));
            if one == two && done(&one) {
                return one;
            }
            assert!(
                Instant::now() < deadline,
                "regions did not agree within {limit:?}: weed1 {one:?}, weed2 {two:?}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn change(&self, step: usize) {
        write_random_files(&self.source().join(format!("step-{step}")), 1, 256 * 1024);
    }

    fn restore_from(&self, region: &str) -> PathBuf {
        let target = self.path(&format!("restored-{region}"));
        self.env
            .restore_region(&self.path("plans/soak.toml"), DATASET, region, &target);
        target.join("source")
    }
}

fn sigterm(mut daemon: Daemon) {
    let pid = daemon.0.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the daemon did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every second, `/metrics` against `/v1/status` of the daemon on `port` (whichever is
/// running), until dropped; what disagreed, and how many samples were compared.
struct Sampler {
    stop: Arc<AtomicBool>,
    found: Arc<Mutex<(Vec<String>, usize)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(port: u16) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let found = Arc::new(Mutex::new((Vec::new(), 0)));
        let (s, f) = (stop.clone(), found.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let answered = try_http(port, "GET", "/healthz", None).is_some();
                let why = metrics_status_disagreement(port, VIEWER);
                let mut found = f.lock().unwrap();
                found.1 += usize::from(answered);
                found.0.extend(why);
                drop(found);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Sampler {
            stop,
            found,
            thread: Some(thread),
        }
    }

    /// Stop sampling; the disagreements seen and the number of samples taken.
    fn finish(mut self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.found.lock().unwrap())
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn status(port: u16) -> serde_json::Value {
    let (code, body) = try_http(port, "GET", "/v1/status", Some(VIEWER)).unwrap_or_default();
    assert_eq!(code, 200, "/v1/status: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Wait (at most `limit`) until `/v1/status` says whether the plan is stale.
fn wait_stale(port: u16, stale: bool, limit: Duration) {
    let deadline = Instant::now() + limit;
    while try_http(port, "GET", "/v1/status", Some(VIEWER))
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .is_none_or(|s| s["plans"][0]["stale"] != stale)
    {
        assert!(
            Instant::now() < deadline,
            "plan stale={} not reported: {}",
            !stale,
            status(port)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// No panic, no backtrace, and few lines about the region that was down: one per failed
/// run at most, and a recovery line, not one per storage retry.
fn log_is_quiet(path: &Path, outage_runs: usize) {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    assert!(!log.contains("panicked"), "{}: {log}", path.display());
    assert!(
        !log.contains("backtrace") && !log.contains("stack backtrace"),
        "{}: {log}",
        path.display()
    );
    let about_weed2 = log
        .lines()
        .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && l.contains("weed2"))
        .count();
    eprintln!("{}: {about_weed2} warning lines about weed2", path.display());
    assert!(
        about_weed2 <= outage_runs + 2,
        "{about_weed2} warning lines about weed2 for {outage_runs} failed runs in {}:\n{log}",
        path.display()
    );
}

#[test]
fn soak_outage_kill_and_retention_leave_regions_alike_and_restorable() {
    let Some(env) = WeedEnv::from_env("soak_outage_kill_and_retention_leave_regions_alike_and_restorable") else {
        return;
    };
    let soak = Soak::new(env);
    let port = free_port();
    let mut daemon = soak.start_daemon(1, port);
    let sampler = Sampler::start(port);
    soak.settle(Duration::from_secs(60), |s| !s.is_empty());

    // A region outage while changes keep coming: weed1 moves on without weed2.
    let before_outage = soak.snapshots(1);
    let down = Weed2Down(&soak.env);
    soak.env.kill(1);
    for step in 0..4 {
        soak.change(step);
        std::thread::sleep(Duration::from_secs(3));
    }
    let during = soak.snapshots(0);
    assert!(
        during.difference(&before_outage).count() > 0,
        "no backup reached weed1 during the outage: {during:?}"
    );
    let region = &status(port)["plans"][0]["datasets"][0]["regions"][1];
    assert_eq!(region["region"], "weed2", "{region}");
    assert_eq!(region["reachable"], false, "weed2 down: {region}");
    drop(down);
    for step in 4..6 {
        soak.change(step);
        std::thread::sleep(Duration::from_secs(3));
    }

    // The daemon killed mid-work, then started again on the same state with a broken
    // plan file in place: it keeps protecting with the last valid version.
    drop(daemon);
    soak.change(6);
    soak.write_plan("every three seconds");
    daemon = soak.start_daemon(2, port);
    wait_stale(port, true, Duration::from_secs(30));
    let before_fix = soak.snapshots(0);
    for step in 7..9 {
        soak.change(step);
        std::thread::sleep(Duration::from_secs(3));
    }
    soak.settle(Duration::from_secs(60), |s| s.difference(&before_fix).count() >= 1);
    soak.write_plan("*/3 * * * * *");
    wait_stale(port, false, Duration::from_secs(30));

    // Quiet: wait for runs that hold the final tree in both regions.
    let before = soak.snapshots(0);
    soak.settle(Duration::from_secs(90), |s| s.difference(&before).count() >= 2);
    let (disagreements, samples) = sampler.finish();
    eprintln!("{samples} samples of /metrics and /v1/status compared");
    assert!(samples >= 30, "only {samples} samples of /metrics and /v1/status");
    assert!(
        disagreements.is_empty(),
        "/metrics disagreed with /v1/status: {disagreements:#?}"
    );
    // A job running at SIGTERM finishes within the shutdown grace; judge what is left.
    sigterm(daemon);
    let last = soak.settle(Duration::from_secs(5), |_| true);
    assert_eq!(last.len(), KEEP_LAST, "retention throughout: {last:?}");
    assert_eq!(soak.objects(0, "snapshots/"), soak.objects(1, "snapshots/"));
    let (one, two) = (soak.objects(0, "data/"), soak.objects(1, "data/"));
    let differ = differing_objects(&one, &two);
    assert!(differ <= 1, "the regions differ in {differ} packs");
    for region in ["weed1", "weed2"] {
        let restored = soak.restore_from(region);
        assert_same_tree(&soak.source(), &restored);
    }
    log_is_quiet(&soak.path("daemon-1.log"), 5);
    log_is_quiet(&soak.path("daemon-2.log"), 0);
}

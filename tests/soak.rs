//! Soak: the daemon on a three-second schedule over two SeaweedFS regions while one
//! region is stopped and restarted, the daemon is killed (-9) and restarted, and
//! retention runs throughout. At the end both regions hold the same snapshots and,
//! within one pack, the same packs, and a restore from each region alone is exact.
//!
//! Needs the servers `tests/run.sh` starts (`bash tests/run.sh --servers cargo test
//! --test soak`); without them the test prints why it is skipped and passes, except
//! under `LIFEBOAT_REQUIRE_SERVERS=1`, where it fails. Bounded to about three minutes.

mod servers;
mod support_s3;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support_s3::*;

const DATASET: &str = "models";
const KEEP_LAST: usize = 4;

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
        let mut plan = String::from("version = 1\n\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\n");
        for (i, name) in ["weed1", "weed2"].iter().enumerate() {
            let address = soak.env.address(i, &soak.buckets[i], "repo");
            plan.push_str(&format!("[regions.{name}]\naddress = \"{address}\"\ncreate = true\n\n"));
        }
        plan.push_str(&format!(
            "[datasets.{DATASET}]\npaths = [\"{}\"]\nschedule = \"*/3 * * * * *\"\nregions = [\"weed1\", \"weed2\"]\n\
             rpo = \"1h\"\nretention = {{ keep_last = {KEEP_LAST} }}\n",
            soak.source().display()
        ));
        std::fs::write(soak.path("plans/soak.toml"), plan).unwrap();
        soak
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn source(&self) -> PathBuf {
        self.path("source")
    }

    fn start_daemon(&self, n: usize) -> Daemon {
        let log = std::fs::File::create(self.path(&format!("daemon-{n}.log"))).unwrap();
        let (plans, state) = (self.path("plans"), self.path("state"));
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
                    "127.0.0.1:0",
                ],
                &self.env.secret,
            )
            .env("RUST_LOG", "info")
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

fn log_has_no_panic(path: &Path) {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    assert!(!log.contains("panicked"), "{}: {log}", path.display());
}

#[test]
fn soak_outage_kill_and_retention_leave_regions_alike_and_restorable() {
    let Some(env) = WeedEnv::from_env("soak_outage_kill_and_retention_leave_regions_alike_and_restorable") else {
        return;
    };
    let soak = Soak::new(env);
    let mut daemon = soak.start_daemon(1);
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
    drop(down);
    for step in 4..6 {
        soak.change(step);
        std::thread::sleep(Duration::from_secs(3));
    }

    // The daemon killed mid-work, then started again on the same state.
    drop(daemon);
    soak.change(6);
    daemon = soak.start_daemon(2);
    for step in 7..9 {
        soak.change(step);
        std::thread::sleep(Duration::from_secs(3));
    }

    // Quiet: wait for runs that hold the final tree in both regions.
    let before = soak.snapshots(0);
    soak.settle(Duration::from_secs(90), |s| s.difference(&before).count() >= 2);
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
    for n in [1, 2] {
        log_has_no_panic(&soak.path(&format!("daemon-{n}.log")));
    }
}

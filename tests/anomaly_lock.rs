//! In an Object Lock region, the snapshot an open anomaly pins stays locked: a
//! SeaweedFS bucket with Object Lock, a plan region with `immutable_days = 1`, normal
//! rounds, then a round that encrypts a third of the files. The suspect backup's run
//! raises the pinned snapshot's own lock (read back from the server), its packs stay
//! locked for the full period, deleting its locked version is refused, the next run
//! asks for nothing (the ledger knows) and the text report shows the date, and after
//! the acknowledgement nothing is extended any more (the lock runs out on its own).
//! That retention keeps the pinned snapshot is shown in `tests/anomaly.rs`.
//!
//! Needs the servers `tests/run.sh` starts (`bash tests/run.sh --servers cargo test
//! --test anomaly_lock`); fails without them under `LIFEBOAT_REQUIRE_SERVERS=1`.

mod servers;
mod support_s3;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, FixedOffset, Utc};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;
use support_s3::*;

const NORMAL_ROUNDS: usize = 7;

/// A folder of text files: each round edits a few and adds one; `encrypt` rewrites a
/// share of them as random bytes under a `.locked` name and deletes the originals.
struct Files {
    root: PathBuf,
    rng: StdRng,
    made: usize,
}

impl Files {
    fn new(root: PathBuf) -> Files {
        fs::create_dir_all(&root).unwrap();
        let mut f = Files {
            root,
            rng: StdRng::seed_from_u64(0x10c4),
            made: 0,
        };
        for _ in 0..80 {
            f.add();
        }
        f
    }

    fn text(&mut self) -> Vec<u8> {
        let words = ["ledger", "north", "invoice", "2026", "total", "pending"];
        let len = self.rng.gen_range(3_000..9_000);
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(words[self.rng.gen_range(0..words.len())].as_bytes());
            out.push(b' ');
        }
        out
    }

    fn add(&mut self) {
        self.made += 1;
        let data = self.text();
        fs::write(self.root.join(format!("note{:04}.txt", self.made)), data).unwrap();
    }

    fn names(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(&self.root).unwrap().map(|e| e.unwrap().path()).collect();
        out.sort();
        out
    }

    fn normal_round(&mut self) {
        let names = self.names();
        for _ in 0..4 {
            let f = &names[self.rng.gen_range(0..names.len())];
            let data = self.text();
            fs::write(f, data).unwrap();
        }
        self.add();
    }

    fn encrypt(&mut self, every: usize) {
        for f in self.names().into_iter().step_by(every) {
            let mut noise = vec![0; fs::metadata(&f).unwrap().len() as usize];
            self.rng.fill_bytes(&mut noise);
            let name = format!("{}.locked", f.file_name().unwrap().to_string_lossy());
            fs::write(f.with_file_name(name), noise).unwrap();
            fs::remove_file(f).unwrap();
        }
    }
}

struct Site {
    _dir: tempfile::TempDir,
    plan: PathBuf,
    bucket: String,
}

impl Site {
    fn new(env: &WeedEnv, source: &Path) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let bucket = env.new_bucket(0, "anomaly-lock", true);
        let plan = dir.path().join("plan.toml");
        let toml = format!(
            "version = 1\n\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\n\
             [regions.weed1]\naddress = \"{}\"\ncreate = true\nimmutable_days = 1\n\n\
             [datasets.docs]\npaths = [\"{}\"]\nschedule = \"@hourly\"\nregions = [\"weed1\"]\nrpo = \"2h\"\n\
             retention = {{ keep_last = 30 }}\nanomaly = {{ min_history = 5 }}\n",
            env.address(0, &bucket, "repo"),
            source.display()
        );
        fs::write(&plan, toml).unwrap();
        Site {
            _dir: dir,
            plan,
            bucket,
        }
    }

    /// One `apply --force --json`: the report of the one region.
    fn round(&self, env: &WeedEnv, what: &str) -> Value {
        let out = env.lifeboat(&["--json", "apply", self.plan.to_str().unwrap(), "--force"]);
        assert_eq!(code(&out), 0, "{what}: {}", both(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["datasets"][0]["regions"][0].clone()
    }

    fn retention(&self, env: &WeedEnv, key: &str) -> (String, DateTime<FixedOffset>) {
        let out = env.python(0, &["retention", &self.bucket, &format!("repo/{key}")]);
        assert!(out.status.success(), "retention of {key}: {}", stderr(&out));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let until = DateTime::parse_from_rfc3339(r["until"].as_str().unwrap()).unwrap();
        (r["mode"].as_str().unwrap().to_string(), until)
    }

    fn packs(&self, env: &WeedEnv) -> BTreeSet<String> {
        let names = env.object_names(0, &self.bucket, "repo/");
        names.into_iter().filter(|k| k.starts_with("data/")).collect()
    }
}

fn suspect(run: &Value) -> bool {
    run["summary"]["anomaly"]["suspect"] == true
}

#[test]
fn an_open_anomaly_keeps_its_pinned_snapshot_locked_until_acknowledged() {
    let test = "an_open_anomaly_keeps_its_pinned_snapshot_locked_until_acknowledged";
    let Some(env) = WeedEnv::from_env(test) else { return };
    let source = tempfile::tempdir().unwrap();
    let mut files = Files::new(source.path().join("docs"));
    let site = Site::new(&env, &files.root);
    let mut last = Value::Null;
    let mut packs_before = BTreeSet::new();
    for round in 1..=NORMAL_ROUNDS {
        files.normal_round();
        packs_before = site.packs(&env);
        last = site.round(&env, &format!("normal round {round}"));
        assert!(!suspect(&last), "normal round {round} judged suspect: {last}");
        assert!(last.get("pinned_lock").is_none(), "nothing pinned yet: {last}");
    }
    let clean = last["snapshot"].as_str().unwrap().to_string();
    let clean_key = format!("snapshots/{clean}");
    // A pack the clean snapshot certainly uses: one its own round uploaded.
    let pack = site
        .packs(&env)
        .difference(&packs_before)
        .next()
        .cloned()
        .expect("a new pack");
    let (_, at_upload) = site.retention(&env, &clean_key);
    // Retention dates have one-second resolution.
    std::thread::sleep(std::time::Duration::from_millis(1500));

    files.encrypt(3);
    let started = Utc::now();
    let run = site.round(&env, "encryption round");
    assert!(suspect(&run), "encryption not caught: {run}");
    assert_eq!(run["summary"]["anomaly"]["pinned"].as_str(), Some(clean.as_str()));
    let extended = &run["pinned_lock"]["extended"];
    assert_eq!(extended.as_array().map(Vec::len), Some(1), "{run}");
    assert_eq!(extended[0]["snapshot"].as_str(), Some(clean.as_str()));
    let reported: DateTime<Utc> = extended[0]["until"].as_str().unwrap().parse().unwrap();

    // Read back from the server: the pinned snapshot's own lock moved past the one its
    // upload set, to 1 day + 1 day of slack from this run, in COMPLIANCE mode.
    let (mode, raised) = site.retention(&env, &clean_key);
    assert_eq!(mode, "COMPLIANCE");
    assert!(
        raised > at_upload,
        "pinned snapshot locked until {raised}, as at upload {at_upload}"
    );
    assert_eq!(
        raised.timestamp(),
        reported.timestamp(),
        "the report says what the server holds"
    );
    assert!(raised >= started + Duration::days(2) - Duration::seconds(1), "{raised}");
    // Its pack is locked for at least the region's full period from now.
    let (mode, pack_until) = site.retention(&env, &pack);
    assert_eq!(mode, "COMPLIANCE");
    assert!(
        pack_until >= Utc::now() + Duration::days(1),
        "{pack} locked until {pack_until}"
    );
    let out = env.python(0, &["delete-versions", &site.bucket, &format!("repo/{clean_key}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let results: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        results,
        ["AccessDenied"],
        "deleting the pinned snapshot's locked version"
    );

    // Right away again: the ledger knows the lock is long enough; nothing is asked.
    files.normal_round();
    let run = site.round(&env, "round after the encryption");
    assert_eq!(run["pinned_lock"]["extended"], serde_json::json!([]), "{run}");
    assert_eq!(run["pinned_lock"]["kept"][0]["snapshot"].as_str(), Some(clean.as_str()));
    assert_eq!(site.retention(&env, &clean_key).1, raised);
    // The text report says it too, with the date the server holds.
    files.normal_round();
    let out = env.lifeboat(&["apply", site.plan.to_str().unwrap(), "--force"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let line = format!(
        "pinned snapshot {} (open anomaly): Object Lock already locked until {}",
        &clean[..8],
        raised.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%S UTC")
    );
    assert!(stdout(&out).contains(&line), "{line} in {}", both(&out));

    // Acknowledged: later runs keep its lock no more; it stays as it was until it
    // runs out.
    let suspect_id = open_anomaly(&env, &site);
    let out = env.lifeboat(&["anomalies", "ack", &suspect_id, "--plan", site.plan.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    files.normal_round();
    let run = site.round(&env, "round after the acknowledgement");
    assert!(!suspect(&run), "{run}");
    assert!(run.get("pinned_lock").is_none(), "{run}");
    assert_eq!(site.retention(&env, &clean_key).1, raised);
}

/// The id of the one open anomaly of the plan.
fn open_anomaly(env: &WeedEnv, site: &Site) -> String {
    let out = env.lifeboat(&["--json", "anomalies", "--plan", site.plan.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let open: Vec<&Value> = (listed["anomalies"].as_array().unwrap().iter())
        .filter(|a| a["acked"].is_null())
        .collect();
    assert_eq!(open.len(), 1, "{listed}");
    open[0]["id"].as_str().unwrap().to_string()
}

//! Anomaly detection end to end, on local-disk regions: a churn generator backs up a
//! mixed dataset and a model dataset (new high-entropy checkpoints every run) for
//! twenty normal rounds, then one dataset is encrypted at once and another slowly,
//! 3% per round. The goals: the encryption caught in its round, the slow one within
//! three, no normal round suspect; alert hooks fire, `snapshots` and `anomalies` show
//! it, retention keeps the pinned snapshot until the anomaly is acknowledged, and the
//! acknowledgement names who gave it in the audit trail.

mod support_plan;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Output;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;
use support_plan::{PlanDir, alerts_to, dataset, plan_head};

const PASSWORD: &str = "anomaly-test-password";
const SEED: u64 = 0x5eed_2026;
const NORMAL_ROUNDS: usize = 20;
const SLOW_ROUNDS: usize = 5;
const MIN_HISTORY: usize = 5;
const TEXT_EXTENSIONS: [&str; 5] = ["txt", "csv", "json", "md", "log"];
const BINARY_EXTENSIONS: [&str; 2] = ["png", "pdf"];
const WORDS: [&str; 16] = [
    "invoice",
    "region",
    "backup",
    "quarterly",
    "model",
    "training",
    "report",
    "customer",
    "north",
    "south",
    "total",
    "pending",
    "approved",
    "2026",
    "meeting",
    "notes",
];

/// A dataset directory changed the way people and programs change files.
struct Churn {
    root: PathBuf,
    rng: StdRng,
    created: usize,
}

impl Churn {
    fn new(root: PathBuf, seed: u64, files: usize) -> Churn {
        let mut c = Churn {
            root,
            rng: StdRng::seed_from_u64(seed),
            created: 0,
        };
        for _ in 0..files {
            c.add_file();
        }
        c
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.root).unwrap() {
            for f in fs::read_dir(dir.unwrap().path()).unwrap() {
                out.push(f.unwrap().path());
            }
        }
        out.sort();
        out
    }

    fn text(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            out.extend_from_slice(WORDS[self.rng.gen_range(0..WORDS.len())].as_bytes());
            out.push(if self.rng.gen_ratio(1, 8) { b'\n' } else { b' ' });
        }
        out.truncate(len);
        out
    }

    fn noise(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.rng.fill_bytes(&mut out);
        out
    }

    fn content(&mut self, ext: &str) -> Vec<u8> {
        let len = self.rng.gen_range(4_096..48_000);
        if BINARY_EXTENSIONS.contains(&ext) {
            self.noise(len)
        } else {
            self.text(len)
        }
    }

    fn add_file(&mut self) {
        let ext = if self.rng.gen_ratio(3, 20) {
            BINARY_EXTENSIONS[self.rng.gen_range(0..BINARY_EXTENSIONS.len())]
        } else {
            TEXT_EXTENSIONS[self.rng.gen_range(0..TEXT_EXTENSIONS.len())]
        };
        let dir = self.root.join(format!("dir{}", self.rng.gen_range(0..8)));
        fs::create_dir_all(&dir).unwrap();
        self.created += 1;
        let data = self.content(ext);
        fs::write(dir.join(format!("file{:05}.{ext}", self.created)), data).unwrap();
    }

    fn pick(&mut self, n: usize) -> Vec<PathBuf> {
        let mut files = self.files();
        let mut out = Vec::new();
        for _ in 0..n.min(files.len()) {
            out.push(files.swap_remove(self.rng.gen_range(0..files.len())));
        }
        out
    }

    /// Edits, appends, new files, deletions and the odd rename, in varying amounts.
    fn normal_round(&mut self) {
        let edits = self.rng.gen_range(8..16);
        for f in self.pick(edits) {
            let ext = f.extension().unwrap().to_string_lossy().into_owned();
            let data = self.content(&ext);
            fs::write(&f, data).unwrap();
        }
        let appends = self.rng.gen_range(4..8);
        for f in self.pick(appends) {
            let mut data = fs::read(&f).unwrap();
            let more = self.text(1_000);
            data.extend_from_slice(&more);
            fs::write(&f, data).unwrap();
        }
        for _ in 0..self.rng.gen_range(4..10) {
            self.add_file();
        }
        let deletes = self.rng.gen_range(2..6);
        for f in self.pick(deletes) {
            fs::remove_file(f).unwrap();
        }
        if self.rng.gen_ratio(1, 3) {
            let f = self.pick(1).remove(0);
            fs::rename(
                &f,
                f.with_file_name(format!("renamed-{}", f.file_name().unwrap().to_string_lossy())),
            )
            .unwrap();
        }
    }

    /// Ransomware: `share` of the files rewritten with random bytes under a `.locked`
    /// name, the originals gone, and a few more originals deleted besides.
    fn encrypt(&mut self, share: f64, extra_deletes: usize) {
        let n = (self.files().len() as f64 * share).round() as usize;
        for f in self
            .pick(n)
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e != "locked"))
        {
            let len = fs::metadata(&f).unwrap().len() as usize;
            let locked = f.with_file_name(format!("{}.locked", f.file_name().unwrap().to_string_lossy()));
            let data = self.noise(len);
            fs::write(locked, data).unwrap();
            fs::remove_file(f).unwrap();
        }
        for f in self
            .pick(extra_deletes)
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e != "locked"))
        {
            fs::remove_file(f).unwrap();
        }
    }
}

/// A model directory: a new checkpoint every run (random bytes), the oldest dropped,
/// a metrics log appended and the config now and then edited.
struct Training {
    root: PathBuf,
    rng: StdRng,
    step: usize,
}

impl Training {
    fn new(root: PathBuf, seed: u64) -> Training {
        fs::create_dir_all(root.join("checkpoints")).unwrap();
        fs::write(root.join("config.json"), b"{\"lr\": 0.001, \"layers\": 12}").unwrap();
        let mut t = Training {
            root,
            rng: StdRng::seed_from_u64(seed),
            step: 0,
        };
        for _ in 0..3 {
            t.round();
        }
        t
    }

    fn round(&mut self) {
        self.step += 1;
        let mut weights = vec![0; 400_000];
        self.rng.fill_bytes(&mut weights);
        let dir = self.root.join("checkpoints");
        fs::write(dir.join(format!("step-{:05}.safetensors", self.step)), weights).unwrap();
        if self.step > 3 {
            fs::remove_file(dir.join(format!("step-{:05}.safetensors", self.step - 3))).unwrap();
        }
        let log = self.root.join("metrics.jsonl");
        let mut text = fs::read(&log).unwrap_or_default();
        text.extend_from_slice(
            format!("{{\"step\": {}, \"loss\": {}}}\n", self.step, self.rng.r#gen::<f32>()).as_bytes(),
        );
        fs::write(log, text).unwrap();
        if self.rng.gen_ratio(1, 4) {
            let lr = self.rng.gen_range(1..9);
            fs::write(
                self.root.join("config.json"),
                format!("{{\"lr\": 0.00{lr}, \"layers\": 12}}"),
            )
            .unwrap();
        }
    }
}

struct Site {
    dir: PlanDir,
}

impl Site {
    fn new() -> Site {
        let dir = PlanDir::new(PASSWORD).env("USER", "oncall");
        let alerts = dir.path("alerts.txt").display().to_string();
        let regions = ["a", "b"];
        let history = format!("anomaly = {{ min_history = {MIN_HISTORY} }}");
        let keep = "retention = { keep_last = 100 }";
        let medium = format!("anomaly = {{ sensitivity = \"medium\", min_history = {MIN_HISTORY} }}");
        let plan = plan_head(&regions)
            + &alerts_to(&alerts)
            + &dataset("docs", &["docs"], &regions, &[keep, &medium])
            + &dataset("share", &["share"], &regions, &[keep, &history])
            + &dataset("models", &["models"], &regions, &["kind = \"model\"", keep, &history]);
        dir.write("plan.toml", &plan);
        Site { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.dir.run(args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        self.dir.expect(args, 0)
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_slice(&self.ok(args).stdout).unwrap()
    }

    /// One `apply --force`: each dataset's verdict (score, suspect, signal).
    fn round(&self) -> BTreeMap<String, (f64, bool, String)> {
        let report = self.json(&["--json", "apply", "plan.toml", "--force"]);
        let mut out = BTreeMap::new();
        for ds in report["datasets"].as_array().unwrap() {
            let summary = &ds["regions"][0]["summary"];
            let verdict = &summary["anomaly"];
            out.insert(
                ds["dataset"].as_str().unwrap().to_string(),
                (
                    verdict["score"].as_f64().unwrap_or(0.0),
                    verdict["suspect"].as_bool().unwrap_or(false),
                    verdict["signal"].as_str().unwrap_or("").to_string(),
                ),
            );
        }
        out
    }

    fn snapshots(&self, dataset: &str) -> Vec<Value> {
        let v = self.json(&["--json", "snapshots", "--repo", "regions/a", "--dataset", dataset]);
        v.as_array().unwrap().clone()
    }
}

fn ids(snaps: &[Value]) -> Vec<String> {
    snaps.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn encryption_is_caught_at_once_slow_encryption_soon_and_normal_churn_never() {
    let site = Site::new();
    let mut docs = Churn::new(site.path("docs"), SEED, 400);
    let mut share = Churn::new(site.path("share"), SEED + 1, 400);
    let mut models = Training::new(site.path("models"), SEED + 2);
    let mut table = Vec::new();
    let mut false_positives = Vec::new();
    for round in 1..=NORMAL_ROUNDS {
        if round > 1 {
            docs.normal_round();
            share.normal_round();
            models.round();
        }
        let verdicts = site.round();
        false_positives.extend(
            verdicts
                .iter()
                .filter(|v| v.1.1)
                .map(|v| format!("round {round} {}", v.0)),
        );
        table.push((round, verdicts));
    }
    assert_eq!(false_positives, Vec::<String>::new(), "normal rounds judged suspect");

    // The encryption round: 30% of docs rewritten as .locked, some originals deleted.
    let encrypted_round = NORMAL_ROUNDS + 1;
    docs.encrypt(0.30, 20);
    share.normal_round();
    models.round();
    let verdicts = site.round();
    assert!(verdicts["docs"].1, "encryption not caught: {verdicts:?}");
    assert!(!verdicts["share"].1 && !verdicts["models"].1, "{verdicts:?}");
    table.push((encrypted_round, verdicts));

    // The slow one: 3% of share per round, among its usual churn.
    let mut slow_caught = None;
    for i in 1..=SLOW_ROUNDS {
        share.normal_round();
        share.encrypt(0.03, 0);
        models.round();
        let verdicts = site.round();
        if verdicts["share"].1 && slow_caught.is_none() {
            slow_caught = Some(i);
        }
        assert!(!verdicts["models"].1, "model checkpoints judged suspect: {verdicts:?}");
        table.push((encrypted_round + i, verdicts));
    }
    for (round, v) in &table {
        let cell = |d: &str| format!("{:.1} {}{}", v[d].0, v[d].2, if v[d].1 { " SUSPECT" } else { "" });
        eprintln!(
            "round {round:>2}: docs {:<30} share {:<30} models {}",
            cell("docs"),
            cell("share"),
            cell("models")
        );
    }
    let slow_caught = slow_caught.expect("slow encryption never caught");
    assert!(
        slow_caught <= 3,
        "slow encryption caught only in slow round {slow_caught}"
    );

    check_alerts_and_listing(&site);
    check_pin_holds_until_ack(&site);
}

fn check_alerts_and_listing(site: &Site) {
    let alerts = fs::read_to_string(site.path("alerts.txt")).unwrap();
    assert!(alerts.lines().any(|l| l == "anomaly docs a,b"), "{alerts}");
    assert!(alerts.lines().any(|l| l.starts_with("anomaly share ")), "{alerts}");
    assert!(!alerts.contains("models"), "{alerts}");

    let listed = site.json(&["--json", "anomalies", "--plan", "plan.toml"]);
    let anomalies = listed["anomalies"].as_array().unwrap();
    let docs: Vec<&Value> = anomalies.iter().filter(|a| a["dataset"] == "docs").collect();
    assert_eq!(docs.len(), 1, "{listed}");
    assert_eq!(docs[0]["regions"], serde_json::json!(["a", "b"]));
    assert!(docs[0]["acked"].is_null());
    let text = String::from_utf8(
        site.ok(&["snapshots", "--repo", "regions/a", "--dataset", "docs"])
            .stdout,
    )
    .unwrap();
    let short = &docs[0]["id"].as_str().unwrap()[..8];
    assert!(
        text.lines().any(|l| l.starts_with(short) && l.contains("SUSPECT")),
        "{text}"
    );
}

/// Retention run during the anomaly keeps the suspect snapshot and the one before
/// it; after `ack` (recorded with who did it) they are ordinary snapshots again.
fn check_pin_holds_until_ack(site: &Site) {
    let before = site.snapshots("docs");
    let suspect = before
        .iter()
        .find(|s| s["snapshot"]["summary"]["anomaly"]["suspect"] == true)
        .unwrap();
    let suspect_id = suspect["id"].as_str().unwrap().to_string();
    let pinned = suspect["snapshot"]["summary"]["anomaly"]["pinned"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(suspect["snapshot"]["parent"].as_str(), Some(pinned.as_str()));

    site.ok(&["forget", "--repo", "regions/a", "--dataset", "docs", "--keep-last", "1"]);
    let kept = ids(&site.snapshots("docs"));
    assert_eq!(
        kept.len(),
        3,
        "keep-last 1 plus the two the open anomaly holds: {kept:?}"
    );
    assert!(kept.contains(&pinned) && kept.contains(&suspect_id), "{kept:?}");

    let acked = site.json(&["--json", "anomalies", "ack", &suspect_id[..10], "--plan", "plan.toml"]);
    assert_eq!(acked["recorded"], serde_json::json!(["a", "b"]));
    let trail = site.json(&["--json", "audit", "log", "--repo", "regions/b"]);
    let ack = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "anomaly-ack")
        .expect("an anomaly-ack event");
    assert!(ack["actor"].as_str().unwrap().starts_with("oncall@"), "{ack}");
    assert_eq!(ack["objects"], serde_json::json!([suspect_id]));

    let listed = site.json(&["--json", "anomalies", "--plan", "plan.toml", "--dataset", "docs"]);
    assert!(
        listed["anomalies"][0]["acked"]["by"]
            .as_str()
            .unwrap()
            .starts_with("oncall@")
    );
    site.ok(&["forget", "--repo", "regions/a", "--dataset", "docs", "--keep-last", "1"]);
    assert_eq!(site.snapshots("docs").len(), 1);
}

#[test]
fn anomaly_ack_of_an_unknown_id_is_bad_input() {
    let site = Site::new();
    Churn::new(site.path("docs"), SEED, 20);
    Churn::new(site.path("share"), SEED, 20);
    Training::new(site.path("models"), SEED);
    site.ok(&["apply", "plan.toml", "--force"]);
    let out = site.run(&["anomalies", "ack", "deadbeef", "--plan", "plan.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("no anomaly deadbeef"),
        "{err}"
    );
    let listed = site.json(&["--json", "anomalies", "--plan", "plan.toml"]);
    assert_eq!(listed["anomalies"], serde_json::json!([]));
}

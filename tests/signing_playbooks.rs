//! Playbooks that rely on a signed snapshot without restoring it, and the audit trail
//! of drills and failovers, with the real binary, two local regions and a `file`
//! endpoint: a failover whose playbook only re-points checks the signature of the
//! newest snapshot the target region serves first, and refuses (exit 3, the endpoint
//! untouched) when it is missing or signed by a key the plan does not trust; every
//! drill and failover writes a start event before its first step, so a drill killed
//! half-way still shows in `audit log`.

mod support_output;
mod support_plan;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support_output::both;
use support_plan::{PlanDir, dataset, plan_head, signing_section};

const PASSWORD: &str = "playbook signing password";
const PRIMARY: &str = "upstream gw { server 10.0.0.1:80; }  # a\n";
const STANDBY: &str = "upstream gw { server 10.0.0.2:80; }  # b\n";

/// The endpoint and playbooks of the plan; `DIR` stands for the site's folder.
const PLAYBOOKS: &str = r#"
[endpoints.gw]
provider = "file"
path = "DIR/upstream.conf"
template = "upstream gw { {target} }  # {region}\n"
check = ["test", "-s", "DIR/upstream.conf"]
targets = { a = "server 10.0.0.1:80;", b = "server 10.0.0.2:80;" }

[playbooks.switch]
rto = "1m"
primary = "a"
standby = "b"
steps = [{ kind = "repoint", endpoint = "gw", to = "b" }]

[playbooks.slow]
rto = "5m"
primary = "a"
standby = "b"
steps = [{ kind = "wait", duration = "60s" }]
"#;

struct Site {
    dir: PlanDir,
}

impl Site {
    /// Two regions holding one signed snapshot; the endpoint on the primary.
    fn new() -> Site {
        let dir = PlanDir::new(PASSWORD);
        let cache = dir.path("cache").display().to_string();
        let s = Site {
            dir: dir.env("XDG_CACHE_HOME", cache),
        };
        fs::create_dir_all(s.path("data/model")).unwrap();
        fs::write(s.path("data/model/weights.bin"), vec![7u8; 50_000]).unwrap();
        for key in ["signing", "other"] {
            s.dir.signing_key(key);
        }
        s.trust("signing");
        s.expect(&["apply", "plan.toml", "--force"], 0);
        fs::write(s.path("upstream.conf"), PRIMARY).unwrap();
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path(rel)
    }

    /// Rewrite the plan to trust only key `name`.
    fn trust(&self, name: &str) {
        let trusted = format!("keys/{name}.pem.pub");
        let models = ["sign = true", "retention = { keep_last = 5 }"];
        let plan = plan_head(&["a", "b"])
            + &signing_section("keys/signing.pem", &[&trusted])
            + &dataset("models", &["data/model"], &["a", "b"], &models)
            + &PLAYBOOKS.replace("DIR", &self.dir.dir.path().display().to_string());
        self.dir.write("plan.toml", &plan);
    }

    fn command(&self, args: &[&str]) -> Command {
        self.dir.command(args, PASSWORD)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.dir.run(args)
    }

    fn expect(&self, args: &[&str], code: i32) -> String {
        both(&self.dir.expect(args, code))
    }

    fn upstream(&self) -> String {
        fs::read_to_string(self.path("upstream.conf")).unwrap()
    }

    fn failover(&self, code: i32) -> String {
        let args = [
            "--json",
            "failover",
            "--plan",
            "plan.toml",
            "--state",
            "state",
            "switch",
            "--confirm",
        ];
        self.expect(&args, code)
    }

    /// The drill and failover events of region `region`'s trail: (action, outcome).
    fn run_events(&self, region: &str) -> Vec<(String, String)> {
        let repo = format!("regions/{region}");
        let out = self.run(&["--json", "audit", "log", "--repo", &repo]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let events = doc["events"].as_array().unwrap().iter();
        let pair = |e: &Value| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        };
        events
            .map(pair)
            .filter(|(action, _)| action == "drill" || action == "failover")
            .collect()
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, o)| (a.to_string(), o.to_string())).collect()
}

#[test]
fn a_failover_that_only_repoints_checks_the_standbys_signature_first() {
    let s = Site::new();
    let out = s.failover(0);
    assert!(out.contains("signature of models in region b"), "{out}");
    assert!(out.contains(": signed by key"), "{out}");
    assert_eq!(s.upstream(), STANDBY);

    fs::write(s.path("upstream.conf"), PRIMARY).unwrap();
    for m in fs::read_dir(s.path("regions/b/manifests")).unwrap() {
        fs::remove_file(m.unwrap().path()).unwrap();
    }
    let out = s.failover(3);
    assert!(out.contains("not trusted: unsigned (no manifest)"), "{out}");
    assert!(out.contains("changed nothing"), "{out}");
    assert_eq!(s.upstream(), PRIMARY, "nothing was re-pointed");
    let dry = [
        "failover",
        "--plan",
        "plan.toml",
        "--state",
        "state",
        "switch",
        "--dry-run",
    ];
    let out = s.expect(&dry, 3);
    assert!(out.contains("signature of models in region b"), "{out}");
}

#[test]
fn a_drill_that_only_repoints_refuses_a_snapshot_signed_by_an_untrusted_key() {
    let s = Site::new();
    s.trust("other");
    let args = ["drill", "--plan", "plan.toml", "--state", "state", "switch"];
    let out = s.expect(&args, 3);
    assert!(out.contains("does not verify under any trusted key"), "{out}");
    assert_eq!(s.upstream(), PRIMARY, "nothing was re-pointed");
    assert!(
        s.run_events("a").iter().all(|(_, outcome)| outcome != "started"),
        "a run refused by its preflight never started"
    );
}

#[test]
fn drills_and_failovers_record_their_start_and_end_in_every_region() {
    let s = Site::new();
    s.expect(&["drill", "--plan", "plan.toml", "--state", "state", "switch"], 0);
    s.failover(0);
    let want = pairs(&[
        ("drill", "started"),
        ("drill", "ok"),
        ("failover", "started"),
        ("failover", "ok"),
    ]);
    assert_eq!(s.run_events("a"), want);
    assert_eq!(s.run_events("b"), want);
    let log = s.expect(&["audit", "log", "--repo", "regions/a"], 0);
    let started = log.lines().find(|l| l.contains("drill") && l.contains("started"));
    assert!(started.is_some_and(|l| l.contains("playbook switch")), "{log}");
}

#[test]
fn a_drill_killed_half_way_leaves_its_start_in_the_trail() {
    let s = Site::new();
    let mut child = s
        .command(&["drill", "--plan", "plan.toml", "--state", "state", "slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.run_events("a").is_empty() || s.run_events("b").is_empty() {
        assert!(Instant::now() < deadline, "the drill's start event never appeared");
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s.run_events("a"), pairs(&[("drill", "started")]));
    assert_eq!(s.run_events("b"), pairs(&[("drill", "started")]));
}

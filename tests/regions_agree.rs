//! Regions of a plan stay alike across an outage, on two local regions: the region
//! that was away is caught up by copying what it lacks (not by a second backup into
//! the other), retention is decided once for both, and nothing is left for prune to
//! find. Also `skip_unchanged`: no snapshot when nothing changed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::*;

const DATASET: &str = "models";

struct Site {
    tmp: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let site = Site {
            tmp: tempfile::tempdir().unwrap(),
        };
        write_file(&site.source().join("weights-0.bin"), &random_bytes(300_000, 1));
        write_file(&site.source().join("config.json"), b"{\"layers\": 4}");
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn source(&self) -> PathBuf {
        self.path("source")
    }

    fn plan(&self) -> PathBuf {
        self.path("plan.toml")
    }

    /// A plan over regions `east` and `west`; `create` lets apply make missing ones.
    fn write_plan(&self, create: bool, dataset_extra: &str) {
        self.write_plan_on(create, "@hourly", "2h", dataset_extra);
    }

    fn write_plan_on(&self, create: bool, schedule: &str, rpo: &str, dataset_extra: &str) {
        let mut toml = String::from("version = 1\n\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\n");
        for name in ["east", "west"] {
            let address = self.path(name);
            toml.push_str(&format!(
                "[regions.{name}]\naddress = \"{}\"\ncreate = {create}\n\n",
                address.display()
            ));
        }
        toml.push_str(&format!(
            "[datasets.{DATASET}]\npaths = [\"{}\"]\nschedule = \"{schedule}\"\nregions = [\"east\", \"west\"]\n\
             rpo = \"{rpo}\"\nretention = {{ keep_last = 2 }}\n{dataset_extra}",
            self.source().display()
        ));
        std::fs::write(self.plan(), toml).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = lifeboat();
        cmd.args(args).output().unwrap()
    }

    /// `apply --json` (with `extra`), asserting the exit code; the region rows by name.
    fn apply(&self, extra: &[&str], code: i32) -> Value {
        let plan = self.plan();
        let mut args = vec!["--json", "apply"];
        args.extend_from_slice(extra);
        args.push(plan.to_str().unwrap());
        let out = self.run(&args);
        assert_eq!(out.status.code(), Some(code), "apply {extra:?}: {}", text(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut rows = serde_json::Map::new();
        for r in report["datasets"][0]["regions"].as_array().unwrap() {
            rows.insert(r["region"].as_str().unwrap().to_string(), r.clone());
        }
        Value::Object(rows)
    }

    fn objects(&self, region: &str, prefix: &str) -> Vec<PathBuf> {
        listing(&self.path(region).join(prefix)).into_keys().collect()
    }

    fn change_source(&self, n: u64) {
        write_file(
            &self.source().join(format!("weights-{n}.bin")),
            &random_bytes(200_000, n + 10),
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A site backed up once to both regions, then with west gone (renamed away, and
/// no longer created by the plan); `west_back` returns it.
fn site_with_west_away(dataset_extra: &str) -> Site {
    let site = Site::new();
    site.write_plan(true, dataset_extra);
    site.apply(&["--force"], 0);
    site.write_plan(false, dataset_extra);
    std::fs::rename(site.path("west"), site.path("west-away")).unwrap();
    site
}

impl Site {
    fn west_back(&self) {
        std::fs::rename(self.path("west-away"), self.path("west")).unwrap();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn str_of(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_region_back_from_an_outage_is_caught_up_without_a_second_copy_anywhere() {
    let site = site_with_west_away("");
    for n in 1..=2 {
        site.change_source(n);
        let rows = site.apply(&["--force"], 4);
        assert!(rows["west"]["error"].is_string(), "{rows}");
        assert!(rows["east"]["snapshot"].is_string(), "{rows}");
    }
    // east forgot its first snapshot (keep_last = 2); west still holds only that one.
    assert_eq!(site.objects("east", "snapshots").len(), 2);
    site.west_back();
    let east_packs = site.objects("east", "data");

    let rows = site.apply(&[], 0);
    assert_eq!(rows["west"]["synced"], 2, "west copied what it lacked: {rows}");
    assert_eq!(rows["west"]["forgotten"], 1, "west forgot what east forgot: {rows}");
    assert_eq!(site.objects("east", "data"), east_packs, "east received nothing again");
    assert_eq!(site.objects("west", "snapshots"), site.objects("east", "snapshots"));

    for region in ["east", "west"] {
        let repo = site.path(region);
        let check = site.json(&["--json", "check", "--read-data", "--repo", str_of(&repo)]);
        assert_eq!(
            (check["errors"].clone(), check["unindexed_packs"].clone()),
            (Value::from(Vec::<String>::new()), 0.into()),
            "{region}: {check}"
        );
        let prune = site.json(&["--json", "prune", "--dry-run", "--repo", str_of(&repo)]);
        assert_eq!(prune["condemned"], 0, "{region}: {prune}");
    }
    let target = site.path("restored-west");
    let out = site.run(&[
        "restore",
        "--plan",
        str_of(&site.plan()),
        "--dataset",
        DATASET,
        "--region",
        "west",
        "--target",
        str_of(&target),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let mut expected = manifest(site.tmp.path());
    expected.retain(|p, _| p.starts_with("source"));
    assert_same_tree(&expected, &manifest(&target));
}

#[test]
fn a_new_backup_after_catching_up_sends_each_region_only_what_is_new() {
    let site = site_with_west_away("");
    site.change_source(1);
    site.apply(&["--force"], 4);
    site.west_back();
    site.change_source(2);
    let rows = site.apply(&["--force"], 0);
    assert_eq!(rows["west"]["synced"], 1, "{rows}");
    assert_eq!(rows["east"]["snapshot"], rows["west"]["snapshot"], "{rows}");
    let added = |r: &str| rows[r]["bytes_added"].as_u64().unwrap();
    assert!(added("east") > 0, "{rows}");
    assert_eq!(
        added("east"),
        added("west"),
        "both regions were sent the same new packs: {rows}"
    );
    assert_eq!(site.objects("west", "data"), site.objects("east", "data"));
    assert_eq!(site.objects("west", "snapshots"), site.objects("east", "snapshots"));
    let east = site.path("east");
    let prune = site.json(&["--json", "prune", "--dry-run", "--repo", str_of(&east)]);
    assert_eq!(prune["condemned"], 0, "no copy east holds twice: {prune}");
}

#[test]
fn skip_unchanged_writes_no_snapshot_when_nothing_changed() {
    let site = Site::new();
    site.write_plan(true, "skip_unchanged = true\n");
    let first = site.apply(&["--force"], 0);
    let again = site.apply(&["--force"], 0);
    for region in ["east", "west"] {
        assert_eq!(again[region]["unchanged"], true, "{again}");
        assert_eq!(again[region]["snapshot"], first[region]["snapshot"], "{again}");
        assert_eq!(site.objects(region, "snapshots").len(), 1, "{region}");
    }
    site.change_source(1);
    let changed = site.apply(&["--force"], 0);
    assert_eq!(changed["east"]["unchanged"], false, "{changed}");
    assert_ne!(changed["east"]["snapshot"], first["east"]["snapshot"], "{changed}");
    assert_eq!(site.objects("east", "snapshots").len(), 2);
}

/// An unchanged dataset still gets a snapshot once its latest is older than half the RPO,
/// so the repositories alone show it protected within its RPO.
#[test]
fn skip_unchanged_writes_a_snapshot_again_after_half_the_rpo() {
    let site = Site::new();
    site.write_plan_on(true, "*/5 * * * * *", "20s", "skip_unchanged = true\n");
    let first = site.apply(&["--force"], 0);
    let again = site.apply(&["--force"], 0);
    assert_eq!(again["east"]["unchanged"], true, "within half the RPO: {again}");
    std::thread::sleep(std::time::Duration::from_secs(11));
    let later = site.apply(&["--force"], 0);
    for region in ["east", "west"] {
        assert_eq!(later[region]["unchanged"], false, "{later}");
        assert_ne!(later[region]["snapshot"], first[region]["snapshot"], "{later}");
        assert_eq!(site.objects(region, "snapshots").len(), 2, "{region}");
    }
}

#[test]
fn without_skip_unchanged_every_run_writes_a_snapshot() {
    let site = Site::new();
    site.write_plan(true, "");
    site.apply(&["--force"], 0);
    let again = site.apply(&["--force"], 0);
    assert_eq!(again["east"]["unchanged"], false, "{again}");
    assert_eq!(site.objects("east", "snapshots").len(), 2);
}

//! `lifeboat verify --plan`: test restores from each region alone; damage exits 3,
//! names the file, and fires the plan's alert hooks.

mod support_plan;

use std::fs;
use std::path::Path;

use support_plan::{PlanDir, alerts_to, dataset, plan_head};

/// A folder with a text file and a binary one under `data/`, and a plan backing them up
/// into the local regions `a` and `b`, alerts appended to `alerts.log`.
fn site() -> PlanDir {
    let dir = PlanDir::new("verify-test-password");
    fs::create_dir_all(dir.path("data/sub")).unwrap();
    fs::write(dir.path("data/a.txt"), "alpha ".repeat(1000)).unwrap();
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    fs::write(dir.path("data/sub/weights.bin"), noise).unwrap();
    let plan = plan_head(&["a", "b"])
        + &dataset("stuff", &["data"], &["a", "b"], &["retention = { keep_last = 3 }"])
        + &alerts_to("alerts.log");
    dir.write("plan.toml", &plan);
    dir
}

#[test]
fn verify_passes_in_every_region_and_fires_no_alert() {
    let dir = site();
    assert!(dir.run(&["apply", "plan.toml"]).status.success());
    let out = dir.run(&["--json", "verify", "--plan", "plan.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r["report"]["passed"], true, "{r}");
        assert_eq!(r["report"]["files_checked"], 2, "{r}");
        assert!(r["report"]["estimated_rto_seconds"].as_f64().unwrap() > 0.0);
    }
    assert!(!dir.path("alerts.log").exists());
}

#[test]
fn damage_in_one_region_exits_3_names_the_file_and_fires_the_alert() {
    let dir = site();
    assert!(dir.run(&["apply", "plan.toml"]).status.success());
    // Flip one byte in the middle of region b's pack: the weights file's blobs live there.
    let packs: Vec<_> = walk(&dir.path("regions/b/data"));
    assert_eq!(packs.len(), 1);
    let mut bytes = fs::read(&packs[0]).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    fs::write(&packs[0], bytes).unwrap();

    let out = dir.run(&["verify", "--plan", "plan.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("FAIL") && stdout.contains("damaged: data/"), "{stdout}");
    let alerts = fs::read_to_string(dir.path("alerts.log")).unwrap();
    assert_eq!(alerts.trim(), "verification stuff b");
    // Region a alone still verifies clean.
    let out = dir.run(&["verify", "--plan", "plan.toml", "--region", "a"]);
    assert_eq!(out.status.code(), Some(0));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

//! `lifeboat verify --plan`: test restores from each region alone; damage exits 3,
//! names the file, and fires the plan's alert hooks.

use std::fs;
use std::path::Path;
use std::process::Command;

fn lifeboat(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .current_dir(dir)
        .env("LIFEBOAT_PASSWORD", "verify-test-password")
        .output()
        .unwrap()
}

fn write_plan(dir: &Path) {
    fs::create_dir_all(dir.join("data/sub")).unwrap();
    fs::write(dir.join("data/a.txt"), "alpha ".repeat(1000)).unwrap();
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    fs::write(dir.join("data/sub/weights.bin"), noise).unwrap();
    let plan = r#"version = 1
[key]
env = "LIFEBOAT_PASSWORD"
[regions.a]
address = "regions/a"
create = true
[regions.b]
address = "regions/b"
create = true
[datasets.stuff]
paths = ["data"]
schedule = "@hourly"
regions = ["a", "b"]
rpo = "2h"
retention = { keep_last = 3 }
[alerts]
command = ["sh", "-c", "echo \"$LIFEBOAT_ALERT_KIND $LIFEBOAT_ALERT_DATASET $LIFEBOAT_ALERT_REGION\" >> alerts.log"]
"#;
    fs::write(dir.join("plan.toml"), plan).unwrap();
}

#[test]
fn verify_passes_in_every_region_and_fires_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path());
    assert!(lifeboat(dir.path(), &["apply", "plan.toml"]).status.success());
    let out = lifeboat(dir.path(), &["--json", "verify", "--plan", "plan.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r["report"]["passed"], true, "{r}");
        assert_eq!(r["report"]["files_checked"], 2, "{r}");
        assert!(r["report"]["estimated_rto_seconds"].as_f64().unwrap() > 0.0);
    }
    assert!(!dir.path().join("alerts.log").exists());
}

#[test]
fn damage_in_one_region_exits_3_names_the_file_and_fires_the_alert() {
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path());
    assert!(lifeboat(dir.path(), &["apply", "plan.toml"]).status.success());
    // Flip one byte in the middle of region b's pack: the weights file's blobs live there.
    let packs: Vec<_> = walk(&dir.path().join("regions/b/data"));
    assert_eq!(packs.len(), 1);
    let mut bytes = fs::read(&packs[0]).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    fs::write(&packs[0], bytes).unwrap();

    let out = lifeboat(dir.path(), &["verify", "--plan", "plan.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("FAIL") && stdout.contains("damaged: data/"), "{stdout}");
    let alerts = fs::read_to_string(dir.path().join("alerts.log")).unwrap();
    assert_eq!(alerts.trim(), "verification stuff b");
    // Region a alone still verifies clean.
    let out = lifeboat(dir.path(), &["verify", "--plan", "plan.toml", "--region", "a"]);
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

//! Signed manifests on a real S3 server (SeaweedFS, started by `tests/run.sh`): the
//! manifest is stored beside its snapshot in every region, locked under Object Lock
//! (COMPLIANCE) where the region has it, and a restore from a region whose manifest was
//! deleted is refused while the other region restores with its signature checked.

mod servers;
mod support_s3;

use std::path::Path;

use support_s3::*;

fn write_plan(dir: &Path, locked: &str, plain: &str) {
    let plan = format!(
        r#"version = 1

[key]
env = "LIFEBOAT_PASSWORD"

[signing]
key = {{ file = "keys/signing.pem" }}
trusted = ["keys/signing.pem.pub"]

[regions.locked]
address = "{locked}"
create = true
immutable_days = 8

[regions.plain]
address = "{plain}"
create = true

[datasets.models]
kind = "model"
paths = ["source"]
schedule = "@hourly"
regions = ["locked", "plain"]
rpo = "2h"
retention = {{ keep_last = 5 }}
sign = true
"#
    );
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
}

#[test]
fn signed_manifests_on_seaweedfs_are_locked_and_checked_before_a_restore() {
    let test = "signed_manifests_on_seaweedfs_are_locked_and_checked_before_a_restore";
    let Some(env) = WeedEnv::from_env(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_sample_tree(&dir.path().join("source"));
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let locked = env.new_bucket(0, "sign-locked", true);
    let plain = env.new_bucket(0, "sign-plain", false);
    write_plan(
        dir.path(),
        &env.address(0, &locked, "repo"),
        &env.address(0, &plain, "repo"),
    );
    let run = |args: &[&str]| {
        let mut cmd = env.command(args, &env.secret);
        cmd.current_dir(dir.path()).output().unwrap()
    };
    let out = run(&["signing-key", "generate", "--out", "keys/signing.pem"]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let out = run(&["apply", "plan.toml"]);
    assert_eq!(code(&out), 0, "{}", both(&out));

    let in_locked = under(&env.object_hashes(0, &locked, "repo/"), "manifests/");
    let in_plain = under(&env.object_hashes(0, &plain, "repo/"), "manifests/");
    assert_eq!(in_locked.len(), 1, "{in_locked:?}");
    assert_eq!(
        in_locked.keys().collect::<Vec<_>>(),
        in_plain.keys().collect::<Vec<_>>()
    );
    let manifest = format!("repo/{}", in_locked.keys().next().unwrap());
    let out = env.python(0, &["retention", &locked, &manifest]);
    assert!(out.status.success(), "{manifest} has no retention: {}", stderr(&out));
    let retention: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(retention["mode"], "COMPLIANCE", "{retention}");
    let out = env.python(0, &["delete-versions", &locked, &manifest]);
    let results: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results, ["AccessDenied"], "deleting the locked manifest");

    let restore = |region: &str, target: &str| {
        run(&[
            "restore",
            "--plan",
            "plan.toml",
            "--dataset",
            "models",
            "--region",
            region,
            "--target",
            target,
        ])
    };
    let out = restore("locked", "from-locked");
    assert_eq!(code(&out), 0, "{}", both(&out));
    assert!(stdout(&out).contains("signature: signed by key"), "{}", both(&out));
    assert_same_tree(&dir.path().join("source"), &dir.path().join("from-locked/source"));

    let out = env.python(0, &["delete", &plain, &manifest]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = restore("plain", "from-plain");
    assert_eq!(code(&out), 3, "{}", both(&out));
    assert!(
        stderr(&out).contains("not trusted: unsigned (no manifest)"),
        "{}",
        both(&out)
    );
}

//! Multi-region backup against real S3 servers: two SeaweedFS regions and a local
//! folder in one plan, driven through the `lifeboat` binary.
//!
//! Needs the servers `tests/run.sh` starts (`bash tests/run.sh --servers cargo test
//! --test multi_region`); without them every test prints why it is skipped and passes,
//! except under `LIFEBOAT_REQUIRE_SERVERS=1` (set by `tests/run.sh`), where it fails.
//! `region_crash_mid_backup_then_sync` stops weed2, so the tests that use weed2 take
//! the `WEED2` lock; the others run in parallel with them.

mod servers;
mod support_s3;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support_s3::*;

const DATASET: &str = "models";

/// Held by every test that uses weed2, which one of them crashes and restarts.
static WEED2: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn weed2_lock() -> std::sync::MutexGuard<'static, ()> {
    WEED2.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A plan over weed1, weed2 and a local folder, all holding `dataset` from `source`.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    plan: PathBuf,
    source: PathBuf,
    local: PathBuf,
    buckets: [String; 2],
}

impl Setup {
    fn new(env: &WeedEnv) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let source = root.join("source");
        let local = root.join("local-region");
        write_sample_tree(&source);
        let buckets = [env.new_bucket(0, "mr-one", false), env.new_bucket(1, "mr-two", false)];
        let plan = root.join("plan.toml");
        let regions = [
            ("weed1", env.address(0, &buckets[0], "repo")),
            ("weed2", env.address(1, &buckets[1], "repo")),
            ("local", local.display().to_string()),
        ];
        write_plan(&plan, &source, &regions);
        Setup {
            _dir: dir,
            root,
            plan,
            source,
            local,
            buckets,
        }
    }

    fn plan(&self) -> &str {
        self.plan.to_str().unwrap()
    }

    fn restore_from(&self, env: &WeedEnv, region: &str, name: &str) -> PathBuf {
        let target = self.root.join(name);
        env.restore_region(&self.plan, DATASET, region, &target);
        target.join("source")
    }

    fn check_clean(&self, env: &WeedEnv, repo: &str) -> serde_json::Value {
        let out = env.lifeboat(&["--json", "check", "--read-data", "--repo", repo]);
        assert_eq!(code(&out), 0, "check --read-data {repo}: {}", both(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["errors"], serde_json::json!([]), "{repo}: {report}");
        report
    }

    fn local_packs(&self) -> usize {
        under(&local_hashes(&self.local), "data/").len()
    }
}

fn write_plan(path: &Path, source: &Path, regions: &[(&str, String)]) {
    let mut toml = String::from("version = 1\n\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\n");
    for (name, address) in regions {
        toml.push_str(&format!("[regions.{name}]\naddress = \"{address}\"\ncreate = true\n\n"));
    }
    let names: Vec<String> = regions.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    toml.push_str(&format!(
        "[datasets.{DATASET}]\npaths = [\"{}\"]\nschedule = \"@hourly\"\nregions = [{}]\nrpo = \"2h\"\n\
         retention = {{ keep_last = 10 }}\n",
        source.display(),
        names.join(", ")
    ));
    std::fs::write(path, toml).unwrap();
}

/// The pack and snapshot objects of each region, by key and hash.
fn assert_regions_hold_identical_objects(env: &WeedEnv, setup: &Setup, regions: &[usize]) {
    let local = local_hashes(&setup.local);
    for prefix in ["data/", "snapshots/"] {
        let expected = under(&local, prefix);
        assert!(!expected.is_empty(), "local region has no {prefix} objects");
        for &weed in regions {
            let remote = under(&env.object_hashes(weed, &setup.buckets[weed], "repo/"), prefix);
            assert_eq!(
                remote,
                expected,
                "weed{} {prefix} differs from the local region",
                weed + 1
            );
        }
    }
}

fn region_status(env: &WeedEnv, setup: &Setup, region: &str) -> serde_json::Value {
    let out = env.lifeboat(&["--json", "plan", setup.plan()]);
    assert!(matches!(code(&out), 0 | 4), "plan: {}", both(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let regions = status["datasets"][0]["regions"].as_array().unwrap().clone();
    regions.into_iter().find(|r| r["region"] == region).expect(region)
}

#[test]
fn apply_to_three_regions_restores_from_each_alone() {
    let Some(env) = WeedEnv::from_env("apply_to_three_regions_restores_from_each_alone") else {
        return;
    };
    let _weed2 = weed2_lock();
    let setup = Setup::new(&env);
    let out = env.lifeboat(&["apply", setup.plan()]);
    assert_eq!(code(&out), 0, "apply: {}", both(&out));
    assert_regions_hold_identical_objects(&env, &setup, &[0, 1]);
    for region in ["weed1", "weed2", "local"] {
        let restored = setup.restore_from(&env, region, &format!("from-{region}"));
        assert_same_tree(&setup.source, &restored);
    }
    // A second run (nothing due, unless an hour boundary passed) is clean too.
    let again = env.lifeboat(&["apply", setup.plan()]);
    assert_eq!(code(&again), 0, "second apply: {}", both(&again));
}

/// Apply ~120 MiB more with weed2 killed mid-run: the run ends degraded naming weed2,
/// the other regions hold the new snapshot; weed2 is restarted whatever happens.
fn apply_while_weed2_crashes(env: &WeedEnv, setup: &Setup) {
    let packs_before = setup.local_packs();
    // ~120 MiB of incompressible data: several packs, so the crash lands mid-run.
    write_random_files(&setup.source.join("checkpoint"), 30, 4 * 1024 * 1024);
    let child = env
        .command(&["apply", "--force", setup.plan()], &env.secret)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while setup.local_packs() <= packs_before {
        assert!(Instant::now() < deadline, "no new pack reached the local region");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.kill(1);
    let out = child.wait_with_output().unwrap();
    let result = std::panic::catch_unwind(|| {
        assert_eq!(
            code(&out),
            4,
            "apply with weed2 down must finish degraded: {}",
            both(&out)
        );
        let text = both(&out);
        assert!(
            text.lines().any(|l| l.contains("weed2") && l.contains("FAILED")),
            "the failed region is named: {text}"
        );
        for repo in [
            setup.local.display().to_string(),
            env.address(0, &setup.buckets[0], "repo"),
        ] {
            let report = setup.check_clean(env, &repo);
            assert_eq!(report["snapshots"], 2, "{repo}: {report}");
        }
    });
    env.restart(1);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A setup backed up once to every region, then again while weed2 crashed.
fn setup_after_weed2_crashed(env: &WeedEnv) -> Setup {
    let setup = Setup::new(env);
    let first = env.lifeboat(&["apply", setup.plan()]);
    assert_eq!(code(&first), 0, "first apply: {}", both(&first));
    apply_while_weed2_crashes(env, &setup);
    setup
}

#[test]
fn region_crash_mid_backup_then_sync() {
    let Some(env) = WeedEnv::from_env("region_crash_mid_backup_then_sync") else {
        return;
    };
    let _weed2 = weed2_lock();
    let setup = setup_after_weed2_crashed(&env);
    let weed2_url = env.address(1, &setup.buckets[1], "repo");

    // weed2 kept what it had: a consistent repository, one snapshot behind.
    let report = setup.check_clean(&env, &weed2_url);
    assert_eq!(report["snapshots"], 1, "weed2 after the crash: {report}");
    let status = region_status(&env, &setup, "weed2");
    assert_eq!(status["reachable"], true, "{status}");
    assert_eq!(status["behind"], 1, "plan shows weed2 behind: {status}");
    assert!(status["bytes_behind"].as_u64().unwrap() > 0, "{status}");

    let sync = env.lifeboat(&["sync", "--plan", setup.plan()]);
    assert_eq!(code(&sync), 0, "sync: {}", both(&sync));
    let report = setup.check_clean(&env, &weed2_url);
    assert_eq!(report["snapshots"], 2, "weed2 after sync: {report}");
    let status = region_status(&env, &setup, "weed2");
    assert_eq!(
        (status["behind"].clone(), status["bytes_behind"].clone()),
        (0.into(), 0.into()),
        "{status}"
    );
    let restored = setup.restore_from(&env, "weed2", "after-sync");
    assert_same_tree(&setup.source, &restored);
}

#[test]
fn unreachable_or_misconfigured_region_is_named() {
    let Some(env) = WeedEnv::from_env("unreachable_or_misconfigured_region_is_named") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    write_sample_tree(&source);

    // Multi-region: weed1's bucket does not exist. The local region still gets the
    // backup and the run ends degraded, naming weed1.
    let missing = format!("no-such-bucket-{:08x}", rand::random::<u32>());
    let plan = dir.path().join("missing-bucket.toml");
    let local = dir.path().join("local");
    write_plan(
        &plan,
        &source,
        &[
            ("weed1", env.address(0, &missing, "repo")),
            ("local", local.display().to_string()),
        ],
    );
    let out = env.lifeboat(&["apply", plan.to_str().unwrap()]);
    assert_eq!(code(&out), 4, "{}", both(&out));
    let text = stdout(&out);
    let failed: Vec<&str> = text.lines().filter(|l| l.contains("FAILED")).map(str::trim).collect();
    assert_eq!(failed.len(), 1, "{}", both(&out));
    assert!(
        failed[0].contains("weed1") && failed[0].contains(&missing),
        "{}",
        both(&out)
    );
    let restored = dir.path().join("restored");
    let out = env.lifeboat(&[
        "restore",
        "--plan",
        plan.to_str().unwrap(),
        "--dataset",
        DATASET,
        "--target",
        restored.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "restore by plan skips the broken region: {}", both(&out));
    assert_same_tree(&source, &restored.join("source"));

    // Single region with a wrong secret: the run fails (exit 1), naming the region and
    // the server's refusal.
    let bucket = env.new_bucket(0, "mr-creds", false);
    let plan = dir.path().join("wrong-secret.toml");
    write_plan(&plan, &source, &[("weed1", env.address(0, &bucket, "repo"))]);
    let out = env.lifeboat_with(&["apply", plan.to_str().unwrap()], "not-the-secret");
    assert_eq!(code(&out), 1, "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("weed1") && text.contains("SignatureDoesNotMatch"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("error:")), "{text}");
}

#[test]
fn object_lock_keeps_packs_from_being_deleted() {
    let Some(env) = WeedEnv::from_env("object_lock_keeps_packs_from_being_deleted") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    write_sample_tree(&source);
    let bucket = env.new_bucket(0, "mr-locked", true);
    let repo = format!(
        "{}&object_lock_days=1&storage_class=STANDARD",
        env.address(0, &bucket, "repo")
    );
    for args in [
        vec!["init", "--repo", &repo],
        vec!["backup", "--repo", &repo, source.to_str().unwrap()],
    ] {
        let out = env.lifeboat(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", both(&out));
    }
    let objects = env.object_hashes(0, &bucket, "repo/");
    let pack = objects.keys().find(|k| k.starts_with("data/")).expect("a pack").clone();
    let snapshot = objects
        .keys()
        .find(|k| k.starts_with("snapshots/"))
        .expect("a snapshot")
        .clone();
    for key in [&pack, &snapshot] {
        let out = env.python(0, &["retention", &bucket, &format!("repo/{key}")]);
        assert!(out.status.success(), "retention of {key}: {}", stderr(&out));
        let retention: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(retention["mode"], "COMPLIANCE", "{key}: {retention}");
        let out = env.python(0, &["delete-versions", &bucket, &format!("repo/{key}")]);
        assert!(out.status.success(), "{}", stderr(&out));
        let results: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(results, ["AccessDenied"], "deleting a locked version of {key}");
    }
    // Index objects are not locked (prune rewrites them).
    let index = objects
        .keys()
        .find(|k| k.starts_with("index/"))
        .expect("an index")
        .clone();
    let out = env.python(0, &["retention", &bucket, &format!("repo/{index}")]);
    assert!(!out.status.success(), "index {index} should carry no retention");
    let out = env.lifeboat(&["check", "--read-data", "--repo", &repo]);
    assert_eq!(code(&out), 0, "{}", both(&out));

    // The same address on a bucket without Object Lock is refused before anything is
    // written, and so is a repository made there without the lock when it is later
    // opened with one.
    let plain = env.new_bucket(0, "mr-unlocked", false);
    let locked_address = format!("{}&object_lock_days=1", env.address(0, &plain, "repo"));
    let out = env.lifeboat(&["init", "--repo", &locked_address]);
    assert_ne!(code(&out), 0, "{}", both(&out));
    assert!(both(&out).contains("no Object Lock configuration"), "{}", both(&out));
    assert!(env.object_hashes(0, &plain, "repo/").is_empty(), "nothing written");
    let out = env.lifeboat(&["init", "--repo", &env.address(0, &plain, "repo")]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let out = env.lifeboat(&["backup", "--repo", &locked_address, source.to_str().unwrap()]);
    assert_ne!(code(&out), 0, "{}", both(&out));
    assert!(both(&out).contains("no Object Lock configuration"), "{}", both(&out));
}

/// Keys and config cannot be rebuilt (without them no locked pack can be decrypted), so
/// an Object Lock region locks them too; removing a key leaves its locked version.
#[test]
fn object_lock_keeps_keys_and_config_from_being_deleted() {
    let Some(env) = WeedEnv::from_env("object_lock_keeps_keys_and_config_from_being_deleted") else {
        let required = std::env::var("LIFEBOAT_REQUIRE_SERVERS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "LIFEBOAT_REQUIRE_SERVERS=1 but the SeaweedFS servers are not set"
        );
        return;
    };
    let bucket = env.new_bucket(0, "mr-locked-keys", true);
    let repo = format!("{}&object_lock_days=1", env.address(0, &bucket, "repo"));
    let out = env.lifeboat(&["init", "--repo", &repo]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let mut add = env.command(&["key", "add", "--repo", &repo], &env.secret);
    let out = add.env("LIFEBOAT_NEW_PASSWORD", "second password").output().unwrap();
    assert_eq!(code(&out), 0, "{}", both(&out));
    let objects = env.object_hashes(0, &bucket, "repo/");
    let keys: Vec<&String> = objects.keys().filter(|k| k.starts_with("keys/")).collect();
    assert_eq!(keys.len(), 2, "{objects:?}");
    for key in keys.iter().map(|k| k.as_str()).chain(["config"]) {
        let out = env.python(0, &["retention", &bucket, &format!("repo/{key}")]);
        assert!(out.status.success(), "retention of {key}: {}", stderr(&out));
        let retention: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(retention["mode"], "COMPLIANCE", "{key}: {retention}");
        let out = env.python(0, &["delete-versions", &bucket, &format!("repo/{key}")]);
        assert!(out.status.success(), "{}", stderr(&out));
        let results: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(results, ["AccessDenied"], "deleting a locked version of {key}");
    }
    // Removing the second password says that its locked version stays, and it does.
    let list = env.lifeboat(&["--json", "key", "list", "--repo", &repo]);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    let other = listed.iter().find(|k| k["current"] == false).expect("the added key");
    let id = other["id"].as_str().unwrap();
    let out = env.lifeboat(&["key", "remove", "--repo", &repo, id]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("Object Lock") && text.contains("until its retention ends"),
        "{text}"
    );
    let out = env.python(0, &["delete-versions", &bucket, &format!("repo/keys/{id}")]);
    let results: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results, ["AccessDenied"], "the removed key's locked version stays");
}

/// Retain-until date of `key` in `bucket`.
fn retained_until(env: &WeedEnv, bucket: &str, key: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let out = env.python(0, &["retention", bucket, key]);
    assert!(out.status.success(), "retention of {key}: {}", stderr(&out));
    let retention: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    chrono::DateTime::parse_from_rfc3339(retention["until"].as_str().unwrap()).unwrap()
}

/// A new snapshot that reuses old packs keeps them locked for its own full period:
/// packs are locked `days + slack` at upload, the ledger under `retention/` remembers
/// that, and a pack whose known lock is too short has its retention raised. Without
/// the keys and the config no pack can be decrypted, so whenever a pack is locked
/// further into the future they are raised to at least the same date.
#[test]
fn object_lock_is_extended_for_packs_a_new_snapshot_uses() {
    let Some(env) = WeedEnv::from_env("object_lock_is_extended_for_packs_a_new_snapshot_uses") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    write_sample_tree(&source);
    let bucket = env.new_bucket(0, "mr-extend", true);
    let repo = format!("{}&object_lock_days=1", env.address(0, &bucket, "repo"));
    let backup = |what: &str| {
        let out = env.lifeboat(&["backup", "--repo", &repo, source.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{what}: {}", both(&out));
    };
    let out = env.lifeboat(&["init", "--repo", &repo]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let objects = env.object_hashes(0, &bucket, "repo/");
    let key = format!("repo/{}", objects.keys().find(|k| k.starts_with("keys/")).unwrap());
    let at_init = retained_until(&env, &bucket, &key);
    let keys_follow = |pack_until| {
        for object in [key.as_str(), "repo/config"] {
            let until = retained_until(&env, &bucket, object);
            assert!(
                until >= pack_until,
                "{object} locked until {until}, a pack until {pack_until}"
            );
        }
    };
    // Retention dates have one-second resolution.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    backup("first backup");
    let objects = env.object_hashes(0, &bucket, "repo/");
    let pack = format!("repo/{}", objects.keys().find(|k| k.starts_with("data/")).unwrap());
    let ledgers: Vec<&String> = objects.keys().filter(|k| k.starts_with("retention/")).collect();
    assert_eq!(ledgers.len(), 1, "one ledger: {objects:?}");
    let first = retained_until(&env, &bucket, &pack);
    assert!(first > at_init, "the pack, uploaded later, is locked later");
    keys_follow(first);
    let left = first.signed_duration_since(chrono::Utc::now());
    assert!(
        left > chrono::Duration::hours(47) && left <= chrono::Duration::hours(48),
        "1 day + 1 day of slack, got {left}"
    );

    // Right away again: the ledger shows the lock is long enough; nothing is raised.
    backup("second backup");
    assert_eq!(retained_until(&env, &bucket, &pack), first);

    let objects = env.object_hashes(0, &bucket, "repo/");
    let unchanged: Vec<&String> = objects.keys().filter(|k| k.starts_with("retention/")).collect();
    assert_eq!(unchanged, ledgers, "nothing changed, so the ledger is not rewritten");

    // Without the ledger the locks are unknown, so every pack in use is raised.
    let ledger = format!("repo/{}", ledgers[0]);
    let out = env.python(0, &["delete", &bucket, &ledger]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    backup("third backup");
    let raised = retained_until(&env, &bucket, &pack);
    assert!(raised > first, "raised from {first} to {raised}");
    keys_follow(raised);
    let out = env.lifeboat(&["check", "--read-data", "--repo", &repo]);
    assert_eq!(code(&out), 0, "{}", both(&out));
}

/// A plan region's `immutable_days` reaches the storage layer: its packs are locked.
#[test]
fn plan_immutable_days_locks_packs() {
    let Some(env) = WeedEnv::from_env("plan_immutable_days_locks_packs") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    write_sample_tree(&source);
    let bucket = env.new_bucket(0, "mr-plan-lock", true);
    let plan = dir.path().join("plan.toml");
    write_plan(&plan, &source, &[("weed1", env.address(0, &bucket, "repo"))]);
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(
        &plan,
        text.replace("create = true\n", "create = true\nimmutable_days = 8\n"),
    )
    .unwrap();
    let started = chrono::Utc::now();
    let out = env.lifeboat(&["apply", plan.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let ended = chrono::Utc::now();
    let objects = env.object_hashes(0, &bucket, "repo/");
    let pack = objects.keys().find(|k| k.starts_with("data/")).expect("a pack").clone();
    let out = env.python(0, &["retention", &bucket, &format!("repo/{pack}")]);
    assert!(out.status.success(), "pack {pack} has no retention: {}", stderr(&out));
    // Read back from the server: COMPLIANCE (not even the account owner may delete),
    // for the plan's 8 days plus a quarter of them as slack (docs/regions.md).
    let retention: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(retention["mode"], "COMPLIANCE", "{retention}");
    let until = retained_until(&env, &bucket, &format!("repo/{pack}"));
    let days = chrono::Duration::days(10);
    let margin = chrono::Duration::minutes(1);
    assert!(
        until >= started + days - margin && until <= ended + days + margin,
        "pack {pack} locked until {until}, not 10 days after {started}"
    );
}

#[test]
fn after_an_outage_the_next_apply_catches_up_and_regions_hold_the_same_bytes() {
    let Some(env) = WeedEnv::from_env("after_an_outage_the_next_apply_catches_up_and_regions_hold_the_same_bytes")
    else {
        return;
    };
    let _weed2 = weed2_lock();
    let setup = setup_after_weed2_crashed(&env);
    let weed1_before = under(&env.object_hashes(0, &setup.buckets[0], "repo/"), "data/");

    // The next run copies into weed2 what it missed, then backs up the change once.
    write_random_files(&setup.source.join("more"), 2, 1024 * 1024);
    let out = env.lifeboat(&["--json", "apply", "--force", setup.plan()]);
    assert_eq!(code(&out), 0, "catch-up apply: {}", both(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["datasets"][0]["regions"].as_array().unwrap();
    let weed2 = rows.iter().find(|r| r["region"] == "weed2").unwrap();
    assert_eq!(weed2["synced"], 1, "weed2 was caught up by copying: {report}");
    let weed1_after = under(&env.object_hashes(0, &setup.buckets[0], "repo/"), "data/");
    let new_in_weed1 = weed1_after.len() - weed1_before.len();
    assert!(
        new_in_weed1 <= 1,
        "weed1 received {new_in_weed1} packs for 2 MiB of change: the catch-up re-uploaded"
    );

    let local = under(&local_hashes(&setup.local), "data/");
    for weed in [0, 1] {
        let objects = env.object_hashes(weed, &setup.buckets[weed], "repo/");
        let differ = differing_objects(&under(&objects, "data/"), &local);
        assert!(
            differ <= 1,
            "weed{} differs from the local region in {differ} packs",
            weed + 1
        );
        assert_eq!(
            under(&objects, "snapshots/"),
            under(&local_hashes(&setup.local), "snapshots/")
        );
        let url = env.address(weed, &setup.buckets[weed], "repo");
        let check = setup.check_clean(&env, &url);
        assert_eq!(check["unindexed_packs"], 0, "weed{}: {check}", weed + 1);
        let prune = env.lifeboat(&["--json", "prune", "--dry-run", "--repo", &url]);
        let prune: serde_json::Value = serde_json::from_slice(&prune.stdout).unwrap();
        assert_eq!(prune["condemned"], 0, "weed{}: {prune}", weed + 1);
    }
    let restored = setup.restore_from(&env, "weed2", "after-catch-up");
    assert_same_tree(&setup.source, &restored);
}

//! S3 credentials resolved the AWS way, against SeaweedFS: from the environment, from a
//! shared profile file (`AWS_PROFILE`), and per region from a plan (a profile, or keys
//! read from secret references). Each case also writes to an Object Lock bucket, so the
//! lock path (aws-sdk-s3) is shown to sign with the same identity as the data path
//! (opendal).
//!
//! Every command runs with no `AWS_*` variable from the test's own environment, its
//! profile files inside a temporary folder and instance metadata turned off, so only
//! what each test sets decides which identity signs.
//!
//! Needs the servers `tests/run.sh` starts (`bash tests/run.sh --servers cargo test
//! --test s3_credentials`).

mod servers;
mod support_s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support_s3::*;

const WRONG_SECRET: &str = "not-the-secret-of-this-key-0000000000000";

/// A temporary home with `~/.aws`-style files: profile `good` signs, `wrong` does not.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(env: &WeedEnv) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let credentials = format!(
            "[good]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n\
             [wrong]\naws_access_key_id = {key}\naws_secret_access_key = {WRONG_SECRET}\n",
            key = env.key,
            secret = env.secret
        );
        std::fs::write(dir.path().join("credentials"), credentials).unwrap();
        let config = "[profile good]\nregion = us-east-1\n\n[profile wrong]\nregion = us-east-1\n";
        std::fs::write(dir.path().join("config"), config).unwrap();
        Home { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `lifeboat args` with only `vars` as AWS settings.
    fn lifeboat(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        cmd.args(args)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env_remove("LIFEBOAT_REPO");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("HOME", self.path())
            .env("AWS_SHARED_CREDENTIALS_FILE", self.path().join("credentials"))
            .env("AWS_CONFIG_FILE", self.path().join("config"))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (name, value) in vars {
            cmd.env(name, value);
        }
        cmd.output().expect("run lifeboat")
    }
}

/// A new Object Lock bucket on `weed`, and a repository address in it that locks for a day.
fn locked_repo(env: &WeedEnv, weed: usize, name: &str) -> (String, String) {
    let bucket = env.new_bucket(weed, name, true);
    (
        bucket.clone(),
        format!("{}&object_lock_days=1", env.address(weed, &bucket, "repo")),
    )
}

fn source_tree(root: &Path) -> PathBuf {
    let source = root.join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("weights.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(source.join("notes.txt"), "credentials test\n".repeat(50)).unwrap();
    source
}

/// Every pack under `repo/` in `bucket` is locked in COMPLIANCE mode; returns how many.
fn assert_packs_locked(env: &WeedEnv, weed: usize, bucket: &str) -> usize {
    let objects = env.object_hashes(weed, bucket, "repo/");
    let packs: Vec<&String> = objects.keys().filter(|k| k.starts_with("data/")).collect();
    assert!(!packs.is_empty(), "no pack in {bucket}: {objects:?}");
    for pack in &packs {
        let out = env.python(weed, &["retention", bucket, &format!("repo/{pack}")]);
        assert!(out.status.success(), "retention of {pack}: {}", stderr(&out));
        let retention: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(retention["mode"], "COMPLIANCE", "{pack}: {retention}");
    }
    packs.len()
}

fn assert_ok(out: &Output, what: &str) {
    assert_eq!(code(out), 0, "{what}: {}", both(out));
}

/// Exit 1 with one `error:` line saying the server refused the signature.
fn assert_rejected(out: &Output, what: &str) {
    assert_eq!(code(out), 1, "{what}: {}", both(out));
    let err = stderr(out);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(line.contains("credentials rejected"), "{what}: {err}");
    assert!(!err.contains(WRONG_SECRET), "{what} repeated the secret: {err}");
}

#[test]
fn environment_credentials_sign_data_and_lock_paths() {
    let Some(env) = WeedEnv::from_env("environment_credentials_sign_data_and_lock_paths") else {
        return;
    };
    let home = Home::new(&env);
    let source = source_tree(home.path());
    let (bucket, repo) = locked_repo(&env, 0, "cred-env");
    let keys = [
        ("AWS_ACCESS_KEY_ID", env.key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", env.secret.as_str()),
    ];
    assert_ok(&home.lifeboat(&["init", "--repo", &repo], &keys), "init");
    let backup = home.lifeboat(&["backup", "--repo", &repo, source.to_str().unwrap()], &keys);
    assert_ok(&backup, "backup");
    assert_packs_locked(&env, 0, &bucket);
    assert_ok(
        &home.lifeboat(&["check", "--read-data", "--repo", &repo], &keys),
        "check",
    );

    // The environment wins over AWS_PROFILE, as with the AWS CLI.
    let with_profile = [keys[0], keys[1], ("AWS_PROFILE", "wrong")];
    assert_ok(
        &home.lifeboat(&["snapshots", "--repo", &repo], &with_profile),
        "env over profile",
    );
    let wrong = [keys[0], ("AWS_SECRET_ACCESS_KEY", WRONG_SECRET)];
    assert_rejected(
        &home.lifeboat(&["snapshots", "--repo", &repo], &wrong),
        "wrong env secret",
    );
}

#[test]
fn profile_credentials_sign_data_and_lock_paths() {
    let Some(env) = WeedEnv::from_env("profile_credentials_sign_data_and_lock_paths") else {
        return;
    };
    let home = Home::new(&env);
    let source = source_tree(home.path());
    let (bucket, repo) = locked_repo(&env, 0, "cred-profile");
    let good = [("AWS_PROFILE", "good")];
    assert_ok(&home.lifeboat(&["init", "--repo", &repo], &good), "init");
    let backup = home.lifeboat(&["backup", "--repo", &repo, source.to_str().unwrap()], &good);
    assert_ok(&backup, "backup");
    assert_packs_locked(&env, 0, &bucket);

    let restored = home.path().join("restored");
    let restore = [
        "restore",
        "--repo",
        &repo,
        "latest",
        "--target",
        restored.to_str().unwrap(),
    ];
    assert_ok(&home.lifeboat(&restore, &good), "restore");
    assert_same_tree(&source, &restored.join("source"));

    let wrong = [("AWS_PROFILE", "wrong")];
    assert_rejected(&home.lifeboat(&["snapshots", "--repo", &repo], &wrong), "wrong profile");
    let missing = home.lifeboat(&["snapshots", "--repo", &repo], &[("AWS_PROFILE", "absent")]);
    assert_eq!(code(&missing), 1, "{}", both(&missing));
    assert!(
        stderr(&missing).contains("S3 credentials not loaded"),
        "{}",
        both(&missing)
    );
}

/// A plan over SeaweedFS regions: (name, address, further lines of the region).
fn write_plan(path: &Path, source: &Path, regions: &[(&str, String, String)]) {
    let mut toml = String::from("version = 1\n\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\n");
    for (name, address, lines) in regions {
        toml.push_str(&format!(
            "[regions.{name}]\naddress = \"{address}\"\ncreate = true\n{lines}\n\n"
        ));
    }
    let names: Vec<String> = regions.iter().map(|(n, ..)| format!("\"{n}\"")).collect();
    toml.push_str(&format!(
        "[datasets.models]\npaths = [\"{}\"]\nschedule = \"@hourly\"\nregions = [{}]\nrpo = \"2h\"\n\
         retention = {{ keep_last = 10 }}\n",
        source.display(),
        names.join(", ")
    ));
    std::fs::write(path, toml).unwrap();
}

#[test]
fn each_region_signs_with_its_own_credentials() {
    let Some(env) = WeedEnv::from_env("each_region_signs_with_its_own_credentials") else {
        return;
    };
    let home = Home::new(&env);
    let source = source_tree(home.path());
    let east_bucket = env.new_bucket(0, "cred-east", true);
    let east_lines = "immutable_days = 1\ncredentials = { profile = \"good\" }".to_string();
    let east = ("east", env.address(0, &east_bucket, "repo"), east_lines);
    let west_bucket = env.new_bucket(1, "cred-west", false);
    let west_address = env.address(1, &west_bucket, "repo");
    let plan = home.path().join("plan.toml");
    let wrong = "credentials = { profile = \"wrong\" }".to_string();
    write_plan(&plan, &source, &[east.clone(), ("west", west_address.clone(), wrong)]);

    // No credentials in the environment: each region signs with its own profile.
    let out = home.lifeboat(&["apply", plan.to_str().unwrap()], &[]);
    assert_eq!(code(&out), 4, "one region refused, the other backed up: {}", both(&out));
    let text = both(&out);
    let west_line = text
        .lines()
        .find(|l| l.contains("west") && l.contains("credentials rejected"));
    assert!(west_line.is_some(), "names region west and why: {text}");
    assert!(!text.contains(WRONG_SECRET), "{text}");
    assert_packs_locked(&env, 0, &east_bucket);
    assert!(
        env.object_hashes(1, &west_bucket, "repo/").is_empty(),
        "west stayed empty"
    );

    // West given keys from secret references (an environment variable and a file).
    let secret_file = home.path().join("west-secret");
    std::fs::write(&secret_file, format!("{}\n", env.secret)).unwrap();
    let keys = format!(
        "credentials = {{ access_key_id = {{ env = \"WEST_KEY_ID\" }}, secret_access_key = {{ file = \"{}\" }} }}",
        secret_file.display()
    );
    write_plan(&plan, &source, &[east, ("west", west_address, keys)]);
    let out = home.lifeboat(&["apply", plan.to_str().unwrap()], &[("WEST_KEY_ID", env.key.as_str())]);
    assert_eq!(code(&out), 0, "{}", both(&out));
    let west = env.object_hashes(1, &west_bucket, "repo/");
    assert!(
        west.keys().any(|k| k.starts_with("snapshots/")),
        "west has a snapshot: {west:?}"
    );
    let restored = home.path().join("from-west");
    let restore = [
        "restore",
        "--plan",
        plan.to_str().unwrap(),
        "--dataset",
        "models",
        "--region",
        "west",
        "--target",
        restored.to_str().unwrap(),
    ];
    let out = home.lifeboat(&restore, &[("WEST_KEY_ID", env.key.as_str())]);
    assert_ok(&out, "restore from west");
    assert_same_tree(&source, &restored.join("source"));
}

//! Helpers for tests against real S3 servers started by `tests/run.sh`: two SeaweedFS
//! `weed mini` regions (persistent, restartable) plus the `lifeboat` binary.
//!
//! S3-side inspection (create buckets, hash objects, delete a version) uses boto3
//! through `python3`, the client `tests/run.sh` installs, so the assertions do not rely
//! on the storage code under test.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::RngCore;

#[path = "../support_output/mod.rs"]
mod output;
#[allow(unused_imports)]
pub use output::{both, code, stderr, stdout};

pub const PASSWORD: &str = "multi-region test passphrase";

/// Two tests per scenario: `$local` runs `$scenario(&Site::local())`, `$weed` runs it on
/// SeaweedFS (`Site::weed(env)`), failing when the servers are required and absent.
/// The test file defines `Site` (and `#[macro_use] mod support_s3;`).
#[allow(unused_macros)]
macro_rules! on_local_and_seaweedfs {
    ($($scenario:ident => $local:ident, $weed:ident;)*) => {$(
        #[test]
        fn $local() {
            $scenario(&Site::local());
        }

        #[test]
        fn $weed() {
            let Some(env) = WeedEnv::from_env(stringify!($weed)) else { return };
            $scenario(&Site::weed(env));
        }
    )*};
}

/// One SeaweedFS server from `tests/run.sh`.
#[derive(Debug, Clone)]
pub struct Weed {
    pub endpoint: String,
    pub pidfile: PathBuf,
    pub start: PathBuf,
    pub stop: PathBuf,
}

/// The two SeaweedFS servers and their credentials.
#[derive(Debug, Clone)]
pub struct WeedEnv {
    pub regions: [Weed; 2],
    pub key: String,
    pub secret: String,
}

impl WeedEnv {
    /// The servers from the environment, or `None` (with the reason printed) when the
    /// tests are not run through `tests/run.sh`.
    pub fn from_env(test: &str) -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let weed = |n: u8| {
            Some(Weed {
                endpoint: var(&format!("LIFEBOAT_TEST_WEED{n}_ENDPOINT"))?,
                pidfile: var(&format!("LIFEBOAT_TEST_WEED{n}_PIDFILE"))?.into(),
                start: var(&format!("LIFEBOAT_TEST_WEED{n}_START"))?.into(),
                stop: var(&format!("LIFEBOAT_TEST_WEED{n}_STOP"))?.into(),
            })
        };
        let env = (|| {
            Some(Self {
                regions: [weed(1)?, weed(2)?],
                key: var("LIFEBOAT_TEST_WEED_KEY")?,
                secret: var("LIFEBOAT_TEST_WEED_SECRET")?,
            })
        })();
        if env.is_none() {
            let reason = "LIFEBOAT_TEST_WEED1_ENDPOINT etc. are not set \
                          (run `bash tests/run.sh --servers cargo test --test multi_region`)";
            crate::servers::missing(test, reason);
        }
        env
    }

    pub fn python(&self, weed: usize, args: &[&str]) -> Output {
        python_s3(&self.regions[weed].endpoint, &self.key, &self.secret, args)
    }

    /// Create a fresh bucket with a random name on server `weed`.
    pub fn new_bucket(&self, weed: usize, name: &str, object_lock: bool) -> String {
        let bucket = format!("{name}-{:08x}", rand::random::<u32>());
        let lock = if object_lock { "lock" } else { "plain" };
        let out = self.python(weed, &["create-bucket", &bucket, lock]);
        assert!(out.status.success(), "create bucket {bucket}: {}", stderr(&out));
        bucket
    }

    pub fn address(&self, weed: usize, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1",
            self.regions[weed].endpoint
        )
    }

    /// sha256 of every object under `prefix` in `bucket`, keyed by the name below it.
    pub fn object_hashes(&self, weed: usize, bucket: &str, prefix: &str) -> BTreeMap<String, String> {
        let out = self.python(weed, &["hashes", bucket, prefix]);
        assert!(out.status.success(), "hashing {bucket}/{prefix}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("hash listing is JSON")
    }

    /// The names of the objects under `prefix` in `bucket` (below `prefix`), without
    /// reading them: safe while a writer deletes some.
    pub fn object_names(&self, weed: usize, bucket: &str, prefix: &str) -> std::collections::BTreeSet<String> {
        let out = self.python(weed, &["names", bucket, prefix]);
        assert!(out.status.success(), "listing {bucket}/{prefix}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("name listing is JSON")
    }

    /// Kill server `weed` at once (SIGKILL), as a crash would.
    pub fn kill(&self, weed: usize) {
        let pid = std::fs::read_to_string(&self.regions[weed].pidfile).expect("weed pid file");
        let status = Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
        assert!(status.success(), "kill weed {}", pid.trim());
        // Wait until it is gone so that the restart can bind its ports.
        for _ in 0..100 {
            let alive = Command::new("kill").args(["-0", pid.trim()]).output().unwrap();
            if !alive.status.success() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("weed {} did not exit after SIGKILL", pid.trim());
    }

    /// Start server `weed` again on its ports and data; returns once S3 answers.
    pub fn restart(&self, weed: usize) {
        let out = Command::new(&self.regions[weed].start).output().unwrap();
        assert!(out.status.success(), "restart weed: {}", stderr(&out));
    }

    /// `restore --plan PLAN --dataset D --region R --target T`, which must succeed.
    pub fn restore_region(&self, plan: &Path, dataset: &str, region: &str, target: &Path) {
        let out = self.lifeboat(&[
            "restore",
            "--plan",
            plan.to_str().unwrap(),
            "--dataset",
            dataset,
            "--region",
            region,
            "--target",
            target.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), 0, "restore from {region}: {}", both(&out));
    }

    /// Run `lifeboat` with the SeaweedFS credentials and the test password.
    pub fn lifeboat(&self, args: &[&str]) -> Output {
        self.lifeboat_with(args, &self.secret)
    }

    pub fn lifeboat_with(&self, args: &[&str], secret: &str) -> Output {
        self.command(args, secret).output().unwrap()
    }

    pub fn command(&self, args: &[&str], secret: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        cmd.args(args)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("AWS_ACCESS_KEY_ID", &self.key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("LIFEBOAT_REPO");
        cmd
    }
}

/// Run the boto3 helper below against `endpoint`.
pub fn python_s3(endpoint: &str, key: &str, secret: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(PY_S3)
        .arg(endpoint)
        .arg(key)
        .arg(secret)
        .args(args)
        .output()
        .expect("python3 with boto3 (tests/run.sh installs it)")
}

const PY_S3: &str = r#"
import hashlib, json, sys, boto3, botocore
endpoint, key, secret, cmd, *args = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key, aws_secret_access_key=secret)
if cmd == "create-bucket":
    bucket, lock = args
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=(lock == "lock"))
elif cmd == "hashes":
    bucket, prefix = args
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix):]] = hashlib.sha256(body).hexdigest()
    print(json.dumps(out))
elif cmd == "names":
    bucket, prefix = args
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(obj["Key"][len(prefix):] for obj in page.get("Contents", []))
    print(json.dumps(out))
elif cmd == "retention":
    bucket, k = args
    r = s3.get_object_retention(Bucket=bucket, Key=k)["Retention"]
    print(json.dumps({"mode": r["Mode"], "until": r["RetainUntilDate"].isoformat()}))
elif cmd == "delete-versions":
    # Try to delete every version of one key; print what the server said for each.
    bucket, k = args
    versions = s3.list_object_versions(Bucket=bucket, Prefix=k).get("Versions", [])
    results = []
    for v in versions:
        try:
            s3.delete_object(Bucket=bucket, Key=k, VersionId=v["VersionId"])
            results.append("deleted")
        except botocore.exceptions.ClientError as err:
            results.append(err.response["Error"]["Code"])
    print(json.dumps(results))
elif cmd == "delete":
    bucket, k = args
    s3.delete_object(Bucket=bucket, Key=k)
elif cmd == "copy":
    bucket, src, dst = args
    s3.copy_object(Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": src})
elif cmd == "put-hex":
    bucket, k, data = args
    s3.put_object(Bucket=bucket, Key=k, Body=bytes.fromhex(data))
elif cmd == "get-hex":
    bucket, k = args
    sys.stdout.write(s3.get_object(Bucket=bucket, Key=k)["Body"].read().hex())
elif cmd == "keys":
    bucket, prefix = args
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [obj["Key"][len(prefix):] for obj in page.get("Contents", [])]
    print(json.dumps(sorted(keys)))
elif cmd == "get":
    bucket, k = args
    sys.stdout.write(hashlib.sha256(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest())
else:
    sys.exit(f"unknown command {cmd}")
"#;

/// sha256 of every file under `dir`, keyed by its `/`-separated path below `dir`
/// (files being written, under `.lifeboat-tmp/`, are left out).
pub fn local_hashes(dir: &Path) -> BTreeMap<String, String> {
    let script = r#"
import hashlib, json, os, sys
root = sys.argv[1]
out = {}
for base, dirs, files in os.walk(root):
    # Files being written live in .lifeboat-tmp/ and are renamed away at any moment.
    dirs[:] = [d for d in dirs if d != ".lifeboat-tmp"]
    for f in files:
        p = os.path.join(base, f)
        try:
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
        except FileNotFoundError:
            pass
print(json.dumps(out))
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Only the entries whose key starts with `prefix`.
pub fn under(map: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    map.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// How many object names two listings (name → hash) disagree on: held by one only,
/// or with different bytes.
pub fn differing_objects(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> usize {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names.into_iter().filter(|k| a.get(*k) != b.get(*k)).count()
}

/// Write `count` files of `size` random bytes under `dir`.
pub fn write_random_files(dir: &Path, count: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand::thread_rng();
    let mut buf = vec![0u8; size];
    for i in 0..count {
        rng.fill_bytes(&mut buf);
        std::fs::write(dir.join(format!("file-{i:03}.bin")), &buf).unwrap();
    }
}

/// A small tree with text, binary, empty and nested files.
pub fn write_sample_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("nested/deeper")).unwrap();
    std::fs::write(dir.join("readme.txt"), "multi-region backup\n".repeat(100)).unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
    std::fs::write(dir.join("nested/deeper/config.json"), br#"{"lr": 0.001}"#).unwrap();
    write_random_files(&dir.join("weights"), 3, 3 * 1024 * 1024 + 17);
}

/// Every file under `a` has the same bytes under `b`, and `b` has no extra files.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (left, right) = (local_hashes(a), local_hashes(b));
    assert!(!left.is_empty(), "{} is empty", a.display());
    assert_eq!(left, right, "{} and {} differ", a.display(), b.display());
}

//! The audit trail end to end, through the `lifeboat` binary: every operation leaves an
//! event, `audit verify` names the first missing, altered or reordered one, and
//! `check`/`snapshots` notice snapshots deleted or replayed behind Lifeboat's back and a
//! trail rolled back to an older copy. Each scenario runs on a local repository and on
//! SeaweedFS (`bash tests/run.sh --servers cargo test --test audit_trail`); the damage
//! is done with raw storage access (the file system, or boto3), as an attacker with
//! write access to the storage would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

mod servers;
#[macro_use]
mod support_s3;

use support_s3::{PASSWORD, WeedEnv};

/// Where the repository lives.
enum Place {
    Local(PathBuf),
    Weed { env: Box<WeedEnv>, bucket: String },
}

/// A repository, a source tree to back up, and this client's cache directory.
struct Site {
    _dir: TempDir,
    root: PathBuf,
    place: Place,
}

impl Site {
    fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let place = Place::Local(root.join("repo"));
        Site::with(dir, root, place)
    }

    fn weed(env: WeedEnv) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let bucket = env.new_bucket(0, "audit", false);
        let place = Place::Weed {
            env: Box::new(env),
            bucket,
        };
        Site::with(dir, root, place)
    }

    fn with(dir: TempDir, root: PathBuf, place: Place) -> Self {
        std::fs::create_dir_all(root.join("data")).unwrap();
        let site = Site { _dir: dir, root, place };
        site.ok(&["init", "--repo", &site.repo()]);
        site
    }

    fn repo(&self) -> String {
        match &self.place {
            Place::Local(p) => p.display().to_string(),
            Place::Weed { env, bucket } => env.address(0, bucket, "repo"),
        }
    }

    /// This client's cache (where it remembers audit checkpoints).
    fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Run `lifeboat ARGS --repo <repo>` as a client whose cache is `cache`.
    fn run_as(&self, cache: &Path, args: &[&str]) -> Output {
        let mut cmd = match &self.place {
            Place::Local(_) => Command::new(env!("CARGO_BIN_EXE_lifeboat")),
            Place::Weed { env, .. } => env.command(&[], &env.secret),
        };
        cmd.args(args)
            .current_dir(&self.root)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("XDG_CACHE_HOME", cache)
            .env_remove("LIFEBOAT_REPO")
            .output()
            .unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_as(&self.cache(), args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        out
    }

    /// Back up a new file; returns the snapshot id.
    fn backup(&self, name: &str) -> String {
        std::fs::write(self.root.join("data").join(name), name.repeat(100)).unwrap();
        let out = self.ok(&["-q", "--json", "backup", "--repo", &self.repo(), "data"]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["id"].as_str().unwrap().to_string()
    }

    fn events(&self) -> Vec<Value> {
        let out = self.run(&["--json", "audit", "log", "--repo", &self.repo()]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
        doc["events"].as_array().unwrap().clone()
    }

    fn read(&self, key: &str) -> Vec<u8> {
        match &self.place {
            Place::Local(p) => std::fs::read(p.join(key)).unwrap(),
            Place::Weed { env, bucket } => {
                let out = env.python(0, &["get-hex", bucket, &format!("repo/{key}")]);
                assert!(out.status.success(), "get {key}: {}", text(&out));
                hex::decode(out.stdout).unwrap()
            }
        }
    }

    fn write(&self, key: &str, bytes: &[u8]) {
        match &self.place {
            Place::Local(p) => std::fs::write(p.join(key), bytes).unwrap(),
            Place::Weed { env, bucket } => {
                let out = env.python(0, &["put-hex", bucket, &format!("repo/{key}"), &hex::encode(bytes)]);
                assert!(out.status.success(), "put {key}: {}", text(&out));
            }
        }
    }

    fn delete(&self, key: &str) {
        match &self.place {
            Place::Local(p) => std::fs::remove_file(p.join(key)).unwrap(),
            Place::Weed { env, bucket } => {
                let out = env.python(0, &["delete", bucket, &format!("repo/{key}")]);
                assert!(out.status.success(), "delete {key}: {}", text(&out));
            }
        }
    }
}

fn segment(seq: u64) -> String {
    format!("audit/{seq:020}")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Exit code 3, one `error:` line, and every one of `needles` on stderr.
fn expect_damage(out: &Output, needles: &[&str], what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{what}: {}", text(out));
    let errors = stderr.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "{what}: one error line expected: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{what}: {needle:?} not in {stderr}");
    }
}

fn trail_records_who_did_what(site: &Site) {
    let first = site.backup("a");
    let second = site.backup("b");
    site.ok(&["-q", "forget", "--repo", &site.repo(), "--keep-last", "1"]);
    let events = site.events();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["init", "backup", "backup", "forget"]);
    assert_eq!(events[1]["written"], serde_json::json!([first]));
    assert_eq!(events[2]["written"], serde_json::json!([second]));
    assert_eq!(events[3]["removed"], serde_json::json!([first]));
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], n as u64);
        assert_eq!(e["outcome"], "ok");
        assert!(e["actor"].as_str().unwrap().contains('@'), "{e}");
    }
    let verified = site.ok(&["audit", "verify", "--repo", &site.repo()]);
    assert!(String::from_utf8_lossy(&verified.stdout).contains("is whole: 4 event(s)"));
    let export = site.ok(&["audit", "export", "--repo", &site.repo()]);
    let lines: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let log = site.run(&["--json", "audit", "log", "--repo", &site.repo()]);
    let named: Value = serde_json::from_slice(&log.stdout).unwrap();
    assert!(
        named["repository"].as_str().is_some_and(|r| r.contains("repo")),
        "{named}"
    );
    assert!(
        lines.iter().all(|l| l["repository"] == named["repository"]),
        "{lines:?}"
    );
    assert_eq!(lines[3]["action"], "forget");
    site.ok(&["check", "--repo", &site.repo()]);
}

fn newest_snapshot_deleted(site: &Site) {
    site.backup("a");
    let newest = site.backup("b");
    site.delete(&format!("snapshots/{newest}"));
    let needles = ["deleted outside Lifeboat", newest.as_str()];
    expect_damage(&site.run(&["check", "--repo", &site.repo()]), &needles, "check");
    expect_damage(&site.run(&["snapshots", "--repo", &site.repo()]), &needles, "snapshots");
    expect_damage(
        &site.run(&["audit", "verify", "--repo", &site.repo()]),
        &needles,
        "audit verify",
    );
    let json = site.run(&["--json", "check", "--repo", &site.repo()]);
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["audit"][0]["kind"], "deleted-outside", "{doc}");
}

fn forgotten_snapshot_put_back(site: &Site) {
    let old = site.backup("a");
    site.backup("b");
    let key = format!("snapshots/{old}");
    let kept = site.read(&key);
    site.ok(&["-q", "forget", "--repo", &site.repo(), "--keep-last", "1"]);
    site.ok(&["check", "--repo", &site.repo()]);
    site.write(&key, &kept);
    let needles = ["replayed", old.as_str()];
    expect_damage(&site.run(&["check", "--repo", &site.repo()]), &needles, "check");
    expect_damage(&site.run(&["snapshots", "--repo", &site.repo()]), &needles, "snapshots");
}

fn audit_segment_deleted(site: &Site) {
    site.backup("a");
    site.backup("b");
    site.delete(&segment(1));
    let out = site.run(&["audit", "verify", "--repo", &site.repo()]);
    expect_damage(&out, &["audit events 1 to 1 are missing"], "audit verify");
    expect_damage(&site.run(&["check", "--repo", &site.repo()]), &["missing"], "check");
}

fn event_altered_or_reordered(site: &Site) {
    site.backup("a");
    site.backup("b");
    let mut bytes = site.read(&segment(1));
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    site.write(&segment(1), &bytes);
    let out = site.run(&["audit", "verify", "--repo", &site.repo()]);
    expect_damage(&out, &["audit event 1 was altered"], "altered");
    // A genuine segment put at another position is out of order.
    site.write(&segment(1), &site.read(&segment(2)));
    let out = site.run(&["audit", "verify", "--repo", &site.repo()]);
    expect_damage(&out, &["holds event 2", "reordered"], "reordered");
}

fn trail_rolled_back_to_an_older_copy(site: &Site) {
    site.backup("a");
    site.ok(&["audit", "verify", "--repo", &site.repo()]);
    let newer = site.backup("b");
    site.ok(&["audit", "verify", "--repo", &site.repo()]);
    // Put the repository back as it was before the second backup: its trail and its
    // snapshots agree with each other, so only a client that saw more can tell.
    site.delete(&segment(2));
    site.delete(&format!("snapshots/{newer}"));
    let needles = ["rolled back", "holds 2 events", "saw 3"];
    expect_damage(
        &site.run(&["audit", "verify", "--repo", &site.repo()]),
        &needles,
        "verify",
    );
    expect_damage(&site.run(&["check", "--repo", &site.repo()]), &needles, "check");
    let stranger = site.root.join("other-cache");
    let fresh = site.run_as(&stranger, &["audit", "verify", "--repo", &site.repo()]);
    assert_eq!(
        fresh.status.code(),
        Some(0),
        "a client that never saw more: {}",
        text(&fresh)
    );
    // That other client writes on; the trail now has 3 events again, but not those seen.
    std::fs::write(site.root.join("data").join("c"), "c").unwrap();
    let out = site.run_as(&stranger, &["-q", "backup", "--repo", &site.repo(), "data"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = site.run(&["audit", "verify", "--repo", &site.repo()]);
    expect_damage(&out, &["rewritten", "first 3 events differ"], "forked");
}

on_local_and_seaweedfs! {
    trail_records_who_did_what => local_trail_records_who_did_what, seaweedfs_trail_records_who_did_what;
    newest_snapshot_deleted => local_newest_snapshot_deleted_is_reported, seaweedfs_newest_snapshot_deleted_is_reported;
    forgotten_snapshot_put_back => local_forgotten_snapshot_put_back_is_replayed, seaweedfs_forgotten_snapshot_put_back_is_replayed;
    audit_segment_deleted => local_deleted_audit_segment_is_named, seaweedfs_deleted_audit_segment_is_named;
    event_altered_or_reordered => local_altered_or_reordered_event_is_named, seaweedfs_altered_or_reordered_event_is_named;
    trail_rolled_back_to_an_older_copy => local_rolled_back_trail_is_detected, seaweedfs_rolled_back_trail_is_detected;
}

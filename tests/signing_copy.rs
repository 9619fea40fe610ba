//! Signed snapshots leaving their plan: `copy` into a repository with another key (local
//! disk, and SeaweedFS through `tests/run.sh --servers`) gives the copy a manifest that
//! verifies there — the original signature carried over, or re-signed with the plan's
//! key after checking it — and `verify --repo R --trusted KEY.pub` checks a repository's
//! snapshots without a plan: exit 0 under the signer's key, 3 under another or when a
//! manifest is missing, unless `--allow-unsigned`.

mod servers;
mod support_plan;
mod support_s3;

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use support_plan::{PlanDir, dataset, plan_head, signing_section};
use support_s3::{WeedEnv, assert_same_tree, both, code, stdout, write_sample_tree};

const SOURCE_PASSWORD: &str = "copy source password";
const DEST_PASSWORD: &str = "copy destination password";

/// The plan of a signed model dataset in the local region `a`, signing with and
/// trusting only key `key`.
fn plan(key: &str) -> String {
    let private = format!("keys/{key}.pem");
    let public = format!("keys/{key}.pem.pub");
    let models = ["kind = \"model\"", "sign = true", "retention = { keep_last = 5 }"];
    plan_head(&["a"]) + &signing_section(&private, &[&public]) + &dataset("models", &["data/model"], &["a"], &models)
}

/// A folder with a signed model dataset backed up into the local region `regions/a`,
/// and two key pairs: `signing` (the plan's) and `other`.
struct Source {
    dir: PlanDir,
}

impl Source {
    /// `env`: extra environment for every run (S3 credentials for a SeaweedFS
    /// destination).
    fn new(env: Vec<(String, String)>) -> Source {
        let mut dir = PlanDir::new(SOURCE_PASSWORD).env("LIFEBOAT_TO_PASSWORD", DEST_PASSWORD);
        for (k, v) in env {
            dir = dir.env(&k, v);
        }
        write_sample_tree(&dir.path("data/model"));
        for key in ["signing", "other"] {
            dir.signing_key(key);
            dir.write(&format!("{key}.toml"), &plan(key));
        }
        let s = Source { dir };
        s.expect(&["apply", "signing.toml", "--force"], SOURCE_PASSWORD, 0);
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path(rel)
    }

    fn run(&self, args: &[&str], password: &str) -> Output {
        self.dir.run_as(args, password)
    }

    /// Runs `lifeboat ARGS` with `password`, asserts the exit code, returns all output.
    fn expect(&self, args: &[&str], password: &str, want: i32) -> String {
        both(&self.dir.expect_as(args, password, want))
    }

    /// `verify --repo` of `repo` with `extra` arguments, expecting `want`.
    fn verify(&self, repo: &str, password: &str, extra: &[&str], want: i32) -> String {
        let mut args = vec!["verify", "--repo", repo];
        args.extend_from_slice(extra);
        self.expect(&args, password, want)
    }

    fn restore(&self, repo: &str, target: &str, key: &str, want: i32) -> String {
        let args = [
            "restore",
            "--repo",
            repo,
            "latest",
            "--target",
            target,
            "--trusted",
            key,
        ];
        self.expect(&args, DEST_PASSWORD, want)
    }

    /// A new destination repository at `address`, holding nothing yet.
    fn destination(&self, address: &str) {
        self.expect(&["init", "--repo", address], DEST_PASSWORD, 0);
    }

    /// The ids of `repo`'s snapshots, oldest first.
    fn snapshot_ids(&self, repo: &str, password: &str) -> Vec<String> {
        let out = self.run(&["--json", "snapshots", "--repo", repo], password);
        assert_eq!(code(&out), 0, "{}", both(&out));
        let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let listed = doc.as_array().unwrap().iter();
        listed.map(|s| s["id"].as_str().unwrap().to_string()).collect()
    }
}

/// Copy the signed snapshot to `carry` (no key: the original signature) and `resign`
/// (re-signed with the plan's key), then check both with restore and verify.
fn copies_verify_with_the_signers_key_only(s: &Source, carry: &str, resign: &str) {
    s.destination(carry);
    s.destination(resign);
    let out = s.expect(&["copy", "--repo", "regions/a", "--to", carry], SOURCE_PASSWORD, 0);
    assert!(out.contains("with its original signature"), "{out}");
    let out = s.verify(carry, DEST_PASSWORD, &["--trusted", "keys/signing.pem.pub"], 0);
    assert!(out.contains("(the original signature of snapshot"), "{out}");
    assert!(
        out.contains("test restore of models") && out.contains(": pass"),
        "{out}"
    );
    let out = s.verify(carry, DEST_PASSWORD, &["--trusted", "keys/other.pem.pub"], 3);
    assert!(
        out.contains("REFUSED: signature does not verify under any trusted key"),
        "{out}"
    );
    s.restore(carry, "from-carry", "keys/signing.pem.pub", 0);
    assert_same_tree(&s.path("data/model"), &s.path("from-carry/model"));
    let out = s.restore(carry, "refused", "keys/other.pem.pub", 3);
    assert!(out.contains("does not verify under any trusted key"), "{out}");
    assert!(
        !s.path("refused/model").exists(),
        "nothing restored from a refused copy"
    );

    let args = ["copy", "--repo", "regions/a", "--to", resign, "--plan", "signing.toml"];
    let out = s.expect(&args, SOURCE_PASSWORD, 0);
    assert!(out.contains(", re-signed"), "{out}");
    let out = s.verify(resign, DEST_PASSWORD, &["--trusted", "keys/signing.pem.pub"], 0);
    assert!(
        out.contains("signed by key") && !out.contains("original signature"),
        "{out}"
    );
    s.verify(resign, DEST_PASSWORD, &["--trusted", "keys/other.pem.pub"], 3);
    s.restore(resign, "from-resign", "keys/signing.pem.pub", 0);
    assert_same_tree(&s.path("data/model"), &s.path("from-resign/model"));
}

#[test]
fn copied_signed_snapshots_verify_in_the_destination_with_the_trusted_key_only() {
    let s = Source::new(Vec::new());
    copies_verify_with_the_signers_key_only(&s, "dest-carry", "dest-resign");
}

#[test]
fn copied_signed_snapshots_verify_on_seaweedfs_with_the_trusted_key_only() {
    let test = "copied_signed_snapshots_verify_on_seaweedfs_with_the_trusted_key_only";
    let Some(env) = WeedEnv::from_env(test) else {
        return;
    };
    let creds = vec![
        ("AWS_ACCESS_KEY_ID".to_string(), env.key.clone()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), env.secret.clone()),
    ];
    let s = Source::new(creds);
    let bucket = env.new_bucket(0, "copy-signed", false);
    let carry = env.address(0, &bucket, "carry");
    let resign = env.address(0, &bucket, "resign");
    copies_verify_with_the_signers_key_only(&s, &carry, &resign);
    let names = env.object_names(0, &bucket, "carry/manifests/");
    assert_eq!(names.len(), 1, "the copy's manifest is stored beside it: {names:?}");
}

#[test]
fn copy_refuses_to_re_sign_a_snapshot_its_plan_does_not_trust() {
    let s = Source::new(Vec::new());
    s.destination("dest");
    let args = ["copy", "--repo", "regions/a", "--to", "dest", "--plan", "other.toml"];
    let out = s.expect(&args, SOURCE_PASSWORD, 3);
    assert!(out.contains("is not re-signed for the copy"), "{out}");
    assert!(out.contains("does not verify under any trusted key"), "{out}");
    assert!(s.snapshot_ids("dest", DEST_PASSWORD).is_empty(), "nothing was copied");
}

#[test]
fn verify_by_repository_refuses_a_missing_manifest_unless_unsigned_is_allowed() {
    let s = Source::new(Vec::new());
    let key = ["--trusted", "keys/signing.pem.pub"];
    let out = s.verify("regions/a", SOURCE_PASSWORD, &key, 0);
    assert!(out.contains("signed by key"), "{out}");
    fs::write(s.path("data/model/readme.txt"), b"changed\n").unwrap();
    s.expect(&["apply", "signing.toml", "--force"], SOURCE_PASSWORD, 0);
    let ids = s.snapshot_ids("regions/a", SOURCE_PASSWORD);
    assert_eq!(ids.len(), 2, "{ids:?}");
    fs::remove_file(s.path(&format!("regions/a/manifests/{}", ids[1]))).unwrap();
    let out = s.verify("regions/a", SOURCE_PASSWORD, &key, 3);
    assert!(out.contains("REFUSED: unsigned (no manifest)"), "{out}");
    let out = s.verify("regions/a", SOURCE_PASSWORD, &[key[0], key[1], "--allow-unsigned"], 0);
    assert!(
        out.contains("unsigned (no manifest)") && !out.contains("REFUSED"),
        "{out}"
    );
    let out = s.run(
        &["--json", "verify", "--repo", "regions/a", key[0], key[1]],
        SOURCE_PASSWORD,
    );
    assert_eq!(code(&out), 3, "{}", both(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = doc["snapshots"].as_array().unwrap();
    assert_eq!(rows[0]["signature"]["verdict"], "signed", "{doc}");
    assert_eq!(
        (rows[1]["refused"].as_bool(), rows[1]["signature"]["verdict"].as_str()),
        (Some(true), Some("unsigned"))
    );
    let restored = doc["restores"][0]["report"]["snapshot"].as_str();
    assert_eq!(
        restored,
        Some(ids[0].as_str()),
        "the newest accepted snapshot is test-restored"
    );
}

#[test]
fn a_carried_signature_holds_only_for_a_copy_of_its_snapshot() {
    let s = Source::new(Vec::new());
    s.destination("dest");
    s.expect(&["copy", "--repo", "regions/a", "--to", "dest"], SOURCE_PASSWORD, 0);
    let copied = s.snapshot_ids("dest", DEST_PASSWORD);
    // The same files, dataset and host, backed up again: only the time differs.
    s.expect(
        &["-q", "backup", "--repo", "dest", "--dataset", "models", "data/model"],
        DEST_PASSWORD,
        0,
    );
    let ids = s.snapshot_ids("dest", DEST_PASSWORD);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let manifest = |id: &str| s.path(&format!("dest/manifests/{id}"));
    fs::copy(manifest(&copied[0]), manifest(&ids[1])).unwrap();
    let out = s.verify("dest", DEST_PASSWORD, &["--trusted", "keys/signing.pem.pub"], 3);
    let moved = out.lines().find(|l| l.starts_with(&ids[1][..8])).unwrap_or_default();
    assert!(
        moved.contains("REFUSED: signed manifest does not match the snapshot: it was signed for snapshot"),
        "{out}"
    );
    let kept = out.lines().find(|l| l.starts_with(&copied[0][..8])).unwrap_or_default();
    assert!(kept.contains("(the original signature of snapshot"), "{out}");
}

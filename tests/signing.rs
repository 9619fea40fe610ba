//! Signed snapshot manifests end to end with the real binary and two local regions:
//! a signing key is generated, a `sign = true` model dataset is backed up by plan, and
//! restore, verify, `snapshots` and drills check the signature before trusting a
//! snapshot — refusing one whose manifest is missing, signed by an untrusted key, or
//! moved from another snapshot. The exported OpenSSF model signature is checked by the
//! real `model_signing` tool after a restore, and fails after one flipped byte.

mod servers;
mod support_output;
mod support_plan;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support_output::{stderr, stdout};
use support_plan::{PlanDir, dataset, plan_head, signing_section};

const PASSWORD: &str = "signing-test-password";

/// A plan folder: a model folder, a signing key pair, two regions, a signed dataset.
struct Signed {
    dir: PlanDir,
    /// The signing key's id, as `signing-key generate --json` printed it.
    key_id: String,
}

const PLAYBOOK: &str = r#"
[playbooks.rehearse]
rto = "10m"
steps = [{ kind = "restore", dataset = "models", region = "a", target = "drill-restore" }]
"#;

impl Signed {
    fn new() -> Signed {
        let dir = PlanDir::new(PASSWORD);
        let model = dir.path("data/model");
        fs::create_dir_all(model.join("sub")).unwrap();
        fs::write(model.join("config.json"), b"{\"layers\": 2}").unwrap();
        let weights: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(model.join("weights.bin"), weights).unwrap();
        fs::write(model.join("sub/tokenizer.txt"), b"a b c\n").unwrap();
        fs::write(model.join("empty"), b"").unwrap();
        let key_id = dir.signing_key("signing");
        let s = Signed { dir, key_id };
        s.write_plan("keys/signing.pem.pub");
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path(rel)
    }

    fn write_plan(&self, trusted: &str) {
        let models = ["kind = \"model\"", "sign = true", "retention = { keep_last = 5 }"];
        let plan = plan_head(&["a", "b"])
            + &signing_section("keys/signing.pem", &[trusted])
            + &dataset("models", &["data/model"], &["a", "b"], &models)
            + PLAYBOOK;
        self.dir.write("plan.toml", &plan);
    }

    fn run(&self, args: &[&str]) -> Output {
        self.dir.run(args)
    }

    /// Runs `lifeboat ARGS`, asserts the exit code, returns stdout and stderr.
    fn expect(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.dir.expect(args, code);
        (stdout(&out), stderr(&out))
    }

    fn backup(&self) {
        self.expect(&["apply", "plan.toml", "--force"], 0);
    }

    fn manifests(&self, region: &str) -> Vec<PathBuf> {
        let dir = self.path(&format!("regions/{region}/manifests"));
        let mut out: Vec<PathBuf> = fs::read_dir(dir).map_or(Vec::new(), |d| d.map(|e| e.unwrap().path()).collect());
        out.sort();
        out
    }

    fn restore(&self, region: &str, target: &str, extra: &[&str], code: i32) -> (String, String) {
        let mut args = vec![
            "restore",
            "--plan",
            "plan.toml",
            "--dataset",
            "models",
            "--region",
            region,
            "--target",
            target,
        ];
        args.extend_from_slice(extra);
        self.expect(&args, code)
    }

    fn snapshots_json(&self, region: &str, extra: &[&str]) -> Vec<Value> {
        let repo = format!("regions/{region}");
        let mut args = vec!["--json", "snapshots", "--repo", repo.as_str()];
        args.extend_from_slice(extra);
        let (stdout, _) = self.expect(&args, 0);
        serde_json::from_str::<Value>(&stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

fn same_files(a: &Path, b: &Path) {
    for rel in ["config.json", "weights.bin", "sub/tokenizer.txt", "empty"] {
        assert_eq!(fs::read(a.join(rel)).unwrap(), fs::read(b.join(rel)).unwrap(), "{rel}");
    }
}

#[test]
fn signing_key_generate_writes_an_owner_only_private_key_and_prints_the_public_one() {
    let s = Signed::new();
    let private = s.path("keys/signing.pem");
    assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(
        fs::read_to_string(&private)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    let public = fs::read_to_string(s.path("keys/signing.pem.pub")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{public}");
    let (_, stderr) = s.expect(&["signing-key", "generate", "--out", "keys/signing.pem"], 2);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(fs::read_to_string(s.path("keys/signing.pem.pub")).unwrap(), public);
    let (stdout, _) = s.expect(&["signing-key", "generate", "--out", "keys/other.pem"], 0);
    let other = fs::read_to_string(s.path("keys/other.pem.pub")).unwrap();
    assert!(stdout.ends_with(&other), "the public key is printed: {stdout}");
    assert_eq!(s.key_id.len(), 64);
}

#[test]
fn a_signed_backup_is_stored_in_every_region_and_restores_with_its_signature_checked() {
    let s = Signed::new();
    s.backup();
    assert_eq!(s.manifests("a").len(), 1);
    assert_eq!(s.manifests("a")[0].file_name(), s.manifests("b")[0].file_name());
    for region in ["a", "b"] {
        let target = format!("out-{region}");
        let (stdout, _) = s.restore(region, &target, &[], 0);
        assert!(stdout.contains("signature: signed by key"), "{stdout}");
        same_files(&s.path("data/model"), &s.path(&format!("{target}/model")));
    }
    let unchecked = s.snapshots_json("a", &[]);
    assert_eq!(unchecked[0]["signature"]["verdict"], "unchecked");
    let checked = s.snapshots_json("a", &["--trusted", "keys/signing.pem.pub"]);
    assert_eq!(checked[0]["signature"]["verdict"], "signed");
    assert_eq!(checked[0]["signature"]["signer"], s.key_id.as_str());
    assert_eq!(unchecked[0]["signature"]["claimed"][0], s.key_id.as_str());
    let (stdout, _) = s.expect(&["verify", "--plan", "plan.toml"], 0);
    assert!(stdout.contains("signature: signed by key"), "{stdout}");
    let repo_restore = |target: &str, key: &str, code: i32| {
        let args = [
            "restore",
            "--repo",
            "regions/b",
            "latest",
            "--target",
            target,
            "--trusted",
            key,
        ];
        s.expect(&args, code)
    };
    let (stdout, _) = repo_restore("by-repo", "keys/signing.pem.pub", 0);
    assert!(stdout.contains("signature: signed by key"), "{stdout}");
    same_files(&s.path("data/model"), &s.path("by-repo/model"));
    s.expect(&["signing-key", "generate", "--out", "keys/other.pem"], 0);
    let (_, stderr) = repo_restore("by-repo-other", "keys/other.pem.pub", 3);
    assert!(stderr.contains("does not verify under any trusted key"), "{stderr}");
}

#[test]
fn restore_and_verify_refuse_a_signed_datasets_snapshot_whose_manifest_was_deleted() {
    let s = Signed::new();
    s.backup();
    for m in s.manifests("a") {
        fs::remove_file(m).unwrap();
    }
    let (_, stderr) = s.restore("a", "out", &[], 3);
    assert!(stderr.contains("not trusted: unsigned (no manifest)"), "{stderr}");
    assert!(
        !s.path("out/model").exists(),
        "nothing is restored from a refused snapshot"
    );
    let (stdout, _) = s.restore("a", "out", &["--allow-unsigned"], 0);
    assert!(stdout.contains("signature: unsigned"), "{stdout}");
    let (_, stderr) = s.expect(&["verify", "--plan", "plan.toml", "--region", "a"], 3);
    assert!(stderr.contains("signature does not hold"), "{stderr}");
    s.expect(&["verify", "--plan", "plan.toml", "--region", "b"], 0);
    let listed = s.snapshots_json("a", &["--trusted", "keys/signing.pem.pub"]);
    assert_eq!(listed[0]["signature"]["verdict"], "unsigned");
}

#[test]
fn a_manifest_signed_by_a_key_the_plan_does_not_trust_is_refused() {
    let s = Signed::new();
    s.backup();
    s.expect(&["signing-key", "generate", "--out", "keys/other.pem"], 0);
    s.write_plan("keys/other.pem.pub");
    let (_, stderr) = s.restore("b", "out", &[], 3);
    assert!(stderr.contains("does not verify under any trusted key"), "{stderr}");
    let listed = s.snapshots_json("b", &["--trusted", "keys/other.pem.pub"]);
    assert_eq!(listed[0]["signature"]["verdict"], "untrusted");
}

#[test]
fn a_manifest_moved_onto_another_snapshot_is_refused() {
    let s = Signed::new();
    s.backup();
    fs::write(s.path("data/model/config.json"), b"{\"layers\": 3}").unwrap();
    s.backup();
    let manifests = s.manifests("a");
    assert_eq!(manifests.len(), 2);
    let listed = s.snapshots_json("a", &[]);
    let newest = listed.last().unwrap()["id"].as_str().unwrap().to_string();
    let (newest_path, older): (Vec<_>, Vec<_>) = manifests
        .iter()
        .partition(|p| p.file_name().unwrap().to_string_lossy() == newest);
    fs::copy(older[0], newest_path[0]).unwrap();
    let (_, stderr) = s.restore("a", "out", &[], 3);
    assert!(stderr.contains("it was signed for snapshot"), "{stderr}");
    s.restore("b", "out-b", &[], 0);
}

#[test]
fn a_drill_records_the_signature_verdict_and_refuses_an_unsigned_snapshot() {
    let s = Signed::new();
    s.backup();
    let (stdout, _) = s.expect(
        &["--json", "drill", "--plan", "plan.toml", "--state", "state", "rehearse"],
        0,
    );
    assert!(
        stdout.contains("signature: signed by key"),
        "the report records the verdict: {stdout}"
    );
    fs::remove_dir_all(s.path("drill-restore")).unwrap();
    for m in s.manifests("a") {
        fs::remove_file(m).unwrap();
    }
    let out = s.run(&["--json", "drill", "--plan", "plan.toml", "--state", "state", "rehearse"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("not trusted: unsigned (no manifest)"), "{stdout}");
    assert!(!s.path("drill-restore/model").exists());
}

#[test]
fn validate_requires_a_signing_key_for_sign_true() {
    let s = Signed::new();
    let plan = fs::read_to_string(s.path("plan.toml")).unwrap();
    // The plan without its [signing] section (which the datasets follow).
    let start = plan.find("[signing]").unwrap();
    let end = plan.find("[datasets.models]").unwrap();
    fs::write(s.path("plan.toml"), format!("{}{}", &plan[..start], &plan[end..])).unwrap();
    let (stdout, _) = s.expect(&["validate", "plan.toml"], 2);
    assert!(
        stdout.contains("[datasets.models] has `sign = true`, but the plan has no [signing] key to sign with"),
        "{stdout}"
    );
}

#[test]
fn a_restored_model_passes_model_signing_and_fails_after_one_flipped_byte() {
    let Some(tool) = std::env::var_os("LIFEBOAT_TEST_MODEL_SIGNING") else {
        servers::missing(
            "a_restored_model_passes_model_signing_and_fails_after_one_flipped_byte",
            "LIFEBOAT_TEST_MODEL_SIGNING is not set (tests/run.sh installs model-signing)",
        );
        return;
    };
    let s = Signed::new();
    s.backup();
    s.restore("a", "out", &[], 0);
    s.expect(
        &[
            "manifest",
            "export",
            "--plan",
            "plan.toml",
            "--dataset",
            "models",
            "--path",
            "model",
            "--out",
            "model.sig",
        ],
        0,
    );
    s.expect(
        &[
            "manifest",
            "export",
            "--repo",
            "regions/b",
            "latest",
            "--path",
            "model",
            "--out",
            "b.sig",
        ],
        0,
    );
    let verify = |sig: &str| {
        Command::new(&tool)
            .args([
                "verify",
                "key",
                "--signature",
                sig,
                "--public_key",
                "keys/signing.pem.pub",
                "out/model",
            ])
            .current_dir(s.dir.dir.path())
            .output()
            .expect("run model_signing")
    };
    for sig in ["model.sig", "b.sig"] {
        let ok = verify(sig);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&ok.stdout),
            String::from_utf8_lossy(&ok.stderr)
        );
        assert!(
            ok.status.success() && text.contains("Verification succeeded"),
            "{sig}: {text}"
        );
    }
    let weights = s.path("out/model/weights.bin");
    let mut bytes = fs::read(&weights).unwrap();
    bytes[123_456] ^= 0x01;
    fs::write(&weights, bytes).unwrap();
    let bad = verify("model.sig");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!bad.status.success() && text.contains("weights.bin"), "{text}");
}

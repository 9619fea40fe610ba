//! Plan folders for tests that drive the `lifeboat` binary over local regions.
//!
//! Most such tests need the same scaffolding: a temporary folder to run the binary in
//! with a password, a plan whose key comes from `LIFEBOAT_PASSWORD` and whose regions
//! live under `regions/<name>`, hourly datasets with an RPO of two hours, and often a
//! signing key and a `[signing]` section, or an alert hook that appends to a file.
//! Building them here keeps each test file down to what is particular to it.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The start of a plan: version, the key from `LIFEBOAT_PASSWORD`, and one local
/// region `regions/<name>` per name, created on first use.
pub fn plan_head(regions: &[&str]) -> String {
    let mut out = String::from("version = 1\n\n[key]\nenv = \"LIFEBOAT_PASSWORD\"\n");
    for r in regions {
        out.push_str(&format!("\n[regions.{r}]\naddress = \"regions/{r}\"\ncreate = true\n"));
    }
    out
}

/// A `[signing]` section: the private key file and the trusted public keys.
pub fn signing_section(key: &str, trusted: &[&str]) -> String {
    format!(
        "\n[signing]\nkey = {{ file = \"{key}\" }}\ntrusted = [{}]\n",
        quoted(trusted)
    )
}

/// A dataset backed up hourly from `paths` into `regions` with an RPO of two hours;
/// each of `extra` is one more `key = value` line of it.
pub fn dataset(name: &str, paths: &[&str], regions: &[&str], extra: &[&str]) -> String {
    let mut out = format!(
        "\n[datasets.{name}]\npaths = [{}]\nschedule = \"@hourly\"\nregions = [{}]\nrpo = \"2h\"\n",
        quoted(paths),
        quoted(regions)
    );
    for line in extra {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// An `[alerts]` hook appending "KIND DATASET REGION" of each alert to `file`.
pub fn alerts_to(file: &str) -> String {
    format!(
        "\n[alerts]\ncommand = [\"sh\", \"-c\", \"echo \\\"$LIFEBOAT_ALERT_KIND $LIFEBOAT_ALERT_DATASET \
         $LIFEBOAT_ALERT_REGION\\\" >> {file}\"]\n"
    )
}

fn quoted(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    items.join(", ")
}

/// A temporary folder the binary runs in, with a password and extra environment.
pub struct PlanDir {
    pub dir: tempfile::TempDir,
    password: String,
    env: Vec<(String, String)>,
}

impl PlanDir {
    pub fn new(password: &str) -> PlanDir {
        PlanDir {
            dir: tempfile::tempdir().expect("tempdir"),
            password: password.to_string(),
            env: Vec::new(),
        }
    }

    /// Set `key` to `value` for every run.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> PlanDir {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write `text` to `rel` (a plan, typically).
    pub fn write(&self, rel: &str, text: &str) {
        fs::write(self.path(rel), text).unwrap();
    }

    /// `lifeboat ARGS` in the folder with the password, no `LIFEBOAT_REPO`, and the
    /// extra environment.
    pub fn command(&self, args: &[&str], password: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        cmd.args(args)
            .env("LIFEBOAT_PASSWORD", password)
            .env_remove("LIFEBOAT_REPO")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_as(args, &self.password)
    }

    /// Run with another password than the folder's.
    pub fn run_as(&self, args: &[&str], password: &str) -> Output {
        self.command(args, password).output().expect("run lifeboat")
    }

    /// Run, assert the exit code (naming the command and all it printed), return the
    /// output.
    pub fn expect(&self, args: &[&str], code: i32) -> Output {
        self.expect_as(args, &self.password, code)
    }

    pub fn expect_as(&self, args: &[&str], password: &str, code: i32) -> Output {
        let out = self.run_as(args, password);
        assert_eq!(
            out.status.code(),
            Some(code),
            "lifeboat {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Generate the signing key pair `keys/<name>.pem` (and `.pem.pub`); returns its id.
    pub fn signing_key(&self, name: &str) -> String {
        fs::create_dir_all(self.path("keys")).unwrap();
        let out = format!("keys/{name}.pem");
        let printed = self.expect(&["--json", "signing-key", "generate", "--out", &out], 0);
        let doc: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
        doc["key_id"].as_str().expect("a key id").to_string()
    }
}

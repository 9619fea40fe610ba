//! `lifeboat verify --repo R --trusted KEY.pub`: one repository's snapshots checked
//! against the keys given, without a plan; then each dataset's newest accepted
//! snapshot test-restored.

use std::path::PathBuf;

use chrono::Utc;

use super::args::RepoArg;
use super::context::Ctx;
use super::error::{EXIT_DAMAGE, EXIT_DEGRADED, EXIT_OK, Result, bad};
use super::output::{self, bytes, note, say};
use crate::apply::verify_repo::{RepoVerify, RepoVerifyRequest, verify_repo};
use crate::engine::manifest::{Trust, TrustedKeys};
use crate::engine::verify::VerifyOptions;
use crate::format::names::DatasetName;

/// The signature options of `verify --repo`.
#[derive(Debug, Clone)]
pub struct SignatureCheck {
    pub trusted: Vec<PathBuf>,
    pub allow_unsigned: bool,
}

impl Ctx {
    pub async fn verify_repo(
        &self,
        repo: &RepoArg,
        dataset: Option<&str>,
        sample: Option<f64>,
        check: &SignatureCheck,
    ) -> Result<i32> {
        let keys = TrustedKeys::load(&check.trusted)?;
        let req = RepoVerifyRequest {
            dataset: dataset.map(DatasetName::new).transpose().map_err(bad)?,
            trust: Trust {
                required: !keys.is_empty(),
                keys,
                allow_unsigned: check.allow_unsigned,
            },
            options: VerifyOptions {
                scratch: std::env::temp_dir(),
                sample_fraction: sample.unwrap_or(1.0),
            },
            now: Utc::now(),
        };
        let r = self.open(repo).await?;
        let found = verify_repo(&r, &req).await?;
        if self.json {
            output::json(&found);
        } else {
            print_repo_verify(&found);
        }
        Ok(exit_code(&found))
    }
}

fn exit_code(found: &RepoVerify) -> i32 {
    if found.refused() {
        note!("error: a snapshot was refused: its signature does not hold under the keys given — see the report above");
        EXIT_DAMAGE
    } else if found.damaged() {
        note!("error: verification found damage — see the report above");
        EXIT_DAMAGE
    } else if found.restores.is_empty() || found.incomplete() {
        note!("error: no snapshot could be test-restored — see the report above");
        EXIT_DEGRADED
    } else {
        EXIT_OK
    }
}

fn print_repo_verify(found: &RepoVerify) {
    for s in &found.snapshots {
        let dataset = s.dataset.as_deref().unwrap_or("-");
        let verdict = match (&s.signature, &s.error) {
            (_, Some(e)) => format!("could not be checked: {e}"),
            (Some(v), None) => v.describe(),
            (None, None) => "signature not checked".into(),
        };
        let refused = if s.refused { "REFUSED: " } else { "" };
        say!(
            "{} {} {dataset}: {refused}{verdict}",
            s.snapshot.short(),
            s.time.format("%Y-%m-%d %H:%M:%S")
        );
    }
    for r in &found.restores {
        let dataset = r.dataset.as_deref().unwrap_or("-");
        match (&r.report, &r.error) {
            (Some(rep), _) => {
                let verdict = if rep.passed { "pass" } else { "FAIL" };
                say!(
                    "test restore of {dataset} (snapshot {}): {verdict}, {}/{} files, {}",
                    rep.snapshot.short(),
                    rep.files_checked,
                    rep.files_total,
                    bytes(rep.bytes_checked)
                );
                for (file, why) in &rep.damaged {
                    say!("    damaged: {file}: {why}");
                }
            }
            (None, Some(e)) => say!("test restore of {dataset}: FAILED: {e}"),
            (None, None) => {}
        }
    }
}

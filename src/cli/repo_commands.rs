//! Repository-level commands that change which snapshots and data a repository
//! holds: `copy` (re-encrypt into another repository), `forget` (retention) and
//! `prune` (delete what no snapshot uses).

use chrono::Utc;

use super::args::{PasswordArgs, RepoArg};
use super::context::Ctx;
use super::error::{EXIT_OK, Result, bad};
use super::output::{self, bytes, say};
use crate::apply::retention::{Filter, apply_retention};
use crate::apply::signing::{checkpoint_signing, trusted_keys};
use crate::engine::copy::copy_signed;
use crate::engine::manifest_copy::CopySigning;
use crate::engine::prune::{PruneOptions, prune};
use crate::plan::Retention;
use crate::repo::{RepoError, Repository};

impl Ctx {
    pub async fn copy(
        &self,
        repo: &RepoArg,
        to: &str,
        to_password_file: Option<std::path::PathBuf>,
        specs: &[String],
        signing: &CopySigning,
    ) -> Result<i32> {
        let src = self.open(repo).await?;
        let dst_pw = PasswordArgs {
            password_file: to_password_file,
            password_command: None,
        }
        .resolve_as("LIFEBOAT_TO_PASSWORD", "--to-password-file")?;
        let dst_store = self.store(&RepoArg { repo: to.to_string() }, false)?;
        let dst = match Repository::open(dst_store, &dst_pw).await {
            Err(RepoError::WrongPassword(addr)) => {
                return Err(bad(format!(
                    "wrong password for the destination repository {addr} — check LIFEBOAT_TO_PASSWORD or --to-password-file"
                )));
            }
            other => other?,
        };
        let mut ids = Vec::new();
        for spec in specs {
            ids.push(src.find_snapshot(spec).await?.0);
        }
        let report = copy_signed(&src, &dst, &ids, signing).await?;
        if self.json {
            output::json(&report);
        } else {
            for (from, to) in &report.snapshots {
                let signature = if report.resigned.contains(to) {
                    ", re-signed"
                } else if report.carried.contains(to) {
                    ", with its original signature"
                } else {
                    ""
                };
                say!("copied snapshot {} as {}{signature}", from.short(), to.short());
            }
            say!(
                "{} copied, {} already there; {} blobs, {} added",
                report.snapshots.len(),
                report.skipped,
                report.blobs,
                bytes(report.bytes)
            );
        }
        Ok(EXIT_OK)
    }

    /// How `copy` signs: with `--plan`, that plan's [signing] key and trusted keys.
    pub fn copy_signing(&self, plan: Option<&std::path::Path>) -> Result<CopySigning> {
        let Some(path) = plan else {
            return Ok(CopySigning::default());
        };
        let plan = self.load_plan(path)?;
        let Some(signing) = checkpoint_signing(&plan)? else {
            return Err(bad(format!(
                "plan {} has no [signing] key to re-sign copies with — add one, or copy without --plan to carry \
                 the original signatures over",
                path.display()
            )));
        };
        Ok(CopySigning {
            key: Some(signing.key),
            trusted: trusted_keys(&plan)?,
        })
    }

    pub async fn forget(
        &self,
        repo: &RepoArg,
        policy: &Retention,
        filter: &Filter,
        dry_run: bool,
        then_prune: bool,
    ) -> Result<i32> {
        if policy.keeps_nothing() {
            return Err(bad("this policy keeps nothing — give at least one --keep-* option"));
        }
        let r = self.open(repo).await?;
        let verdicts = apply_retention(&r, filter, policy, Utc::now(), dry_run).await?;
        let pruned = if then_prune && !dry_run {
            Some(prune(&r, &PruneOptions::default()).await?)
        } else {
            None
        };
        if self.json {
            output::json(&serde_json::json!({"dry_run": dry_run, "snapshots": verdicts, "prune": pruned}));
            return Ok(EXIT_OK);
        }
        for v in &verdicts {
            let verdict = if v.keep { "keep  " } else { "remove" };
            say!(
                "{verdict} {} {} [{}] {}",
                v.id.short(),
                v.time.format("%Y-%m-%d %H:%M:%S"),
                v.group,
                v.reasons.join(", ")
            );
        }
        let removed = verdicts.iter().filter(|v| !v.keep).count();
        let verb = if dry_run { "would remove" } else { "removed" };
        say!("{verb} {removed} of {} snapshot(s)", verdicts.len());
        if let Some(p) = pruned {
            say!("prune: deleted {} pack(s), freed {}", p.deleted, bytes(p.bytes_freed));
        }
        Ok(EXIT_OK)
    }

    pub async fn prune(&self, repo: &RepoArg, opts: &PruneOptions) -> Result<i32> {
        let r = self.open(repo).await?;
        let report = prune(&r, opts).await?;
        if self.json {
            output::json(&report);
        } else {
            let verb = if opts.dry_run { "would condemn" } else { "condemned" };
            say!(
                "{} packs; {verb} {} ({} repacked); deleted {}, freed {}; {} waiting for running backups or grace time; {} put back",
                report.packs,
                report.condemned,
                report.repacked,
                report.deleted,
                bytes(report.bytes_freed),
                report.waiting,
                report.resurrected
            );
        }
        Ok(EXIT_OK)
    }
}

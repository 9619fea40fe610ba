//! What every command function shares: output settings, the password options, and the
//! one way to open a repository or load a plan, so each command opens what it needs the
//! same way and damaged snapshots it passed over are reported once at the end.

use std::path::Path;
use std::sync::Arc;

use super::args::{PasswordArgs, RepoArg};
use super::error::{CliError, Result};
use super::output::note;
use crate::apply::ApplyError;
use crate::apply::session::{Regions, Session};
use crate::plan::{self, Plan};
use crate::repo::{RepoError, Repository, SkippedKind};
use crate::storage;

pub(super) struct Ctx {
    pub json: bool,
    pub progress: bool,
    pub password: PasswordArgs,
    /// Repositories this command opened, to report what they skipped as damaged.
    pub opened: std::sync::Mutex<Vec<Repository>>,
}

impl Ctx {
    pub(super) fn store(&self, repo: &RepoArg, create: bool) -> Result<Arc<dyn storage::Store>> {
        let options = storage::address::OpenOptions {
            create,
            ..Default::default()
        };
        match storage::address::open_with(&repo.repo, options) {
            Ok(s) => Ok(s),
            Err(e) if e.is_not_found() => Err(RepoError::NotFound(repo.repo.clone()).into()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn open(&self, repo: &RepoArg) -> Result<Repository> {
        let store = self.store(repo, false)?;
        let pw = self.password.resolve("LIFEBOAT_PASSWORD")?;
        let repo = Repository::open(store, &pw).await?;
        for s in repo.skipped() {
            eprintln!("warning: skipped {s} in {}", repo.address());
        }
        if let Ok(mut opened) = self.opened.lock() {
            opened.push(repo.clone());
        }
        Ok(repo)
    }

    /// A command that passed over damaged snapshots did its work on the others; it
    /// still ends with exit code 3, naming each skipped snapshot.
    pub(super) fn report_skipped_snapshots(&self) -> Result<()> {
        let opened = self.opened.lock().map(|o| o.clone()).unwrap_or_default();
        for repo in opened {
            let bad: Vec<_> = repo
                .skipped()
                .into_iter()
                .filter(|s| s.kind == SkippedKind::Snapshot)
                .collect();
            if bad.is_empty() {
                continue;
            }
            for s in &bad {
                eprintln!("warning: skipped {s}");
            }
            let names: Vec<&str> = bad.iter().map(|s| s.what.as_str()).collect();
            return Err(RepoError::damaged(
                format!("{} in {}", names.join(", "), repo.address()),
                "it cannot be read, so it was skipped and the other snapshots were used",
            )
            .into());
        }
        Ok(())
    }
}

/// Validate a plan file; print warnings; fail with every error listed.
fn validated(path: &Path) -> Result<Plan> {
    let (plan, diags) = plan::validate(path);
    for d in &diags {
        note!("{d}");
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    plan.ok_or_else(|| {
        CliError::BadInput(format!(
            "plan {} has {errors} error(s), listed above — fix them and run `lifeboat validate` again",
            path.display()
        ))
    })
}

/// The message for a password the plan's regions refuse, naming where it came from.
fn refused(e: ApplyError) -> CliError {
    match e {
        ApplyError::Region {
            region,
            source: RepoError::WrongPassword(addr),
        } => CliError::BadInput(format!(
            "wrong password for region {region} ({addr}) — check --password-file, --password-command, \
             LIFEBOAT_PASSWORD or the plan's [key] (the first one given is used)"
        )),
        other => other.into(),
    }
}

impl Ctx {
    /// Load and validate a plan; its password comes from the command line when given
    /// there (see `password.rs`).
    pub(super) fn load_plan(&self, path: &Path) -> Result<Plan> {
        let mut plan = validated(path)?;
        plan.key = self.password.plan_key(&plan.key);
        Ok(plan)
    }

    /// The plan opened for this command: its password resolved and every region opened
    /// once (missing ones created with `Regions::Create`), after checking that every
    /// reachable region accepts the password.
    pub(super) async fn session<'p>(&self, plan: &'p Plan, mode: Regions) -> Result<Session<'p>> {
        let session = Session::open(plan, mode).await.map_err(|e| {
            CliError::BadInput(format!(
                "{e}, or give --password-file, --password-command or LIFEBOAT_PASSWORD"
            ))
        })?;
        session.check_password().map_err(refused)?;
        Ok(session)
    }
}

//! One function per command: open what it needs, call the library, render.

use std::path::PathBuf;
use std::sync::Arc;

use super::args::{CipherArg, Cli, Command, KeyAction, PasswordArgs, RepairWhat, RepoArg};
use super::audit_commands::{audit_code, with_audit};
use super::context::Ctx;
use super::error::{EXIT_DAMAGE, EXIT_OK, Result, bad};
use super::output::{self, Bar, bytes, duration_ms, note, say};
use super::verify_commands::SignatureCheck;
use crate::apply::retention::Filter;
use crate::engine::audit::{self, event};
use crate::engine::backup::{BackupOptions, backup};
use crate::engine::check::{CheckOptions, check};
use crate::engine::manifest::{Trust, TrustedKeys, restore_checked};
use crate::engine::prune::PruneOptions;
use crate::engine::repair::{RepairOptions, repair_index};
use crate::engine::restore::{Placement, RestoreOptions};
use crate::engine::{Progress, ls};
use crate::format::anomaly::Policy;
use crate::format::audit::{Action, Record};
use crate::format::crypto::{Cipher, KdfParams};
use crate::format::names::{DatasetName, Tag};
use crate::plan::Retention;
use crate::repo::{InitOptions, Repository};

pub async fn run(cli: Cli) -> Result<i32> {
    let ctx = Ctx {
        json: cli.json,
        progress: !cli.quiet,
        password: cli.password,
        opened: std::sync::Mutex::default(),
    };
    let code = dispatch(&ctx, cli.command).await?;
    ctx.report_skipped_snapshots()?;
    Ok(code)
}

async fn dispatch(ctx: &Ctx, command: Command) -> Result<i32> {
    match command {
        Command::Init {
            repo,
            cipher,
            compression,
            pack_size,
        } => ctx.init(&repo, cipher, compression, pack_size).await,
        Command::Key { action } => ctx.key(action).await,
        Command::SigningKey { action } => ctx.signing_key(action),
        Command::Manifest { action } => ctx.manifest(action).await,
        Command::Backup {
            repo,
            tags,
            excludes,
            dataset,
            host,
            force,
            no_compression,
            paths,
        } => {
            let opts = BackupOptions {
                paths,
                excludes,
                includes: Vec::new(),
                tags: parse_names(&tags, Tag::new)?,
                dataset: dataset.as_deref().map(DatasetName::new).transpose().map_err(bad)?,
                host,
                no_compression,
                force_read: force,
                time: None,
                lag_wait: None,
                signing: None,
                skip_unchanged: None,
                anomaly: Some(Policy::default()),
            };
            ctx.backup(&repo, &opts).await
        }
        Command::Snapshots { repo, dataset, trusted } => ctx.snapshots(&repo, dataset.as_deref(), &trusted).await,
        Command::Ls { repo, snapshot } => ctx.ls(&repo, &snapshot).await,
        Command::Restore {
            repo,
            snapshot_arg,
            plan,
            dataset,
            region,
            snapshot,
            target,
            include,
            overwrite,
            allow_unsigned,
            delete,
            dry_run,
            trusted,
        } => {
            let opts = RestoreOptions {
                target,
                include,
                only: None,
                placement: if overwrite || delete {
                    Placement::Overwrite
                } else {
                    Placement::Empty
                },
                delete,
                dry_run,
            };
            match (repo, plan, dataset) {
                (Some(repo), None, _) => {
                    let spec = snapshot_arg.ok_or_else(|| bad("name the snapshot to restore, or `latest`"))?;
                    ctx.restore(&RepoArg { repo }, &spec, opts, &trusted).await
                }
                (None, Some(plan), Some(dataset)) => {
                    let spec = snapshot.or(snapshot_arg);
                    ctx.restore_by_plan(
                        &plan,
                        &dataset,
                        region.as_deref(),
                        spec.as_deref(),
                        opts,
                        allow_unsigned,
                    )
                    .await
                }
                _ => Err(bad("restore needs --repo URL SNAPSHOT, or --plan PLAN --dataset NAME")),
            }
        }
        Command::Forget {
            repo,
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
            keep_tags,
            dataset,
            tag,
            dry_run,
            prune,
        } => {
            let policy = Retention {
                keep_last,
                keep_hourly,
                keep_daily,
                keep_weekly,
                keep_monthly,
                keep_yearly,
                keep_within,
                keep_tags: parse_names(&keep_tags, Tag::new)?,
            };
            let filter = Filter {
                dataset: dataset.as_deref().map(DatasetName::new).transpose().map_err(bad)?,
                tag: tag.as_deref().map(Tag::new).transpose().map_err(bad)?,
            };
            ctx.forget(&repo, &policy, &filter, dry_run, prune).await
        }
        Command::Prune {
            repo,
            max_unused,
            grace,
            dry_run,
        } => {
            let opts = PruneOptions {
                max_unused_percent: max_unused,
                grace,
                dry_run,
            };
            ctx.prune(&repo, &opts).await
        }
        Command::Validate { path } => ctx.validate(&path),
        Command::Plan { path } => ctx.plan(&path).await,
        Command::Apply { path, dataset, force } => ctx.apply(&path, dataset.as_deref(), force).await,
        Command::Check {
            repo,
            read_data,
            read_data_subset,
        } => {
            let pct = if read_data {
                100.0
            } else {
                read_data_subset.unwrap_or(0.0)
            };
            ctx.check(&repo, pct).await
        }
        Command::Daemon(args) => ctx.daemon(args).await,
        Command::Token { action } => ctx.token(action),
        Command::Status(args) => ctx.status(args).await,
        Command::Unlock { repo } => ctx.unlock(&repo).await,
        Command::Repair {
            what:
                RepairWhat::Index {
                    repo,
                    read_all_packs,
                    dry_run,
                },
        } => {
            let opts = RepairOptions {
                read_all_packs,
                dry_run,
            };
            ctx.repair_index(&repo, &opts).await
        }
        Command::Verify {
            plan,
            repo,
            trusted,
            dataset,
            region,
            sample,
            allow_unsigned,
        } => match (plan, repo) {
            (Some(plan), _) => {
                ctx.verify(&plan, dataset.as_deref(), region.as_deref(), sample, allow_unsigned)
                    .await
            }
            (None, Some(repo)) => {
                let check = SignatureCheck {
                    trusted,
                    allow_unsigned,
                };
                ctx.verify_repo(&RepoArg { repo }, dataset.as_deref(), sample, &check)
                    .await
            }
            (None, None) => Err(bad("verify needs --plan PLAN, or --repo URL")),
        },
        Command::Drill {
            plan,
            state,
            playbook,
            record_baseline,
        } => ctx.drill(&plan, &state, &playbook, record_baseline).await,
        Command::Anomalies { plan, dataset, action } => ctx.anomalies(plan, dataset.as_deref(), action).await,
        Command::Reports { plan, region } => ctx.reports(&plan, &region).await,
        Command::Failover {
            plan,
            state,
            dry_run,
            confirm: _,
            playbook,
        } => ctx.failover(&plan, &state, &playbook, dry_run).await,
        Command::Sync { plan, dataset } => ctx.sync(&plan, dataset.as_deref()).await,
        Command::Copy {
            repo,
            to,
            to_password_file,
            plan,
            snapshots,
        } => {
            let signing = ctx.copy_signing(plan.as_deref())?;
            ctx.copy(&repo, &to, to_password_file, &snapshots, &signing).await
        }
        Command::Audit { action } => ctx.audit(action).await,
        Command::Completions { shell } => super::reference::completions(shell),
        Command::Man { command } => super::reference::man(&command),
    }
}

fn parse_names<T, E: std::fmt::Display>(
    raw: &[String],
    f: impl Fn(&str) -> std::result::Result<T, E>,
) -> Result<Vec<T>> {
    raw.iter().map(|s| f(s).map_err(bad)).collect()
}

impl Ctx {
    async fn init(&self, repo: &RepoArg, cipher: CipherArg, compression: i32, pack_size: u32) -> Result<i32> {
        let cipher = Cipher::from(cipher);
        let opts = InitOptions {
            cipher,
            compression,
            pack_size,
            ..InitOptions::default()
        };
        let pw = self.password.resolve("LIFEBOAT_PASSWORD")?;
        let store = self.store(repo, true)?;
        let r = Repository::init(store, &pw, &opts).await?;
        audit::append(&r, event(Action::Init)).await?;
        if self.json {
            output::json(&serde_json::json!({
                "repository": r.address(),
                "id": r.config().id,
                "cipher": cipher.name(),
                "compression": compression,
                "pack_size": pack_size,
            }));
        } else {
            say!(
                "created repository {} at {} ({}, zstd level {compression})",
                r.config().id.short(),
                r.address(),
                cipher.name()
            );
        }
        Ok(EXIT_OK)
    }

    async fn key(&self, action: KeyAction) -> Result<i32> {
        match action {
            KeyAction::Add {
                repo,
                new_password_file,
                label,
            } => {
                let r = self.open(&repo).await?;
                let src = PasswordArgs {
                    password_file: new_password_file,
                    password_command: None,
                };
                let pw = src.resolve_as("LIFEBOAT_NEW_PASSWORD", "--new-password-file")?;
                let id = r.add_key(&pw, KdfParams::default(), &label).await?;
                audit::append(
                    &r,
                    Record {
                        objects: vec![format!("key {id}")],
                        ..event(Action::KeyAdd)
                    },
                )
                .await?;
                if self.json {
                    output::json(&serde_json::json!({"added": id}))
                } else {
                    say!("added key {}", id.short())
                }
            }
            KeyAction::List { repo } => {
                let keys = self.open(&repo).await?.list_keys().await?;
                if self.json {
                    output::json(&keys);
                } else {
                    for k in keys {
                        let cur = if k.current { "*" } else { " " };
                        say!(
                            "{cur} {}  {}  {}  {}",
                            k.id.short(),
                            k.created.format("%Y-%m-%d %H:%M:%S"),
                            k.host,
                            k.label
                        );
                    }
                }
            }
            KeyAction::Remove { repo, id } => {
                let r = self.open(&repo).await?;
                let removed = r.remove_key(&id).await?;
                let objects = vec![format!("key {removed}")];
                audit::append(
                    &r,
                    Record {
                        objects,
                        ..event(Action::KeyRemove)
                    },
                )
                .await?;
                let locked = r.lock_days().map(|days| {
                    format!(
                        "this region keeps objects under S3 Object Lock ({days} days and more): the key object \
                         is only hidden, and its locked version stays until its retention ends, so until then \
                         anyone who can read old object versions can still open the repository with that \
                         key's password"
                    )
                });
                if self.json {
                    output::json(&serde_json::json!({"removed": removed, "locked_version_kept": locked.is_some()}))
                } else {
                    say!("removed key {}", removed.short())
                }
                if let Some(note) = locked {
                    eprintln!("warning: {note}");
                }
            }
        }
        Ok(EXIT_OK)
    }

    async fn backup(&self, repo: &RepoArg, opts: &BackupOptions) -> Result<i32> {
        let r = self.open(repo).await?;
        let progress = Arc::new(match self.progress {
            true => Progress::default(),
            false => Progress::unwatched(),
        });
        let bar = Bar::start("backup", progress.clone(), self.progress, self.json);
        let out = backup(&r, opts, progress).await;
        bar.finish();
        let out = out?;
        for w in &out.snapshot.summary.warnings {
            note!("warning: {w}");
        }
        if self.json {
            output::json(&out);
        } else {
            let s = &out.snapshot.summary;
            say!(
                "snapshot {} saved\nfiles: {} new, {} changed, {} unchanged; {} dirs\nread {} of {}, added {} to the repository in {}",
                out.id.short(),
                s.files_new,
                s.files_changed,
                s.files_unchanged,
                s.dirs,
                bytes(s.bytes_read),
                bytes(s.bytes_total),
                bytes(s.bytes_added),
                duration_ms(s.duration_ms)
            );
        }
        Ok(EXIT_OK)
    }

    async fn snapshots(&self, repo: &RepoArg, dataset: Option<&str>, trusted: &[std::path::PathBuf]) -> Result<i32> {
        let r = self.open(repo).await?;
        let all: Vec<_> = r
            .snapshots()
            .await?
            .into_iter()
            .filter(|(_, s)| dataset.is_none_or(|d| s.dataset.as_ref().is_some_and(|n| n.as_str() == d)))
            .collect();
        let signatures = self.signatures(&r, &all, trusted).await?;
        let trail = self.audit_findings(&r).await?;
        if self.json {
            let docs: Vec<_> = (all.iter().zip(&signatures))
                .map(|((id, s), sig)| serde_json::json!({"id": id, "snapshot": s, "signature": sig}))
                .collect();
            output::json(&docs);
            return Ok(audit_code(&trail, &r));
        }
        say!(
            "{:<10} {:<20} {:<12} {:<14} {:>10}  {:<8}  paths",
            "id",
            "time (UTC)",
            "host",
            "dataset",
            "size",
            "signed"
        );
        for ((id, s), sig) in all.iter().zip(&signatures) {
            let dataset = s.dataset.as_ref().map_or("-".to_string(), |d| d.to_string());
            say!(
                "{:<10} {:<20} {:<12} {:<14} {:>10}  {:<8}  {}",
                id.short(),
                s.time.format("%Y-%m-%d %H:%M:%S"),
                s.host,
                dataset,
                bytes(s.summary.bytes_total),
                sig.short(),
                s.paths.join(", ")
            );
        }
        for ((id, _), sig) in all.iter().zip(&signatures).filter(|(_, v)| v.signed()) {
            say!("{}: {}", id.short(), sig.describe());
        }
        for (id, s) in &all {
            if let Some(v) = s.summary.anomaly.as_ref().filter(|v| v.suspect) {
                let pin = v.pinned.map_or_else(String::new, |p| format!(", pins {}", p.short()));
                say!(
                    "{}: SUSPECT — anomaly score {:.1} ({}){pin}",
                    id.short(),
                    v.score,
                    v.signal
                );
            }
        }
        say!("{} snapshot(s)", all.len());
        Ok(audit_code(&trail, &r))
    }

    async fn ls(&self, repo: &RepoArg, spec: &str) -> Result<i32> {
        let r = self.open(repo).await?;
        let (id, snap) = r.find_snapshot(spec).await?;
        let index = r.load_index().await?;
        let entries = ls::list(&r, &index, &id, &snap.tree).await?;
        if self.json {
            output::json(&entries);
        } else {
            for e in entries {
                say!("{:?} {:o} {:>12} {}", e.kind, e.mode, e.size, e.path.display());
            }
        }
        Ok(EXIT_OK)
    }

    async fn restore(&self, repo: &RepoArg, spec: &str, opts: RestoreOptions, trusted: &[PathBuf]) -> Result<i32> {
        let r = self.open(repo).await?;
        let (id, snap) = r.find_snapshot(spec).await?;
        // With --trusted, the snapshot must carry a manifest signed by one of the keys.
        let trust = Trust {
            keys: TrustedKeys::load(trusted)?,
            required: !trusted.is_empty(),
            allow_unsigned: false,
        };
        let progress = Arc::new(Progress::default());
        let bar = Bar::start("restore", progress.clone(), self.progress, self.json);
        let out = restore_checked(&r, &id, &snap, &opts, &trust, progress).await;
        bar.finish();
        let (out, signature) = out?;
        if self.json {
            // The restore's own document, with `signature` added when one was checked.
            let mut doc = serde_json::to_value(&out).unwrap_or_default();
            if let (Some(map), Some(sig)) = (doc.as_object_mut(), &signature) {
                map.insert("signature".into(), serde_json::to_value(sig).unwrap_or_default());
            }
            output::json(&doc);
        } else if !output::restore_deletions(&out, &opts.target) {
            say!(
                "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {} in {}",
                id.short(),
                opts.target.display(),
                out.files,
                out.dirs,
                out.symlinks,
                bytes(out.bytes),
                duration_ms(out.duration_ms)
            );
            if let Some(sig) = &signature {
                say!("signature: {}", sig.describe());
            }
        }
        Ok(EXIT_OK)
    }

    async fn check(&self, repo: &RepoArg, pct: f64) -> Result<i32> {
        let r = self.open(repo).await?;
        let progress = Arc::new(Progress::default());
        let bar = Bar::start("check", progress.clone(), self.progress && pct > 0.0, self.json);
        let report = check(&r, &CheckOptions { read_data_percent: pct }, progress).await;
        bar.finish();
        let report = report?;
        let trail = self.audit_findings(&r).await?;
        let clean = report.is_clean() && trail.is_empty();
        // Not damage, so not in the report or the exit code, but said on stderr.
        for stale in r.stale_leases().await.unwrap_or_default() {
            note!(
                "warning: stale lock {stale} — harmless; `lifeboat unlock --repo {}` removes it",
                repo.repo
            );
        }
        if self.json {
            output::json(&with_audit(&report, &trail));
        } else {
            for e in &report.errors {
                say!("damage: {e}");
            }
            say!(
                "{} snapshots, {} trees, {} packs, {} blobs; read {} packs ({})",
                report.snapshots,
                report.trees,
                report.packs,
                report.blobs,
                report.packs_read,
                bytes(report.bytes_read)
            );
            if report.unindexed_packs > 0 {
                say!(
                    "{} pack(s) not in any index (left by an interrupted backup, or an index was lost): \
                     `lifeboat repair index` indexes them, prune removes them",
                    report.unindexed_packs
                );
            }
            say!(
                "{}",
                if clean {
                    "no errors found"
                } else {
                    "repository is damaged"
                }
            );
        }
        if clean {
            Ok(EXIT_OK)
        } else {
            note!(
                "error: check found {} problem(s) in {} — see the report above",
                report.errors.len() + trail.len(),
                r.address()
            );
            Ok(EXIT_DAMAGE)
        }
    }

    async fn repair_index(&self, repo: &RepoArg, opts: &RepairOptions) -> Result<i32> {
        let r = self.open(repo).await?;
        let report = repair_index(&r, opts).await?;
        let lost = report.packs_missing + report.packs_unreadable;
        if self.json {
            output::json(&report);
        } else {
            for p in &report.problems {
                say!("{p}");
            }
            let done = match (report.needed, report.rewritten) {
                (true, true) => "index rebuilt",
                (true, false) => "dry run: the index would be rebuilt",
                (false, _) => "the index is complete; nothing written",
            };
            say!(
                "{done}: {} packs, {} blobs; {} index object(s) damaged, {} pack header(s) read, {} pack(s) added, {} missing, {} unreadable",
                report.packs,
                report.blobs,
                report.indexes_damaged,
                report.packs_scanned,
                report.packs_added,
                report.packs_missing,
                report.packs_unreadable
            );
        }
        if lost > 0 {
            note!(
                "error: {lost} pack(s) missing or unreadable — run `lifeboat check` to see which snapshots need their data, then back up again"
            );
            return Ok(EXIT_DAMAGE);
        }
        Ok(EXIT_OK)
    }

    async fn unlock(&self, repo: &RepoArg) -> Result<i32> {
        let r = self.open(repo).await?;
        let n = r.remove_stale_leases().await?;
        if self.json {
            output::json(&serde_json::json!({"removed": n}))
        } else {
            say!("removed {n} stale lock(s)")
        }
        Ok(EXIT_OK)
    }
}

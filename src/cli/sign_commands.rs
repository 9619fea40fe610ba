//! Commands about signatures: `signing-key generate`, `manifest export`, and the
//! signature column of `snapshots`.

use std::path::{Path, PathBuf};

use super::args::{ManifestAction, RepoArg, SigningKeyAction};
use super::context::Ctx;
use super::error::{EXIT_OK, Result, bad};
use super::output::{self, say};
use crate::apply::recover::export_by_plan;
use crate::apply::session::Regions;
use crate::engine::manifest::{TrustedKeys, export_model_signature, signature_of};
use crate::engine::signing_key::generate_key_files;
use crate::format::names::DatasetName;

impl Ctx {
    pub(super) fn signing_key(&self, action: SigningKeyAction) -> Result<i32> {
        let SigningKeyAction::Generate { out } = action;
        let key = generate_key_files(&out)?;
        if self.json {
            output::json(&key);
        } else {
            say!("private key: {} (mode 0600; keep it secret)", key.private_key.display());
            say!("public key:  {} (key id {})", key.public_key.display(), key.key_id);
            print!("{}", key.public_pem);
        }
        Ok(EXIT_OK)
    }

    pub(super) async fn manifest(&self, action: ManifestAction) -> Result<i32> {
        let ManifestAction::Export {
            repo,
            snapshot_arg,
            plan,
            dataset,
            snapshot,
            path,
            out,
        } = action;
        let (from, bundle) = match (repo, plan, dataset) {
            (Some(repo), None, _) => {
                let spec = snapshot_arg.ok_or_else(|| bad("name the snapshot, or `latest`"))?;
                let r = self.open(&RepoArg { repo }).await?;
                let (id, _) = r.find_snapshot(&spec).await?;
                (
                    r.address().to_string(),
                    export_model_signature(&r, &id, &path, None).await?,
                )
            }
            (None, Some(plan_path), Some(dataset)) => {
                let plan = self.load_plan(&plan_path)?;
                let session = self.session(&plan, Regions::Existing).await?;
                let dataset = DatasetName::new(&dataset).map_err(bad)?;
                let spec = snapshot.or(snapshot_arg);
                let (region, bundle) = export_by_plan(&session, &dataset, spec.as_deref(), &path).await?;
                (format!("region {region}"), bundle)
            }
            _ => {
                return Err(bad(
                    "manifest export needs --repo URL SNAPSHOT, or --plan PLAN --dataset NAME",
                ));
            }
        };
        write_out(&out, &bundle)?;
        if self.json {
            output::json(&serde_json::json!({"path": path, "out": out, "from": from}));
        } else {
            say!("wrote the model signature of {path} from {from} to {}", out.display());
        }
        Ok(EXIT_OK)
    }

    /// The signature verdict of each listed snapshot, for `snapshots`.
    pub(super) async fn signatures(
        &self,
        r: &crate::repo::Repository,
        all: &[(crate::repo::SnapshotId, crate::repo::Snapshot)],
        trusted: &[PathBuf],
    ) -> Result<Vec<crate::engine::manifest::Verdict>> {
        let keys = TrustedKeys::load(trusted)?;
        // The index is needed only to match checked manifests against the snapshots.
        let index = if keys.is_empty() {
            None
        } else {
            Some(r.load_index().await?)
        };
        let mut out = Vec::new();
        for (id, snap) in all {
            out.push(signature_of(r, index.as_ref(), id, snap, &keys).await?);
        }
        Ok(out)
    }
}

fn write_out(out: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(out, bytes).map_err(|e| bad(format!("cannot write {}: {e}", out.display())))
}

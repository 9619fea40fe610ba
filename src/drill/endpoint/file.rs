//! `file`: render a config fragment, swap it in atomically, check, reload.
//!
//! The new file is written beside the old one and renamed over it, so a reader (nginx
//! reloading, say) sees the old or the new file, never half of one. If `check` or
//! `reload` fails, the old content is put back the same way, so a bad target cannot
//! leave the gateway with a config it refused.

use std::path::{Path, PathBuf};

use super::Change;
use crate::drill::process;
use crate::drill::template::render;
use crate::plan::Provider;

async fn write_atomically(path: &Path, content: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .map_or("endpoint".into(), |n| n.to_string_lossy().to_string());
    let tmp: PathBuf = path.with_file_name(format!(".{name}.lifeboat-tmp"));
    let written = async {
        use tokio::io::AsyncWriteExt;
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(content).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, path).await
    };
    written.await.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", path.display())
    })
}

/// Replace the file, run `check` and `reload`; put the old file back if either fails.
pub async fn swap(change: &Change<'_>) -> Result<String, String> {
    let Provider::File {
        path,
        template,
        check,
        reload,
    } = super::provider(change.endpoint, change.route)
    else {
        return Err("not a file endpoint".into());
    };
    let vars = change.vars()?;
    let content = match template {
        Some(t) => render(t, &vars),
        None => format!("{}\n", vars.target),
    };
    let old = tokio::fs::read(path).await.ok();
    write_atomically(path, content.as_bytes()).await?;
    let env = change.env()?;
    for cmd in [check, reload].into_iter().flatten() {
        if let Err(e) = process::run(cmd, &env, &change.endpoint.env).await {
            let restored = match &old {
                Some(old) => write_atomically(path, old).await.map(|_| "the old file is back"),
                None => tokio::fs::remove_file(path)
                    .await
                    .map(|_| "the new file is removed")
                    .map_err(|e| e.to_string()),
            };
            let restored = restored.unwrap_or("the old file could NOT be put back");
            return Err(format!("{e} ({restored})"));
        }
    }
    let reloaded = reload
        .as_ref()
        .map_or(String::new(), |r| format!(" and ran `{}`", r.join(" ")));
    Ok(format!("wrote {}{reloaded}", path.display()))
}

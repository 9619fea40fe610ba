//! `file`: render a config fragment, swap it in safely, read it back, check, reload.
//!
//! Lifeboat usually runs as root on the gateway host, and the directory holding the
//! fragment may be writable by others (a deploy user, the gateway's own user). So the
//! swap never trusts a name in that directory:
//! - the new content goes to a temporary file with a random name in the same directory,
//!   created with `O_CREAT|O_EXCL|O_NOFOLLOW`: a symlink or file planted at that name
//!   makes the create fail instead of redirecting the write;
//! - it gets the old file's mode and owner (a `0600 nobody` file stays so), is fsynced,
//!   renamed over the old name (a rename replaces the name, it never follows it), and
//!   the directory is fsynced so the swap survives a crash;
//! - the old file is read with `O_NOFOLLOW`, and a final name that is a symlink is
//!   refused: writing through it would let whoever controls the link choose the file,
//!   and replacing it would silently undo how the operator laid the config out.
//!
//! A reader (nginx reloading, say) sees the old or the new file, never half of one.
//! After the rename the file is read back and compared with what was written, then
//! `check` and `reload` run; if any of these fails the old content is put back the same
//! way, so a bad target cannot leave the gateway with a config it refused.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Change;
use crate::drill::process;
use crate::drill::template::render;
use crate::plan::Provider;

/// The largest fragment read back or kept for undo; config fragments are small.
const MAX_FILE: u64 = 16 << 20;
/// Mode of a file that did not exist before.
const NEW_MODE: u32 = 0o644;

/// The file as it was: its bytes, mode and owner.
#[derive(Debug, Clone)]
pub struct Current {
    pub bytes: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn refuse_link(path: &Path) -> String {
    let to = std::fs::read_link(path).map_or(String::new(), |t| format!(" (to {})", t.display()));
    format!(
        "{} is a symlink{to}: Lifeboat does not write through links — set `path` to the real file",
        path.display()
    )
}

/// Read the file without following a symlink at its name; `None` when there is none.
pub fn read_current(path: &Path) -> Result<Option<Current>, String> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refuse_link(path)),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("{} is larger than {MAX_FILE} bytes", path.display()));
    }
    Ok(Some(current(bytes, &meta)))
}

fn current(bytes: Vec<u8>, meta: &Metadata) -> Current {
    Current {
        bytes,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }
}

/// Create `path` exclusively: fails if anything, a symlink included, is at that name.
pub fn create_exclusive(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A fresh temporary file beside `path`, under a random name.
fn temp_beside(path: &Path) -> Result<(PathBuf, File), String> {
    let name = path
        .file_name()
        .map_or("endpoint".into(), |n| n.to_string_lossy().to_string());
    let mut last = None;
    for _ in 0..8 {
        let tmp = path.with_file_name(format!(".{name}.{:016x}.lifeboat-tmp", rand::random::<u64>()));
        match create_exclusive(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(format!("cannot create a temporary file beside {}: {e}", path.display())),
        }
    }
    let e = last.map_or(String::new(), |e| e.to_string());
    Err(format!("cannot create a temporary file beside {}: {e}", path.display()))
}

/// Fill the temporary file, give it the old file's mode and owner, flush it to disk.
fn fill(file: &mut File, content: &[u8], like: Option<&Current>) -> Result<(), String> {
    file.write_all(content).map_err(|e| e.to_string())?;
    let mode = like.map_or(NEW_MODE, |c| c.mode);
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set mode {mode:o}: {e}"))?;
    if let Some(c) = like {
        std::os::unix::fs::fchown(&*file, Some(c.uid), Some(c.gid)).map_err(|e| {
            format!(
                "cannot keep the owner {}:{} of the old file: {e} — run as that user or as root",
                c.uid, c.gid
            )
        })?;
    }
    file.sync_all().map_err(|e| e.to_string())
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Replace `path` with `content` as described in the module doc; `like` is the old file.
pub fn replace(path: &Path, content: &[u8], like: Option<&Current>) -> Result<(), String> {
    let (tmp, mut file) = temp_beside(path)?;
    let done = fill(&mut file, content, like)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()))
        .and_then(|()| sync_dir(path).map_err(|e| format!("cannot sync the directory: {e}")));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot replace {}: {e}", path.display()));
    }
    Ok(())
}

/// Read the file back: it must hold exactly what was written.
fn read_back(path: &Path, content: &[u8]) -> Result<(), String> {
    match read_current(path)? {
        Some(now) if now.bytes == content => Ok(()),
        Some(_) => Err(format!(
            "read-back of {} found other content than written",
            path.display()
        )),
        None => Err(format!("read-back of {}: the file is gone", path.display())),
    }
}

/// Put the old file back (or remove the new one); says how that went.
fn put_back(path: &Path, old: Option<&Current>) -> &'static str {
    let done = match old {
        Some(old) => replace(path, &old.bytes, Some(old)).map(|()| "the old file is back"),
        None => std::fs::remove_file(path)
            .map(|()| "the new file is removed")
            .map_err(|e| e.to_string()),
    };
    done.unwrap_or("the old file could NOT be put back")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("file swap did not finish: {e}"))?
}

fn content(change: &Change<'_>) -> Result<(PathBuf, Vec<u8>), String> {
    let Provider::File { path, template, .. } = super::provider(change.endpoint, change.route) else {
        return Err("not a file endpoint".into());
    };
    let vars = change.vars()?;
    let text = match template {
        Some(t) => render(t, &vars),
        None => format!("{}\n", vars.target),
    };
    Ok((path.clone(), text.into_bytes()))
}

/// Replace the file, read it back, run `check` and `reload`; put the old file back if
/// any of these fails.
pub async fn swap(change: &Change<'_>) -> Result<String, String> {
    let Provider::File { check, reload, .. } = super::provider(change.endpoint, change.route) else {
        return Err("not a file endpoint".into());
    };
    let (path, bytes) = content(change)?;
    let (p, b) = (path.clone(), bytes.clone());
    let old = blocking(move || {
        let old = read_current(&p)?;
        replace(&p, &b, old.as_ref())?;
        Ok(old)
    })
    .await?;
    let (p, b) = (path.clone(), bytes);
    let mut result = blocking(move || read_back(&p, &b)).await;
    let env = change.env()?;
    for cmd in [check, reload].into_iter().flatten() {
        if result.is_ok() {
            result = process::run(cmd, &env, &change.endpoint.env).await.map(drop);
        }
    }
    if let Err(e) = result {
        let p = path.clone();
        let restored = blocking(move || Ok(put_back(&p, old.as_ref()))).await?;
        return Err(format!("{e} ({restored})"));
    }
    let reloaded = reload
        .as_ref()
        .map_or(String::new(), |r| format!(" and ran `{}`", r.join(" ")));
    Ok(format!("wrote {} (read back){reloaded}", path.display()))
}

/// Preflight: the file can be read without following a link, its directory exists, and
/// the content for this target renders; returns what the file holds now.
pub async fn preflight(change: &Change<'_>) -> Result<String, String> {
    let (path, _) = content(change)?;
    blocking(move || {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            return Err(format!(
                "directory {} of {} does not exist",
                dir.display(),
                path.display()
            ));
        }
        Ok(match read_current(&path)? {
            Some(c) => String::from_utf8_lossy(&c.bytes).trim().to_string(),
            None => format!("{} does not exist yet", path.display()),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_create_does_not_follow_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let planted = dir.path().join("tmp-name");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert_eq!(create_exclusive(&planted).unwrap_err().kind(), ErrorKind::AlreadyExists);
        assert_eq!(
            create_exclusive(&dangling).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!dir.path().join("nowhere").exists(), "a dangling link was followed");
    }

    #[test]
    fn replace_keeps_mode_and_refuses_a_link_at_the_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream.conf");
        std::fs::write(&path, b"old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let old = read_current(&path).unwrap();
        replace(&path, b"new\n", old.as_ref()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");

        let link = dir.path().join("link.conf");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = read_current(&link).unwrap_err();
        assert!(err.contains("is a symlink") && err.contains("upstream.conf"), "{err}");
    }
}

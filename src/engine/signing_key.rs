//! `lifeboat signing-key generate`: a new manifest signing key pair on disk.
//!
//! The private key file is written as a temporary file created owner-only (0600) in the
//! destination folder, synced, then hard-linked to its name, which the kernel refuses
//! if the name exists: the key is never readable by others, not even for a moment, a
//! reader never sees half a key, and an existing key is never overwritten. The public
//! key goes beside it as `FILE.pub` the same way (mode 0644: it is public).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{EngineError, Result};
use crate::format::oms::key_hint;
use crate::format::signing::generate;

#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedKey {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    /// SHA-256 of the public key's SubjectPublicKeyInfo: how manifests name the signer.
    pub key_id: String,
    /// SHA-256 of the public key's PEM: how model signature bundles name it.
    pub bundle_hint: String,
    pub public_pem: String,
}

/// Generate a P-256 key pair into `out` (private) and `out.pub` (public).
pub fn generate_key_files(out: &Path) -> Result<GeneratedKey> {
    let (private_pem, public) = generate().map_err(|e| EngineError::Internal(e.to_string()))?;
    let mut public_path = out.as_os_str().to_owned();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    for path in [out, public_path.as_path()] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(EngineError::BadInput(format!(
                "{} already exists — choose another --out; a key is never overwritten",
                path.display()
            )));
        }
    }
    write_new(out, private_pem.as_bytes(), 0o600)?;
    write_new(&public_path, public.to_pem().as_bytes(), 0o644)?;
    Ok(GeneratedKey {
        private_key: out.to_path_buf(),
        public_key: public_path,
        key_id: public.key_id(),
        bundle_hint: key_hint(&public),
        public_pem: public.to_pem(),
    })
}

/// Create `path` with `data` and `mode` atomically, refusing an existing `path`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".lifeboat-key-{:016x}.tmp", rand::random::<u64>()));
    let io = |e: std::io::Error| EngineError::target_io(path, e);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    let written = f
        .write_all(data)
        .and_then(|_| f.sync_all())
        .and_then(|_| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    written.map_err(io)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_are_written_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("signing.pem");
        let key = generate_key_files(&out).unwrap();
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let public = fs::read_to_string(&key.public_key).unwrap();
        assert_eq!(public, key.public_pem);
        assert!(
            fs::read_to_string(&out)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let again = generate_key_files(&out).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
    }
}

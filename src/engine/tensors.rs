//! Finding the tensors of a checkpoint file before it is chunked.
//!
//! Backup asks this module, for every file it reads, whether the file is a safetensors
//! checkpoint (by its content; the `.safetensors` extension only decides whether a
//! file that is not one deserves a warning). For one that is, chunks are cut at the
//! end of the header and of every tensor, so an unchanged tensor keeps its blobs
//! whatever changed before it (docs/decisions/0010-tensor-aware-chunking.md). A file
//! that claims the format but whose header fails a check is backed up as plain bytes
//! with one warning naming it; it is never refused.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::format::safetensors::{self, Layout};

/// Most warnings a snapshot records; later ones are counted in the last.
const MAX_WARNINGS: usize = 100;

/// The tensor layout of `file` (`len` bytes), or `None` for plain bytes. A file that
/// claims to be safetensors (by its first bytes or its name) but is not valid adds a
/// warning to `warnings`. Read errors of the header are errors of the file.
pub(super) fn layout_of(
    file: &File,
    path: &Path,
    len: u64,
    warnings: &mut Vec<String>,
) -> std::io::Result<Option<Layout>> {
    let named = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let mut first = [0u8; 9];
    let got = if len >= 9 { read_at(file, &mut first, 0)? } else { 0 };
    let Some(header_len) = safetensors::declared_header_len(&first[..got]) else {
        if named {
            warn(warnings, path, "does not start with a safetensors header");
        }
        return Ok(None);
    };
    if header_len + 8 > len {
        warn(
            warnings,
            path,
            &format!("declares a {header_len}-byte header, longer than the file"),
        );
        return Ok(None);
    }
    let mut header = vec![0u8; header_len as usize];
    if read_at(file, &mut header, 8)? < header.len() {
        warn(warnings, path, "ended inside its safetensors header while being read");
        return Ok(None);
    }
    match safetensors::parse(&header, len) {
        Ok(layout) => Ok(Some(layout)),
        Err(e) => {
            warn(warnings, path, &format!("has a malformed safetensors header ({e})"));
            Ok(None)
        }
    }
}

/// Fill `buf` from `at` onwards; fewer bytes only at the end of the file.
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn warn(warnings: &mut Vec<String>, path: &Path, what: &str) {
    let text = format!(
        "{} {what} — backed up as plain bytes, without tensor-aware chunking",
        path.display()
    );
    match warnings.len() {
        n if n < MAX_WARNINGS => warnings.push(text),
        MAX_WARNINGS => warnings.push("more files with safetensors problems were backed up as plain bytes".into()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> (File, std::path::PathBuf) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        (File::open(&path).unwrap(), path)
    }

    fn checkpoint(json: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn a_valid_checkpoint_has_its_tensors_found_without_warning() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = checkpoint(r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &[7; 8]);
        let (f, path) = write(dir.path(), "model.bin", &bytes);
        let mut warnings = Vec::new();
        let layout = layout_of(&f, &path, bytes.len() as u64, &mut warnings)
            .unwrap()
            .unwrap();
        assert_eq!(layout.tensors.len(), 1);
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_broken_checkpoint_is_plain_bytes_with_one_warning_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = checkpoint(r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &[7; 8]);
        let (f, path) = write(dir.path(), "broken.safetensors", &bytes);
        let mut warnings = Vec::new();
        assert!(
            layout_of(&f, &path, bytes.len() as u64, &mut warnings)
                .unwrap()
                .is_none()
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("broken.safetensors") && warnings[0].contains("\"w\""),
            "{warnings:?}"
        );
    }

    #[test]
    fn only_files_that_claim_the_format_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let mut warnings = Vec::new();
        let (f, path) = write(dir.path(), "notes.txt", b"just some text, not a checkpoint");
        assert!(layout_of(&f, &path, 32, &mut warnings).unwrap().is_none());
        assert!(warnings.is_empty());
        let (f, path) = write(dir.path(), "empty.safetensors", b"");
        assert!(layout_of(&f, &path, 0, &mut warnings).unwrap().is_none());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("empty.safetensors"));
    }
}

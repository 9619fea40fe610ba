//! Finding the tensors of a checkpoint file before it is chunked.
//!
//! Backup asks this module, for every file it reads, whether the file is a safetensors
//! or GGUF checkpoint (by its content; the `.safetensors` and `.gguf` extensions only
//! decide whether a file that is not one deserves a warning). For one that is, chunks
//! are cut at the end of the header and at every tensor, so an unchanged tensor keeps
//! its blobs whatever changed before it (docs/decisions/0010-tensor-aware-chunking.md).
//! A file that claims a format but whose header fails a check is backed up as plain
//! bytes with one warning naming it; it is never refused.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::format::gguf::{self, GgufError};
use crate::format::safetensors;
use crate::format::tensor_layout::Layout;

/// Most warnings a snapshot records; later ones are counted in the last.
const MAX_WARNINGS: usize = 100;
/// The first read of a GGUF header; longer headers (large vocabularies) are read in
/// growing steps up to [`gguf::MAX_HEADER`].
const FIRST_GGUF_READ: u64 = 256 << 10;

/// The tensor layout of `file` (`len` bytes), or `None` for plain bytes. A file that
/// claims to be a checkpoint (by its first bytes or its name) but is not valid adds a
/// warning to `warnings`. Read errors of the header are errors of the file.
pub(super) fn layout_of(
    file: &File,
    path: &Path,
    len: u64,
    warnings: &mut Vec<String>,
) -> std::io::Result<Option<Layout>> {
    let mut first = [0u8; 9];
    let got = if len >= 9 { read_at(file, &mut first, 0)? } else { 0 };
    if gguf::is_gguf(&first[..got]) {
        return gguf_layout(file, path, len, warnings);
    }
    if let Some(header_len) = safetensors::declared_header_len(&first[..got]) {
        return safetensors_layout(file, path, len, header_len, warnings);
    }
    if let Some(format) = claimed_format(path) {
        warn(warnings, path, &format!("does not start with a {format} header"));
    }
    Ok(None)
}

/// The format a file's extension claims.
fn claimed_format(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?;
    if ext.eq_ignore_ascii_case("safetensors") {
        Some("safetensors")
    } else if ext.eq_ignore_ascii_case("gguf") {
        Some("GGUF")
    } else {
        None
    }
}

fn safetensors_layout(
    file: &File,
    path: &Path,
    len: u64,
    header_len: u64,
    warnings: &mut Vec<String>,
) -> std::io::Result<Option<Layout>> {
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

/// Read a growing prefix of the file until its GGUF header parses, fails, or the
/// prefix reaches the file's end or [`gguf::MAX_HEADER`].
fn gguf_layout(file: &File, path: &Path, len: u64, warnings: &mut Vec<String>) -> std::io::Result<Option<Layout>> {
    let most = len.min(gguf::MAX_HEADER);
    let mut want = most.min(FIRST_GGUF_READ);
    loop {
        let mut prefix = vec![0u8; want as usize];
        if read_at(file, &mut prefix, 0)? < prefix.len() {
            warn(warnings, path, "ended inside its GGUF header while being read");
            return Ok(None);
        }
        match gguf::parse(&prefix, len) {
            Ok(layout) => return Ok(Some(layout)),
            Err(GgufError::Truncated) if want < most => want = want.saturating_mul(4).min(most),
            Err(e) => {
                warn(warnings, path, &format!("has a malformed GGUF header ({e})"));
                return Ok(None);
            }
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
        MAX_WARNINGS => {
            warnings.push("more checkpoint files with malformed headers were backed up as plain bytes".into())
        }
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

    mod gguf_files {
        use super::*;
        use crate::format::gguf::TYPE_ARRAY;
        use crate::format::gguf::tests::testing::{Build, F32, Q8_0, string};

        #[test]
        fn a_gguf_file_has_its_tensors_found_without_warning() {
            let dir = tempfile::tempdir().unwrap();
            let b = Build::new().tensor("w", &[8], F32, 0).tensor("q", &[32], Q8_0, 32);
            let bytes = b.file(66);
            let (f, path) = write(dir.path(), "model.bin", &bytes);
            let mut warnings = Vec::new();
            let layout = layout_of(&f, &path, bytes.len() as u64, &mut warnings)
                .unwrap()
                .unwrap();
            let start = b.header().len() as u64;
            assert_eq!(layout.cuts(), vec![start, start + 32, start + 66]);
            assert!(warnings.is_empty(), "{warnings:?}");
        }

        #[test]
        fn a_header_longer_than_the_first_read_is_read_in_growing_steps() {
            let mut tokens = 8u32.to_le_bytes().to_vec();
            tokens.extend_from_slice(&60_000u64.to_le_bytes());
            (0..60_000).for_each(|i| string(&mut tokens, format!("token{i:05}").as_bytes()));
            let b = Build::new()
                .meta("tokenizer.ggml.tokens", TYPE_ARRAY, &tokens)
                .tensor("w", &[8], F32, 0);
            let bytes = b.file(32);
            assert!(bytes.len() as u64 > 3 * FIRST_GGUF_READ);
            let dir = tempfile::tempdir().unwrap();
            let (f, path) = write(dir.path(), "vocab.gguf", &bytes);
            let mut warnings = Vec::new();
            let layout = layout_of(&f, &path, bytes.len() as u64, &mut warnings)
                .unwrap()
                .unwrap();
            assert_eq!(layout.data_start, b.header().len() as u64);
            assert!(warnings.is_empty(), "{warnings:?}");
        }

        #[test]
        fn a_broken_or_unknown_gguf_is_plain_bytes_with_one_warning_naming_it() {
            let dir = tempfile::tempdir().unwrap();
            let cases = [
                (
                    "past-end.gguf",
                    Build::new().tensor("w", &[64], F32, 0).file(100),
                    "\"w\"",
                ),
                (
                    "odd-type.gguf",
                    Build::new().tensor("w", &[8], 31, 0).file(32),
                    "unknown ggml type 31",
                ),
                (
                    "cut.gguf",
                    Build::new().tensor("w", &[8], F32, 0).header()[..40].to_vec(),
                    "past the end",
                ),
                (
                    "not-gguf.gguf",
                    b"plain text that only has the name".to_vec(),
                    "GGUF header",
                ),
            ];
            for (name, bytes, why) in cases {
                let (f, path) = write(dir.path(), name, &bytes);
                let mut warnings = Vec::new();
                assert!(
                    layout_of(&f, &path, bytes.len() as u64, &mut warnings)
                        .unwrap()
                        .is_none()
                );
                assert_eq!(warnings.len(), 1, "{name}: {warnings:?}");
                assert!(warnings[0].contains(name) && warnings[0].contains(why), "{warnings:?}");
            }
        }
    }
}

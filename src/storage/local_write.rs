//! Writing a local object's bytes durably, under a name no one else uses.
//!
//! Every object is synced before it is linked or renamed into place, so a buffered
//! write costs twice: the kernel copies the bytes into the page cache, then writes them
//! back at `fsync`. A large object whose buffer starts on a page boundary (packs are
//! built that way, `format::pack`) is written with direct I/O instead: the disk reads
//! it from our buffer, with no copy and no page cache to fill and flush. Measured for
//! 16 MiB objects, about half the wall time and half the system time of a buffered
//! write and `fsync` (docs/benchmarks.md). The tail past the last whole page is
//! written buffered, and a file system that refuses direct I/O (or the alignment it
//! needs) gets an ordinary buffered write: the result is the same file either way.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Alignment of buffer, offset and length for direct I/O: a page satisfies every
/// logical block size a local disk uses.
const ALIGN: usize = 4096;

/// Objects shorter than this are written buffered: direct I/O pays only on large ones.
const DIRECT_MIN: usize = 256 * 1024;

/// How the bytes reached the file (for tests and for nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    Buffered,
    /// The first `n` bytes went straight to the disk, the rest through the page cache.
    Direct(usize),
}

/// Create `path` (it must not exist, owner-only) holding `data`, synced to the disk.
pub(super) fn write_synced(path: &Path, data: &[u8]) -> io::Result<Written> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let written = write_all(&mut file, data)?;
    file.sync_all()?;
    Ok(written)
}

fn write_all(file: &mut File, data: &[u8]) -> io::Result<Written> {
    let direct = direct_len(data);
    if direct == 0 || !set_direct(file, true) {
        file.write_all(data)?;
        return Ok(Written::Buffered);
    }
    let done = write_direct(file, &data[..direct])?;
    // Clearing the flag cannot fail where setting it worked; if it did, the buffered
    // write below fails on alignment and says so.
    set_direct(file, false);
    file.write_all_at(&data[done..], done as u64)?;
    Ok(if done == 0 {
        Written::Buffered
    } else {
        Written::Direct(done)
    })
}

/// Length of the prefix of `data` that may go by direct I/O: whole pages of a buffer
/// that starts on a page, when the object is large enough to be worth it.
fn direct_len(data: &[u8]) -> usize {
    let aligned = data.as_ptr().addr().is_multiple_of(ALIGN);
    if aligned && data.len() >= DIRECT_MIN {
        data.len() - data.len() % ALIGN
    } else {
        0
    }
}

/// Writes `pages` from offset 0 with direct I/O and returns how many bytes are
/// written. Stops early, without an error, where the file system refuses the request
/// (alignment it needs is larger) or a short write leaves an unaligned offset: the
/// caller writes the rest buffered.
fn write_direct(file: &File, pages: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < pages.len() && done % ALIGN == 0 {
        match file.write_at(&pages[done..], done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::InvalidInput => break,
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// Turns direct I/O on or off for `file`; `false` when the file system does not
/// support it (or the platform has no such flag).
#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> bool {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let Ok(flags) = fcntl_getfl(file) else {
        return false;
    };
    let wanted = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, wanted).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &File, _on: bool) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` bytes of a pattern whose first byte sits `skew` bytes past a page boundary.
    fn placed(len: usize, skew: usize) -> (Vec<u8>, usize) {
        let mut buf = vec![0u8; len + skew + ALIGN];
        let start = buf.as_ptr().addr().next_multiple_of(ALIGN) - buf.as_ptr().addr() + skew;
        for (i, b) in buf[start..start + len].iter_mut().enumerate() {
            *b = (i * 7 + i / 4093) as u8;
        }
        (buf, start)
    }

    fn write_and_read(len: usize, skew: usize) -> (Written, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let (buf, start) = placed(len, skew);
        let data = &buf[start..start + len];
        let how = write_synced(&path, data).unwrap();
        (how, std::fs::read(&path).unwrap() == data)
    }

    #[test]
    fn every_length_and_placement_reads_back_exactly() {
        for len in [
            0,
            1,
            ALIGN,
            DIRECT_MIN - 1,
            DIRECT_MIN,
            DIRECT_MIN + 1,
            3 * DIRECT_MIN + 4095,
        ] {
            for skew in [0, 1, 512] {
                let (how, same) = write_and_read(len, skew);
                assert!(same, "{len} bytes at skew {skew} ({how:?})");
            }
        }
    }

    #[test]
    fn small_or_unaligned_objects_are_written_buffered() {
        assert_eq!(write_and_read(DIRECT_MIN - 1, 0).0, Written::Buffered);
        assert_eq!(write_and_read(DIRECT_MIN + 1, 1).0, Written::Buffered);
    }

    /// The test directory's file system decides whether direct I/O is taken; on Linux
    /// ext4 and XFS it is, and then exactly the whole pages went that way.
    #[test]
    fn a_large_aligned_object_goes_direct_where_the_file_system_allows() {
        let len = DIRECT_MIN + 100;
        let (how, same) = write_and_read(len, 0);
        assert!(same);
        let dir = tempfile::tempdir().unwrap();
        let probe = File::create(dir.path().join("probe")).unwrap();
        if set_direct(&probe, true) {
            assert_eq!(how, Written::Direct(len - 100));
        } else {
            assert_eq!(how, Written::Buffered);
        }
    }

    #[test]
    fn an_existing_name_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        std::fs::write(&path, b"first").unwrap();
        let (buf, start) = placed(DIRECT_MIN, 0);
        let err = write_synced(&path, &buf[start..start + DIRECT_MIN]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
    }
}

//! Restoring beside a directory and swapping it in once complete.
//!
//! Drills restore into the directory a service reads again and again. Restoring over
//! the last run would meet whatever was left there (a symlink planted by the restored
//! service, stale files); restoring into a fresh owner-only directory beside it and
//! exchanging the two with one `renameat2(RENAME_EXCHANGE)` means readers see the old
//! tree or the new one, never a mix, and the old one is removed only after success.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use super::target::{is_root, remove_entry};
use crate::engine::{EngineError, Result};

/// Mode given to a swapped-in directory when there was none before it.
const NEW_TARGET_MODE: u32 = 0o755;

/// A fresh, empty, owner-only directory beside the target.
#[derive(Debug)]
pub(super) struct Beside {
    parent: OwnedFd,
    parent_path: PathBuf,
    name: OsString,
    fresh: OsString,
}

fn unique(name: &OsString, what: &str) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(format!(".lifeboat-{what}-{}", hex::encode(rand::random::<[u8; 6]>())));
    s
}

impl Beside {
    /// Make `.<name>.lifeboat-run-<random>` next to `target` with mode 0700.
    pub fn create(target: &Path) -> Result<Beside> {
        let name = target.file_name().map(OsString::from).ok_or_else(|| {
            EngineError::BadInput(format!("restore target {} must name a directory", target.display()))
        })?;
        let parent_path = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let io = |e: io::Error| EngineError::target_io(&parent_path, e);
        std::fs::create_dir_all(&parent_path).map_err(io)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let parent =
            rustix::fs::openat(rustix::fs::CWD, &parent_path, flags, Mode::empty()).map_err(|e| io(e.into()))?;
        let fresh = unique(&name, "run");
        rustix::fs::mkdirat(&parent, &fresh, Mode::from_raw_mode(0o700)).map_err(|e| io(e.into()))?;
        Ok(Beside {
            parent,
            parent_path,
            name,
            fresh,
        })
    }

    /// Where to restore.
    pub fn path(&self) -> PathBuf {
        self.parent_path.join(&self.fresh)
    }

    /// Remove the fresh directory and all it holds (after a failed restore).
    pub fn discard(&self) -> Result<()> {
        remove_entry(&self.parent, &self.fresh).map_err(|e| EngineError::target_io(&self.path(), e))
    }

    /// Put the complete restore in the target's place, then remove what was there.
    /// The new directory takes the old one's mode (and owner, as root). A target that
    /// is not a directory, a symlink included, is replaced, never followed.
    pub fn swap_in(&self) -> Result<()> {
        let target = self.parent_path.join(&self.name);
        let io = |e: io::Error| EngineError::target_io(&target, e);
        self.inherit_mode().map_err(io)?;
        let exchange = rustix::fs::renameat_with(
            &self.parent,
            &self.fresh,
            &self.parent,
            &self.name,
            RenameFlags::EXCHANGE,
        );
        let old = match exchange {
            Ok(()) => self.fresh.clone(),
            Err(Errno::NOENT) => return self.rename(&self.fresh, &self.name).map_err(io),
            Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => self.two_renames().map_err(io)?,
            Err(e) => return Err(io(e.into())),
        };
        remove_entry(&self.parent, &old).map_err(io)
    }

    fn rename(&self, from: &OsString, to: &OsString) -> io::Result<()> {
        Ok(rustix::fs::renameat_with(
            &self.parent,
            from,
            &self.parent,
            to,
            RenameFlags::NOREPLACE,
        )?)
    }

    /// Where the file system cannot exchange: move the old one aside, then the new one in.
    fn two_renames(&self) -> io::Result<OsString> {
        let aside = unique(&self.name, "old");
        self.rename(&self.name, &aside)?;
        self.rename(&self.fresh, &self.name)?;
        Ok(aside)
    }

    fn inherit_mode(&self) -> io::Result<()> {
        let fresh = rustix::fs::openat(
            &self.parent,
            &self.fresh,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let old = match rustix::fs::statat(&self.parent, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Some(st),
            Ok(_) | Err(Errno::NOENT) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(st) = &old
            && is_root()
        {
            let (uid, gid) = (
                rustix::fs::Uid::from_raw(st.st_uid),
                rustix::fs::Gid::from_raw(st.st_gid),
            );
            rustix::fs::fchown(&fresh, Some(uid), Some(gid))?;
        }
        let mode = old.map_or(NEW_TARGET_MODE, |st| st.st_mode & 0o7777);
        Ok(rustix::fs::fchmod(&fresh, Mode::from_raw_mode(mode))?)
    }
}

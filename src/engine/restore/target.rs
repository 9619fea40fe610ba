//! The restore target as an opened directory, and every write below it.
//!
//! Paths inside the target are never handed to the kernel whole: each directory is
//! opened from its parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`, and the last
//! component is created or opened relative to that descriptor, again without
//! following a symlink. An entry already in the way (a planted symlink, a file where a
//! directory belongs) is removed, never followed, so nothing a backed-up tree or a
//! previous restore left in the target can steer a write outside it. Files are made
//! fresh (`O_EXCL`) and owner-only, with their space reserved up front (`fallocate`,
//! so the file system can lay them out in one piece); every later open checks it
//! reached the very inode created. Directories once reached are kept open
//! ([`OpenDirs`]), so the walk down to them is not repeated for every file.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::dirs::OpenDirs;
use crate::engine::{EngineError, Result};
use crate::format::tree::Node;

/// Mode of files and directories until they are complete.
const PRIVATE_FILE: u32 = 0o600;
const PRIVATE_DIR: u32 = 0o700;

/// Identity of a file this restore created: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileKey(u64, u64);

/// An opened target directory; every path given to its methods is relative to it.
#[derive(Debug)]
pub(super) struct Target {
    root: OwnedFd,
    path: PathBuf,
    dirs: OpenDirs,
    /// Running as root, so owners are restored too.
    as_root: bool,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Open `name` below `parent` as a directory, refusing a symlink.
fn open_dir(parent: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(parent, name, dir_flags(), Mode::empty())?)
}

fn kind_at(parent: impl AsFd, name: &OsStr) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Remove whatever is at `name` below `parent` (a directory with all it holds),
/// following no symlink on the way.
pub(super) fn remove_entry(parent: impl AsFd, name: &OsStr) -> io::Result<()> {
    match kind_at(&parent, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let dir = open_dir(&parent, name)?;
            for child in list(&dir)? {
                remove_entry(&dir, &child)?;
            }
            Ok(rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)?)
        }
        Some(_) => Ok(rustix::fs::unlinkat(&parent, name, AtFlags::empty())?),
    }
}

/// Names in a directory, without `.` and `..`.
fn list(dir: impl AsFd) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(OsStr::from_bytes(&name).to_os_string());
        }
    }
    Ok(out)
}

/// Split a relative restore path into its directories and its last name. Tree names
/// are validated when decoded, so anything else here is a programming error.
fn split(rel: &Path) -> io::Result<(Vec<&OsStr>, &OsStr)> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a plain relative path")),
        }
    }
    let last = parts
        .pop()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))?;
    Ok((parts, last))
}

/// Give a new file its final size, its blocks allocated at once where the file system
/// can (`fallocate`), else only its length (`ftruncate`), as on file systems without it.
fn reserve(fd: impl AsFd, size: u64) -> rustix::io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    match rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, size) {
        Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => rustix::fs::ftruncate(&fd, size),
        other => other,
    }
}

pub(super) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn timestamps(ns: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Owner (when root), times, then permission bits: `chown` clears set-id bits, and the
/// mode — set-id bits included — must come last, once the content is complete.
fn apply_meta(fd: impl AsFd, node: &Node, as_root: bool) -> io::Result<()> {
    if as_root {
        let (uid, gid) = (rustix::fs::Uid::from_raw(node.uid), rustix::fs::Gid::from_raw(node.gid));
        rustix::fs::fchown(&fd, Some(uid), Some(gid))?;
    }
    rustix::fs::futimens(&fd, &timestamps(node.mtime_ns))?;
    Ok(rustix::fs::fchmod(&fd, Mode::from_raw_mode(node.mode & 0o7777))?)
}

impl Target {
    /// Open `path` (created if missing) as the target. The path itself is the
    /// operator's and is resolved once, here; nothing below it is ever followed.
    /// Unless `overwrite`, it must be empty.
    pub fn open(path: &Path, overwrite: bool) -> Result<Target> {
        let io = |e: io::Error| EngineError::target_io(path, e);
        std::fs::create_dir_all(path).map_err(io)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty()).map_err(|e| io(e.into()))?;
        if !overwrite && !list(&root).map_err(io)?.is_empty() {
            return Err(EngineError::BadInput(format!(
                "restore target {} is not empty — restore into an empty or new directory, or pass --overwrite \
                 to replace the entries the snapshot holds",
                path.display()
            )));
        }
        Ok(Target {
            root,
            path: path.to_path_buf(),
            dirs: OpenDirs::default(),
            as_root: is_root(),
        })
    }

    fn io(&self, rel: &Path) -> impl Fn(io::Error) -> EngineError + '_ {
        let shown = self.path.join(rel);
        move |e| EngineError::target_io(&shown, e)
    }

    /// The directory holding `rel`, and `rel`'s name.
    fn parent<'p>(&self, rel: &'p Path) -> io::Result<(Arc<OwnedFd>, &'p OsStr)> {
        let (_, name) = split(rel)?;
        let up = rel.parent().unwrap_or(Path::new(""));
        Ok((self.dir_at(up)?, name))
    }

    /// Directory `rel` (checked plain by [`split`]), held open or reached from its
    /// parent, one component at a time down from the target.
    fn dir_at(&self, rel: &Path) -> io::Result<Arc<OwnedFd>> {
        self.dirs.get_or_open(rel, || match (rel.parent(), rel.file_name()) {
            (Some(up), Some(name)) => open_dir(&*self.dir_at(up)?, name),
            _ => self.root.try_clone(),
        })
    }

    /// Directory `rel` (the target itself when empty), reached one component at a time.
    fn open_below(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut fd = self.root.try_clone()?;
        for c in rel.components() {
            fd = open_dir(&fd, c.as_os_str())?;
        }
        Ok(fd)
    }

    /// Make directory `rel` (owner-only until its mode is applied), replacing a
    /// symlink or file in its place; a directory already there is kept.
    pub fn make_dir(&self, rel: &Path) -> Result<()> {
        let (parent, name) = self.parent(rel).map_err(self.io(rel))?;
        let mkdir = || rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(PRIVATE_DIR));
        match mkdir() {
            Err(Errno::EXIST) if kind_at(&parent, name).map_err(self.io(rel))? != Some(FileType::Directory) => {
                self.dirs.forget(rel);
                remove_entry(&parent, name).map_err(self.io(rel))?;
                mkdir().map_err(|e| self.io(rel)(e.into()))
            }
            Err(Errno::EXIST) => Ok(()),
            other => other.map_err(|e| self.io(rel)(e.into())),
        }
    }

    /// Create file `rel` fresh, owner-only, at `size` bytes, replacing whatever is there.
    pub fn create_file(&self, rel: &Path, size: u64) -> Result<FileKey> {
        let io = self.io(rel);
        let (parent, name) = self.parent(rel).map_err(&io)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let create = || rustix::fs::openat(&parent, name, flags, Mode::from_raw_mode(PRIVATE_FILE));
        let fd = match create() {
            Err(Errno::EXIST) => {
                self.dirs.forget(rel);
                remove_entry(&parent, name).map_err(&io)?;
                create()
            }
            other => other,
        }
        .map_err(|e| io(e.into()))?;
        reserve(&fd, size).map_err(|e| io(e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
        Ok(FileKey(st.st_dev, st.st_ino))
    }

    /// Reopen a file this restore created, refusing anything that is not that inode.
    fn reopen(&self, rel: &Path, key: FileKey, access: OFlags) -> io::Result<File> {
        let (parent, name) = self.parent(rel)?;
        let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&parent, name, flags, Mode::empty())?;
        let st = rustix::fs::fstat(&fd)?;
        if FileKey(st.st_dev, st.st_ino) != key {
            return Err(io::Error::other("it was replaced during the restore"));
        }
        Ok(File::from(fd))
    }

    /// Open a file this restore created for writing its content.
    pub fn open_for_write(&self, rel: &Path, key: FileKey) -> Result<File> {
        self.reopen(rel, key, OFlags::WRONLY).map_err(self.io(rel))
    }

    /// Write `data` at `offset` of `file`, opened by [`Target::open_for_write`] as `rel`.
    pub fn write_at(&self, rel: &Path, file: &File, data: &[u8], offset: u64) -> Result<()> {
        file.write_all_at(data, offset).map_err(self.io(rel))
    }

    /// Give a complete file its recorded owner, times and mode.
    pub fn finish_file(&self, rel: &Path, key: FileKey, node: &Node) -> Result<()> {
        let io = self.io(rel);
        let file = self.reopen(rel, key, OFlags::RDONLY).map_err(&io)?;
        apply_meta(&file, node, self.as_root).map_err(&io)
    }

    /// Give a directory its recorded owner, times and mode (call deepest first).
    pub fn finish_dir(&self, rel: &Path, node: &Node) -> Result<()> {
        let io = self.io(rel);
        let (parent, name) = self.parent(rel).map_err(&io)?;
        let dir = open_dir(&parent, name).map_err(&io)?;
        apply_meta(&dir, node, self.as_root).map_err(&io)
    }

    /// Entries below the target that `keep` (paths relative to it) does not name,
    /// each listed once at its highest point: an unnamed directory goes whole. Only
    /// directories named in `keep` are entered, each opened without following a
    /// symlink, so nothing outside the target is ever listed.
    pub fn extras(&self, keep: &HashSet<PathBuf>) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        // Paths, not descriptors, wait on the stack: a wide tree holds few files open.
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = self.open_below(&rel).map_err(self.io(&rel))?;
            for name in list(&dir).map_err(self.io(&rel))? {
                let child = rel.join(&name);
                if !keep.contains(&child) {
                    out.push(child);
                } else if kind_at(&dir, &name).map_err(self.io(&child))? == Some(FileType::Directory) {
                    stack.push(child);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove a file (e.g. one that could not be restored intact).
    pub fn remove(&self, rel: &Path) -> Result<()> {
        let (parent, name) = self.parent(rel).map_err(self.io(rel))?;
        self.dirs.forget(rel);
        remove_entry(&parent, name).map_err(self.io(rel))
    }

    /// Create symlink `rel` pointing at `dest` (any bytes: it is data, never followed),
    /// replacing whatever is there, and give the link itself its owner and times.
    pub fn symlink(&self, rel: &Path, dest: &OsStr, node: &Node) -> Result<()> {
        let io = self.io(rel);
        let (parent, name) = self.parent(rel).map_err(&io)?;
        let link = || rustix::fs::symlinkat(dest, &parent, name);
        match link() {
            Err(Errno::EXIST) => {
                self.dirs.forget(rel);
                remove_entry(&parent, name).map_err(&io)?;
                link()
            }
            other => other,
        }
        .map_err(|e| io(e.into()))?;
        if self.as_root {
            let (uid, gid) = (rustix::fs::Uid::from_raw(node.uid), rustix::fs::Gid::from_raw(node.gid));
            rustix::fs::chownat(&parent, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io(e.into()))?;
        }
        rustix::fs::utimensat(&parent, name, &timestamps(node.mtime_ns), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io(e.into()))
    }
}

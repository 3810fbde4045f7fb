//! Guards the upload directory and every file the server opens in it.
//!
//! - The directory is opened once (`O_DIRECTORY | O_NOFOLLOW`) and every
//!   file is reached relative to that descriptor (`openat`, `renameat`,
//!   `unlinkat`): renaming or replacing the path later changes nothing.
//! - A directory the server creates is `0700` (`0750` if the file mode
//!   gives the group read access); an existing one that is not owned by the
//!   server's user or is writable by group or others is refused at start.
//! - New files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode `0600`
//!   by default; an existing partial upload is opened with `O_NOFOLLOW` and
//!   used only if it is a regular file with one link, owned by the server.
//!   A planted symlink or hard link is never written through or read.
//! - Storing under the final name is `renameat2(RENAME_NOREPLACE)` unless
//!   overwriting was allowed: an existing file is never replaced by accident.

use std::fs::{DirBuilder, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};

/// The upload directory, held open.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    file_mode: Mode,
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn refused(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, msg)
}

impl Dir {
    /// Opens `path` (creating it with a private mode if missing) and checks
    /// nobody else can write into it.
    pub fn open(path: &Path, file_mode: u32) -> io::Result<Dir> {
        let dir_mode = 0o700 | if file_mode & 0o040 != 0 { 0o050 } else { 0 };
        match DirBuilder::new().mode(dir_mode).create(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty())?;
        let st = rustix::fs::fstat(&fd)?;
        if st.st_uid != euid() {
            let msg = format!("{} is not owned by this server's user", path.display());
            return Err(refused(msg));
        }
        if st.st_mode & 0o022 != 0 {
            let msg = format!(
                "{} is writable by others (mode {:o}): run `chmod go-w` on it",
                path.display(),
                st.st_mode & 0o7777
            );
            return Err(refused(msg));
        }
        let file_mode = Mode::from_raw_mode(file_mode & 0o666);
        let path = path.to_path_buf();
        Ok(Dir {
            fd,
            path,
            file_mode,
        })
    }

    /// The directory's path, for messages and listing.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `name`, which must not exist in any form (not even a symlink).
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let fd = rustix::fs::openat(&self.fd, name, flags | OFlags::CLOEXEC, self.file_mode)?;
        Ok(File::from(fd))
    }

    /// Opens an existing `name` for reading and writing if it is one of the
    /// server's own files; `Ok(None)` if it does not exist.
    pub fn open_own(&self, name: &str) -> io::Result<Option<File>> {
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => {
                let f = File::from(fd);
                check_own(&f, name)?;
                Ok(Some(f))
            }
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(refused(format!("{name}: not a file of this server ({e})"))),
        }
    }

    /// True if anything (file, directory, symlink) is called `name`.
    pub fn exists(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Identity (device, inode) of what `name` is now, without following it.
    pub fn identity(&self, name: &str) -> Option<(u64, u64)> {
        let st = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        Some((st.st_dev as u64, st.st_ino as u64))
    }

    /// Renames `from` to `to`; fails with `AlreadyExists` if `to` exists and
    /// `replace` is false.
    pub fn rename(&self, from: &str, to: &str, replace: bool) -> io::Result<()> {
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        Ok(rustix::fs::renameat_with(
            &self.fd, from, &self.fd, to, flags,
        )?)
    }

    /// Removes the file `name`.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Makes renames and removals in the directory durable.
    pub fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.fd)?)
    }

    /// Bytes an unprivileged user may still write on the directory's disk.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let st = rustix::fs::fstatvfs(&self.fd)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Names of the entries in the directory (read through its path; every
    /// use of a name goes through the descriptor again).
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }
}

/// Refuses anything but a regular file with one link owned by the server.
pub fn check_own(f: &File, name: &str) -> io::Result<()> {
    let st = rustix::fs::fstat(f)?;
    let regular = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
    if !regular || st.st_nlink != 1 || st.st_uid != euid() {
        return Err(refused(format!(
            "{name}: not a regular file with one link owned by this server"
        )));
    }
    Ok(())
}

/// A temporary file of one upload: removed when dropped unless kept for a
/// resume or renamed into place.
#[derive(Debug)]
pub struct Temp {
    pub dir: Arc<Dir>,
    pub name: String,
    pub file: File,
    /// Keyed by name, size and SHA-256: may be continued by a later upload.
    pub resumable: bool,
    keep: bool,
}

impl Temp {
    pub fn new(dir: Arc<Dir>, name: String, file: File, resumable: bool) -> Temp {
        Temp {
            dir,
            name,
            file,
            resumable,
            keep: false,
        }
    }

    /// Leaves a resumable file with data in it in place when this is
    /// dropped; its length if so.
    pub fn keep_if_resumable(&mut self) -> Option<u64> {
        let have = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        self.keep = self.resumable && have > 0;
        self.keep.then_some(have)
    }

    /// Renames the file to `final_name` (see [`Dir::rename`]).
    pub fn commit(mut self, final_name: &str, replace: bool) -> io::Result<()> {
        self.dir.rename(&self.name, final_name, replace)?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep
            && let Err(e) = self.dir.remove(&self.name)
        {
            log::warn!("removing {}: {e}", self.name);
        }
    }
}

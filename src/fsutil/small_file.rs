//! Small files read from outside: docker's `config.json` and `daemon.json`, `.hoistignore`,
//! build files, CA certificates and client keys, a layout's `oci-layout` and `index.json`, and
//! hoist's own records. Each is read only when it is a regular file (a symlink to one is
//! followed unless the caller says otherwise) of at most a given size: a FIFO would block the
//! read forever and a device such as `/dev/zero` never ends, so both are refused at once with
//! an error naming the file. [`open_regular`] is the same check for files read in parts
//! (image archives).

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Why a small file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It is not a regular file: a FIFO, a device, a socket, a directory, or a symlink where
    /// links are not followed.
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    /// It is larger than the most hoist reads of it.
    #[error("it is larger than {0} bytes")]
    TooLarge(u64),
    /// The operating system's error (`NotFound` among them).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ReadError {
    /// Whether there is no file at the path.
    pub fn is_missing(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// The library's error for the file `what` (e.g. "docker config") at `path`: a missing or
    /// refused file is bad input, naming the file, why and the fix; anything else an I/O error.
    pub fn into_error(self, what: &'static str, path: &Path) -> Error {
        let fix = match self {
            ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound => {
                return Error::invalid(what, path.display().to_string(), "it does not exist; check the path")
            }
            ReadError::Io(e) => return Error::io("read", path, e),
            ReadError::NotRegular("symlink") => {
                "hoist reads it only as a regular file, not through a symlink (which could point anywhere); put the file itself there"
            }
            ReadError::NotRegular(_) => "hoist reads it only as a regular file (or a symlink to one); replace it",
            ReadError::TooLarge(_) => "the most hoist reads of it; check that it is the right file",
        };
        Error::invalid(what, path.display().to_string(), format!("{self}; {fix}"))
    }
}

/// Reads the file at `path` whole when it is a regular file, or a symlink to one, of at most
/// `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    read_with(path, limit, 0)
}

/// [`read`], refusing a symlink at `path` itself (a layout's files and hoist's own records,
/// where a link could point anywhere).
pub fn read_unlinked(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    read_with(path, limit, libc::O_NOFOLLOW)
}

/// [`read`] for a file that may be absent: `None` when there is none; a refused file is
/// [`Error::Invalid`] naming it as `what`.
pub fn read_optional(path: &Path, limit: u64, what: &'static str) -> Result<Option<Vec<u8>>> {
    match read(path, limit) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_missing() => Ok(None),
        Err(e) => Err(e.into_error(what, path)),
    }
}

/// Opens the file at `path` for reading when it is a regular file or a symlink to one, and
/// gives its size: a FIFO, a device or a directory is refused without blocking.
pub fn open_regular(path: &Path) -> Result<(File, u64), ReadError> {
    open_with(path, 0)
}

fn open_with(path: &Path, flags: libc::c_int) -> Result<(File, u64), ReadError> {
    // Opening a FIFO for reading waits for a writer unless O_NONBLOCK is given; O_NOCTTY keeps
    // a terminal device from becoming the controlling terminal. Neither changes how a regular
    // file reads.
    let file =
        OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | flags).open(path).map_err(
            |e| match e.raw_os_error() {
                Some(libc::ELOOP) if flags & libc::O_NOFOLLOW != 0 => ReadError::NotRegular("symlink"),
                _ => ReadError::Io(e),
            },
        )?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind(meta.file_type())));
    }
    blocking(&file)?;
    Ok((file, meta.len()))
}

/// Clears `O_NONBLOCK` on `file`, opened with it so as not to wait on a FIFO: a regular file
/// found is then read as any other (on every file system).
fn blocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: the descriptor is open for as long as `file` is borrowed, and neither call reads
    // or writes memory of ours.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn read_with(path: &Path, limit: u64, flags: libc::c_int) -> Result<Vec<u8>, ReadError> {
    let (file, size) = open_with(path, flags)?;
    if size > limit {
        return Err(ReadError::TooLarge(limit));
    }
    // The size said is only a hint (a file may grow, procfs says 0): the read itself is capped.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(bytes)
}

/// What kind of file this is, in words: "fifo", "character device", "directory", …
pub fn kind(file_type: FileType) -> &'static str {
    if file_type.is_file() {
        "regular file"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_everything_else_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{}").unwrap();
        assert_eq!(read(&file, 2).unwrap(), b"{}");
        assert!(matches!(read(&file, 1), Err(ReadError::TooLarge(1))));
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read(&link, 2).unwrap(), b"{}", "a symlink to a regular file is followed");
        assert!(matches!(read_unlinked(&link, 2), Err(ReadError::NotRegular("symlink"))));
        assert!(matches!(read(dir.path(), 2), Err(ReadError::NotRegular("directory"))));
        assert!(matches!(read(Path::new("/dev/zero"), 1 << 20), Err(ReadError::NotRegular("character device"))));
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(matches!(read(&fifo, 2), Err(ReadError::NotRegular("fifo"))), "refused without waiting for a writer");
        let missing = read_optional(&dir.path().join("absent"), 2, "docker config").unwrap();
        assert!(missing.is_none());
        let refused = read_optional(Path::new("/dev/zero"), 2, "docker config").unwrap_err();
        assert!(matches!(refused, Error::Invalid { .. }) && refused.to_string().contains("/dev/zero"), "{refused}");
    }

    #[test]
    fn a_regular_file_is_handed_on_without_o_nonblock() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.tar");
        std::fs::write(&path, "tar").unwrap();
        let (file, size) = open_regular(&path).unwrap();
        // SAFETY: a valid descriptor; the call touches no memory of ours.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!((size, flags & libc::O_NONBLOCK), (3, 0));
    }
}

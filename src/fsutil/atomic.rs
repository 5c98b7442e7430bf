//! Files replaced all at once: the new content goes to a temporary file in the target's
//! directory (or one beside it on the same file system), is synced to disk and renamed over
//! the target ([`NamedTempFile::persist`]). Readers see the old file or the new one, never a
//! part of it, and a crash leaves one of the two; [`write()`] also syncs the directory, so that
//! the rename itself survives a crash.

use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::{Error, IoContext, Result};

/// Who may read a file written here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `0600`: its owner only (docker's `config.json`, hoist's own records).
    Private,
    /// `0644` less the umask, as other tools write files that others read (layouts).
    Shared,
}

impl Mode {
    fn permissions(self) -> Permissions {
        Permissions::from_mode(match self {
            Mode::Private => 0o600,
            Mode::Shared => 0o644,
        })
    }
}

/// A new temporary file in `dir`, created with `mode` (less the umask), deleted when dropped
/// unless it is [`persist`]ed.
pub fn temp_in(dir: &Path, mode: Mode) -> Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".hoist-")
        .permissions(mode.permissions())
        .tempfile_in(dir)
        .at("create a temporary file in", dir)
}

/// Makes `file` the file at `path`: syncs its content to disk, then renames it over whatever
/// is at `path` (a symlink there is replaced, not followed). `path` must be on `file`'s file
/// system.
pub fn persist(file: NamedTempFile, path: &Path) -> Result<()> {
    persist_open(file, path).map(drop)
}

/// [`persist`], keeping the file open: what was written is read through it, whatever happens
/// to `path` afterwards.
pub fn persist_open(file: NamedTempFile, path: &Path) -> Result<File> {
    file.as_file().sync_all().at("write", path)?;
    file.persist(path).map_err(|e| Error::io("write", path, e.error))
}

/// Syncs the directory `dir`, so that the renames in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|dir| dir.sync_all()).at("sync", dir)
}

/// Replaces the file at `path` with `bytes`, all at once: a temporary file beside it, created
/// with `mode`, written, synced and [`persist`]ed; then the directory is synced. The directory
/// must exist.
pub fn write(path: &Path, bytes: &[u8], mode: Mode) -> Result<()> {
    let dir = parent(path);
    let mut file = temp_in(dir, mode)?;
    file.write_all(bytes).at("write", path)?;
    persist(file, path)?;
    sync_dir(dir)
}

/// The directory `path` is in: `.` for a bare file name.
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        write(&path, b"old", Mode::Shared).unwrap();
        write(&path, b"new", Mode::Shared).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn modes_are_private_or_shared_less_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("config.json");
        write(&private, b"{}", Mode::Private).unwrap();
        assert_eq!(mode_of(&private), 0o600);
        let shared = dir.path().join("oci-layout");
        write(&shared, b"{}", Mode::Shared).unwrap();
        // The test process's umask takes bits away, never adds them.
        assert_eq!(mode_of(&shared) & !0o644, 0);
        assert_eq!(mode_of(&shared) & 0o600, 0o600);
    }

    #[test]
    fn a_symlink_at_the_path_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "kept").unwrap();
        let link = dir.path().join("index.json");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        write(&link, b"new", Mode::Shared).unwrap();
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"kept");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_temporary_that_is_not_persisted_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut temp = temp_in(dir.path(), Mode::Private).unwrap();
        temp.write_all(b"half").unwrap();
        drop(temp);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(write(&dir.path().join("no-such-dir/file"), b"x", Mode::Private).is_err(), "the directory must exist");
    }
}

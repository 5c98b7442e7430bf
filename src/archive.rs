//! Tar archives of images: reading entries of a tar file by name without unpacking it, and
//! writing a tar beside its target and renaming it into place when complete.
//!
//! A tar has no table of contents, so [`TarIndex`] walks the headers once (skipping the data
//! with seeks) and remembers where each file's bytes start. A blob is then a byte range of the
//! tar file, streamed like any other file: no copy to a temporary directory, no blob in memory,
//! and reads can start at any offset (resumable uploads work as they do from a layout).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::blob::held_chunks;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::atomic::{self, Mode};

/// Symbolic and hard links followed at most this many times.
const MAX_LINKS: usize = 8;

/// What a name in the tar is.
#[derive(Clone, Debug)]
enum Entry {
    /// A regular file: where its bytes start in the tar file, and how many there are.
    File { offset: u64, size: u64 },
    /// A link to another name in the tar.
    Link(String),
}

/// The files of a tar archive by name, for reading ranges of the tar file. The file is the one
/// opened and checked (a regular file) once: a path replaced since is not read.
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    file: Arc<File>,
    entries: HashMap<String, Entry>,
}

impl TarIndex {
    /// Walks the headers of the tar at `path`.
    pub fn open(path: &Path) -> Result<TarIndex> {
        // Blobs are read as byte ranges of the file: only a regular file will do, and a FIFO
        // is refused at once rather than waited on.
        let (file, _) = crate::fsutil::small_file::open_regular(path).map_err(|e| e.into_error("archive", path))?;
        let corrupt = |e: std::io::Error| Error::CorruptArchive {
            path: path.to_path_buf(),
            reason: format!("not a readable tar: {e}"),
        };
        let mut archive = tar::Archive::new(&file);
        let mut entries = HashMap::new();
        for entry in archive.entries_with_seek().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            let name = normalize(&entry.path().map_err(corrupt)?.to_string_lossy());
            let kind = entry.header().entry_type();
            if kind.is_file() {
                entries.insert(name, Entry::File { offset: entry.raw_file_position(), size: entry.size() });
            } else if kind.is_symlink() || kind.is_hard_link() {
                let Some(target) = entry.link_name().map_err(corrupt)? else { continue };
                let target = target.to_string_lossy();
                let resolved = match (kind.is_symlink(), name.rsplit_once('/')) {
                    (true, Some((parent, _))) if !target.starts_with('/') => normalize(&format!("{parent}/{target}")),
                    _ => normalize(&target),
                };
                entries.insert(name, Entry::Link(resolved));
            }
        }
        Ok(TarIndex { path: path.to_path_buf(), file: Arc::new(file), entries })
    }

    /// The tar file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the file `name` starts in the tar and its size, links followed.
    pub fn find(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = normalize(name);
        for _ in 0..=MAX_LINKS {
            match self.entries.get(&name)? {
                Entry::File { offset, size } => return Some((*offset, *size)),
                Entry::Link(target) => name = target.clone(),
            }
        }
        None
    }

    /// `length` bytes of the tar from `start`, read in chunks as they are asked for.
    pub fn range(&self, start: u64, length: u64) -> BoxStream<'static, Result<Bytes>> {
        held_chunks(Arc::clone(&self.file), self.path.clone(), start, length)
    }

    fn reader(&self, at: u64) -> ReadAt<'_> {
        ReadAt { file: &self.file, at }
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptArchive { path: self.path.clone(), reason }
    }

    /// The file `name`, or an error naming what is missing.
    pub fn require(&self, name: &str) -> Result<(u64, u64)> {
        self.find(name).ok_or_else(|| self.corrupt(format!("it has no {name}")))
    }

    /// The whole file `name`, when it has at most `limit` bytes (a manifest or a config).
    pub fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let (offset, size) = self.require(name)?;
        if size > limit {
            return Err(self.corrupt(format!("{name} is larger than {limit} bytes")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.reader(offset).take(size).read_to_end(&mut bytes).at("read", &self.path)?;
        if bytes.len() as u64 != size {
            return Err(self.corrupt(format!("{name} is cut short")));
        }
        Ok(bytes)
    }

    /// The first bytes of the file `name` (for telling compressed layers apart).
    pub fn head(&self, name: &str, length: u64) -> Result<Vec<u8>> {
        let (offset, size) = self.require(name)?;
        let mut bytes = Vec::new();
        self.reader(offset).take(length.min(size)).read_to_end(&mut bytes).at("read", &self.path)?;
        Ok(bytes)
    }

    /// The sha256 and size of the file `name`, read through once in chunks.
    pub fn hash(&self, name: &str) -> Result<(Digest, u64)> {
        let (offset, size) = self.require(name)?;
        let (digest, total) = Digest::of_reader(self.reader(offset).take(size)).at("read", &self.path)?;
        if total != size {
            return Err(self.corrupt(format!("{name} is cut short")));
        }
        Ok((digest, size))
    }
}

/// A tar name without `./`, leading `/`, empty or `.` parts, and with `..` applied.
fn normalize(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// A reader of `file` from `at` on, by positioned reads: readers of one file share no offset.
struct ReadAt<'a> {
    file: &'a File,
    at: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buffer, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// What goes into an archive under one name.
#[derive(Debug)]
pub enum Item {
    /// A directory.
    Dir,
    /// A file's contents, streamed from disk.
    File(PathBuf),
    /// Small contents held in memory (`manifest.json`, `index.json`).
    Bytes(Vec<u8>),
}

/// Checks that an archive may be written at `target`: nothing is there, or a regular file
/// (which is replaced); says whether a file is there. An archive is renamed into place whole,
/// so a FIFO or a device there would be replaced rather than written into, and a symlink
/// replaced rather than followed: all three are refused, as is a directory.
pub fn check_target(target: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.is_file() => Ok(true),
        Ok(meta) => Err(Error::invalid(
            "archive",
            target.display().to_string(),
            format!(
                "it is a {}; an archive is written to a new or regular file, replaced whole (never streamed into a fifo or device, nor written through a symlink): name such a file",
                crate::fsutil::small_file::kind(meta.file_type())
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("read", target, e)),
    }
}

/// Renames the complete `temp` to `target`, checked once more just before (something may have
/// appeared there meanwhile). A regular file there is replaced; where there was nothing,
/// nothing is replaced (renameat2's RENAME_NOREPLACE, or a hard link where the file system
/// lacks it, as tempfile does it; the plain rename where neither works), so what appears
/// after the check is left alone too.
fn put_in_place(temp: tempfile::NamedTempFile, target: &Path) -> Result<()> {
    rename_into(temp, target, check_target(target)?)
}

/// Renames `temp` to `target`, replacing a file there only when `replace`.
fn rename_into(temp: tempfile::NamedTempFile, target: &Path, replace: bool) -> Result<()> {
    let placed = match replace {
        true => temp.persist(target),
        // A file system that can neither rename without replacing nor hard-link gets the
        // plain rename.
        false => temp.persist_noclobber(target).or_else(|e| match e.error.kind() {
            std::io::ErrorKind::AlreadyExists => Err(e),
            _ => e.file.persist(target),
        }),
    };
    match placed {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::invalid(
            "archive",
            target.display().to_string(),
            "something appeared there while the archive was written; it is left alone: remove it, or name another file",
        )),
        Err(e) => Err(Error::io("write", target, e.error)),
    }
}

/// Writes a tar of `items` (in order) to a temporary file beside `target`, synced, and renames
/// it to `target` only when complete: a failure leaves `target` as it was. Entries are owned
/// by root, dated 1970 and mode 0644 (0755 for directories), so the same content gives the
/// same tar. A `target` that [`check_target`] refuses is left alone.
pub fn write_tar(target: &Path, items: &[(String, Item)]) -> Result<()> {
    check_target(target)?;
    let parent = atomic::parent(target);
    std::fs::create_dir_all(parent).at("create", parent)?;
    let temp = atomic::temp_in(parent, Mode::Private)?;
    let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, temp));
    for (name, item) in items {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match item {
            Item::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, name, std::io::empty()).at("write", target)?;
            }
            Item::File(path) => {
                let file = File::open(path).at("open", path)?;
                let size = file.metadata().at("read", path)?.len();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(size);
                builder.append_data(&mut header, name, file.take(size)).at("write", target)?;
            }
            Item::Bytes(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, name, bytes.as_slice()).at("write", target)?;
            }
        }
    }
    let buffered = builder.into_inner().at("write", target)?;
    let temp = buffered.into_inner().map_err(|e| Error::io("write", target, e.into_error()))?;
    // A temporary file is private (0600); an archive is as readable as any file written.
    let readable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
    temp.as_file().set_permissions(readable).at("write", target)?;
    // The long sync first, so that the last check stays just before the rename.
    temp.as_file().sync_all().at("write", target)?;
    put_in_place(temp, target)?;
    atomic::sync_dir(parent)
}

/// The name of the blob `digest` in a layout or archive: `blobs/ALGORITHM/HEX`.
pub fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}", digest.to_string().replacen(':', "/", 1))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    #[test]
    fn entries_are_found_by_name_and_read_in_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("a.tar");
        let data = dir.path().join("data");
        std::fs::write(&data, vec![7u8; 300_000]).unwrap();
        write_tar(
            &tar,
            &[
                ("blobs".into(), Item::Dir),
                ("blobs/one".into(), Item::Bytes(b"hello".to_vec())),
                ("blobs/two".into(), Item::File(data)),
            ],
        )
        .unwrap();
        let index = TarIndex::open(&tar).unwrap();
        assert_eq!(index.read_small("./blobs/one", 10).unwrap(), b"hello");
        assert!(matches!(index.read_small("blobs/one", 2), Err(Error::CorruptArchive { .. })));
        assert!(index.find("blobs/three").is_none());
        let (offset, size) = index.find("blobs/two").unwrap();
        assert_eq!(size, 300_000);
        let (digest, _) = index.hash("blobs/two").unwrap();
        assert_eq!(digest, Digest::of(&vec![7u8; 300_000]));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let read = runtime.block_on(async {
            let mut stream = index.range(offset + 10, 290_000);
            let mut all = Vec::new();
            while let Some(chunk) = stream.next().await {
                all.extend_from_slice(&chunk.unwrap());
            }
            all
        });
        assert_eq!(read, vec![7u8; 290_000]);
        assert_eq!(normalize("./a/../b//c/"), "b/c");
    }

    /// What appears at the target after the last check found nothing there is not replaced.
    #[test]
    fn nothing_that_appears_after_the_last_check_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.tar");
        let temp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        assert!(!check_target(&target).unwrap(), "nothing there at the check");
        std::os::unix::fs::symlink("/dev/null", &target).unwrap();
        let error = rename_into(temp, &target, false).unwrap_err().to_string();
        assert!(error.contains("appeared there"), "{error}");
        assert!(std::fs::symlink_metadata(&target).unwrap().file_type().is_symlink(), "left alone");
        let temp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        let free = dir.path().join("free.tar");
        rename_into(temp, &free, false).unwrap();
        assert!(free.is_file());
    }

    /// The file checked when it was opened is the one read: another put at its path since (a
    /// FIFO, a device, another archive) is not.
    #[test]
    fn a_path_replaced_after_the_check_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let (tar, other) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
        write_tar(&tar, &[("blob".into(), Item::Bytes(b"checked".to_vec()))]).unwrap();
        write_tar(&other, &[("blob".into(), Item::Bytes(b"swapped".to_vec()))]).unwrap();
        let index = TarIndex::open(&tar).unwrap();
        std::fs::rename(&other, &tar).unwrap();
        assert_eq!(index.read_small("blob", 10).unwrap(), b"checked");
        assert_eq!(index.head("blob", 3).unwrap(), b"che");
        assert_eq!(index.hash("blob").unwrap(), (Digest::of(b"checked"), 7));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (offset, size) = index.find("blob").unwrap();
        let read = runtime.block_on(index.range(offset, size).next()).unwrap().unwrap();
        assert_eq!(&read[..], b"checked");
    }
}

//! A reproducible tar stream of a directory tree or a file.
//!
//! Entries are written in sorted order with fixed owners and times, so the same tree gives the
//! same bytes on any machine. Symlinks are stored as symlinks, hard links as link entries, and
//! names or sizes that do not fit a ustar header go into PAX records.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::{EntryType, Header};
use walkdir::WalkDir;

use super::ignore::{Excludes, IGNORE_FILE};
use crate::error::{Error, IoContext, Result};

/// How file metadata is normalized in a layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// Modification time for every entry, in seconds since the epoch.
    pub mtime: u64,
    /// Keep each file's own modification time instead of `mtime`.
    pub preserve_mtime: bool,
    /// Owner user id of every entry.
    pub uid: u64,
    /// Owner group id of every entry.
    pub gid: u64,
    /// Skip sockets, fifos and devices with a warning instead of failing.
    pub skip_special: bool,
}


/// Largest size a ustar header holds (11 octal digits).
const USTAR_MAX_SIZE: u64 = 0o77_777_777_777;
const USTAR_NAME_LEN: usize = 100;
const BLOCK: usize = 512;
const COPY_BUFFER: usize = 1 << 20;

/// Mode of the parent directories created for a layer's destination.
const PARENT_DIR_MODE: u32 = 0o755;

/// Writes one layer's tar stream: `source` placed at `dest` in the image.
///
/// A directory's contents go under `dest`; a file goes to `dest`, or into it when `dest` ends
/// with `/`. Returns the writer after the end-of-archive marker.
pub fn write_tree<W: Write>(
    source: &Path,
    dest: &str,
    excludes: &[String],
    options: &TarOptions,
    out: W,
) -> Result<W> {
    let metadata = fs::symlink_metadata(source).at("read", source)?;
    let mut tar = TarStream::new(out, options);
    let dest_parts: Vec<&str> = dest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if metadata.is_dir() {
        let mut prefix = Vec::new();
        for (i, part) in dest_parts.iter().enumerate() {
            prefix.extend_from_slice(part.as_bytes());
            prefix.push(b'/');
            let mode = if i + 1 == dest_parts.len() {
                metadata.mode()
            } else {
                PARENT_DIR_MODE
            };
            tar.directory(&prefix, mode, &metadata)?;
        }
        let excludes = Excludes::for_source(source, excludes)?;
        tar.tree(source, &prefix, &excludes)?;
    } else {
        let into_dir = dest.ends_with('/') || dest_parts.is_empty();
        let (parents, name) = if into_dir {
            let name = source.file_name().unwrap_or(OsStr::new("file"));
            (&dest_parts[..], name.as_bytes())
        } else {
            let (last, parents) = dest_parts.split_last().expect("dest has a file name");
            (parents, last.as_bytes())
        };
        let mut path = Vec::new();
        for part in parents {
            path.extend_from_slice(part.as_bytes());
            path.push(b'/');
            tar.directory(&path, PARENT_DIR_MODE, &metadata)?;
        }
        path.extend_from_slice(name);
        tar.entry(source, &path, &metadata)?;
    }
    tar.finish()
}

struct TarStream<'a, W> {
    out: W,
    options: &'a TarOptions,
    /// First archived path of each multiply-linked file, by (device, inode).
    links: HashMap<(u64, u64), Vec<u8>>,
    buffer: Vec<u8>,
}

impl<'a, W: Write> TarStream<'a, W> {
    fn new(out: W, options: &'a TarOptions) -> Self {
        TarStream {
            out,
            options,
            links: HashMap::new(),
            buffer: Vec::new(),
        }
    }

    /// Archives everything below `root`, sorted by name, at `prefix`.
    fn tree(&mut self, root: &Path, prefix: &[u8], excludes: &Excludes) -> Result<()> {
        let prune = !excludes.has_negations();
        // Directories excluded themselves but holding re-included entries: written on demand.
        let mut pending_dirs: Vec<(Vec<u8>, std::path::PathBuf, Metadata)> = Vec::new();
        let mut walker = WalkDir::new(root)
            .follow_links(false)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = walker.next() {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(root).to_path_buf();
                let source = e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("file system loop"));
                Error::io("read", path, source)
            })?;
            let relative = entry
                .path()
                .strip_prefix(root)
                .expect("walkdir yields paths under root");
            let metadata = entry.metadata().map_err(|e| {
                let source = e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("unreadable"));
                Error::io("read", entry.path(), source)
            })?;
            let mut path = prefix.to_vec();
            path.extend_from_slice(relative.as_os_str().as_bytes());
            if metadata.is_dir() {
                path.push(b'/');
            }
            pending_dirs.retain(|(dir, _, _)| path.starts_with(dir));
            if relative == Path::new(IGNORE_FILE) || excludes.is_excluded(relative) {
                if metadata.is_dir() {
                    if prune {
                        walker.skip_current_dir();
                    } else {
                        pending_dirs.push((path, entry.path().to_path_buf(), metadata));
                    }
                }
                continue;
            }
            for (dir, dir_source, dir_metadata) in pending_dirs.drain(..) {
                self.entry(&dir_source, &dir, &dir_metadata)?;
            }
            self.entry(entry.path(), &path, &metadata)?;
        }
        Ok(())
    }

    /// Archives one file system object found at `source` under the name `path`.
    fn entry(&mut self, source: &Path, path: &[u8], metadata: &Metadata) -> Result<()> {
        let file_type = metadata.file_type();
        if file_type.is_dir() {
            return self.directory(path, metadata.mode(), metadata);
        }
        if file_type.is_symlink() {
            let target = fs::read_link(source).at("read link", source)?;
            return self
                .header(
                    path,
                    EntryType::Symlink,
                    metadata.mode(),
                    metadata,
                    0,
                    Some(target.as_os_str().as_bytes()),
                )
                .at("write", source);
        }
        if file_type.is_file() {
            if metadata.nlink() > 1 {
                let key = (metadata.dev(), metadata.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    return self
                        .header(
                            path,
                            EntryType::Link,
                            metadata.mode(),
                            metadata,
                            0,
                            Some(&first),
                        )
                        .at("write", source);
                }
                self.links.insert(key, path.to_vec());
            }
            return self.file(source, path, metadata);
        }
        let kind = if file_type.is_socket() {
            "socket"
        } else if file_type.is_fifo() {
            "fifo"
        } else {
            "device file"
        };
        if self.options.skip_special {
            tracing::warn!("skipping {kind} {}", source.display());
            return Ok(());
        }
        Err(Error::SpecialFile {
            path: source.to_path_buf(),
            kind,
        })
    }

    fn directory(&mut self, path: &[u8], mode: u32, metadata: &Metadata) -> Result<()> {
        self.header(path, EntryType::Directory, mode, metadata, 0, None)
            .at("write", String::from_utf8_lossy(path).as_ref())
    }

    fn file(&mut self, source: &Path, path: &[u8], metadata: &Metadata) -> Result<()> {
        let size = metadata.len();
        let mut file = File::open(source).at("read", source)?;
        self.header(
            path,
            EntryType::Regular,
            metadata.mode(),
            metadata,
            size,
            None,
        )
        .at("write", source)?;
        if self.buffer.is_empty() {
            self.buffer = vec![0; COPY_BUFFER];
        }
        let mut remaining = size;
        while remaining > 0 {
            let want = remaining.min(self.buffer.len() as u64) as usize;
            let read = match file.read(&mut self.buffer[..want]) {
                Ok(0) => {
                    return Err(Error::FileChanged {
                        path: source.to_path_buf(),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", source, e)),
            };
            self.out
                .write_all(&self.buffer[..read])
                .at("write layer for", source)?;
            remaining -= read as u64;
        }
        self.pad(size).at("write layer for", source)
    }

    /// Writes a header (preceded by PAX records when needed) for an entry of `size` bytes.
    fn header(
        &mut self,
        path: &[u8],
        kind: EntryType,
        mode: u32,
        metadata: &Metadata,
        size: u64,
        link: Option<&[u8]>,
    ) -> io::Result<()> {
        let mtime = if self.options.preserve_mtime {
            metadata.mtime().max(0) as u64
        } else {
            self.options.mtime
        };
        let mut records = Vec::new();
        if path.len() > USTAR_NAME_LEN {
            pax_record(&mut records, "path", path);
        }
        if let Some(link) = link.filter(|l| l.len() > USTAR_NAME_LEN) {
            pax_record(&mut records, "linkpath", link);
        }
        if size > USTAR_MAX_SIZE {
            pax_record(&mut records, "size", size.to_string().as_bytes());
        }
        if !records.is_empty() {
            let mut pax = self.base_header(b"././@PaxHeader", EntryType::XHeader, 0o644, mtime);
            pax.set_size(records.len() as u64);
            pax.set_cksum();
            self.out.write_all(pax.as_bytes())?;
            self.out.write_all(&records)?;
            self.pad(records.len() as u64)?;
        }
        let mut header = self.base_header(path, kind, mode & 0o7777, mtime);
        header.set_size(if size > USTAR_MAX_SIZE { 0 } else { size });
        if let Some(link) = link {
            let field = &mut header.as_old_mut().linkname;
            let n = link.len().min(field.len());
            field[..n].copy_from_slice(&link[..n]);
        }
        header.set_cksum();
        self.out.write_all(header.as_bytes())
    }

    fn base_header(&self, path: &[u8], kind: EntryType, mode: u32, mtime: u64) -> Header {
        let mut header = Header::new_ustar();
        let field = &mut header.as_old_mut().name;
        let n = path.len().min(field.len());
        field[..n].copy_from_slice(&path[..n]);
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(self.options.uid);
        header.set_gid(self.options.gid);
        header.set_mtime(mtime);
        header.set_size(0);
        header
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rest = (size % BLOCK as u64) as usize;
        if rest != 0 {
            self.out.write_all(&[0; BLOCK][..BLOCK - rest])?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<W> {
        self.out.write_all(&[0; 2 * BLOCK]).at("write", "layer")?;
        Ok(self.out)
    }
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where len counts the whole record.
fn pax_record(records: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    records.extend_from_slice(len.to_string().as_bytes());
    records.push(b' ');
    records.extend_from_slice(key.as_bytes());
    records.push(b'=');
    records.extend_from_slice(value);
    records.push(b'\n');
}

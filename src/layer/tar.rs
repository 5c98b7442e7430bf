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
use std::os::unix::fs::MetadataExt;
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
    /// Record modes as git does, whatever the umask of the checkout: files 0755 when their
    /// owner may execute them, else 0644; directories 0755.
    pub normalize_modes: bool,
}

/// The mode recorded for an entry of `kind` whose file system mode is `mode`.
fn entry_mode(kind: EntryType, mode: u32, normalize: bool) -> u32 {
    let mode = mode & 0o7777;
    if !normalize {
        return mode;
    }
    match kind {
        EntryType::Directory => 0o755,
        EntryType::Regular | EntryType::Link if mode & 0o100 != 0 => 0o755,
        EntryType::Regular | EntryType::Link => 0o644,
        _ => mode,
    }
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
pub fn write_tree<W: Write>(source: &Path, dest: &str, excludes: &[String], options: &TarOptions, out: W) -> Result<W> {
    let metadata = fs::symlink_metadata(source).at("read", source)?;
    let mut tar = TarStream::new(out, options);
    let dest_parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if metadata.is_dir() {
        let mut prefix = Vec::new();
        for (i, part) in dest_parts.iter().enumerate() {
            prefix.extend_from_slice(part.as_bytes());
            prefix.push(b'/');
            let mode = if i + 1 == dest_parts.len() { metadata.mode() } else { PARENT_DIR_MODE };
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
        TarStream { out, options, links: HashMap::new(), buffer: Vec::new() }
    }

    /// Archives everything below `root`, sorted by name, at `prefix`.
    fn tree(&mut self, root: &Path, prefix: &[u8], excludes: &Excludes) -> Result<()> {
        let prune = !excludes.has_negations();
        // Directories excluded themselves but holding re-included entries: written on demand.
        let mut pending_dirs: Vec<(Vec<u8>, std::path::PathBuf, Metadata)> = Vec::new();
        let mut walker = WalkDir::new(root).follow_links(false).min_depth(1).sort_by_file_name().into_iter();
        while let Some(entry) = walker.next() {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(root).to_path_buf();
                let source = e.into_io_error().unwrap_or_else(|| io::Error::other("file system loop"));
                Error::io("read", path, source)
            })?;
            let relative = entry.path().strip_prefix(root).expect("walkdir yields paths under root");
            let metadata = entry.metadata().map_err(|e| {
                let source = e.into_io_error().unwrap_or_else(|| io::Error::other("unreadable"));
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
                .header(path, EntryType::Symlink, metadata.mode(), metadata, 0, Some(target.as_os_str().as_bytes()))
                .at("write", source);
        }
        if file_type.is_file() {
            if metadata.nlink() > 1 {
                let key = (metadata.dev(), metadata.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    return self
                        .header(path, EntryType::Link, metadata.mode(), metadata, 0, Some(&first))
                        .at("write", source);
                }
                self.links.insert(key, path.to_vec());
            }
            return self.file(source, path, metadata);
        }
        let kind = crate::fsutil::small_file::kind(file_type);
        if self.options.skip_special {
            tracing::warn!("skipping {kind} {}", source.display());
            return Ok(());
        }
        Err(Error::SpecialFile { path: source.to_path_buf(), kind })
    }

    fn directory(&mut self, path: &[u8], mode: u32, metadata: &Metadata) -> Result<()> {
        self.header(path, EntryType::Directory, mode, metadata, 0, None)
            .at("write", String::from_utf8_lossy(path).as_ref())
    }

    fn file(&mut self, source: &Path, path: &[u8], metadata: &Metadata) -> Result<()> {
        let size = metadata.len();
        let mut file = File::open(source).at("read", source)?;
        self.header(path, EntryType::Regular, metadata.mode(), metadata, size, None).at("write", source)?;
        if self.buffer.is_empty() {
            self.buffer = vec![0; COPY_BUFFER];
        }
        let mut remaining = size;
        while remaining > 0 {
            let want = remaining.min(self.buffer.len() as u64) as usize;
            let read = match file.read(&mut self.buffer[..want]) {
                Ok(0) => return Err(Error::FileChanged { path: source.to_path_buf() }),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", source, e)),
            };
            self.out.write_all(&self.buffer[..read]).at("write layer for", source)?;
            remaining -= read as u64;
        }
        // A file that grew while it was read would go in cut short: one more byte, or a size
        // that moved, means it changed.
        let mut probe = [0u8; 1];
        let grew = loop {
            match file.read(&mut probe) {
                Ok(n) => break n > 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", source, e)),
            }
        };
        if grew || file.metadata().at("read", source)?.len() != size {
            return Err(Error::FileChanged { path: source.to_path_buf() });
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
        let mtime = if self.options.preserve_mtime { metadata.mtime().max(0) as u64 } else { self.options.mtime };
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
        let mut header = self.base_header(path, kind, entry_mode(kind, mode, self.options.normalize_modes), mtime);
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

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, SystemTime};

    use super::*;

    fn tar_of(source: &Path, dest: &str, excludes: &[&str], options: &TarOptions) -> Vec<u8> {
        let excludes: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
        write_tree(source, dest, &excludes, options, Vec::new()).unwrap()
    }

    /// Path, type, mode and link target of an entry, names as raw bytes.
    type Entry = (Vec<u8>, EntryType, u32, Option<Vec<u8>>);

    fn entries(tar: &[u8]) -> Vec<Entry> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name_bytes().map(|l| l.into_owned());
                (e.path_bytes().into_owned(), e.header().entry_type(), e.header().mode().unwrap(), link)
            })
            .collect()
    }

    fn names(tar: &[u8]) -> Vec<String> {
        entries(tar).into_iter().map(|e| String::from_utf8_lossy(&e.0).into_owned()).collect()
    }

    fn write(path: &Path, content: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }

    #[test]
    fn same_tree_gives_same_bytes_whatever_order_times_and_owners() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let files = [("bin/app", 0o755), ("etc/app.conf", 0o644), ("z", 0o600), ("a", 0o644)];
        for (name, mode) in files {
            write(&a.path().join(name), name, mode);
        }
        for (name, mode) in files.iter().rev() {
            write(&b.path().join(name), name, *mode);
            let file = File::options().write(true).open(b.path().join(name)).unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(86_400)).unwrap();
            std::os::unix::fs::chown(b.path().join(name), Some(1234), Some(5678)).unwrap();
        }
        for dir in ["bin", "etc"] {
            for root in [a.path(), b.path()] {
                fs::set_permissions(root.join(dir), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            }
        }
        let options = TarOptions::default();
        let tar_a = tar_of(a.path(), "/", &[], &options);
        assert_eq!(tar_a, tar_of(b.path(), "/", &[], &options));
        assert_eq!(names(&tar_a), ["a", "bin/", "bin/app", "etc/", "etc/app.conf", "z"]);
        let modes: Vec<u32> = entries(&tar_a).iter().map(|e| e.2).collect();
        assert_eq!(modes, [0o644, 0o755, 0o755, 0o755, 0o644, 0o600]);
        let mut archive = tar::Archive::new(&tar_a[..]);
        for entry in archive.entries().unwrap() {
            let header = entry.unwrap().header().clone();
            assert_eq!((header.mtime().unwrap(), header.uid().unwrap(), header.gid().unwrap()), (0, 0, 0));
            assert_eq!(header.username_bytes(), Some(&b""[..]));
        }
        let owned = TarOptions { mtime: 42, uid: 65532, gid: 65532, ..TarOptions::default() };
        let mut archive = tar::Archive::new(std::io::Cursor::new(tar_of(a.path(), "/", &[], &owned)));
        let first = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!((first.header().mtime().unwrap(), first.header().uid().unwrap()), (42, 65532));
    }

    #[test]
    fn normalized_modes_follow_the_owner_execute_bit_as_git_does() {
        let src = tempfile::tempdir().unwrap();
        write(&src.path().join("bin/tool"), "x", 0o775);
        write(&src.path().join("bin/setuid"), "x", 0o4750);
        write(&src.path().join("doc/readme"), "x", 0o664);
        write(&src.path().join("doc/private"), "x", 0o600);
        std::os::unix::fs::symlink("readme", src.path().join("doc/link")).unwrap();
        for dir in ["bin", "doc"] {
            fs::set_permissions(src.path().join(dir), std::os::unix::fs::PermissionsExt::from_mode(0o2775)).unwrap();
        }
        let options = TarOptions { normalize_modes: true, ..TarOptions::default() };
        let modes: Vec<(String, u32)> = entries(&tar_of(src.path(), "/app/", &[], &options))
            .into_iter()
            .filter(|e| e.1 != EntryType::Symlink)
            .map(|e| (String::from_utf8_lossy(&e.0).into_owned(), e.2))
            .collect();
        let expected = [
            ("app/", 0o755),
            ("app/bin/", 0o755),
            ("app/bin/setuid", 0o755),
            ("app/bin/tool", 0o755),
            ("app/doc/", 0o755),
            ("app/doc/private", 0o644),
            ("app/doc/readme", 0o644),
        ];
        assert_eq!(modes, expected.map(|(n, m)| (n.to_owned(), m)));
        let kept = entries(&tar_of(src.path(), "/", &[], &TarOptions::default()));
        assert!(kept.iter().any(|e| e.0 == b"doc/readme" && e.2 == 0o664), "kept without the option");
    }

    #[test]
    fn destination_parents_are_created_and_files_placed() {
        let src = tempfile::tempdir().unwrap();
        write(&src.path().join("server"), "bin", 0o755);
        assert_eq!(
            names(&tar_of(src.path(), "/usr/local/app/", &[], &TarOptions::default())),
            ["usr/", "usr/local/", "usr/local/app/", "usr/local/app/server"]
        );
        let file = src.path().join("server");
        assert_eq!(names(&tar_of(&file, "/bin/", &[], &TarOptions::default())), ["bin/", "bin/server"]);
        assert_eq!(names(&tar_of(&file, "/bin/renamed", &[], &TarOptions::default())), ["bin/", "bin/renamed"]);
    }

    #[test]
    fn long_names_use_pax_and_non_utf8_names_are_kept() {
        let src = tempfile::tempdir().unwrap();
        let deep = "d".repeat(60) + "/" + &"e".repeat(60) + "/" + &"f".repeat(80);
        write(&src.path().join(&deep), "deep", 0o644);
        let odd = OsStr::from_bytes(b"caf\xe9");
        fs::write(src.path().join(odd), "latin-1").unwrap();
        std::os::unix::fs::symlink("x".repeat(150), src.path().join("longlink")).unwrap();
        let tar = tar_of(src.path(), "/", &[], &TarOptions::default());
        let found = entries(&tar);
        assert!(found.iter().any(|e| e.0 == deep.as_bytes()), "long path read back through PAX");
        assert!(found.iter().any(|e| e.0 == b"caf\xe9"), "raw bytes kept");
        let link = found.iter().find(|e| e.0 == b"longlink").unwrap();
        assert_eq!(link.3.as_deref(), Some("x".repeat(150).as_bytes()));
        assert!(tar.windows(4).any(|w| w == b"path"), "a PAX record was written");
    }

    #[test]
    fn sizes_beyond_ustar_go_into_a_pax_record() {
        let src = tempfile::tempdir().unwrap();
        let metadata = fs::metadata(src.path()).unwrap();
        let options = TarOptions::default();
        let mut stream = TarStream::new(Vec::new(), &options);
        let size = 9 * (1u64 << 30);
        stream.header(b"big", EntryType::Regular, 0o644, &metadata, size, None).unwrap();
        let bytes = stream.out;
        assert_eq!(bytes.len(), 3 * BLOCK, "PAX header, its records, the entry header");
        let records = String::from_utf8_lossy(&bytes[BLOCK..2 * BLOCK]);
        assert!(records.starts_with(&format!("19 size={size}\n")), "{records}");
    }

    #[test]
    fn symlinks_are_stored_not_followed_and_hard_links_become_links() {
        let src = tempfile::tempdir().unwrap();
        write(&src.path().join("data/original"), "content", 0o644);
        fs::hard_link(src.path().join("data/original"), src.path().join("data/second")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("outside")).unwrap();
        std::os::unix::fs::symlink("data", src.path().join("dirlink")).unwrap();
        let tar = tar_of(src.path(), "/", &[], &TarOptions::default());
        let found = entries(&tar);
        let get = |name: &[u8]| found.iter().find(|e| e.0 == name).unwrap().clone();
        assert_eq!(get(b"outside").1, EntryType::Symlink);
        assert_eq!(get(b"outside").3.as_deref(), Some(&b"/etc/passwd"[..]));
        assert_eq!(get(b"dirlink").1, EntryType::Symlink);
        assert!(!found.iter().any(|e| e.0.starts_with(b"dirlink/")), "symlinked directory not followed");
        assert_eq!(get(b"data/original").1, EntryType::Regular);
        assert_eq!(get(b"data/second").1, EntryType::Link);
        assert_eq!(get(b"data/second").3.as_deref(), Some(&b"data/original"[..]));
        let mut archive = tar::Archive::new(&tar[..]);
        let mut content = String::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path_bytes().as_ref() == b"data/original" {
                entry.read_to_string(&mut content).unwrap();
            }
        }
        assert_eq!(content, "content");
    }

    #[test]
    fn exclusions_apply_with_negation_and_the_ignore_file_itself_stays_out() {
        let src = tempfile::tempdir().unwrap();
        for name in ["app", "app.map", "docs/a.md", "docs/keep.md", "tmp/x", "sub/b.map"] {
            write(&src.path().join(name), name, 0o644);
        }
        fs::write(src.path().join(IGNORE_FILE), "**/*.map\ndocs\n!docs/keep.md\n").unwrap();
        let tar = tar_of(src.path(), "/", &["tmp"], &TarOptions::default());
        assert_eq!(names(&tar), ["app", "docs/", "docs/keep.md", "sub/"]);
    }

    #[test]
    fn special_files_are_refused_or_skipped() {
        let src = tempfile::tempdir().unwrap();
        write(&src.path().join("ok"), "ok", 0o644);
        let _listener = std::os::unix::net::UnixListener::bind(src.path().join("sock")).unwrap();
        let err = write_tree(src.path(), "/", &[], &TarOptions::default(), Vec::new()).unwrap_err();
        assert!(matches!(err, Error::SpecialFile { kind: "socket", .. }), "{err}");
        assert!(err.to_string().contains("sock"), "{err}");
        let skip = TarOptions { skip_special: true, ..TarOptions::default() };
        assert_eq!(names(&tar_of(src.path(), "/", &[], &skip)), ["ok"]);
    }
}

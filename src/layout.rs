//! OCI image layouts on disk: reading them, and adding images to them all-or-nothing.
//!
//! A [`LayoutWriter`] stages every blob in a temporary directory beside the target. Only
//! [`LayoutWriter::commit`] touches the layout: it moves the blobs into `blobs/sha256/` and then
//! replaces `index.json` atomically. A failed or interrupted build leaves the layout as it was.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tempfile::{NamedTempFile, TempDir};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::atomic::{self, Mode};
use crate::fsutil::small_file;
use crate::json;
use crate::model::{Descriptor, ImageIndex, MediaType};
use crate::offload::Writeback;

/// The file that marks a directory as an OCI image layout.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The layout's entry point: the index of tagged images.
pub const INDEX_FILE: &str = "index.json";
/// The annotation that carries a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT_VERSION: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
const LOCK_FILE: &str = ".hoist.lock";

/// An existing OCI image layout, for reading.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens the layout at `root`, checking its `oci-layout` marker.
    pub fn open(root: impl Into<PathBuf>) -> Result<Layout> {
        let root = root.into();
        if let Err(e) = fs::metadata(&root) {
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => Error::invalid(
                    "OCI layout",
                    root.display().to_string(),
                    "it does not exist; check the path, or write the layout first (hoist build --output oci:DIR)",
                ),
                _ => Error::io("read", &root, e),
            });
        }
        let not_a_layout = |reason: String| Error::NotALayout { path: root.clone(), reason, output: false };
        // A FIFO or a device would block or never end: only a small regular file is read.
        let bytes = small_file::read_unlinked(&root.join(OCI_LAYOUT_FILE), 4096)
            .map_err(|e| not_a_layout(format!("cannot read {OCI_LAYOUT_FILE}: {e}")))?;
        /// What `oci-layout` says.
        #[derive(serde::Deserialize)]
        struct OciLayout {
            #[serde(rename = "imageLayoutVersion")]
            version: Option<String>,
        }
        let layout: OciLayout = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptLayout {
            path: root.clone(),
            reason: format!("{OCI_LAYOUT_FILE} is not a JSON object with a text imageLayoutVersion: {e}"),
        })?;
        if layout.version.as_deref() != Some("1.0.0") {
            return Err(Error::CorruptLayout {
                path: root,
                reason: format!("{OCI_LAYOUT_FILE} does not say imageLayoutVersion 1.0.0"),
            });
        }
        Ok(Layout { root })
    }

    /// The layout's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.root.join(INDEX_FILE);
        let bytes = self.read_small(&path, INDEX_FILE)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::CorruptLayout {
            path: self.root.clone(),
            reason: format!("{INDEX_FILE} is not a valid image index: {e}"),
        })
    }

    /// Reads a file of the layout (`index.json`, a manifest; never through a symlink) of at
    /// most [`MAX_MANIFEST_BYTES`](crate::model::MAX_MANIFEST_BYTES); one that is not a
    /// regular file, or larger, means the layout is corrupt.
    fn read_small(&self, path: &Path, what: &str) -> Result<Vec<u8>> {
        small_file::read_unlinked(path, crate::model::MAX_MANIFEST_BYTES).map_err(|e| match e {
            small_file::ReadError::Io(e) => Error::io("read", path, e),
            refused => Error::CorruptLayout { path: self.root.clone(), reason: format!("{what}: {refused}") },
        })
    }

    /// Where the blob with `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// The file of the blob `digest`, with its size: refused when it is a symlink (it could
    /// point anywhere on the machine) or anything but a regular file.
    pub fn blob_file(&self, digest: &Digest) -> Result<(PathBuf, u64)> {
        let path = self.blob_path(digest);
        let meta = fs::symlink_metadata(&path).map_err(|_| Error::CorruptLayout {
            path: self.root.clone(),
            reason: format!("blob {digest} is missing"),
        })?;
        if !meta.is_file() {
            return Err(Error::CorruptLayout {
                path: self.root.clone(),
                reason: format!(
                    "blob {digest} is a symlink or not a regular file; hoist reads only regular files in blobs/"
                ),
            });
        }
        Ok((path, meta.len()))
    }

    /// Reads a small blob (a manifest, index or config) and checks its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let (path, _) = self.blob_file(digest)?;
        let bytes = self.read_small(&path, &format!("blob {digest}"))?;
        let found = Digest::of(&bytes);
        if &found != digest {
            return Err(Error::DigestMismatch {
                what: path.display().to_string(),
                expected: digest.to_string(),
                found: found.to_string(),
            });
        }
        Ok(bytes)
    }

    /// The descriptor tagged `tag` in `index.json`.
    pub fn find_tag(&self, tag: &str) -> Result<Option<Descriptor>> {
        Ok(self.index()?.manifests.into_iter().find(|d| ref_name(d) == Some(tag)))
    }
}

/// The tag a descriptor carries in `index.json`, if any.
pub fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor.annotation(REF_NAME)
}

/// A blob being written into a [`LayoutWriter`]'s staging area; hashed as it is written.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<NamedTempFile>>,
    writeback: Writeback,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let buffered = self.inner.get_ref();
        self.writeback.wrote(n, buffered.buffer().len(), buffered.get_ref().as_file());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Adds blobs and a tag to a layout, all at once on [`commit`](LayoutWriter::commit).
#[derive(Debug)]
pub struct LayoutWriter {
    target: PathBuf,
    staging: TempDir,
    staged: Vec<Digest>,
}

impl LayoutWriter {
    /// Prepares to write into `target`: a layout, an empty directory, or a path to create.
    ///
    /// Fails at once when `target` exists but is not a layout, so no work is wasted.
    pub fn begin(target: &Path) -> Result<LayoutWriter> {
        match fs::symlink_metadata(target) {
            Ok(meta) if !meta.is_dir() => {
                let reason = "it is not a directory".into();
                return Err(Error::NotALayout { path: target.to_path_buf(), reason, output: true });
            }
            Ok(_) => {
                let empty = fs::read_dir(target).at("read", target)?.next().is_none();
                if !empty {
                    // The same checks as for reading, with the fix for an output.
                    let opened = Layout::open(target).map_err(|e| match e {
                        Error::NotALayout { path, reason, .. } => Error::NotALayout { path, reason, output: true },
                        other => other,
                    });
                    opened?.index()?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", target, e)),
        }
        let anchor = nearest_existing(target);
        let staging = tempfile::Builder::new()
            .prefix(".hoist-staging-")
            .tempdir_in(&anchor)
            .at("create a staging directory in", &anchor)?;
        Ok(LayoutWriter { target: target.to_path_buf(), staging, staged: Vec::new() })
    }

    /// The directory the layout is (or will be) in.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Starts a new blob in the staging area.
    pub fn blob(&self) -> Result<BlobWriter> {
        let file = atomic::temp_in(self.staging.path(), Mode::Shared)?;
        let inner = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        Ok(BlobWriter { inner, writeback: Writeback::default() })
    }

    /// Finishes a blob: names it by the digest of what was written. Returns digest and size.
    pub fn add_blob(&mut self, blob: BlobWriter) -> Result<(Digest, u64)> {
        self.add_blob_expecting(blob, None)
    }

    /// [`LayoutWriter::add_blob`], refusing (and dropping) what does not have `expected`'s
    /// digest.
    pub fn add_blob_expecting(&mut self, blob: BlobWriter, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let (digest, size, buffered) = blob.inner.finish();
        if let Some(expected) = expected.filter(|e| **e != digest) {
            return Err(Error::DigestMismatch {
                what: format!("blob written into {}", self.target.display()),
                expected: expected.to_string(),
                found: digest.to_string(),
            });
        }
        let staging = self.staging.path().to_path_buf();
        let file = buffered.into_inner().map_err(|e| Error::io("write a blob in", &staging, e.into_error()))?;
        atomic::persist(file, &staging.join(digest.hex()))?;
        if !self.staged.contains(&digest) {
            self.staged.push(digest.clone());
        }
        Ok((digest, size))
    }

    /// Adds a blob that exists as a verified file elsewhere (hoist's cache): hard-linked into
    /// the staging area when the file system allows, else copied.
    pub fn add_existing(&mut self, digest: &Digest, file: &Path) -> Result<()> {
        if self.staged.contains(digest) {
            return Ok(());
        }
        let staged = self.staging.path().join(digest.hex());
        if std::fs::hard_link(file, &staged).is_err() {
            std::fs::copy(file, &staged).at("copy", file)?;
        }
        self.staged.push(digest.clone());
        Ok(())
    }

    /// The staging directory, where blobs wait as `<hex>` files until the commit.
    pub fn staging_dir(&self) -> &Path {
        self.staging.path()
    }

    /// Adds a blob that the caller has put into [`staging_dir`](LayoutWriter::staging_dir) as
    /// `<hex>` itself, complete, verified and synced (e.g. linked from hoist's cache).
    pub fn add_staged(&mut self, digest: &Digest) -> Result<()> {
        let path = self.staging.path().join(digest.hex());
        fs::symlink_metadata(&path).at("read", &path)?;
        if !self.staged.contains(digest) {
            self.staged.push(digest.clone());
        }
        Ok(())
    }

    /// Adds a JSON document as a blob, in canonical form. Returns digest and size.
    pub fn add_json(&mut self, value: &impl Serialize, what: &str) -> Result<(Digest, u64)> {
        let bytes = json::canonical(value, what)?;
        let mut blob = self.blob()?;
        blob.write_all(&bytes).at("write", self.staging.path())?;
        self.add_blob(blob)
    }

    /// Whether a blob is staged.
    pub fn has_staged(&self, digest: &Digest) -> bool {
        self.staged.contains(digest)
    }

    /// Moves the staged blobs into the layout and records `root` in `index.json` under `tag`,
    /// replacing any entry with the same tag (or, untagged, the same digest).
    pub fn commit(self, root: Descriptor, tag: Option<&str>) -> Result<()> {
        let tags: Vec<String> = tag.iter().map(|t| (*t).to_owned()).collect();
        self.commit_tags(root, &tags)
    }

    /// [`LayoutWriter::commit`] with any number of tags (none: the root by digest only).
    pub fn commit_tags(self, root: Descriptor, tags: &[String]) -> Result<()> {
        let target = &self.target;
        let blobs = target.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).at("create", &blobs)?;
        let lock_path = target.join(LOCK_FILE);
        let lock = open_lock(&lock_path)?;
        lock.lock().at("lock", &lock_path)?;
        let marker = target.join(OCI_LAYOUT_FILE);
        if !marker.exists() {
            atomic::write(&marker, LAYOUT_VERSION.as_bytes(), Mode::Shared)?;
        }
        for digest in &self.staged {
            let destination = blobs.join(digest.hex());
            if !destination.exists() {
                let staged = self.staging.path().join(digest.hex());
                fs::rename(&staged, &destination).at("move a blob into", &blobs)?;
            }
        }
        // The blobs' new names reach the disk before an index.json that lists them.
        atomic::sync_dir(&blobs)?;
        let mut manifests = match fs::symlink_metadata(target.join(INDEX_FILE)) {
            Ok(_) => Layout::open(target)?.index()?.manifests,
            Err(_) => Vec::new(),
        };
        manifests.retain(|d| match tags.is_empty() {
            false => !ref_name(d).is_some_and(|name| tags.iter().any(|t| t == name)),
            true => ref_name(d).is_some() || d.digest != root.digest,
        });
        if tags.is_empty() {
            manifests.push(root.clone());
        }
        for tag in tags {
            let mut entry = root.clone();
            entry.annotations.insert(REF_NAME.to_owned(), tag.clone());
            manifests.push(entry);
        }
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(MediaType::OciIndex),
            manifests,
            annotations: Default::default(),
        };
        atomic::write(&target.join(INDEX_FILE), &json::canonical(&index, INDEX_FILE)?, Mode::Shared)?;
        Ok(())
    }
}

/// Opens (or creates) the lock file without following a symlink and without truncating it:
/// a link planted in the layout must not make hoist write elsewhere.
fn open_lock(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::CorruptLayout {
            path: path.parent().unwrap_or(path).to_path_buf(),
            reason: format!(
                "cannot open its lock file {} ({e}); it must be a regular file, not a link",
                path.display()
            ),
        })
}

/// The path itself when it is a directory, else its closest existing ancestor (or `.`).
pub(crate) fn nearest_existing(path: &Path) -> PathBuf {
    let mut candidate = Some(path);
    while let Some(p) = candidate {
        if !p.as_os_str().is_empty() && p.is_dir() {
            return p.to_path_buf();
        }
        candidate = p.parent();
    }
    PathBuf::from(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(writer: &mut LayoutWriter, content: &str) -> Descriptor {
        let (digest, size) = writer.add_json(&serde_json::json!({ "content": content }), "test").unwrap();
        Descriptor::new(MediaType::OciManifest, digest, size)
    }

    #[test]
    fn commit_adds_tags_replaces_same_tag_and_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out/layout");
        for (content, tag) in [("one", "v1"), ("two", "v2"), ("three", "v1")] {
            let mut writer = LayoutWriter::begin(&target).unwrap();
            let root = descriptor(&mut writer, content);
            writer.commit(root, Some(tag)).unwrap();
        }
        let layout = Layout::open(&target).unwrap();
        let index = layout.index().unwrap();
        let tags: Vec<_> = index.manifests.iter().map(|d| ref_name(d).unwrap().to_owned()).collect();
        assert_eq!(tags, ["v2", "v1"]);
        let v1 = layout.find_tag("v1").unwrap().unwrap();
        assert_eq!(layout.read_blob(&v1.digest).unwrap(), br#"{"content":"three"}"#);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".hoist-staging"))
            .collect();
        assert!(leftovers.is_empty(), "staging directories left behind: {leftovers:?}");
    }

    #[test]
    fn an_abandoned_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("layout");
        let mut writer = LayoutWriter::begin(&target).unwrap();
        descriptor(&mut writer, "never committed");
        drop(writer);
        assert!(!target.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_that_is_not_a_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = LayoutWriter::begin(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotALayout { output: true, .. }), "{err}");
        assert!(err.to_string().contains("choose a new or empty directory"), "{err}");
        let read = Layout::open(dir.path()).unwrap_err();
        assert!(matches!(read, Error::NotALayout { output: false, .. }), "{read}");
        assert!(read.to_string().contains("check the path"), "{read}");
        let file = dir.path().join("notes.txt");
        assert!(matches!(LayoutWriter::begin(&file).unwrap_err(), Error::NotALayout { .. }));
    }

    #[test]
    fn a_tampered_blob_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = LayoutWriter::begin(dir.path()).unwrap();
        let root = descriptor(&mut writer, "x");
        writer.commit(root.clone(), Some("t")).unwrap();
        let layout = Layout::open(dir.path()).unwrap();
        fs::write(layout.blob_path(&root.digest), "tampered").unwrap();
        assert!(matches!(layout.read_blob(&root.digest), Err(Error::DigestMismatch { .. })));
    }
}

//! hoist's local cache: a verified, content-addressed blob store, bounded in size, and the
//! map from a layer's content (its diff_id and how it is compressed) to the blob it became.
//!
//! Layout under the cache directory (`$XDG_CACHE_HOME/hoist`, else `~/.cache/hoist`):
//!
//! - `blobs/sha256/<hex>`: blobs, named by the sha256 of their bytes, read-only;
//! - `layers/<hex>`: one small JSON record per layer key, naming its blob;
//! - `sources/<hex>`: the diff_id a layer source had the last time it was built (a hint only);
//! - `tmp/`: files being written, invisible until they are renamed into place.
//!
//! Every file appears by an atomic rename of a complete, verified temporary file, so two
//! processes can use one cache at once: the worst a race does is write the same blob twice.
//! Blobs are verified every time they are used, so a damaged file is found, deleted and
//! treated as absent. A blob's modification time records its last use; [`Cache::evict`]
//! deletes the least recently used blobs until the cache fits its bound. Users of a blob take
//! their own hard link or copy of it ([`Cache::link_into`]), or hold it open
//! ([`Cache::open_blob`]), which eviction leaves alone.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::atomic::{self, Mode};
use crate::fsutil::small_file;
use crate::fsutil::xdg::BaseDir;
use crate::offload::Writeback;

/// The default bound on the blobs' total size: 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;
/// Temporary files older than this are left over from a crashed process and removed.
const STALE_TEMPORARY: Duration = Duration::from_secs(24 * 3600);
/// Bytes per read when verifying or copying a blob.
const READ_BUFFER: usize = 1 << 20;
/// The largest layer record or source hint read; a larger one is not a record.
const MAX_RECORD_BYTES: u64 = 64 << 10;

/// A cache directory and its size bound.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
    max_size: u64,
}

/// What a layer became: its blob's digest and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedLayer {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
}

/// A layer record as stored in `layers/`.
#[derive(Serialize, Deserialize)]
struct LayerRecord {
    digest: String,
    size: u64,
}

/// A blob that has been verified and stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// What [`Cache::evict`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Eviction {
    /// Blobs deleted.
    pub removed: usize,
    /// Bytes they held.
    pub freed: u64,
    /// Bytes the remaining blobs hold.
    pub kept: u64,
}

impl Cache {
    /// `$XDG_CACHE_HOME/hoist`, else `$HOME/.cache/hoist` (see [`BaseDir`]).
    pub fn default_dir() -> Result<PathBuf> {
        BaseDir::Cache.hoist_dir()
    }

    /// Opens (creating when needed) the cache in `dir`, bounded to [`DEFAULT_MAX_SIZE`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<Cache> {
        let cache = Cache { root: dir.into(), max_size: DEFAULT_MAX_SIZE };
        for sub in [cache.blobs(), cache.root.join("layers"), cache.root.join("sources"), cache.tmp()] {
            fs::create_dir_all(&sub).at("create the cache directory", &sub)?;
        }
        Ok(cache)
    }

    /// The same cache with another bound on its blobs' total size, in bytes.
    pub fn with_max_size(mut self, bytes: u64) -> Cache {
        self.max_size = bytes;
        self
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The bound on the blobs' total size, in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    fn blobs(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the blob `digest` is (or would be); use it through [`Cache::get`] or
    /// [`Cache::open_blob`], which verify it.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs().join(digest.hex())
    }

    /// The path of the blob `digest` once its content is verified; `None` when it is absent or
    /// damaged (a damaged blob is deleted). Marks the blob as used.
    ///
    /// Another process may evict the blob after this returns: to keep it, use
    /// [`Cache::link_into`], which gives the caller a name of its own.
    pub fn get(&self, digest: &Digest) -> Result<Option<PathBuf>> {
        Ok(self.open_blob(digest)?.map(|_| self.blob_path(digest)))
    }

    /// The blob `digest`, open, and its size, once its content is verified through that very
    /// file; `None` when it is absent or damaged (a damaged blob is deleted). Marks the blob
    /// as used. Read through the file (by position, `read_at`), it stays whatever evictions
    /// follow, and nothing of it outlives the process but the cache's own blob.
    pub fn open_blob(&self, digest: &Digest) -> Result<Option<(File, u64)>> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let (found, size) = Digest::of_reader(&file).at("read", &path)?;
        if &found != digest {
            self.discard(digest, &path, &found);
            return Ok(None);
        }
        touch(&path);
        Ok(Some((file, size)))
    }

    /// Puts the blob `digest` into `dir` as `dir/<hex>`: a hard link when `dir` is on the
    /// cache's file system, else a copy. The content is verified through the new name, so a
    /// concurrent eviction cannot take it away afterwards. Returns the blob's size, or `None`
    /// (and nothing in `dir`) when the blob is absent or damaged; a damaged blob is deleted.
    pub fn link_into(&self, digest: &Digest, dir: &Path) -> Result<Option<u64>> {
        self.link(digest, dir, true)
    }

    /// [`Cache::link_into`], but `None` (and nothing in `dir`) where a hard link is impossible
    /// and it would copy: for a guess, which should cost no more than a read.
    pub fn hard_link_into(&self, digest: &Digest, dir: &Path) -> Result<Option<u64>> {
        self.link(digest, dir, false)
    }

    fn link(&self, digest: &Digest, dir: &Path, copy_across: bool) -> Result<Option<u64>> {
        let source = self.blob_path(digest);
        let target = dir.join(digest.hex());
        match fs::hard_link(&source, &target) {
            Ok(()) => {
                let file = File::open(&target).at("read", &target)?;
                let (found, size) = hash_reader(file, &target)?;
                if &found != digest {
                    fs::remove_file(&target).at("remove", &target)?;
                    self.discard(digest, &source, &found);
                    return Ok(None);
                }
                touch(&source);
                Ok(Some(size))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Already there: keep it if it is right.
                let (found, size) = hash_reader(File::open(&target).at("read", &target)?, &target)?;
                if &found == digest {
                    return Ok(Some(size));
                }
                fs::remove_file(&target).at("remove", &target)?;
                Ok(None)
            }
            Err(_) if !copy_across => Ok(None),
            Err(_) => {
                // Another file system: copy, hashing on the way, and name the copy when it
                // proves right.
                let input = match File::open(&source) {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(Error::io("read", &source, e)),
                };
                let copy = atomic::temp_in(dir, Mode::Private)?;
                let mut writer = HashingWriter::new(BufWriter::with_capacity(READ_BUFFER, copy));
                copy_all(input, &mut writer, &source)?;
                let (found, size, buffered) = writer.finish();
                if &found != digest {
                    self.discard(digest, &source, &found);
                    return Ok(None);
                }
                let copy = buffered.into_inner().map_err(|e| Error::io("write", dir, e.into_error()))?;
                atomic::persist(copy, &target)?;
                touch(&source);
                Ok(Some(size))
            }
        }
    }

    /// Starts writing a new blob. It becomes visible only through [`CacheWriter::commit`],
    /// which checks its digest.
    pub fn writer(&self) -> Result<CacheWriter> {
        let tmp = self.tmp();
        let file = atomic::temp_in(&tmp, Mode::Private)?;
        let inner = HashingWriter::new(BufWriter::with_capacity(READ_BUFFER, file));
        Ok(CacheWriter { blobs: self.blobs(), inner, writeback: Writeback::default() })
    }

    /// Stores a copy of `file`, which must hash to `digest` (checked before it is visible).
    pub fn insert_file(&self, digest: &Digest, file: &Path) -> Result<CachedBlob> {
        let input = File::open(file).at("read", file)?;
        let mut writer = self.writer()?;
        copy_all(input, &mut writer, file)?;
        writer.commit(Some(digest), None)
    }

    fn layer_record(&self, key: &LayerKey) -> PathBuf {
        self.root.join("layers").join(key.file_name())
    }

    /// The blob a layer became before, if its record and its blob are both there. The blob is
    /// not verified here: [`Cache::link_into`] does that when it is used.
    pub fn layer(&self, key: &LayerKey) -> Result<Option<CachedLayer>> {
        let path = self.layer_record(key);
        let bytes = match small_file::read(&path, MAX_RECORD_BYTES) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.is_missing() => return Ok(None),
            Err(small_file::ReadError::Io(e)) => return Err(Error::io("read", &path, e)),
            Err(_) => None,
        };
        let parsed = bytes
            .and_then(|bytes| serde_json::from_slice::<LayerRecord>(&bytes).ok())
            .and_then(|r| Some(CachedLayer { digest: r.digest.parse().ok()?, size: r.size }));
        let Some(layer) = parsed else {
            let _ = fs::remove_file(&path);
            return Ok(None);
        };
        if !self.blob_path(&layer.digest).exists() {
            let _ = fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(layer))
    }

    /// Records that the layer `key` became `layer`.
    pub fn record_layer(&self, key: &LayerKey, layer: &CachedLayer) -> Result<()> {
        let record = LayerRecord { digest: layer.digest.to_string(), size: layer.size };
        let bytes =
            serde_json::to_vec(&record).map_err(|source| Error::Json { what: "cache record".into(), source })?;
        self.write_small(&self.layer_record(key), &bytes)
    }

    /// The diff_id recorded for a layer source under `key` (any string naming the source and
    /// its settings), if any. Only a hint, e.g. for deciding whether to hash a layer before
    /// compressing it; never a substitute for the diff_id itself.
    pub fn source_hint(&self, key: &str) -> Option<Digest> {
        let path = self.root.join("sources").join(Digest::of(key.as_bytes()).hex());
        String::from_utf8(small_file::read(&path, MAX_RECORD_BYTES).ok()?).ok()?.trim().parse().ok()
    }

    /// Records the diff_id a layer source had, for [`Cache::source_hint`].
    pub fn record_source_hint(&self, key: &str, diff_id: &Digest) -> Result<()> {
        let path = self.root.join("sources").join(Digest::of(key.as_bytes()).hex());
        self.write_small(&path, diff_id.to_string().as_bytes())
    }

    /// Replaces the record at `path`, through a temporary file in `tmp/` (where
    /// [`Cache::evict`] finds what a crash leaves).
    fn write_small(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let mut file = atomic::temp_in(&self.tmp(), Mode::Private)?;
        file.write_all(bytes).at("write", path)?;
        atomic::persist(file, path)
    }

    /// Deletes the least recently used blobs until the rest fit the size bound, and temporary
    /// files and directories left by crashed processes (a killed push of an earlier version
    /// left `staged-*` directories of links to blobs). Files that another process deletes
    /// meanwhile are skipped.
    pub fn evict(&self) -> Result<Eviction> {
        let blobs = self.blobs();
        let mut entries = Vec::new();
        for entry in fs::read_dir(&blobs).at("read", &blobs)? {
            let entry = entry.at("read", &blobs)?;
            // Only blobs: files being written by other processes have other names.
            let name = entry.file_name();
            let is_blob = name.len() == 64 && name.as_encoded_bytes().iter().all(u8::is_ascii_hexdigit);
            if !is_blob {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            entries.push((used, entry.file_name(), meta.len()));
        }
        entries.sort();
        let mut kept: u64 = entries.iter().map(|e| e.2).sum();
        let mut eviction = Eviction::default();
        for (_, name, size) in entries {
            if kept <= self.max_size {
                break;
            }
            match fs::remove_file(blobs.join(&name)) {
                Ok(()) => {
                    eviction.removed += 1;
                    eviction.freed += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", blobs.join(&name), e)),
            }
            kept -= size;
        }
        eviction.kept = kept;
        let tmp = self.tmp();
        for entry in fs::read_dir(&tmp).at("read", &tmp)?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let stale = meta.modified().is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_TEMPORARY));
            match (stale, meta.is_dir()) {
                (false, _) => {}
                (true, true) => {
                    let _ = fs::remove_dir_all(entry.path());
                }
                (true, false) => {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(eviction)
    }

    /// Deletes a damaged blob, saying so.
    fn discard(&self, digest: &Digest, path: &Path, found: &Digest) {
        tracing::warn!("cache blob {} is damaged (its content hashes to {found}); deleting it", path.display());
        let _ = fs::remove_file(self.blob_path(digest));
    }
}

/// Identifies a layer blob: the diff_id of the uncompressed tar, and everything that decides
/// its compressed bytes (see [`crate::layer::Compression::identity`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LayerKey {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Algorithm, level, block size and backend version.
    pub compression: String,
}

impl LayerKey {
    fn file_name(&self) -> String {
        Digest::of(format!("hoist layer v1\n{}\n{}\n", self.compression, self.diff_id).as_bytes()).hex().to_owned()
    }
}

/// A blob being written into the cache; hashed as it is written.
pub struct CacheWriter {
    blobs: PathBuf,
    inner: HashingWriter<BufWriter<NamedTempFile>>,
    writeback: Writeback,
}

impl Write for CacheWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let buffered = self.inner.get_ref();
        self.writeback.wrote(n, buffered.buffer().len(), buffered.get_ref().as_file());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl CacheWriter {
    /// Makes the blob visible under its digest, after checking it against `expected` when
    /// given, and syncing it to disk. With `also_into`, the blob is first hard-linked (or
    /// copied) into that directory as `<hex>`, so the caller holds it whatever evictions
    /// follow.
    pub fn commit(self, expected: Option<&Digest>, also_into: Option<&Path>) -> Result<CachedBlob> {
        self.persist(expected, also_into).map(|(blob, _)| blob)
    }

    /// [`CacheWriter::commit`], keeping the blob open (as [`Cache::open_blob`] gives it).
    pub fn commit_open(self, expected: Option<&Digest>) -> Result<(CachedBlob, File)> {
        self.persist(expected, None)
    }

    fn persist(self, expected: Option<&Digest>, also_into: Option<&Path>) -> Result<(CachedBlob, File)> {
        let (digest, size, buffered) = self.inner.finish();
        let tmp = self.blobs.clone();
        let file = buffered.into_inner().map_err(|e| Error::io("write a blob in", &tmp, e.into_error()))?;
        if let Some(expected) = expected {
            if expected != &digest {
                return Err(Error::DigestMismatch {
                    what: "blob for the cache".into(),
                    expected: expected.to_string(),
                    found: digest.to_string(),
                });
            }
        }
        let _ = file.as_file().set_permissions(fs::Permissions::from_mode(0o444));
        if let Some(dir) = also_into {
            let target = dir.join(digest.hex());
            if fs::hard_link(file.path(), &target).is_err() && !target.exists() {
                fs::copy(file.path(), &target).at("copy", file.path())?;
                File::open(&target).and_then(|f| f.sync_all()).at("write", &target)?;
            }
        }
        let path = self.blobs.join(digest.hex());
        let file = atomic::persist_open(file, &path)?;
        Ok((CachedBlob { digest, size }, file))
    }
}

/// Sets a blob's modification time to now: its last use, for eviction.
fn touch(path: &Path) {
    if let Ok(file) = File::open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn hash_reader(file: File, path: &Path) -> Result<(Digest, u64)> {
    Digest::of_reader(file).at("read", path)
}

fn copy_all(mut input: File, out: &mut impl Write, path: &Path) -> Result<()> {
    let mut buffer = vec![0; READ_BUFFER];
    loop {
        match input.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => out.write_all(&buffer[..n]).at("write a copy of", path)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(cache: &Cache, bytes: &[u8]) -> Digest {
        let mut writer = cache.writer().unwrap();
        writer.write_all(bytes).unwrap();
        writer.commit(None, None).unwrap().digest
    }

    /// Across file systems (the cache on disk, the layout in tmpfs), `link_into` copies and
    /// `hard_link_into` leaves nothing.
    #[test]
    fn across_file_systems_a_blob_is_copied_or_for_a_guess_left_alone() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        let digest = stored(&cache, b"layer bytes");
        let other = tempfile::tempdir_in("/dev/shm").unwrap();
        let device = |path: &Path| fs::metadata(path).unwrap().dev();
        assert_ne!(device(dir.path()), device(other.path()), "/dev/shm is a file system of its own");
        assert_eq!(cache.hard_link_into(&digest, other.path()).unwrap(), None);
        assert_eq!(fs::read_dir(other.path()).unwrap().count(), 0, "nothing copied for a guess");
        assert_eq!(cache.link_into(&digest, other.path()).unwrap(), Some(11));
        assert_eq!(fs::read(other.path().join(digest.hex())).unwrap(), b"layer bytes");
        let same = tempfile::tempdir_in(dir.path()).unwrap();
        assert_eq!(cache.hard_link_into(&digest, same.path()).unwrap(), Some(11));
    }

    #[test]
    fn blobs_are_verified_on_the_way_in_and_on_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        let digest = stored(&cache, b"layer bytes");
        assert_eq!(digest, Digest::of(b"layer bytes"));
        assert!(cache.get(&digest).unwrap().is_some());

        let mut wrong = cache.writer().unwrap();
        wrong.write_all(b"other bytes").unwrap();
        assert!(matches!(wrong.commit(Some(&digest), None), Err(Error::DigestMismatch { .. })));
        let source = dir.path().join("file");
        fs::write(&source, b"not what the digest says").unwrap();
        assert!(cache.insert_file(&Digest::of(b"x"), &source).is_err());
        assert!(cache.get(&Digest::of(b"x")).unwrap().is_none(), "nothing visible after a failed insert");
        assert_eq!(fs::read_dir(cache.tmp()).unwrap().count(), 0, "no temporary left behind");

        let out = tempfile::tempdir().unwrap();
        assert_eq!(cache.link_into(&digest, out.path()).unwrap(), Some(11));
        assert_eq!(fs::read(out.path().join(digest.hex())).unwrap(), b"layer bytes");

        // Damage: the blob is refused, deleted, and not handed out.
        let path = cache.blob_path(&digest);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"layer bytez").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(cache.link_into(&digest, elsewhere.path()).unwrap(), None);
        assert!(!elsewhere.path().join(digest.hex()).exists());
        assert!(!path.exists(), "a damaged blob is deleted");
        assert!(cache.get(&digest).unwrap().is_none());
    }

    #[test]
    fn layer_records_need_their_blob() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = LayerKey { diff_id: Digest::of(b"tar"), compression: "gzip/level=6".into() };
        assert_eq!(cache.layer(&key).unwrap(), None);
        let digest = stored(&cache, b"compressed");
        let layer = CachedLayer { digest: digest.clone(), size: 10 };
        cache.record_layer(&key, &layer).unwrap();
        assert_eq!(cache.layer(&key).unwrap(), Some(layer));
        let other = LayerKey { compression: "gzip/level=9".into(), ..key.clone() };
        assert_eq!(cache.layer(&other).unwrap(), None, "another level is another key");
        fs::remove_file(cache.blob_path(&digest)).unwrap();
        assert_eq!(cache.layer(&key).unwrap(), None, "an evicted blob is a miss");
        cache.record_source_hint("src", &digest).unwrap();
        assert_eq!(cache.source_hint("src"), Some(digest));
        assert_eq!(cache.source_hint("other"), None);
    }

    #[test]
    fn eviction_removes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap().with_max_size(250);
        let old = stored(&cache, &[1; 100]);
        let middle = stored(&cache, &[2; 100]);
        let new = stored(&cache, &[3; 100]);
        let base = SystemTime::now() - Duration::from_secs(1000);
        for (i, digest) in [&old, &middle, &new].into_iter().enumerate() {
            File::open(cache.blob_path(digest)).unwrap().set_modified(base + Duration::from_secs(i as u64)).unwrap();
        }
        assert!(cache.get(&old).unwrap().is_some(), "using the oldest makes it the newest");
        // Another process's file in the making is not a blob, whatever its age.
        let writing = cache.blobs().join(".tmpWRITING");
        fs::write(&writing, [0; 500]).unwrap();
        File::open(&writing).unwrap().set_modified(base - Duration::from_secs(1)).unwrap();
        let eviction = cache.evict().unwrap();
        assert!(writing.exists());
        assert_eq!((eviction.removed, eviction.freed, eviction.kept), (1, 100, 200));
        assert!(cache.get(&middle).unwrap().is_none());
        assert!(cache.get(&old).unwrap().is_some() && cache.get(&new).unwrap().is_some());
    }
}

//! Where blobs were seen: the registries and repositories hoist pushed each blob to or pulled
//! it from, remembered in hoist's cache so that a push to another repository of the same
//! registry can mount the blob instead of uploading it (as docker and skopeo do).
//!
//! Only a hint: every mount falls back to an upload, so a stale or missing record costs a
//! request, never correctness. One small file per digest, at most [`KEEP`] places each,
//! replaced atomically; concurrent writers may drop each other's newest line, nothing worse.

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::IoContext;
use crate::fsutil::atomic::{self, Mode};

/// Places remembered per blob.
pub const KEEP: usize = 8;
/// The largest record read; a larger one is ignored.
const MAX_RECORD_BYTES: u64 = 16 << 10;

/// The record of where blobs were seen.
#[derive(Clone, Debug)]
pub struct BlobPlaces {
    dir: PathBuf,
}

impl BlobPlaces {
    /// The record under hoist's cache directory `cache_root` (`$XDG_CACHE_HOME/hoist`).
    pub fn open(cache_root: &Path) -> BlobPlaces {
        BlobPlaces { dir: cache_root.join("places") }
    }

    fn file(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    fn read(&self, digest: &Digest) -> Vec<(String, String)> {
        let Ok(bytes) = crate::fsutil::small_file::read_unlinked(&self.file(digest), MAX_RECORD_BYTES) else {
            return Vec::new();
        };
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| line.split_once(' '))
            .filter(|(registry, repository)| is_name(registry) && is_name(repository))
            .map(|(registry, repository)| (registry.to_owned(), repository.to_owned()))
            .collect()
    }

    /// Remembers that `registry/repository` has `digest` (best effort: a record that cannot
    /// be written is only a missed mount later).
    pub fn record(&self, registry: &str, repository: &str, digest: &Digest) {
        if !is_name(registry) || !is_name(repository) {
            return;
        }
        let mut places = self.read(digest);
        places.retain(|(r, p)| !(r == registry && p == repository));
        places.push((registry.to_owned(), repository.to_owned()));
        let start = places.len().saturating_sub(KEEP);
        let text: String = places[start..].iter().map(|(r, p)| format!("{r} {p}\n")).collect();
        if let Err(e) = self.write(digest, &text) {
            tracing::debug!("cannot remember where {digest} is: {e}");
        }
    }

    fn write(&self, digest: &Digest, text: &str) -> crate::Result<()> {
        std::fs::create_dir_all(&self.dir).at("create", &self.dir)?;
        atomic::write(&self.file(digest), text.as_bytes(), Mode::Private)
    }

    /// Repositories of `registry` known to hold `digest`, most recent first.
    pub fn repositories(&self, registry: &str, digest: &Digest) -> Vec<String> {
        self.read(digest).into_iter().rev().filter(|(r, _)| r == registry).map(|(_, p)| p).collect()
    }
}

/// A registry host or repository name as they are written: no spaces or control characters.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_remembered_newest_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let places = BlobPlaces::open(dir.path());
        let digest = Digest::of(b"blob");
        assert!(places.repositories("r:5000", &digest).is_empty());
        places.record("r:5000", "team/a", &digest);
        places.record("r:5000", "team/b", &digest);
        places.record("other", "team/c", &digest);
        places.record("r:5000", "team/a", &digest);
        assert_eq!(places.repositories("r:5000", &digest), ["team/a", "team/b"]);
        for i in 0..20 {
            places.record("r:5000", &format!("many/{i}"), &digest);
        }
        assert_eq!(places.repositories("r:5000", &digest).len(), KEEP);
        places.record("r:5000", "bad name\nline", &digest);
        assert!(!places.repositories("r:5000", &digest).iter().any(|p| p.contains(' ')));
    }
}

//! Image archives as sources: an oci-archive (a tar of an OCI layout) and a docker-archive (what
//! `docker save` writes). The tar's headers are walked once; blobs are byte ranges of the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::root::{self, Holder, Naming};
use super::{Source, MAX_CONFIG_BYTES};
use crate::archive::{blob_name, TarIndex};
use crate::blob::BlobStream;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::blocking;
use crate::layout::INDEX_FILE;
use crate::location::{ArchiveImage, Location};
use crate::model::media_type::OCI_MANIFEST;
use crate::model::{Descriptor, ImageIndex, MediaType, RawManifest, MAX_MANIFEST_BYTES};

/// Streams the tar entry `name` (`size` bytes at `offset`) as the blob `descriptor` from
/// `from`.
fn entry_stream(
    tar: &TarIndex,
    entry: (u64, u64),
    descriptor: &Descriptor,
    from: u64,
    what: String,
) -> Result<BlobStream> {
    let (offset, size) = entry;
    if size != descriptor.size {
        return Err(Error::CorruptArchive {
            path: tar.path().to_path_buf(),
            reason: format!("blob {} has {size} bytes, its descriptor says {}", descriptor.digest, descriptor.size),
        });
    }
    let start = from.min(size);
    let chunks = tar.range(offset + start, size - start);
    Ok(BlobStream::new(chunks, descriptor, start, what))
}

/// A tar of an OCI image layout, and the tag or digest in it, if any.
#[derive(Clone)]
pub struct OciArchiveSource {
    /// Shared with the blocking-pool work that reads the index and manifests.
    tar: Arc<TarIndex>,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl OciArchiveSource {
    /// Opens the oci-archive `file`, to read the image `tag` or `digest` names (neither: its
    /// only one).
    pub fn open(file: &Path, tag: Option<String>, digest: Option<Digest>) -> Result<OciArchiveSource> {
        let tar = TarIndex::open(file)?;
        tar.require("oci-layout")?;
        Ok(OciArchiveSource { tar: Arc::new(tar), tag, digest })
    }
}

impl Holder for OciArchiveSource {
    fn index(&self) -> Result<ImageIndex> {
        let bytes = self.tar.read_small(INDEX_FILE, MAX_MANIFEST_BYTES)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::CorruptArchive {
            path: self.tar.path().to_path_buf(),
            reason: format!("{INDEX_FILE} is not a valid image index: {e}"),
        })
    }

    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.tar.find(&blob_name(digest)).map(|(_, size)| size)
    }

    fn read_manifest(&self, digest: &Digest, media_type: Option<MediaType>) -> Result<RawManifest> {
        let bytes = self.tar.read_small(&blob_name(digest), MAX_MANIFEST_BYTES)?;
        let manifest = RawManifest::new(bytes, media_type, &format!("manifest {digest} in {}", self.name()))?;
        if &manifest.digest != digest {
            return Err(Error::DigestMismatch {
                what: format!("manifest in {}", self.name()),
                expected: digest.to_string(),
                found: manifest.digest.to_string(),
            });
        }
        Ok(manifest)
    }

    fn naming(&self) -> Naming {
        Naming {
            reference: "archive reference",
            several: "the archive holds several images; name one as oci-archive:FILE:TAG or oci-archive:FILE@sha256:…",
            name: self.name(),
            place: format!("oci-archive:{}", self.tar.path().display()),
        }
    }
}

impl Source for OciArchiveSource {
    fn name(&self) -> String {
        self.location().to_string()
    }

    fn location(&self) -> Location {
        Location::OciArchive { file: self.tar.path().to_path_buf(), tag: self.tag.clone(), digest: self.digest.clone() }
    }

    fn root(&self) -> BoxFuture<'_, Result<RawManifest>> {
        let this = self.clone();
        Box::pin(blocking::run(move || root::find(&this, this.tag.as_deref(), this.digest.as_ref())))
    }

    fn manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<RawManifest>> {
        let (this, digest) = (self.clone(), digest.clone());
        Box::pin(blocking::run(move || this.read_manifest(&digest, None)))
    }

    fn blob<'a>(&'a self, descriptor: &'a Descriptor, offset: u64) -> BoxFuture<'a, Result<BlobStream>> {
        Box::pin(async move {
            let entry = self.tar.require(&blob_name(&descriptor.digest))?;
            entry_stream(&self.tar, entry, descriptor, offset, self.name())
        })
    }

    fn check_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (_, size) = self.tar.require(&blob_name(&descriptor.digest))?;
            match size == descriptor.size {
                true => Ok(()),
                false => Err(Error::CorruptArchive {
                    path: self.tar.path().to_path_buf(),
                    reason: format!(
                        "blob {} has {size} bytes, its descriptor says {}",
                        descriptor.digest, descriptor.size
                    ),
                }),
            }
        })
    }

    fn seekable(&self) -> bool {
        true
    }
}

/// One image of a docker-archive's `manifest.json`.
#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// The image of a docker-archive's `manifest.json` that `image` names (without one, its only
/// image); an error listing what it has when there is none.
fn pick<'a>(entries: &'a [DockerEntry], image: Option<&ArchiveImage>, file: &Path) -> Result<&'a DockerEntry> {
    let found =
        match image {
            Some(named @ ArchiveImage::Named(_)) => {
                entries.iter().find(|e| e.repo_tags.iter().flatten().any(|t| named.is_named(t)))
            }
            Some(ArchiveImage::Index(index)) => entries.get(*index),
            None if entries.len() == 1 => entries.first(),
            None => return Err(Error::invalid(
                "archive reference",
                file.display().to_string(),
                "the archive holds several images; name one as docker-archive:FILE:NAME:TAG or docker-archive:FILE:@N",
            )),
        };
    found.ok_or_else(|| {
        let all: Vec<String> = entries
            .iter()
            .enumerate()
            .map(|(n, e)| match e.repo_tags.as_deref().unwrap_or_default() {
                [] => format!("@{n} (untagged)"),
                tags => format!("@{n} {}", tags.join(" ")),
            })
            .collect();
        Error::invalid(
            "docker-archive image",
            image.map(ArchiveImage::to_string).unwrap_or_default(),
            format!("not in {}; it has: {}", file.display(), all.join(", ")),
        )
    })
}

/// A docker-archive: one of its images (the one `REF` or `@N` names, or its only one),
/// presented as an OCI image manifest (the archive keeps no manifest of its own; the config is
/// the same JSON in both formats, and layers keep their bytes, typed by their compression).
pub struct DockerArchiveSource {
    tar: TarIndex,
    image: Option<ArchiveImage>,
    manifest: RawManifest,
    /// Digest → name in the tar.
    blobs: HashMap<Digest, String>,
}

impl DockerArchiveSource {
    /// Opens the docker-archive `file`; layers whose names do not carry their digest are
    /// hashed once here.
    pub fn open(file: &Path, image: Option<ArchiveImage>) -> Result<DockerArchiveSource> {
        let tar = TarIndex::open(file)?;
        let corrupt = |reason: String| Error::CorruptArchive { path: file.to_path_buf(), reason };
        let bytes = tar.read_small("manifest.json", MAX_MANIFEST_BYTES)?;
        let entries: Vec<DockerEntry> =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("manifest.json is not valid: {e}")))?;
        let entry = pick(&entries, image.as_ref(), file)?;
        let mut blobs = HashMap::new();
        let config_bytes = tar.read_small(&entry.config, MAX_CONFIG_BYTES)?;
        let config = Descriptor::new(MediaType::OciConfig, Digest::of(&config_bytes), config_bytes.len() as u64);
        blobs.insert(config.digest.clone(), entry.config.clone());
        let mut layers = Vec::new();
        for name in &entry.layers {
            let named =
                name.strip_prefix("blobs/sha256/").and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok());
            let (digest, size) = match named {
                Some(digest) => (digest, tar.require(name)?.1),
                None => tar.hash(name)?,
            };
            let head = tar.head(name, 4)?;
            let media_type = match head.as_slice() {
                [0x1f, 0x8b, ..] => MediaType::OciLayerGzip,
                [0x28, 0xb5, 0x2f, 0xfd] => MediaType::OciLayerZstd,
                _ => MediaType::OciLayer,
            };
            blobs.insert(digest.clone(), name.clone());
            layers.push(Descriptor::new(media_type, digest, size));
        }
        let document = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
        });
        let manifest = RawManifest::new(
            crate::json::canonical(&document, "docker-archive manifest")?,
            Some(MediaType::OciManifest),
            "docker-archive manifest",
        )?;
        Ok(DockerArchiveSource { tar, image, manifest, blobs })
    }

    fn entry(&self, digest: &Digest) -> Result<(u64, u64)> {
        let name = self.blobs.get(digest).ok_or_else(|| Error::CorruptArchive {
            path: self.tar.path().to_path_buf(),
            reason: format!("no blob {digest} in its image"),
        })?;
        self.tar.require(name)
    }

    /// The tar file.
    pub fn file(&self) -> PathBuf {
        self.tar.path().to_path_buf()
    }
}

impl Source for DockerArchiveSource {
    fn name(&self) -> String {
        self.location().to_string()
    }

    fn location(&self) -> Location {
        Location::DockerArchive { file: self.file(), image: self.image.clone() }
    }

    fn root(&self) -> BoxFuture<'_, Result<RawManifest>> {
        Box::pin(async move { Ok(self.manifest.clone()) })
    }

    fn manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<RawManifest>> {
        Box::pin(async move {
            match digest == &self.manifest.digest {
                true => Ok(self.manifest.clone()),
                false => Err(Error::CorruptArchive {
                    path: self.file(),
                    reason: format!("a docker-archive has no manifest {digest}"),
                }),
            }
        })
    }

    fn blob<'a>(&'a self, descriptor: &'a Descriptor, offset: u64) -> BoxFuture<'a, Result<BlobStream>> {
        Box::pin(async move {
            let entry = self.entry(&descriptor.digest)?;
            entry_stream(&self.tar, entry, descriptor, offset, self.name())
        })
    }

    fn check_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.entry(&descriptor.digest).map(|_| ()) })
    }

    fn seekable(&self) -> bool {
        true
    }
}

//! An OCI layout directory as a source.

use futures_util::future::BoxFuture;

use super::Source;
use crate::blob::{file_chunks, BlobStream};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::{ref_name, Layout};
use crate::location::Location;
use crate::model::{Descriptor, MediaType, RawManifest};

/// An OCI layout and the tag or digest in it, if any.
pub struct LayoutSource {
    layout: Layout,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl LayoutSource {
    /// Opens the layout at `dir`, to read the image `tag` or `digest` names (neither: its only
    /// one).
    pub fn open(dir: &std::path::Path, tag: Option<String>, digest: Option<Digest>) -> Result<LayoutSource> {
        Ok(LayoutSource { layout: Layout::open(dir)?, tag, digest })
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptLayout { path: self.layout.root().to_path_buf(), reason }
    }

    fn read_manifest(&self, digest: &Digest, media_type: Option<MediaType>) -> Result<RawManifest> {
        let what = format!("manifest {digest} in {}", self.name());
        RawManifest::new(self.layout.read_blob(digest)?, media_type, &what)
    }
}

impl Source for LayoutSource {
    fn name(&self) -> String {
        self.location().to_string()
    }

    fn location(&self) -> Location {
        Location::Layout { dir: self.layout.root().to_path_buf(), tag: self.tag.clone(), digest: self.digest.clone() }
    }

    fn root(&self) -> BoxFuture<'_, Result<RawManifest>> {
        Box::pin(async move {
            if let Some(digest) = &self.digest {
                let listed = self.layout.index()?.manifests.into_iter().find(|d| &d.digest == digest);
                let size = std::fs::symlink_metadata(self.layout.blob_path(digest)).ok().map(|m| m.len());
                let place = format!("oci:{}", self.layout.root().display());
                let listed = listed.map(|d| d.media_type);
                return super::root_by_digest(&place, digest, listed, size, |media_type| {
                    self.read_manifest(digest, media_type)
                });
            }
            let root = root_descriptor(&self.layout, self.tag.as_deref())?;
            self.read_manifest(&root.digest, Some(root.media_type))
        })
    }

    fn manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<RawManifest>> {
        Box::pin(async move { self.read_manifest(digest, None) })
    }

    fn blob<'a>(&'a self, descriptor: &'a Descriptor, offset: u64) -> BoxFuture<'a, Result<BlobStream>> {
        Box::pin(async move {
            self.check_blob(descriptor).await?;
            let (path, _) = self.layout.blob_file(&descriptor.digest)?;
            Ok(BlobStream::new(file_chunks(path, offset), descriptor, offset, self.name()))
        })
    }

    fn check_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let digest = &descriptor.digest;
            let (_, actual) = self.layout.blob_file(digest)?;
            match actual == descriptor.size {
                true => Ok(()),
                false => {
                    Err(self
                        .corrupt(format!("blob {digest} has {actual} bytes, its descriptor says {}", descriptor.size)))
                }
            }
        })
    }

    fn seekable(&self) -> bool {
        true
    }
}

/// The descriptor `tag` names in a layout; without a tag, the layout's only entry.
pub fn root_descriptor(layout: &Layout, tag: Option<&str>) -> Result<Descriptor> {
    let index = layout.index()?;
    let entries = &index.manifests;
    let found = match tag {
        Some(tag) => entries.iter().find(|d| ref_name(d) == Some(tag)),
        None if entries.len() == 1 => entries.first(),
        None => {
            return Err(Error::invalid(
                "layout reference",
                layout.root().display().to_string(),
                "the layout holds several images; name one as oci:DIR:TAG or oci:DIR@sha256:…",
            ))
        }
    };
    found.cloned().ok_or_else(|| {
        let tags: Vec<&str> = entries.iter().filter_map(ref_name).collect();
        Error::invalid(
            "tag",
            tag.unwrap_or_default(),
            format!("not in {}; it has: {}", layout.root().display(), tags.join(", ")),
        )
    })
}

//! An OCI layout directory as a source.

use futures_util::future::BoxFuture;

use super::root::{self, Holder, Naming};
use super::Source;
use crate::blob::{file_chunks, BlobStream};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::location::Location;
use crate::model::{Descriptor, ImageIndex, MediaType, RawManifest};

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
}

impl Holder for LayoutSource {
    fn index(&self) -> Result<ImageIndex> {
        self.layout.index()
    }

    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        std::fs::symlink_metadata(self.layout.blob_path(digest)).ok().map(|m| m.len())
    }

    fn read_manifest(&self, digest: &Digest, media_type: Option<MediaType>) -> Result<RawManifest> {
        let what = format!("manifest {digest} in {}", self.name());
        RawManifest::new(self.layout.read_blob(digest)?, media_type, &what)
    }

    fn naming(&self) -> Naming {
        naming(&self.layout)
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
        Box::pin(async move { root::find(self, self.tag.as_deref(), self.digest.as_ref()) })
    }

    fn manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<RawManifest>> {
        Box::pin(async move { self.read_manifest(digest, None) })
    }

    fn blob<'a>(&'a self, descriptor: &'a Descriptor, offset: u64) -> BoxFuture<'a, Result<BlobStream>> {
        Box::pin(async move {
            self.check_blob(descriptor).await?;
            let (path, _) = self.layout.blob_file(&descriptor.digest)?;
            Ok(BlobStream::new(file_chunks(path, offset, None), descriptor, offset, self.name()))
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
    root::descriptor(&layout.index()?.manifests, tag, &naming(layout))
}

fn naming(layout: &Layout) -> Naming {
    let path = layout.root().display();
    Naming {
        reference: "layout reference",
        several: "the layout holds several images; name one as oci:DIR:TAG or oci:DIR@sha256:…",
        name: path.to_string(),
        place: format!("oci:{path}"),
    }
}

//! An OCI layout directory as a source.

use futures_util::future::BoxFuture;

use super::root::{self, Holder, Naming};
use super::Source;
use crate::blob::{file_chunks, BlobStream};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::blocking;
use crate::layout::Layout;
use crate::location::Location;
use crate::model::{Descriptor, ImageIndex, MediaType, RawManifest};

/// An OCI layout and the tag or digest in it, if any.
#[derive(Clone)]
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

    /// The file of the blob `descriptor`, checked (off the async threads) to be a regular
    /// file of the descriptor's size.
    async fn blob_file(&self, descriptor: &Descriptor) -> Result<std::path::PathBuf> {
        let (layout, digest) = (self.layout.clone(), descriptor.digest.clone());
        let (path, actual) = blocking::run(move || layout.blob_file(&digest)).await?;
        match actual == descriptor.size {
            true => Ok(path),
            false => Err(self.corrupt(format!(
                "blob {} has {actual} bytes, its descriptor says {}",
                descriptor.digest, descriptor.size
            ))),
        }
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
        let this = self.clone();
        Box::pin(blocking::run(move || root::find(&this, this.tag.as_deref(), this.digest.as_ref())))
    }

    fn manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<RawManifest>> {
        let (this, digest) = (self.clone(), digest.clone());
        Box::pin(blocking::run(move || this.read_manifest(&digest, None)))
    }

    fn blob<'a>(&'a self, descriptor: &'a Descriptor, offset: u64) -> BoxFuture<'a, Result<BlobStream>> {
        Box::pin(async move {
            let path = self.blob_file(descriptor).await?;
            Ok(BlobStream::new(file_chunks(path, offset, None), descriptor, offset, self.name()))
        })
    }

    fn check_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.blob_file(descriptor).await.map(|_| ()) })
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

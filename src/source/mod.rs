//! Where content is read from: an OCI layout, an archive (oci-archive, docker-archive) or a
//! registry repository, behind one interface.
//!
//! A [`Source`] gives the manifest its location names, any manifest or blob by digest
//! (verified while read), and, for registries, where a blob could be mounted from.

mod archive;
mod layout;
mod registry;
mod root;

use futures_util::future::BoxFuture;

pub use self::archive::{DockerArchiveSource, OciArchiveSource};
pub use self::layout::{root_descriptor, LayoutSource};
pub use self::registry::RegistrySource;
use crate::blob::BlobStream;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::blocking;
use crate::location::Location;
use crate::model::{Descriptor, RawManifest};
use crate::reference::Reference;
use crate::registry::Client;

/// Largest config blob hoist reads into memory.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// Content to read from.
pub trait Source: Send + Sync {
    /// Its name for messages: `oci:DIR[:TAG]` or a reference.
    fn name(&self) -> String;

    /// Where it is.
    fn location(&self) -> Location;

    /// The manifest or index its location names.
    fn root(&self) -> BoxFuture<'_, Result<RawManifest>>;

    /// The manifest or index `digest`, verified.
    fn manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<RawManifest>>;

    /// The manifest or index `descriptor` points at (an index entry), verified, and refused when
    /// it is not what the descriptor says it is.
    fn manifest_of<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<RawManifest>> {
        Box::pin(async move {
            let read = self.manifest(&descriptor.digest).await?;
            let what = format!("manifest {} in {}", descriptor.digest, self.name());
            read.described_as(&descriptor.media_type, &what)
        })
    }

    /// The blob `descriptor` from byte `offset`, cut at its size and, from the start, verified.
    fn blob<'a>(&'a self, descriptor: &'a Descriptor, offset: u64) -> BoxFuture<'a, Result<BlobStream>>;

    /// Fails when the blob is missing or has the wrong size, where that can be known cheaply
    /// (a layout); a registry answers for its blobs when they are read.
    fn check_blob<'a>(&'a self, _descriptor: &'a Descriptor) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// The registry repository that holds `digest`, for a cross-repository mount.
    fn origin(&self, _digest: &Digest) -> Option<Reference> {
        None
    }

    /// Whether reads are cheap and can start at any offset (a file): the upload may then go
    /// in resumable chunks.
    fn seekable(&self) -> bool {
        false
    }

    /// A small blob (a config), whole and verified.
    fn blob_bytes<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(async move {
            if descriptor.size > MAX_CONFIG_BYTES {
                return Err(crate::Error::SizeMismatch {
                    what: format!("config {} from {}", descriptor.digest, self.name()),
                    expected: MAX_CONFIG_BYTES,
                    found: descriptor.size.to_string(),
                });
            }
            let mut stream = self.blob(descriptor, 0).await?;
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next_chunk().await? {
                bytes.extend_from_slice(&chunk);
            }
            Ok(bytes)
        })
    }
}

/// The source for `location`; registry locations read through `client`. From async code,
/// [`open_async`].
pub fn open<'a>(location: &Location, client: &'a Client) -> Result<Box<dyn Source + 'a>> {
    match location {
        Location::Registry(reference) => Ok(Box::new(RegistrySource::new(client, reference.clone()))),
        files => open_files(files),
    }
}

/// [`open`] from async code: a layout or an archive (whose tar is walked, and a
/// docker-archive's unnamed layers hashed) is opened on the blocking pool.
pub async fn open_async<'a>(location: &Location, client: &'a Client) -> Result<Box<dyn Source + 'a>> {
    match location {
        Location::Registry(_) => open(location, client),
        files => {
            let files = files.clone();
            blocking::run(move || open_files(&files)).await
        }
    }
}

/// The source for a layout or an archive.
fn open_files(location: &Location) -> Result<Box<dyn Source>> {
    Ok(match location {
        Location::Layout { dir, tag, digest } => Box::new(LayoutSource::open(dir, tag.clone(), digest.clone())?),
        Location::OciArchive { file, tag, digest } => {
            Box::new(OciArchiveSource::open(file, tag.clone(), digest.clone())?)
        }
        Location::DockerArchive { file, image } => Box::new(DockerArchiveSource::open(file, image.clone())?),
        Location::Registry(_) => {
            return Err(Error::invalid("source", location.to_string(), "a registry is not opened as files"))
        }
    })
}

/// A source whose blobs that `first` lacks come from `then`: a layout built on a base image
/// whose layers stay in the base's registry.
pub struct Fallback<'a> {
    first: Box<dyn Source + 'a>,
    then: Box<dyn Source + 'a>,
    /// Digests to take from `then`.
    elsewhere: std::collections::BTreeSet<Digest>,
}

impl<'a> Fallback<'a> {
    /// `first`, with the blobs `elsewhere` read from `then`.
    pub fn new(
        first: Box<dyn Source + 'a>,
        then: Box<dyn Source + 'a>,
        elsewhere: impl IntoIterator<Item = Digest>,
    ) -> Fallback<'a> {
        Fallback { first, then, elsewhere: elsewhere.into_iter().collect() }
    }

    fn pick(&self, digest: &Digest) -> &(dyn Source + 'a) {
        match self.elsewhere.contains(digest) {
            true => self.then.as_ref(),
            false => self.first.as_ref(),
        }
    }
}

impl Source for Fallback<'_> {
    fn name(&self) -> String {
        self.first.name()
    }

    fn location(&self) -> Location {
        self.first.location()
    }

    fn root(&self) -> BoxFuture<'_, Result<RawManifest>> {
        self.first.root()
    }

    fn manifest<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<RawManifest>> {
        self.first.manifest(digest)
    }

    fn blob<'a>(&'a self, descriptor: &'a Descriptor, offset: u64) -> BoxFuture<'a, Result<BlobStream>> {
        self.pick(&descriptor.digest).blob(descriptor, offset)
    }

    fn check_blob<'a>(&'a self, descriptor: &'a Descriptor) -> BoxFuture<'a, Result<()>> {
        self.pick(&descriptor.digest).check_blob(descriptor)
    }

    fn origin(&self, digest: &Digest) -> Option<Reference> {
        self.pick(digest).origin(digest)
    }

    fn seekable(&self) -> bool {
        self.first.seekable()
    }
}
